/*
 * dict_regexp.c - regexp: tables, POSIX regular expressions in Postfix's
 * regexp_table(5) syntax.
 *
 * One rule per logical line:
 *	/pattern/flags result		first matching rule wins
 *	!/pattern/flags result		matches when the pattern does not
 *	if /pattern/flags ... endif	rules inside apply only when it matches
 * Any non-alphanumeric character may delimit the pattern; a backslash
 * escapes the delimiter. Flags toggle: i (case-insensitive, ON by default),
 * x (extended syntax, ON by default), m (multi-line). In the result, $1..$9
 * (also ${n} and $(n)) insert the text matched by the parenthesised
 * subexpression (empty when it did not take part); $$ is a '$'.
 * Keys are never folded (the i flag decides).
 * Threading: immutable after load; glibc's regexec() is thread-safe.
 * Diagnostics: a bad rule is skipped with
 *	"regexp map FILE, line N: reason: skipping this rule".
 */
#include "config.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/dict_priv.h"
#include "engine/dict_text.h"
#include "engine/mem.h"
#include "engine/msg.h"

#define DICT_REGEXP_MATCH	0
#define DICT_REGEXP_IF		1

typedef struct DICT_REGEXP_RULE {
    int     kind;
    int     negate;
    int     valid;			/* IF whose pattern failed: never true */
    size_t  skip_to;			/* IF: the rule after its block */
    size_t  nmatch;			/* 1 + highest $n used */
    regex_t re;
    char   *result;
} DICT_REGEXP_RULE;

typedef struct DICT_REGEXP_TABLE {
    DICT_REGEXP_RULE *rules;
    size_t  count;
    size_t  cap;			/* while loading */
} DICT_REGEXP_TABLE;

/* dict_regexp_ref - parse "$n", "${n}", "$(n)" at p ('$' at p[0]); the
 * reference number or -1 (not a reference); *len is what it spans */

static int dict_regexp_ref(const char *p, size_t *len)
{
    if (p[1] >= '1' && p[1] <= '9') {
	*len = 2;
	return p[1] - '0';
    }
    if ((p[1] == '{' || p[1] == '(') && p[2] >= '1' && p[2] <= '9'
	&& p[3] == (p[1] == '{' ? '}' : ')')) {
	*len = 4;
	return p[2] - '0';
    }
    return -1;
}

/* dict_regexp_prescan - highest $n in the result, or -1 on trouble */

static int dict_regexp_prescan(const char *result, int *highest)
{
    size_t  len;
    int     n;

    *highest = 0;
    for (const char *p = result; *p; p++) {
	if (*p != '$')
	    continue;
	if (p[1] == '$') {
	    p++;
	    continue;
	}
	if ((n = dict_regexp_ref(p, &len)) >= 0) {
	    if (n > *highest)
		*highest = n;
	    p += len - 1;
	}
    }
    return 0;
}

/* dict_regexp_pattern - "/pat/flags" at *pp: compile; advance *pp */

static int dict_regexp_pattern(char **pp, regex_t *re, int nosub, STR *why)
{
    char   *p = *pp, delim, *start;
    int     cflags = REG_EXTENDED | REG_ICASE, rc;
    char    buf[256];

    delim = *p;
    if (delim == 0 || isalnum((unsigned char) delim) || isspace((unsigned char) delim)
	|| delim == '\\') {
	str_printf(why, "regular expression must start with a delimiter such as '/'");
	return -1;
    }
    start = ++p;
    for (; *p && *p != delim; p++)
	if (*p == '\\' && p[1])
	    p++;
    if (*p != delim) {
	str_printf(why, "missing closing delimiter '%c'", delim);
	return -1;
    }
    *p++ = 0;
    for (; *p && !isspace((unsigned char) *p); p++) {
	switch (*p) {
	case 'i':
	    cflags ^= REG_ICASE;
	    break;
	case 'x':
	    cflags ^= REG_EXTENDED;
	    break;
	case 'm':
	    cflags ^= REG_NEWLINE;
	    break;
	default:
	    str_printf(why, "unknown regexp option \"%c\"", *p);
	    return -1;
	}
    }
    if (nosub)
	cflags |= REG_NOSUB;
    if ((rc = regcomp(re, start, cflags)) != 0) {
	regerror(rc, re, buf, sizeof(buf));
	str_printf(why, "%s", buf);
	return -1;
    }
    while (isspace((unsigned char) *p))
	p++;
    *pp = p;
    return 0;
}

static void dict_regexp_free(void *table)
{
    DICT_REGEXP_TABLE *t = table;

    for (size_t n = 0; n < t->count; n++) {
	if (t->rules[n].valid)
	    regfree(&t->rules[n].re);
	mem_free(t->rules[n].result);
    }
    mem_free(t->rules);
    mem_free(t);
}

/* dict_regexp_rule - one rule line, or the pattern after "if" (dict_text.h) */

static int dict_regexp_rule(char *p, int is_if, const char *path, int lineno, void *ctx)
{
    DICT_REGEXP_TABLE *t = ctx;
    STR     why = STR_INIT;
    DICT_REGEXP_RULE rule;
    char   *end, *probe;
    int     highest;

    memset(&rule, 0, sizeof(rule));
    if (is_if)
	rule.kind = DICT_REGEXP_IF;
    if (*p == '!') {
	rule.negate = 1;
	p++;
    }
    /* Find the result first, to know which subexpressions it uses. */
    probe = p;
    if (*probe) {
	char    delim = *probe++;

	for (; *probe && *probe != delim; probe++)
	    if (*probe == '\\' && probe[1])
		probe++;
	if (*probe)
	    probe++;
	probe += strcspn(probe, " \t\r\n\v\f");
	probe += strspn(probe, " \t\r\n\v\f");
    }
    dict_regexp_prescan(probe, &highest);
    if (rule.kind == DICT_REGEXP_IF)
	highest = 0;				/* no result text */
    if (rule.kind == DICT_REGEXP_MATCH && rule.negate && highest > 0) {
	str_printf(&why, "$number found in negative match replacement text");
	goto bad;
    }
    if (dict_regexp_pattern(&p, &rule.re, rule.negate || highest == 0, &why) < 0)
	goto bad;
    rule.valid = 1;
    if (highest > 0 && (size_t) highest > rule.re.re_nsub) {
	str_printf(&why, "out of range replacement index \"%d\"", highest);
	regfree(&rule.re);
	rule.valid = 0;
	goto bad;
    }
    rule.nmatch = (size_t) highest + 1;
    end = p + strlen(p);
    while (end > p && isspace((unsigned char) end[-1]))
	*--end = 0;
    if (rule.kind == DICT_REGEXP_IF) {
	if (*p)
	    msg_warn("regexp map %s, line %d: ignoring extra text after IF",
		     path, lineno);
    } else {
	if (*p == 0)
	    msg_warn("regexp map %s, line %d: no replacement text: using empty string",
		     path, lineno);
	rule.result = mem_strdup(p);
    }
    goto add;

bad:
    msg_warn("regexp map %s, line %d: %s: skipping this rule", path, lineno, STR_DATA(&why));
    str_release(&why);
    if (rule.kind != DICT_REGEXP_IF)
	return 0;
    /* A broken IF still opens a block (never entered), so ENDIFs pair up. */

add:
    if (t->count == t->cap) {
	t->cap = t->cap ? t->cap * 2 : 16;
	t->rules = mem_realloc(t->rules, t->cap * sizeof(*t->rules));
    }
    t->rules[t->count++] = rule;
    return 1;
}

static void dict_regexp_endif(size_t if_rule, size_t next_rule, void *ctx)
{
    DICT_REGEXP_TABLE *t = ctx;

    t->rules[if_rule].skip_to = next_rule;
}

static const DICT_TEXT_RULE_OPS dict_regexp_ops = {
    "regexp", dict_regexp_rule, dict_regexp_endif,
};

static void *dict_regexp_load(const char *path, int fd, int flags, STR *err)
{
    DICT_REGEXP_TABLE *t = MEM_NEW(DICT_REGEXP_TABLE);

    (void) flags;
    if (dict_text_rules(fd, path, &dict_regexp_ops, t, err) < 0) {
	dict_regexp_free(t);
	return NULL;
    }
    return t;
}


/* dict_regexp_expand - the result with $n replaced */

static void dict_regexp_expand(const char *tmpl, const char *key,
			               const regmatch_t *m, size_t nmatch, STR *out)
{
    size_t  len;
    int     n;

    for (const char *p = tmpl; *p; p++) {
	if (*p != '$') {
	    str_putc(out, *p);
	} else if (p[1] == '$') {
	    str_putc(out, '$');
	    p++;
	} else if ((n = dict_regexp_ref(p, &len)) >= 0) {
	    if ((size_t) n < nmatch && m[n].rm_so >= 0)
		str_append(out, key + m[n].rm_so, (size_t) (m[n].rm_eo - m[n].rm_so));
	    p += len - 1;
	} else {
	    str_putc(out, '$');
	}
    }
}

static int dict_regexp_lookup(void *table, const char *key, STR *result)
{
    DICT_REGEXP_TABLE *t = table;
    regmatch_t m[10];
    size_t  n = 0;

    while (n < t->count) {
	const DICT_REGEXP_RULE *r = t->rules + n;
	int     hit;

	switch (r->kind) {
	case DICT_REGEXP_IF:
	    hit = r->valid && (regexec(&r->re, key, 0, NULL, 0) == 0) != r->negate;
	    n = hit ? n + 1 : r->skip_to;
	    break;
	default:
	    if (r->negate) {
		hit = regexec(&r->re, key, 0, NULL, 0) != 0;
	    } else if (r->nmatch > 1) {
		hit = regexec(&r->re, key, r->nmatch, m, 0) == 0;
	    } else {
		hit = regexec(&r->re, key, 0, NULL, 0) == 0;
	    }
	    if (hit) {
		dict_regexp_expand(r->result, key, m, r->negate ? 0 : r->nmatch, result);
		return DICT_FOUND;
	    }
	    n++;
	}
    }
    return DICT_NOTFOUND;
}

const DICT_TYPE dict_type_regexp = {
    "regexp", DICT_TYPE_FILE, "",
    dict_regexp_load, NULL, dict_regexp_lookup, NULL, dict_regexp_free,
};
