/*
 * rewrite.c - trivial-rewrite: canonical addresses and recipient
 * resolution (rewrite.h).
 *
 * Addresses are handled in internal form (the local part unquoted), as
 * Postfix's resolver does with resolve_dequoted=yes: routing operators
 * (@ % !) inside a quoted local part are seen, so "user@remote"@ourdomain
 * cannot be used to relay.
 *
 * The resolve cache is direct-mapped (a new entry evicts the one in its
 * slot), so its memory is bounded by cache_size; slots are guarded by
 * striped mutexes. An entry is valid only for the generation it was made
 * in: rewrite_invalidate() and any reload of transport_maps change it.
 *
 * Threading: see rewrite.h. Diagnostics: table failures are msg_warn()ed
 * and returned as RESOLVE_FLAG_FAIL; a resolver loop that does not end
 * is cut and warned about.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "engine/matchlist.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/config.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "stages/rewrite.h"
#include "stages/rewrite_maps.h"

#define REWRITE_CACHE_LOCKS	64
#define REWRITE_REFRESH_NS	TIME_NS_PER_SEC

typedef struct REWRITE_CACHE_ENT {
    uint64_t hash;
    unsigned long gen;
    char   *key;			/* NULL: empty slot */
    char   *transport;
    char   *nexthop;
    char   *recipient;
    int     flags;
} REWRITE_CACHE_ENT;

struct REWRITE {
    REWRITE_CONFIG cfg;
    MATCH_LIST *mydest;
    MATCH_LIST *relay;
    MATCH_LIST *valias;
    MATCH_LIST *vmbox;
    REWRITE_MAPS *transport;
    char  **literals;			/* our addresses, for user@[addr] */
    size_t  nliterals;
    unsigned long generation;		/* atomic */
    int64_t next_refresh;		/* atomic: when to check the tables */
    REWRITE_CACHE_ENT *cache;
    size_t  cache_size;
    pthread_mutex_t locks[REWRITE_CACHE_LOCKS];
};

/* Configuration. */

void    rewrite_config_defaults(REWRITE_CONFIG *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->myhostname = "localhost.localdomain";
    cfg->mydomain = "localdomain";
    cfg->myorigin = "localhost.localdomain";
    cfg->mydestination = "localhost.localdomain, localhost";
    cfg->local_literals = "127.0.0.1 ::1";
    cfg->relayhost = "";
    cfg->relay_domains = "";
    cfg->virtual_alias_domains = "";
    cfg->virtual_mailbox_domains = "";
    cfg->transport_maps = "";
    cfg->local_transport = "local:localhost.localdomain";
    cfg->virtual_transport = "virtual";
    cfg->relay_transport = "relay";
    cfg->default_transport = "smtp";
    cfg->empty_address_recipient = "MAILER-DAEMON";
    cfg->recipient_delimiter = "";
    cfg->append_at_myorigin = true;
    cfg->append_dot_mydomain = false;
    cfg->swap_bangpath = true;
    cfg->allow_percent_hack = true;
    cfg->transport_parent_match = false;
    cfg->cache_size = 4096;
}


void    rewrite_config_from_params(REWRITE_CONFIG *cfg)
{
    const char *ifaces;

    rewrite_config_defaults(cfg);
    cfg->myhostname = param_str(P_MYHOSTNAME);
    cfg->mydomain = param_str(P_MYDOMAIN);
    cfg->myorigin = param_str(P_MYORIGIN);
    cfg->mydestination = param_str(P_MYDESTINATION);
    cfg->relayhost = param_str(P_RELAYHOST);
    cfg->relay_domains = param_str(P_RELAY_DOMAINS);
    cfg->virtual_alias_domains = param_str(P_VIRTUAL_ALIAS_DOMAINS);
    cfg->virtual_mailbox_domains = param_str(P_VIRTUAL_MAILBOX_DOMAINS);
    cfg->transport_maps = param_str(P_TRANSPORT_MAPS);
    cfg->local_transport = param_str(P_LOCAL_TRANSPORT);
    cfg->virtual_transport = param_str(P_VIRTUAL_TRANSPORT);
    cfg->relay_transport = param_str(P_RELAY_TRANSPORT);
    cfg->default_transport = param_str(P_DEFAULT_TRANSPORT);
    cfg->empty_address_recipient = param_str(P_EMPTY_ADDRESS_RECIPIENT);
    cfg->recipient_delimiter = param_str(P_RECIPIENT_DELIMITER);
    cfg->append_at_myorigin = param_bool(P_APPEND_AT_MYORIGIN);
    cfg->append_dot_mydomain = param_bool(P_APPEND_DOT_MYDOMAIN);
    cfg->swap_bangpath = param_bool(P_SWAP_BANGPATH);
    cfg->allow_percent_hack = param_bool(P_ALLOW_PERCENT_HACK);
    cfg->transport_parent_match =
	config_list_has(param_str(P_PARENT_DOMAIN_MATCHES_SUBDOMAINS),
			 "transport_maps");
    cfg->cache_size = (int) param_int(P_RESOLVE_CACHE_SIZE);

    /* Our own address literals: inet_interfaces when it names addresses;
     * with "all" or "loopback-only", the loopback addresses. */
    ifaces = param_str(P_INET_INTERFACES);
    if (ifaces == NULL || config_list_has(ifaces, "all")
	|| config_list_has(ifaces, "loopback-only"))
	cfg->local_literals = "127.0.0.1 ::1";
    else
	cfg->local_literals = ifaces;
}

static MATCH_LIST *rewrite_domain_list(const char *name, const char *spec,
				               STR *err, int *failed)
{
    MATCH_LIST *list;

    if (spec == NULL || spec[strspn(spec, ", \t\r\n")] == 0)
	return NULL;
    if ((list = match_list_domains(name, spec, err)) == NULL)
	*failed = 1;
    return list;
}

REWRITE *rewrite_create(const REWRITE_CONFIG *cfg, STR *err)
{
    REWRITE *rw = MEM_NEW(REWRITE);
    int     failed = 0;

    rw->cfg = *cfg;
    rw->mydest = rewrite_domain_list("mydestination", cfg->mydestination, err, &failed);
    if (!failed)
	rw->relay = rewrite_domain_list("relay_domains", cfg->relay_domains, err, &failed);
    if (!failed)
	rw->valias = rewrite_domain_list("virtual_alias_domains",
					 cfg->virtual_alias_domains, err, &failed);
    if (!failed)
	rw->vmbox = rewrite_domain_list("virtual_mailbox_domains",
					cfg->virtual_mailbox_domains, err, &failed);
    if (!failed
	&& (rw->transport = rewrite_maps_open("transport_maps", cfg->transport_maps,
					      err)) == NULL)
	failed = 1;
    if (failed) {
	rewrite_free(rw);
	return NULL;
    }
    for (const char *p = cfg->local_literals; p && *p;) {
	size_t  len;

	p += strspn(p, ", \t\r\n");
	if ((len = strcspn(p, ", \t\r\n")) == 0)
	    break;
	rw->literals = mem_realloc(rw->literals, (rw->nliterals + 1) * sizeof(char *));
	rw->literals[rw->nliterals++] = mem_strndup(p, len);
	p += len;
    }
    rw->cache_size = cfg->cache_size > 0 ? (size_t) cfg->cache_size : 0;
    if (rw->cache_size)
	rw->cache = mem_calloc(rw->cache_size, sizeof(*rw->cache));
    for (int i = 0; i < REWRITE_CACHE_LOCKS; i++)
	pthread_mutex_init(&rw->locks[i], NULL);
    return rw;
}

static void rewrite_cache_clear_ent(REWRITE_CACHE_ENT *e)
{
    mem_free(e->key);
    mem_free(e->transport);
    mem_free(e->nexthop);
    mem_free(e->recipient);
    memset(e, 0, sizeof(*e));
}

void    rewrite_free(REWRITE *rw)
{
    if (rw == NULL)
	return;
    if (rw->mydest)
	match_list_free(rw->mydest);
    if (rw->relay)
	match_list_free(rw->relay);
    if (rw->valias)
	match_list_free(rw->valias);
    if (rw->vmbox)
	match_list_free(rw->vmbox);
    rewrite_maps_free(rw->transport);
    for (size_t i = 0; i < rw->nliterals; i++)
	mem_free(rw->literals[i]);
    mem_free(rw->literals);
    if (rw->cache) {
	for (size_t i = 0; i < rw->cache_size; i++)
	    rewrite_cache_clear_ent(rw->cache + i);
	mem_free(rw->cache);
	for (int i = 0; i < REWRITE_CACHE_LOCKS; i++)
	    pthread_mutex_destroy(&rw->locks[i]);
    }
    mem_free(rw);
}

const REWRITE_CONFIG *rewrite_config(const REWRITE *rw)
{
    return &rw->cfg;
}

/* Canonical form. */

void    rewrite_address(const REWRITE *rw, const char *addr, STR *out)
{
    const REWRITE_CONFIG *cfg = &rw->cfg;
    const char *at;
    char   *colon;
    size_t  len;

    str_reset(out);
    if (*addr == 0 || strcmp(addr, "@") == 0)
	return;				/* the null address; a lone @ too */
    str_puts(out, addr);

    /* Strip a source route: @a,@b:user@c -> user@c. */
    if (out->data[0] == '@' && (colon = strchr(out->data, ':')) != NULL
	&& colon[1] != 0) {
	len = strlen(colon + 1);
	memmove(out->data, colon + 1, len + 1);
	out->len = len;
    }

    /* Forms without @: site!user, user%domain, user. */
    if (strrchr(STR_DATA(out), '@') == NULL) {
	char   *bang, *pct;

	if (cfg->swap_bangpath && (bang = strchr(out->data, '!')) != NULL) {
	    STR     tmp = STR_INIT;

	    str_puts(&tmp, bang + 1);
	    str_putc(&tmp, '@');
	    str_append(&tmp, out->data, (size_t) (bang - out->data));
	    str_reset(out);
	    str_append(out, STR_DATA(&tmp), STR_LEN(&tmp));
	    str_release(&tmp);
	} else if (cfg->allow_percent_hack
		   && (pct = strrchr(out->data, '%')) != NULL) {
	    *pct = '@';
	} else if (cfg->append_at_myorigin && cfg->myorigin && *cfg->myorigin) {
	    str_putc(out, '@');
	    str_puts(out, cfg->myorigin);
	}
    }

    /* Append .mydomain to a domain without a dot (not to a literal, not
     * to a broken form ending in @). */
    at = strrchr(STR_DATA(out), '@');
    if (cfg->append_dot_mydomain && cfg->mydomain && *cfg->mydomain
	&& at != NULL && at[1] != 0 && at[1] != '['
	&& strchr(at + 1, '.') == NULL) {
	str_putc(out, '.');
	str_puts(out, cfg->mydomain);
    }

    /* Strip one trailing dot, but not from "..", "@." or a lone ".". */
    len = STR_LEN(out);
    if (len >= 2 && out->data[len - 1] == '.' && out->data[len - 2] != '.'
	&& out->data[len - 2] != '@')
	str_truncate(out, len - 1);
}

/* Domains. */

static int rewrite_literal_is_local(const REWRITE *rw, const char *domain)
{
    const char *p = domain + 1;
    size_t  len = strlen(p);

    if (len == 0 || p[len - 1] != ']')
	return 0;
    len--;
    if (len > 5 && strncasecmp(p, "IPv6:", 5) == 0)
	p += 5, len -= 5;
    for (size_t i = 0; i < rw->nliterals; i++) {
	const char *lit = rw->literals[i];
	size_t  llen = strlen(lit);

	if (llen > 2 && lit[0] == '[' && lit[llen - 1] == ']')
	    lit++, llen -= 2;
	if (llen == len && strncasecmp(lit, p, len) == 0)
	    return 1;
    }
    return 0;
}

static int rewrite_list_match(MATCH_LIST *list, const char *domain)
{
    char   *low;
    int     rc;

    if (list == NULL)
	return 0;
    low = mem_strdup(domain);
    for (char *cp = low; *cp; cp++)
	*cp = (char) tolower((unsigned char) *cp);
    rc = match_list_match(list, low);
    mem_free(low);
    return rc;
}

int     rewrite_domain_is_local(const REWRITE *rw, const char *domain)
{
    if (*domain == '[')
	return rewrite_literal_is_local(rw, domain);
    return rewrite_list_match(rw->mydest, domain);
}

/* rewrite_valid_domain - hostname or address literal syntax */

static int rewrite_valid_domain(const char *domain)
{
    size_t  len = strlen(domain), label = 0;

    if (*domain == '[') {
	char    buf[INET6_ADDRSTRLEN + 8];
	unsigned char bin[16];
	const char *p = domain + 1;

	if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof(buf))
	    return 0;
	memcpy(buf, p, len - 2);
	buf[len - 2] = 0;
	if (strncasecmp(buf, "IPv6:", 5) == 0)
	    return inet_pton(AF_INET6, buf + 5, bin) == 1;
	return inet_pton(AF_INET, buf, bin) == 1;
    }
    if (len == 0 || len > 255)
	return 0;
    for (size_t i = 0; i <= len; i++) {
	unsigned char ch = (unsigned char) domain[i];

	if (ch == '.' || ch == 0) {
	    if (label == 0 || label > 63 || domain[i - 1] == '-')
		return 0;
	    label = 0;
	} else if (isalnum(ch) || ch == '_' || ch >= 0x80) {
	    label++;
	} else if (ch == '-') {
	    if (label == 0)
		return 0;
	    label++;
	} else {
	    return 0;
	}
    }
    return 1;
}

void    resolved_init(RESOLVED *res)
{
    str_init(&res->transport);
    str_init(&res->nexthop);
    str_init(&res->recipient);
    res->flags = 0;
}

void    resolved_release(RESOLVED *res)
{
    str_release(&res->transport);
    str_release(&res->nexthop);
    str_release(&res->recipient);
}

static void rewrite_set_lower(STR *s, const char *text)
{
    str_reset(s);
    for (const char *cp = text; *cp; cp++)
	str_putc(s, tolower((unsigned char) *cp));
}

/* rewrite_transport_entry - apply one transport(5) value */

static void rewrite_transport_entry(const char *value, const char *rcpt_domain,
				            RESOLVED *out)
{
    const char *colon = strchr(value, ':');
    size_t  tlen = colon ? (size_t) (colon - value) : strlen(value);
    const char *hop = colon ? colon + 1 : "";

    if (tlen == 0) {
	/* ":nexthop" keeps the transport; ":" changes nothing. */
	if (*hop)
	    str_set(&out->nexthop, hop);
	return;
    }
    /* "transport[:nexthop]": a new transport; without a nexthop, the
     * nexthop goes back to the recipient domain (error: gets a reason). */
    str_reset(&out->transport);
    str_append(&out->transport, value, tlen);
    if (*hop)
	str_set(&out->nexthop, hop);
    else if (strcmp(STR_DATA(&out->transport), "error") != 0
	     && strcmp(STR_DATA(&out->transport), "retry") != 0)
	rewrite_set_lower(&out->nexthop, rcpt_domain);
    else
	str_set(&out->nexthop, "Address is undeliverable");
}

/* rewrite_transport_lookup - transport_maps: address, domain, parents, * */

static int rewrite_transport_lookup(REWRITE *rw, const char *addr,
				            const char *rcpt_domain, RESOLVED *out)
{
    const REWRITE_CONFIG *cfg = &rw->cfg;
    const char *at = strrchr(addr, '@');
    size_t  llen = at ? (size_t) (at - addr) : strlen(addr);
    STR     value = STR_INIT, key = STR_INIT;
    int     rc;

    /* user+ext@domain (every table), then user@domain */
    rc = rewrite_maps_find(rw->transport, addr, 0, &value);
    if (rc == DICT_NOTFOUND && at && cfg->recipient_delimiter
	&& *cfg->recipient_delimiter) {
	for (size_t i = 1; i < llen; i++) {
	    if (strchr(cfg->recipient_delimiter, addr[i])) {
		str_append(&key, addr, i);
		str_puts(&key, at);
		rc = rewrite_maps_find(rw->transport, STR_DATA(&key), 1, &value);
		break;
	    }
	}
    }
    /* domain, then its parents: ".parent" or "parent" */
    for (const char *name = rcpt_domain; rc == DICT_NOTFOUND && name;) {
	const char *next;

	rc = rewrite_maps_find(rw->transport, name, 1, &value);
	if (rc != DICT_NOTFOUND)
	    break;
	if ((next = strchr(name + 1, '.')) == NULL || next[1] == 0)
	    break;
	name = cfg->transport_parent_match ? next + 1 : next;
    }
    if (rc == DICT_NOTFOUND)
	rc = rewrite_maps_find(rw->transport, "*", 0, &value);
    if (rc == DICT_FOUND)
	rewrite_transport_entry(STR_DATA(&value), rcpt_domain, out);
    str_release(&value);
    str_release(&key);
    return rc;
}

/* rewrite_resolve_uncached - the resolver proper */

static int rewrite_resolve_uncached(REWRITE *rw, const char *addr, RESOLVED *out)
{
    const REWRITE_CONFIG *cfg = &rw->cfg;
    STR     cur = STR_INIT, tmp = STR_INIT, saved = STR_INIT;
    int     have_saved = 0, remote = 0, loc;
    size_t  loop_max = strlen(addr) + 100, count;
    const char *rcpt_domain, *xport, *blame, *colon;

    out->flags = 0;
    str_reset(&out->transport);
    str_reset(&out->nexthop);
    str_puts(&cur, addr);

    /*
     * Strip every instance of a local domain; after each, look for routing
     * operators that were hiding behind it (user%remote@local).
     */
    for (count = 0;; count++) {
	size_t  len = STR_LEN(&cur);
	char   *at;

	if (count > loop_max) {
	    msg_warn("resolve_addr: <%s>: giving up after %zu iterations",
		     addr, count);
	    remote = strrchr(STR_DATA(&cur), '@') != NULL;
	    break;
	}
	if (len >= 2 && cur.data[len - 1] == '.' && cur.data[len - 2] != '.'
	    && strchr(cur.data, '@') != NULL)
	    str_truncate(&cur, --len);
	if (len >= 1 && cur.data[len - 1] == '@')
	    str_truncate(&cur, --len);
	if ((at = strrchr(STR_DATA(&cur), '@')) != NULL) {
	    if ((loc = rewrite_domain_is_local(rw, at + 1)) < 0) {
		out->flags |= RESOLVE_FLAG_FAIL;
		goto done;
	    }
	    if (loc == 0) {
		remote = 1;
		break;
	    }
	    str_set(&saved, at + 1);
	    have_saved = 1;
	    str_truncate(&cur, (size_t) (at - cur.data));
	}
	if (strchr(STR_DATA(&cur), '@')
	    || (cfg->swap_bangpath && strchr(STR_DATA(&cur), '!'))
	    || (cfg->allow_percent_hack && strchr(STR_DATA(&cur), '%'))) {
	    rewrite_address(rw, STR_DATA(&cur), &tmp);
	    str_set(&cur, STR_DATA(&tmp));
	    continue;
	}
	/* An empty local part is the mailer-daemon. */
	if (STR_LEN(&cur) == 0)
	    str_set(&cur, cfg->empty_address_recipient);
	break;
    }
    if (!remote) {
	str_putc(&cur, '@');
	str_puts(&cur, have_saved ? STR_DATA(&saved) : cfg->myhostname);
    }
    str_set(&out->recipient, STR_DATA(&cur));
    rcpt_domain = strrchr(STR_DATA(&out->recipient), '@') + 1;
    if (!rewrite_valid_domain(rcpt_domain))
	out->flags |= RESOLVE_FLAG_ERROR;
    if (STR_DATA(&out->recipient) + strcspn(STR_DATA(&out->recipient), "@!%")
	!= rcpt_domain - 1)
	out->flags |= RESOLVE_FLAG_ROUTED;

    if (remote) {
	if ((loc = rewrite_list_match(rw->valias, rcpt_domain)) > 0) {
	    str_set(&out->transport, "error");
	    str_set(&out->nexthop, "5.1.1 User unknown in virtual alias table");
	    out->flags |= RESOLVE_CLASS_ALIAS;
	    blame = NULL;
	} else if (loc < 0) {
	    msg_warn("virtual_alias_domains lookup failure");
	    out->flags |= RESOLVE_FLAG_FAIL;
	    goto done;
	} else if ((loc = rewrite_list_match(rw->vmbox, rcpt_domain)) > 0) {
	    str_set(&out->transport, cfg->virtual_transport);
	    rewrite_set_lower(&out->nexthop, rcpt_domain);
	    blame = "virtual_transport";
	    out->flags |= RESOLVE_CLASS_VIRTUAL;
	} else if (loc < 0) {
	    msg_warn("virtual_mailbox_domains lookup failure");
	    out->flags |= RESOLVE_FLAG_FAIL;
	    goto done;
	} else {
	    if ((loc = rewrite_list_match(rw->relay, rcpt_domain)) > 0) {
		str_set(&out->transport, cfg->relay_transport);
		blame = "relay_transport";
		out->flags |= RESOLVE_CLASS_RELAY;
	    } else if (loc < 0) {
		msg_warn("relay_domains lookup failure");
		out->flags |= RESOLVE_FLAG_FAIL;
		goto done;
	    } else {
		str_set(&out->transport, cfg->default_transport);
		blame = "default_transport";
		out->flags |= RESOLVE_CLASS_DEFAULT;
	    }
	    /* Off-host delivery: relayhost overrides the domain. */
	    if (cfg->relayhost && *cfg->relayhost)
		str_set(&out->nexthop, cfg->relayhost);
	    else
		rewrite_set_lower(&out->nexthop, rcpt_domain);
	}
    } else {
	str_set(&out->transport, cfg->local_transport);
	rewrite_set_lower(&out->nexthop, rcpt_domain);
	blame = "local_transport";
	out->flags |= RESOLVE_CLASS_LOCAL;
    }

    /* "transport:nexthop" in main.cf sets the nexthop. */
    xport = STR_DATA(&out->transport);
    if (blame && (colon = strchr(xport, ':')) != NULL) {
	if (colon[1])
	    str_set(&out->nexthop, colon + 1);
	str_truncate(&out->transport, (size_t) (colon - xport));
    }
    if (blame && STR_LEN(&out->transport) == 0) {
	msg_warn("parameter %s: null transport is not allowed", blame);
	out->flags |= RESOLVE_FLAG_FAIL;
	goto done;
    }

    /* transport_maps override anything but the virtual alias class. */
    if (!rewrite_maps_empty(rw->transport) && !(out->flags & RESOLVE_CLASS_ALIAS)) {
	if (rewrite_transport_lookup(rw, STR_DATA(&out->recipient), rcpt_domain,
				     out) == DICT_ERR) {
	    msg_warn("transport_maps lookup failure");
	    out->flags |= RESOLVE_FLAG_FAIL;
	}
    }

done:
    str_release(&cur);
    str_release(&tmp);
    str_release(&saved);
    return (out->flags & RESOLVE_FLAG_FAIL) ? -1 : 0;
}

/* The cache. */

static uint64_t rewrite_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

    for (const unsigned char *p = (const unsigned char *) key; *p; p++)
	h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static unsigned long rewrite_generation(REWRITE *rw)
{
    int64_t now = time_mono_ns();
    int64_t next = __atomic_load_n(&rw->next_refresh, __ATOMIC_ACQUIRE);

    /* Cache hits do no lookups, so the tables would never see their
     * files change: look at them once a second from here. */
    if (now >= next && !rewrite_maps_empty(rw->transport)
	&& __atomic_compare_exchange_n(&rw->next_refresh, &next,
				       now + REWRITE_REFRESH_NS, 0,
				       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
	rewrite_maps_refresh(rw->transport);
    return __atomic_load_n(&rw->generation, __ATOMIC_ACQUIRE) * 2654435761UL
	+ rewrite_maps_serial(rw->transport);
}

void    rewrite_invalidate(REWRITE *rw)
{
    __atomic_add_fetch(&rw->generation, 1, __ATOMIC_ACQ_REL);
}

int     rewrite_resolve(REWRITE *rw, const char *addr, RESOLVED *out)
{
    uint64_t h;
    unsigned long gen;
    size_t  slot;
    pthread_mutex_t *lock;
    REWRITE_CACHE_ENT *e;
    int     rc;

    if (rw->cache_size == 0)
	return rewrite_resolve_uncached(rw, addr, out);
    h = rewrite_hash(addr);
    gen = rewrite_generation(rw);
    slot = (size_t) (h % rw->cache_size);
    lock = &rw->locks[slot % REWRITE_CACHE_LOCKS];
    e = rw->cache + slot;

    pthread_mutex_lock(lock);
    if (e->key && e->hash == h && e->gen == gen && strcmp(e->key, addr) == 0) {
	str_set(&out->transport, e->transport);
	str_set(&out->nexthop, e->nexthop);
	str_set(&out->recipient, e->recipient);
	out->flags = e->flags;
	pthread_mutex_unlock(lock);
	return 0;
    }
    pthread_mutex_unlock(lock);

    /* Resolve without holding the lock: lookups may be slow. */
    rc = rewrite_resolve_uncached(rw, addr, out);
    if (rc == 0) {
	pthread_mutex_lock(lock);
	rewrite_cache_clear_ent(e);
	e->hash = h;
	e->gen = gen;
	e->key = mem_strdup(addr);
	e->transport = mem_strdup(STR_DATA(&out->transport));
	e->nexthop = mem_strdup(STR_DATA(&out->nexthop));
	e->recipient = mem_strdup(STR_DATA(&out->recipient));
	e->flags = out->flags;
	pthread_mutex_unlock(lock);
    }
    return rc;
}

/* The stage's job for one message. */

int     rewrite_message(REWRITE *rw, MESSAGE *m, STR *reply)
{
    RESOLVED res;
    int     status = 0;

    resolved_init(&res);
    for (size_t i = 0; i < m->nrcpt; i++) {
	RCPT   *r = m->rcpt + i;

	if (rewrite_resolve(rw, r->address ? r->address : "", &res) < 0) {
	    str_reset(reply);
	    str_puts(reply, "451 4.3.0 Error: address resolver failure");
	    status = -1;
	    break;
	}
	if (res.flags & RESOLVE_FLAG_ERROR) {
	    str_set(&res.transport, "error");
	    str_set(&res.nexthop, "5.1.3 bad address syntax");
	}
	mem_free(r->transport);
	mem_free(r->nexthop);
	r->transport = mem_strdup(STR_DATA(&res.transport));
	r->nexthop = mem_strdup(STR_DATA(&res.nexthop));
	if (r->address == NULL || strcmp(r->address, STR_DATA(&res.recipient)) != 0) {
	    if (r->orig_rcpt == NULL && r->address)
		r->orig_rcpt = r->address;
	    else
		mem_free(r->address);
	    r->address = mem_strdup(STR_DATA(&res.recipient));
	}
    }
    resolved_release(&res);
    return status;
}
