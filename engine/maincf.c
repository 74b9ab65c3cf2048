/*
 * maincf.c - main.cf parser and in-place editor (see maincf.h).
 *
 * The parser and the editor walk the same physical lines with the same
 * classification (comment, continuation, start of an entry), so an edit
 * touches exactly the lines the parser reads as that entry.
 * Threading: reentrant; no global state.
 * Diagnostics: warnings through msg_warn(), errors into the caller's STR.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/maincf.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"

#define MAINCF_IS_SPACE(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' \
			    || (c) == '\n' || (c) == '\v' || (c) == '\f')

enum maincf_line_kind { LINE_SKIP, LINE_CONT, LINE_START };

/* One physical line: [ptr, ptr + len), without its newline. */
struct maincf_line {
    const char *ptr;
    size_t  len;
    size_t  full_len;		/* with the newline, if any */
};

static bool maincf_next_line(const char *text, size_t len, size_t *pos,
			     struct maincf_line *line)
{
    const char *nl;

    if (*pos >= len)
	return false;
    line->ptr = text + *pos;
    nl = memchr(line->ptr, '\n', len - *pos);
    line->len = nl ? (size_t) (nl - line->ptr) : len - *pos;
    line->full_len = nl ? line->len + 1 : line->len;
    *pos += line->full_len;
    return true;
}

/* The meaningful length: text after a NUL byte does not count. */
static size_t maincf_line_text_len(const struct maincf_line *line)
{
    const char *nul = memchr(line->ptr, '\0', line->len);

    return nul ? (size_t) (nul - line->ptr) : line->len;
}

static enum maincf_line_kind maincf_classify(const char *p, size_t len)
{
    size_t  i = 0;

    while (i < len && MAINCF_IS_SPACE(p[i]))
	i++;
    if (i == len || p[i] == '#')
	return LINE_SKIP;
    return i > 0 ? LINE_CONT : LINE_START;
}

/* A well-formed UTF-8 check (no overlongs, no surrogates). */
static bool maincf_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;

    while (*p) {
	unsigned c = *p;
	int     n;
	unsigned cp;

	if (c < 0x80) {
	    p++;
	    continue;
	} else if (c >= 0xc2 && c <= 0xdf) {
	    n = 1; cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
	    n = 2; cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
	    n = 3; cp = c & 0x07;
	} else
	    return false;
	for (int i = 1; i <= n; i++) {
	    if ((p[i] & 0xc0) != 0x80)
		return false;
	    cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
	    || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
	    return false;
	p += n + 1;
    }
    return true;
}

static void maincf_trim(const char **start, const char **end)
{
    while (*start < *end && MAINCF_IS_SPACE(**start))
	(*start)++;
    while (*end > *start && MAINCF_IS_SPACE((*end)[-1]))
	(*end)--;
}

/* Split "name = value"; returns false when there is no '=' or no name. */
static bool maincf_split(const char *logical, char **name, char **value)
{
    const char *eq = strchr(logical, '=');
    const char *ns = logical, *ne, *vs, *ve;

    if (eq == NULL)
	return false;
    ne = eq;
    maincf_trim(&ns, &ne);
    if (ns == ne)
	return false;
    for (const char *cp = ns; cp < ne; cp++)
	if (MAINCF_IS_SPACE(*cp))
	    return false;
    vs = eq + 1;
    ve = eq + strlen(eq);
    maincf_trim(&vs, &ve);
    *name = mem_strndup(ns, (size_t) (ne - ns));
    *value = mem_strndup(vs, (size_t) (ve - vs));
    return true;
}

static void maincf_add(MAINCF *cf, size_t *cap, const char *path, STR *logical,
		       int line, STR *err)
{
    char   *name, *value;
    const char *text = STR_DATA(logical);

    if (!maincf_split(text, &name, &value)) {
	const char *cp = text;
	size_t  n = strcspn(cp, " \t=");

	str_printf(err, "%s, line %d: missing '=' after attribute name: \"%.*s%s\"\n",
		   path, line, (int) (n > 60 ? 60 : n), cp, n > 60 ? "..." : "");
	return;
    }
    if (!maincf_utf8_ok(value))
	msg_warn("%s, line %d: parameter %s: value is not valid UTF-8",
		 path, line, name);
    if (cf->count == *cap) {
	*cap = *cap ? *cap * 2 : 32;
	cf->entry = mem_realloc(cf->entry, *cap * sizeof(*cf->entry));
    }
    cf->entry[cf->count].name = name;
    cf->entry[cf->count].value = value;
    cf->entry[cf->count].line = line;
    cf->count++;
}

MAINCF *maincf_parse(const char *path, const char *text, size_t len, STR *err)
{
    MAINCF *cf = MEM_NEW(MAINCF);
    STR     logical = STR_INIT;
    struct maincf_line line;
    size_t  pos = 0, cap = 0;
    int     lineno = 0, first = 0;
    bool    orphan = false;	/* continuation text without an entry */
    size_t  err_len = STR_LEN(err);

    cf->path = mem_strdup(path);
    while (maincf_next_line(text, len, &pos, &line)) {
	size_t  tlen = maincf_line_text_len(&line);

	lineno++;
	if (tlen < line.len)
	    msg_warn("%s, line %d: text after null byte may be ignored", path, lineno);
	switch (maincf_classify(line.ptr, tlen)) {
	case LINE_SKIP:
	    continue;
	case LINE_CONT:
	    if (first == 0) {
		if (!orphan)
		    msg_warn("%s, line %d: logical line must not start with whitespace: \"%.30s%s\"",
			     path, lineno, line.ptr, tlen > 30 ? "..." : "");
		orphan = true;
		continue;
	    }
	    str_append(&logical, line.ptr, tlen);
	    continue;
	case LINE_START:
	    if (first)
		maincf_add(cf, &cap, path, &logical, first, err);
	    orphan = false;
	    first = lineno;
	    str_reset(&logical);
	    str_append(&logical, line.ptr, tlen);
	    continue;
	}
    }
    if (first)
	maincf_add(cf, &cap, path, &logical, first, err);
    str_release(&logical);
    if (STR_LEN(err) > err_len) {
	maincf_free(cf);
	return NULL;
    }
    return cf;
}

char   *maincf_slurp(const char *path, size_t *lenp)
{
    int     fd = open(path, O_RDONLY | O_CLOEXEC);
    STR     buf = STR_INIT;
    char    chunk[65536];
    ssize_t n;

    if (fd < 0)
	return NULL;
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
	if (n < 0) {
	    int     saved = errno;

	    if (errno == EINTR)
		continue;
	    close(fd);
	    str_release(&buf);
	    errno = saved;
	    return NULL;
	}
	str_append(&buf, chunk, (size_t) n);
    }
    close(fd);
    str_reserve(&buf, 1);			/* never NULL, even when empty */
    return str_steal(&buf, lenp);
}

MAINCF *maincf_read(const char *path, STR *err)
{
    size_t  len;
    char   *text = maincf_slurp(path, &len);
    MAINCF *cf;

    if (text == NULL) {
	str_printf(err, "open %s: %s\n", path, strerror(errno));
	return NULL;
    }
    cf = maincf_parse(path, text, len, err);
    mem_free(text);
    return cf;
}

void    maincf_free(MAINCF *cf)
{
    if (cf == NULL)
	return;
    for (size_t i = 0; i < cf->count; i++) {
	mem_free(cf->entry[i].name);
	mem_free(cf->entry[i].value);
    }
    mem_free(cf->entry);
    mem_free(cf->path);
    mem_free(cf);
}

const MAINCF_ENTRY *maincf_find(const MAINCF *cf, const char *name)
{
    for (size_t i = cf->count; i-- > 0;)
	if (strcmp(cf->entry[i].name, name) == 0)
	    return &cf->entry[i];
    return NULL;
}

/* The edit that names this entry line, if any. */
static const MAINCF_EDIT *maincf_edit_match(const char *p, size_t len,
					     const MAINCF_EDIT *edit, size_t nedit,
					     size_t *index)
{
    size_t  n = 0;

    while (n < len && p[n] != '=' && !MAINCF_IS_SPACE(p[n]))
	n++;
    for (size_t i = 0; i < nedit; i++) {
	if (strlen(edit[i].name) == n && memcmp(edit[i].name, p, n) == 0) {
	    *index = i;
	    return &edit[i];
	}
    }
    return NULL;
}

void    maincf_edit_text(const char *text, size_t len, enum maincf_edit_op op,
			 const MAINCF_EDIT *edit, size_t nedit, STR *out)
{
    struct maincf_line line;
    size_t  pos = 0, index;
    bool   *done = mem_calloc(nedit ? nedit : 1, sizeof(bool));
    enum { KEEP, DROP, COMMENT } mode = KEEP;	/* for continuation lines */

    str_reset(out);
    while (maincf_next_line(text, len, &pos, &line)) {
	size_t  tlen = maincf_line_text_len(&line);
	const MAINCF_EDIT *hit;

	switch (maincf_classify(line.ptr, tlen)) {
	case LINE_SKIP:
	    str_append(out, line.ptr, line.full_len);
	    continue;
	case LINE_CONT:
	    if (mode == COMMENT)
		str_putc(out, '#');
	    if (mode != DROP)
		str_append(out, line.ptr, line.full_len);
	    continue;
	case LINE_START:
	    hit = maincf_edit_match(line.ptr, tlen, edit, nedit, &index);
	    if (hit == NULL) {
		mode = KEEP;
		str_append(out, line.ptr, line.full_len);
		continue;
	    }
	    if (op == MAINCF_COMMENT) {
		mode = COMMENT;
		str_putc(out, '#');
		str_append(out, line.ptr, line.full_len);
	    } else if (op == MAINCF_SET && !done[index]) {
		str_printf(out, "%s = %s\n", hit->name, hit->value);
		mode = DROP;
	    } else {
		mode = DROP;
	    }
	    done[index] = true;
	    continue;
	}
    }
    if (op == MAINCF_SET) {
	for (size_t i = 0; i < nedit; i++) {
	    if (done[i])
		continue;
	    /* A later edit of the same name wins, as on the command line. */
	    bool    later = false;

	    for (size_t j = i + 1; j < nedit; j++)
		if (strcmp(edit[i].name, edit[j].name) == 0)
		    later = true;
	    if (later)
		continue;
	    if (STR_LEN(out) > 0 && STR_DATA(out)[STR_LEN(out) - 1] != '\n')
		str_putc(out, '\n');
	    str_printf(out, "%s = %s\n", edit[i].name, edit[i].value);
	}
    }
    mem_free(done);
}

static int maincf_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
	ssize_t n = write(fd, data, len);

	if (n < 0) {
	    if (errno == EINTR)
		continue;
	    return -1;
	}
	data += n;
	len -= (size_t) n;
    }
    return 0;
}

/* Open and lock path.tmp; retry if another editor renamed it meanwhile. */
static int maincf_lock_tmp(const char *tmp, STR *err)
{
    for (;;) {
	struct stat fst, pst;
	int     fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
	    str_printf(err, "open %s: %s", tmp, strerror(errno));
	    return -1;
	}
	if (flock(fd, LOCK_EX) < 0) {
	    str_printf(err, "lock %s: %s", tmp, strerror(errno));
	    close(fd);
	    return -1;
	}
	if (fstat(fd, &fst) == 0 && stat(tmp, &pst) == 0
	    && fst.st_ino == pst.st_ino && fst.st_dev == pst.st_dev)
	    return fd;
	close(fd);
    }
}

int     maincf_edit_file(const char *path, enum maincf_edit_op op,
			 const MAINCF_EDIT *edit, size_t nedit, STR *err)
{
    STR     tmp = STR_INIT, out = STR_INIT;
    char   *text = NULL, *dir;
    const char *slash;
    size_t  len;
    struct stat st;
    int     fd, dfd, ret = -1;

    for (size_t i = 0; i < nedit; i++) {
	if (op == MAINCF_SET && strpbrk(edit[i].value, "\n\r")) {
	    str_printf(err, "value of %s contains a newline", edit[i].name);
	    return -1;
	}
    }
    str_printf(&tmp, "%s.tmp", path);
    if ((fd = maincf_lock_tmp(STR_DATA(&tmp), err)) < 0)
	goto out;
    /* Read under the lock, so concurrent editors serialize. */
    if ((text = maincf_slurp(path, &len)) == NULL || fstat(fd, &st) < 0
	|| stat(path, &st) < 0) {
	str_printf(err, "open %s for reading: %s", path, strerror(errno));
	unlink(STR_DATA(&tmp));
	close(fd);
	goto out;
    }
    maincf_edit_text(text, len, op, edit, nedit, &out);
    if (ftruncate(fd, 0) < 0 || maincf_write_all(fd, STR_DATA(&out), STR_LEN(&out)) < 0
	|| fchmod(fd, st.st_mode & 07777) < 0 || fsync(fd) < 0) {
	str_printf(err, "write %s: %s", STR_DATA(&tmp), strerror(errno));
	unlink(STR_DATA(&tmp));
	close(fd);
	goto out;
    }
    if (rename(STR_DATA(&tmp), path) < 0) {
	str_printf(err, "rename %s to %s: %s", STR_DATA(&tmp), path, strerror(errno));
	unlink(STR_DATA(&tmp));
	close(fd);
	goto out;
    }
    slash = strrchr(path, '/');
    dir = slash ? mem_strndup(path, slash == path ? 1 : (size_t) (slash - path))
	: mem_strdup(".");
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
	(void) fsync(dfd);
	close(dfd);
    }
    mem_free(dir);
    close(fd);				/* releases the lock */
    ret = 0;
out:
    mem_free(text);
    str_release(&tmp);
    str_release(&out);
    return ret;
}
