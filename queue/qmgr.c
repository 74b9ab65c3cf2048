/*
 * qmgr.c - the queue manager: life cycle, clock, inbox and the run loop.
 *
 * qmgr_run() is the scheduler's heartbeat on the qmgr thread: it takes every
 * event off the inbox (completions from agents, submissions, control
 * requests), fires due timers, scans the deferred queue every
 * queue_run_delay, admits waiting messages into the active set, and hands
 * out deliveries round robin until nothing can go out. Agents that complete
 * inline feed the inbox again, so it loops a bounded number of rounds and
 * then returns "run again now" so the caller's stage can breathe.
 *
 * Threading: qmgr_submit() and the done() of a request (qmgr_deliver.c) run
 * on any thread and touch only the inbox and the immutable cfg; everything
 * else is the qmgr thread's. Diagnostics: msg_warn for refused submissions.
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/timeutil.h"
#include "queue/qmgr_priv.h"

#define QMGR_RUN_ROUNDS	64	/* inbox refills per qmgr_run() call */

uint64_t qmgr_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

    while (*s) {
	h ^= (unsigned char) *s++;
	h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

uint64_t qmgr_random(QMGR *q)
{
    uint64_t z = (q->rng += 0x9e3779b97f4a7c15ULL);	/* splitmix64 */

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int64_t qmgr_clock(QMGR *q)
{
    if (q->cfg.clock)
	return q->cfg.clock(q->cfg.clock_ctx);
    return time_mono_ns() + q->mono_offset;
}

int64_t qmgr_now(QMGR *q)
{
    return qmgr_clock(q);
}

QMGR   *qmgr_create(const QMGR_CONFIG *cfg)
{
    QMGR   *q = MEM_NEW(QMGR);

    q->cfg = *cfg;
    if (q->cfg.minimal_backoff_ns < 1)
	q->cfg.minimal_backoff_ns = 1;
    if (q->cfg.maximal_backoff_ns < q->cfg.minimal_backoff_ns)
	q->cfg.maximal_backoff_ns = q->cfg.minimal_backoff_ns;
    if (q->cfg.backoff_jitter_percent < 0)
	q->cfg.backoff_jitter_percent = 0;
    if (q->cfg.backoff_jitter_percent > 50)
	q->cfg.backoff_jitter_percent = 50;
    if (q->cfg.queue_run_delay_ns < 1)
	q->cfg.queue_run_delay_ns = TIME_NS_PER_SEC;
    if (q->cfg.message_active_limit < 1)
	q->cfg.message_active_limit = 1;
    if (q->cfg.message_recipient_limit < 1)
	q->cfg.message_recipient_limit = 1;
    /* Real time that advances with the monotonic clock: timers never jump. */
    if (q->cfg.clock == NULL)
	q->mono_offset = time_real_us() * 1000 - time_mono_ns();
    squeue_init(&q->inbox, SQUEUE_WAKE_FUTEX);
    q->rng = cfg->seed ? cfg->seed : (uint64_t) time_mono_ns();
    qmgr_link_init(&q->transports);
    qmgr_link_init(&q->tp_ready);
    qmgr_link_init(&q->incoming);
    qmgr_link_init(&q->refill);
    qmgr_heap_init(&q->timers);
    qmgr_heap_init(&q->deferred);
    q->mcap = 1024;
    q->mslot = mem_calloc(q->mcap, sizeof(*q->mslot));
    q->now = qmgr_clock(q);
    return q;
}

void qmgr_free(QMGR *q)
{
    SQUEUE_BATCH batch;
    SQUEUE_NODE *node;

    if (q->requests_out)
	msg_panic("qmgr_free: %zu delivery requests still out", q->requests_out);
    /* Submissions nobody ran: the messages are ours now, free them too. */
    while (squeue_take(&q->inbox, &batch)) {
	while ((node = squeue_batch_next(&batch)) != NULL) {
	    int     kind = *(int *) ((char *) node + sizeof(SQUEUE_NODE));

	    if (kind == QMGR_EV_SUBMIT) {
		QMGR_SUBMIT *s = QMGR_CONTAINER(node, QMGR_SUBMIT, node);

		message_free(s->msg);
		mem_free(s);
	    }
	}
    }
    qmgr_message_free_all(q);
    qmgr_transport_free_all(q);
    qmgr_heap_free(&q->timers);
    qmgr_heap_free(&q->deferred);
    mem_free(q->mslot);
    squeue_destroy(&q->inbox);
    mem_free(q);
}

void qmgr_submit(QMGR *q, MESSAGE *msg, unsigned flags, int64_t next_retry_us)
{
    QMGR_SUBMIT *s = MEM_NEW(QMGR_SUBMIT);

    s->kind = QMGR_EV_SUBMIT;
    s->msg = msg;
    s->flags = flags;
    s->next_retry_us = next_retry_us;
    if (squeue_push(&q->inbox, &s->node) && q->cfg.hooks.wakeup)
	q->cfg.hooks.wakeup(q->cfg.hooks.ctx);
}

void qmgr_control(QMGR *q, QMGR_CONTROL *ctl)
{
    ctl->kind = QMGR_EV_CONTROL;
    if (squeue_push(&q->inbox, &ctl->node) && q->cfg.hooks.wakeup)
	q->cfg.hooks.wakeup(q->cfg.hooks.ctx);
}

/* Every event type starts with SQUEUE_NODE then int kind. */
static int qmgr_event_kind(SQUEUE_NODE *node)
{
    return *(int *) ((char *) node + sizeof(SQUEUE_NODE));
}

static bool qmgr_drain_inbox(QMGR *q)
{
    SQUEUE_BATCH batch;
    SQUEUE_NODE *node;
    bool    any = false;

    if (!squeue_take(&q->inbox, &batch))
	return false;
    while ((node = squeue_batch_next(&batch)) != NULL) {
	any = true;
	switch (qmgr_event_kind(node)) {
	case QMGR_EV_DONE:
	    qmgr_deliver_complete(q, QMGR_CONTAINER(node, QMGR_REQ, node));
	    break;
	case QMGR_EV_SUBMIT:{
		QMGR_SUBMIT *s = QMGR_CONTAINER(node, QMGR_SUBMIT, node);

		if (qmgr_enqueue(q, s->msg, s->flags, s->next_retry_us) < 0) {
		    if (q->cfg.hooks.message_done)
			q->cfg.hooks.message_done(q->cfg.hooks.ctx, s->msg);
		    else
			message_free(s->msg);
		}
		mem_free(s);
		break;
	    }
	case QMGR_EV_CONTROL:{
		QMGR_CONTROL *ctl = QMGR_CONTAINER(node, QMGR_CONTROL, node);

		qmgr_control_run(q, ctl);
		if (ctl->done)
		    ctl->done(ctl);
		break;
	    }
	default:
	    msg_panic("qmgr: unknown inbox event kind %d", qmgr_event_kind(node));
	}
    }
    return any;
}

static void qmgr_fire_timers(QMGR *q)
{
    QMGR_TIMER *t;

    while ((t = qmgr_heap_top(&q->timers)) != NULL && t->when <= q->now) {
	QMGR_QUEUE *queue = QMGR_CONTAINER(t, QMGR_QUEUE, timer);

	qmgr_heap_remove(&q->timers, t);
	qmgr_queue_timer_fire(q, queue);
    }
}

static void qmgr_periodic(QMGR *q)
{
    if (!q->started || q->now >= q->next_scan) {
	q->started = true;
	qmgr_defer_scan(q, false);
	q->next_scan = q->now + q->cfg.queue_run_delay_ns;
    }
    /* Forget destinations idle for a whole scan period (their window state
     * is worth little by then, as in Postfix which frees empty queues). */
    if (q->now - q->last_sweep >= q->cfg.queue_run_delay_ns) {
	QMGR_LINK *l;

	for (l = q->transports.next; l != &q->transports; l = l->next)
	    qmgr_queue_sweep(q, QMGR_CONTAINER(l, QMGR_TRANSPORT, all_link),
			     q->last_sweep);
	q->last_sweep = q->now;
    }
}

int64_t qmgr_run(QMGR *q)
{
    int64_t next;
    QMGR_TIMER *t;

    for (int round = 0; round < QMGR_RUN_ROUNDS; round++) {
	q->now = qmgr_clock(q);
	qmgr_drain_inbox(q);
	qmgr_fire_timers(q);
	qmgr_periodic(q);
	qmgr_message_admit(q);
	qmgr_transport_schedule(q);
	if (squeue_empty(&q->inbox))
	    break;
    }
    if (!squeue_empty(&q->inbox))
	return q->now;
    next = q->next_scan;
    if ((t = qmgr_heap_top(&q->timers)) != NULL && t->when < next)
	next = t->when;
    return next;
}

void qmgr_wait(QMGR *q, int64_t deadline)
{
    int64_t now = qmgr_clock(q);

    if (deadline <= now)
	return;
    squeue_wait(&q->inbox, deadline == INT64_MAX ? -1 : deadline - now);
}
