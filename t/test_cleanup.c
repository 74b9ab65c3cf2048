/*
 * test_cleanup.c - the cleanup stage's work on one message: our Received:
 * header, missing headers (and when they are added), header_checks and
 * body_checks actions (each one, with Postfix's log lines and replies),
 * canonical maps on the envelope and in headers, virtual alias expansion
 * (one to many, nesting, loops, limits), hop counting, stray CR/LF,
 * sendmail -t extraction, and hostile input (huge header, header without
 * colon, NUL bytes, 10 000 recipients, deep alias loops).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/cleanup.h"
#include "stages/rewrite.h"

#define QID	"4ABCD1234"
#define ARRIVAL	1700000000LL		/* 2023-11-14 22:13:20 UTC */

static char tmpdir[64];
static STR logbuf;

static void log_capture(enum msg_level level, const char *service, const char *text)
{
    (void) service;
    str_printf(&logbuf, "%s%s\n", level == MSG_WARN ? "warning: " : "", text);
}

static void setup(void)
{
    strcpy(tmpdir, "/tmp/test_cleanup.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    str_init(&logbuf);
    msg_sink_set(log_capture);
}

static void teardown(void)
{
    char    cmd[128];

    msg_sink_set(msg_sink_stderr);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    (void) system(cmd);
    str_release(&logbuf);
}

TestSuite(cleanup, .init = setup, .fini = teardown);

/* write_table - a file in the test directory; returns "type:path" */

static const char *write_table(const char *type, const char *name, const char *content)
{
    static char spec[8][256];
    static int next;
    char    path[200];
    FILE   *fp;
    char   *s = spec[next++ % 8];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    cr_assert_not_null(fp = fopen(path, "w"));
    fputs(content, fp);
    fclose(fp);
    snprintf(s, 256, "%s:%s", type, path);
    return s;
}

typedef struct FIXTURE {
    REWRITE_CONFIG rcfg;
    CLEANUP_CONFIG ccfg;
    REWRITE *rw;
    CLEANUP_CTX *ctx;
} FIXTURE;

static void fix_config(FIXTURE *f)
{
    rewrite_config_defaults(&f->rcfg);
    f->rcfg.myhostname = "mail.example.com";
    f->rcfg.mydomain = "example.com";
    f->rcfg.myorigin = "example.com";
    f->rcfg.mydestination = "mail.example.com, localhost, example.com";
    f->rcfg.local_transport = "local:mail.example.com";
    cleanup_config_defaults(&f->ccfg);
    f->ccfg.myhostname = "mail.example.com";
    f->ccfg.mail_name = "Sluice";
}

static void fix_start(FIXTURE *f)
{
    STR     err = STR_INIT;

    f->rw = rewrite_create(&f->rcfg, &err);
    cr_assert_not_null(f->rw, "%s", STR_DATA(&err));
    f->ctx = cleanup_create(&f->ccfg, f->rw, &err);
    cr_assert_not_null(f->ctx, "%s", STR_DATA(&err));
    str_release(&err);
}

static void fix_stop(FIXTURE *f)
{
    cleanup_free(f->ctx);
    rewrite_free(f->rw);
}

static MESSAGE *mk(const char *sender, const char *content, const char *rcpt)
{
    MESSAGE *m = message_new();

    strcpy(m->queue_id, QID);
    m->arrival_us = ARRIVAL * 1000000;
    mem_free(m->sender);
    m->sender = mem_strdup(sender);
    m->client_name = mem_strdup("client.test");
    m->client_addr = mem_strdup("192.0.2.10");
    m->helo = mem_strdup("helo.test");
    m->protocol = mem_strdup("ESMTP");
    m->content = blob_new(content, strlen(content));
    if (rcpt)
	message_add_rcpt(m, rcpt, NULL);
    return m;
}

static char *content_of(const MESSAGE *m)
{
    return mem_strndup(m->content->data, m->content->len);
}

static int run(FIXTURE *f, MESSAGE *m, int flags, STR *reply)
{
    CLEANUP_INFO info;

    memset(&info, 0, sizeof(info));
    info.flags = flags;
    info.uid = -1;
    return cleanup_message(f->ctx, m, &info, reply);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define HAS(hay, needle) cr_expect(strstr((hay), (needle)) != NULL, \
	"missing \"%s\" in:\n%s", (needle), (hay))
#define HASNT(hay, needle) cr_expect(strstr((hay), (needle)) == NULL, \
	"unexpected \"%s\" in:\n%s", (needle), (hay))

/* ---------- headers added ---------- */

Test(cleanup, received_and_missing_headers_local_client)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;

    fix_config(&f);
    fix_start(&f);
    m = mk("sender", "Subject: hi\r\n\r\nbody\r\n", "rcpt@remote.test");
    cr_assert_eq(run(&f, m, CLEANUP_FLAG_LOCAL_HEADERS, &reply), CLEANUP_OK, "%s", STR_DATA(&reply));
    c = content_of(m);
    /* Received: first, in Postfix's layout. */
    cr_expect(starts_with(c, "Received: from helo.test (client.test [192.0.2.10])\r\n"
		      "\tby mail.example.com (Sluice) with ESMTP id " QID "\r\n"
		      "\tfor <rcpt@remote.test>; ") , "%s", c);
    HAS(c, "Subject: hi\r\n");
    HAS(c, "Message-Id: <20231114221320." QID "@mail.example.com>\r\n");
    HAS(c, "\r\nDate: ");
    HAS(c, "\r\nFrom: sender@example.com\r\n");
    /* the header section ends with one empty line, then the body */
    HAS(c, "\r\n\r\nbody\r\n");
    cr_expect(strstr(c, "\r\n\r\n") == strstr(c, "\r\n\r\nbody"));
    cr_expect_str_eq(m->sender, "sender@example.com");
    HAS(STR_DATA(&logbuf), QID ": message-id=<20231114221320." QID "@mail.example.com>\n");
    mem_free(c);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, remote_client_gets_no_added_headers_unless_always)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;

    fix_config(&f);
    fix_start(&f);
    m = mk("s@remote.test", "Subject: hi\r\nTo: user\r\n\r\nbody\r\n", "rcpt@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    HAS(c, "Received: from helo.test");
    HASNT(c, "Message-Id:");
    HASNT(c, "\r\nDate:");
    HASNT(c, "\r\nFrom:");
    HAS(c, "\r\nTo: user\r\n");		/* headers of remote mail are not rewritten */
    HAS(STR_DATA(&logbuf), QID ": message-id=<>\n");
    mem_free(c);
    message_free(m);
    fix_stop(&f);

    f.ccfg.always_add_missing_headers = true;
    fix_start(&f);
    m = mk("", "Subject: hi\r\nMessage-ID: <abc@x.test>\r\n\r\nbody\r\n", "rcpt@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    HAS(c, "\r\nDate: ");
    HAS(c, "\r\nFrom: MAILER-DAEMON\r\n");
    HASNT(c, "Message-Id: <2023");
    HAS(STR_DATA(&logbuf), QID ": message-id=<abc@x.test>\n");
    cr_expect_str_eq(m->sender, "");
    mem_free(c);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, received_variants)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    CLEANUP_INFO info;
    char   *c;

    fix_config(&f);
    fix_start(&f);
    /* two recipients: no "for"; TLS; IPv6 client */
    m = mk("s@x.test", "Subject: a\r\n\r\n", "a@remote.test");
    message_add_rcpt(m, "b@remote.test", NULL);
    mem_free(m->client_addr);
    m->client_addr = mem_strdup("2001:db8::1");
    mem_free(m->protocol);
    m->protocol = mem_strdup("ESMTPS");
    memset(&info, 0, sizeof(info));
    info.tls_protocol = "TLSv1.3";
    info.tls_cipher = "TLS_AES_256_GCM_SHA384";
    info.tls_usebits = info.tls_algbits = 256;
    cr_assert_eq(cleanup_message(f.ctx, m, &info, &reply), CLEANUP_OK);
    c = content_of(m);
    cr_expect(starts_with(c, "Received: from helo.test (client.test [IPv6:2001:db8::1])\r\n"
		      "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
		      "\t(No client certificate requested)\r\n"
		      "\tby mail.example.com (Sluice) with ESMTPS id " QID ";\r\n\t"),
	      "%s", c);
    mem_free(c);
    message_free(m);

    /* local submission (pickup) */
    m = mk("joe", "Subject: a\r\n\r\n", "a@remote.test");
    mem_free(m->protocol);
    m->protocol = mem_strdup("LOCAL");
    memset(&info, 0, sizeof(info));
    info.uid = 1000;
    info.flags = CLEANUP_FLAG_LOCAL_HEADERS;
    info.fullname = "Joe \"The\" User";
    cr_assert_eq(cleanup_message(f.ctx, m, &info, &reply), CLEANUP_OK);
    c = content_of(m);
    cr_expect(starts_with(c, "Received: by mail.example.com (Sluice, from userid 1000)\r\n"
		      "\tid " QID "; "), "%s", c);
    HAS(c, "From: \"Joe \\\"The\\\" User\" <joe@example.com>\r\n");
    mem_free(c);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

/* ---------- header_checks and body_checks ---------- */

static const char *checks_table =
    "/^Subject: reject me/ REJECT spam not wanted\n"
    "/^Subject: reject4/ REJECT 4.7.0 try later\n"
    "/^Subject: reject plain/ REJECT\n"
    "/^Subject: warn me/ WARN suspicious\n"
    "/^Subject: info me/ INFO noted\n"
    "/^Subject: hold me/ HOLD held for review\n"
    "/^Subject: discard me/ DISCARD dropped\n"
    "/^X-Ignore:/ IGNORE\n"
    "/^Subject: replace me/ REPLACE Subject: replaced\n"
    "/^Subject: prepend me/ PREPEND X-Tag: tagged\n"
    "/^Subject: dunno/ DUNNO\n"
    "/^Subject: ok/ OK\n"
    "/^Subject: strip/ STRIP stripped\n"
    "/^Subject: redirect/ REDIRECT other@remote.test\n"
    "/^Subject: bcc/ BCC archive@remote.test\n"
    "/^Subject: folded.*second/ WARN saw the fold\n"
    "/^Subject: bogus/ FROBNICATE\n";

static const char *body_table =
    "/^BADLINE/ REJECT body bad\n"
    "/^WARNLINE/ WARN body warning\n"
    "/^REPLACELINE/ REPLACE new line\n"
    "/^IGNORELINE/ IGNORE\n"
    "/^PREPENDLINE/ PREPEND before it\n"
    "/^HOLDLINE/ HOLD\n"
    "/hidden after nul/ REJECT found\n";

typedef struct ACT_CASE {
    const char *subject;
    int     result;
    const char *reply;			/* NULL: none expected */
    const char *in_content;		/* NULL: not checked */
    const char *not_in_content;
    const char *log;
} ACT_CASE;

static const ACT_CASE header_cases[] = {
    {"Subject: reject me now", CLEANUP_REJECT, "550 5.7.1 spam not wanted", NULL, NULL,
     QID ": reject: header Subject: reject me now from client.test[192.0.2.10]; "
     "from=<s@remote.test> to=<rcpt@example.com> proto=ESMTP helo=<helo.test>: "
     "5.7.1 spam not wanted\n"},
    {"Subject: reject4", CLEANUP_DEFER, "451 4.7.0 try later", NULL, NULL, ": 4.7.0 try later\n"},
    {"Subject: reject plain", CLEANUP_REJECT, "550 5.7.1 message content rejected", NULL, NULL,
     "reject: header Subject: reject plain"},
    {"Subject: warn me", CLEANUP_OK, NULL, "Subject: warn me\r\n", NULL,
     QID ": warning: header Subject: warn me from client.test[192.0.2.10]; "
     "from=<s@remote.test> to=<rcpt@example.com> proto=ESMTP helo=<helo.test>: suspicious\n"},
    {"Subject: info me", CLEANUP_OK, NULL, "Subject: info me\r\n", NULL,
     QID ": info: header Subject: info me from"},
    {"Subject: hold me", CLEANUP_HOLD, NULL, "Subject: hold me\r\n", NULL,
     QID ": hold: header Subject: hold me from client.test[192.0.2.10];"},
    {"Subject: discard me", CLEANUP_DISCARD, NULL, NULL, NULL,
     QID ": discard: header Subject: discard me from client.test[192.0.2.10];"},
    {"X-Ignore: yes", CLEANUP_OK, NULL, NULL, "X-Ignore", NULL},
    {"Subject: replace me", CLEANUP_OK, NULL, "\r\nSubject: replaced\r\n", "replace me",
     QID ": replace: header Subject: replace me from"},
    {"Subject: prepend me", CLEANUP_OK, NULL, "\r\nX-Tag: tagged\r\nSubject: prepend me\r\n",
     NULL, QID ": prepend: header Subject: prepend me from"},
    {"Subject: dunno", CLEANUP_OK, NULL, "Subject: dunno\r\n", NULL, NULL},
    {"Subject: ok", CLEANUP_OK, NULL, "Subject: ok\r\n", NULL, NULL},
    {"Subject: strip", CLEANUP_OK, NULL, NULL, "Subject: strip", QID ": strip: header Subject: strip"},
    {"Subject: folded\r\n second", CLEANUP_OK, NULL, "Subject: folded\r\n second\r\n", NULL,
     ": warning: header Subject: folded  second from"},
    {"Subject: bogus", CLEANUP_OK, NULL, "Subject: bogus\r\n", NULL,
     "warning: unknown command in header_checks map: FROBNICATE\n"},
};

Test(cleanup, header_checks_actions)
{
    FIXTURE f;
    STR     reply = STR_INIT, content = STR_INIT;

    fix_config(&f);
    f.ccfg.header_checks = write_table("regexp", "header_checks", checks_table);
    fix_start(&f);
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
	const ACT_CASE *c = header_cases + i;
	MESSAGE *m;
	int     rc;

	str_reset(&content);
	str_printf(&content, "From: a@b.test\r\n%s\r\n\r\nbody\r\n", c->subject);
	m = mk("s@remote.test", STR_DATA(&content), "rcpt@example.com");
	str_reset(&logbuf);
	rc = run(&f, m, 0, &reply);
	cr_expect_eq(rc, c->result, "case %zu (%s): result %d, want %d", i, c->subject, rc, c->result);
	if (c->reply)
	    cr_expect_str_eq(STR_DATA(&reply), c->reply, "case %zu", i);
	if (rc == CLEANUP_OK || rc == CLEANUP_HOLD || rc == CLEANUP_DISCARD) {
	    char   *out = content_of(m);

	    if (c->in_content)
		HAS(out, c->in_content);
	    if (c->not_in_content)
		HASNT(out, c->not_in_content);
	    mem_free(out);
	}
	if (c->log)
	    HAS(STR_DATA(&logbuf), c->log);
	message_free(m);
    }
    str_release(&content);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, header_checks_redirect_and_bcc)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;

    fix_config(&f);
    f.ccfg.header_checks = write_table("regexp", "header_checks", checks_table);
    fix_start(&f);
    m = mk("s@remote.test", "Subject: redirect\r\n\r\n", "rcpt@example.com");
    message_add_rcpt(m, "rcpt2@example.com", NULL);
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    cr_assert_eq(m->nrcpt, 2);
    cr_expect_str_eq(m->rcpt[0].address, "other@remote.test");
    cr_expect_str_eq(m->rcpt[0].orig_rcpt, "rcpt@example.com");
    cr_expect_str_eq(m->rcpt[1].orig_rcpt, "rcpt2@example.com");
    message_free(m);

    m = mk("s@remote.test", "Subject: bcc\r\n\r\n", "rcpt@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    cr_assert_eq(m->nrcpt, 2);
    cr_expect_str_eq(m->rcpt[0].address, "rcpt@example.com");
    cr_expect_str_eq(m->rcpt[1].address, "archive@remote.test");
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, body_checks_actions)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;
    static const char nul_body[] = "Subject: x\r\n\r\nline\0hidden after nul\r\n";

    fix_config(&f);
    f.ccfg.body_checks = write_table("regexp", "body_checks", body_table);
    fix_start(&f);

    m = mk("s@remote.test", "Subject: x\r\n\r\nok\r\nBADLINE here\r\n", "r@example.com");
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_REJECT);
    cr_expect_str_eq(STR_DATA(&reply), "550 5.7.1 body bad");
    HAS(STR_DATA(&logbuf), QID ": reject: body BADLINE here from client.test[192.0.2.10]; "
	"from=<s@remote.test> to=<r@example.com> proto=ESMTP helo=<helo.test>: 5.7.1 body bad\n");
    message_free(m);

    m = mk("s@remote.test", "Subject: x\r\n\r\nWARNLINE\r\nREPLACELINE\r\nIGNORELINE\r\n"
	   "PREPENDLINE\r\nHOLDLINE\r\nend\r\n", "r@example.com");
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_HOLD);
    c = content_of(m);
    HAS(c, "\r\n\r\nWARNLINE\r\nnew line\r\nbefore it\r\nPREPENDLINE\r\nHOLDLINE\r\nend\r\n");
    HASNT(c, "IGNORELINE");
    HASNT(c, "REPLACELINE");
    HAS(STR_DATA(&logbuf), QID ": warning: body WARNLINE from");
    mem_free(c);
    message_free(m);

    /* a NUL byte does not hide the rest of a line from the checks */
    m = message_new();
    strcpy(m->queue_id, QID);
    message_add_rcpt(m, "r@example.com", NULL);
    m->content = blob_new(nul_body, sizeof(nul_body) - 1);
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_REJECT);
    message_free(m);

    /* body_checks_size_limit: a match past the limit is not seen */
    fix_stop(&f);
    f.ccfg.body_checks_size_limit = 10;
    fix_start(&f);
    m = mk("s@remote.test", "Subject: x\r\n\r\n0123456789\r\nBADLINE\r\n", "r@example.com");
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    message_free(m);

    /* CLEANUP_FLAG_NO_CHECKS turns them off (our own notices) */
    m = mk("", "Subject: x\r\n\r\nBADLINE\r\n", "r@example.com");
    cr_expect_eq(run(&f, m, CLEANUP_FLAG_NO_CHECKS, &reply), CLEANUP_OK);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

/* ---------- canonical maps ---------- */

Test(cleanup, canonical_maps_envelope_and_headers)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;

    fix_config(&f);
    f.rcfg.recipient_delimiter = "+";
    f.ccfg.sender_canonical_maps = write_table("texthash", "sender_canonical",
					       "sender@example.com  Sender.Name@example.com\n");
    f.ccfg.recipient_canonical_maps = write_table("texthash", "recipient_canonical",
						  "rcpt@remote.test  real@remote.test\n");
    f.ccfg.canonical_maps = write_table("texthash", "canonical",
					"@old.test  catchall@new.test\n"
					"joe  joseph\n");
    fix_start(&f);
    m = mk("sender", "From: Sender <sender>\r\nTo: rcpt@remote.test,\r\n"
	   "  \"Joe\" <joe>, x+tag@old.test (comment)\r\nCc: undisclosed-recipients:;\r\n"
	   "Reply-To: sender@example.com\r\nSubject: canonical\r\n\r\nbody\r\n",
	   "rcpt@remote.test");
    message_add_rcpt(m, "x+tag@old.test", NULL);
    message_add_rcpt(m, "joe", NULL);
    cr_assert_eq(run(&f, m, CLEANUP_FLAG_LOCAL_HEADERS, &reply), CLEANUP_OK, "%s", STR_DATA(&reply));
    cr_expect_str_eq(m->sender, "Sender.Name@example.com");
    cr_assert_eq(m->nrcpt, 3);
    cr_expect_str_eq(m->rcpt[0].address, "real@remote.test");
    cr_expect_str_eq(m->rcpt[0].orig_rcpt, "rcpt@remote.test");
    cr_expect_str_eq(m->rcpt[1].address, "catchall+tag@new.test");	/* extension kept */
    cr_expect_str_eq(m->rcpt[2].address, "joseph@example.com");	/* "user" key, local */
    c = content_of(m);
    HAS(c, "\r\nFrom: Sender <Sender.Name@example.com>\r\n");
    HAS(c, "\r\nTo: real@remote.test,\r\n  \"Joe\" <joseph@example.com>, "
	"catchall+tag@new.test (comment)\r\n");
    HAS(c, "\r\nCc: undisclosed-recipients:;\r\n");
    HAS(c, "\r\nReply-To: Sender.Name@example.com\r\n");
    mem_free(c);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

/* ---------- virtual alias expansion ---------- */

Test(cleanup, virtual_alias_one_to_many_nesting_and_loops)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;

    fix_config(&f);
    f.ccfg.virtual_alias_maps = write_table("texthash", "virtual",
	"list@example.com   a@remote.test, b@remote.test, nested\n"
	"nested@example.com d@remote.test\n"
	"self@example.com   self@example.com, copy@remote.test\n"
	"x@example.com      y@example.com\n"
	"y@example.com      x@example.com\n"
	"dup@example.com    a@remote.test, a@remote.test\n");
    fix_start(&f);

    m = mk("s@remote.test", "Subject: v\r\n\r\n", "list@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK, "%s", STR_DATA(&reply));
    cr_assert_eq(m->nrcpt, 3);
    cr_expect_str_eq(m->rcpt[0].address, "a@remote.test");
    cr_expect_str_eq(m->rcpt[1].address, "b@remote.test");
    cr_expect_str_eq(m->rcpt[2].address, "d@remote.test");
    for (size_t i = 0; i < m->nrcpt; i++)
	cr_expect_str_eq(m->rcpt[i].orig_rcpt, "list@example.com");
    message_free(m);

    /* an address that maps to itself is kept, next to the others */
    m = mk("s@remote.test", "Subject: v\r\n\r\n", "self@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    cr_assert_eq(m->nrcpt, 2);
    cr_expect_str_eq(m->rcpt[0].address, "self@example.com");
    cr_expect_str_eq(m->rcpt[1].address, "copy@remote.test");
    message_free(m);

    /* a two-address loop ends (on the starting address) */
    m = mk("s@remote.test", "Subject: v\r\n\r\n", "x@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    cr_assert_eq(m->nrcpt, 1);
    cr_expect_str_eq(m->rcpt[0].address, "x@example.com");
    message_free(m);

    /* duplicates are dropped */
    m = mk("s@remote.test", "Subject: v\r\n\r\n", "dup@example.com");
    message_add_rcpt(m, "dup@example.com", NULL);
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    cr_expect_eq(m->nrcpt, 1);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, virtual_alias_limits)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT, table = STR_INIT;

    /* a chain of 1500 aliases: deeper than virtual_alias_recursion_limit */
    for (int i = 0; i < 1500; i++)
	str_printf(&table, "a%d@example.com a%d@example.com\n", i, i + 1);
    /* one address to 1200: more than virtual_alias_expansion_limit */
    str_puts(&table, "big@example.com ");
    for (int i = 0; i < 1200; i++)
	str_printf(&table, "%su%d@remote.test", i ? ", " : "", i);
    str_puts(&table, "\n");
    fix_config(&f);
    f.ccfg.virtual_alias_maps = write_table("texthash", "virtual", STR_DATA(&table));
    fix_start(&f);

    m = mk("s@remote.test", "Subject: v\r\n\r\n", "a0@example.com");
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_DEFER);
    cr_expect_str_eq(STR_DATA(&reply), "451 4.6.0 Alias expansion error");
    HAS(STR_DATA(&logbuf), "warning: " QID ": unreasonable virtual_alias_maps map nesting "
	"for a0@example.com -- message not accepted, try again later\n");
    message_free(m);

    m = mk("s@remote.test", "Subject: v\r\n\r\n", "big@example.com");
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_DEFER);
    HAS(STR_DATA(&logbuf), "unreasonable virtual_alias_maps map expansion size for big@example.com");
    message_free(m);

    /* within the limits: 900 steps of nesting are fine */
    m = mk("s@remote.test", "Subject: v\r\n\r\n", "a600@example.com");
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_OK, "%s", STR_DATA(&reply));
    cr_expect_str_eq(m->rcpt[0].address, "a1500@example.com");
    message_free(m);
    str_release(&table);
    str_release(&reply);
    fix_stop(&f);
}

/* ---------- hops, stray CR/LF, -t, envelope odds ---------- */

Test(cleanup, hop_count_limit)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT, content = STR_INIT;

    fix_config(&f);
    fix_start(&f);
    for (int i = 0; i < 49; i++)
	str_printf(&content, "Received: from hop%d.test by x.test; Tue, 1 Jan 2030 00:00:00 +0000\r\n", i);
    str_puts(&content, "Subject: loop\r\n\r\nbody\r\n");
    m = mk("s@remote.test", STR_DATA(&content), "r@example.com");
    /* 49 + ours = 50 = hopcount_limit */
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_REJECT);
    cr_expect_str_eq(STR_DATA(&reply), "554 5.4.0 Error: too many hops");
    HAS(STR_DATA(&logbuf), "warning: " QID ": message rejected: hopcount exceeded\n");
    message_free(m);

    str_reset(&content);
    for (int i = 0; i < 48; i++)
	str_printf(&content, "Received: from hop%d.test\r\n", i);
    str_puts(&content, "Subject: fine\r\n\r\nbody\r\n");
    m = mk("s@remote.test", STR_DATA(&content), "r@example.com");
    cr_expect_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    message_free(m);
    str_release(&content);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, stray_cr_lf)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;
    const char *in = "Subject: a\rb\r\nX-Two: c\nd\r\n\r\nline1\nline2\r\nx\ry\r\n\nlast\r";

    fix_config(&f);
    fix_start(&f);
    m = mk("s@remote.test", in, "r@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    HAS(c, "\r\nSubject: a b\r\nX-Two: c d\r\n\r\nline1 line2\r\nx y\r\n last \r\n");
    /* every CR is followed by LF and every LF preceded by CR */
    for (size_t i = 0; c[i]; i++) {
	if (c[i] == '\r')
	    cr_expect_eq(c[i + 1], '\n', "bare CR at %zu", i);
	if (c[i] == '\n')
	    cr_expect(i > 0 && c[i - 1] == '\r', "bare LF at %zu", i);
    }
    mem_free(c);
    message_free(m);
    fix_stop(&f);

    f.ccfg.replace_stray_cr_lf = false;
    fix_start(&f);
    m = mk("s@remote.test", in, "r@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    HAS(c, "\r\nSubject: a\rb\r\n");
    HAS(c, "line1\nline2\r\n");
    mem_free(c);
    message_free(m);
    fix_stop(&f);

    /* line by line (body_checks look at every line): the same result */
    f.ccfg.replace_stray_cr_lf = true;
    f.ccfg.body_checks = write_table("regexp", "body_checks", "/^never matches$/ REJECT\n");
    fix_start(&f);
    m = mk("s@remote.test", in, "r@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    HAS(c, "\r\nSubject: a b\r\nX-Two: c d\r\n\r\nline1 line2\r\nx y\r\n last \r\n");
    mem_free(c);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, sendmail_t_extraction_and_dropped_headers)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;

    fix_config(&f);
    fix_start(&f);
    m = mk("joe", "Return-Path: <forged@x.test>\r\nTo: A <a@remote.test>, b\r\n"
	   "Cc: c@remote.test\r\nBcc: secret@remote.test\r\nContent-Length: 5\r\n"
	   "Subject: t\r\n\r\nbody\r\n", NULL);
    mem_free(m->protocol);
    m->protocol = mem_strdup("LOCAL");
    cr_assert_eq(run(&f, m, CLEANUP_FLAG_LOCAL_HEADERS | CLEANUP_FLAG_EXTRACT, &reply),
		 CLEANUP_OK, "%s", STR_DATA(&reply));
    cr_assert_eq(m->nrcpt, 4);
    cr_expect_str_eq(m->rcpt[0].address, "a@remote.test");
    cr_expect_str_eq(m->rcpt[1].address, "b@example.com");
    cr_expect_str_eq(m->rcpt[2].address, "c@remote.test");
    cr_expect_str_eq(m->rcpt[3].address, "secret@remote.test");
    c = content_of(m);
    HASNT(c, "Bcc:");
    HASNT(c, "secret");
    HASNT(c, "Return-Path:");
    HASNT(c, "Content-Length:");
    HAS(c, "\r\nTo: A <a@remote.test>, b@example.com\r\n");
    mem_free(c);
    message_free(m);

    /* Without recipients at all: rejected. */
    m = mk("joe", "Subject: t\r\n\r\nbody\r\n", NULL);
    cr_expect_eq(run(&f, m, CLEANUP_FLAG_EXTRACT, &reply), CLEANUP_REJECT);
    cr_expect_str_eq(STR_DATA(&reply), "550 5.1.0 Error: no recipients specified");
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, null_recipient_and_resent_headers)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;

    fix_config(&f);
    fix_start(&f);
    m = mk("s", "Resent-To: x@remote.test\r\nSubject: r\r\n\r\n", "");
    cr_assert_eq(run(&f, m, CLEANUP_FLAG_LOCAL_HEADERS, &reply), CLEANUP_OK);
    cr_expect_str_eq(m->rcpt[0].address, "MAILER-DAEMON@example.com");
    c = content_of(m);
    HAS(c, "\r\nResent-Message-Id: <20231114221320." QID "@mail.example.com>\r\n");
    HAS(c, "\r\nResent-Date: ");
    HAS(c, "\r\nResent-From: s@example.com\r\n");
    HAS(STR_DATA(&logbuf), QID ": resent-message-id=<");
    HAS(STR_DATA(&logbuf), QID ": message-id=<>\n");
    mem_free(c);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

/* ---------- hostile input ---------- */

Test(cleanup, hostile_long_header_is_truncated)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT, content = STR_INIT;
    char   *c, *subj, *end;

    fix_config(&f);
    f.ccfg.header_size_limit = 1000;
    fix_start(&f);
    /* one 200 kB line, then a header folded over 500 lines */
    str_puts(&content, "Subject: ");
    for (int i = 0; i < 200000; i++)
	str_putc(&content, 'x');
    str_puts(&content, "\r\nX-Folded: start\r\n");
    for (int i = 0; i < 500; i++)
	str_puts(&content, " continuation line text\r\n");
    str_puts(&content, "X-After: kept\r\n\r\nbody\r\n");
    m = mk("s@remote.test", STR_DATA(&content), "r@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    subj = strstr(c, "\r\nSubject: ");
    cr_assert_not_null(subj);
    end = strstr(subj + 2, "\r\n");
    cr_expect_eq((size_t) (end - subj - 2), 1000, "Subject: is %zu bytes", (size_t) (end - subj - 2));
    HAS(c, "\r\nX-After: kept\r\n\r\nbody\r\n");
    cr_expect_lt(m->content->len, 4000);
    HAS(STR_DATA(&logbuf), "truncated at 1000 bytes");
    mem_free(c);
    message_free(m);
    str_release(&content);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, hostile_header_without_colon_and_nul_bytes)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char   *c;
    static const char in[] = "this is not a header\r\nSubject: later\r\n\r\nbody\0with nul\r\n";

    fix_config(&f);
    fix_start(&f);
    m = mk("s@remote.test", "", "r@example.com");
    blob_unref(m->content);
    m->content = blob_new(in, sizeof(in) - 1);
    cr_assert_eq(run(&f, m, CLEANUP_FLAG_LOCAL_HEADERS, &reply), CLEANUP_OK);
    c = mem_memdup(m->content->data, m->content->len + 1);
    c[m->content->len] = 0;
    /* our headers, the empty line, then the whole original as body */
    HAS(c, "\r\nFrom: s@remote.test\r\n\r\nthis is not a header\r\nSubject: later\r\n");
    cr_expect(memmem(m->content->data, m->content->len, "body\0with nul\r\n", 15) != NULL);
    mem_free(c);
    message_free(m);

    /* empty content, and content without any CRLF */
    m = mk("s@remote.test", "", "r@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    cr_expect(strstr(c, "\r\n\r\n") != NULL && strstr(c, "\r\n\r\n")[4] == 0, "%s", c);
    mem_free(c);
    message_free(m);
    m = mk("s@remote.test", "Subject: no end", "r@example.com");
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK);
    c = content_of(m);
    HAS(c, "\r\nSubject: no end\r\n\r\n");
    mem_free(c);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, hostile_ten_thousand_recipients)
{
    FIXTURE f;
    MESSAGE *m;
    STR     reply = STR_INIT;
    char    addr[64];

    fix_config(&f);
    f.ccfg.duplicate_filter_limit = 0;	/* remember them all */
    f.ccfg.virtual_alias_maps = "inline:{ { u5@example.com = u5@example.com, five@remote.test } }";
    fix_start(&f);
    m = mk("s@remote.test", "Subject: many\r\n\r\nbody\r\n", NULL);
    for (int i = 0; i < 10000; i++) {
	snprintf(addr, sizeof(addr), "u%d@example.com", i);
	message_add_rcpt(m, addr, NULL);
    }
    for (int i = 0; i < 100; i++)	/* duplicates */
	message_add_rcpt(m, "u7@example.com", NULL);
    cr_assert_eq(run(&f, m, 0, &reply), CLEANUP_OK, "%s", STR_DATA(&reply));
    cr_expect_eq(m->nrcpt, 10001);
    message_free(m);
    str_release(&reply);
    fix_stop(&f);
}

Test(cleanup, config_from_params_has_postfix_defaults)
{
    CLEANUP_CONFIG cfg;

    cleanup_config_from_params(&cfg);
    cr_expect_eq(cfg.hopcount_limit, 50);
    cr_expect_eq(cfg.header_size_limit, 102400);
    cr_expect_eq(cfg.body_checks_size_limit, 51200);
    cr_expect_eq(cfg.virtual_alias_recursion_limit, 1000);
    cr_expect_eq(cfg.virtual_alias_expansion_limit, 1000);
    cr_expect(cfg.replace_stray_cr_lf);
    cr_expect(!cfg.always_add_missing_headers);
    cr_expect(cfg.propagate_canonical && cfg.propagate_virtual);
}
