/*
 * queue_notice.h - notices (bounce, delay, success) from the queue manager
 * until they are durably queued, so that none is lost in a crash or in the
 * minutes the cleanup service is not running.
 *
 * A recipient that bounces (or is sent with NOTIFY=SUCCESS) is journaled
 * as final with "notice owed" (JOURNAL_NOTICE_OWED): the journal keeps the
 * message live until a NOTICED record names the recipient, and that record
 * is appended only once the notice's own MESSAGE record is durable (its
 * cleanup submission completed with 250). The message's DONE record waits
 * for its notices in flight. A delay notice, once queued, is recorded with
 * a WARNED record, so a restart does not send a second one.
 *
 * Notices built while the cleanup service is closed (start-up: recovery
 * runs before cleanup starts; shutdown) wait here and are submitted when
 * it opens (queue_notice_component, started after the receive component).
 * Those still waiting when the queue stops are dropped from memory only:
 * their recipients still owe the notice in the journal, so the next start
 * sends it. Hence at-least-once: a crash between the notice's MESSAGE and
 * the NOTICED record sends the notice twice.
 *
 * Threading: queue_notice_event and queue_notice_message_done on the qmgr
 * thread (or the starting thread before qmgr runs); completions on the
 * journal's writer thread; everything shared is under one mutex.
 * Diagnostics: bounce's lines (stages/bounce.c) and, when a notice could
 * not be queued, "warning: ID: notice not queued; it is sent again at the
 * next start".
 */
#ifndef SLUICE_QUEUE_NOTICE_H
#define SLUICE_QUEUE_NOTICE_H

#include <stdbool.h>

#include "engine/engine.h"
#include "queue/journal.h"
#include "queue/message.h"
#include "queue/qmgr.h"

/* finish(msg): every notice of a finished message is queued; the caller
 * appends DONE and frees msg. */
void    queue_notice_init(JOURNAL *journal, void (*finish)(MESSAGE *msg));

/* The flag for journal_append_outcome(): does this outcome owe a notice? */
unsigned queue_notice_outcome_flags(const MESSAGE *msg, size_t rcpt_index,
				    enum rcpt_state state);

/* qmgr's notify hook. */
void    queue_notice_event(const MESSAGE *msg, enum qmgr_notify kind,
			   const QMGR_NOTIFY_RCPT *rcpt, size_t n);

/* qmgr's message_done hook: true when notices are in flight (msg is kept
 * and finish() is called later), false when DONE may be written now. */
bool    queue_notice_message_done(MESSAGE *msg);

/* Recovery: re-issue the notices a recovered message still owes. Takes msg
 * when every recipient is final (returns true), else leaves it to the
 * caller (false) to be queued for delivery as usual. */
bool    queue_notice_recovered(MESSAGE *msg, const JOURNAL_RECOVERED *item);

/*
 * The enhanced status code (RFC 3463, "5.1.1") in a recorded reason, such
 * as "host h[ip] said: 550 5.1.1 <u@d>: unknown user", else dflt: what a
 * notice re-issued after a restart reports. A code must stand alone (not
 * inside a longer run of digits and dots) and have 1-3 digits per part.
 */
#define QUEUE_NOTICE_DSN_SIZE	10	/* "5.123.456" */
void    queue_notice_reason_dsn(const char *reason, const char *dflt,
				char out[QUEUE_NOTICE_DSN_SIZE]);

/* The queue stops (after the cleanup service): forget what waits. */
void    queue_notice_stop(void);

/* Opens the way to the cleanup service while it runs. */
extern const ENGINE_COMPONENT queue_notice_component;

#endif
