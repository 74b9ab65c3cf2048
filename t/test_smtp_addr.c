/*
 * test_smtp_addr.c - nexthop parsing (good and hostile forms), literal
 * address lookup, Postfix's delay formatting, smtp_config_set().
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "stages/smtp.h"

static void t_ok(const char *text, bool lmtp, enum smtp_nexthop_kind kind,
		 const char *host, unsigned port)
{
    SMTP_NEXTHOP nh;
    STR     why = STR_INIT;

    cr_assert_eq(smtp_addr_parse_nexthop(text, lmtp, &nh, &why), 0, "%s: %s", text, STR_DATA(&why));
    cr_assert_eq(nh.kind, kind, "%s", text);
    if (kind == SMTP_NH_UNIX)
	cr_assert_str_eq(nh.path, host);
    else
	cr_assert_str_eq(nh.host, host, "%s", text);
    cr_assert_eq(nh.port, port, "%s", text);
    str_release(&why);
}

static void t_bad(const char *text, bool lmtp)
{
    SMTP_NEXTHOP nh;
    STR     why = STR_INIT;

    cr_assert_eq(smtp_addr_parse_nexthop(text, lmtp, &nh, &why), -1, "accepted \"%s\"", text);
    cr_assert(why.len > 0);
    str_release(&why);
}

Test(smtp_addr, nexthop_forms)
{
    t_ok("example.com", false, SMTP_NH_DOMAIN, "example.com", 25);
    t_ok("example.com:587", false, SMTP_NH_DOMAIN, "example.com", 587);
    t_ok("[mail.example.com]", false, SMTP_NH_HOST, "mail.example.com", 25);
    t_ok("[127.0.0.1]:2525", false, SMTP_NH_HOST, "127.0.0.1", 2525);
    t_ok("127.0.0.1", false, SMTP_NH_HOST, "127.0.0.1", 25);
    t_ok("[::1]:26", false, SMTP_NH_HOST, "::1", 26);
    t_ok("[ipv6:2001:db8::1]", false, SMTP_NH_HOST, "2001:db8::1", 25);
    t_ok("inet:example.com:smtp", false, SMTP_NH_DOMAIN, "example.com", 25);
    t_ok("inet:localhost:24", true, SMTP_NH_HOST, "localhost", 24);
    t_ok("lmtp.example.com", true, SMTP_NH_HOST, "lmtp.example.com", 24);
    t_ok("[127.0.0.1]:2424", true, SMTP_NH_HOST, "127.0.0.1", 2424);
    t_ok("unix:/var/run/dovecot/lmtp", true, SMTP_NH_UNIX, "/var/run/dovecot/lmtp", 24);
}

Test(smtp_addr, nexthop_hostile)
{
    char    longname[600];

    t_bad("", false);
    t_bad("[127.0.0.1", false);
    t_bad("[127.0.0.1]x", false);
    t_bad("[127.0.0.1]:", false);
    t_bad("[127.0.0.1]:0", false);
    t_bad("[127.0.0.1]:65536", false);
    t_bad("[127.0.0.1]:25x", false);
    t_bad("example.com:-1", false);
    t_bad("exa mple.com", false);
    t_bad("example.com\r\nRCPT", false);
    t_bad("exa$mple.com", false);
    t_bad("..example.com", false);
    t_bad("::1", false);
    t_bad("[ipv6:not-an-address]", false);
    t_bad("unix:/tmp/x", false);		/* smtp has no unix: */
    t_bad("unix:relative", true);
    t_bad("[]", false);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    t_bad(longname, false);
    memset(longname, 'a', 70);
    strcpy(longname + 70, ".example.com");
    t_bad(longname, false);			/* label > 63 */
}

Test(smtp_addr, literal_lookup_needs_no_dns)
{
    SMTP_LOOKUP lk;
    STR     why = STR_INIT;

    memset(&lk, 0, sizeof(lk));
    cr_assert_eq(smtp_addr_parse_nexthop("[127.0.0.1]:2525", false, &lk.nh, &why), 0);
    smtp_addr_lookup(&lk);
    cr_assert_eq(lk.status, SMTP_LOOKUP_OK);
    cr_assert_eq(lk.naddr, 1);
    cr_assert_str_eq(lk.addr[0].ip, "127.0.0.1");
    smtp_addr_lookup_free(&lk);
    str_release(&why);
}

static void t_delay(double secs, const char *want)
{
    STR     s = STR_INIT;

    delivery_log_delay(&s, (int64_t) (secs * 1e9 + 0.5));
    cr_assert_str_eq(STR_DATA(&s), want, "%f", secs);
    str_release(&s);
}

Test(smtp_addr, postfix_delay_format)
{
    t_delay(0, "0");
    t_delay(0.004, "0");
    t_delay(0.005, "0.01");
    t_delay(0.01, "0.01");
    t_delay(0.123, "0.12");
    t_delay(0.5, "0.5");
    t_delay(1.234, "1.2");
    t_delay(1.96, "2");
    t_delay(12.3, "12");
    t_delay(123.4, "123");
    t_delay(-1, "0");
}

Test(smtp_addr, config_set)
{
    SMTP_CONFIG cfg;
    STR     why = STR_INIT;

    smtp_config_load(&cfg, false);
    cr_assert_eq(cfg.timeout[SMTP_PH_CONNECT], 30);
    cr_assert_eq(cfg.timeout[SMTP_PH_DATA_DONE], 600);
    cr_assert_eq(cfg.mx_address_limit, 5);
    cr_assert_eq(cfg.mx_session_limit, 2);
    cr_assert(cfg.cache_on_demand);
    cr_assert_eq(cfg.cache_time_limit, 2);
    cr_assert_eq(cfg.reuse_time_limit, 300);
    cr_assert_str_neq(cfg.helo_name, "$myhostname");
    cr_assert_eq(smtp_config_set(&cfg, "smtp_helo_timeout", "5m", &why), 0);
    cr_assert_eq(cfg.timeout[SMTP_PH_HELO], 300);
    cr_assert_eq(smtp_config_set(&cfg, "smtp_tls_security_level", "verify", &why), 0);
    cr_assert_eq(cfg.tls_level, SMTP_TLS_VERIFY);
    cr_assert_eq(smtp_config_set(&cfg, "smtp_dns_server", "127.0.0.1:5353", &why), 0);
    cr_assert_eq(smtp_config_set(&cfg, "smtp_dns_server", "bogus", &why), -1);
    cr_assert_eq(smtp_config_set(&cfg, "smtp_tls_security_level", "dane", &why), -1);
    cr_assert_eq(smtp_config_set(&cfg, "smtp_mx_session_limit", "x", &why), -1);
    cr_assert_eq(smtp_config_set(&cfg, "smtp_no_such_thing", "1", &why), -1);
    cr_assert_eq(smtp_config_set(&cfg, "smtp_rcpt_timeout", "0", &why), -1);
    str_release(&why);
}
