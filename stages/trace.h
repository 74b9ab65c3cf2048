/*
 * trace.h - sendmail -bv: the "what would happen" report (Postfix's trace
 * service for user-requested address verification).
 *
 * A message that sendmail -bv submits (maildrop flag MAILDROP_FLAG_VERIFY,
 * cleanup flag CLEANUP_FLAG_VERIFY) goes through cleanup and
 * trivial-rewrite like any other, so canonical and virtual alias maps,
 * transport_maps and relayhost all apply; then, instead of the journal,
 * it comes here. Each recipient is judged by where trivial-rewrite sent it
 * and by the master.cf service of that transport:
 *   error          undeliverable, the nexthop's text (5.x.x)
 *   error "retry"  undeliverable, the nexthop's text (4.x.x)
 *   discard        deliverable ("discards mail: TEXT")
 *   local          alias_maps (user+ext, then user): deliverable ("alias
 *                  expansion: VALUE"); else a password-file user:
 *                  deliverable ("delivers to mailbox"); else undeliverable
 *                  5.1.1 `unknown user: "name"`, as local(8) would bounce
 *   anything else  deliverable ("delivers via TRANSPORT to NEXTHOP"); the
 *                  remote server is not contacted
 *   no service     undeliverable 4.3.0 "mail transport unavailable"
 * The report -- Postfix's "Mail Delivery Status Report", multipart/report
 * with Action: deliverable / undeliverable per recipient -- goes to the
 * sender as new mail; the probe itself is never queued or delivered.
 *
 * Threading: any thread (the cleanup stage's). Diagnostics: one line per
 * recipient in Postfix's form, logged under the agent's name:
 *   ID: to=<r>, orig_to=<o>, relay=local, delay=0, delays=0/0/0/0,
 *   dsn=2.0.0, status=deliverable (delivers to mailbox)
 * then "bounce: ID: sender delivery status notification: NEWID" and
 * "ID: removed".
 */
#ifndef SLUICE_TRACE_H
#define SLUICE_TRACE_H

#include "engine/str.h"
#include "queue/message.h"
#include "stages/bounce.h"
#include "stages/smtpd.h"

/* One recipient's verdict. */
typedef struct TRACE_VERDICT {
    bool    deliverable;
    char    dsn[16];		/* "2.0.0", "5.1.1" */
    const char *service;	/* who would deliver: "local", "smtp", "error" */
    STR     reason;
} TRACE_VERDICT;

/* The verdict for msg->rcpt[i] under the current configuration. */
void    trace_verdict(const MESSAGE *msg, size_t i, TRACE_VERDICT *out);
void    trace_verdict_release(TRACE_VERDICT *v);

/*
 * Judges every recipient of msg (resolved by trivial-rewrite), logs, and
 * hands the report for the sender to submit. Takes msg. done(ctx, code,
 * text) once: 250 and the probe's queue ID when the report is queued (or
 * when nobody can get one: the null sender), else the submission's answer.
 */
void    trace_verify(MESSAGE *msg, bounce_submit_fn submit, smtpd_done_fn done, void *ctx);

#endif
