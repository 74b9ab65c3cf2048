/*
 * qmgr_queue.c - one destination queue: a transport and a nexthop.
 *
 * Holds the entries waiting for that destination and Postfix's per-
 * destination controls:
 *  - concurrency window: starts at initial_destination_concurrency; each
 *    delivery that completes without a site failure adds positive feedback
 *    (while window < busy + initial, up to the limit); a site failure
 *    (connection or handshake) subtracts negative feedback, never below 1,
 *    and adds 1/window to the failed pseudo-cohorts;
 *  - failed cohort limit reached: the destination is dead. Its waiting
 *    recipients are deferred ("delivery temporarily suspended: ..."), new
 *    ones are deferred at once, and after transport_retry_time one probe
 *    delivery is let through (window 1); success restores the initial
 *    window, failure kills it again;
 *  - rate delay: concurrency 1 and rate_delay between the end of a delivery
 *    and the start of the next (as Postfix);
 *  - extensions: a message-rate token bucket (GCRA: one timestamp per
 *    destination) and a connection limit (caps concurrent deliveries; the
 *    agent's connection cache must respect the same number).
 * Destinations live in a per-transport open-addressing hash table; idle
 * ones are swept every queue_run_delay.
 *
 * Threading: the qmgr thread only. Diagnostics: msg_info when a destination
 * is declared dead or comes back (as Postfix logs nothing there, kept to
 * the verbose level: msg_verbose).
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/qmgr_priv.h"

static void qmgr_queue_insert_slot(QMGR_TRANSPORT *tp, QMGR_QUEUE *queue)
{
    size_t  mask = tp->cap - 1;
    size_t  i = (size_t) queue->hash & mask;

    while (tp->slot[i] != NULL)
	i = (i + 1) & mask;
    tp->slot[i] = queue;
}

static void qmgr_queue_grow(QMGR_TRANSPORT *tp)
{
    QMGR_QUEUE **old = tp->slot;
    size_t  oldcap = tp->cap;

    tp->cap *= 2;
    tp->slot = mem_calloc(tp->cap, sizeof(*tp->slot));
    for (size_t i = 0; i < oldcap; i++)
	if (old[i])
	    qmgr_queue_insert_slot(tp, old[i]);
    mem_free(old);
}

QMGR_QUEUE *qmgr_queue_find(QMGR *q, QMGR_TRANSPORT *tp, const char *nexthop, bool create)
{
    uint64_t h = qmgr_hash(nexthop);
    size_t  mask = tp->cap - 1;
    size_t  i = (size_t) h & mask;
    QMGR_QUEUE *queue;

    while ((queue = tp->slot[i]) != NULL) {
	if (queue->hash == h && strcmp(queue->nexthop, nexthop) == 0)
	    return queue;
	i = (i + 1) & mask;
    }
    if (!create)
	return NULL;
    queue = MEM_NEW(QMGR_QUEUE);
    qmgr_link_init(&queue->todo);
    qmgr_link_init(&queue->ready_link);
    queue->tp = tp;
    queue->nexthop = mem_strdup(nexthop);
    queue->hash = h;
    queue->window = tp->cfg.initial_dest_concurrency;
    queue->last_used = q->now;
    if (2 * (tp->count + 1) > tp->cap)
	qmgr_queue_grow(tp);
    qmgr_queue_insert_slot(tp, queue);
    tp->count++;
    q->nqueues++;
    return queue;
}

int qmgr_queue_limit(const QMGR_QUEUE *queue)
{
    const QMGR_TRANSPORT_CONFIG *tc = &queue->tp->cfg;
    int     w = queue->window;

    if (tc->dest_rate_delay_ns > 0 && w > 1)
	w = 1;
    if (tc->dest_connection_limit > 0 && w > tc->dest_connection_limit)
	w = tc->dest_connection_limit;
    return w;
}

/* 0: can deliver now; INT64_MAX: blocked until some event; else the time. */
int64_t qmgr_queue_blocked_until(QMGR *q, const QMGR_QUEUE *queue)
{
    const QMGR_TRANSPORT *tp = queue->tp;
    int64_t t;

    if (queue->dead)
	return queue->dead_until > q->now ? queue->dead_until : 0;
    if (qmgr_link_empty(&queue->todo) || queue->busy >= qmgr_queue_limit(queue))
	return INT64_MAX;
    t = queue->next_ok;
    if (tp->rate_T && queue->tat - tp->rate_tau > t)
	t = queue->tat - tp->rate_tau;
    return t > q->now ? t : 0;
}

/* Puts the queue in its transport's ring if it can deliver now, else arms
 * its timer if only time stands in the way. */
void qmgr_queue_kick(QMGR *q, QMGR_QUEUE *queue)
{
    int64_t until;

    if (queue->in_ready)
	return;
    if (queue->dead) {
	if (queue->dead_until > q->now) {
	    if (queue->timer.idx == 0 || queue->timer.when != queue->dead_until)
		qmgr_heap_set(&q->timers, &queue->timer, queue->dead_until);
	    return;
	}
	qmgr_queue_revive(q, queue);
	return;				/* revive kicks */
    }
    until = qmgr_queue_blocked_until(q, queue);
    if (until == INT64_MAX)
	return;
    if (until > 0) {
	if (queue->timer.idx == 0 || queue->timer.when > until)
	    qmgr_heap_set(&q->timers, &queue->timer, until);
	return;
    }
    qmgr_link_append(&queue->tp->ready, &queue->ready_link);
    queue->in_ready = true;
    qmgr_transport_kick(q, queue->tp);
}

void qmgr_queue_timer_fire(QMGR *q, QMGR_QUEUE *queue)
{
    qmgr_queue_kick(q, queue);
}

void qmgr_queue_rate_used(QMGR *q, QMGR_QUEUE *queue)
{
    const QMGR_TRANSPORT *tp = queue->tp;

    if (tp->rate_T)
	queue->tat = (queue->tat > q->now ? queue->tat : q->now) + tp->rate_T;
}

/* Back from the dead: one probe delivery. */
void qmgr_queue_revive(QMGR *q, QMGR_QUEUE *queue)
{
    if (queue->dead) {
	if (msg_verbose)
	    msg_info("qmgr: %s:%s: probing after dead time",
		     queue->tp->name, queue->nexthop);
	queue->dead = false;
	queue->probing = true;
	queue->window = 1;
	queue->fail_cohorts = 0;
	queue->success = queue->failure = 0;
	queue->dead_until = 0;
    }
    qmgr_heap_remove(&q->timers, &queue->timer);
    qmgr_queue_kick(q, queue);
}

void qmgr_queue_success(QMGR *q, QMGR_QUEUE *queue)
{
    const QMGR_TRANSPORT_CONFIG *tc = &queue->tp->cfg;
    double  fb;

    (void) q;
    queue->delivered++;
    queue->fail_cohorts = 0;
    if (queue->dead)			/* probe raced with a flush: ignore */
	return;
    if (queue->probing) {
	/* As Postfix after a dead site: best concurrency is anyone's guess. */
	queue->probing = false;
	queue->window = queue->busy > 1 ? queue->busy : tc->initial_dest_concurrency;
	queue->success = queue->failure = 0;
	return;
    }
    if ((tc->dest_concurrency_limit == 0 || tc->dest_concurrency_limit > queue->window)
	&& queue->window < queue->busy + tc->initial_dest_concurrency) {
	fb = tc->pos_feedback.per_concurrency ?
	    tc->pos_feedback.base / queue->window : tc->pos_feedback.base;
	queue->success += fb;
	while (queue->success + fb / 2 >= 1) {
	    queue->window += 1;
	    queue->success -= 1;
	    queue->failure = 0;
	}
	if (tc->dest_concurrency_limit > 0 && queue->window > tc->dest_concurrency_limit)
	    queue->window = tc->dest_concurrency_limit;
    }
}

/* The destination is dead: defer what waits for it, arm the probe timer. */
static void qmgr_queue_die(QMGR *q, QMGR_QUEUE *queue)
{
    char   *why;

    if (msg_verbose)
	msg_info("qmgr: %s:%s: destination dead for %llds: %s",
		 queue->tp->name, queue->nexthop,
		 (long long) (q->cfg.transport_retry_time_ns / 1000000000),
		 queue->last_error ? queue->last_error : "");
    queue->dead = true;
    queue->probing = false;
    queue->window = 0;
    queue->dead_until = q->now + q->cfg.transport_retry_time_ns;
    if (queue->in_ready) {
	qmgr_link_remove(&queue->ready_link);
	queue->in_ready = false;
    }
    qmgr_heap_set(&q->timers, &queue->timer, queue->dead_until);
    why = mem_alloc(strlen(queue->last_error ? queue->last_error : "") + 40);
    strcpy(why, "delivery temporarily suspended: ");
    strcat(why, queue->last_error ? queue->last_error : "");
    while (!qmgr_link_empty(&queue->todo)) {
	QMGR_ENTRY *e = QMGR_CONTAINER(queue->todo.next, QMGR_ENTRY, qlink);
	QMGR_MSG *qm = e->qm;

	for (uint32_t i = e->first; i != QMGR_NO_RCPT; i = qm->rnext[i])
	    qmgr_message_outcome(q, qm, i, DELIVERY_DEFER, "4.4.1", why, true);
	qmgr_message_entry_free(q, e);
	qmgr_message_check_pass(q, qm);
    }
    mem_free(why);
}

void qmgr_queue_failure(QMGR *q, QMGR_QUEUE *queue, const char *reason)
{
    const QMGR_TRANSPORT_CONFIG *tc = &queue->tp->cfg;
    double  fb;

    queue->failed++;
    if (reason && (queue->last_error == NULL || strcmp(queue->last_error, reason) != 0)) {
	mem_free(queue->last_error);
	queue->last_error = mem_strdup(reason);
    }
    if (queue->dead)
	return;
    if (queue->probing) {
	qmgr_queue_die(q, queue);
	return;
    }
    queue->fail_cohorts += 1.0 / queue->window;
    if (tc->dest_failed_cohort_limit > 0 && queue->fail_cohorts >= tc->dest_failed_cohort_limit) {
	qmgr_queue_die(q, queue);
	return;
    }
    fb = tc->neg_feedback.per_concurrency ?
	tc->neg_feedback.base / queue->window : tc->neg_feedback.base;
    queue->failure -= fb;
    while (queue->failure - fb / 2 < 0) {
	queue->window -= 1;
	queue->success = 0;
	queue->failure += 1;
    }
    if (queue->window < 1)
	queue->window = 1;
}

static void qmgr_queue_free(QMGR *q, QMGR_QUEUE *queue)
{
    qmgr_heap_remove(&q->timers, &queue->timer);
    if (queue->in_ready)
	qmgr_link_remove(&queue->ready_link);
    mem_free(queue->last_error);
    mem_free(queue->nexthop);
    mem_free(queue);
    q->nqueues--;
}

/* Frees destinations with nothing to do, not used since idle_before; the
 * table is rebuilt (O(destinations) once per queue_run_delay). */
void qmgr_queue_sweep(QMGR *q, QMGR_TRANSPORT *tp, int64_t idle_before)
{
    QMGR_QUEUE **old = tp->slot;
    size_t  cap = tp->cap;

    tp->slot = mem_calloc(cap, sizeof(*tp->slot));
    tp->count = 0;
    for (size_t i = 0; i < cap; i++) {
	QMGR_QUEUE *queue = old[i];

	if (queue == NULL)
	    continue;
	if (qmgr_link_empty(&queue->todo) && queue->busy == 0 && !queue->dead
	    && !queue->in_ready && queue->timer.idx == 0
	    && queue->last_used < idle_before) {
	    qmgr_queue_free(q, queue);
	    continue;
	}
	qmgr_queue_insert_slot(tp, queue);
	tp->count++;
    }
    mem_free(old);
}

void qmgr_queue_free_all(QMGR *q, QMGR_TRANSPORT *tp)
{
    for (size_t i = 0; i < tp->cap; i++)
	if (tp->slot[i])
	    qmgr_queue_free(q, tp->slot[i]);
    tp->count = 0;
}
