/*
 * bounce.h - delivery status notifications (Postfix's bounce(8), defer and
 * trace services): RFC 3464 reports built as new MESSAGEs with the null
 * sender and handed to the cleanup stage like any other mail.
 *
 * A notice is multipart/report; report-type=delivery-status with
 *  (1) text/plain: Postfix's explanation ("This is the mail system at host
 *      X. ...") and one "<addr>: reason" paragraph per recipient;
 *  (2) message/delivery-status (message/global-delivery-status for SMTPUTF8
 *      mail): Original-Envelope-Id, Reporting-MTA, X-Postfix-Queue-ID,
 *      X-Postfix-Sender, Arrival-Date, then per recipient Final-Recipient,
 *      Original-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
 *      Last-Attempt-Date, Will-Retry-Until (delays);
 *  (3) the original: message/rfc822 (failures with RET=FULL or no RET, when
 *      it fits in bounce_size_limit) or text/rfc822-headers (RET=HDRS, too
 *      large, delay and success notices).
 *
 * Who gets what (Postfix's rules):
 *  - failure: the sender, for the recipients with NOTIFY=FAILURE or no
 *    NOTIFY; "bounce" in notify_classes adds a headers-only postmaster copy
 *    to bounce_notice_recipient. Never a bounce for a bounce: mail from <>
 *    that fails goes, headers only, to 2bounce_notice_recipient when
 *    notify_classes has "2bounce", else is dropped; a failed postmaster
 *    notice (sender $double_bounce_sender) is dropped with a warning.
 *  - delay: the sender, for NOTIFY=DELAY or no NOTIFY; "delay" in
 *    notify_classes adds a copy to delay_notice_recipient.
 *  - success: the sender, for NOTIFY=SUCCESS.
 *  - verify (sendmail -bv): the report for the sender, every recipient,
 *    with the action the caller gives ("deliverable", "undeliverable").
 *
 * Threading: bounce_build and bounce_content are pure (any thread).
 * bounce_notify runs on the caller's thread (qmgr); the submit function's
 * completion may run on any thread and logs there, and calls the caller's
 * done function there.
 * Diagnostics: Postfix's lines, service "bounce":
 *   ID: sender non-delivery notification: NEWID
 *   ID: sender delay notification: NEWID
 *   ID: sender delivery status notification: NEWID
 *   ID: postmaster non-delivery notification: NEWID
 *   warning: ID: undeliverable postmaster notification discarded
 *   warning: ID: sender non-delivery notification not sent: REASON
 */
#ifndef SLUICE_BOUNCE_H
#define SLUICE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/str.h"
#include "queue/message.h"
#include "queue/qmgr.h"

enum bounce_kind {
    BOUNCE_KIND_FAILURE,	/* bounced or expired */
    BOUNCE_KIND_DELAY,		/* delay_warning_time passed */
    BOUNCE_KIND_SUCCESS,	/* NOTIFY=SUCCESS */
    BOUNCE_KIND_VERIFY,		/* sendmail -bv report */
};

/* notify_classes bits that matter here. */
#define BOUNCE_CLASS_BOUNCE	(1u<<0)
#define BOUNCE_CLASS_2BOUNCE	(1u<<1)
#define BOUNCE_CLASS_DELAY	(1u<<2)

/* Settings; strings are borrowed. */
typedef struct BOUNCE_CONFIG {
    const char *myhostname;
    const char *myorigin;
    const char *double_bounce_sender;	/* "double-bounce" */
    const char *bounce_notice_recipient;	/* "postmaster" */
    const char *double_bounce_notice_recipient;	/* 2bounce_notice_recipient */
    const char *delay_notice_recipient;
    unsigned notify_classes;		/* BOUNCE_CLASS_* */
    size_t  size_limit;			/* bounce_size_limit */
    int64_t delay_warning_time_s;
    int64_t maximal_queue_lifetime_s;
} BOUNCE_CONFIG;

/* Defaults as Postfix's, host "localhost" (tests). */
void    bounce_config_defaults(BOUNCE_CONFIG *cfg);
/* From the current parameters (strings live until exit). */
void    bounce_config_from_params(BOUNCE_CONFIG *cfg);
/* "bounce, 2bounce, delay, resource" -> BOUNCE_CLASS_* bits. */
unsigned bounce_classes_parse(const char *list);

/* One recipient of the original, and what happened to it. */
typedef struct BOUNCE_RCPT {
    size_t  index;		/* into orig->rcpt[] */
    const char *dsn;		/* "5.1.1"; NULL/invalid: from reason or kind */
    const char *reason;		/* NULL or "" when none */
    const char *action;		/* NULL: from the kind (verify: the caller's) */
} BOUNCE_RCPT;

#define BOUNCE_MAX_NOTICES	2

typedef struct BOUNCE_NOTICE {
    MESSAGE *msg;		/* envelope + content, queue_id assigned */
    const char *what;		/* "sender non-delivery notification" */
} BOUNCE_NOTICE;

/*
 * The notices due for one event, by the rules above: 0, 1 or 2 (the
 * sender's and the postmaster's) new MESSAGEs in out[] (the caller owns
 * them). Recipients without a transport yet: the engine's rewrite resolves
 * them. now_us: wall clock.
 */
size_t  bounce_build(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
		     const BOUNCE_RCPT *rcpt, size_t n, int64_t now_us,
		     BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES]);

/* Only the content of one notice (headers + multipart/report body, CRLF)
 * addressed to `to`; postmaster: a postmaster copy (no boilerplate,
 * headers only). Appends to out. */
void    bounce_content(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
		       bool postmaster, const char *to, const BOUNCE_RCPT *rcpt, size_t n,
		       int64_t now_us, const char *notice_id, STR *out);

/*
 * Hands a notice to the cleanup stage (receive_submit_internal): takes msg
 * and returns 0, then calls done(ctx, code, text) once (250: text is the
 * queue ID), or returns -1 and leaves msg to the caller.
 */
typedef int (*bounce_submit_fn)(MESSAGE *msg, int cleanup_flags,
				void (*done)(void *ctx, int code, const char *text),
				void *ctx);

/*
 * Builds the notices for one event and submits them; logs. Then done(ctx,
 * queued) once (done may be NULL): queued is true when every notice is
 * queued or none was due, false when one could not be queued. done may
 * run before bounce_notify returns, or later on the submitter's thread.
 */
typedef void (*bounce_done_fn)(void *ctx, bool queued);

void    bounce_notify(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
		      const BOUNCE_RCPT *rcpt, size_t n, bounce_submit_fn submit,
		      bounce_done_fn done, void *ctx);

/* The queue manager's notify hook, with the current parameters. */
void    bounce_qmgr_notify(const MESSAGE *orig, enum qmgr_notify kind,
			   const QMGR_NOTIFY_RCPT *rcpt, size_t n, bounce_submit_fn submit,
			   bounce_done_fn done, void *ctx);

#endif
