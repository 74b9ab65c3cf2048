/*
 * dict_text.c - Postfix table source files (see dict_text.h).
 *
 * Threading: one DICT_TEXT per thread. Diagnostics: per-line warnings as
 * Postfix words them ("FILE, line N: expected format: key whitespace value",
 * "cidr map FILE, line N: IF has no matching ENDIF").
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/dict_text.h"
#include "engine/mem.h"
#include "engine/msg.h"

void    dict_text_init(DICT_TEXT *text, FILE *fp, const char *path)
{
    memset(text, 0, sizeof(*text));
    text->fp = fp;
    text->path = path;
    str_init(&text->pending);
}

void    dict_text_done(DICT_TEXT *text)
{
    str_release(&text->pending);
    free(text->buf);				/* getline() used malloc */
    text->buf = NULL;
}

/* Reads one physical line without its newline; -1 at EOF or error. */
static ssize_t dict_text_physical(DICT_TEXT *text, int *has_nul)
{
    ssize_t len = getline(&text->buf, &text->bufcap, text->fp);

    if (len < 0)
	return -1;
    text->physical++;
    if (len > 0 && text->buf[len - 1] == '\n')
	text->buf[--len] = 0;
    *has_nul = (memchr(text->buf, 0, (size_t) len) != NULL);
    return len;
}

int     dict_text_next(DICT_TEXT *text, STR *line)
{
    int     have, bad = 0, has_nul;
    ssize_t len;

    for (;;) {
	str_reset(line);
	have = bad = 0;
	if (text->have_pending) {
	    str_append(line, STR_DATA(&text->pending), STR_LEN(&text->pending));
	    text->lineno = text->pending_lineno;
	    bad = text->pending_bad;
	    text->have_pending = 0;
	    have = 1;
	}
	while ((len = dict_text_physical(text, &has_nul)) >= 0) {
	    const char *p = text->buf;

	    while (*p && isspace((unsigned char) *p))
		p++;
	    if (*p == 0 && !has_nul)
		continue;			/* empty or whitespace only */
	    if (*p == '#')
		continue;			/* comment */
	    if (p != text->buf) {		/* continuation */
		if (!have) {
		    msg_warn("%s, line %d: logical line must not start with "
			     "whitespace -- ignoring this line",
			     text->path, text->physical);
		    continue;
		}
		str_append(line, text->buf, (size_t) len);
		bad |= has_nul;
		continue;
	    }
	    if (have) {				/* next logical line: keep it */
		str_reset(&text->pending);
		str_append(&text->pending, text->buf, (size_t) len);
		text->pending_bad = has_nul;
		text->pending_lineno = text->physical;
		text->have_pending = 1;
		break;
	    }
	    str_append(line, text->buf, (size_t) len);
	    text->lineno = text->physical;
	    bad = has_nul;
	    have = 1;
	}
	if (len < 0 && ferror(text->fp))
	    return -1;
	if (!have)
	    return 0;
	if (bad) {
	    msg_warn("%s, line %d: NUL byte in input -- ignoring this line",
		     text->path, text->lineno);
	    continue;
	}
	return 1;
    }
}

int     dict_text_split(char *line, char **key, char **value)
{
    int     in_quotes = 0;
    char   *p, *end;

    for (p = line; *p; p++) {
	if (*p == '\\') {
	    if (*++p == 0)
		break;
	} else if (isspace((unsigned char) *p)) {
	    if (!in_quotes)
		break;
	} else if (*p == '"') {
	    in_quotes = !in_quotes;
	}
    }
    if (in_quotes)
	return -1;
    if (*p)
	*p++ = 0;
    while (isspace((unsigned char) *p))
	p++;
    end = p + strlen(p);
    while (end > p && isspace((unsigned char) end[-1]))
	*--end = 0;
    *key = line;
    *value = p;
    return 0;
}

int     dict_text_table(FILE *fp, const char *path, const char *expected_suffix,
			        dict_text_fn fn, void *ctx)
{
    DICT_TEXT text;
    STR     line = STR_INIT;
    char   *key, *value;
    int     rc = 0, got;

    dict_text_init(&text, fp, path);
    while ((got = dict_text_next(&text, &line)) > 0) {
	char   *buf = line.data;

	if (dict_text_split(buf, &key, &value) < 0) {
	    msg_warn("%s, line %d: unbalanced '\"' in '%s' -- ignoring this line",
		     path, text.lineno, buf);
	    continue;
	}
	if (*key == 0 || *value == 0) {
	    msg_warn("%s, line %d: expected format: key whitespace value%s",
		     path, text.lineno, expected_suffix);
	    continue;
	}
	if (strlen(key) > DICT_TEXT_KEY_MAX) {
	    msg_warn("%s, line %d: key is longer than %d bytes -- ignoring this line",
		     path, text.lineno, DICT_TEXT_KEY_MAX);
	    continue;
	}
	if (key[strlen(key) - 1] == ':')
	    msg_warn("%s, line %d: record is in \"key: value\" format; "
		     "is this an alias file?", path, text.lineno);
	if ((rc = fn(key, value, text.lineno, ctx)) != 0)
	    break;
    }
    if (got < 0)
	rc = -1;
    str_release(&line);
    dict_text_done(&text);
    return rc;
}

FILE   *dict_text_fdopen(int fd, const char *path, STR *err)
{
    FILE   *fp;

    if ((fp = fdopen(fd, "r")) == NULL) {
	str_printf(err, "open %s: %s", path, strerror(errno));
	close(fd);
    }
    return fp;
}

/* The IF/ENDIF nesting of one rule file being read. */

typedef struct DICT_TEXT_NEST {
    const DICT_TEXT_RULE_OPS *ops;
    void   *ctx;
    const char *path;
    size_t  count;			/* rules added so far */
    size_t *open;			/* rule numbers of the open IFs */
    size_t  depth;
    size_t  cap;
} DICT_TEXT_NEST;

static void dict_text_nest_line(DICT_TEXT_NEST *nest, char *line, int lineno)
{
    static const char space[] = " \t\r\n\v\f";
    size_t  wlen = strcspn(line, space);
    char   *rest = line + wlen + strspn(line + wlen, space);
    int     is_if;

    if (wlen == 5 && strncasecmp(line, "endif", 5) == 0) {
	if (*rest)
	    msg_warn("%s map %s, line %d: ignoring extra text after ENDIF",
		     nest->ops->map, nest->path, lineno);
	if (nest->depth == 0) {
	    msg_warn("%s map %s, line %d: ignoring ENDIF without matching IF",
		     nest->ops->map, nest->path, lineno);
	    return;
	}
	nest->ops->endif(nest->open[--nest->depth], nest->count, nest->ctx);
	return;
    }
    is_if = (wlen == 2 && strncasecmp(line, "if", 2) == 0);
    if (!nest->ops->rule(is_if ? rest : line, is_if, nest->path, lineno, nest->ctx))
	return;
    if (is_if) {
	if (nest->depth == nest->cap) {
	    nest->cap = nest->cap ? nest->cap * 2 : 8;
	    nest->open = mem_realloc(nest->open, nest->cap * sizeof(*nest->open));
	}
	nest->open[nest->depth++] = nest->count;
    }
    nest->count++;
}

int     dict_text_rules(int fd, const char *path, const DICT_TEXT_RULE_OPS *ops,
			        void *ctx, STR *err)
{
    DICT_TEXT_NEST nest = {ops, ctx, path, 0, NULL, 0, 0};
    DICT_TEXT text;
    STR     line = STR_INIT;
    FILE   *fp;
    int     got, saved_errno;

    if ((fp = dict_text_fdopen(fd, path, err)) == NULL)
	return -1;
    dict_text_init(&text, fp, path);
    while ((got = dict_text_next(&text, &line)) > 0)
	dict_text_nest_line(&nest, line.data, text.lineno);
    saved_errno = errno;
    /* Postfix warns once, at the last logical line, and closes them all. */
    if (nest.depth > 0) {
	msg_warn("%s map %s, line %d: IF has no matching ENDIF",
		 ops->map, path, text.lineno);
	while (nest.depth > 0)
	    ops->endif(nest.open[--nest.depth], nest.count, ctx);
    }
    mem_free(nest.open);
    str_release(&line);
    dict_text_done(&text);
    fclose(fp);
    if (got < 0) {
	str_printf(err, "read %s: %s", path, strerror(saved_errno));
	return -1;
    }
    return 0;
}
