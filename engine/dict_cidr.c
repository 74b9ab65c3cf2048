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
#include <unistd.h>

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
#define DICT_CIDR_ENDIF	2
    int     negate;
    int     skip_to;			/* IF: index after the matching ENDIF */
    DICT_CIDR_NET net;
    char   *result;
} DICT_CIDR_RULE;

typedef struct DICT_CIDR_TABLE {
    DICT_CIDR_RULE *rules;
    size_t  count;
} DICT_CIDR_TABLE;

static DICT_CIDR_RULE *dict_cidr_push(DICT_CIDR_TABLE *t, size_t *cap)
{
    if (t->count == *cap) {
	*cap = *cap ? *cap * 2 : 16;
	t->rules = mem_realloc(t->rules, *cap * sizeof(*t->rules));
    }
    memset(t->rules + t->count, 0, sizeof(*t->rules));
    return t->rules + t->count++;
}

static void dict_cidr_free(void *table)
{
    DICT_CIDR_TABLE *t = table;

    for (size_t n = 0; n < t->count; n++)
	mem_free(t->rules[n].result);
    mem_free(t->rules);
    mem_free(t);
}

static void *dict_cidr_load(const char *path, int fd, int flags, STR *err)
{
    DICT_CIDR_TABLE *t;
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
    t = MEM_NEW(DICT_CIDR_TABLE);
    dict_text_init(&text, fp, path);
    while ((got = dict_text_next(&text, &line)) > 0) {
	char   *p = line.data, *pattern, *result, *end;
	int     negate = 0, kind = DICT_CIDR_MATCH;
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

	if (strcasecmp(pattern, "endif") == 0) {
	    if (*result)
		msg_warn("cidr map %s, line %d: ignoring extra text after ENDIF",
			 path, text.lineno);
	    if (depth == 0) {
		msg_warn("cidr map %s, line %d: ignoring ENDIF without matching IF",
			 path, text.lineno);
		continue;
	    }
	    rule = dict_cidr_push(t, &cap);
	    rule->kind = DICT_CIDR_ENDIF;
	    t->rules[stack[--depth]].skip_to = t->count;
	    continue;
	}
	if (strcasecmp(pattern, "if") == 0) {
	    kind = DICT_CIDR_IF;
	    pattern = result;
	    result += strcspn(result, " \t\r\n\v\f");
	    if (*result) {
		*result++ = 0;
		while (isspace((unsigned char) *result))
		    result++;
	    }
	    if (*result)
		msg_warn("cidr map %s, line %d: ignoring extra text after IF",
			 path, text.lineno);
	}
	if (*pattern == '!') {
	    negate = 1;
	    pattern++;
	}
	str_reset(&why);
	if (dict_cidr_parse_net(pattern, &net, &why) < 0) {
	    msg_warn("cidr map %s, line %d: %s: skipping this rule",
		     path, text.lineno, STR_DATA(&why));
	    if (kind == DICT_CIDR_IF) {		/* keep IF/ENDIF balanced */
		net.family = -1;
	    } else {
		continue;
	    }
	} else if (kind == DICT_CIDR_MATCH && *result == 0) {
	    msg_warn("cidr map %s, line %d: expected format: network/prefix "
		     "whitespace result: skipping this rule", path, text.lineno);
	    continue;
	}
	rule = dict_cidr_push(t, &cap);
	rule->kind = kind;
	rule->negate = negate;
	rule->net = net;
	if (kind == DICT_CIDR_MATCH)
	    rule->result = mem_strdup(result);
	if (kind == DICT_CIDR_IF) {
	    if (depth == stack_cap) {
		stack_cap = stack_cap ? stack_cap * 2 : 8;
		stack = mem_realloc(stack, stack_cap * sizeof(*stack));
	    }
	    stack[depth++] = t->count - 1;
	}
    }
    if (depth > 0) {
	msg_warn("cidr map %s, line %d: IF has no matching ENDIF", path, text.lineno);
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
	dict_cidr_free(t);
	return NULL;
    }
    fclose(fp);
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
	case DICT_CIDR_ENDIF:
	    n++;
	    break;
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
