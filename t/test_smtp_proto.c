/*
 * test_smtp_proto.c - the SMTP/LMTP client state machine against scripted
 * server replies (no sockets): what the client sends, in which order, and
 * the per-recipient results with Postfix's wording.
 */
#include "config.h"

#include <string.h>

#include <criterion/criterion.h>

#include "engine/blob.h"
#include "engine/mem.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/smtp.h"

typedef struct T {
    SMTP_PROTO *p;
    MESSAGE *m;
    SMTP_TXN txn;
    size_t  idx[8];
    SMTP_RESULT res[8];
} T;

static const int t_timeouts[SMTP_PH_COUNT] = {30, 300, 300, 301, 302, 120, 180, 600, 20, 300};

static void t_init(T *t, bool lmtp, const char *content, int nrcpt)
{
    SMTP_PROTO_OPTS o;
    static const char *rcpts[] = {"a@example.com", "b@example.com", "c@example.com"};

    memset(t, 0, sizeof(*t));
    memset(&o, 0, sizeof(o));
    o.lmtp = lmtp;
    o.loop_detect = !lmtp;
    o.skip_5xx_greeting = true;
    o.helo_name = "client.example.org";
    o.myhostname = "client.example.org";
    o.nexthop = "example.com";
    o.namaddr = "mx.example.com[192.0.2.1]";
    o.timeout = t_timeouts;
    t->p = smtp_proto_create(&o);
    t->m = message_new();
    mem_free(t->m->sender);
    t->m->sender = mem_strdup("s@example.org");
    for (int i = 0; i < nrcpt; i++) {
	message_add_rcpt(t->m, rcpts[i], NULL);
	t->idx[i] = (size_t) i;
    }
    t->m->content = blob_new(content, strlen(content));
    t->txn.msg = t->m;
    t->txn.nrcpt = (size_t) nrcpt;
    t->txn.rcpt = t->idx;
    t->txn.result = t->res;
}

static void t_free(T *t)
{
    for (int i = 0; i < 8; i++)
	smtp_result_clear(t->res + i);
    smtp_proto_free(t->p);
    message_free(t->m);
}

/* Everything the client has to send now (content included). */
static char *t_out(T *t)
{
    STR    *out = smtp_proto_out(t->p);
    STR     all = STR_INIT;

    for (;;) {
	str_append(&all, STR_DATA(out), out->len);
	str_reset(out);
	if (!smtp_proto_fill(t->p, 1 << 20) && out->len == 0)
	    break;
    }
    return str_steal(&all, NULL) ? : mem_strdup("");
}

#define EXPECT_OUT(t, text) do { char *o_ = t_out(t); \
    cr_assert_str_eq(o_, text); mem_free(o_); } while (0)

static enum smtp_proto_event t_in(T *t, const char *text)
{
    return smtp_proto_input(t->p, text, strlen(text));
}

static const char *EHLO_PIPE =
    "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";

/* Greeting + EHLO; returns at READY. */
static void t_ehlo(T *t, const char *ehlo_reply)
{
    cr_assert_eq(t_in(t, "220 mx.example.com ESMTP\r\n"), SMTP_EV_WAIT);
    EXPECT_OUT(t, "EHLO client.example.org\r\n");
    cr_assert_eq(t_in(t, ehlo_reply), SMTP_EV_READY);
}

Test(smtp_proto, pipelining_order_and_per_rcpt_results)
{
    T       t;

    t_init(&t, false, "Subject: x\r\n\r\nbody\r\n", 3);
    t_ehlo(&t, EHLO_PIPE);
    cr_assert(smtp_proto_features(t.p) & SMTP_FEATURE_PIPELINING);
    cr_assert_eq(smtp_proto_begin(t.p, &t.txn, false), SMTP_EV_WAIT);
    /* One write: MAIL, every RCPT, DATA. */
    EXPECT_OUT(&t, "MAIL FROM:<s@example.org> SIZE=20\r\nRCPT TO:<a@example.com>\r\n"
	       "RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n");
    cr_assert_eq(t_in(&t, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n450 4.2.0 <b@example.com>: greylisted\r\n"
		      "550 5.1.1 <c@example.com>: unknown\r\n354 go\r\n"), SMTP_EV_WAIT);
    EXPECT_OUT(&t, "Subject: x\r\n\r\nbody\r\n.\r\n");
    cr_assert_eq(t_in(&t, "250 2.0.0 Ok: queued as ABC\r\n"), SMTP_EV_TXN_DONE);
    cr_assert_eq(t.res[0].status, DELIVERY_SENT);
    cr_assert_str_eq(t.res[0].dsn, "2.0.0");
    cr_assert_str_eq(t.res[0].reason, "250 2.0.0 Ok: queued as ABC");
    cr_assert_eq(t.res[1].status, DELIVERY_DEFER);
    cr_assert_str_eq(t.res[1].dsn, "4.2.0");
    cr_assert_str_eq(t.res[1].reason, "host mx.example.com[192.0.2.1] said: 450 4.2.0 "
		     "<b@example.com>: greylisted (in reply to RCPT TO command)");
    cr_assert_eq(t.res[2].status, DELIVERY_BOUNCE);
    cr_assert_str_eq(t.res[2].dsn, "5.1.1");
    cr_assert(smtp_proto_usable(t.p));
    t_free(&t);
}

Test(smtp_proto, no_pipelining_one_command_at_a_time)
{
    T       t;

    t_init(&t, false, "x\r\n", 2);
    t_ehlo(&t, "250-mx\r\n250 8BITMIME\r\n");
    smtp_proto_begin(t.p, &t.txn, false);
    EXPECT_OUT(&t, "MAIL FROM:<s@example.org>\r\n");
    t_in(&t, "250 ok\r\n");
    EXPECT_OUT(&t, "RCPT TO:<a@example.com>\r\n");
    t_in(&t, "550 no such user\r\n");
    EXPECT_OUT(&t, "RCPT TO:<b@example.com>\r\n");
    t_in(&t, "250 ok\r\n");
    EXPECT_OUT(&t, "DATA\r\n");
    t_in(&t, "354 go\r\n");
    EXPECT_OUT(&t, "x\r\n.\r\n");
    cr_assert_eq(t_in(&t, "250 queued\r\n"), SMTP_EV_TXN_DONE);
    cr_assert_eq(t.res[0].status, DELIVERY_BOUNCE);
    cr_assert_str_eq(t.res[0].dsn, "5.0.0");	/* no enhanced code: X.0.0 */
    cr_assert_eq(t.res[1].status, DELIVERY_SENT);
    t_free(&t);
}

Test(smtp_proto, mail_from_failure_applies_to_all)
{
    T       t;

    t_init(&t, false, "x\r\n", 2);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, false);
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "451 4.3.0 try later\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n"
		      "503 5.5.1 no valid recipients\r\n"), SMTP_EV_TXN_DONE);
    for (int i = 0; i < 2; i++) {
	cr_assert_eq(t.res[i].status, DELIVERY_DEFER);
	cr_assert_str_eq(t.res[i].reason, "host mx.example.com[192.0.2.1] said: 451 4.3.0 "
			 "try later (in reply to MAIL FROM command)");
    }
    t_free(&t);
}

Test(smtp_proto, data_failure_applies_to_accepted)
{
    T       t;

    t_init(&t, false, "x\r\n", 2);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, false);
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n554 5.7.1 no data for you\r\n"),
		 SMTP_EV_TXN_DONE);
    cr_assert_eq(t.res[0].status, DELIVERY_BOUNCE);
    cr_assert_str_eq(t.res[0].reason, "host mx.example.com[192.0.2.1] said: 554 5.7.1 "
		     "no data for you (in reply to DATA command)");
    cr_assert_str_eq(t.res[1].dsn, "5.1.1");
    cr_assert(strstr(t.res[1].reason, "(in reply to RCPT TO command)"));
    t_free(&t);
}

Test(smtp_proto, end_of_data_failure_and_multiline_reply)
{
    T       t;

    t_init(&t, false, "x\r\n", 1);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, false);
    free(t_out(&t));
    t_in(&t, "250 ok\r\n250 ok\r\n354 go\r\n");
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "550-5.7.1 first line\r\n550 5.7.1 second line\r\n"), SMTP_EV_TXN_DONE);
    cr_assert_str_eq(t.res[0].reason, "host mx.example.com[192.0.2.1] said: 550-5.7.1 first line "
		     "550 5.7.1 second line (in reply to end of DATA command)");
    t_free(&t);
}

Test(smtp_proto, dot_stuffing)
{
    T       t;

    t_init(&t, false, ".leading\r\nmid.dle\r\n.\r\n..two\r\nend\r\n", 1);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, false);
    free(t_out(&t));
    t_in(&t, "250 ok\r\n250 ok\r\n354 go\r\n");
    EXPECT_OUT(&t, "..leading\r\nmid.dle\r\n..\r\n...two\r\nend\r\n.\r\n");
    t_free(&t);
}

Test(smtp_proto, size_limit_bounces_before_mail)
{
    T       t;
    char    big[2000];

    memset(big, 'a', sizeof(big) - 3);
    strcpy(big + sizeof(big) - 3, "\r\n");
    t_init(&t, false, big, 1);
    t_ehlo(&t, EHLO_PIPE);			/* SIZE 1000 */
    cr_assert_eq(smtp_proto_begin(t.p, &t.txn, false), SMTP_EV_TXN_DONE);
    EXPECT_OUT(&t, "");			/* nothing sent */
    cr_assert_eq(t.res[0].status, DELIVERY_BOUNCE);
    cr_assert_str_eq(t.res[0].dsn, "5.3.4");
    cr_assert_str_eq(t.res[0].reason, "message size 1999 exceeds size limit 1000 of server "
		     "mx.example.com[192.0.2.1]");
    cr_assert(smtp_proto_usable(t.p));
    t_free(&t);
}

Test(smtp_proto, ehlo_rejected_falls_back_to_helo)
{
    T       t;

    t_init(&t, false, "x\r\n", 1);
    t_in(&t, "220 old server\r\n");
    EXPECT_OUT(&t, "EHLO client.example.org\r\n");
    cr_assert_eq(t_in(&t, "502 5.5.2 what?\r\n"), SMTP_EV_WAIT);
    EXPECT_OUT(&t, "HELO client.example.org\r\n");
    cr_assert_eq(t_in(&t, "250 hi\r\n"), SMTP_EV_READY);
    cr_assert_eq(smtp_proto_features(t.p), 0);
    smtp_proto_begin(t.p, &t.txn, false);
    EXPECT_OUT(&t, "MAIL FROM:<s@example.org>\r\n");	/* no ESMTP parameters */
    t_free(&t);
}

Test(smtp_proto, loops_back_to_myself)
{
    T       t;

    t_init(&t, false, "x\r\n", 1);
    t_in(&t, "220 hi\r\n");
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "250-CLIENT.example.org\r\n250 PIPELINING\r\n"), SMTP_EV_SITE_FAIL);
    cr_assert(smtp_proto_site_final(t.p));
    cr_assert_str_eq(smtp_proto_site_dsn(t.p), "5.4.6");
    cr_assert_str_eq(smtp_proto_site_reason(t.p), "mail for example.com loops back to myself");
    t_free(&t);
}

Test(smtp_proto, greeting_refused)
{
    T       t;

    t_init(&t, false, "x\r\n", 1);
    cr_assert_eq(t_in(&t, "554 5.7.1 go away\r\n"), SMTP_EV_SITE_FAIL);
    /* smtp_skip_5xx_greeting = yes: soft, try the next MX. */
    cr_assert_not(smtp_proto_site_final(t.p));
    cr_assert_str_eq(smtp_proto_site_dsn(t.p), "4.7.1");
    cr_assert_str_eq(smtp_proto_site_reason(t.p),
		     "host mx.example.com[192.0.2.1] refused to talk to me: 554 5.7.1 go away");
    t_free(&t);
}

Test(smtp_proto, lost_connection_and_timeout_wording)
{
    T       t;

    t_init(&t, false, "x\r\n", 1);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, false);
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "250 ok\r\n"), SMTP_EV_WAIT);
    cr_assert_eq(smtp_proto_timeout_secs(t.p), 302);	/* smtp_rcpt_timeout */
    cr_assert_eq(smtp_proto_lost(t.p, NULL), SMTP_EV_TXN_DONE);
    cr_assert_eq(t.res[0].status, DELIVERY_DEFER);
    cr_assert_str_eq(t.res[0].reason,
		     "lost connection with mx.example.com[192.0.2.1] while sending RCPT TO");
    t_free(&t);

    t_init(&t, false, "x\r\n", 1);
    cr_assert_eq(smtp_proto_timeout(t.p), SMTP_EV_SITE_FAIL);
    cr_assert_str_eq(smtp_proto_site_reason(t.p), "conversation with mx.example.com[192.0.2.1] "
		     "timed out while receiving the initial server greeting");
    t_free(&t);
}

Test(smtp_proto, reused_session_sends_rset_first)
{
    T       t;

    /* Without PIPELINING: RSET, then MAIL after its reply. */
    t_init(&t, false, "x\r\n", 1);
    t_ehlo(&t, "250-mx\r\n250 SIZE 1000\r\n");
    smtp_proto_begin(t.p, &t.txn, true);
    EXPECT_OUT(&t, "RSET\r\n");
    cr_assert_eq(smtp_proto_timeout_secs(t.p), 20);
    t_in(&t, "250 ok\r\n");
    EXPECT_OUT(&t, "MAIL FROM:<s@example.org> SIZE=3\r\n");
    t_free(&t);

    /* With PIPELINING: RSET opens the group; its timeout until it is answered. */
    t_init(&t, false, "x\r\n", 1);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, true);
    EXPECT_OUT(&t, "RSET\r\nMAIL FROM:<s@example.org> SIZE=3\r\nRCPT TO:<a@example.com>\r\n"
	       "DATA\r\n");
    cr_assert_eq(smtp_proto_timeout_secs(t.p), 20);
    cr_assert_eq(t_in(&t, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), SMTP_EV_WAIT);
    EXPECT_OUT(&t, "x\r\n.\r\n");
    cr_assert_eq(t_in(&t, "250 queued\r\n"), SMTP_EV_TXN_DONE);
    cr_assert_eq(t.res[0].status, DELIVERY_SENT);
    t_free(&t);

    /* A stale session that closes after RSET's pipeline: dropped quietly. */
    t_init(&t, false, "x\r\n", 1);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, true);
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "421 closing\r\n"), SMTP_EV_RESET_FAIL);
    cr_assert_not(t.res[0].set);
    t_free(&t);

    t_init(&t, false, "x\r\n", 1);
    t_ehlo(&t, EHLO_PIPE);
    smtp_proto_begin(t.p, &t.txn, true);
    free(t_out(&t));
    cr_assert_eq(smtp_proto_lost(t.p, NULL), SMTP_EV_RESET_FAIL);
    cr_assert_not(t.res[0].set);		/* a stale session costs nothing */
    t_free(&t);
}

Test(smtp_proto, dsn_and_8bitmime_parameters)
{
    T       t;

    t_init(&t, false, "x\r\n", 1);
    t.m->body_type = BODY_TYPE_8BITMIME;
    t.m->dsn_ret = DSN_RET_HDRS;
    t.m->dsn_envid = mem_strdup("id+1=x");
    t.m->rcpt[0].dsn_notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE;
    t.m->rcpt[0].dsn_orcpt = mem_strdup("rfc822;A+b@example.com");
    t_ehlo(&t, "250-mx\r\n250-8BITMIME\r\n250 DSN\r\n");
    smtp_proto_begin(t.p, &t.txn, false);
    EXPECT_OUT(&t, "MAIL FROM:<s@example.org> BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx\r\n");
    t_in(&t, "250 ok\r\n");
    EXPECT_OUT(&t, "RCPT TO:<a@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2Bb@example.com\r\n");
    t_free(&t);

    /* Without DSN and 8BITMIME offered: no such parameters. */
    t_init(&t, false, "x\r\n", 1);
    t.m->body_type = BODY_TYPE_8BITMIME;
    t.m->dsn_ret = DSN_RET_FULL;
    t.m->rcpt[0].dsn_notify = DSN_NOTIFY_NEVER;
    t_ehlo(&t, "250-mx\r\n250 PIPELINING\r\n");
    smtp_proto_begin(t.p, &t.txn, false);
    EXPECT_OUT(&t, "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n");
    t_free(&t);
}

Test(smtp_proto, lmtp_one_reply_per_recipient)
{
    T       t;

    t_init(&t, true, "x\r\n", 3);
    t_in(&t, "220 lmtp ready\r\n");
    EXPECT_OUT(&t, "LHLO client.example.org\r\n");
    cr_assert_eq(t_in(&t, "250-client.example.org\r\n250 PIPELINING\r\n"), SMTP_EV_READY);	/* no loop check */
    smtp_proto_begin(t.p, &t.txn, false);
    free(t_out(&t));
    t_in(&t, "250 ok\r\n250 ok\r\n550 5.1.1 unknown b\r\n250 ok\r\n354 go\r\n");
    EXPECT_OUT(&t, "x\r\n.\r\n");
    cr_assert_eq(t_in(&t, "250 2.0.0 <a> saved\r\n"), SMTP_EV_WAIT);
    cr_assert_eq(t_in(&t, "452 4.2.2 <c> mailbox full\r\n"), SMTP_EV_TXN_DONE);
    cr_assert_eq(t.res[0].status, DELIVERY_SENT);
    cr_assert_str_eq(t.res[0].reason, "250 2.0.0 <a> saved");
    cr_assert_eq(t.res[1].status, DELIVERY_BOUNCE);
    cr_assert_eq(t.res[2].status, DELIVERY_DEFER);
    cr_assert_str_eq(t.res[2].reason, "host mx.example.com[192.0.2.1] said: 452 4.2.2 <c> mailbox "
		     "full (in reply to end of DATA command)");
    t_free(&t);
}

Test(smtp_proto, hostile_replies)
{
    T       t;
    char   *big;

    t_init(&t, false, "x\r\n", 1);
    cr_assert_eq(t_in(&t, "hello there\r\n"), SMTP_EV_SITE_FAIL);
    cr_assert(strstr(smtp_proto_site_reason(t.p), "malformed reply"));
    t_free(&t);

    t_init(&t, false, "x\r\n", 1);
    cr_assert_eq(t_in(&t, "220-a\r\n250 b\r\n"), SMTP_EV_SITE_FAIL);	/* code changes */
    t_free(&t);

    t_init(&t, false, "x\r\n", 1);
    big = mem_alloc(200000);
    memset(big, '2', 199999);
    big[199999] = 0;
    cr_assert_eq(t_in(&t, big), SMTP_EV_SITE_FAIL);	/* endless line */
    mem_free(big);
    t_free(&t);

    /* Replies split at every byte still parse. */
    t_init(&t, false, "x\r\n", 1);
    {
	const char *g = "220 hi\r\n";
	enum smtp_proto_event ev = SMTP_EV_WAIT;

	for (const char *cp = g; *cp; cp++)
	    ev = smtp_proto_input(t.p, cp, 1);
	cr_assert_eq(ev, SMTP_EV_WAIT);
	EXPECT_OUT(&t, "EHLO client.example.org\r\n");
    }
    t_free(&t);
}

Test(smtp_proto, starttls_required_but_not_offered)
{
    T       t;
    SMTP_PROTO_OPTS o;

    t_init(&t, false, "x\r\n", 1);
    smtp_proto_free(t.p);
    memset(&o, 0, sizeof(o));
    o.tls_level = SMTP_TLS_ENCRYPT;
    o.namaddr = "mx.example.com[192.0.2.1]";
    o.helo_name = "me";
    t.p = smtp_proto_create(&o);
    t_in(&t, "220 hi\r\n");
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "250-mx\r\n250 PIPELINING\r\n"), SMTP_EV_SITE_FAIL);
    cr_assert_str_eq(smtp_proto_site_dsn(t.p), "4.7.4");
    cr_assert_str_eq(smtp_proto_site_reason(t.p),
		     "TLS is required, but was not offered by host mx.example.com[192.0.2.1]");
    t_free(&t);

    /* Offered: STARTTLS, then EHLO again after the handshake. */
    t_init(&t, false, "x\r\n", 1);
    smtp_proto_free(t.p);
    o.tls_level = SMTP_TLS_MAY;
    t.p = smtp_proto_create(&o);
    t_in(&t, "220 hi\r\n");
    free(t_out(&t));
    cr_assert_eq(t_in(&t, "250-mx\r\n250 STARTTLS\r\n"), SMTP_EV_WAIT);
    EXPECT_OUT(&t, "STARTTLS\r\n");
    cr_assert_eq(t_in(&t, "220 go ahead\r\n250 injected\r\n"), SMTP_EV_STARTTLS);
    cr_assert_eq(smtp_proto_tls_done(t.p, true, NULL), SMTP_EV_WAIT);
    EXPECT_OUT(&t, "EHLO me\r\n");
    /* The plaintext injected after 220 was discarded: */
    cr_assert_eq(smtp_proto_input(t.p, NULL, 0), SMTP_EV_WAIT);
    cr_assert_eq(t_in(&t, "250-mx\r\n250 STARTTLS\r\n"), SMTP_EV_READY);
    cr_assert(smtp_proto_tls_active(t.p));
    t_free(&t);
}
