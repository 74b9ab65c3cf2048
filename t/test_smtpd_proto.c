/*
 * test_smtpd_proto.c - the SMTP server state machine (stages/smtpd_proto.c)
 * and relay control (stages/smtpd_check.c), driven without sockets: every
 * reply text, the log lines, pipelining rules, limits, BDAT, smuggling.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/smtpd.h"
#include "stages/smtpd_proto.h"

/* ---- fixtures ---- */

static STR test_log = STR_INIT;

static void test_sink(enum msg_level level, const char *service, const char *text)
{
    static const char *prefix[] = {"", "warning: ", "error: ", "fatal: ", "panic: "};

    (void) prefix;
    str_printf(&test_log, "%s\n", text);
}

static const char *const *test_kv;

static const char *test_get(void *ctx, const char *name)
{
    size_t  n = strlen(name);

    for (const char *const *kv = test_kv; kv && *kv; kv++)
	if (strncmp(*kv, name, n) == 0 && (*kv)[n] == '=')
	    return *kv + n + 1;
    return NULL;
}

static const char *const base_kv[] = {
    "myhostname=mx.test",
    "mydestination=mx.test, localhost",
    "mynetworks=127.0.0.0/8",
    "relay_domains=relay.example",
    "local_recipient_maps=inline:{ alice=1, bob=1, postmaster=1 }",
    "smtpd_error_sleep_time=0",
    "message_size_limit=10240000",
    NULL,
};

/* The base configuration plus extra "name=value" items (later wins). */
static SMTPD_CONFIG *config_with(const char *const *extra)
{
    static const char *merged[64];
    size_t  n = 0;
    STR     err = STR_INIT;
    SMTPD_CONFIG *cfg;

    for (const char *const *e = extra; e && *e; e++)
	merged[n++] = *e;
    for (const char *const *b = base_kv; *b; b++)
	merged[n++] = *b;
    merged[n] = NULL;
    test_kv = merged;
    cfg = smtpd_config_build(test_get, NULL, &err);
    cr_assert_not_null(cfg, "config: %s", STR_DATA(&err));
    str_release(&err);
    return cfg;
}

typedef struct SESSION {
    SMTPD_PROTO *p;
    SMTPD_CONFIG *cfg;
    STR     out;
    MESSAGE *msgs[8];
    int     nmsgs;
    int     submit_code;
    const char *submit_text;
} SESSION;

static int test_pressure_level;

static int test_pressure(void *ctx)
{
    return test_pressure_level;
}

static int test_etrn(void *ctx, const char *site)
{
    return strcmp(site, "deny.example") == 0 ? 1 : 0;
}

static void pump(SESSION *s)
{
    for (;;) {
	STR    *o = smtpd_proto_output(s->p);

	str_append(&s->out, STR_DATA(o), STR_LEN(o));
	str_reset(o);
	switch (smtpd_proto_event(s->p)) {
	case SMTPD_EV_SUBMIT:{
		MESSAGE *m = smtpd_proto_take_message(s->p);

		cr_assert_not_null(m);
		cr_assert_lt(s->nmsgs, 8);
		s->msgs[s->nmsgs++] = m;
		if (s->submit_code)
		    smtpd_proto_submit_done(s->p, s->submit_code, s->submit_text);
		else
		    smtpd_proto_submit_done(s->p, 250, m->queue_id);
		continue;
	    }
	case SMTPD_EV_FLUSH:
	case SMTPD_EV_SLEEP:
	    smtpd_proto_resume(s->p);
	    continue;
	default:
	    return;
	}
    }
}

static void open_addr(SESSION *s, SMTPD_CONFIG *cfg, const char *addr)
{
    SMTPD_PEER peer = {.name = strncmp(addr, "127.", 4) ? "unknown" : "localhost",
    .addr = addr,.port = 4711,.local_addr = "127.0.0.1"};
    SMTPD_HOOKS hooks = {.etrn = test_etrn,.pressure = test_pressure};

    memset(s, 0, sizeof(*s));
    msg_sink_set(test_sink);
    s->cfg = cfg;
    s->p = smtpd_proto_new(cfg, &peer, &hooks);
    smtpd_proto_greet(s->p, NULL, 0);
    pump(s);
}

static void open_default(SESSION *s)
{
    open_addr(s, config_with(NULL), "127.0.0.1");
}

/* Sends input, returns everything answered since the last call. */
static const char *say(SESSION *s, const char *input)
{
    static STR last = STR_INIT;

    str_reset(&s->out);
    smtpd_proto_input(s->p, input, strlen(input));
    pump(s);
    str_reset(&last);
    str_append(&last, STR_DATA(&s->out), STR_LEN(&s->out));
    return STR_DATA(&last);
}

static void close_session(SESSION *s)
{
    smtpd_proto_free(s->p);
    for (int i = 0; i < s->nmsgs; i++)
	message_free(s->msgs[i]);
    smtpd_config_free(s->cfg);
    str_release(&s->out);
}

#define SAYS(s, in, want) do { const char *got_ = say((s), (in)); \
	cr_assert_str_eq(got_, (want), "after %s: got [%s]", (in), got_); } while (0)
#define LOGGED(text) cr_assert(strstr(STR_DATA(&test_log), (text)) != NULL, \
	"log lacks [%s]:\n%s", (text), STR_DATA(&test_log))

/* ---- greeting, EHLO, simple commands ---- */

Test(smtpd_proto, greeting_and_ehlo_advertise_every_extension)
{
    SESSION s;

    open_default(&s);
    cr_assert_str_eq(STR_DATA(&s.out), "220 mx.test ESMTP Sluice\r\n");
    SAYS(&s, "EHLO client.example\r\n",
	 "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
	 "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
	 "250 CHUNKING\r\n");
    SAYS(&s, "HELO client.example\r\n", "250 mx.test\r\n");
    SAYS(&s, "HELO\r\n", "501 Syntax: HELO hostname\r\n");
    SAYS(&s, "EHLO\r\n", "501 Syntax: EHLO hostname\r\n");
    SAYS(&s, "NOOP\r\n", "250 2.0.0 Ok\r\n");
    SAYS(&s, "RSET\r\n", "250 2.0.0 Ok\r\n");
    SAYS(&s, "STARTTLS\r\n", "502 5.5.1 Error: command not implemented\r\n");
    SAYS(&s, "FOO\r\n", "502 5.5.2 Error: command not recognized\r\n");
    SAYS(&s, "\r\n", "500 5.5.2 Error: bad syntax\r\n");
    SAYS(&s, "VRFY alice\r\n", "252 2.0.0 alice\r\n");
    SAYS(&s, "VRFY\r\n", "501 5.5.4 Syntax: VRFY address\r\n");
    SAYS(&s, "ETRN example.com\r\n", "250 Queuing started\r\n");
    SAYS(&s, "ETRN deny.example\r\n", "459 4.7.1 <deny.example>: service unavailable\r\n");
    SAYS(&s, "QUIT\r\n", "221 2.0.0 Bye\r\n");
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_CLOSE);
    close_session(&s);
    LOGGED("connect from localhost[127.0.0.1]");
    LOGGED("disconnect from localhost[127.0.0.1] helo=1/2 ehlo=1/2 starttls=0/1 "
	   "rset=1 noop=1 vrfy=1/2 etrn=1/2 quit=1 unknown=0/1 commands=7/13");
}

Test(smtpd_proto, vrfy_disabled)
{
    const char *const kv[] = {"disable_vrfy_command=yes", NULL};
    SESSION s;

    open_addr(&s, config_with(kv), "127.0.0.1");
    const char *r = say(&s, "EHLO x\r\n");

    cr_assert_null(strstr(r, "VRFY"));
    SAYS(&s, "VRFY alice\r\n", "502 5.5.1 VRFY command is disabled\r\n");
    close_session(&s);
}

/* ---- a whole transaction ---- */

Test(smtpd_proto, transaction_envelope_content_and_logs)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO client.example\r\n");
    SAYS(&s, "MAIL FROM:<sender@example.org> BODY=8BITMIME RET=HDRS ENVID=abc+2Bd SIZE=100\r\n",
	 "250 2.1.0 Ok\r\n");
    SAYS(&s, "RCPT TO:<user@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u+40r.example\r\n",
	 "250 2.1.5 Ok\r\n");
    SAYS(&s, "RCPT TO:<@hop1,@hop2:second@remote.example>\r\n", "250 2.1.5 Ok\r\n");
    SAYS(&s, "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
    const char *r = say(&s, "Subject: hi\r\n\r\n..dot\r\n.\r\n");

    cr_assert_eq(s.nmsgs, 1);
    MESSAGE *m = s.msgs[0];
    char    want[128];

    snprintf(want, sizeof(want), "250 2.0.0 Ok: queued as %s\r\n", m->queue_id);
    cr_assert_str_eq(r, want);
    cr_assert_str_eq(m->sender, "sender@example.org");
    cr_assert_str_eq(m->client_name, "localhost");
    cr_assert_str_eq(m->client_addr, "127.0.0.1");
    cr_assert_str_eq(m->helo, "client.example");
    cr_assert_str_eq(m->protocol, "ESMTP");
    cr_assert_str_eq(m->dsn_envid, "abc+d");
    cr_assert_eq(m->dsn_ret, DSN_RET_HDRS);
    cr_assert_eq(m->body_type, BODY_TYPE_8BITMIME);
    cr_assert_eq(m->nrcpt, 2);
    cr_assert_str_eq(m->rcpt[0].address, "user@remote.example");
    cr_assert_eq(m->rcpt[0].dsn_notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
    cr_assert_str_eq(m->rcpt[0].dsn_orcpt, "rfc822;u@r.example");
    cr_assert_str_eq(m->rcpt[1].address, "second@remote.example");
    cr_assert_eq(m->content->len, strlen("Subject: hi\r\n\r\n.dot\r\n"));
    cr_assert(memcmp(m->content->data, "Subject: hi\r\n\r\n.dot\r\n", m->content->len) == 0);
    SAYS(&s, "QUIT\r\n", "221 2.0.0 Bye\r\n");
    snprintf(want, sizeof(want), "%s: client=localhost[127.0.0.1]", m->queue_id);
    close_session(&s);
    LOGGED(want);
    LOGGED("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6");
}

Test(smtpd_proto, null_sender_quoted_local_part_and_bad_addresses)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    SAYS(&s, "MAIL FROM:<a@@b>\r\n", "501 5.1.7 Bad sender address syntax\r\n");
    SAYS(&s, "MAIL FROM:<a@b\r\n", "501 5.1.7 Bad sender address syntax\r\n");
    SAYS(&s, "MAIL TO:<a@b.c>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
    SAYS(&s, "MAIL FROM:<j\xc3\xa9@b.example>\r\n",
	 "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n");
    SAYS(&s, "MAIL FROM:<>\r\n", "250 2.1.0 Ok\r\n");
    SAYS(&s, "MAIL FROM:<>\r\n", "503 5.5.1 Error: nested MAIL command\r\n");
    SAYS(&s, "RCPT TO:<>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
    SAYS(&s, "RCPT TO:<a b@c.example>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
    SAYS(&s, "RCPT TO:<x@bad..example>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
    SAYS(&s, "RCPT FROM:<x@y.example>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
    SAYS(&s, "RCPT TO:<\"john doe\"@remote.example>\r\n", "250 2.1.5 Ok\r\n");
    SAYS(&s, "RCPT TO:<u@[192.0.2.1]>\r\n", "250 2.1.5 Ok\r\n");
    SAYS(&s, "RCPT TO:<u@[300.1.1.1]>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
    SAYS(&s, "RSET\r\n", "250 2.0.0 Ok\r\n");
    SAYS(&s, "MAIL FROM:<j\xc3\xa9@b.example> SMTPUTF8\r\n", "250 2.1.0 Ok\r\n");
    close_session(&s);
}

Test(smtpd_proto, esmtp_parameter_errors)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example> FOO=bar\r\n", "555 5.5.4 Unsupported option: FOO=bar\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example> BODY=9BIT\r\n",
	 "501 5.5.4 Unsupported BODY parameter value\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example> SIZE=12x\r\n", "501 5.5.4 Bad message size syntax\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example> RET=ALL\r\n", "501 5.5.4 Bad RET parameter syntax\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example> ENVID=a=b\r\n", "501 5.5.4 Bad ENVID parameter syntax\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example> SIZE=10240001\r\n",
	 "552 5.3.4 Message size exceeds fixed limit\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 Ok\r\n");
    SAYS(&s, "RCPT TO:<u@r.example> NOTIFY=NEVER,SUCCESS\r\n",
	 "501 5.5.4 Bad NOTIFY parameter syntax\r\n");
    SAYS(&s, "RCPT TO:<u@r.example> NOTIFY=SOMETIMES\r\n",
	 "501 5.5.4 Bad NOTIFY parameter syntax\r\n");
    SAYS(&s, "RCPT TO:<u@r.example> ORCPT=rfc822\r\n", "501 5.5.4 Bad ORCPT parameter syntax\r\n");
    SAYS(&s, "RCPT TO:<u@r.example> XYZ\r\n", "555 5.5.4 Unsupported option: XYZ\r\n");
    SAYS(&s, "RCPT TO:<u@r.example> NOTIFY=NEVER\r\n", "250 2.1.5 Ok\r\n");
    close_session(&s);
}

/* ---- sequence errors ---- */

Test(smtpd_proto, rcpt_before_mail_and_data_without_recipients)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    SAYS(&s, "RCPT TO:<u@r.example>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
    SAYS(&s, "DATA\r\n", "503 5.5.1 Error: need RCPT command\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 Ok\r\n");
    SAYS(&s, "DATA\r\n", "554 5.5.1 Error: no valid recipients\r\n");
    SAYS(&s, "DATA now\r\n", "501 5.5.4 Syntax: DATA\r\n");
    SAYS(&s, "RSET x\r\n", "501 5.5.4 Syntax: RSET\r\n");
    close_session(&s);
    LOGGED("rcpt=0/1 data=0/3");
}

Test(smtpd_proto, helo_required)
{
    const char *const kv[] = {"smtpd_helo_required=yes", NULL};
    SESSION s;

    open_addr(&s, config_with(kv), "127.0.0.1");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "503 5.5.1 Error: send HELO/EHLO first\r\n");
    close_session(&s);
}

/* ---- hostile input ---- */

Test(smtpd_proto, nul_bytes_in_a_command)
{
    SESSION s;

    open_default(&s);
    str_reset(&s.out);
    smtpd_proto_input(s.p, "EHLO a\0b\r\n", 10);
    pump(&s);
    cr_assert_str_eq(STR_DATA(&s.out), "500 5.5.2 Error: bad syntax\r\n");
    SAYS(&s, "NOOP\r\n", "250 2.0.0 Ok\r\n");
    close_session(&s);
}

Test(smtpd_proto, bad_utf8_in_a_command)
{
    SESSION s;

    open_default(&s);
    SAYS(&s, "EHLO \xff\xfe\r\n", "500 5.5.2 Error: bad UTF-8 syntax\r\n");
    close_session(&s);
}

Test(smtpd_proto, one_megabyte_command_line)
{
    SESSION s;
    char    chunk[4096];

    open_default(&s);
    memset(chunk, 'A', sizeof(chunk));
    memcpy(chunk, "EHLO ", 5);
    str_reset(&s.out);
    for (int i = 0; i < 256; i++) {
	smtpd_proto_input(s.p, chunk, sizeof(chunk));
	pump(&s);
	cr_assert_eq(STR_LEN(&s.out), 0, "answered before the line ended");
    }
    SAYS(&s, "\r\nNOOP\r\n", "500 5.5.0 Error: line too long\r\n250 2.0.0 Ok\r\n");
    SAYS(&s, "NOOP\r\n", "250 2.0.0 Ok\r\n");
    close_session(&s);
}

Test(smtpd_proto, ten_thousand_recipients)
{
    SESSION s;
    STR     in = STR_INIT;
    int     ok = 0, limit = 0;
    const char *r;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    for (int i = 0; i < 10000; i++)
	str_printf(&in, "RCPT TO:<user%d@remote.example>\r\n", i);
    r = say(&s, STR_DATA(&in));
    for (const char *l = r; *l; l = strstr(l, "\r\n") + 2) {
	if (strncmp(l, "250 2.1.5 Ok\r\n", 14) == 0)
	    ok++;
	else if (strncmp(l, "452 4.5.3 Error: too many recipients\r\n", 38) == 0)
	    limit++;
	else {
	    cr_assert_str_eq(l, "421 4.7.0 mx.test Error: too many errors\r\n");
	    break;
	}
    }
    cr_assert_eq(ok, 1000);
    /* 1000 overshoot answers that do not count, then 20 that do. */
    cr_assert_eq(limit, 1000 + 20, "limit answers: %d", limit);
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_CLOSE);
    close_session(&s);
    str_release(&in);
    LOGGED("too many errors after RCPT from localhost[127.0.0.1]");
}

Test(smtpd_proto, message_over_the_size_limit)
{
    const char *const kv[] = {"message_size_limit=1000", NULL};
    SESSION s;
    char    body[3000];

    open_addr(&s, config_with(kv), "127.0.0.1");
    say(&s, "EHLO x.example\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example> SIZE=2000\r\n", "552 5.3.4 Message size exceeds fixed limit\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    say(&s, "DATA\r\n");
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = 0;
    SAYS(&s, body, "");
    SAYS(&s, "\r\n.\r\n", "552 5.3.4 Message size exceeds fixed limit\r\n");
    cr_assert_eq(s.nmsgs, 0);
    SAYS(&s, "RCPT TO:<u@r.example>\r\n", "503 5.5.1 Error: need MAIL command\r\n");
    close_session(&s);
}

/* ---- smuggling through the whole machine ---- */

static void smuggle(const char *seq)
{
    SESSION s;
    char    in[512];

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    say(&s, "DATA\r\n");
    snprintf(in, sizeof(in), "Subject: one\r\n\r\nbody%sMAIL FROM:<admin@b.example>\r\n"
	     "RCPT TO:<victim@r.example>\r\nDATA\r\n\r\nsmuggled\r\n.\r\n", seq);
    say(&s, in);
    cr_assert_eq(s.nmsgs, 1, "a smuggled second message after [%s]", seq);
    cr_assert(memmem(s.msgs[0]->content->data, s.msgs[0]->content->len, "smuggled", 8));
    cr_assert_eq(s.msgs[0]->nrcpt, 1);
    close_session(&s);
}

Test(smtpd_proto, smuggling_sequences_never_split_a_message)
{
    smuggle("\n.\n");
    smuggle("\n.\r\n");
    smuggle("\r.\r");
    smuggle("\r\n.\n");
    smuggle("\r.\r\n");
}

Test(smtpd_proto, bare_lf_reject_mode)
{
    const char *const kv[] = {"smtpd_forbid_bare_newline=reject", NULL};
    SESSION s;

    open_addr(&s, config_with(kv), "127.0.0.1");
    SAYS(&s, "EHLO x.example\n", "550 5.5.2 Error: bare <LF> received\r\n");
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    say(&s, "DATA\r\n");
    SAYS(&s, "a\nb\r\n.\r\n", "550 5.5.2 Error: bare <LF> received\r\n");
    cr_assert_eq(s.nmsgs, 0);
    close_session(&s);
}

/* ---- pipelining ---- */

Test(smtpd_proto, allowed_pipelining_after_ehlo)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@r.example>\r\nRCPT TO:<v@r.example>\r\nDATA\r\n",
	 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    const char *r = say(&s, "x\r\n.\r\nMAIL FROM:<c@d.example>\r\nRCPT TO:<u@r.example>\r\n");

    cr_assert(strstr(r, "250 2.0.0 Ok: queued as ") == r);
    cr_assert(strstr(r, "\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n") != NULL);
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_INPUT);
    close_session(&s);
}

Test(smtpd_proto, pipelining_after_ehlo_is_refused)
{
    SESSION s;

    open_default(&s);
    const char *r = say(&s, "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\n");

    cr_assert(strstr(r, "250 CHUNKING\r\n554 5.5.0 Error: SMTP protocol synchronization\r\n"));
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_CLOSE);
    close_session(&s);
    LOGGED("improper command pipelining after EHLO from localhost[127.0.0.1]: MAIL FROM:<a@b.example>??");
}

Test(smtpd_proto, content_pipelined_after_data_is_refused)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@r.example>\r\nDATA\r\nSubject: x\r\n",
	 "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	 "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    cr_assert_eq(s.nmsgs, 0);
    close_session(&s);
    LOGGED("improper command pipelining after DATA from localhost[127.0.0.1]: Subject: x??");
}

Test(smtpd_proto, helo_client_may_not_pipeline)
{
    SESSION s;

    open_default(&s);
    say(&s, "HELO x.example\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@r.example>\r\n",
	 "250 2.1.0 Ok\r\n554 5.5.0 Error: SMTP protocol synchronization\r\n");
    close_session(&s);
    LOGGED("improper command pipelining after MAIL from localhost[127.0.0.1]");
}

Test(smtpd_proto, commands_before_the_greeting)
{
    SESSION s;
    SMTPD_PEER peer = {.name = "unknown",.addr = "192.0.2.7",.port = 1};

    memset(&s, 0, sizeof(s));
    msg_sink_set(test_sink);
    s.cfg = config_with(NULL);
    s.p = smtpd_proto_new(s.cfg, &peer, NULL);
    smtpd_proto_greet(s.p, "EHLO x\r\n", 8);
    pump(&s);
    cr_assert_str_eq(STR_DATA(&s.out), "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_CLOSE);
    close_session(&s);
    LOGGED("improper command pipelining after CONNECT from unknown[192.0.2.7]: EHLO x??");
}

Test(smtpd_proto, pipelining_allowed_when_not_forbidden)
{
    const char *const kv[] = {"smtpd_forbid_unauth_pipelining=no", NULL};
    SESSION s;

    open_addr(&s, config_with(kv), "127.0.0.1");
    const char *r = say(&s, "EHLO x.example\r\nNOOP\r\n");

    cr_assert(strstr(r, "250 CHUNKING\r\n250 2.0.0 Ok\r\n"));
    close_session(&s);
}

/* ---- BDAT ---- */

Test(smtpd_proto, bdat_chunks)
{
    SESSION s;
    static const char chunk2[] = " wor\0ld\n";

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    SAYS(&s, "BDAT 5\r\nhello", "250 2.0.0 Ok: 5 bytes\r\n");
    str_reset(&s.out);
    smtpd_proto_input(s.p, "BDAT 8 LAST\r\n", 13);
    smtpd_proto_input(s.p, chunk2, sizeof(chunk2) - 1);
    pump(&s);
    cr_assert_eq(s.nmsgs, 1);
    const char want[] = "hello wor\0ld\r\n";

    cr_assert_eq(s.msgs[0]->content->len, sizeof(want) - 1);
    cr_assert(memcmp(s.msgs[0]->content->data, want, sizeof(want) - 1) == 0);
    cr_assert(strncmp(STR_DATA(&s.out), "250 2.0.0 Ok: queued as ", 24) == 0);
    SAYS(&s, "BDAT 3 LAST\r\nabc", "503 5.5.1 Error: need RCPT command\r\n");
    SAYS(&s, "BDAT x\r\n", "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_CLOSE);
    close_session(&s);
    LOGGED("bdat=2/4");
}

Test(smtpd_proto, bdat_zero_last_and_size_limit)
{
    const char *const kv[] = {"message_size_limit=10", NULL};
    SESSION s;

    open_addr(&s, config_with(kv), "127.0.0.1");
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    SAYS(&s, "BDAT 20\r\n01234567890123456789",
	 "552 5.3.4 Message size exceeds fixed limit\r\n");
    SAYS(&s, "BDAT 0 LAST\r\n", "552 5.3.4 Message size exceeds fixed limit\r\n");
    cr_assert_eq(s.nmsgs, 0);
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 Ok\r\n");
    SAYS(&s, "RCPT TO:<u@r.example>\r\n", "250 2.1.5 Ok\r\n");
    const char *r = say(&s, "BDAT 0 LAST\r\n");

    cr_assert(strncmp(r, "250 2.0.0 Ok: queued as ", 24) == 0, "%s", r);
    cr_assert_eq(s.nmsgs, 1);
    cr_assert_eq(s.msgs[0]->content->len, 0);
    close_session(&s);
}

/* ---- submission results, back-pressure, limits ---- */

Test(smtpd_proto, submission_failure_reply)
{
    SESSION s;

    open_default(&s);
    s.submit_code = 451;
    s.submit_text = "4.3.0 Error: queue file write error";
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    say(&s, "DATA\r\n");
    SAYS(&s, "x\r\n.\r\n", "451 4.3.0 Error: queue file write error\r\n");
    close_session(&s);
    LOGGED("data=0/1");
}

Test(smtpd_proto, back_pressure_at_mail_from)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    test_pressure_level = SMTPD_PRESSURE_FULL;
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "451 4.3.0 Error: queue busy, try again later\r\n");
    test_pressure_level = SMTPD_PRESSURE_SLOW;
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 Ok\r\n");
    test_pressure_level = 0;
    close_session(&s);
}

Test(smtpd_proto, submit_is_parked_until_done)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    say(&s, "DATA\r\n");
    smtpd_proto_input(s.p, "x\r\n.\r\nRSET\r\n", 12);
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_SUBMIT);
    MESSAGE *m = smtpd_proto_take_message(s.p);

    /* Input while parked is kept, not handled. */
    smtpd_proto_input(s.p, "RSET\r\n", 6);
    cr_assert_eq(STR_LEN(smtpd_proto_output(s.p)), 0);
    smtpd_proto_submit_done(s.p, 250, "ABCDEF");
    cr_assert_str_eq(STR_DATA(smtpd_proto_output(s.p)),
		     "250 2.0.0 Ok: queued as ABCDEF\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
    message_free(m);
    close_session(&s);
}

Test(smtpd_proto, timeout_and_lost_connection)
{
    SESSION s;

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    smtpd_proto_timeout(s.p);
    cr_assert_str_eq(STR_DATA(smtpd_proto_output(s.p)),
		     "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_CLOSE);
    close_session(&s);
    LOGGED("timeout after RCPT from localhost[127.0.0.1]");

    open_default(&s);
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    say(&s, "RCPT TO:<u@r.example>\r\n");
    say(&s, "DATA\r\n");
    say(&s, "partial");
    smtpd_proto_eof(s.p);
    close_session(&s);
    LOGGED("lost connection after DATA from localhost[127.0.0.1]");
}

Test(smtpd_proto, soft_error_limit_sleeps_before_replying)
{
    const char *const kv[] = {"smtpd_soft_error_limit=2", "smtpd_error_sleep_time=1s", NULL};
    SESSION s;

    open_addr(&s, config_with(kv), "127.0.0.1");
    smtpd_proto_input(s.p, "FOO\r\n", 5);
    smtpd_proto_input(s.p, "FOO\r\n", 5);
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_INPUT);
    str_reset(smtpd_proto_output(s.p));
    smtpd_proto_input(s.p, "NOOP\r\n", 6);
    cr_assert_eq(smtpd_proto_event(s.p), SMTPD_EV_SLEEP);
    cr_assert_eq(smtpd_proto_sleep_ms(s.p), 1000);
    cr_assert_eq(STR_LEN(smtpd_proto_output(s.p)), 0);
    smtpd_proto_resume(s.p);
    cr_assert_str_eq(STR_DATA(smtpd_proto_output(s.p)), "250 2.0.0 Ok\r\n");
    close_session(&s);
}

Test(smtpd_proto, connection_count_limit)
{
    const char *const kv[] = {"smtpd_client_connection_count_limit=1", NULL};
    SESSION a, b;

    open_addr(&a, config_with(kv), "10.0.0.9");
    open_addr(&b, config_with(kv), "10.0.0.9");
    cr_assert_str_eq(STR_DATA(&b.out), "421 4.7.0 mx.test Error: too many connections from 10.0.0.9\r\n");
    cr_assert_eq(smtpd_proto_event(b.p), SMTPD_EV_CLOSE);
    close_session(&b);
    close_session(&a);
    LOGGED("warning: Connection concurrency limit exceeded: 2 from unknown[10.0.0.9] for service smtp");
}

Test(smtpd_proto, message_rate_limit)
{
    const char *const kv[] = {"smtpd_client_message_rate_limit=1", NULL};
    SESSION s;

    open_addr(&s, config_with(kv), "127.0.0.1");
    say(&s, "EHLO x.example\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 Ok\r\n");
    say(&s, "RSET\r\n");
    SAYS(&s, "MAIL FROM:<a@b.example>\r\n", "450 4.7.1 Error: too much mail from 127.0.0.1\r\n");
    close_session(&s);
}

/* ---- relay control ---- */

Test(smtpd_proto, outside_client_cannot_relay)
{
    SESSION s;

    open_addr(&s, config_with(NULL), "192.0.2.1");
    say(&s, "EHLO client.example\r\n");
    say(&s, "MAIL FROM:<s@x.example>\r\n");
    SAYS(&s, "RCPT TO:<u@outside.example>\r\n", "554 5.7.1 <u@outside.example>: Relay access denied\r\n");
    SAYS(&s, "RCPT TO:<alice@mx.test>\r\n", "250 2.1.5 Ok\r\n");
    SAYS(&s, "RCPT TO:<Alice+tag@MX.TEST>\r\n", "250 2.1.5 Ok\r\n");
    SAYS(&s, "RCPT TO:<postmaster>\r\n", "250 2.1.5 Ok\r\n");
    SAYS(&s, "RCPT TO:<nosuch@mx.test>\r\n",
	 "550 5.1.1 <nosuch@mx.test>: Recipient address rejected: User unknown in local recipient table\r\n");
    SAYS(&s, "RCPT TO:<u@relay.example>\r\n", "250 2.1.5 Ok\r\n");
    SAYS(&s, "RCPT TO:<u%outside.example@mx.test>\r\n",
	 "554 5.7.1 <u%outside.example@mx.test>: Relay access denied\r\n");
    SAYS(&s, "RCPT TO:<u@[127.0.0.1]>\r\n",
	 "550 5.1.1 <u@[127.0.0.1]>: Recipient address rejected: User unknown in local recipient table\r\n");
    close_session(&s);
    LOGGED("NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <u@outside.example>: "
	   "Relay access denied; from=<s@x.example> to=<u@outside.example> proto=ESMTP "
	   "helo=<client.example>\n");
}

Test(smtpd_proto, defer_unauth_destination_and_access_tables)
{
    const char *const kv[] = {
	"smtpd_relay_restrictions=permit_mynetworks, defer_unauth_destination",
	"smtpd_recipient_restrictions=check_recipient_access inline:{ { blocked@mx.test = REJECT go away }, "
	"{ tmp@mx.test = 450 4.2.0 mailbox busy }, bob@mx.test=OK }",
	"smtpd_sender_restrictions=check_sender_access inline:{ spam.example=REJECT }",
	"smtpd_client_restrictions=check_client_access inline:{ 198.51.100=REJECT }",
	NULL,
    };
    SESSION s;

    open_addr(&s, config_with(kv), "192.0.2.1");
    say(&s, "EHLO client.example\r\n");
    say(&s, "MAIL FROM:<s@x.example>\r\n");
    SAYS(&s, "RCPT TO:<u@outside.example>\r\n", "454 4.7.1 <u@outside.example>: Relay access denied\r\n");
    SAYS(&s, "RCPT TO:<blocked@mx.test>\r\n",
	 "554 5.7.1 <blocked@mx.test>: Recipient address rejected: go away\r\n");
    SAYS(&s, "RCPT TO:<tmp@mx.test>\r\n",
	 "450 4.2.0 <tmp@mx.test>: Recipient address rejected: mailbox busy\r\n");
    SAYS(&s, "RCPT TO:<bob@mx.test>\r\n", "250 2.1.5 Ok\r\n");
    say(&s, "RSET\r\n");
    say(&s, "MAIL FROM:<s@mail.spam.example>\r\n");
    SAYS(&s, "RCPT TO:<bob@mx.test>\r\n",
	 "554 5.7.1 <s@mail.spam.example>: Sender address rejected: Access denied\r\n");
    close_session(&s);

    open_addr(&s, config_with(kv), "198.51.100.20");
    say(&s, "EHLO client.example\r\n");
    say(&s, "MAIL FROM:<s@x.example>\r\n");
    SAYS(&s, "RCPT TO:<bob@mx.test>\r\n",
	 "554 5.7.1 <unknown[198.51.100.20]>: Client host rejected: Access denied\r\n");
    close_session(&s);
}

Test(smtpd_proto, open_relay_configuration_is_refused)
{
    const char *const kv[] = {"smtpd_relay_restrictions=permit", "smtpd_recipient_restrictions=", NULL};
    const char *merged[16];
    size_t  n = 0;
    STR     err = STR_INIT;

    for (const char *const *e = kv; *e; e++)
	merged[n++] = *e;
    for (const char *const *b = base_kv; *b; b++)
	merged[n++] = *b;
    merged[n] = NULL;
    test_kv = merged;
    cr_assert_null(smtpd_config_build(test_get, NULL, &err));
    cr_assert(strstr(STR_DATA(&err), "reject_unauth_destination"), "%s", STR_DATA(&err));
    str_release(&err);
}

Test(smtpd_proto, non_fqdn_recipient)
{
    const char *const kv[] = {"smtpd_recipient_restrictions=reject_non_fqdn_recipient", NULL};
    SESSION s;

    open_default(&s);
    close_session(&s);
    open_addr(&s, config_with(kv), "127.0.0.1");
    say(&s, "EHLO x.example\r\n");
    say(&s, "MAIL FROM:<a@b.example>\r\n");
    SAYS(&s, "RCPT TO:<user@host>\r\n",
	 "504 5.5.2 <user@host>: Recipient address rejected: need fully-qualified address\r\n");
    close_session(&s);
}
