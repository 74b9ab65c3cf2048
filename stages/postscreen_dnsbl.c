/*
 * postscreen_dnsbl.c - DNSBL queries for postscreen (see postscreen.h).
 *
 * Sites are written as Postfix writes them: "zen.example", "zen.example*2"
 * (weight, may be negative for allowlists), "bl.example=127.0.0.[2..11;13]"
 * (only these A records count; each octet is a number or a [list] of
 * numbers and n..m ranges). The client address is reversed (IPv4 octets,
 * IPv6 nibbles) and looked up as an A record under each site.
 *
 * The queries go out on one non-blocking UDP socket, connected to the
 * nameserver (postscreen_dns_server, or resolv.conf's first), so the
 * postscreen thread reads the replies in its own epoll loop: no resolver
 * threads, no blocking. A query is matched to its client by its 16-bit
 * ID and its question name; a reply with another name is dropped.
 * Unanswered queries simply never count (postscreen_dnsbl_timeout ends
 * the wait in postscreen.c).
 *
 * Threading: a PSC_DNSBL belongs to the postscreen thread.
 * Diagnostics: bad site syntax at create time (err); a failed send is
 * logged once per burst with msg_warn().
 */
#include "config.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/timeutil.h"
#include "stages/postscreen.h"

#define DNSBL_IDS	65536
#define DNSBL_PKT_MAX	4096

/* One octet of a reply filter: allowed values as a bitmap. */
typedef struct DNSBL_FILTER {
    unsigned char bits[4][32];
} DNSBL_FILTER;

typedef struct DNSBL_SITE {
    char   *domain;
    int     weight;
    DNSBL_FILTER *filter;		/* NULL: any A record */
} DNSBL_SITE;

typedef struct DNSBL_PENDING {
    PSC_DNSBL_SCORE *sc;
    char   *qname;
    size_t  site;
} DNSBL_PENDING;

struct PSC_DNSBL {
    DNSBL_SITE sites[PSC_DNSBL_MAX];
    size_t  nsites;
    int     fd;
    DNSBL_PENDING *pending;		/* DNSBL_IDS slots, by query ID */
    size_t  npending;
    uint16_t next_id;
    int64_t last_warn;
};

/* ---- site syntax ---- */

static int dnsbl_octet(const char *s, size_t len, unsigned char bits[32])
{
    memset(bits, 0, 32);
    if (len == 0)
	return -1;
    if (s[0] != '[') {
	char    tmp[8];
	char   *end;
	long    v;

	if (len >= sizeof(tmp))
	    return -1;
	memcpy(tmp, s, len);
	tmp[len] = 0;
	v = strtol(tmp, &end, 10);
	if (*end || v < 0 || v > 255 || !isdigit((unsigned char) tmp[0]))
	    return -1;
	bits[v / 8] |= (unsigned char) (1 << (v % 8));
	return 0;
    }
    if (len < 3 || s[len - 1] != ']')
	return -1;
    /* [n;n..m;...] */
    const char *p = s + 1, *end = s + len - 1;

    while (p < end) {
	char   *q;
	long    lo = strtol(p, &q, 10), hi;

	if (q == p || lo < 0 || lo > 255)
	    return -1;
	hi = lo;
	if (q + 1 < end && q[0] == '.' && q[1] == '.') {
	    p = q + 2;
	    hi = strtol(p, &q, 10);
	    if (q == p || hi < lo || hi > 255)
		return -1;
	}
	for (long v = lo; v <= hi; v++)
	    bits[v / 8] |= (unsigned char) (1 << (v % 8));
	if (q < end && *q != ';')
	    return -1;
	p = q < end ? q + 1 : q;
    }
    return 0;
}

static int dnsbl_parse_filter(const char *text, DNSBL_FILTER *f)
{
    const char *p = text;

    for (int i = 0; i < 4; i++) {
	const char *dot = p;
	int     depth = 0;

	/* A dot inside [..] belongs to a range. */
	while (*dot && (depth > 0 || *dot != '.')) {
	    if (*dot == '[')
		depth++;
	    else if (*dot == ']')
		depth--;
	    dot++;
	}
	if ((i < 3 && *dot != '.') || (i == 3 && *dot != 0))
	    return -1;
	if (dnsbl_octet(p, (size_t) (dot - p), f->bits[i]) < 0)
	    return -1;
	p = *dot ? dot + 1 : dot;
    }
    return 0;
}

static bool dnsbl_domain_ok(const char *d)
{
    size_t  n = strlen(d);

    if (n == 0 || n > 200 || d[0] == '.' || d[n - 1] == '.')
	return false;
    for (const char *s = d; *s; s++)
	if (!isalnum((unsigned char) *s) && *s != '-' && *s != '.' && *s != '_')
	    return false;
    return strstr(d, "..") == NULL;
}

static int dnsbl_parse_site(const char *text, DNSBL_SITE *site, STR *err)
{
    char   *buf = mem_strdup(text);
    char   *star = strrchr(buf, '*');
    char   *eq;

    site->weight = 1;
    if (star) {
	char   *end;
	long    w = strtol(star + 1, &end, 10);

	if (star[1] == 0 || *end || w < -1000 || w > 1000) {
	    str_printf(err, "postscreen_dnsbl_sites: bad weight in \"%s\"", text);
	    mem_free(buf);
	    return -1;
	}
	site->weight = (int) w;
	*star = 0;
    }
    if ((eq = strchr(buf, '=')) != NULL) {
	*eq = 0;
	site->filter = MEM_NEW(DNSBL_FILTER);
	if (dnsbl_parse_filter(eq + 1, site->filter) < 0) {
	    str_printf(err, "postscreen_dnsbl_sites: bad reply filter in \"%s\"", text);
	    mem_free(site->filter);
	    site->filter = NULL;
	    mem_free(buf);
	    return -1;
	}
    }
    if (!dnsbl_domain_ok(buf)) {
	str_printf(err, "postscreen_dnsbl_sites: bad domain name in \"%s\"", text);
	mem_free(site->filter);
	site->filter = NULL;
	mem_free(buf);
	return -1;
    }
    site->domain = buf;
    return 0;
}

/* ---- the resolver socket ---- */

static int dnsbl_server(const char *server, struct sockaddr_in *sin, STR *err)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    if (server && *server) {
	char    ip[64];
	const char *colon = strchr(server, ':');
	long    port = colon ? strtol(colon + 1, NULL, 10) : 53;

	snprintf(ip, sizeof(ip), "%.*s", (int) (colon ? (size_t) (colon - server)
						: strlen(server)), server);
	if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1 || port <= 0 || port > 65535) {
	    str_printf(err, "postscreen_dns_server: expected ip or ip:port, got \"%s\"", server);
	    return -1;
	}
	sin->sin_port = htons((uint16_t) port);
	return 0;
    }
    struct __res_state rs;

    memset(&rs, 0, sizeof(rs));
    if (res_ninit(&rs) != 0 || rs.nscount < 1 || rs.nsaddr_list[0].sin_family != AF_INET) {
	/* The stub resolver's own default. */
	inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
	sin->sin_port = htons(53);
    } else
	*sin = rs.nsaddr_list[0];
    res_nclose(&rs);
    return 0;
}

PSC_DNSBL *psc_dnsbl_create(const char *sites, const char *server, STR *err)
{
    PSC_DNSBL *d = MEM_NEW(PSC_DNSBL);
    char  **list = config_list_split(sites ? sites : "", NULL);
    struct sockaddr_in sin;

    d->fd = -1;
    for (size_t i = 0; list[i]; i++) {
	if (d->nsites == PSC_DNSBL_MAX) {
	    str_printf(err, "postscreen_dnsbl_sites: more than %d sites", PSC_DNSBL_MAX);
	    goto fail;
	}
	if (dnsbl_parse_site(list[i], &d->sites[d->nsites], err) < 0)
	    goto fail;
	d->nsites++;
    }
    config_list_free(list);
    list = NULL;
    if (d->nsites == 0)
	return d;
    if (dnsbl_server(server, &sin, err) < 0)
	goto fail;
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0 || connect(d->fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
	str_printf(err, "postscreen DNSBL socket: %s", strerror(errno));
	goto fail;
    }
    d->pending = mem_calloc(DNSBL_IDS, sizeof(DNSBL_PENDING));
    d->next_id = (uint16_t) (time_mono_ns() ^ getpid());
    return d;

fail:
    config_list_free(list);
    psc_dnsbl_free(d);
    return NULL;
}

size_t  psc_dnsbl_nsites(const PSC_DNSBL *d)
{
    return d->nsites;
}

int     psc_dnsbl_fd(const PSC_DNSBL *d)
{
    return d->fd;
}

void    psc_dnsbl_free(PSC_DNSBL *d)
{
    if (d == NULL)
	return;
    for (size_t i = 0; i < d->nsites; i++) {
	mem_free(d->sites[i].domain);
	mem_free(d->sites[i].filter);
    }
    if (d->pending)
	for (size_t i = 0; i < DNSBL_IDS; i++)
	    mem_free(d->pending[i].qname);
    mem_free(d->pending);
    if (d->fd >= 0)
	close(d->fd);
    mem_free(d);
}

int     psc_dnsbl_name(const char *addr, const char *site, STR *out)
{
    unsigned char a[16];

    str_reset(out);
    if (inet_pton(AF_INET, addr, a) == 1) {
	str_printf(out, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], site);
	return 0;
    }
    if (inet_pton(AF_INET6, addr, a) == 1) {
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--)
	    str_printf(out, "%c.%c.", hex[a[i] & 15], hex[a[i] >> 4]);
	str_puts(out, site);
	return 0;
    }
    return -1;
}

/* A DNS query packet for name, type A, class IN, recursion desired. */
static int dnsbl_packet(uint16_t id, const char *name, unsigned char *pkt, size_t max)
{
    size_t  n = 12;
    const char *p = name;

    if (strlen(name) + 18 > max)
	return -1;
    memset(pkt, 0, 12);
    pkt[0] = (unsigned char) (id >> 8);
    pkt[1] = (unsigned char) id;
    pkt[2] = 0x01;			/* RD */
    pkt[5] = 1;				/* QDCOUNT */
    while (*p) {
	const char *dot = strchr(p, '.');
	size_t  len = dot ? (size_t) (dot - p) : strlen(p);

	if (len == 0 || len > 63)
	    return -1;
	pkt[n++] = (unsigned char) len;
	memcpy(pkt + n, p, len);
	n += len;
	p += len + (dot ? 1 : 0);
    }
    pkt[n++] = 0;
    pkt[n++] = 0;
    pkt[n++] = 1;			/* A */
    pkt[n++] = 0;
    pkt[n++] = 1;			/* IN */
    return (int) n;
}

void    psc_dnsbl_start(PSC_DNSBL *d, PSC_DNSBL_SCORE *sc, const char *addr)
{
    STR     name = STR_INIT;
    unsigned char pkt[512];

    for (size_t i = 0; i < d->nsites && d->fd >= 0; i++) {
	uint16_t id;
	int     len;

	if (d->npending >= DNSBL_IDS / 2)
	    break;			/* flooded: these clients go untested */
	do
	    id = d->next_id++;
	while (d->pending[id].sc != NULL);
	if (psc_dnsbl_name(addr, d->sites[i].domain, &name) < 0
	    || (len = dnsbl_packet(id, STR_DATA(&name), pkt, sizeof(pkt))) < 0)
	    continue;
	if (send(d->fd, pkt, (size_t) len, 0) < 0) {
	    int64_t now = time_mono_ns();

	    if (now - d->last_warn > TIME_NS_PER_SEC) {
		d->last_warn = now;
		msg_warn("postscreen: DNSBL query for %s: %m", STR_DATA(&name));
	    }
	    continue;
	}
	d->pending[id].sc = sc;
	d->pending[id].site = i;
	d->pending[id].qname = str_steal(&name, NULL);
	d->npending++;
	sc->ids[sc->nids++] = id;
	sc->pending++;
    }
    str_release(&name);
}

static void dnsbl_forget(PSC_DNSBL *d, uint16_t id)
{
    mem_free(d->pending[id].qname);
    d->pending[id].qname = NULL;
    d->pending[id].sc = NULL;
    d->npending--;
}

void    psc_dnsbl_cancel(PSC_DNSBL *d, PSC_DNSBL_SCORE *sc)
{
    for (int i = 0; i < sc->nids; i++)
	if (d->pending[sc->ids[i]].sc == sc)
	    dnsbl_forget(d, sc->ids[i]);
    sc->nids = 0;
    sc->pending = 0;
}

static bool dnsbl_filter_match(const DNSBL_FILTER *f, const unsigned char *a)
{
    if (f == NULL)
	return true;
    for (int i = 0; i < 4; i++)
	if (!(f->bits[i][a[i] / 8] & (1 << (a[i] % 8))))
	    return false;
    return true;
}

/* Checks the question and counts the matching A records; -1 if foreign. */
static int dnsbl_reply(const unsigned char *msg, size_t len, const char *qname,
		               const DNSBL_FILTER *filter)
{
    const unsigned char *eom = msg + len, *cp = msg + 12;
    char    name[NS_MAXDNAME];
    int     qd, an, n, hits = 0;

    if (len < 12 || !(msg[2] & 0x80))
	return -1;
    qd = (msg[4] << 8) | msg[5];
    an = (msg[6] << 8) | msg[7];
    if (qd != 1)
	return -1;
    if ((n = dn_expand(msg, eom, cp, name, sizeof(name))) < 0 || cp + n + 4 > eom
	|| strcasecmp(name, qname) != 0)
	return -1;
    cp += n + 4;
    if ((msg[3] & 0x0f) != 0)		/* NXDOMAIN, SERVFAIL...: not listed */
	return 0;
    for (int i = 0; i < an; i++) {
	int     skip = dn_skipname(cp, eom), type, class, rdlen;

	if (skip < 0 || cp + skip + 10 > eom)
	    return hits;
	cp += skip;
	type = (cp[0] << 8) | cp[1];
	class = (cp[2] << 8) | cp[3];
	rdlen = (cp[8] << 8) | cp[9];
	cp += 10;
	if (cp + rdlen > eom)
	    return hits;
	if (type == 1 && class == 1 && rdlen == 4 && dnsbl_filter_match(filter, cp))
	    hits++;
	cp += rdlen;
    }
    return hits;
}

void    psc_dnsbl_input(PSC_DNSBL *d, void (*done)(PSC_DNSBL_SCORE *sc))
{
    unsigned char buf[DNSBL_PKT_MAX];

    for (;;) {
	ssize_t n = recv(d->fd, buf, sizeof(buf), 0);

	if (n < 0) {
	    if (errno == EINTR)
		continue;
	    return;			/* EAGAIN, or ICMP refused: nothing */
	}
	if (n < 12)
	    continue;
	uint16_t id = (uint16_t) ((buf[0] << 8) | buf[1]);
	DNSBL_PENDING *p = &d->pending[id];
	PSC_DNSBL_SCORE *sc = p->sc;

	if (sc == NULL)
	    continue;
	const DNSBL_SITE *site = &d->sites[p->site];
	int     hits = dnsbl_reply(buf, (size_t) n, p->qname, site->filter);

	if (hits < 0)
	    continue;			/* not the answer to this question */
	dnsbl_forget(d, id);
	if (hits > 0) {
	    sc->score += site->weight;
	    if (sc->site == NULL || site->weight > sc->site_weight) {
		sc->site = site->domain;
		sc->site_weight = site->weight;
	    }
	}
	if (--sc->pending == 0)
	    done(sc);
    }
}
