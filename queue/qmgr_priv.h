/*
 * qmgr_priv.h - the queue manager's internal structures, shared by the
 * qmgr_*.c files and by nothing else.
 *
 * Shape (all intrusive, nothing scanned per delivery):
 *   QMGR ── transports (list) ── QMGR_TRANSPORT ── queues (open-addressing
 *   hash by nexthop) ── QMGR_QUEUE ── todo list of QMGR_ENTRY
 *   QMGR_ENTRY = what one message has waiting for one destination (Postfix's
 *   job and peer in one): its recipients chained through the message's
 *   rnext[] array (4 bytes per recipient), cut into DELIVERY_REQUESTs of at
 *   most dest_recipient_limit when the queue sends, and the delivery-slot
 *   counters of the preemptive scheduler (qmgr_job.c). The todo list is in
 *   scheduling order: its head is the entry the queue sends from; entries
 *   that preempted others sit in front of them (entry->parent).
 *   Round robin: QMGR.tp_ready is a ring of transports that may have work,
 *   QMGR_TRANSPORT.ready a ring of queues that can take a delivery now.
 *   A queue leaves its ring when it cannot deliver (dead, window full, rate
 *   limited, empty) and comes back through qmgr_queue_kick() when that
 *   changes (completion, new work, timer), so a dead or throttled queue
 *   costs the others nothing.
 *   Timers: one min-heap for queue timers (rate delay, token bucket, dead
 *   until), one for deferred messages (next retry), keyed by an embedded
 *   QMGR_TIMER so that cancel/update is O(log n).
 *
 * Threading: the qmgr thread only, except QMGR.inbox (see qmgr.h).
 */
#ifndef SLUICE_QMGR_PRIV_H
#define SLUICE_QMGR_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/squeue.h"
#include "queue/qmgr.h"

/* ---- intrusive doubly linked lists (circular, with a head) ------------ */

typedef struct QMGR_LINK {
    struct QMGR_LINK *next;
    struct QMGR_LINK *prev;
} QMGR_LINK;

static inline void qmgr_link_init(QMGR_LINK *h)
{
    h->next = h->prev = h;
}

static inline bool qmgr_link_empty(const QMGR_LINK *h)
{
    return h->next == h;
}

static inline void qmgr_link_append(QMGR_LINK *h, QMGR_LINK *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void qmgr_link_prepend(QMGR_LINK *h, QMGR_LINK *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

static inline void qmgr_link_remove(QMGR_LINK *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

#define QMGR_CONTAINER(ptr, type, member) \
	((type *) ((char *) (ptr) - offsetof(type, member)))

/* ---- timers ------------------------------------------------------------ */

typedef struct QMGR_TIMER {
    int64_t when;
    uint32_t idx;		/* 1-based position in its heap; 0: not queued */
} QMGR_TIMER;

typedef struct QMGR_HEAP {
    QMGR_TIMER **v;
    size_t  n;
    size_t  cap;
} QMGR_HEAP;

void    qmgr_heap_init(QMGR_HEAP *h);
void    qmgr_heap_free(QMGR_HEAP *h);
void    qmgr_heap_set(QMGR_HEAP *h, QMGR_TIMER *t, int64_t when);	/* add or move */
void    qmgr_heap_remove(QMGR_HEAP *h, QMGR_TIMER *t);			/* if queued */
static inline QMGR_TIMER *qmgr_heap_top(const QMGR_HEAP *h)
{
    return h->n ? h->v[0] : NULL;
}

/* ---- objects ----------------------------------------------------------- */

typedef struct QMGR_TRANSPORT QMGR_TRANSPORT;
typedef struct QMGR_QUEUE QMGR_QUEUE;
typedef struct QMGR_MSG QMGR_MSG;

#define QMGR_MSG_F_WARNED	(1u<<0)	/* delay notice sent */
#define QMGR_MSG_F_HOLD		(1u<<1)	/* go to hold when the pass ends */
#define QMGR_MSG_F_DELETED	(1u<<2)	/* drop when the pass ends */
#define QMGR_MSG_F_REFILL	(1u<<3)	/* on QMGR.refill */

#define QMGR_NO_RCPT		UINT32_MAX

typedef struct QMGR_IDX_LIST {
    size_t *v;
    size_t  n;
    size_t  cap;
} QMGR_IDX_LIST;

typedef struct QMGR_NOTICES {
    QMGR_IDX_LIST bounced;	/* for the bounce notice */
    QMGR_IDX_LIST success;	/* NOTIFY=SUCCESS */
} QMGR_NOTICES;

#define QMGR_DSN_SIZE	10	/* "5.123.456" */

/* What few messages need: kept out of QMGR_MSG to keep it small. */
typedef struct QMGR_MSG_EXTRA {
    char  **reason;		/* last delay reason per recipient, or NULL */
    char  (*dsn)[QMGR_DSN_SIZE];	/* its status ("4.2.0"), or NULL */
    QMGR_NOTICES notices;	/* this pass */
} QMGR_MSG_EXTRA;

struct QMGR_MSG {
    MESSAGE *msg;
    union {			/* a message is never in a FIFO and deferred */
	QMGR_LINK link;		/* INCOMING: QMGR.incoming; ACTIVE: QMGR.refill */
	QMGR_TIMER timer;	/* DEFERRED: QMGR.deferred heap, next retry */
    };
    QMGR_LINK entries;		/* its waiting QMGR_ENTRYs */
    uint32_t *rnext;		/* while active: recipient chains */
    QMGR_MSG_EXTRA *extra;	/* lazy */
    int64_t pass_retry;		/* next retry chosen in this pass (0: none) */
    int64_t active_since;	/* clock, when admitted */
    uint32_t cursor;		/* next recipient to expand */
    uint32_t pending;		/* recipients not final */
    uint32_t refcount;		/* waiting entries + requests out */
    uint32_t hash;		/* of the queue ID: home slot in QMGR.mslot */
    uint8_t state;		/* enum qmgr_msg_state */
    uint8_t flags;		/* QMGR_MSG_F_* */
};

/* 80 bytes (an allocator size class): the scheduler's largest per-recipient
 * cost when every message has one recipient. */
typedef struct QMGR_ENTRY {
    QMGR_LINK qlink;		/* QMGR_QUEUE.todo, in scheduling order */
    QMGR_LINK mlink;		/* QMGR_MSG.entries */
    QMGR_MSG *qm;
    QMGR_QUEUE *queue;
    uintptr_t parent;		/* QMGR_ENTRY * it preempted, or 0; low bit:
				 * adopted (see qmgr_job.c) */
    uint32_t first;		/* waiting recipients, chained through qm->rnext */
    uint32_t last;
    uint32_t count;
    uint32_t selected;		/* requests cut from it so far */
    int32_t slots_available;	/* Postfix's delivery slot counters */
    int32_t slots_used;
} QMGR_ENTRY;

struct QMGR_QUEUE {
    QMGR_LINK todo;		/* QMGR_ENTRY.qlink */
    QMGR_LINK ready_link;	/* QMGR_TRANSPORT.ready */
    QMGR_TRANSPORT *tp;
    char   *nexthop;
    uint64_t hash;
    QMGR_TIMER timer;		/* QMGR.timers: rate wait or dead until */
    int     window;		/* concurrency allowed (Postfix's window) */
    int     busy;		/* requests out */
    double  success;		/* positive feedback accumulator */
    double  failure;		/* negative feedback accumulator */
    double  fail_cohorts;
    size_t  todo_rcpts;
    int64_t next_ok;		/* rate delay: no delivery before */
    int64_t tat;		/* token bucket (GCRA theoretical arrival) */
    int64_t dead_until;
    int64_t last_used;		/* for the idle sweep */
    char   *last_error;
    uint64_t delivered;
    uint64_t failed;
    QMGR_ENTRY *cand_current;	/* candidate cache (qmgr_job.c): valid for */
    QMGR_ENTRY *cand;		/* this head entry; best candidate or NULL */
    int64_t cand_sec;		/* when it was found, in seconds */
    bool    in_ready;
    bool    dead;
    bool    probing;		/* one delivery after being dead */
};

struct QMGR_TRANSPORT {
    QMGR   *q;			/* set once: read by qmgr_deliver_done() */
    char   *name;
    QMGR_TRANSPORT_CONFIG cfg;
    int64_t rate_T;		/* GCRA emission interval; 0: no rate */
    int64_t rate_tau;		/* GCRA burst tolerance */
    QMGR_LINK ready;		/* QMGR_QUEUE.ready_link */
    QMGR_LINK ready_link;	/* QMGR.tp_ready */
    QMGR_LINK all_link;		/* QMGR.transports */
    bool    in_ready;
    int     busy;		/* requests out */
    QMGR_QUEUE **slot;		/* open addressing, linear probing */
    size_t  cap;		/* power of two */
    size_t  count;
};

enum { QMGR_EV_DONE = 1, QMGR_EV_SUBMIT, QMGR_EV_CONTROL };

typedef struct QMGR_REQ {
    SQUEUE_NODE node;
    int     kind;		/* QMGR_EV_DONE */
    QMGR_MSG *qm;
    QMGR_QUEUE *queue;		/* ->tp->q: the QMGR (448 bytes with one
				 * recipient: an allocator size class) */
    DELIVERY_REQUEST req;
    DELIVERY_RCPT rcpt[];
} QMGR_REQ;

typedef struct QMGR_SUBMIT {
    SQUEUE_NODE node;
    int     kind;		/* QMGR_EV_SUBMIT */
    MESSAGE *msg;
    unsigned flags;
    int64_t next_retry_us;
} QMGR_SUBMIT;

struct QMGR {
    QMGR_CONFIG cfg;
    SQUEUE  inbox;
    int64_t now;		/* clock, read once per qmgr_run() round */
    int64_t mono_offset;	/* now - mono_offset = time_mono_ns() */
    uint64_t rng;
    QMGR_LINK transports;
    QMGR_TRANSPORT *last_tp;	/* lookup cache: most recipients share one */
    QMGR_LINK tp_ready;
    QMGR_HEAP timers;		/* QMGR_QUEUE.timer */
    QMGR_HEAP deferred;		/* QMGR_MSG.timer */
    QMGR_LINK incoming;		/* waiting for admission, FIFO */
    QMGR_LINK refill;		/* active, recipients not all expanded */
    uintptr_t *mslot;		/* QMGR_MSG * by queue ID, open addressing;
				 * the top 16 bits carry more hash bits so a
				 * miss rarely touches a message */
    size_t  mcap;
    size_t  mcount;
    size_t  mtomb;		/* deleted slots not yet reclaimed */
    size_t  n_state[4];		/* by enum qmgr_msg_state */
    size_t  active_rcpts;
    size_t  nqueues;
    size_t  requests_out;
    uint64_t dispatched;
    uint64_t completed;
    uint32_t rnext_one;		/* rnext of every one-recipient message */
    int64_t next_scan;
    int64_t last_sweep;
    bool    started;
};

/* qmgr.c */
int64_t qmgr_clock(QMGR *q);
uint64_t qmgr_hash(const char *s);
uint64_t qmgr_random(QMGR *q);

/* qmgr_transport.c */
QMGR_TRANSPORT *qmgr_transport_find(QMGR *q, const char *name);
void    qmgr_transport_kick(QMGR *q, QMGR_TRANSPORT *tp);
void    qmgr_transport_schedule(QMGR *q);
void    qmgr_transport_free_all(QMGR *q);

/* qmgr_queue.c */
QMGR_QUEUE *qmgr_queue_find(QMGR *q, QMGR_TRANSPORT *tp, const char *nexthop, bool create);
int     qmgr_queue_limit(const QMGR_QUEUE *queue);
int64_t qmgr_queue_blocked_until(QMGR *q, const QMGR_QUEUE *queue);
void    qmgr_queue_kick(QMGR *q, QMGR_QUEUE *queue);
void    qmgr_queue_success(QMGR *q, QMGR_QUEUE *queue);
void    qmgr_queue_failure(QMGR *q, QMGR_QUEUE *queue, const char *reason);
void    qmgr_queue_timer_fire(QMGR *q, QMGR_QUEUE *queue);
void    qmgr_queue_revive(QMGR *q, QMGR_QUEUE *queue);
void    qmgr_queue_sweep(QMGR *q, QMGR_TRANSPORT *tp, int64_t idle_before);
void    qmgr_queue_free_all(QMGR *q, QMGR_TRANSPORT *tp);
void    qmgr_queue_rate_used(QMGR *q, QMGR_QUEUE *queue);

/* qmgr_message.c */
QMGR_MSG *qmgr_message_find(QMGR *q, const char *queue_id);
void    qmgr_message_admit(QMGR *q);
void    qmgr_message_set_state(QMGR *q, QMGR_MSG *qm, enum qmgr_msg_state st);
void    qmgr_message_outcome(QMGR *q, QMGR_MSG *qm, size_t idx,
			     enum delivery_status status, const char *dsn,
			     const char *reason, bool log_here);
void    qmgr_message_entry_free(QMGR *q, QMGR_ENTRY *e);
void    qmgr_message_drop_todo(QMGR *q, QMGR_MSG *qm);
void    qmgr_message_check_pass(QMGR *q, QMGR_MSG *qm);
void    qmgr_message_done(QMGR *q, QMGR_MSG *qm);
void    qmgr_message_free_all(QMGR *q);
void    qmgr_message_set_reason(QMGR_MSG *qm, size_t idx, const char *reason);
void    qmgr_message_set_dsn(QMGR_MSG *qm, size_t idx, const char *dsn);
void    qmgr_message_drop_all(QMGR *q, QMGR_MSG *qm);
void    qmgr_idx_push(QMGR_IDX_LIST *l, size_t idx);
void    qmgr_message_free_rnext(QMGR *q, QMGR_MSG *qm);

static inline char **qmgr_msg_reasons(const QMGR_MSG *qm)
{
    return qm->extra ? qm->extra->reason : NULL;
}

static inline char (*qmgr_msg_dsns(const QMGR_MSG *qm))[QMGR_DSN_SIZE]
{
    return qm->extra ? qm->extra->dsn : NULL;
}

/* qmgr_job.c; the common cases inline (one-request messages never preempt
 * nor are preempted: they must not pay for it). */
QMGR_ENTRY *qmgr_job_preempt(QMGR *q, QMGR_QUEUE *queue, QMGR_ENTRY *cur);
void    qmgr_job_unstack(QMGR_QUEUE *queue, QMGR_ENTRY *e);

/* The queue's entries changed: forget the preemption candidate. */
static inline void qmgr_job_changed(QMGR_QUEUE *queue)
{
    queue->cand_current = NULL;
}

/* The entry the queue sends from now, its slot counted. */
static inline QMGR_ENTRY *qmgr_job_select(QMGR *q, QMGR_QUEUE *queue)
{
    QMGR_ENTRY *e = QMGR_CONTAINER(queue->todo.next, QMGR_ENTRY, qlink);

    if (e->slots_available > 0 && queue->tp->cfg.delivery_slot_cost >= 2)
	e = qmgr_job_preempt(q, queue, e);
    e->slots_available++;
    e->slots_used++;
    e->selected++;
    return e;
}

/* e leaves its queue. Only a stacked entry (one that preempted another, or
 * that may have been preempted: not the head) needs the slow path. */
static inline void qmgr_job_unlink(QMGR_QUEUE *queue, QMGR_ENTRY *e)
{
    if (e->parent != 0 || e->qlink.prev != &queue->todo)
	qmgr_job_unstack(queue, e);
    qmgr_link_remove(&e->qlink);
    qmgr_job_changed(queue);
}

/* qmgr_deliver.c */
void    qmgr_deliver(QMGR *q, QMGR_QUEUE *queue);
void    qmgr_deliver_complete(QMGR *q, QMGR_REQ *r);

/* qmgr_defer.c */
int64_t qmgr_defer_backoff(QMGR *q, const QMGR_MSG *qm);
int64_t qmgr_defer_pass_retry(QMGR *q, QMGR_MSG *qm);
void    qmgr_defer_pass_end(QMGR *q, QMGR_MSG *qm);
void    qmgr_defer_scan(QMGR *q, bool all);
void    qmgr_defer_enter(QMGR *q, QMGR_MSG *qm, int64_t when);
void    qmgr_defer_leave(QMGR *q, QMGR_MSG *qm);

/* qmgr_control.c */
void    qmgr_control_run(QMGR *q, QMGR_CONTROL *ctl);

/* qmgr_log.c */
/* "ID: from=<s>, size=N, nrcpt=N (queue active)" when a message turns active. */
void    qmgr_log_active(const QMGR_MSG *qm);
void    qmgr_log_outcome(QMGR *q, const QMGR_MSG *qm, size_t idx,
			 const char *dsn, const char *status, const char *reason);

#endif
