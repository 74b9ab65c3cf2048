/*
 * mastercf.c - master.cf parser (see mastercf.h).
 *
 * Logical lines as in main.cf (comment lines skipped, lines that start with
 * whitespace continue the line above); tokens are separated by blanks, and
 * "{ ... }" groups one token that may contain blanks (Postfix 3.0 syntax).
 * Threading: reentrant. Diagnostics: errors into the caller's STR, warnings
 * through msg_warn().
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/maincf.h"
#include "engine/mastercf.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"

#define MCF_SPACE(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n' \
		      || (c) == '\v' || (c) == '\f')

struct mastercf_tokens {
    char  **tok;
    size_t  count, cap;
};

static void mastercf_tok_add(struct mastercf_tokens *t, const char *p, size_t len)
{
    if (t->count + 1 >= t->cap) {
	t->cap = t->cap ? t->cap * 2 : 16;
	t->tok = mem_realloc(t->tok, t->cap * sizeof(char *));
    }
    t->tok[t->count++] = mem_strndup(p, len);
    t->tok[t->count] = NULL;
}

static void mastercf_tok_free(struct mastercf_tokens *t)
{
    for (size_t i = 0; i < t->count; i++)
	mem_free(t->tok[i]);
    mem_free(t->tok);
    t->tok = NULL;
    t->count = t->cap = 0;
}

/* Split a logical line; NULL on success, else a static reason. */
static const char *mastercf_tokenize(const char *s, struct mastercf_tokens *t)
{
    while (*s) {
	const char *start;

	while (MCF_SPACE(*s))
	    s++;
	if (*s == 0)
	    break;
	if (*s == '{') {
	    int     depth = 1;
	    const char *end;

	    start = ++s;
	    while (*s && depth > 0) {
		if (*s == '{')
		    depth++;
		else if (*s == '}')
		    depth--;
		s++;
	    }
	    if (depth > 0)
		return "missing '}'";
	    end = s - 1;
	    if (*s && !MCF_SPACE(*s))
		return "syntax error after '}'";
	    while (start < end && MCF_SPACE(*start))
		start++;
	    while (end > start && MCF_SPACE(end[-1]))
		end--;
	    mastercf_tok_add(t, start, (size_t) (end - start));
	    continue;
	}
	start = s;
	while (*s && !MCF_SPACE(*s))
	    s++;
	mastercf_tok_add(t, start, (size_t) (s - start));
    }
    return NULL;
}

static bool mastercf_number(const char *s, bool allow_query, int *value)
{
    long long v = 0;

    if (!isdigit((unsigned char) *s))
	return false;
    for (; isdigit((unsigned char) *s); s++) {
	v = v * 10 + (*s - '0');
	if (v > 1000000000)
	    return false;
    }
    if (allow_query && *s == '?')
	s++;
    if (*s)
	return false;
    *value = (int) v;
    return true;
}

static bool mastercf_add_opt(MASTERCF_SERVICE *svc, const char *text)
{
    const char *eq = strchr(text, '=');
    const char *ns = text, *ne, *vs, *ve;

    if (eq == NULL)
	return false;
    ne = eq;
    while (ns < ne && MCF_SPACE(*ns))
	ns++;
    while (ne > ns && MCF_SPACE(ne[-1]))
	ne--;
    if (ns == ne)
	return false;
    vs = eq + 1;
    ve = eq + strlen(eq);
    while (vs < ve && MCF_SPACE(*vs))
	vs++;
    while (ve > vs && MCF_SPACE(ve[-1]))
	ve--;
    svc->opt = mem_realloc(svc->opt, (svc->nopt + 1) * sizeof(*svc->opt));
    svc->opt[svc->nopt].name = mem_strndup(ns, (size_t) (ne - ns));
    svc->opt[svc->nopt].value = mem_strndup(vs, (size_t) (ve - vs));
    svc->nopt++;
    return true;
}

static void mastercf_service_free(MASTERCF_SERVICE *svc)
{
    mem_free(svc->name);
    mem_free(svc->type);
    mem_free(svc->wakeup);
    mem_free(svc->command);
    for (size_t i = 0; i < svc->argc; i++)
	mem_free(svc->argv[i]);
    mem_free(svc->argv);
    for (size_t i = 0; i < svc->nopt; i++) {
	mem_free(svc->opt[i].name);
	mem_free(svc->opt[i].value);
    }
    mem_free(svc->opt);
}

static const char *mastercf_fields[] = {
    "service", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command",
};

static const char *mastercf_types[] = {"inet", "unix", "unix-dgram", "fifo", "pass"};

/* Parse one logical line into cf; errors into err. */
static void mastercf_entry(MASTERCF *cf, size_t *cap, const char *line_text,
			   int line, STR *err)
{
    struct mastercf_tokens t = {0};
    MASTERCF_SERVICE svc = {0};
    const char *why;
    const char *path = cf->path;
    bool    ok = false;
    size_t  i;

    if ((why = mastercf_tokenize(line_text, &t)) != NULL) {
	str_printf(err, "%s, line %d: %s\n", path, line, why);
	goto done;
    }
    if (t.count < 8) {
	str_printf(err, "%s, line %d: missing \"%s\" field\n", path, line,
		   mastercf_fields[t.count]);
	goto done;
    }
    for (i = 0; i < sizeof(mastercf_types) / sizeof(*mastercf_types); i++)
	if (strcmp(t.tok[1], mastercf_types[i]) == 0)
	    break;
    if (i == sizeof(mastercf_types) / sizeof(*mastercf_types)) {
	str_printf(err, "%s, line %d: bad transport type: %s\n", path, line, t.tok[1]);
	goto done;
    }
    for (i = 2; i <= 4; i++) {
	if (strcmp(t.tok[i], "y") && strcmp(t.tok[i], "n") && strcmp(t.tok[i], "-")) {
	    str_printf(err, "%s, line %d: bad %s field: %s (use y, n or -)\n",
		       path, line, mastercf_fields[i], t.tok[i]);
	    goto done;
	}
    }
    int     number;

    if (strcmp(t.tok[5], "-") && !mastercf_number(t.tok[5], true, &number)) {
	str_printf(err, "%s, line %d: bad wakeup time: %s\n", path, line, t.tok[5]);
	goto done;
    }
    svc.maxproc = -1;
    if (strcmp(t.tok[6], "-") && !mastercf_number(t.tok[6], false, &svc.maxproc)) {
	str_printf(err, "%s, line %d: bad maximal process count: %s\n", path, line, t.tok[6]);
	goto done;
    }
    if (*t.tok[0] == 0) {
	str_printf(err, "%s, line %d: empty service name\n", path, line);
	goto done;
    }
    svc.line = line;
    svc.name = mem_strdup(t.tok[0]);
    svc.type = mem_strdup(t.tok[1]);
    svc.private_ = *t.tok[2];
    svc.unpriv = *t.tok[3];
    svc.chroot = *t.tok[4];
    svc.wakeup = mem_strdup(t.tok[5]);
    svc.command = mem_strdup(t.tok[7]);
    svc.argv = mem_calloc(t.count, sizeof(char *));
    for (i = 8; i < t.count; i++) {
	const char *arg = t.tok[i];

	if (strcmp(arg, "-o") == 0) {
	    const char *setting = t.tok[++i];

	    if (setting == NULL) {
		str_printf(err, "%s, line %d: service %s: -o without name=value\n",
			   path, line, svc.name);
		goto done;
	    }
	    if (!mastercf_add_opt(&svc, setting)) {
		str_printf(err, "%s, line %d: service %s: missing '=' in \"-o %s\"\n",
			   path, line, svc.name, setting);
		goto done;
	    }
	    continue;
	}
	svc.argv[svc.argc++] = mem_strdup(arg);
    }
    for (i = 0; i < cf->count; i++) {
	if (strcmp(cf->svc[i].name, svc.name) == 0 && strcmp(cf->svc[i].type, svc.type) == 0) {
	    str_printf(err, "%s, line %d: duplicate service %s/%s (first defined at line %d)\n",
		       path, line, svc.name, svc.type, cf->svc[i].line);
	    goto done;
	}
    }
    if (cf->count == *cap) {
	*cap = *cap ? *cap * 2 : 32;
	cf->svc = mem_realloc(cf->svc, *cap * sizeof(*cf->svc));
    }
    cf->svc[cf->count++] = svc;
    ok = true;
done:
    if (!ok)
	mastercf_service_free(&svc);
    mastercf_tok_free(&t);
}

MASTERCF *mastercf_parse(const char *path, const char *text, size_t len, STR *err)
{
    MASTERCF *cf = MEM_NEW(MASTERCF);
    STR     logical = STR_INIT;
    size_t  pos = 0, cap = 0, err_len = STR_LEN(err);
    int     lineno = 0, first = 0;
    bool    orphan = false;

    cf->path = mem_strdup(path);
    while (pos < len) {
	const char *p = text + pos;
	const char *nl = memchr(p, '\n', len - pos);
	size_t  plen = nl ? (size_t) (nl - p) : len - pos;
	const char *nul = memchr(p, '\0', plen);
	size_t  tlen = nul ? (size_t) (nul - p) : plen, i = 0;

	pos += nl ? plen + 1 : plen;
	lineno++;
	if (nul)
	    msg_warn("%s, line %d: text after null byte may be ignored", path, lineno);
	while (i < tlen && MCF_SPACE(p[i]))
	    i++;
	if (i == tlen || p[i] == '#')
	    continue;
	if (i > 0) {				/* continuation */
	    if (first == 0) {
		if (!orphan)
		    msg_warn("%s, line %d: logical line must not start with whitespace: \"%.30s%s\"",
			     path, lineno, p, tlen > 30 ? "..." : "");
		orphan = true;
		continue;
	    }
	    str_putc(&logical, ' ');
	    str_append(&logical, p, tlen);
	    continue;
	}
	if (first)
	    mastercf_entry(cf, &cap, STR_DATA(&logical), first, err);
	orphan = false;
	first = lineno;
	str_reset(&logical);
	str_append(&logical, p, tlen);
    }
    if (first)
	mastercf_entry(cf, &cap, STR_DATA(&logical), first, err);
    str_release(&logical);
    if (STR_LEN(err) > err_len) {
	mastercf_free(cf);
	return NULL;
    }
    return cf;
}

MASTERCF *mastercf_read(const char *path, STR *err)
{
    size_t  len;
    char   *text = maincf_slurp(path, &len);
    MASTERCF *cf;

    if (text == NULL) {
	str_printf(err, "open %s: %s\n", path, strerror(errno));
	return NULL;
    }
    cf = mastercf_parse(path, text, len, err);
    mem_free(text);
    return cf;
}

void    mastercf_free(MASTERCF *cf)
{
    if (cf == NULL)
	return;
    for (size_t i = 0; i < cf->count; i++)
	mastercf_service_free(&cf->svc[i]);
    mem_free(cf->svc);
    mem_free(cf->path);
    mem_free(cf);
}

const MASTERCF_SERVICE *mastercf_find(const MASTERCF *cf, const char *name,
				      const char *type)
{
    const char *slash;
    size_t  nlen;

    if (cf == NULL || name == NULL)
	return NULL;
    nlen = strlen(name);
    if (type == NULL && (slash = strrchr(name, '/')) != NULL) {
	type = slash + 1;
	nlen = (size_t) (slash - name);
    }
    for (size_t i = 0; i < cf->count; i++) {
	const MASTERCF_SERVICE *svc = &cf->svc[i];

	if (strlen(svc->name) == nlen && memcmp(svc->name, name, nlen) == 0
	    && (type == NULL || strcmp(svc->type, type) == 0))
	    return svc;
    }
    return NULL;
}

const char *mastercf_opt(const MASTERCF_SERVICE *svc, const char *name)
{
    const char *value = NULL;

    for (size_t i = 0; i < svc->nopt; i++)	/* the last one wins */
	if (strcmp(svc->opt[i].name, name) == 0)
	    value = svc->opt[i].value;
    return value;
}

/* Quote an argument that needs it, the way master.cf would read it back. */
static void mastercf_put_arg(STR *out, const char *arg)
{
    str_putc(out, ' ');
    if (*arg == 0 || strpbrk(arg, " \t{}") != NULL)
	str_printf(out, "{ %s }", arg);
    else
	str_puts(out, arg);
}

void    mastercf_format(const MASTERCF_SERVICE *svc, STR *out)
{
    char    maxproc[16];

    if (svc->maxproc < 0)
	strcpy(maxproc, "-");
    else
	snprintf(maxproc, sizeof(maxproc), "%d", svc->maxproc);
    str_printf(out, "%-10s %-5s %-7c %-7c %-7c %-7s %-7s %s", svc->name, svc->type,
	       svc->private_, svc->unpriv, svc->chroot, svc->wakeup, maxproc,
	       svc->command);
    for (size_t i = 0; i < svc->nopt; i++) {
	STR     kv = STR_INIT;

	str_printf(&kv, "%s=%s", svc->opt[i].name, svc->opt[i].value);
	str_puts(out, " -o");
	mastercf_put_arg(out, STR_DATA(&kv));
	str_release(&kv);
    }
    for (size_t i = 0; i < svc->argc; i++)
	mastercf_put_arg(out, svc->argv[i]);
}
