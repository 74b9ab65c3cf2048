/*
 * qmgr_transport.c - per-transport state and the round-robin dispatcher.
 *
 * A transport (master.cf service: smtp, relay, local, ...) has a process
 * limit (maxproc: requests out at once across all its destinations) and a
 * ring of destination queues that can take a delivery now. The dispatcher
 * takes one delivery from the queue at the head of the ring, then moves the
 * queue to the tail: every destination with work gets its turn, one busy
 * destination cannot starve the others, and a queue that cannot deliver is
 * simply not in the ring. Transports take turns the same way.
 *
 * Threading: the qmgr thread only. Diagnostics: none.
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/qmgr_priv.h"

/* The transport's settings from the engine (again after a reload), made
 * consistent. */
static void qmgr_transport_configure(QMGR *q, QMGR_TRANSPORT *tp)
{
    tp->cfg = q->cfg.transport_defaults;
    if (q->cfg.transport_config)
	q->cfg.transport_config(q->cfg.transport_config_ctx, tp->name, &tp->cfg);
    if (tp->cfg.initial_dest_concurrency < 1)
	tp->cfg.initial_dest_concurrency = 1;
    if (tp->cfg.dest_concurrency_limit > 0
	&& tp->cfg.initial_dest_concurrency > tp->cfg.dest_concurrency_limit)
	tp->cfg.initial_dest_concurrency = tp->cfg.dest_concurrency_limit;
    if (!(tp->cfg.pos_feedback.base > 0 && tp->cfg.pos_feedback.base <= 1))
	tp->cfg.pos_feedback = (QMGR_FEEDBACK) {1, false};
    if (!(tp->cfg.neg_feedback.base > 0 && tp->cfg.neg_feedback.base <= 1))
	tp->cfg.neg_feedback = (QMGR_FEEDBACK) {1, false};
    if (tp->cfg.delivery_slot_loan < 0)
	tp->cfg.delivery_slot_loan = 0;
    if (tp->cfg.delivery_slot_discount < 0 || tp->cfg.delivery_slot_discount > 100)
	tp->cfg.delivery_slot_discount = 100;
    if (tp->cfg.minimum_delivery_slots < 0)
	tp->cfg.minimum_delivery_slots = 0;
    tp->rate_T = 0;
    tp->rate_tau = 0;
    if (tp->cfg.dest_message_rate.count > 0 && tp->cfg.dest_message_rate.period_ns > 0) {
	const QMGR_RATE *r = &tp->cfg.dest_message_rate;
	int64_t burst = r->burst;

	tp->rate_T = r->period_ns / r->count;
	if (tp->rate_T < 1)
	    tp->rate_T = 1;
	if (burst == 0)			/* one second's worth, at least 1 */
	    burst = (int64_t) ((double) r->count * 1e9 / (double) r->period_ns);
	if (burst < 1)
	    burst = 1;
	tp->rate_tau = (burst - 1) * tp->rate_T;
    }
}

/*
 * "postfix reload": every transport takes its settings again (limits,
 * feedback, rates, delivery slots), and every destination is looked at
 * anew, since a limit may have gone up. O(destinations), once per reload.
 */
void qmgr_reconfigure(QMGR *q)
{
    q->now = qmgr_clock(q);
    for (QMGR_LINK *l = q->transports.next; l != &q->transports; l = l->next) {
	QMGR_TRANSPORT *tp = QMGR_CONTAINER(l, QMGR_TRANSPORT, all_link);

	qmgr_transport_configure(q, tp);
	for (size_t i = 0; i < tp->cap; i++)
	    if (tp->slot[i] && !tp->slot[i]->in_ready)
		qmgr_queue_kick(q, tp->slot[i]);
	qmgr_transport_kick(q, tp);
    }
}

QMGR_TRANSPORT *qmgr_transport_find(QMGR *q, const char *name)
{
    QMGR_TRANSPORT *tp = q->last_tp;
    QMGR_LINK *l;

    if (tp && strcmp(tp->name, name) == 0)
	return tp;
    for (l = q->transports.next; l != &q->transports; l = l->next) {
	tp = QMGR_CONTAINER(l, QMGR_TRANSPORT, all_link);
	if (strcmp(tp->name, name) == 0)
	    return q->last_tp = tp;
    }
    tp = MEM_NEW(QMGR_TRANSPORT);
    tp->q = q;
    tp->name = mem_strdup(name);
    qmgr_transport_configure(q, tp);
    qmgr_link_init(&tp->ready);
    qmgr_link_init(&tp->ready_link);
    tp->cap = 16;
    tp->slot = mem_calloc(tp->cap, sizeof(*tp->slot));
    qmgr_link_append(&q->transports, &tp->all_link);
    return q->last_tp = tp;
}

void qmgr_transport_kick(QMGR *q, QMGR_TRANSPORT *tp)
{
    if (tp->in_ready || qmgr_link_empty(&tp->ready))
	return;
    if (tp->cfg.process_limit > 0 && tp->busy >= tp->cfg.process_limit)
	return;				/* a completion kicks it again */
    qmgr_link_append(&q->tp_ready, &tp->ready_link);
    tp->in_ready = true;
}

/*
 * Hand out deliveries until no transport can take one. Each step is O(1):
 * a visit either delivers or drops a queue/transport from its ring, and
 * each ring insertion is paid for by the event that made it ready.
 */
void qmgr_transport_schedule(QMGR *q)
{
    while (!qmgr_link_empty(&q->tp_ready)) {
	QMGR_TRANSPORT *tp = QMGR_CONTAINER(q->tp_ready.next, QMGR_TRANSPORT, ready_link);
	QMGR_QUEUE *queue;

	if ((tp->cfg.process_limit > 0 && tp->busy >= tp->cfg.process_limit)
	    || qmgr_link_empty(&tp->ready)) {
	    qmgr_link_remove(&tp->ready_link);
	    tp->in_ready = false;
	    continue;
	}
	queue = QMGR_CONTAINER(tp->ready.next, QMGR_QUEUE, ready_link);
	qmgr_link_remove(&queue->ready_link);
	queue->in_ready = false;
	/* Still able to deliver? (window may have shrunk, limits changed) */
	if (qmgr_queue_blocked_until(q, queue) != 0) {
	    qmgr_queue_kick(q, queue);	/* sets a timer if time will fix it */
	    continue;
	}
	qmgr_deliver(q, queue);
	qmgr_queue_kick(q, queue);	/* back at the tail if still ready */
	/* Rotate transports too, so that one does not hog the loop. */
	if (tp->in_ready && q->tp_ready.prev != &tp->ready_link) {
	    qmgr_link_remove(&tp->ready_link);
	    qmgr_link_append(&q->tp_ready, &tp->ready_link);
	}
    }
}

void qmgr_transport_free_all(QMGR *q)
{
    while (!qmgr_link_empty(&q->transports)) {
	QMGR_TRANSPORT *tp = QMGR_CONTAINER(q->transports.next, QMGR_TRANSPORT, all_link);

	qmgr_link_remove(&tp->all_link);
	qmgr_queue_free_all(q, tp);
	mem_free(tp->slot);
	mem_free(tp->name);
	mem_free(tp);
    }
    q->last_tp = NULL;
}
