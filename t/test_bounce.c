/*
 * test_bounce.c - delivery status notifications (stages/bounce*.c): who
 * gets a notice for each kind and DSN NOTIFY/RET combination, and the
 * structure of the RFC 3464 report. t/bounce_email.py parses the same
 * notices with Python's email package.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/bounce.h"
#include "stages/cleanup.h"

#define ORIG_TEXT "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n" \
    "Subject: hello\r\nMessage-ID: <m1@example.org>\r\n\r\nbody line one\r\nbody line two\r\n"

static const int64_t now_us = 1700003600LL * 1000000;

static BOUNCE_CONFIG cfg_test(void)
{
    BOUNCE_CONFIG cfg;

    bounce_config_defaults(&cfg);
    cfg.myhostname = "mail.example.com";
    cfg.myorigin = "example.com";
    cfg.delay_warning_time_s = 4 * 3600;
    return cfg;
}

static MESSAGE *orig_new(const char *sender, size_t nrcpt)
{
    MESSAGE *m = message_new();

    strcpy(m->queue_id, "4ABCDEF01");
    m->arrival_us = 1700000000LL * 1000000;
    mem_free(m->sender);
    m->sender = mem_strdup(sender);
    for (size_t i = 0; i < nrcpt; i++) {
	char    addr[64];
	RCPT   *r;

	snprintf(addr, sizeof(addr), "rcpt%zu@example.net", i);
	r = message_add_rcpt(m, addr, addr);
	r->transport = mem_strdup("smtp");
	r->nexthop = mem_strdup("example.net");
    }
    m->content = blob_new(ORIG_TEXT, strlen(ORIG_TEXT));
    return m;
}

static const char *bounced_reason =
    "host mx.example.net[192.0.2.1] said: 550 5.1.1 <rcpt0@example.net>: "
    "Recipient address rejected: User unknown (in reply to RCPT TO command)";

/* Builds notices; returns how many; content of the first in *text. */
static size_t build(const BOUNCE_CONFIG *cfg, MESSAGE *m, enum bounce_kind kind,
		    const BOUNCE_RCPT *rc, size_t n, BOUNCE_NOTICE *out, char **text)
{
    size_t  count = bounce_build(cfg, m, kind, rc, n, now_us, out);

    if (text)
	*text = NULL;
    if (count && text) {
	*text = mem_alloc(out[0].msg->content->len + 1);
	memcpy(*text, out[0].msg->content->data, out[0].msg->content->len);
	(*text)[out[0].msg->content->len] = 0;
    }
    return count;
}

static void notices_free(BOUNCE_NOTICE *out, size_t count)
{
    for (size_t i = 0; i < count; i++)
	message_free(out[i].msg);
}

/* The header section of a notice (up to the empty line). */
static char *header_of(const char *text)
{
    const char *end = strstr(text, "\r\n\r\n");
    size_t  len = end ? (size_t) (end - text) + 2 : strlen(text);
    char   *h = mem_alloc(len + 1);

    memcpy(h, text, len);
    h[len] = 0;
    return h;
}

Test(bounce, failure_notice_to_the_sender)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 2);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", bounced_reason, NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t, *h;
    size_t  n = build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);

    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].what, "sender non-delivery notification");
    /* Envelope: null sender, to the original sender, a fresh queue ID. */
    cr_assert_str_eq(out[0].msg->sender, "");
    cr_assert_eq(out[0].msg->nrcpt, 1);
    cr_assert_str_eq(out[0].msg->rcpt[0].address, "alice@example.org");
    cr_assert_str_neq(out[0].msg->queue_id, "");
    cr_assert_str_neq(out[0].msg->queue_id, m->queue_id);
    h = header_of(t);
    cr_assert(strstr(h, "From: MAILER-DAEMON@mail.example.com (Mail Delivery System)\r\n"), "%s", h);
    cr_assert(strstr(h, "Subject: Undelivered Mail Returned to Sender\r\n"));
    cr_assert(strstr(h, "To: alice@example.org\r\n"));
    cr_assert(strstr(h, "Auto-Submitted: auto-replied\r\n"));
    cr_assert(strstr(h, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		      "\tboundary=\""));
    /* The explanation, then the report, then the whole original. */
    cr_assert(strstr(t, "This is the mail system at host mail.example.com.\r\n"));
    cr_assert(strstr(t, "I'm sorry to have to inform you that your message could not\r\n"));
    cr_assert(strstr(t, "<rcpt0@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\r\n"
		      "    <rcpt0@example.net>: Recipient address rejected:"), "%s", t);
    cr_assert(strstr(t, "Content-Type: message/delivery-status\r\n\r\n"
		      "Reporting-MTA: dns; mail.example.com\r\n"
		      "X-Postfix-Queue-ID: 4ABCDEF01\r\n"
		      "X-Postfix-Sender: rfc822; alice@example.org\r\n"
		      "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000 (UTC)\r\n"
		      "\r\n"
		      "Final-Recipient: rfc822; rcpt0@example.net\r\n"
		      "Original-Recipient: rfc822; rcpt0@example.net\r\n"
		      "Action: failed\r\n"
		      "Status: 5.1.1\r\n"
		      "Remote-MTA: dns; mx.example.net\r\n"
		      "Diagnostic-Code: smtp; 550 5.1.1 <rcpt0@example.net>: Recipient address "
		      "rejected: User unknown\r\n"
		      "Last-Attempt-Date: Tue, 14 Nov 2023 23:13:20 +0000 (UTC)\r\n"), "%s", t);
    cr_assert(strstr(t, "Content-Type: message/rfc822\r\n\r\n" ORIG_TEXT), "%s", t);
    /* Only the recipient that bounced is reported. */
    cr_assert_null(strstr(t, "rcpt1@example.net"));
    /* The closing boundary ends the message. */
    cr_assert(strstr(t, "--\r\n") && strcmp(t + strlen(t) - 4, "--\r\n") == 0);
    mem_free(h);
    mem_free(t);
    notices_free(out, n);
    message_free(m);
}

Test(bounce, notify_never_and_notify_without_failure_give_no_failure_notice)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 3);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}, {1, "5.1.1", "y", NULL}, {2, "5.1.1", "z", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;

    m->rcpt[0].dsn_notify = DSN_NOTIFY_NEVER;
    m->rcpt[1].dsn_notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY;
    m->rcpt[2].dsn_notify = DSN_NOTIFY_NEVER;
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 3, out, NULL), 0);
    /* One recipient that asked for failures: only it is reported. */
    m->rcpt[2].dsn_notify = DSN_NOTIFY_FAILURE;
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 3, out, &t), 1);
    cr_assert(strstr(t, "Final-Recipient: rfc822; rcpt2@example.net\r\n"));
    cr_assert_null(strstr(t, "rcpt0@example.net"));
    cr_assert_null(strstr(t, "rcpt1@example.net"));
    mem_free(t);
    notices_free(out, 1);
    message_free(m);
}

Test(bounce, delay_notice_only_for_notify_delay_or_none)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 3);
    BOUNCE_RCPT rc[] = {{0, "4.2.0", "host mx.example.net[192.0.2.1] said: 450 4.2.0 busy "
			 "(in reply to RCPT TO command)", NULL},
    {1, "4.4.1", "connect to mx.example.net[192.0.2.1]:25: Connection refused", NULL},
    {2, "4.4.1", "x", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;
    size_t  n;

    m->rcpt[1].dsn_notify = DSN_NOTIFY_DELAY;
    m->rcpt[2].dsn_notify = DSN_NOTIFY_FAILURE;
    n = build(&cfg, m, BOUNCE_KIND_DELAY, rc, 3, out, &t);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].what, "sender delay notification");
    cr_assert(strstr(t, "Subject: Delayed Mail (still being retried)\r\n"));
    cr_assert(strstr(t, "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #"));
    cr_assert(strstr(t, "Your message could not be delivered for more than 4 hour(s).\r\n"
		      "It will be retried until it is 5 day(s) old.\r\n"));
    cr_assert(strstr(t, "Final-Recipient: rfc822; rcpt0@example.net\r\n"));
    cr_assert(strstr(t, "Final-Recipient: rfc822; rcpt1@example.net\r\n"
		      "Original-Recipient: rfc822; rcpt1@example.net\r\n"
		      "Action: delayed\r\nStatus: 4.4.1\r\n"
		      "Diagnostic-Code: X-Postfix; connect to mx.example.net[192.0.2.1]:25: "
		      "Connection refused\r\n"), "%s", t);
    cr_assert(strstr(t, "Will-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000 (UTC)\r\n"), "%s", t);
    cr_assert_null(strstr(t, "rcpt2@example.net"));
    /* Headers only for a warning. */
    cr_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n"));
    cr_assert_null(strstr(t, "body line one"));
    mem_free(t);
    notices_free(out, n);
    message_free(m);
}

Test(bounce, success_notice_only_for_notify_success)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 2);
    BOUNCE_RCPT rc[] = {{0, "2.0.0", "250 2.0.0 Ok: queued as X1", NULL},
    {1, "2.0.0", "250 2.0.0 Ok", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;
    size_t  n;

    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_SUCCESS, rc, 2, out, NULL), 0);
    m->rcpt[1].dsn_notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE;
    mem_free(m->rcpt[1].transport);
    m->rcpt[1].transport = mem_strdup("lmtp");
    n = build(&cfg, m, BOUNCE_KIND_SUCCESS, rc, 2, out, &t);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].what, "sender delivery status notification");
    cr_assert(strstr(t, "Subject: Successful Mail Delivery Report\r\n"));
    cr_assert(strstr(t, "Your message was successfully delivered to the destination(s)\r\n"));
    cr_assert(strstr(t, "Final-Recipient: rfc822; rcpt1@example.net\r\n"
		      "Original-Recipient: rfc822; rcpt1@example.net\r\n"
		      "Action: delivered\r\nStatus: 2.0.0\r\n"
		      "Diagnostic-Code: smtp; 250 2.0.0 Ok\r\n"), "%s", t);
    cr_assert_null(strstr(t, "Last-Attempt-Date"));
    cr_assert_null(strstr(t, "rcpt0@example.net"));
    cr_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n"));
    mem_free(t);
    notices_free(out, n);
    /* Relayed by SMTP: "relayed" (the next hop may not do DSN). */
    mem_free(m->rcpt[1].transport);
    m->rcpt[1].transport = mem_strdup("smtp");
    n = build(&cfg, m, BOUNCE_KIND_SUCCESS, rc, 2, out, &t);
    cr_assert(strstr(t, "Action: relayed\r\n"));
    mem_free(t);
    notices_free(out, n);
    message_free(m);
}

Test(bounce, ret_hdrs_and_size_limit_return_the_header_only)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;

    /* RET=FULL: all of it. */
    m->dsn_ret = DSN_RET_FULL;
    build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);
    cr_assert(strstr(t, "Content-Type: message/rfc822\r\n\r\n" ORIG_TEXT));
    mem_free(t);
    notices_free(out, 1);
    /* RET=HDRS. */
    m->dsn_ret = DSN_RET_HDRS;
    build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);
    cr_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n\r\nFrom: Alice"), "%s", t);
    cr_assert(strstr(t, "Message-ID: <m1@example.org>\r\n"));
    cr_assert_null(strstr(t, "body line one"));
    cr_assert_null(strstr(t, "message/rfc822"));
    mem_free(t);
    notices_free(out, 1);
    /* RET=FULL but larger than bounce_size_limit. */
    m->dsn_ret = DSN_RET_FULL;
    cfg.size_limit = 20;
    build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);
    cr_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n"));
    cr_assert_null(strstr(t, "body line one"));
    mem_free(t);
    notices_free(out, 1);
    message_free(m);
}

Test(bounce, envid_and_orcpt_are_echoed)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;

    m->dsn_envid = mem_strdup("QQ314159");
    m->rcpt[0].dsn_orcpt = mem_strdup("rfc822;Bob+2BTag@Example.NET");
    build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);
    cr_assert(strstr(t, "\r\n\r\nOriginal-Envelope-Id: QQ314159\r\nReporting-MTA: dns; "), "%s", t);
    cr_assert(strstr(t, "Final-Recipient: rfc822; rcpt0@example.net\r\n"
		      "Original-Recipient: rfc822;Bob+Tag@Example.NET\r\n"), "%s", t);
    mem_free(t);
    notices_free(out, 1);
    message_free(m);
}

Test(bounce, never_a_bounce_for_a_bounce)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;
    size_t  n;

    /* Default notify_classes: dropped. Delay and success: nothing either. */
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, NULL), 0);
    m->rcpt[0].dsn_notify = DSN_NOTIFY_SUCCESS;
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_SUCCESS, rc, 1, out, NULL), 0);
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_DELAY, rc, 1, out, NULL), 0);
    /* notify_classes = 2bounce: to the postmaster, from double-bounce. */
    cfg.notify_classes = bounce_classes_parse("resource, 2bounce");
    n = build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].what, "postmaster non-delivery notification");
    cr_assert_str_eq(out[0].msg->sender, "double-bounce@example.com");
    cr_assert_str_eq(out[0].msg->rcpt[0].address, "postmaster@example.com");
    cr_assert(strstr(t, "Subject: Postmaster Copy: Undelivered Mail\r\n"));
    cr_assert_null(strstr(t, "I'm sorry"));	/* no boilerplate */
    cr_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n"));
    mem_free(t);
    notices_free(out, n);
    message_free(m);
    /* That notice failing in turn: discarded, whatever notify_classes. */
    m = orig_new("double-bounce@example.com", 1);
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, NULL), 0);
    cfg.notify_classes = bounce_classes_parse("bounce 2bounce delay");
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, NULL), 0);
    message_free(m);
}

Test(bounce, notify_classes_bounce_and_delay_copy_the_postmaster)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    size_t  n;

    cfg.notify_classes = bounce_classes_parse("bounce,delay");
    cfg.bounce_notice_recipient = "ops@example.org";
    n = bounce_build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, now_us, out);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].msg->rcpt[0].address, "alice@example.org");
    cr_assert_str_eq(out[1].what, "postmaster non-delivery notification");
    cr_assert_str_eq(out[1].msg->rcpt[0].address, "ops@example.org");
    cr_assert_str_eq(out[1].msg->sender, "double-bounce@example.com");
    notices_free(out, n);
    /* The postmaster copy comes even when the sender wants nothing. */
    m->rcpt[0].dsn_notify = DSN_NOTIFY_NEVER;
    n = bounce_build(&cfg, m, BOUNCE_KIND_DELAY, rc, 1, now_us, out);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out[0].what, "postmaster delay notification");
    cr_assert_str_eq(out[0].msg->rcpt[0].address, "postmaster@example.com");
    notices_free(out, n);
    message_free(m);
}

Test(bounce, classes_parse)
{
    cr_assert_eq(bounce_classes_parse("resource, software"), 0);
    cr_assert_eq(bounce_classes_parse("BOUNCE"), BOUNCE_CLASS_BOUNCE);
    cr_assert_eq(bounce_classes_parse(" 2bounce,\tdelay "), BOUNCE_CLASS_2BOUNCE | BOUNCE_CLASS_DELAY);
    cr_assert_eq(bounce_classes_parse("bounces, bounc, 2bouncex"), 0);
    cr_assert_eq(bounce_classes_parse(""), 0);
    cr_assert_eq(bounce_classes_parse(NULL), 0);
}

Test(bounce, hostile_reasons_cannot_inject_headers)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1\r\nX-Evil: 1",
	"host a[1.2.3.4] said: 550 5.7.1 no\r\nAction: delivered\r\n\r\nX: y "
	"(in reply to end of DATA command)", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;

    mem_free(m->dsn_envid);
    m->dsn_envid = mem_strdup("id\r\nSubject: evil");
    build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);
    cr_assert_null(strstr(t, "\nX-Evil"), "%s", t);
    cr_assert_null(strstr(t, "\nAction: delivered"));
    cr_assert_null(strstr(t, "\nSubject: evil"));
    cr_assert_null(strstr(t, "\nX: y"));
    /* The malformed dsn is replaced by the one in the reply. */
    cr_assert(strstr(t, "Status: 5.7.1\r\n"), "%s", t);
    cr_assert(strstr(t, "Original-Envelope-Id: id  Subject: evil\r\n"));
    mem_free(t);
    notices_free(out, 1);
    message_free(m);
}

Test(bounce, status_comes_from_the_reply_or_the_kind)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 3);
    BOUNCE_RCPT rc[] = {
	{0, NULL, "host h[1.1.1.1] said: 554 5.7.9 policy (in reply to MAIL FROM command)", NULL},
	{1, "", "mail for x loops back to myself", NULL},
	{2, "9.9.9", NULL, NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;

    build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 3, out, &t);
    cr_assert(strstr(t, "rcpt0@example.net\r\nAction: failed\r\nStatus: 5.7.9\r\n"), "%s", t);
    cr_assert(strstr(t, "rcpt1@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n"
		      "Diagnostic-Code: X-Postfix; mail for x loops back to myself\r\n"));
    cr_assert(strstr(t, "rcpt2@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n"
		      "Last-Attempt-Date"), "%s", t);
    cr_assert(strstr(t, "<rcpt2@example.net>: delivery failed\r\n"));
    mem_free(t);
    notices_free(out, 1);
    message_free(m);
}

Test(bounce, boundary_never_occurs_in_the_returned_text)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}};
    STR     s = STR_INIT, evil = STR_INIT;
    const char *b, *e;
    char    boundary[200];

    /* First learn the boundary the notice would use, then put it in the original. */
    bounce_content(&cfg, m, BOUNCE_KIND_FAILURE, false, "alice@example.org", rc, 1, now_us,
		   "NOTICEID", &s);
    b = strstr(STR_DATA(&s), "boundary=\"") + 10;
    e = strchr(b, '"');
    snprintf(boundary, sizeof(boundary), "%.*s", (int) (e - b), b);
    str_printf(&evil, "Subject: x\r\n\r\n--%s\r\nContent-Type: text/plain\r\n\r\nfake\r\n", boundary);
    blob_unref(m->content);
    m->content = blob_adopt(&evil);
    str_reset(&s);
    bounce_content(&cfg, m, BOUNCE_KIND_FAILURE, false, "alice@example.org", rc, 1, now_us,
		   "NOTICEID", &s);
    b = strstr(STR_DATA(&s), "boundary=\"") + 10;
    e = strchr(b, '"');
    cr_assert(strncmp(b, boundary, strlen(boundary)) != 0 || (size_t) (e - b) != strlen(boundary));
    str_release(&s);
    message_free(m);
}

Test(bounce, smtputf8_uses_global_types)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("al\xc3\xaf" "ce@example.org", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;

    m->smtputf8 = true;
    build(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, out, &t);
    cr_assert(out[0].msg->smtputf8);
    cr_assert(strstr(t, "Content-Type: message/global-delivery-status\r\n"));
    cr_assert(strstr(t, "X-Postfix-Sender: utf-8; al\xc3\xaf" "ce@example.org\r\n"));
    cr_assert(strstr(t, "Content-Type: message/global\r\n"));
    cr_assert(strstr(t, "Content-Transfer-Encoding: 8bit\r\n"));
    mem_free(t);
    notices_free(out, 1);
    message_free(m);
}

Test(bounce, verify_report_for_sendmail_bv)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 2);
    BOUNCE_RCPT rc[] = {{0, "2.0.0", "delivers to mailbox", NULL},
    {1, "5.1.1", "unknown user", "undeliverable"}};
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    char   *t;

    m->rcpt[0].dsn_notify = DSN_NOTIFY_NEVER;	/* a report is asked for: no NOTIFY filter */
    cr_assert_eq(build(&cfg, m, BOUNCE_KIND_VERIFY, rc, 2, out, &t), 1);
    cr_assert(strstr(t, "Subject: Mail Delivery Status Report\r\n"));
    cr_assert(strstr(t, "Enclosed is the mail delivery report that you requested.\r\n"));
    cr_assert(strstr(t, "Action: deliverable\r\nStatus: 2.0.0\r\n"));
    cr_assert(strstr(t, "Action: undeliverable\r\nStatus: 5.1.1\r\n"));
    mem_free(t);
    notices_free(out, 1);
    message_free(m);
}

/* bounce_notify: submission, the log's completion, and a closed stage. */
static int submits;
static MESSAGE *submitted;

static int fake_submit(MESSAGE *msg, int flags, void (*done)(void *, int, const char *), void *ctx)
{
    submits++;
    cr_assert(flags & CLEANUP_FLAG_NO_CHECKS);
    submitted = msg;
    done(ctx, 250, msg->queue_id);
    return 0;
}

static int closed_submit(MESSAGE *msg, int flags, void (*done)(void *, int, const char *), void *ctx)
{
    (void) msg;
    (void) flags;
    (void) done;
    (void) ctx;
    submits++;
    return -1;
}

static int done_calls;
static bool done_queued;

static void count_done(void *ctx, bool queued)
{
    cr_assert_eq(ctx, &done_calls);
    done_calls++;
    done_queued = queued;
}

Test(bounce, notify_submits_and_survives_a_closed_stage)
{
    BOUNCE_CONFIG cfg = cfg_test();
    MESSAGE *m = orig_new("alice@example.org", 1);
    BOUNCE_RCPT rc[] = {{0, "5.1.1", "x", NULL}};

    submits = 0;
    done_calls = 0;
    bounce_notify(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, fake_submit, count_done, &done_calls);
    cr_assert_eq(submits, 1);
    cr_assert_eq(done_calls, 1);
    cr_assert(done_queued, "the notice was queued");
    cr_assert_not_null(submitted);
    cr_assert_str_eq(submitted->rcpt[0].address, "alice@example.org");
    message_free(submitted);
    /* Refused: the notice is freed (ASan would see a leak), nothing crashes,
     * and the caller learns that it was not queued. */
    bounce_notify(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, closed_submit, count_done, &done_calls);
    cr_assert_eq(submits, 2);
    cr_assert_eq(done_calls, 2);
    cr_assert_not(done_queued, "a refused notice is reported as not queued");
    /* Out-of-range indexes are ignored: no notice due, done all the same. */
    rc[0].index = 7;
    bounce_notify(&cfg, m, BOUNCE_KIND_FAILURE, rc, 1, fake_submit, count_done, &done_calls);
    cr_assert_eq(submits, 2);
    cr_assert_eq(done_calls, 3);
    cr_assert(done_queued, "nothing due counts as done");
    message_free(m);
}
