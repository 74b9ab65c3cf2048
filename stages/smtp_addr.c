/*
 * smtp_addr.c - nexthop parsing and address lookup for the SMTP/LMTP client.
 *
 * PURPOSE
 *   smtp_addr_parse_nexthop() reads the nexthop forms Postfix accepts:
 *     smtp: "example.com" (MX lookup), "example.com:587" (MX lookup, that
 *           port), "[host]" / "[host]:port" (no MX lookup), "[ipv6:::1]",
 *           "inet:..." (same as without the prefix);
 *     lmtp: "host:port", "[host]:port", "inet:host:port" (never MX; port
 *           24 by default), "unix:/path".
 *   smtp_addr_lookup() turns it into an ordered address list: MX records
 *   sorted by preference (RFC 7505 null MX bounces), then A and AAAA per
 *   host, at most smtp_mx_address_limit addresses. smtp_host_lookup selects
 *   dns, native (getaddrinfo) or both, in that order.
 *   smtp_dns_server (Sluice extension) sends every query to one nameserver
 *   "ip" or "ip:port" (IPv4) instead of resolv.conf's: tests run a DNS
 *   server on loopback and point the client at it.
 *
 * THREADING
 *   smtp_addr_lookup() blocks (res_nquery with a private resolver state);
 *   it runs on the SMTP_RESOLVER threads, never on an I/O thread. The
 *   resolver is a mutex-protected FIFO served by a few threads; done() is
 *   called on a resolver thread.
 *
 * DIAGNOSTICS
 *   Lookup failures are results (status, dsn, why) with Postfix's wording:
 *   "Host or domain name not found. Name service error for name=x type=MX:
 *   Host not found[, try again]".
 */
#include "config.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "stages/smtp.h"

/* ------------------------------------------------------------ nexthop */

static int smtp_addr_port(const char *text, unsigned *port, STR *why)
{
    char   *end;
    unsigned long v;

    if (strcmp(text, "smtp") == 0) {
	*port = 25;
	return 0;
    }
    if (strcmp(text, "lmtp") == 0) {
	*port = 24;
	return 0;
    }
    if (strcmp(text, "submission") == 0) {
	*port = 587;
	return 0;
    }
    if (!isdigit((unsigned char) *text)) {
	str_printf(why, "bad port \"%s\"", text);
	return -1;
    }
    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno || *end || v == 0 || v > 65535) {
	str_printf(why, "bad port \"%s\"", text);
	return -1;
    }
    *port = (unsigned) v;
    return 0;
}

/* A host name (RFC 1035 letters, digits, hyphen, dot, and underscore as
 * seen in practice) or a numeric address. */
static int smtp_addr_host(const char *text, bool bracketed, SMTP_NEXTHOP *nh, STR *why)
{
    struct in6_addr a6;
    struct in_addr a4;
    size_t  len = strlen(text);
    size_t  label = 0;

    if (bracketed && strncasecmp(text, "ipv6:", 5) == 0) {
	text += 5;
	len -= 5;
	if (inet_pton(AF_INET6, text, &a6) != 1) {
	    str_printf(why, "bad IPv6 address \"%s\"", text);
	    return -1;
	}
    }
    if (len == 0 || len >= sizeof(nh->host)) {
	str_puts(why, len ? "host name too long" : "empty host name");
	return -1;
    }
    if (inet_pton(AF_INET, text, &a4) == 1 || inet_pton(AF_INET6, text, &a6) == 1) {
	if (!bracketed && strchr(text, ':')) {
	    str_printf(why, "IPv6 address \"%s\" must be in brackets", text);
	    return -1;
	}
	nh->literal = true;
	memcpy(nh->host, text, len + 1);
	return 0;
    }
    for (const char *cp = text; *cp; cp++) {
	if (*cp == '.') {
	    if (label == 0) {
		str_printf(why, "bad host name \"%s\"", text);
		return -1;
	    }
	    label = 0;
	    continue;
	}
	if (!isalnum((unsigned char) *cp) && *cp != '-' && *cp != '_') {
	    str_printf(why, "bad character in host name \"%s\"", text);
	    return -1;
	}
	if (++label > 63) {
	    str_printf(why, "label too long in host name \"%s\"", text);
	    return -1;
	}
    }
    memcpy(nh->host, text, len + 1);
    return 0;
}

int     smtp_addr_parse_nexthop(const char *text, bool lmtp, SMTP_NEXTHOP *nh, STR *why)
{
    char    buf[512];
    char   *host;
    char   *port = NULL;
    bool    bracketed = false;

    memset(nh, 0, sizeof(*nh));
    nh->port = lmtp ? 24 : 25;
    if (text == NULL || *text == 0) {
	str_puts(why, "empty nexthop");
	return -1;
    }
    if (strlen(text) >= sizeof(buf)) {
	str_puts(why, "nexthop too long");
	return -1;
    }
    for (const char *cp = text; *cp; cp++)
	if ((unsigned char) *cp <= ' ' || *cp == 0x7f) {
	    str_puts(why, "nexthop contains white space or a control character");
	    return -1;
	}
    if (strncmp(text, "unix:", 5) == 0) {
	if (!lmtp) {
	    str_printf(why, "unix: nexthop \"%s\" is for lmtp only", text);
	    return -1;
	}
	if (text[5] != '/' || strlen(text + 5) >= sizeof(nh->path)) {
	    str_printf(why, "bad unix socket path in \"%s\"", text);
	    return -1;
	}
	nh->kind = SMTP_NH_UNIX;
	snprintf(nh->path, sizeof(nh->path), "%s", text + 5);
	return 0;
    }
    if (strncmp(text, "inet:", 5) == 0)
	text += 5;
    snprintf(buf, sizeof(buf), "%s", text);
    host = buf;
    if (*host == '[') {
	char   *close = strchr(host, ']');

	if (close == NULL) {
	    str_printf(why, "missing \"]\" in nexthop \"%s\"", text);
	    return -1;
	}
	*close = 0;
	host++;
	bracketed = true;
	if (close[1] == ':')
	    port = close + 2;
	else if (close[1] != 0) {
	    str_printf(why, "garbage after \"]\" in nexthop \"%s\"", text);
	    return -1;
	}
    } else {
	char   *colon = strchr(host, ':');

	if (colon) {
	    if (strchr(colon + 1, ':')) {
		str_printf(why, "IPv6 address in nexthop \"%s\" must be in brackets", text);
		return -1;
	    }
	    *colon = 0;
	    port = colon + 1;
	}
    }
    if (port && smtp_addr_port(port, &nh->port, why) < 0)
	return -1;
    if (smtp_addr_host(host, bracketed, nh, why) < 0)
	return -1;
    nh->kind = (lmtp || bracketed || nh->literal) ? SMTP_NH_HOST : SMTP_NH_DOMAIN;
    return 0;
}

/* ------------------------------------------------------------- lookups */

static void smtp_addr_add(SMTP_LOOKUP *lk, const char *host, int pref,
			  const struct sockaddr *sa, socklen_t salen)
{
    SMTP_ADDR *a;

    if (lk->address_limit > 0 && lk->naddr >= (size_t) lk->address_limit)
	return;
    for (size_t i = 0; i < lk->naddr; i++)	/* no duplicates */
	if (lk->addr[i].salen == salen && memcmp(&lk->addr[i].sa, sa, salen) == 0)
	    return;
    lk->addr = mem_realloc(lk->addr, (lk->naddr + 1) * sizeof(*lk->addr));
    a = lk->addr + lk->naddr++;
    memset(a, 0, sizeof(*a));
    snprintf(a->host, sizeof(a->host), "%s", host);
    a->pref = pref;
    memcpy(&a->sa, sa, salen);
    a->salen = salen;
    if (sa->sa_family == AF_INET)
	inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, a->ip, sizeof(a->ip));
    else if (sa->sa_family == AF_INET6)
	inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, a->ip, sizeof(a->ip));
}

static void smtp_addr_fail(SMTP_LOOKUP *lk, enum smtp_lookup_status st, const char *dsn,
			   const char *fmt,...) __attribute__((format(printf, 4, 5)));

static void smtp_addr_fail(SMTP_LOOKUP *lk, enum smtp_lookup_status st, const char *dsn,
			   const char *fmt,...)
{
    va_list ap;

    lk->status = st;
    snprintf(lk->dsn, sizeof(lk->dsn), "%s", dsn);
    str_reset(&lk->why);
    va_start(ap, fmt);
    str_vprintf(&lk->why, fmt, ap);
    va_end(ap);
}

static int smtp_addr_res_init(struct __res_state *rs, const char *server)
{
    memset(rs, 0, sizeof(*rs));
    if (res_ninit(rs) != 0)
	return -1;
    rs->options &= ~(RES_DNSRCH | RES_DEFNAMES);
    rs->retrans = 2;
    rs->retry = 2;
    if (server && *server) {
	char    ip[64];
	const char *colon = strchr(server, ':');
	unsigned port = 53;
	struct sockaddr_in sin;

	snprintf(ip, sizeof(ip), "%.*s", (int) (colon ? (size_t) (colon - server) : strlen(server)), server);
	if (colon)
	    port = (unsigned) atoi(colon + 1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t) port);
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1 || port == 0 || port > 65535) {
	    res_nclose(rs);
	    return -1;
	}
	rs->nscount = 1;
	rs->nsaddr_list[0] = sin;
    }
    return 0;
}

/* A minimal reader for DNS answers: res_nquery is in libc, but the
 * ns_initparse() family lives in libresolv, which we do not link. */
typedef struct SMTP_DNS_RR {
    int     type;
    const unsigned char *rdata;
    int     rdlen;
} SMTP_DNS_RR;

/* Collect the answer-section records; returns their count or -1. */
static int smtp_addr_parse_answer(const unsigned char *msg, int len, SMTP_DNS_RR *rr, int max)
{
    const unsigned char *eom = msg + len;
    const unsigned char *cp = msg + 12;
    int     qd,
            an,
            n = 0;

    if (len < 12)
	return -1;
    qd = (msg[4] << 8) | msg[5];
    an = (msg[6] << 8) | msg[7];
    for (int i = 0; i < qd; i++) {
	int     skip = dn_skipname(cp, eom);

	if (skip < 0 || cp + skip + 4 > eom)
	    return -1;
	cp += skip + 4;
    }
    for (int i = 0; i < an && n < max; i++) {
	int     skip = dn_skipname(cp, eom);
	int     rdlen;

	if (skip < 0 || cp + skip + 10 > eom)
	    return -1;
	cp += skip;
	rr[n].type = (cp[0] << 8) | cp[1];
	rdlen = (cp[8] << 8) | cp[9];
	cp += 10;
	if (cp + rdlen > eom)
	    return -1;
	rr[n].rdata = cp;
	rr[n].rdlen = rdlen;
	cp += rdlen;
	n++;
    }
    return n;
}

/* One query; returns the answer length or -1 with *herr set. */
static int smtp_addr_query(struct __res_state *rs, const char *name, int type,
			   unsigned char *ans, int anslen, int *herr)
{
    int     n;

    n = res_nquery(rs, name, ns_c_in, type, ans, anslen);
    if (n < 0) {
	*herr = rs->res_h_errno;
	return -1;
    }
    *herr = 0;
    return n;
}

/* A and AAAA for one host over DNS. Returns 0 found, 1 not found (perm),
 * -1 temporary trouble; the reason goes to lk->why when nothing found. */
static int smtp_addr_dns_host(SMTP_LOOKUP *lk, struct __res_state *rs, const char *host, int pref)
{
    static const int types[] = {ns_t_a, ns_t_aaaa};
    unsigned char ans[NS_PACKETSZ * 4];
    bool    found = false;
    bool    temp = false;
    int     herr_first = 0;

    for (size_t t = 0; t < 2; t++) {
	SMTP_DNS_RR rr[64];
	int     herr;
	int     n = smtp_addr_query(rs, host, types[t], ans, sizeof(ans), &herr);
	int     nrr;

	if (n < 0) {
	    if (herr == TRY_AGAIN || herr == NO_RECOVERY || herr == NETDB_INTERNAL)
		temp = true;
	    if (t == 0)
		herr_first = herr;
	    continue;
	}
	if ((nrr = smtp_addr_parse_answer(ans, n, rr, 64)) < 0) {
	    temp = true;
	    continue;
	}
	for (int i = 0; i < nrr; i++) {
	    if (rr[i].type == ns_t_a && types[t] == ns_t_a && rr[i].rdlen == 4) {
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t) lk->nh.port)};

		memcpy(&sin.sin_addr, rr[i].rdata, 4);
		smtp_addr_add(lk, host, pref, (struct sockaddr *) &sin, sizeof(sin));
		found = true;
	    } else if (rr[i].type == ns_t_aaaa && types[t] == ns_t_aaaa && rr[i].rdlen == 16) {
		struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t) lk->nh.port)};

		memcpy(&sin6.sin6_addr, rr[i].rdata, 16);
		smtp_addr_add(lk, host, pref, (struct sockaddr *) &sin6, sizeof(sin6));
		found = true;
	    }
	}
    }
    if (found)
	return 0;
    if (temp) {
	smtp_addr_fail(lk, SMTP_LOOKUP_TEMP, "4.4.3",
		       "Host or domain name not found. Name service error for name=%s type=A: Host not found, try again",
		       host);
	return -1;
    }
    smtp_addr_fail(lk, SMTP_LOOKUP_PERM, "5.4.4",
		   herr_first == HOST_NOT_FOUND
		   ? "Host or domain name not found. Name service error for name=%s type=A: Host not found"
		   : "Host or domain name not found. Name service error for name=%s type=AAAA: Host found but no data record of requested type",
		   host);
    return 1;
}

static int smtp_addr_native_host(SMTP_LOOKUP *lk, const char *host, int pref)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    char    port[16];
    int     err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", lk->nh.port);
    err = getaddrinfo(host, port, &hints, &res);
    if (err != 0) {
	bool    temp = err == EAI_AGAIN || err == EAI_SYSTEM || err == EAI_MEMORY;

	smtp_addr_fail(lk, temp ? SMTP_LOOKUP_TEMP : SMTP_LOOKUP_PERM, temp ? "4.4.3" : "5.4.4",
		       "Host or domain name not found. Name service error for name=%s type=A: %s",
		       host, temp ? "Host not found, try again" : "Host not found");
	return temp ? -1 : 1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
	smtp_addr_add(lk, host, pref, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int smtp_addr_host_lookup(SMTP_LOOKUP *lk, struct __res_state *rs, const char *host, int pref)
{
    int     r = 1;

    if (lk->use_dns && rs) {
	r = smtp_addr_dns_host(lk, rs, host, pref);
	if (r <= 0)
	    return r;
    }
    if (lk->use_native)
	r = smtp_addr_native_host(lk, host, pref);
    return r;
}

typedef struct SMTP_MX {
    int     pref;
    char    name[NS_MAXDNAME];
} SMTP_MX;

static int smtp_addr_mx_cmp(const void *a, const void *b)
{
    return ((const SMTP_MX *) a)->pref - ((const SMTP_MX *) b)->pref;
}

static void smtp_addr_mx_lookup(SMTP_LOOKUP *lk, struct __res_state *rs)
{
    unsigned char ans[NS_PACKETSZ * 8];
    const char *domain = lk->nh.host;
    SMTP_MX *mx = NULL;
    size_t  nmx = 0;
    SMTP_DNS_RR rr[64];
    int     nrr;
    int     herr;
    int     n;
    bool    temp = false;

    n = smtp_addr_query(rs, domain, ns_t_mx, ans, sizeof(ans), &herr);
    if (n < 0) {
	if (herr == NO_DATA) {		/* no MX: the domain is the host */
	    if (smtp_addr_host_lookup(lk, rs, domain, 0) == 0)
		lk->status = SMTP_LOOKUP_OK;
	    return;
	}
	if (herr == HOST_NOT_FOUND)
	    smtp_addr_fail(lk, SMTP_LOOKUP_PERM, "5.4.4",
			   "Host or domain name not found. Name service error for name=%s type=MX: Host not found",
			   domain);
	else
	    smtp_addr_fail(lk, SMTP_LOOKUP_TEMP, "4.4.3",
			   "Host or domain name not found. Name service error for name=%s type=MX: Host not found, try again",
			   domain);
	return;
    }
    if ((nrr = smtp_addr_parse_answer(ans, n, rr, 64)) < 0) {
	smtp_addr_fail(lk, SMTP_LOOKUP_TEMP, "4.4.3",
		       "Name service error for name=%s type=MX: malformed reply", domain);
	return;
    }
    for (int i = 0; i < nrr; i++) {
	char    name[NS_MAXDNAME];

	if (rr[i].type != ns_t_mx || rr[i].rdlen < 3)
	    continue;
	if (dn_expand(ans, ans + n, rr[i].rdata + 2, name, sizeof(name)) < 0)
	    continue;
	mx = mem_realloc(mx, (nmx + 1) * sizeof(*mx));
	mx[nmx].pref = (rr[i].rdata[0] << 8) | rr[i].rdata[1];
	snprintf(mx[nmx].name, sizeof(mx[nmx].name), "%s", name);
	nmx++;
    }
    if (nmx == 0) {
	if (smtp_addr_host_lookup(lk, rs, domain, 0) == 0)
	    lk->status = SMTP_LOOKUP_OK;
	return;
    }
    qsort(mx, nmx, sizeof(*mx), smtp_addr_mx_cmp);
    if (nmx == 1 && mx[0].name[0] == 0) {	/* RFC 7505 */
	smtp_addr_fail(lk, SMTP_LOOKUP_PERM, "5.1.10",
		       "Domain %s does not accept mail (nullMX)", domain);
	mem_free(mx);
	return;
    }
    for (size_t i = 0; i < nmx; i++) {
	if (lk->address_limit > 0 && lk->naddr >= (size_t) lk->address_limit)
	    break;
	if (mx[i].name[0] == 0)
	    continue;
	if (smtp_addr_host_lookup(lk, rs, mx[i].name, mx[i].pref) < 0)
	    temp = true;
    }
    mem_free(mx);
    if (lk->naddr > 0) {
	lk->status = SMTP_LOOKUP_OK;
	str_reset(&lk->why);
    } else if (temp)
	smtp_addr_fail(lk, SMTP_LOOKUP_TEMP, "4.4.3",
		       "Host or domain name not found. Name service error for name=%s type=A: Host not found, try again",
		       domain);
    else
	smtp_addr_fail(lk, SMTP_LOOKUP_PERM, "5.4.4",
		       "no MX host for %s has a valid address record", domain);
}

void    smtp_addr_lookup(SMTP_LOOKUP *lk)
{
    struct __res_state rs;
    bool    rs_ok = false;

    lk->status = SMTP_LOOKUP_OK;
    lk->dsn[0] = 0;
    str_reset(&lk->why);
    lk->naddr = 0;

    if (lk->nh.kind == SMTP_NH_UNIX) {
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", lk->nh.path);
	smtp_addr_add(lk, lk->nh.path, 0, (struct sockaddr *) &sun, sizeof(sun));
	return;
    }
    if (lk->nh.literal) {
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, lk->nh.host, &sin->sin_addr) == 1) {
	    sin->sin_family = AF_INET;
	    sin->sin_port = htons((uint16_t) lk->nh.port);
	    smtp_addr_add(lk, lk->nh.host, 0, (struct sockaddr *) sin, sizeof(*sin));
	} else if (inet_pton(AF_INET6, lk->nh.host, &sin6->sin6_addr) == 1) {
	    sin6->sin6_family = AF_INET6;
	    sin6->sin6_port = htons((uint16_t) lk->nh.port);
	    smtp_addr_add(lk, lk->nh.host, 0, (struct sockaddr *) sin6, sizeof(*sin6));
	} else
	    smtp_addr_fail(lk, SMTP_LOOKUP_PERM, "5.4.4", "bad address literal %s", lk->nh.host);
	return;
    }
    if (lk->use_dns) {
	if (smtp_addr_res_init(&rs, lk->dns_server) < 0) {
	    smtp_addr_fail(lk, SMTP_LOOKUP_TEMP, "4.3.5",
			   "cannot initialize the resolver (dns server \"%s\")", lk->dns_server);
	    return;
	}
	rs_ok = true;
    }
    if (lk->nh.kind == SMTP_NH_DOMAIN && rs_ok)
	smtp_addr_mx_lookup(lk, &rs);
    else if (smtp_addr_host_lookup(lk, rs_ok ? &rs : NULL, lk->nh.host, 0) == 0)
	lk->status = SMTP_LOOKUP_OK;
    if (lk->naddr == 0 && lk->status == SMTP_LOOKUP_OK)
	smtp_addr_fail(lk, SMTP_LOOKUP_TEMP, "4.4.3",
		       "Host or domain name not found. Name service error for name=%s type=A: Host not found, try again",
		       lk->nh.host);
    if (rs_ok)
	res_nclose(&rs);
}

void    smtp_addr_lookup_free(SMTP_LOOKUP *lk)
{
    mem_free(lk->addr);
    lk->addr = NULL;
    lk->naddr = 0;
    str_release(&lk->why);
}

/* ------------------------------------------------------------ resolver */

struct SMTP_RESOLVER {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    SMTP_LOOKUP *head;
    SMTP_LOOKUP *tail;
    bool    stop;
    int     nthreads;
    pthread_t *threads;
};

static void *smtp_resolver_main(void *arg)
{
    SMTP_RESOLVER *r = arg;

    msg_service_set("smtp");
    for (;;) {
	SMTP_LOOKUP *lk;

	pthread_mutex_lock(&r->lock);
	while (r->head == NULL && !r->stop)
	    pthread_cond_wait(&r->cond, &r->lock);
	if (r->head == NULL) {
	    pthread_mutex_unlock(&r->lock);
	    return NULL;
	}
	lk = r->head;
	r->head = lk->next;
	if (r->head == NULL)
	    r->tail = NULL;
	pthread_mutex_unlock(&r->lock);
	lk->next = NULL;
	smtp_addr_lookup(lk);
	lk->done(lk);
    }
}

SMTP_RESOLVER *smtp_resolver_create(int nthreads)
{
    SMTP_RESOLVER *r = MEM_NEW(SMTP_RESOLVER);

    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->nthreads = nthreads > 0 ? nthreads : 1;
    r->threads = mem_calloc((size_t) r->nthreads, sizeof(pthread_t));
    for (int i = 0; i < r->nthreads; i++)
	if (pthread_create(r->threads + i, NULL, smtp_resolver_main, r) != 0)
	    msg_fatal("smtp resolver: pthread_create: %m");
    return r;
}

void    smtp_resolver_submit(SMTP_RESOLVER *r, SMTP_LOOKUP *lk)
{
    lk->next = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->tail)
	r->tail->next = lk;
    else
	r->head = lk;
    r->tail = lk;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void    smtp_resolver_destroy(SMTP_RESOLVER *r)
{
    if (!r)
	return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < r->nthreads; i++)
	pthread_join(r->threads[i], NULL);
    mem_free(r->threads);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    mem_free(r);
}
