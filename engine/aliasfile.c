/*
 * aliasfile.c - the aliases(5) source format (see aliasfile.h).
 *
 * Threading: pure functions. Diagnostics: Postfix's warnings for bad
 * entries; reasons in err for aliasfile_split().
 */
#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "engine/aliasfile.h"
#include "engine/dict_text.h"
#include "engine/mem.h"
#include "engine/msg.h"

/* aliasfile_unquote - remove double quotes and backslash escapes */

static void aliasfile_unquote(const char *text, size_t len, STR *out)
{
    int     in_quotes = 0;

    str_reset(out);
    for (size_t i = 0; i < len; i++) {
	if (text[i] == '\\' && i + 1 < len) {
	    str_putc(out, text[++i]);
	} else if (text[i] == '"') {
	    in_quotes = !in_quotes;
	} else {
	    str_putc(out, text[i]);
	}
    }
}

/* aliasfile_collapse - trimmed, whitespace runs outside quotes -> " " */

static void aliasfile_collapse(const char *text, STR *out)
{
    int     in_quotes = 0, space = 0;

    str_reset(out);
    while (isspace((unsigned char) *text))
	text++;
    for (; *text; text++) {
	if (!in_quotes && isspace((unsigned char) *text)) {
	    space = 1;
	    continue;
	}
	if (space) {
	    str_putc(out, ' ');
	    space = 0;
	}
	if (*text == '\\' && text[1]) {
	    str_putc(out, *text++);
	} else if (*text == '"') {
	    in_quotes = !in_quotes;
	}
	str_putc(out, *text);
    }
}

int     aliasfile_read(FILE *fp, const char *path, aliasfile_fn fn, void *ctx)
{
    DICT_TEXT text;
    STR     line = STR_INIT, name = STR_INIT, value = STR_INIT;
    int     got, rc = 0;

    dict_text_init(&text, fp, path);
    while ((got = dict_text_next(&text, &line)) > 0) {
	const char *p = STR_DATA(&line), *colon = NULL, *start, *end;
	int     in_quotes = 0, comma = 0, nonlocal = 0;

	/* The first ':' outside quotes ends the name. */
	for (const char *q = p; *q; q++) {
	    if (*q == '\\' && q[1]) {
		q++;
	    } else if (*q == '"') {
		in_quotes = !in_quotes;
	    } else if (!in_quotes) {
		if (*q == ':') {
		    colon = q;
		    break;
		}
		if (*q == ',')
		    comma = 1;
		if (*q == '@' || *q == '%')
		    nonlocal = 1;
	    }
	}
	start = p;
	end = colon ? colon : p;
	while (end > start && isspace((unsigned char) end[-1]))
	    end--;
	if (colon == NULL || end == start || comma
	    || colon[1 + strspn(colon + 1, " \t\r\n\v\f")] == 0) {
	    msg_warn("%s, line %d: need name:value pair", path, text.lineno);
	    continue;
	}
	if (nonlocal) {
	    msg_warn("%s, line %d: name must be local", path, text.lineno);
	    continue;
	}
	aliasfile_unquote(start, (size_t) (end - start), &name);
	if (STR_LEN(&name) == 0 || memchr(STR_DATA(&name), 0, STR_LEN(&name))) {
	    msg_warn("%s, line %d: need name:value pair", path, text.lineno);
	    continue;
	}
	if (STR_LEN(&name) > DICT_TEXT_KEY_MAX) {
	    msg_warn("%s, line %d: name is longer than %d bytes -- ignoring this line",
		     path, text.lineno, DICT_TEXT_KEY_MAX);
	    continue;
	}
	aliasfile_collapse(colon + 1, &value);
	if ((rc = fn(STR_DATA(&name), STR_DATA(&value), text.lineno, ctx)) != 0)
	    break;
    }
    if (got < 0)
	rc = -1;
    str_release(&line);
    str_release(&name);
    str_release(&value);
    dict_text_done(&text);
    return rc;
}

static int aliasfile_member(const char *text, size_t len, aliasfile_member_fn fn,
			            void *ctx, STR *err)
{
    STR     buf = STR_INIT;
    const char *m;
    int     rc;

    while (len > 0 && isspace((unsigned char) *text))
	text++, len--;
    while (len > 0 && isspace((unsigned char) text[len - 1]))
	len--;
    if (len == 0) {
	str_printf(err, "empty alias member");
	return -1;
    }
    /* One quoted string: unquote, then classify what is inside. */
    if (len >= 2 && text[0] == '"' && text[len - 1] == '"'
	&& memchr(text + 1, '"', len - 2) == NULL)
	aliasfile_unquote(text, len, &buf);
    else
	str_append(&buf, text, len);
    m = STR_DATA(&buf);
    if (*m == '|') {
	rc = fn(ALIAS_COMMAND, m + 1, ctx);
    } else if (*m == '/') {
	rc = fn(ALIAS_FILE, m, ctx);
    } else if (strncasecmp(m, ":include:", 9) == 0) {
	m += 9;
	while (isspace((unsigned char) *m))
	    m++;
	if (*m == 0) {
	    str_printf(err, "\":include:\" without a file name");
	    rc = -1;
	} else {
	    rc = fn(ALIAS_INCLUDE, m, ctx);
	}
    } else {
	rc = fn(ALIAS_ADDRESS, m, ctx);
    }
    str_release(&buf);
    return rc;
}

int     aliasfile_split(const char *value, aliasfile_member_fn fn, void *ctx, STR *err)
{
    const char *start = value, *p;
    int     in_quotes = 0, rc;

    for (p = value;; p++) {
	if (*p == '\\' && p[1]) {
	    p++;
	} else if (*p == '"') {
	    in_quotes = !in_quotes;
	} else if (*p == 0 || (*p == ',' && !in_quotes)) {
	    if (*p == 0 && in_quotes) {
		str_printf(err, "unbalanced '\"' in \"%s\"", value);
		return -1;
	    }
	    if ((rc = aliasfile_member(start, (size_t) (p - start), fn, ctx, err)) != 0)
		return rc;
	    if (*p == 0)
		return 0;
	    start = p + 1;
	}
    }
}
