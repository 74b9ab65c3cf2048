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
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/dict_priv.h"
#include "engine/dict_text.h"
#include "engine/mem.h"
#include "engine/msg.h"

#define DICT_REGEXP_MATCH	0
#define DICT_REGEXP_IF		1
#define DICT_REGEXP_ENDIF	2

typedef struct DICT_REGEXP_RULE {
    int     kind;
    int     negate;
    int     valid;			/* IF whose pattern failed: never true */
    size_t  skip_to;			/* IF: index after the matching ENDIF */
    size_t  nmatch;			/* 1 + highest $n used */
    regex_t re;
    char   *result;
} DICT_REGEXP_RULE;

typedef struct DICT_REGEXP_TABLE {
    DICT_REGEXP_RULE *rules;
    size_t  count;
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

static DICT_REGEXP_RULE *dict_regexp_push(DICT_REGEXP_TABLE *t, size_t *cap)
{
    if (t->count == *cap) {
	*cap = *cap ? *cap * 2 : 16;
	t->rules = mem_realloc(t->rules, *cap * sizeof(*t->rules));
    }
    memset(t->rules + t->count, 0, sizeof(*t->rules));
    return t->rules + t->count++;
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

/* dict_regexp_rule - one logical line; 0 = added/ignored, -1 = bad */

static int dict_regexp_rule(DICT_REGEXP_TABLE *t, size_t *cap, char *p,
			            size_t **stack, size_t *depth, size_t *stack_cap,
			            const char *path, int lineno, STR *why)
{
    DICT_REGEXP_RULE rule, *r;
    char   *end, *probe;
    int     highest;
    size_t  wlen = strcspn(p, " \t\r\n\v\f");

    memset(&rule, 0, sizeof(rule));
    if (wlen == 5 && strncasecmp(p, "endif", 5) == 0) {
	if (p[5] && p[5 + strspn(p + 5, " \t\r\n\v\f")])
	    msg_warn("regexp map %s, line %d: ignoring extra text after ENDIF",
		     path, lineno);
	if (*depth == 0) {
	    msg_warn("regexp map %s, line %d: ignoring ENDIF without matching IF",
		     path, lineno);
	    return 0;
	}
	r = dict_regexp_push(t, cap);
	r->kind = DICT_REGEXP_ENDIF;
	t->rules[(*stack)[--*depth]].skip_to = t->count;
	return 0;
    }
    if (wlen == 2 && strncasecmp(p, "if", 2) == 0) {
	rule.kind = DICT_REGEXP_IF;
	p += 2;
	while (isspace((unsigned char) *p))
	    p++;
    }
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
	str_printf(why, "$number found in negative match replacement text");
	goto bad;
    }
    if (dict_regexp_pattern(&p, &rule.re, rule.negate || highest == 0, why) < 0)
	goto bad;
    rule.valid = 1;
    if (highest > 0 && (size_t) highest > rule.re.re_nsub) {
	str_printf(why, "out of range replacement index \"%d\"", highest);
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
    msg_warn("regexp map %s, line %d: %s: skipping this rule", path, lineno, STR_DATA(why));
    if (rule.kind != DICT_REGEXP_IF)
	return -1;
    /* A broken IF still opens a block (never entered), so ENDIFs pair up. */

add:
    r = dict_regexp_push(t, cap);
    *r = rule;
    if (r->kind == DICT_REGEXP_IF) {
	if (*depth == *stack_cap) {
	    *stack_cap = *stack_cap ? *stack_cap * 2 : 8;
	    *stack = mem_realloc(*stack, *stack_cap * sizeof(**stack));
	}
	(*stack)[(*depth)++] = t->count - 1;
    }
    return 0;
}

static void *dict_regexp_load(const char *path, int fd, int flags, STR *err)
{
    DICT_REGEXP_TABLE *t;
    DICT_TEXT text;
    STR     line = STR_INIT, why = STR_INIT;
    size_t  cap = 0, *stack = NULL, depth = 0, stack_cap = 0;
    FILE   *fp;
    int     got;

    (void) flags;
    if ((fp = fdopen(fd, "r")) == NULL) {
	str_printf(err, "open %s: %s", path, strerror(errno));
	close(fd);
	return NULL;
    }
    t = MEM_NEW(DICT_REGEXP_TABLE);
    dict_text_init(&text, fp, path);
    while ((got = dict_text_next(&text, &line)) > 0) {
	str_reset(&why);
	dict_regexp_rule(t, &cap, line.data, &stack, &depth, &stack_cap,
			 path, text.lineno, &why);
    }
    if (depth > 0) {
	msg_warn("regexp map %s, line %d: IF has no matching ENDIF", path, text.lineno);
	while (depth > 0)
	    t->rules[stack[--depth]].skip_to = t->count;
    }
    mem_free(stack);
    str_release(&line);
    str_release(&why);
    dict_text_done(&text);
    if (got < 0) {
	str_printf(err, "read %s: %s", path, strerror(errno));
	fclose(fp);
	dict_regexp_free(t);
	return NULL;
    }
    fclose(fp);
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
	case DICT_REGEXP_ENDIF:
	    n++;
	    break;
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
