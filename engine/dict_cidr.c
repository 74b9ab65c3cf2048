/*
 * dict_cidr.c - cidr: tables (network patterns, first match wins) and the
 * network pattern helpers of dict_cidr.h.
 *
 * Table format, one rule per logical line:
 *	network/prefix	result
 *	!network/prefix	result		(matches addresses outside)
 *	if network/prefix  ...  endif	(rules inside apply only within)
 * The lookup key is an IPv4 or IPv6 address; other keys are not found.
 * Threading: immutable after load; lookups from any thread.
 * Diagnostics: a bad rule is skipped with
 *	"cidr map FILE, line N: reason: skipping this rule".
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "engine/dict_cidr.h"
#include "engine/dict_priv.h"
#include "engine/dict_text.h"
#include "engine/mem.h"
#include "engine/msg.h"

/* Helpers. */

static const unsigned char dict_cidr_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* dict_cidr_unbracket - "[addr]rest" -> "addr" + "rest" */

static int dict_cidr_text(const char *text, char *buf, size_t size, const char **rest)
{
    const char *end;
    size_t  len;

    if (*text == '[') {
	if ((end = strchr(text, ']')) == NULL)
	    return -1;
	len = (size_t) (end - text - 1);
	*rest = end + 1;
	text++;
    } else {
	len = strcspn(text, "/");
	*rest = text + len;
    }
    if (len == 0 || len >= size)
	return -1;
    memcpy(buf, text, len);
    buf[len] = 0;
    return 0;
}

static int dict_cidr_pton(const char *text, DICT_CIDR_NET *net)
{
    memset(net->addr, 0, sizeof(net->addr));
    if (strchr(text, ':') == NULL) {
	if (inet_pton(AF_INET, text, net->addr) != 1)
	    return -1;
	net->family = AF_INET;
	net->prefix = 32;
    } else {
	if (inet_pton(AF_INET6, text, net->addr) != 1)
	    return -1;
	net->family = AF_INET6;
	net->prefix = 128;
    }
    return 0;
}

int     dict_cidr_parse_addr(const char *text, DICT_CIDR_NET *addr)
{
    char    buf[INET6_ADDRSTRLEN + 1];
    const char *rest;

    if (dict_cidr_text(text, buf, sizeof(buf), &rest) < 0 || *rest != 0)
	return -1;
    if (dict_cidr_pton(buf, addr) < 0)
	return -1;
    /* An IPv4 client seen through an IPv6 socket. */
    if (addr->family == AF_INET6
	&& memcmp(addr->addr, dict_cidr_v4mapped, sizeof(dict_cidr_v4mapped)) == 0) {
	memmove(addr->addr, addr->addr + 12, 4);
	memset(addr->addr + 4, 0, 12);
	addr->family = AF_INET;
	addr->prefix = 32;
    }
    return 0;
}

int     dict_cidr_parse_net(const char *text, DICT_CIDR_NET *net, STR *err)
{
    char    buf[INET6_ADDRSTRLEN + 1], *end;
    const char *rest;
    long    prefix;
    int     bits;

    if (dict_cidr_text(text, buf, sizeof(buf), &rest) < 0
	|| (*rest != 0 && *rest != '/') || dict_cidr_pton(buf, net) < 0) {
	str_printf(err, "bad net/mask pattern: \"%s\"", text);
	return -1;
    }
    bits = net->prefix;
    if (*rest == '/') {
	errno = 0;
	prefix = strtol(rest + 1, &end, 10);
	if (rest[1] == 0 || !isdigit((unsigned char) rest[1]) || *end != 0
	    || errno || prefix < 0 || prefix > bits) {
	    str_printf(err, "bad net/mask pattern: \"%s\"", text);
	    return -1;
	}
	net->prefix = (int) prefix;
    }
    /* Host bits must be clear, as Postfix insists. */
    for (int i = net->prefix; i < bits; i++) {
	if (net->addr[i / 8] & (0x80 >> (i % 8))) {
	    DICT_CIDR_NET fixed = *net;
	    char    out[INET6_ADDRSTRLEN];

	    for (int j = net->prefix; j < bits; j++)
		fixed.addr[j / 8] &= (unsigned char) ~(0x80 >> (j % 8));
	    inet_ntop(net->family, fixed.addr, out, sizeof(out));
	    str_printf(err, "non-null host address bits in \"%s\", perhaps you "
		       "should use \"%s/%d\" instead", text, out, net->prefix);
	    return -1;
	}
    }
    return 0;
}

int     dict_cidr_match(const DICT_CIDR_NET *net, const DICT_CIDR_NET *addr)
{
    int     full = net->prefix / 8, rest = net->prefix % 8;

    if (net->family != addr->family)
	return 0;
    if (memcmp(net->addr, addr->addr, (size_t) full) != 0)
	return 0;
    if (rest) {
	unsigned char mask = (unsigned char) (0xff << (8 - rest));

	if ((net->addr[full] & mask) != (addr->addr[full] & mask))
	    return 0;
    }
    return 1;
}

/* The cidr: table. */

typedef struct DICT_CIDR_RULE {
    int     kind;
#define DICT_CIDR_MATCH	0
#define DICT_CIDR_IF	1
    int     negate;
    size_t  skip_to;			/* IF: the rule after its block */
    DICT_CIDR_NET net;			/* family -1: IF whose pattern failed */
    char   *result;
} DICT_CIDR_RULE;

typedef struct DICT_CIDR_TABLE {
    DICT_CIDR_RULE *rules;
    size_t  count;
    size_t  cap;			/* while loading */
} DICT_CIDR_TABLE;

static void dict_cidr_free(void *table)
{
    DICT_CIDR_TABLE *t = table;

    for (size_t n = 0; n < t->count; n++)
	mem_free(t->rules[n].result);
    mem_free(t->rules);
    mem_free(t);
}

/* dict_cidr_rule - one rule line, or the pattern after "if" (dict_text.h) */

static int dict_cidr_rule(char *p, int is_if, const char *path, int lineno, void *ctx)
{
    DICT_CIDR_TABLE *t = ctx;
    STR     why = STR_INIT;
    char   *pattern, *result, *end;
    int     negate = 0, bad;
    DICT_CIDR_NET net;
    DICT_CIDR_RULE *rule;

    pattern = p;
    p += strcspn(p, " \t\r\n\v\f");
    if (*p)
	*p++ = 0;
    while (isspace((unsigned char) *p))
	p++;
    result = p;
    end = result + strlen(result);
    while (end > result && isspace((unsigned char) end[-1]))
	*--end = 0;
    if (is_if && *result)
	msg_warn("cidr map %s, line %d: ignoring extra text after IF", path, lineno);
    if (*pattern == '!') {
	negate = 1;
	pattern++;
    }
    bad = dict_cidr_parse_net(pattern, &net, &why) < 0;
    if (bad)
	msg_warn("cidr map %s, line %d: %s: skipping this rule",
		 path, lineno, STR_DATA(&why));
    str_release(&why);
    if (bad) {
	if (!is_if)
	    return 0;
	net.family = -1;			/* still opens a block */
    } else if (!is_if && *result == 0) {
	msg_warn("cidr map %s, line %d: expected format: network/prefix "
		 "whitespace result: skipping this rule", path, lineno);
	return 0;
    }
    if (t->count == t->cap) {
	t->cap = t->cap ? t->cap * 2 : 16;
	t->rules = mem_realloc(t->rules, t->cap * sizeof(*t->rules));
    }
    rule = t->rules + t->count++;
    memset(rule, 0, sizeof(*rule));
    rule->kind = is_if ? DICT_CIDR_IF : DICT_CIDR_MATCH;
    rule->negate = negate;
    rule->net = net;
    if (!is_if)
	rule->result = mem_strdup(result);
    return 1;
}

static void dict_cidr_endif(size_t if_rule, size_t next_rule, void *ctx)
{
    DICT_CIDR_TABLE *t = ctx;

    t->rules[if_rule].skip_to = next_rule;
}

static const DICT_TEXT_RULE_OPS dict_cidr_ops = {"cidr", dict_cidr_rule, dict_cidr_endif};

static void *dict_cidr_load(const char *path, int fd, int flags, STR *err)
{
    DICT_CIDR_TABLE *t = MEM_NEW(DICT_CIDR_TABLE);

    (void) flags;
    if (dict_text_rules(fd, path, &dict_cidr_ops, t, err) < 0) {
	dict_cidr_free(t);
	return NULL;
    }
    return t;
}

static int dict_cidr_lookup(void *table, const char *key, STR *result)
{
    DICT_CIDR_TABLE *t = table;
    DICT_CIDR_NET addr;
    size_t  n = 0;

    if (dict_cidr_parse_addr(key, &addr) < 0)
	return DICT_NOTFOUND;
    while (n < t->count) {
	const DICT_CIDR_RULE *r = t->rules + n;

	switch (r->kind) {
	case DICT_CIDR_IF:
	    if (r->net.family < 0 || dict_cidr_match(&r->net, &addr) == r->negate)
		n = r->skip_to;
	    else
		n++;
	    break;
	default:
	    if (dict_cidr_match(&r->net, &addr) != r->negate) {
		str_puts(result, r->result);
		return DICT_FOUND;
	    }
	    n++;
	}
    }
    return DICT_NOTFOUND;
}

const DICT_TYPE dict_type_cidr = {
    "cidr", DICT_TYPE_FILE, "",
    dict_cidr_load, NULL, dict_cidr_lookup, NULL, dict_cidr_free,
};
