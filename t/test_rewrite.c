/*
 * test_rewrite.c - golden tests of trivial-rewrite: canonical form
 * (bang paths, percent hack, source routes, quoted local parts, null
 * addresses, trailing dots, mixed case) and resolution to
 * transport:nexthop (mydestination, address literals, virtual alias and
 * mailbox domains, relay_domains, relayhost set and unset, transport_maps
 * with every key and result form), the cache and its invalidation on a
 * table reload, rewrite_message(), and concurrent use.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dict.h"
#include "engine/mem.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/addr_parse.h"
#include "stages/rewrite.h"

static void base_config(REWRITE_CONFIG *cfg)
{
    rewrite_config_defaults(cfg);
    cfg->myhostname = "mail.example.com";
    cfg->mydomain = "example.com";
    cfg->myorigin = "example.com";
    cfg->mydestination = "mail.example.com, localhost.example.com, localhost, example.com";
    cfg->local_transport = "local:mail.example.com";
    cfg->relay_domains = "relay.test";
    cfg->virtual_alias_domains = "valias.test";
    cfg->virtual_mailbox_domains = "vmbox.test";
}

static REWRITE *make(const REWRITE_CONFIG *cfg)
{
    STR     err = STR_INIT;
    REWRITE *rw = rewrite_create(cfg, &err);

    cr_assert_not_null(rw, "rewrite_create: %s", STR_DATA(&err));
    str_release(&err);
    return rw;
}

/* ---------- canonical form ---------- */

enum { OPT_NONE = 0, OPT_DOT = 1, OPT_NOBANG = 2, OPT_NOPCT = 4, OPT_NOORIGIN = 8 };

static const struct canon_case {
    int     opts;
    const char *in;
    const char *out;
} canon_cases[] = {
    {OPT_NONE, "user", "user@example.com"},
    {OPT_NONE, "user@host", "user@host"},
    {OPT_DOT, "user@host", "user@host.example.com"},
    {OPT_DOT, "user", "user@example.com"},
    {OPT_DOT, "user@[192.0.2.1]", "user@[192.0.2.1]"},
    {OPT_DOT, "user@", "user@"},
    {OPT_DOT, "user@host.sub", "user@host.sub"},
    {OPT_NONE, "host!user", "user@host"},
    {OPT_NONE, "a!b!user", "b!user@a"},
    {OPT_NOBANG, "host!user", "host!user@example.com"},
    {OPT_NONE, "user%host", "user@host"},
    {OPT_NONE, "user%a%b", "user%a@b"},
    {OPT_NOPCT, "user%host", "user%host@example.com"},
    {OPT_NONE, "host!user%other", "user%other@host"},	/* bang wins */
    {OPT_NONE, "@a,@b:user@c", "user@c"},
    {OPT_NONE, "@a:user", "user@example.com"},
    {OPT_NONE, "@a:", "@a:"},			/* nothing after the colon */
    {OPT_NONE, "user@example.com.", "user@example.com"},
    {OPT_NONE, "user@example.com..", "user@example.com.."},
    {OPT_NONE, "user@.", "user@."},
    {OPT_NONE, "", ""},
    {OPT_NONE, "@", ""},
    {OPT_NONE, "john doe", "john doe@example.com"},
    {OPT_NONE, "a@b@c", "a@b@c"},
    {OPT_NONE, "User@Mixed.CASE.Org", "User@Mixed.CASE.Org"},
    {OPT_NOORIGIN, "user", "user"},
    {OPT_NOORIGIN | OPT_DOT, "user", "user"},
};

Test(rewrite, canonical_golden)
{
    for (size_t i = 0; i < sizeof(canon_cases) / sizeof(canon_cases[0]); i++) {
	const struct canon_case *c = canon_cases + i;
	REWRITE_CONFIG cfg;
	REWRITE *rw;
	STR     out = STR_INIT;

	base_config(&cfg);
	cfg.append_dot_mydomain = (c->opts & OPT_DOT) != 0;
	cfg.swap_bangpath = (c->opts & OPT_NOBANG) == 0;
	cfg.allow_percent_hack = (c->opts & OPT_NOPCT) == 0;
	cfg.append_at_myorigin = (c->opts & OPT_NOORIGIN) == 0;
	rw = make(&cfg);
	rewrite_address(rw, c->in, &out);
	cr_expect_str_eq(STR_DATA(&out), c->out, "case %zu: <%s> -> <%s>, want <%s>",
			 i, c->in, STR_DATA(&out), c->out);
	str_release(&out);
	rewrite_free(rw);
    }
}

Test(rewrite, quoted_local_part_round_trip)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;
    STR     internal = STR_INIT, out = STR_INIT, ext = STR_INIT;

    base_config(&cfg);
    rw = make(&cfg);
    addr_internalize(&internal, "\"john doe\"@Example.COM");
    cr_assert_str_eq(STR_DATA(&internal), "john doe@Example.COM");
    rewrite_address(rw, STR_DATA(&internal), &out);
    addr_externalize(&ext, STR_DATA(&out));
    cr_assert_str_eq(STR_DATA(&ext), "\"john doe\"@Example.COM");
    str_release(&internal);
    str_release(&out);
    str_release(&ext);
    rewrite_free(rw);
}

/* ---------- resolution ---------- */

typedef struct res_case {
    const char *in;
    const char *recipient;
    const char *transport;
    const char *nexthop;
    int     flags;			/* flags that must be set */
} RES_CASE;

static void check_cases(REWRITE *rw, const RES_CASE *cases, size_t n, const char *what)
{
    RESOLVED res;

    resolved_init(&res);
    for (size_t i = 0; i < n; i++) {
	const RES_CASE *c = cases + i;
	int     rc = rewrite_resolve(rw, c->in, &res);

	cr_expect_eq(rc, 0, "%s %zu <%s>: resolve failed", what, i, c->in);
	cr_expect_str_eq(STR_DATA(&res.recipient), c->recipient,
			 "%s %zu <%s>: recipient <%s>, want <%s>", what, i, c->in,
			 STR_DATA(&res.recipient), c->recipient);
	cr_expect_str_eq(STR_DATA(&res.transport), c->transport,
			 "%s %zu <%s>: transport %s, want %s", what, i, c->in,
			 STR_DATA(&res.transport), c->transport);
	cr_expect_str_eq(STR_DATA(&res.nexthop), c->nexthop,
			 "%s %zu <%s>: nexthop %s, want %s", what, i, c->in,
			 STR_DATA(&res.nexthop), c->nexthop);
	cr_expect_eq(res.flags & c->flags, c->flags, "%s %zu <%s>: flags %#x, want %#x",
		     what, i, c->in, res.flags, c->flags);
    }
    resolved_release(&res);
}

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

static const RES_CASE resolve_plain[] = {
    {"user@example.com", "user@example.com", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user@MAIL.Example.COM", "user@MAIL.Example.COM", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user@localhost", "user@localhost", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user@example.com.", "user@example.com", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user@[127.0.0.1]", "user@[127.0.0.1]", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user@[IPv6:::1]", "user@[IPv6:::1]", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user", "user@mail.example.com", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"", "MAILER-DAEMON@mail.example.com", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"@example.com", "MAILER-DAEMON@example.com", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user@remote.test", "user@remote.test", "smtp", "remote.test", RESOLVE_CLASS_DEFAULT},
    {"User@Remote.TEST", "User@Remote.TEST", "smtp", "remote.test", RESOLVE_CLASS_DEFAULT},
    {"user@remote.test.", "user@remote.test", "smtp", "remote.test", RESOLVE_CLASS_DEFAULT},
    {"user@[192.0.2.7]", "user@[192.0.2.7]", "smtp", "[192.0.2.7]", RESOLVE_CLASS_DEFAULT},
    {"user@relay.test", "user@relay.test", "relay", "relay.test", RESOLVE_CLASS_RELAY},
    {"user@sub.relay.test", "user@sub.relay.test", "relay", "sub.relay.test", RESOLVE_CLASS_RELAY},
    {"user@vmbox.test", "user@vmbox.test", "virtual", "vmbox.test", RESOLVE_CLASS_VIRTUAL},
    {"user@valias.test", "user@valias.test", "error",
     "5.1.1 User unknown in virtual alias table", RESOLVE_CLASS_ALIAS},
    /* routing operators behind a local domain are followed */
    {"user%remote.test@example.com", "user@remote.test", "smtp", "remote.test", RESOLVE_CLASS_DEFAULT},
    {"remote.test!user@example.com", "user@remote.test", "smtp", "remote.test", RESOLVE_CLASS_DEFAULT},
    {"user@remote.test@example.com", "user@remote.test", "smtp", "remote.test", RESOLVE_CLASS_DEFAULT},
    {"user%other.test@localhost", "user@other.test", "smtp", "other.test", 0},
    {"user@example.com@localhost", "user@example.com", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    /* routing operators left in a remote address: flagged */
    {"a%b@remote.test", "a%b@remote.test", "smtp", "remote.test", RESOLVE_FLAG_ROUTED},
    {"a!b@remote.test", "a!b@remote.test", "smtp", "remote.test", RESOLVE_FLAG_ROUTED},
    /* bad domains */
    {"user@bad..test", "user@bad..test", "smtp", "bad..test", RESOLVE_FLAG_ERROR},
    {"user@-bad.test", "user@-bad.test", "smtp", "-bad.test", RESOLVE_FLAG_ERROR},
    {"user@exa mple.test", "user@exa mple.test", "smtp", "exa mple.test", RESOLVE_FLAG_ERROR},
    {"user@[999.1.1.1]", "user@[999.1.1.1]", "smtp", "[999.1.1.1]", RESOLVE_FLAG_ERROR},
};

Test(rewrite, resolve_golden_no_relayhost)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;

    base_config(&cfg);
    rw = make(&cfg);
    check_cases(rw, resolve_plain, NCASES(resolve_plain), "plain");
    rewrite_free(rw);
}

static const RES_CASE resolve_relayhost[] = {
    {"user@example.com", "user@example.com", "local", "mail.example.com", RESOLVE_CLASS_LOCAL},
    {"user@remote.test", "user@remote.test", "smtp", "[smart.example.net]:587", RESOLVE_CLASS_DEFAULT},
    {"user@relay.test", "user@relay.test", "relay", "[smart.example.net]:587", RESOLVE_CLASS_RELAY},
    {"user@vmbox.test", "user@vmbox.test", "virtual", "vmbox.test", RESOLVE_CLASS_VIRTUAL},
};

Test(rewrite, resolve_golden_relayhost)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;

    base_config(&cfg);
    cfg.relayhost = "[smart.example.net]:587";
    rw = make(&cfg);
    check_cases(rw, resolve_relayhost, NCASES(resolve_relayhost), "relayhost");
    rewrite_free(rw);
}

static const RES_CASE resolve_no_percent[] = {
    {"user%remote.test@example.com", "user%remote.test@example.com", "local",
     "mail.example.com", RESOLVE_CLASS_LOCAL | RESOLVE_FLAG_ROUTED},
    {"remote.test!user@example.com", "remote.test!user@example.com", "local",
     "mail.example.com", RESOLVE_CLASS_LOCAL | RESOLVE_FLAG_ROUTED},
};

Test(rewrite, resolve_without_percent_hack_or_bangpath)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;

    base_config(&cfg);
    cfg.allow_percent_hack = false;
    cfg.swap_bangpath = false;
    rw = make(&cfg);
    check_cases(rw, resolve_no_percent, NCASES(resolve_no_percent), "nopercent");
    rewrite_free(rw);
}

static const RES_CASE resolve_transport[] = {
    /* user@domain key, lmtp over a UNIX socket */
    {"user@special.test", "user@special.test", "lmtp", "unix:/var/run/lmtp.sock", 0},
    /* the extension is stripped for the lookup (recipient_delimiter) */
    {"user+tag@special.test", "user+tag@special.test", "lmtp", "unix:/var/run/lmtp.sock", 0},
    /* domain key, smtp:[host]:port */
    {"other@special.test", "other@special.test", "smtp", "[mx.special.test]:2525", 0},
    {"other@SPECIAL.test", "other@SPECIAL.test", "smtp", "[mx.special.test]:2525", 0},
    /* .domain matches subdomains only; "transport:" resets the nexthop */
    {"x@a.sub.test", "x@a.sub.test", "relay", "a.sub.test", 0},
    {"x@b.a.sub.test", "x@b.a.sub.test", "relay", "b.a.sub.test", 0},
    {"x@sub.test", "x@sub.test", "smtp", "[relay.example.net]", RESOLVE_CLASS_DEFAULT},
    /* ":nexthop" keeps the transport */
    {"x@kept.test", "x@kept.test", "smtp", "[10.1.1.1]", 0},
    /* ":" changes nothing (relayhost stays) */
    {"x@keep2.test", "x@keep2.test", "smtp", "[relay.example.net]", 0},
    /* error:text and error: */
    {"x@err.test", "x@err.test", "error", "5.2.1 mailbox unavailable", 0},
    {"x@err2.test", "x@err2.test", "error", "Address is undeliverable", 0},
    /* discard: */
    {"x@null.test", "x@null.test", "discard", "null.test", 0},
    /* a local domain may be overridden too */
    {"x@example.com", "x@example.com", "smtp", "[hub.example.com]", RESOLVE_CLASS_LOCAL},
    /* the virtual alias class is not */
    {"x@valias.test", "x@valias.test", "error",
     "5.1.1 User unknown in virtual alias table", RESOLVE_CLASS_ALIAS},
    /* no key: main.cf settings */
    {"x@elsewhere.test", "x@elsewhere.test", "smtp", "[relay.example.net]", 0},
};

Test(rewrite, resolve_transport_maps)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;

    base_config(&cfg);
    cfg.relayhost = "[relay.example.net]";
    cfg.recipient_delimiter = "+";
    cfg.transport_maps = "inline:{ user@special.test=lmtp:unix:/var/run/lmtp.sock, "
	"special.test=smtp:[mx.special.test]:2525, .sub.test=relay:, "
	"kept.test=:[10.1.1.1], keep2.test=:, "
	"{ err.test = error:5.2.1 mailbox unavailable }, err2.test=error:, "
	"null.test=discard:, example.com=smtp:[hub.example.com], "
	"valias.test=smtp:[nowhere] }";
    rw = make(&cfg);
    check_cases(rw, resolve_transport, NCASES(resolve_transport), "transport");
    rewrite_free(rw);
}

static const RES_CASE resolve_wildcard[] = {
    {"x@any.test", "x@any.test", "smtp", "[smart.host]", 0},
    {"x@direct.test", "x@direct.test", "smtp", "direct.test", 0},
    /* with parent matching, "parent.test" covers its subdomains */
    {"x@a.parent.test", "x@a.parent.test", "relay", "[p.host]", 0},
    {"x@parent.test", "x@parent.test", "relay", "[p.host]", 0},
};

Test(rewrite, resolve_transport_wildcard_and_parent_style)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;

    base_config(&cfg);
    cfg.transport_parent_match = true;
    cfg.transport_maps = "inline:{ *=smtp:[smart.host], direct.test=smtp, "
	"parent.test=relay:[p.host] }";
    rw = make(&cfg);
    check_cases(rw, resolve_wildcard, NCASES(resolve_wildcard), "wildcard");
    rewrite_free(rw);

    /* Without parent matching, "parent.test" does not cover a.parent.test. */
    cfg.transport_parent_match = false;
    cfg.transport_maps = "inline:{ parent.test=relay:[p.host] }";
    rw = make(&cfg);
    {
	RESOLVED res;

	resolved_init(&res);
	cr_assert_eq(rewrite_resolve(rw, "x@a.parent.test", &res), 0);
	cr_expect_str_eq(STR_DATA(&res.transport), "smtp");
	cr_expect_str_eq(STR_DATA(&res.nexthop), "a.parent.test");
	resolved_release(&res);
    }
    rewrite_free(rw);
}

Test(rewrite, main_cf_transport_nexthop)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;
    RESOLVED res;

    base_config(&cfg);
    cfg.default_transport = "smtp:[outbound.example.net]:25";
    cfg.virtual_transport = "lmtp:unix:/run/dovecot/lmtp";
    rw = make(&cfg);
    resolved_init(&res);
    cr_assert_eq(rewrite_resolve(rw, "x@remote.test", &res), 0);
    cr_expect_str_eq(STR_DATA(&res.transport), "smtp");
    cr_expect_str_eq(STR_DATA(&res.nexthop), "[outbound.example.net]:25");
    cr_assert_eq(rewrite_resolve(rw, "x@vmbox.test", &res), 0);
    cr_expect_str_eq(STR_DATA(&res.transport), "lmtp");
    cr_expect_str_eq(STR_DATA(&res.nexthop), "unix:/run/dovecot/lmtp");
    resolved_release(&res);
    rewrite_free(rw);

    /* A null transport is a configuration error: try again later. */
    base_config(&cfg);
    cfg.default_transport = "";
    rw = make(&cfg);
    resolved_init(&res);
    cr_expect_eq(rewrite_resolve(rw, "x@remote.test", &res), -1);
    cr_expect(res.flags & RESOLVE_FLAG_FAIL);
    resolved_release(&res);
    rewrite_free(rw);
}

Test(rewrite, bad_table_fails_create)
{
    REWRITE_CONFIG cfg;
    STR     err = STR_INIT;

    base_config(&cfg);
    cfg.transport_maps = "hash:/nonexistent/sluice/transport";
    cr_assert_null(rewrite_create(&cfg, &err));
    cr_assert(STR_LEN(&err) > 0);
    cr_expect(strstr(STR_DATA(&err), "transport_maps") != NULL, "err: %s", STR_DATA(&err));
    str_release(&err);
}

Test(rewrite, hostile_addresses)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;
    RESOLVED res;
    STR     big = STR_INIT;

    base_config(&cfg);
    rw = make(&cfg);
    resolved_init(&res);
    /* 5000 nested local domains: the resolver strips them all. */
    str_puts(&big, "user");
    for (int i = 0; i < 5000; i++)
	str_puts(&big, "@localhost");
    cr_assert_eq(rewrite_resolve(rw, STR_DATA(&big), &res), 0);
    cr_expect_str_eq(STR_DATA(&res.recipient), "user@localhost");
    /* A long bang path. */
    str_reset(&big);
    for (int i = 0; i < 2000; i++)
	str_puts(&big, "h!");
    str_puts(&big, "user");
    cr_assert_eq(rewrite_resolve(rw, STR_DATA(&big), &res), 0);
    cr_expect_str_eq(STR_DATA(&res.transport), "smtp");
    /* Binary junk. */
    cr_assert_eq(rewrite_resolve(rw, "\x01\x02@\x7f\xff", &res), 0);
    cr_expect(res.flags & RESOLVE_FLAG_ERROR);
    str_release(&big);
    resolved_release(&res);
    rewrite_free(rw);
}

/* ---------- cache ---------- */

Test(rewrite, cache_follows_table_reload)
{
    char    dir[] = "/tmp/test_rewrite.XXXXXX", path[128], spec[160], cmd[160];
    REWRITE_CONFIG cfg;
    REWRITE *rw;
    RESOLVED res;
    FILE   *fp;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/transport", dir);
    cr_assert_not_null(fp = fopen(path, "w"));
    fputs("a.test smtp:[one.example]\n", fp);
    fclose(fp);
    snprintf(spec, sizeof(spec), "texthash:%s", path);
    dict_set_check_interval(0);

    base_config(&cfg);
    cfg.transport_maps = spec;
    cfg.cache_size = 16;
    rw = make(&cfg);
    resolved_init(&res);
    cr_assert_eq(rewrite_resolve(rw, "x@a.test", &res), 0);
    cr_expect_str_eq(STR_DATA(&res.nexthop), "[one.example]");
    cr_assert_eq(rewrite_resolve(rw, "x@a.test", &res), 0);	/* cached */
    cr_expect_str_eq(STR_DATA(&res.nexthop), "[one.example]");

    sleep(1);				/* a new mtime */
    cr_assert_not_null(fp = fopen(path, "w"));
    fputs("a.test smtp:[two.example]\n# a longer file\n", fp);
    fclose(fp);
    cr_assert_eq(rewrite_resolve(rw, "x@a.test", &res), 0);
    cr_expect_str_eq(STR_DATA(&res.nexthop), "[two.example]");

    rewrite_invalidate(rw);
    cr_assert_eq(rewrite_resolve(rw, "x@a.test", &res), 0);
    cr_expect_str_eq(STR_DATA(&res.nexthop), "[two.example]");
    resolved_release(&res);
    rewrite_free(rw);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void) system(cmd);
}

Test(rewrite, cache_is_bounded_and_correct)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;
    RESOLVED res;
    char    addr[64], want[64];

    base_config(&cfg);
    cfg.cache_size = 8;
    rw = make(&cfg);
    resolved_init(&res);
    for (int round = 0; round < 3; round++) {
	for (int i = 0; i < 100; i++) {
	    snprintf(addr, sizeof(addr), "u%d@d%d.test", i, i % 7);
	    snprintf(want, sizeof(want), "d%d.test", i % 7);
	    cr_assert_eq(rewrite_resolve(rw, addr, &res), 0);
	    cr_assert_str_eq(STR_DATA(&res.nexthop), want);
	    cr_assert_str_eq(STR_DATA(&res.recipient), addr);
	}
    }
    resolved_release(&res);
    rewrite_free(rw);
}

typedef struct THREAD_ARG {
    REWRITE *rw;
    int     id;
    int     errors;
} THREAD_ARG;

static void *resolve_thread(void *ctx)
{
    THREAD_ARG *arg = ctx;
    RESOLVED res;
    char    addr[64], want[64];

    resolved_init(&res);
    for (int i = 0; i < 20000; i++) {
	int     n = (i * 7 + arg->id) % 50;

	snprintf(addr, sizeof(addr), "u%d@d%d.test", n, n);
	snprintf(want, sizeof(want), "d%d.test", n);
	if (rewrite_resolve(arg->rw, addr, &res) != 0
	    || strcmp(STR_DATA(&res.nexthop), want) != 0)
	    arg->errors++;
	if (i % 5000 == 0)
	    rewrite_invalidate(arg->rw);
    }
    resolved_release(&res);
    return NULL;
}

Test(rewrite, concurrent_resolve)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;
    pthread_t tid[4];
    THREAD_ARG arg[4];

    base_config(&cfg);
    cfg.cache_size = 16;
    rw = make(&cfg);
    for (int i = 0; i < 4; i++) {
	arg[i] = (THREAD_ARG) {rw, i, 0};
	pthread_create(&tid[i], NULL, resolve_thread, &arg[i]);
    }
    for (int i = 0; i < 4; i++) {
	pthread_join(tid[i], NULL);
	cr_expect_eq(arg[i].errors, 0, "thread %d: %d wrong answers", i, arg[i].errors);
    }
    rewrite_free(rw);
}

/* ---------- the stage's job ---------- */

Test(rewrite, rewrite_message_fills_recipients)
{
    REWRITE_CONFIG cfg;
    REWRITE *rw;
    MESSAGE *m = message_new();
    STR     reply = STR_INIT;

    base_config(&cfg);
    rw = make(&cfg);
    message_add_rcpt(m, "a@example.com", NULL);
    message_add_rcpt(m, "b%remote.test@example.com", NULL);
    message_add_rcpt(m, "c@bad..test", NULL);
    message_add_rcpt(m, "d@relay.test", "D@Relay.Test");
    cr_assert_eq(rewrite_message(rw, m, &reply), 0);
    cr_expect_str_eq(m->rcpt[0].transport, "local");
    cr_expect_str_eq(m->rcpt[0].nexthop, "mail.example.com");
    cr_expect_str_eq(m->rcpt[1].address, "b@remote.test");
    cr_expect_str_eq(m->rcpt[1].orig_rcpt, "b%remote.test@example.com");
    cr_expect_str_eq(m->rcpt[1].transport, "smtp");
    cr_expect_str_eq(m->rcpt[1].nexthop, "remote.test");
    cr_expect_str_eq(m->rcpt[2].transport, "error");
    cr_expect_str_eq(m->rcpt[2].nexthop, "5.1.3 bad address syntax");
    cr_expect_str_eq(m->rcpt[3].transport, "relay");
    cr_expect_str_eq(m->rcpt[3].orig_rcpt, "D@Relay.Test");
    message_free(m);
    str_release(&reply);
    rewrite_free(rw);
}

Test(rewrite, config_from_params_has_postfix_defaults)
{
    REWRITE_CONFIG cfg;

    rewrite_config_from_params(&cfg);
    cr_expect_str_eq(cfg.default_transport, "smtp");
    cr_expect_str_eq(cfg.relay_transport, "relay");
    cr_expect_str_eq(cfg.virtual_transport, "virtual");
    cr_expect(strncmp(cfg.local_transport, "local:", 6) == 0, "%s", cfg.local_transport);
    cr_expect(strchr(cfg.local_transport, '$') == NULL, "%s", cfg.local_transport);
    cr_expect_str_eq(cfg.empty_address_recipient, "MAILER-DAEMON");
    cr_expect(cfg.append_at_myorigin);
    cr_expect(!cfg.append_dot_mydomain);
    cr_expect(cfg.swap_bangpath);
    cr_expect(cfg.allow_percent_hack);
    cr_expect(!cfg.transport_parent_match);
    cr_expect_eq(cfg.cache_size, 4096);
}
