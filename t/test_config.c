/*
 * test_config.c - main.cf/master.cf parsing, $name expansion, value types
 * and ranges, errors and warnings (with file and line), per-transport and
 * per-service values, the main.cf editor, snapshot install/reload, lists.
 *
 * Golden files: t/config/NAME.main.cf (+ NAME.master.cf) is loaded and the
 * diagnostics plus every value main.cf sets (expanded) are compared with
 * t/config/NAME.ref. Hostile inputs that do not belong in git (NUL bytes, a
 * 1 MB line) are generated here and compared with their .ref the same way.
 * SLUICE_GOLDEN_UPDATE=1 rewrites the .ref files (review the diff!).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/maincf.h"
#include "engine/mastercf.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"

#ifndef T_SRCDIR
#define T_SRCDIR "."
#endif

/* ---------- helpers ---------- */

static STR captured = STR_INIT;

static void capture_sink(enum msg_level level, const char *service, const char *text)
{
    str_printf(&captured, "%s\n", text);
}

static void setup(void)
{
    str_reset(&captured);
    msg_sink_set(capture_sink);
}

/* Leaks inside a Criterion child do not fail a test by themselves. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static void teardown(void)
{
    config_shutdown();
    str_release(&captured);
    if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check())
	abort();
}

TestSuite(config, .init = setup, .fini = teardown);

static CONFIG *load(const char *maincf, const char *mastercf, STR *err)
{
    return config_load_text("/cfg", maincf, strlen(maincf), mastercf,
			    mastercf ? strlen(mastercf) : 0, 0, err);
}

static char *src_path(const char *name)
{
    const char *srcdir = getenv("SLUICE_SRCDIR");
    STR     p = STR_INIT;

    str_printf(&p, "%s/t/config/%s", srcdir && *srcdir ? srcdir : T_SRCDIR, name);
    return str_steal(&p, NULL);
}

static void dump_value(STR *out, const char *name, const char *value)
{
    size_t  len = strlen(value);

    if (len > 200)
	str_printf(out, "%s = <%zu bytes: %.40s...>\n", name, len, value);
    else
	str_printf(out, "%s = %s\n", name, value);
}

/* Load, then describe what an operator would see. */
static void golden_dump(const char *maincf, size_t mlen, const char *mastercf,
			size_t slen, STR *out)
{
    STR     err = STR_INIT;
    CONFIG *cfg;

    str_reset(&captured);
    cfg = config_load_text("/cfg", maincf, mlen, mastercf, slen, 0, &err);
    str_puts(out, "== diagnostics\n");
    str_append(out, STR_DATA(&captured), STR_LEN(&captured));
    if (cfg == NULL) {
	str_puts(out, "== load failed\n");
	str_append(out, STR_DATA(&err), STR_LEN(&err));
	str_release(&err);
	return;
    }
    str_puts(out, "== values\n");
    for (size_t i = 0; i < config_maincf(cfg)->count; i++) {
	const MAINCF_ENTRY *e = &config_maincf(cfg)->entry[i];
	param_id id;
	enum config_name_kind kind = config_name_kind(cfg, e->name, &id);
	STR     v = STR_INIT;

	if (maincf_find(config_maincf(cfg), e->name) != e)
	    continue;			/* only the winning entry */
	if (kind == CONFIG_NAME_TABLE)
	    dump_value(out, e->name, config_str(cfg, id));
	else {
	    config_expand(cfg, e->value, &v, NULL);
	    dump_value(out, e->name, STR_DATA(&v));
	}
	str_release(&v);
    }
    if (config_mastercf(cfg)) {
	const MASTERCF *mcf = config_mastercf(cfg);

	str_puts(out, "== services\n");
	for (size_t i = 0; i < mcf->count; i++) {
	    const MASTERCF_SERVICE *svc = &mcf->svc[i];
	    STR     key = STR_INIT;

	    str_printf(&key, "%s/%s", svc->name, svc->type);
	    str_printf(out, "%s: maxproc %d\n", STR_DATA(&key),
		       config_service_maxproc(cfg, STR_DATA(&key)));
	    for (size_t j = 0; j < svc->nopt; j++) {
		param_id id = param_lookup(svc->opt[j].name);

		if (id != P_COUNT)
		    str_printf(out, "%s: %s = %s\n", STR_DATA(&key), svc->opt[j].name,
			       config_service_str(cfg, STR_DATA(&key), id));
	    }
	    str_release(&key);
	}
    }
    config_free(cfg);
    str_release(&err);
}

static void golden_compare(const char *name, const char *maincf, size_t mlen,
			   const char *mastercf, size_t slen)
{
    STR     out = STR_INIT, refname = STR_INIT;
    char   *refpath, *ref;
    size_t  reflen;

    golden_dump(maincf, mlen, mastercf, slen, &out);
    str_printf(&refname, "%s.ref", name);
    refpath = src_path(STR_DATA(&refname));
    if (getenv("SLUICE_GOLDEN_UPDATE")) {
	FILE   *fp = fopen(refpath, "w");

	cr_assert(fp != NULL, "cannot write %s", refpath);
	fwrite(STR_DATA(&out), 1, STR_LEN(&out), fp);
	fclose(fp);
    }
    ref = maincf_slurp(refpath, &reflen);
    cr_assert(ref != NULL, "missing golden file %s: %s", refpath, strerror(errno));
    cr_expect(reflen == STR_LEN(&out) && memcmp(ref, STR_DATA(&out), reflen) == 0,
	      "%s differs from the output:\n%s", refpath, STR_DATA(&out));
    mem_free(ref);
    mem_free(refpath);
    str_release(&out);
    str_release(&refname);
}

static void golden_files(const char *name)
{
    STR     p = STR_INIT;
    char   *path, *mtext, *stext;
    size_t  mlen = 0, slen = 0;

    str_printf(&p, "%s.main.cf", name);
    path = src_path(STR_DATA(&p));
    mtext = maincf_slurp(path, &mlen);
    cr_assert(mtext != NULL, "missing %s", path);
    mem_free(path);
    str_reset(&p);
    str_printf(&p, "%s.master.cf", name);
    path = src_path(STR_DATA(&p));
    stext = maincf_slurp(path, &slen);
    mem_free(path);
    golden_compare(name, mtext, mlen, stext, slen);
    mem_free(mtext);
    mem_free(stext);
    str_release(&p);
}

/* ---------- golden files ---------- */

Test(config, golden_basic) { golden_files("basic"); }
Test(config, golden_expand) { golden_files("expand"); }
Test(config, golden_unterminated) { golden_files("unterminated"); }
Test(config, golden_recursion) { golden_files("recursion"); }
Test(config, golden_badvalues) { golden_files("badvalues"); }
Test(config, golden_unknown) { golden_files("unknown"); }
Test(config, golden_syntax) { golden_files("syntax"); }
Test(config, golden_badutf8) { golden_files("badutf8"); }
Test(config, golden_master) { golden_files("master"); }
Test(config, golden_master_badtype) { golden_files("master-badtype"); }
Test(config, golden_master_syntax) { golden_files("master-syntax"); }

Test(config, golden_nul_byte)
{
    static const char text[] = "myorigin = example.com\nrelayhost = [a]\0junk\nmydomain = x.example\n";
    static const char master[] = "smtp inet n - n - - smtpd\0 junk\n\0\n";

    golden_compare("nul", text, sizeof(text) - 1, master, sizeof(master) - 1);
}

Test(config, golden_big_line)
{
    STR     text = STR_INIT;

    str_puts(&text, "# a 1 MB value\nmyorigin = example.com\nheader_checks = ");
    for (int i = 0; i < (1 << 20) / 16; i++)
	str_puts(&text, "regexp:/x/$$a/$ ");
    str_puts(&text, "\nrelayhost = ${myorigin}\n");
    golden_compare("bigline", STR_DATA(&text), STR_LEN(&text), NULL, 0);
    str_release(&text);
}

Test(config, golden_big_unterminated)
{
    STR     text = STR_INIT;

    /* 1 MB inside an unterminated ${ must not be quoted whole. */
    str_puts(&text, "relayhost = ${myorigin?");
    for (int i = 0; i < (1 << 20); i++)
	str_putc(&text, 'x');
    str_putc(&text, '\n');
    golden_compare("bigunterminated", STR_DATA(&text), STR_LEN(&text), NULL, 0);
    str_release(&text);
}

/* ---------- parsing and expansion ---------- */

Test(config, comment_only_at_line_start)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("# comment\n   # indented comment\nrelayhost = [a] # not a comment\n", NULL, &err);

    cr_assert_not_null(cfg, "%s", STR_DATA(&err));
    cr_expect_str_eq(config_str(cfg, P_RELAYHOST), "[a] # not a comment");
    config_free(cfg);
}

Test(config, continuation_and_trim)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("mydestination =   a,\n  b\n# interleaved comment\n\tc   \n\nrelayhost=x\n", NULL, &err);

    cr_assert_not_null(cfg, "%s", STR_DATA(&err));
    cr_expect_str_eq(config_str(cfg, P_MYDESTINATION), "a,  b\tc");
    cr_expect_str_eq(config_str(cfg, P_RELAYHOST), "x");
    cr_expect_eq(config_line(cfg, P_RELAYHOST), 6);
    config_free(cfg);
}

Test(config, last_entry_wins)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("relayhost = a\nrelayhost = b\n", NULL, &err);

    cr_assert_not_null(cfg);
    cr_expect_str_eq(config_str(cfg, P_RELAYHOST), "b");
    cr_expect_eq(config_line(cfg, P_RELAYHOST), 2);
    config_free(cfg);
}

Test(config, expansion_forms)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("myhostname = mx.example.com\n"
		       "myorigin = $mydomain\n"		/* computed from myhostname */
		       "relayhost = ${myorigin}+$(myorigin)+$$x+$+a$\n"
		       "home_mailbox = ${relayhost?set}${mail_owner:empty}${undefined_x:empty}\n"
		       "mail_spool_directory = ${relayhost?{yes}:{no}}/${undefined_y?{yes}:{no}}\n"
		       "virtual_mailbox_base = ${undefined_z:{a b}}\n"
		       "mydestination = $undefined_w\n", NULL, &err);

    cr_assert_not_null(cfg, "%s", STR_DATA(&err));
    cr_expect_str_eq(config_str(cfg, P_MYDOMAIN), "example.com");
    cr_expect_str_eq(config_str(cfg, P_MYORIGIN), "example.com");
    cr_expect_str_eq(config_str(cfg, P_RELAYHOST), "example.com+example.com+$x+$+a$");
    cr_expect_str_eq(config_str(cfg, P_HOME_MAILBOX), "setempty");
    cr_expect_str_eq(config_str(cfg, P_MAIL_SPOOL_DIRECTORY), "yes/no");
    cr_expect_str_eq(config_str(cfg, P_VIRTUAL_MAILBOX_BASE), "a b");
    cr_expect_str_eq(config_str(cfg, P_MYDESTINATION), "");
    /* The raw text is kept for postconf -n. */
    cr_expect_str_eq(config_raw(cfg, P_MYORIGIN), "$mydomain");
    config_free(cfg);
}

Test(config, expansion_is_lazy_order_independent)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("myorigin = $mydomain\nmydomain = late.example\n", NULL, &err);

    cr_assert_not_null(cfg);
    cr_expect_str_eq(config_str(cfg, P_MYORIGIN), "late.example");
    config_free(cfg);
}

Test(config, raw_parameters_are_not_expanded)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("mailbox_command = /usr/bin/procmail -a \"$EXTENSION\" $user\n", NULL, &err);

    cr_assert_not_null(cfg);
    cr_expect_str_eq(config_str(cfg, P_MAILBOX_COMMAND), "/usr/bin/procmail -a \"$EXTENSION\" $user");
    cr_expect_str_eq(config_str(cfg, P_FORWARD_PATH), "$home/.forward${recipient_delimiter}${extension}, $home/.forward");
    config_free(cfg);
}

Test(config, recursion_is_an_error_not_a_crash)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("relayhost = $a\na = $b\nb = $a\n", NULL, &err);

    cr_assert_null(cfg);
    cr_expect(strstr(STR_DATA(&err), "/cfg/main.cf, line 2: parameter a: macro expansion recursion: $a -> $b -> $a") != NULL,
	      "got: %s", STR_DATA(&err));
    str_reset(&err);
    cr_assert_null(load("myorigin = x$myorigin\n", NULL, &err));
    cr_expect(strstr(STR_DATA(&err), "line 1: parameter myorigin: macro expansion recursion: $myorigin -> $myorigin"),
	      "got: %s", STR_DATA(&err));
}

Test(config, long_chain_hits_the_nesting_limit)
{
    STR     text = STR_INIT, err = STR_INIT;
    CONFIG *cfg;

    str_puts(&text, "relayhost = $p0\n");
    for (int i = 0; i < 5000; i++)
	str_printf(&text, "p%d = $p%d\n", i, i + 1);
    cfg = load(STR_DATA(&text), NULL, &err);
    cr_assert_null(cfg);
    cr_expect(strstr(STR_DATA(&err), "unreasonable macro call nesting") != NULL, "got: %s", STR_DATA(&err));
    str_release(&text);
}

Test(config, unterminated_brace)
{
    STR     err = STR_INIT;

    cr_assert_null(load("myorigin = ${myhostname\n", NULL, &err));
    cr_expect(strstr(STR_DATA(&err), "/cfg/main.cf, line 1: parameter myorigin: unterminated ${ in \"${myhostname\"") != NULL,
	      "got: %s", STR_DATA(&err));
    str_reset(&err);
    cr_assert_null(load("myorigin = ${}\n", NULL, &err));
    cr_expect(strstr(STR_DATA(&err), "missing parameter name") != NULL, "got: %s", STR_DATA(&err));
    str_reset(&err);
    cr_assert_null(load("myorigin = ${a b}\n", NULL, &err));
    cr_expect(strstr(STR_DATA(&err), "bad character after parameter name") != NULL);
}

Test(config, lenient_mode_warns_instead)
{
    STR     err = STR_INIT;
    static const char text[] = "myorigin = ${x\nhopcount_limit = many\n";
    CONFIG *cfg = config_load_text("/cfg", text, strlen(text), NULL, 0, CONFIG_LENIENT, &err);

    cr_assert_not_null(cfg);
    cr_expect(strstr(STR_DATA(&captured), "warning: /cfg/main.cf, line 2: parameter hopcount_limit: bad value \"many\": not a number"),
	      "got: %s", STR_DATA(&captured));
    config_free(cfg);
}

/* ---------- types and ranges ---------- */

struct bad_case {
    const char *text;
    const char *expect;
};

Test(config, bad_values_name_file_line_parameter_value)
{
    static const struct bad_case cases[] = {
	{"message_size_limit = 10MB\n", "/cfg/main.cf, line 1: parameter message_size_limit: bad value \"10MB\": not a number"},
	{"\nhopcount_limit = 0\n", "/cfg/main.cf, line 2: parameter hopcount_limit: bad value \"0\": out of range (minimum 1)"},
	{"message_size_limit = -1\n", "parameter message_size_limit: bad value \"-1\": out of range (minimum 0)"},
	{"message_size_limit = 99999999999999999999999\n", "number too large"},
	{"maximal_queue_lifetime = 5x\n", "parameter maximal_queue_lifetime: bad value \"5x\": bad time value"},
	{"maximal_queue_lifetime = 5dd\n", "bad time value"},
	{"queue_run_delay = 0\n", "parameter queue_run_delay: bad value \"0\": out of range (minimum 1s)"},
	{"in_flow_delay = 11s\n", "parameter in_flow_delay: bad value \"11s\": out of range (maximum 10s)"},
	{"qmgr_fudge_factor = 101\n", "out of range (maximum 100)"},
	{"enable_long_queue_ids = maybe\n", "parameter enable_long_queue_ids: bad value \"maybe\": not a boolean"},
	{"default_destination_message_rate_limit = 5/d\n", "bad rate unit"},
	{"default_destination_message_rate_limit = fast\n", "bad rate"},
	{"mynetworks_style = everything\n", "parameter mynetworks_style: bad value \"everything\": unknown value"},
	{"inet_protocols = ipv4, ipx\n", "unknown value \"ipx\""},
	{"default_destination_concurrency_positive_feedback = 1/0\n", "bad feedback value"},
	{"hopcount_limit = $mail_name\n", "parameter hopcount_limit: bad value \"Sluice\": not a number"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
	STR     err = STR_INIT;
	CONFIG *cfg = load(cases[i].text, NULL, &err);

	cr_expect_null(cfg, "accepted: %s", cases[i].text);
	cr_expect(strstr(STR_DATA(&err), cases[i].expect) != NULL, "case %s: got %s",
		  cases[i].text, STR_DATA(&err));
	config_free(cfg);
	str_release(&err);
    }
}

Test(config, good_values_parse)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("maximal_queue_lifetime = 2\n"		/* default unit d */
		       "delay_warning_time = 4\n"		/* default unit h */
		       "queue_run_delay = 2m\n"
		       "minimal_backoff_time = 1w\n"
		       "enable_long_queue_ids = YES\n"
		       "append_at_myorigin = False\n"
		       "swap_bangpath = true\n"
		       "message_size_limit = 0\n"
		       "default_destination_message_rate_limit = 30/m\n"
		       "default_destination_concurrency_negative_feedback = 1/concurrency\n", NULL, &err);

    cr_assert_not_null(cfg, "%s", STR_DATA(&err));
    cr_expect_eq(config_int(cfg, P_MAXIMAL_QUEUE_LIFETIME), 2 * 86400);
    cr_expect_eq(config_int(cfg, P_DELAY_WARNING_TIME), 4 * 3600);
    cr_expect_eq(config_int(cfg, P_QUEUE_RUN_DELAY), 120);
    cr_expect_eq(config_int(cfg, P_MINIMAL_BACKOFF_TIME), 7 * 86400);
    cr_expect_eq(config_bool(cfg, P_ENABLE_LONG_QUEUE_IDS), true);
    cr_expect_eq(config_bool(cfg, P_APPEND_AT_MYORIGIN), false);
    cr_expect_eq(config_bool(cfg, P_SWAP_BANGPATH), true);
    cr_expect_eq(config_int(cfg, P_MESSAGE_SIZE_LIMIT), 0);
    config_free(cfg);
}

Test(config, table_defaults_are_postfix_defaults)
{
    const CONFIG *cfg = config_current();

    cr_expect_eq(param_int(P_DEFAULT_DESTINATION_CONCURRENCY_LIMIT), 20);
    cr_expect_eq(param_int(P_INITIAL_DESTINATION_CONCURRENCY), 5);
    cr_expect_eq(param_int(P_DEFAULT_DESTINATION_RECIPIENT_LIMIT), 50);
    cr_expect_eq(param_int(P_DEFAULT_PROCESS_LIMIT), 100);
    cr_expect_eq(param_int(P_TRANSPORT_RETRY_TIME), 60);
    cr_expect_eq(param_int(P_QUEUE_RUN_DELAY), 300);
    cr_expect_eq(param_int(P_MINIMAL_BACKOFF_TIME), 300);
    cr_expect_eq(param_int(P_MAXIMAL_BACKOFF_TIME), 4000);
    cr_expect_eq(param_int(P_MAXIMAL_QUEUE_LIFETIME), 5 * 86400);
    cr_expect_eq(param_int(P_BOUNCE_QUEUE_LIFETIME), 5 * 86400);
    cr_expect_eq(param_int(P_DELAY_WARNING_TIME), 0);
    cr_expect_eq(param_int(P_QMGR_MESSAGE_ACTIVE_LIMIT), 20000);
    cr_expect_eq(param_int(P_IN_FLOW_DELAY), 1);
    cr_expect_eq(param_int(P_MESSAGE_SIZE_LIMIT), 10240000);
    cr_expect_eq(param_bool(P_ENABLE_LONG_QUEUE_IDS), false);
    cr_expect_str_eq(param_str(P_SYSLOG_NAME), "postfix");
    cr_expect_str_eq(param_str(P_MYNETWORKS_STYLE), "host");
    cr_expect_str_eq(param_str(P_QUEUE_DIRECTORY), "/var/spool/postfix");
    cr_expect_str_eq(param_str(P_NOTIFY_CLASSES), "resource, software");
    cr_expect_str_eq(param_str(P_DEFAULT_DESTINATION_MESSAGE_RATE_LIMIT), "0");
    cr_expect_str_eq(config_default(cfg, P_MYDESTINATION), "$myhostname, localhost.$mydomain, localhost");
    /* Computed: myhostname has a dot; mydomain follows it; mynetworks has loopback. */
    cr_expect(strchr(param_str(P_MYHOSTNAME), '.') != NULL);
    cr_expect(strstr(param_str(P_MYNETWORKS), "127.0.0.1/32") != NULL, "mynetworks = %s", param_str(P_MYNETWORKS));
    cr_expect_str_eq(param_str(P_MYORIGIN), param_str(P_MYHOSTNAME));
}

Test(config, computed_defaults)
{
    char   *s;

    cr_expect_str_eq((s = param_compute_mydomain("mx.example.com")), "example.com");
    mem_free(s);
    cr_expect_str_eq((s = param_compute_mydomain("host.com")), "localdomain");
    mem_free(s);
    cr_expect_str_eq((s = param_compute_mydomain("host")), "localdomain");
    mem_free(s);
    s = param_compute_mynetworks("subnet", "ipv4");
    cr_expect(strstr(s, "127.0.0.0/8") != NULL, "%s", s);
    cr_expect(strchr(s, '[') == NULL, "ipv4 only: %s", s);
    mem_free(s);
    s = param_compute_mynetworks("class", "ipv4");
    cr_expect(strstr(s, "127.0.0.0/8") != NULL, "%s", s);
    mem_free(s);
    s = param_compute_mynetworks("host", "all");
    cr_expect(strstr(s, "127.0.0.1/32") != NULL, "%s", s);
    mem_free(s);
}

/* ---------- names: unknown, per transport, per service ---------- */

Test(config, unknown_parameter_warns_with_file_and_line)
{
    STR     err = STR_INIT;
    CONFIG *cfg = load("relayhost = x\n\nbogus_param = 1\n", NULL, &err);

    cr_assert_not_null(cfg);
    cr_expect(strstr(STR_DATA(&captured), "warning: /cfg/main.cf, line 3: unused parameter: bogus_param=1") != NULL,
	      "got: %s", STR_DATA(&captured));
    config_free(cfg);
}

Test(config, transport_parameters)
{
    static const char master[] =
	"smtp inet n - n - - smtpd\n"
	"smtp unix - - n - - smtp\n"
	"fast unix - - n - 7 smtp\n"
	"  -o smtp_connect_timeout=5s\n";
    STR     err = STR_INIT;
    CONFIG *cfg = load("fast_destination_concurrency_limit = 100\n"
		       "fast_destination_rate_delay = 2m\n"
		       "fast_initial_destination_concurrency = 9\n"
		       "fast_destination_message_rate_limit = 10/s\n"
		       "fast_helo_name = fast.example\n"
		       "default_destination_concurrency_limit = 30\n", master, &err);

    cr_assert_not_null(cfg, "%s", STR_DATA(&err));
    cr_expect_eq(STR_LEN(&captured), 0, "no warnings expected: %s", STR_DATA(&captured));
    config_install(cfg);
    cr_expect_eq(param_transport_int("fast", P_DEFAULT_DESTINATION_CONCURRENCY_LIMIT), 100);
    cr_expect_eq(param_transport_int("smtp", P_DEFAULT_DESTINATION_CONCURRENCY_LIMIT), 30);
    cr_expect_eq(param_transport_int("nosuch", P_DEFAULT_DESTINATION_CONCURRENCY_LIMIT), 30);
    cr_expect_eq(param_transport_int("fast", P_DEFAULT_DESTINATION_RATE_DELAY), 120);
    cr_expect_eq(param_transport_int("fast", P_INITIAL_DESTINATION_CONCURRENCY), 9);
    cr_expect_str_eq(param_transport_str("fast", P_DEFAULT_DESTINATION_MESSAGE_RATE_LIMIT), "10/s");
    cr_expect_str_eq(param_transport_str("fast", P_SMTP_HELO_NAME), "fast.example");
    cr_expect_eq(param_service_int("fast", P_SMTP_CONNECT_TIMEOUT), 5);
    cr_expect_eq(param_service_int("smtp", P_SMTP_CONNECT_TIMEOUT), 30);
    cr_expect_eq(param_int(P_SMTP_CONNECT_TIMEOUT), 30);
    cr_expect_eq(param_service_maxproc("fast"), 7);
    cr_expect_eq(param_service_maxproc("smtp/unix"), 100);
    cr_expect_eq(param_service_maxproc("unlisted"), 100);
}

Test(config, transport_parameter_bad_value)
{
    STR     err = STR_INIT;

    cr_assert_null(load("relay_destination_concurrency_limit = lots\n",
			"relay unix - - n - - smtp\n", &err));
    cr_expect(strstr(STR_DATA(&err), "/cfg/main.cf, line 1: parameter relay_destination_concurrency_limit: bad value \"lots\": not a number"),
	      "got: %s", STR_DATA(&err));
}

Test(config, service_overrides_and_service_name)
{
    static const char master[] =
	"submission inet n - n - - smtpd\n"
	"  -o syslog_name=postfix/$service_name\n"
	"  -o { mydestination = a, b c }\n"
	"  -o myhostname=sub.example.org\n"
	"  -o message_size_limit=$big\n";
    STR     err = STR_INIT;
    CONFIG *cfg = load("big = 2048\nmyorigin = $myhostname\n", master, &err);

    cr_assert_not_null(cfg, "%s", STR_DATA(&err));
    cr_expect_eq(STR_LEN(&captured), 0, "no warnings: %s", STR_DATA(&captured));
    cr_expect_str_eq(config_service_str(cfg, "submission", P_SYSLOG_NAME), "postfix/submission");
    cr_expect_str_eq(config_service_str(cfg, "submission/inet", P_MYDESTINATION), "a, b c");
    cr_expect_str_eq(config_service_str(cfg, "submission", P_MYORIGIN), "sub.example.org");
    cr_expect_eq(config_service_int(cfg, "submission", P_MESSAGE_SIZE_LIMIT), 2048);
    cr_expect_str_eq(config_str(cfg, P_SYSLOG_NAME), "postfix");
    cr_expect_eq(config_int(cfg, P_MESSAGE_SIZE_LIMIT), 10240000);
    config_free(cfg);
}

Test(config, service_override_bad_value)
{
    STR     err = STR_INIT;

    cr_assert_null(load("", "smtp inet n - n - - smtpd\n  -o smtpd_x=1\n  -o hopcount_limit=x\n", &err));
    cr_expect(strstr(STR_DATA(&err), "/cfg/master.cf, line 1: service smtp/inet: parameter hopcount_limit: bad value \"x\": not a number"),
	      "got: %s", STR_DATA(&err));
}

/* ---------- master.cf ---------- */

Test(config, mastercf_columns)
{
    static const char text[] = "# c\nsmtp inet n - y - - smtpd -v\n"
	"pipe unix - n n 60? 3 pipe\n"
	"  flags=R user=nobody argv=/bin/cat ${recipient}\n"
	"x fifo y y y 100 10 cmd { a b } -o { k = v w }\n";
    STR     err = STR_INIT, line = STR_INIT;
    MASTERCF *cf = mastercf_parse("/m", text, strlen(text), &err);

    cr_assert_not_null(cf, "%s", STR_DATA(&err));
    cr_assert_eq(cf->count, 3);
    cr_expect_str_eq(cf->svc[0].name, "smtp");
    cr_expect_eq(cf->svc[0].private_, 'n');
    cr_expect_eq(cf->svc[0].chroot, 'y');
    cr_expect_eq(cf->svc[0].maxproc, -1);
    cr_expect_str_eq(cf->svc[0].argv[0], "-v");
    cr_expect_str_eq(cf->svc[1].wakeup, "60?");
    cr_expect_eq(cf->svc[1].maxproc, 3);
    cr_expect_eq(cf->svc[1].argc, 4);
    cr_expect_str_eq(cf->svc[1].argv[3], "${recipient}");
    cr_expect_eq(cf->svc[1].line, 3);
    cr_expect_str_eq(cf->svc[2].argv[0], "a b");
    cr_expect_str_eq(mastercf_opt(&cf->svc[2], "k"), "v w");
    mastercf_format(&cf->svc[2], &line);
    cr_expect_str_eq(STR_DATA(&line), "x          fifo  y       y       y       100     10      cmd -o { k=v w } { a b }");
    cr_expect(mastercf_find(cf, "pipe", "unix") == &cf->svc[1]);
    cr_expect(mastercf_find(cf, "pipe/unix", NULL) == &cf->svc[1]);
    cr_expect(mastercf_find(cf, "pipe", "inet") == NULL);
    mastercf_free(cf);
}

Test(config, mastercf_errors)
{
    static const struct bad_case cases[] = {
	{"smtp tcp n - y - - smtpd\n", "/m, line 1: bad transport type: tcp"},
	{"\nsmtp inet x - y - - smtpd\n", "/m, line 2: bad private field: x"},
	{"smtp inet n - y soon - smtpd\n", "bad wakeup time: soon"},
	{"smtp inet n - y - many smtpd\n", "bad maximal process count: many"},
	{"smtp inet n - y -\n", "/m, line 1: missing \"maxproc\" field"},
	{"smtp inet n - y - - smtpd -o\n", "-o without name=value"},
	{"smtp inet n - y - - smtpd -o novalue\n", "missing '=' in \"-o novalue\""},
	{"smtp inet n - y - - smtpd { open\n", "missing '}'"},
	{"smtp inet n - y - - smtpd {a}b\n", "syntax error after '}'"},
	{"smtp inet n - y - - smtpd\nsmtp inet n - y - - smtpd\n", "line 2: duplicate service smtp/inet (first defined at line 1)"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
	STR     err = STR_INIT;
	MASTERCF *cf = mastercf_parse("/m", cases[i].text, strlen(cases[i].text), &err);

	cr_expect_null(cf, "accepted: %s", cases[i].text);
	cr_expect(strstr(STR_DATA(&err), cases[i].expect) != NULL, "case %s: got %s",
		  cases[i].text, STR_DATA(&err));
	mastercf_free(cf);
	str_release(&err);
    }
}

Test(config, shipped_files_load)
{
    STR     err = STR_INIT;
    const char *srcdir = getenv("SLUICE_SRCDIR");
    STR     dir = STR_INIT;
    CONFIG *cfg;

    str_printf(&dir, "%s/etc", srcdir && *srcdir ? srcdir : T_SRCDIR);
    cfg = config_load(STR_DATA(&dir), 0, &err);
    cr_assert_not_null(cfg, "%s", STR_DATA(&err));
    cr_expect_eq(STR_LEN(&captured), 0, "warnings: %s", STR_DATA(&captured));
    cr_expect_not_null(mastercf_find(config_mastercf(cfg), "smtp", "inet"));
    cr_expect_not_null(mastercf_find(config_mastercf(cfg), "relay", "unix"));
    cr_expect_str_eq(config_service_str(cfg, "relay", P_SYSLOG_NAME), "postfix/relay");
    cr_expect_eq(config_service_maxproc(cfg, "qmgr"), 1);
    config_free(cfg);
    str_release(&dir);
}

/* ---------- editor ---------- */

static void edit_case(const char *in, enum maincf_edit_op op, const MAINCF_EDIT *e,
		      size_t n, const char *expect)
{
    STR     out = STR_INIT;

    maincf_edit_text(in, strlen(in), op, e, n, &out);
    cr_expect_str_eq(STR_DATA(&out), expect);
    str_release(&out);
}

Test(config, edit_keeps_everything_else)
{
    static const char in[] =
	"# head comment\n"
	"relayhost = old\n"
	"    continued old\n"
	"# middle\n"
	"mydestination = a,\n"
	"    b\n"
	"relayhost=dup\n"
	"\n"
	"myorigin = x";
    MAINCF_EDIT set[] = {{"relayhost", "[new]:25"}, {"newp", "1"}};
    MAINCF_EDIT del[] = {{"mydestination", NULL}};

    edit_case(in, MAINCF_SET, set, 2,
	      "# head comment\nrelayhost = [new]:25\n# middle\nmydestination = a,\n    b\n\nmyorigin = x\nnewp = 1\n");
    edit_case(in, MAINCF_REMOVE, del, 1,
	      "# head comment\nrelayhost = old\n    continued old\n# middle\nrelayhost=dup\n\nmyorigin = x");
    edit_case(in, MAINCF_COMMENT, del, 1,
	      "# head comment\nrelayhost = old\n    continued old\n# middle\n#mydestination = a,\n#    b\nrelayhost=dup\n\nmyorigin = x");
    /* Name prefixes must not match. */
    MAINCF_EDIT pre[] = {{"relay", "z"}};

    edit_case("relayhost = a\n", MAINCF_SET, pre, 1, "relayhost = a\nrelay = z\n");
    edit_case("", MAINCF_SET, pre, 1, "relay = z\n");
}

Test(config, edit_file_is_atomic_and_keeps_mode)
{
    char    dir[] = "/tmp/sluice-cfg-XXXXXX";
    STR     path = STR_INIT, err = STR_INIT;
    FILE   *fp;
    struct stat st;
    MAINCF_EDIT e[] = {{"relayhost", "x"}};
    char   *text;
    size_t  len;

    cr_assert_not_null(mkdtemp(dir));
    str_printf(&path, "%s/main.cf", dir);
    fp = fopen(STR_DATA(&path), "w");
    fputs("# keep\nrelayhost = y\n", fp);
    fclose(fp);
    chmod(STR_DATA(&path), 0640);
    cr_assert_eq(maincf_edit_file(STR_DATA(&path), MAINCF_SET, e, 1, &err), 0, "%s", STR_DATA(&err));
    text = maincf_slurp(STR_DATA(&path), &len);
    cr_expect_str_eq(text, "# keep\nrelayhost = x\n");
    stat(STR_DATA(&path), &st);
    cr_expect_eq(st.st_mode & 0777, 0640);
    mem_free(text);
    /* A missing main.cf is an error, not a new file. */
    str_reset(&path);
    str_printf(&path, "%s/nope/main.cf", dir);
    cr_expect_eq(maincf_edit_file(STR_DATA(&path), MAINCF_SET, e, 1, &err), -1);
    str_reset(&path);
    str_printf(&path, "rm -rf '%s'", dir);
    cr_expect_eq(system(STR_DATA(&path)), 0);
}

/* ---------- snapshots ---------- */

Test(config, install_and_failed_reload_keeps_old)
{
    char    dir[] = "/tmp/sluice-cfg-XXXXXX";
    STR     path = STR_INIT, err = STR_INIT;
    FILE   *fp;
    const char *before;

    cr_assert_not_null(mkdtemp(dir));
    str_printf(&path, "%s/main.cf", dir);
    fp = fopen(STR_DATA(&path), "w");
    fputs("relayhost = first\n", fp);
    fclose(fp);
    cr_assert_eq(config_reload(dir, &err), 0, "%s", STR_DATA(&err));
    before = param_str(P_RELAYHOST);
    cr_expect_str_eq(before, "first");
    fp = fopen(STR_DATA(&path), "w");
    fputs("relayhost = second\nhopcount_limit = lots\n", fp);
    fclose(fp);
    cr_expect_eq(config_reload(dir, &err), -1);
    cr_expect_str_eq(param_str(P_RELAYHOST), "first");
    cr_expect(strstr(STR_DATA(&captured), "error: configuration not reloaded") != NULL, "%s", STR_DATA(&captured));
    cr_expect(strstr(STR_DATA(&captured), "line 2: parameter hopcount_limit: bad value \"lots\"") != NULL);
    fp = fopen(STR_DATA(&path), "w");
    fputs("relayhost = third\n", fp);
    fclose(fp);
    cr_expect_eq(config_reload(dir, &err), 0);
    cr_expect_str_eq(param_str(P_RELAYHOST), "third");
    /* The old value's storage is still valid until config_shutdown(). */
    cr_expect_str_eq(before, "first");
    str_reset(&path);
    str_printf(&path, "rm -rf '%s'", dir);
    cr_expect_eq(system(STR_DATA(&path)), 0);
}

Test(config, missing_maincf_is_an_error)
{
    STR     err = STR_INIT;

    cr_expect_null(config_load("/nonexistent-sluice-dir", 0, &err));
    cr_expect(strstr(STR_DATA(&err), "open /nonexistent-sluice-dir/main.cf: No such file or directory") != NULL,
	      "%s", STR_DATA(&err));
}

/* ---------- odds and ends ---------- */

Test(config, list_split)
{
    size_t  n;
    char  **l = config_list_split(" a, b\tc,,\n d inline:{ x=1, y=2 }, e ", &n);

    cr_assert_eq(n, 6);
    cr_expect_str_eq(l[0], "a");
    cr_expect_str_eq(l[3], "d");
    cr_expect_str_eq(l[4], "inline:{ x=1, y=2 }");
    cr_expect_str_eq(l[5], "e");
    cr_expect_null(l[6]);
    config_list_free(l);
    l = config_list_split("", &n);
    cr_expect_eq(n, 0);
    cr_expect_null(l[0]);
    config_list_free(l);
}

Test(config, dir_select)
{
    unsetenv("MAIL_CONFIG");
    cr_expect_str_eq(config_dir_select(NULL), SLUICE_SYSCONFDIR);
    setenv("MAIL_CONFIG", "/env/dir", 1);
    cr_expect_str_eq(config_dir_select(NULL), "/env/dir");
    cr_expect_str_eq(config_dir_select("/opt/c"), "/opt/c");
}

Test(config, param_lookup_and_table)
{
    cr_expect_eq(param_lookup("myhostname"), P_MYHOSTNAME);
    cr_expect_eq(param_lookup("2bounce_notice_recipient"), P_DOUBLE_BOUNCE_NOTICE_RECIPIENT);
    cr_expect_eq(param_lookup("no_such_thing"), P_COUNT);
    cr_expect_eq(param_type(P_MAXIMAL_QUEUE_LIFETIME), PARAM_TIME);
    cr_expect_eq(param_unit(P_MAXIMAL_QUEUE_LIFETIME), 'd');
    cr_expect(param_is_raw(P_FORWARD_PATH));
    cr_expect(!param_is_raw(P_MYORIGIN));
    for (int id = 0; id < P_COUNT; id++) {
	const char *why;

	/* Every default of a number, time or boolean is valid. */
	if (param_type((param_id) id) != PARAM_STR && param_type((param_id) id) != PARAM_LIST
	    && strchr(param_default((param_id) id), '$') == NULL)
	    cr_expect_eq(param_check_value((param_id) id, param_default((param_id) id), &why), 0,
			 "%s default \"%s\": %s", param_name((param_id) id),
			 param_default((param_id) id), why);
    }
}

