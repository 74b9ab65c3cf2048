/*
 * test_postscreen.c - unit tests for postscreen's DNSBL parts (site syntax,
 * query names, replies from a UDP responder in the test) and for the
 * decision cache (memory and GDBM).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "stages/postscreen.h"
#include "stages/screen_cache.h"

Test(postscreen, query_names)
{
    STR     s = STR_INIT;

    cr_assert_eq(psc_dnsbl_name("192.0.2.10", "zen.example", &s), 0);
    cr_assert_str_eq(STR_DATA(&s), "10.2.0.192.zen.example");
    cr_assert_eq(psc_dnsbl_name("2001:db8::1", "bl.example", &s), 0);
    cr_assert_str_eq(STR_DATA(&s),
		     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example");
    cr_assert_eq(psc_dnsbl_name("not-an-ip", "bl.example", &s), -1);
    cr_assert_eq(psc_dnsbl_name("1.2.3", "bl.example", &s), -1);
    str_release(&s);
}

static void expect_bad(const char *sites, const char *why)
{
    STR     err = STR_INIT;
    PSC_DNSBL *d = psc_dnsbl_create(sites, "127.0.0.1:9", &err);

    cr_assert_null(d, "accepted \"%s\"", sites);
    cr_assert(strstr(STR_DATA(&err), why) != NULL, "\"%s\": %s", sites, STR_DATA(&err));
    str_release(&err);
}

Test(postscreen, site_syntax)
{
    STR     err = STR_INIT;
    PSC_DNSBL *d = psc_dnsbl_create("zen.example*2, bl.example=127.0.0.[2..11;13]*-1, "
				    "plain.example", "127.0.0.1:9", &err);

    cr_assert_not_null(d, "%s", STR_DATA(&err));
    cr_assert_eq(psc_dnsbl_nsites(d), 3);
    cr_assert_geq(psc_dnsbl_fd(d), 0);
    psc_dnsbl_free(d);
    d = psc_dnsbl_create("", "", &err);
    cr_assert_not_null(d);
    cr_assert_eq(psc_dnsbl_nsites(d), 0);
    cr_assert_eq(psc_dnsbl_fd(d), -1);
    psc_dnsbl_free(d);

    expect_bad("zen.example*", "bad weight");
    expect_bad("zen.example*x", "bad weight");
    expect_bad("zen.example*99999", "bad weight");
    expect_bad("zen.example=127.0.0", "bad reply filter");
    expect_bad("zen.example=127.0.0.256", "bad reply filter");
    expect_bad("zen.example=127.0.0.[5..2]", "bad reply filter");
    expect_bad("zen.example=127.0.0.[2", "bad reply filter");
    expect_bad("zen..example", "bad domain name");
    expect_bad(".zen.example", "bad domain name");
    expect_bad("zen example/x", "bad domain name");
    err.len = 0;
    cr_assert_null(psc_dnsbl_create("zen.example", "not-an-ip", &err));
    cr_assert(strstr(STR_DATA(&err), "postscreen_dns_server") != NULL);
    str_release(&err);
}

/* A one-shot DNS responder: answers each query with the given A records
 * (the question copied), or NXDOMAIN when none. */
typedef struct RESPONDER {
    int     fd;
    int     port;
} RESPONDER;

static void responder_open(RESPONDER *r)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);

    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    r->fd = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_geq(r->fd, 0);
    cr_assert_eq(bind(r->fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    getsockname(r->fd, (struct sockaddr *) &sin, &len);
    r->port = ntohs(sin.sin_port);
}

static void responder_answer(RESPONDER *r, const char *const *addrs, size_t n, bool bad_name)
{
    unsigned char q[512], a[1024];
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    struct pollfd pfd = {.fd = r->fd,.events = POLLIN};

    cr_assert_eq(poll(&pfd, 1, 5000), 1, "no query arrived");
    ssize_t len = recvfrom(r->fd, q, sizeof(q), 0, (struct sockaddr *) &from, &flen);

    cr_assert_gt(len, 12);
    memcpy(a, q, (size_t) len);
    a[2] = 0x81;
    a[3] = n ? 0x80 : 0x83;		/* RA, NOERROR / NXDOMAIN */
    a[6] = 0;
    a[7] = (unsigned char) n;
    if (bad_name)
	a[13] ^= 1;			/* a different question */
    size_t off = (size_t) len;

    for (size_t i = 0; i < n; i++) {
	unsigned char rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};

	memcpy(a + off, rr, sizeof(rr));
	off += sizeof(rr);
	inet_pton(AF_INET, addrs[i], a + off);
	off += 4;
    }
    sendto(r->fd, a, off, 0, (struct sockaddr *) &from, flen);
}

static int done_calls;

static void count_done(PSC_DNSBL_SCORE *sc)
{
    (void) sc;
    done_calls++;
}

static void wait_reply(PSC_DNSBL *d)
{
    struct pollfd pfd = {.fd = psc_dnsbl_fd(d),.events = POLLIN};

    cr_assert_eq(poll(&pfd, 1, 5000), 1, "no reply arrived");
    psc_dnsbl_input(d, count_done);
}

Test(postscreen, dnsbl_scoring)
{
    RESPONDER r;
    STR     err = STR_INIT;
    char    server[32];

    responder_open(&r);
    snprintf(server, sizeof(server), "127.0.0.1:%d", r.port);
    PSC_DNSBL *d = psc_dnsbl_create("a.example*3, b.example=127.0.0.[4..6]", server, &err);

    cr_assert_not_null(d, "%s", STR_DATA(&err));

    /* Listed by a (weight 3); b answers 127.0.0.2, outside its filter. */
    PSC_DNSBL_SCORE sc = {0};
    const char *two[] = {"127.0.0.2"};

    done_calls = 0;
    psc_dnsbl_start(d, &sc, "192.0.2.1");
    cr_assert_eq(sc.pending, 2);
    responder_answer(&r, two, 1, false);
    responder_answer(&r, two, 1, false);
    while (done_calls == 0)
	wait_reply(d);
    cr_assert_eq(sc.score, 3);
    cr_assert_str_eq(sc.site, "a.example");

    /* A reply for another question does not count; cancel forgets. */
    PSC_DNSBL_SCORE sc2 = {0};

    done_calls = 0;
    psc_dnsbl_start(d, &sc2, "192.0.2.2");
    responder_answer(&r, two, 1, true);
    wait_reply(d);
    cr_assert_eq(sc2.score, 0);
    cr_assert_eq(sc2.pending, 2);
    psc_dnsbl_cancel(d, &sc2);
    responder_answer(&r, two, 1, false);
    usleep(100000);
    psc_dnsbl_input(d, count_done);
    cr_assert_eq(done_calls, 0);
    cr_assert_eq(sc2.score, 0);

    /* NXDOMAIN: not listed; a matching filter: listed. */
    PSC_DNSBL_SCORE sc3 = {0};
    const char *five[] = {"127.0.0.5"};

    psc_dnsbl_start(d, &sc3, "192.0.2.3");
    responder_answer(&r, NULL, 0, false);
    responder_answer(&r, five, 1, false);
    while (done_calls == 0)
	wait_reply(d);
    cr_assert_eq(sc3.score, 1, "score %d", sc3.score);
    psc_dnsbl_free(d);
    close(r.fd);
    str_release(&err);
}

static bool keep_short(const char *key, const char *value, void *ctx)
{
    (void) key;
    (void) ctx;
    return strlen(value) < 3;
}

static void cache_roundtrip(const char *spec)
{
    STR     err = STR_INIT, v = STR_INIT;
    SCREEN_CACHE *c = screen_cache_open(spec, &err);

    cr_assert_not_null(c, "%s: %s", spec, STR_DATA(&err));
    cr_assert_eq(screen_cache_get(c, "1.2.3.4", &v), 0);
    screen_cache_put(c, "1.2.3.4", "ok");
    screen_cache_put(c, "5.6.7.8", "long value");
    screen_cache_put(c, "1.2.3.4", "hi");
    cr_assert_eq(screen_cache_get(c, "1.2.3.4", &v), 1);
    cr_assert_str_eq(STR_DATA(&v), "hi");
    cr_assert_eq(screen_cache_clean(c, keep_short, NULL), 1);
    cr_assert_eq(screen_cache_get(c, "5.6.7.8", &v), 0);
    screen_cache_del(c, "1.2.3.4");
    cr_assert_eq(screen_cache_get(c, "1.2.3.4", &v), 0);
    screen_cache_put(c, "9.9.9.9", "kept");
    screen_cache_close(c);
    str_release(&err);
    str_release(&v);
}

Test(postscreen, cache_memory)
{
    cache_roundtrip("internal:");
}

Test(postscreen, cache_gdbm_persists)
{
    char    dir[] = "/tmp/psc-cache-XXXXXX";
    STR     spec = STR_INIT, err = STR_INIT, v = STR_INIT;

    cr_assert_not_null(mkdtemp(dir));
    str_printf(&spec, "btree:%s/cache", dir);
    cache_roundtrip(STR_DATA(&spec));
    SCREEN_CACHE *c = screen_cache_open(STR_DATA(&spec), &err);

    cr_assert_not_null(c);
    cr_assert_eq(screen_cache_get(c, "9.9.9.9", &v), 1);
    cr_assert_str_eq(STR_DATA(&v), "kept");
    screen_cache_close(c);
    cr_assert_null(screen_cache_open("mysql:/x", &err));
    cr_assert_null(screen_cache_open("btree:relative", &err));
    str_reset(&spec);
    str_printf(&spec, "rm -rf %s", dir);
    cr_assert_eq(system(STR_DATA(&spec)), 0);
    str_release(&spec);
    str_release(&err);
    str_release(&v);
}
