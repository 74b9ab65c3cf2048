/*
 * qmgr.h - the queue manager's scheduler: which recipient goes to which
 * delivery agent, when.
 *
 * The engine hands qmgr messages whose recipients are resolved
 * (rcpt[i].transport and rcpt[i].nexthop set). qmgr keeps Postfix's queues
 * as message states (incoming -> active -> deferred / hold), groups the
 * recipients of each active message per transport and destination (nexthop),
 * and hands DELIVERY_REQUESTs to the agents through a per-transport dispatch
 * function, under Postfix's scheduler rules: concurrency window with slow
 * start and feedback, failed cohorts and dead destinations, recipient limit,
 * rate delay, per-transport process limit; and beyond Postfix a per-destination
 * message-rate token bucket and connection limit. Deferred messages come back
 * after a backoff (message age clamped to [minimal, maximal]_backoff_time, with
 * jitter) at the next deferred-queue scan; too old ones bounce.
 *
 * Which message a destination sends next: Postfix's preemptive scheduler
 * (delivery slots, SCHEDULER_README), adapted to per-destination round
 * robin. Within one destination queue, messages are served oldest first;
 * each request of the current message earns it a slot, and a later message
 * that needs at most what the current one can still pay for preempts it
 * once the current one has saved cost x its requests (less the loan and
 * the discount): with delivery_slot_cost 5 a small message behind a
 * 1000-request mailing to the same relay goes out after one of the
 * mailing's requests, and the mailing is slowed by about 1/5. Differences
 * from Postfix (details in qmgr_job.c): slots are counted per message and
 * destination, not per message and transport, because destinations never
 * wait for one another here; a message's size is its requests to that
 * destination (plus its recipients not yet expanded); the candidate search
 * is bounded (no blocker jobs, no whole-list walk); recipient slots
 * (transport recipient limits, rcpt_per_stack) are not modelled.
 * delivery_slot_cost 0 or 1 turns preemption off (first come, first served).
 *
 * Everything here is independent of the journal and of main.cf: every setting
 * comes in a QMGR_CONFIG (qmgr_config_defaults() gives Postfix's defaults; the
 * engine maps parameters onto it), every durable change goes out through the
 * hooks, and time comes from an injectable clock.
 *
 * Threading: one thread owns a QMGR (the "qmgr thread"): every function below
 * runs on it, except the three marked "any thread" (qmgr_submit,
 * qmgr_control, and the done() of a DELIVERY_REQUEST). Those only push an
 * event onto qmgr's inbox (a wait-free queue) and maybe call hooks.wakeup;
 * the qmgr thread acts on it in qmgr_run(). No hook is called from any other
 * thread than the qmgr thread, except hooks.wakeup.
 *
 * Ownership: a MESSAGE given to qmgr_enqueue()/qmgr_submit() belongs to qmgr
 * (read-only for agents while a request is out) until hooks.message_done()
 * hands it back; qmgr_free() frees the messages it still holds.
 *
 * Diagnostics: Postfix-style lines logged with msg_info() for outcomes qmgr
 * decides itself ("to=<r>, relay=none, ... status=deferred (delivery
 * temporarily suspended: ...)", "from=<s>, status=expired, returned to
 * sender"); msg_warn() for bad input (duplicate queue ID, recipient without a
 * transport); msg_panic() on internal inconsistency.
 */
#ifndef SLUICE_QMGR_H
#define SLUICE_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/squeue.h"
#include "queue/message.h"
#include "stages/delivery.h"

typedef struct QMGR QMGR;

/* ---- configuration ---------------------------------------------------- */

/* Concurrency feedback: "N", "N/M" (base = N/M) or "N/concurrency". */
typedef struct QMGR_FEEDBACK {
    double  base;		/* 0 < base <= 1 */
    bool    per_concurrency;	/* divide by the current window */
} QMGR_FEEDBACK;

/* Message rate: count per period; count 0 = no limit. burst = bucket size
 * (0: one second's worth of messages, at least 1). */
typedef struct QMGR_RATE {
    uint32_t count;
    int64_t period_ns;
    uint32_t burst;
} QMGR_RATE;

/* The agent side of a transport: qmgr calls dispatch(agent_ctx, req) on the
 * qmgr thread; the agent calls req->done(req) exactly once, from any thread. */
typedef void (*qmgr_dispatch_fn)(void *agent_ctx, DELIVERY_REQUEST *req);

/* Everything qmgr needs to know about one transport (master.cf service). */
typedef struct QMGR_TRANSPORT_CONFIG {
    int     dest_concurrency_limit;	/* 0: no limit */
    int     initial_dest_concurrency;	/* >= 1 */
    QMGR_FEEDBACK pos_feedback;
    QMGR_FEEDBACK neg_feedback;
    double  dest_failed_cohort_limit;	/* 0: never dead */
    int     dest_recipient_limit;	/* recipients per request; 0: no limit */
    int64_t dest_rate_delay_ns;		/* > 0 implies concurrency 1 */
    int     process_limit;		/* master.cf maxproc: requests out at
					 * once across the transport; 0: none */
    QMGR_RATE dest_message_rate;	/* extension */
    int     dest_connection_limit;	/* extension; 0: no limit */
    /* Preemptive scheduling (Postfix's delivery slots, see the top). */
    int     delivery_slot_cost;		/* < 2: no preemption, FIFO */
    int     delivery_slot_loan;
    int     delivery_slot_discount;	/* percent, 0..100 */
    int     minimum_delivery_slots;
    qmgr_dispatch_fn dispatch;		/* NULL: "mail transport unavailable" */
    void   *agent_ctx;
} QMGR_TRANSPORT_CONFIG;

enum qmgr_notify {
    QMGR_NOTIFY_BOUNCE,		/* recipients bounced in this pass */
    QMGR_NOTIFY_EXPIRED,	/* deferred recipients bounced: too old */
    QMGR_NOTIFY_DELAY,		/* delay_warning_time passed (once) */
    QMGR_NOTIFY_SUCCESS,	/* sent recipients that asked NOTIFY=SUCCESS */
};

/*
 * Hooks, all called on the qmgr thread (wakeup: any thread).
 *
 * outcome: one recipient changed state; called BEFORE qmgr acts on it, so the
 *   journal can append the record (it may complete asynchronously: qmgr
 *   never removes anything on its own, see message_done). state is
 *   RCPT_SENT, RCPT_DEFERRED (next_retry_us = wall-clock time of the next
 *   attempt), RCPT_BOUNCED or RCPT_DROPPED (operator delete). dsn is
 *   "X.Y.Z"; reason may be "".
 * message_done: every recipient is final (or the message was deleted). qmgr
 *   has forgotten the message and hands it back: the engine writes DONE
 *   after the outcome records are durable, logs "ID: removed", frees it.
 * notify: a notice to generate (the generator decides on DSN NOTIFY, the
 *   null sender, double bounces). rcpt lists the recipients concerned, each
 *   with its status and reason; everything is valid during the call only. For a delay
 *   notice the engine must record that it was sent (flag QMGR_ENQ_WARNED on
 *   recovery), for the others the outcome records already say it.
 * activate: a message enters the active set, before its recipients are
 *   grouped by destination. The engine may change the transport and nexthop
 *   of its pending and deferred recipients (as Postfix resolves recipients
 *   when it activates a message, so that a changed relayhost or
 *   transport_maps applies to mail already queued) and journal the change.
 * wakeup: the inbox was empty and got an event; the engine makes the qmgr
 *   thread call qmgr_run() soon (stage_wakeup, a futex, ...). Optional when
 *   the thread sleeps in qmgr_wait().
 */
/* One recipient of a notice, as the last attempt left it. */
typedef struct QMGR_NOTIFY_RCPT {
    size_t  index;		/* into msg->rcpt[] */
    const char *dsn;		/* "5.1.1"; a class default when unknown */
    const char *reason;		/* last reason, or "" */
} QMGR_NOTIFY_RCPT;

typedef struct QMGR_HOOKS {
    void   *ctx;
    void  (*outcome)(void *ctx, const MESSAGE *msg, size_t rcpt_index,
		     enum rcpt_state state, const char *dsn, const char *reason,
		     int64_t next_retry_us);
    void  (*message_done)(void *ctx, MESSAGE *msg);
    void  (*notify)(void *ctx, const MESSAGE *msg, enum qmgr_notify kind,
		    const QMGR_NOTIFY_RCPT *rcpt, size_t n);
    void  (*activate)(void *ctx, MESSAGE *msg);
    void  (*wakeup)(void *ctx);
} QMGR_HOOKS;

typedef struct QMGR_CONFIG {
    QMGR_TRANSPORT_CONFIG transport_defaults;
    /* Called once per transport name, tc pre-filled with transport_defaults:
     * the engine applies <transport>_* overrides and sets dispatch. */
    void  (*transport_config)(void *ctx, const char *transport,
			      QMGR_TRANSPORT_CONFIG *tc);
    void   *transport_config_ctx;

    int64_t transport_retry_time_ns;	/* dead destination -> probe */
    int64_t queue_run_delay_ns;		/* deferred queue scans */
    int64_t minimal_backoff_ns;
    int64_t maximal_backoff_ns;
    int64_t maximal_queue_lifetime_ns;	/* 0: bounce at the first deferral */
    int64_t bounce_queue_lifetime_ns;	/* same, for the null sender */
    int64_t delay_warning_time_ns;	/* 0: no delay notices */
    int     backoff_jitter_percent;	/* spread of retries, 0..50 */
    size_t  message_active_limit;	/* qmgr_message_active_limit */
    size_t  message_recipient_limit;	/* qmgr_message_recipient_limit; a
					 * message expanded in slices uses at
					 * most 3/4 of it, new ones the rest */
    uint64_t seed;			/* jitter PRNG; 0: from the clock */

    /* Clock in nanoseconds on the wall-clock scale (message ages compare it
     * with arrival_us). NULL: real time, advancing monotonically. */
    int64_t (*clock)(void *ctx);
    void   *clock_ctx;

    QMGR_HOOKS hooks;
} QMGR_CONFIG;

/* Postfix's defaults (see postfix-reference.md); no dispatch functions. */
void    qmgr_config_defaults(QMGR_CONFIG *cfg);
/* Parsers for the main.cf forms; 0 on success, -1 (and *out untouched) on a
 * syntax error or an unreasonable value. */
int     qmgr_feedback_parse(const char *text, QMGR_FEEDBACK *out);
int     qmgr_rate_parse(const char *text, QMGR_RATE *out);	/* "0", "N/s|m|h|d" */

/* ---- life cycle and the event loop ------------------------------------ */

QMGR   *qmgr_create(const QMGR_CONFIG *cfg);
/* No request may be outstanding. Frees every message still held (they are in
 * the journal; nothing is reported through the hooks). */
void    qmgr_free(QMGR *q);

/* Does everything that is due: completions, submissions and control events
 * from the inbox, timers, deferred-queue scans, admission to the active set,
 * and dispatching (round robin). Returns the clock time at which it wants to
 * run again (INT64_MAX: only when an event arrives; <= now: at once). */
int64_t qmgr_run(QMGR *q);
/* Sleeps until an inbox event or the clock reaches deadline (real clock). */
void    qmgr_wait(QMGR *q, int64_t deadline);
int64_t qmgr_now(QMGR *q);

/* ---- intake ----------------------------------------------------------- */

#define QMGR_ENQ_HOLD		(1u<<0)	/* recovered from hold: wait for release */
#define QMGR_ENQ_DEFERRED	(1u<<1)	/* recovered deferred: not before next_retry_us */
#define QMGR_ENQ_WARNED		(1u<<2)	/* delay notice already sent */

/* qmgr thread. Takes ownership of msg (0), or refuses it (-1, duplicate
 * queue ID; the caller keeps it). Recipients in a final state are skipped;
 * a message with none left is handed back through message_done at once. */
int     qmgr_enqueue(QMGR *q, MESSAGE *msg, unsigned flags, int64_t next_retry_us);
/* Any thread: the same, through the inbox (a duplicate is logged and the
 * message handed back through message_done without outcome records). */
void    qmgr_submit(QMGR *q, MESSAGE *msg, unsigned flags, int64_t next_retry_us);
/* qmgr thread: last known delay reason of a recovered recipient (copied). */
void    qmgr_set_reason(QMGR *q, const char *queue_id, size_t rcpt_index,
			const char *reason);

/* ---- control (postqueue / postsuper / mailq) --------------------------- */

/* qmgr thread. Return the number of messages affected (-1: no such ID). */
size_t  qmgr_flush_all(QMGR *q);			/* postqueue -f */
/* postqueue -s / ETRN: deferred mail with a recipient whose nexthop is site
 * ("example.com" also matches "[example.com]" and "example.com:25"); a dead
 * destination of that name is probed at once. transport NULL: any. */
size_t  qmgr_flush_site(QMGR *q, const char *transport, const char *site);
int     qmgr_flush_message(QMGR *q, const char *queue_id);	/* postqueue -i */
int     qmgr_hold(QMGR *q, const char *queue_id);		/* postsuper -h */
int     qmgr_release(QMGR *q, const char *queue_id);		/* postsuper -H */
int     qmgr_delete(QMGR *q, const char *queue_id);		/* postsuper -d */
/* postfix reload: every transport asks transport_config() again. */
void    qmgr_reconfigure(QMGR *q);

/* postsuper -r: the recipients' new routes (trivial-rewrite with the current
 * configuration, already journaled). Deferred recipients become pending and
 * a deferred message is scheduled at once; a held one stays held. 0, -1 (no
 * such ID) or -2 (active: its delivery attempt is in progress; try later). */
typedef struct QMGR_ROUTE {
    size_t  rcpt_index;
    const char *transport;
    const char *nexthop;
} QMGR_ROUTE;
int     qmgr_requeue(QMGR *q, const char *queue_id, const QMGR_ROUTE *routes, size_t n);

enum qmgr_msg_state {
    QMGR_MSG_INCOMING,		/* waiting for room in the active set */
    QMGR_MSG_ACTIVE,
    QMGR_MSG_DEFERRED,
    QMGR_MSG_HOLD,
};

typedef struct QMGR_MSG_INFO {
    const MESSAGE *msg;		/* queue_id, arrival_us, sender, rcpt[] */
    enum qmgr_msg_state state;
    size_t  size;		/* content bytes */
    int64_t next_retry_us;	/* deferred: next attempt (wall clock) */
    const char *const *reason;	/* per recipient last delay reason, or NULL
				 * (the array, or an entry, may be NULL) */
} QMGR_MSG_INFO;

typedef struct QMGR_DEST_INFO {
    const char *transport;
    const char *nexthop;
    size_t  queued_rcpts;	/* waiting in this destination's queue */
    size_t  active_requests;	/* out at an agent now */
    int     window;		/* concurrency now allowed (0: dead) */
    int     limit;		/* destination concurrency limit (0: none) */
    QMGR_RATE rate;		/* message rate limit */
    int64_t rate_delay_ns;
    bool    dead;
    int64_t dead_until_us;	/* probe time (wall clock), when dead */
    const char *last_error;	/* last connection failure, or NULL */
    uint64_t delivered;		/* requests completed without site failure */
    uint64_t failed;		/* requests with site failure */
} QMGR_DEST_INFO;

typedef struct QMGR_STATS {
    size_t  messages;		/* every message held */
    size_t  incoming, active, deferred, hold;
    size_t  active_rcpts;	/* recipients expanded into queues or out */
    size_t  destinations;
    size_t  requests_out;
    uint64_t requests_dispatched;
    uint64_t requests_completed;
} QMGR_STATS;

/* qmgr thread. The pointers are valid during the callback only. */
typedef void (*qmgr_msg_fn)(void *ctx, const QMGR_MSG_INFO *info);
typedef void (*qmgr_dest_fn)(void *ctx, const QMGR_DEST_INFO *info);
void    qmgr_list(QMGR *q, qmgr_msg_fn fn, void *ctx);
int     qmgr_list_one(QMGR *q, const char *queue_id, qmgr_msg_fn fn, void *ctx);
void    qmgr_list_dest(QMGR *q, qmgr_dest_fn fn, void *ctx);
void    qmgr_stats(QMGR *q, QMGR_STATS *st);

/* Any thread: a control operation carried out on the qmgr thread, which
 * then calls done(ctl) (on the qmgr thread; ctl belongs to the caller). */
enum qmgr_ctl_op {
    QMGR_CTL_FLUSH_ALL, QMGR_CTL_FLUSH_SITE, QMGR_CTL_FLUSH_MESSAGE,
    QMGR_CTL_HOLD, QMGR_CTL_RELEASE, QMGR_CTL_DELETE,
    QMGR_CTL_LIST, QMGR_CTL_LIST_DEST, QMGR_CTL_STATS,
    QMGR_CTL_REQUEUE,
    QMGR_CTL_RECONFIGURE,	/* qmgr_reconfigure() */
};

typedef struct QMGR_CONTROL {
    SQUEUE_NODE node;		/* private */
    int     kind;		/* private */
    enum qmgr_ctl_op op;
    const char *queue_id;	/* FLUSH_MESSAGE, HOLD, RELEASE, DELETE;
				 * LIST: one message, or NULL for all */
    const char *transport;	/* FLUSH_SITE (NULL: any) */
    const char *site;		/* FLUSH_SITE */
    qmgr_msg_fn list_fn;	/* LIST */
    qmgr_dest_fn dest_fn;	/* LIST_DEST */
    void   *list_ctx;
    long    result;		/* count, or 0 / -1 */
    QMGR_STATS stats;		/* STATS */
    void  (*done)(struct QMGR_CONTROL *ctl);
    void   *ctx;		/* caller's */
    const QMGR_ROUTE *routes;	/* REQUEUE (with queue_id) */
    size_t  nroutes;
} QMGR_CONTROL;

void    qmgr_control(QMGR *q, QMGR_CONTROL *ctl);

#endif
