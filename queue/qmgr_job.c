/*
 * qmgr_job.c - the preemptive scheduler: which message a destination queue
 * sends next (Postfix's delivery slots, SCHEDULER_README, adapted).
 *
 * A queue's todo list holds one entry per message (Postfix's job and peer
 * in one), oldest first. The head entry is the "current job". Each request
 * cut from an entry earns it one delivery slot. Before a queue sends, the
 * current entry C may be preempted by a later entry J when, as in Postfix:
 *  - preemption is on (delivery_slot_cost >= 2), C has slots left
 *    (slots_available > 0) and C is big enough to matter (at least
 *    minimum_delivery_slots x delivery_slot_cost requests in all);
 *  - J needs no more requests than C can still pay for
 *    ((C's waiting requests + C's slots) / cost), and J has the best
 *    time-since-queued / requests score of such entries;
 *  - C has saved enough: slots / cost + delivery_slot_loan >=
 *    J's requests x delivery_slot_discount / 100.
 * J then moves to the head with C as its parent (a stack: the todo list
 * starts with the preempting chain), C pays cost x J's expected requests,
 * and when J leaves the queue C gets back the slots J did not use. So a
 * big message is never slowed down by more than about 1/cost, and a small
 * one behind it waits for a few of its requests, not for all of them.
 *
 * Differences from Postfix, because Sluice serves destinations round robin
 * (a destination never waits for another one's message, so messages only
 * compete within a destination):
 *  - slots are counted per message and destination (QMGR_ENTRY), not per
 *    message and transport; sizes are requests to this destination (plus
 *    the recipients not expanded yet, counted as if they all went here, as
 *    Postfix counts unread recipients);
 *  - no blocker jobs: the whole queue is either sendable or not;
 *  - the candidate search looks at most QMGR_JOB_SCAN entries behind the
 *    current one (Postfix walks the whole job list, with a cache); the cache
 *    (per queue, as Postfix's: one per current entry and second) is kept;
 *  - an entry leaves the queue when its last recipient is cut off; more
 *    recipients of the same message (refill) start a new entry at the tail;
 *  - recipient slots (rcpt_per_stack, recipient refill limits) are not
 *    modelled: qmgr_message_recipient_limit and the refill list do that.
 *
 * Threading: the qmgr thread only. Diagnostics: msg_info at verbose level
 * for each preemption.
 */
#include "config.h"

#include "engine/msg.h"
#include "queue/qmgr_priv.h"

#define QMGR_JOB_SCAN	32	/* candidates looked at per search */

#define QMGR_JOB_ADOPTED	((uintptr_t) 1)

static inline QMGR_ENTRY *qmgr_job_parent(const QMGR_ENTRY *e)
{
    return (QMGR_ENTRY *) (e->parent & ~QMGR_JOB_ADOPTED);
}

static inline QMGR_ENTRY *qmgr_job_of(QMGR_LINK *l)
{
    return QMGR_CONTAINER(l, QMGR_ENTRY, qlink);
}

/* A stack parent: the entry in front of it preempted it (or was adopted). */
static bool qmgr_job_has_child(const QMGR_QUEUE *queue, const QMGR_ENTRY *e)
{
    return e->qlink.prev != &queue->todo
	&& qmgr_job_parent(qmgr_job_of(e->qlink.prev)) == e;
}

static uint32_t qmgr_job_requests(uint32_t rcpts, int limit)
{
    if (limit <= 0)
	return rcpts > 0;
    return (uint32_t) (((uint64_t) rcpts + (uint64_t) limit - 1) / (uint64_t) limit);
}

/* Requests still to come (Postfix: MAX_ENTRIES - selected). */
static int64_t qmgr_job_needed(const QMGR_ENTRY *e, int limit)
{
    const QMGR_MSG *qm = e->qm;
    uint32_t unread = (uint32_t) qm->msg->nrcpt - qm->cursor;

    return (int64_t) qmgr_job_requests(e->count, limit)
	+ (int64_t) qmgr_job_requests(unread, limit);
}

/* The best entry to preempt the current one with, or NULL. */
static QMGR_ENTRY *qmgr_job_candidate(QMGR *q, QMGR_QUEUE *queue, QMGR_ENTRY *cur)
{
    const QMGR_TRANSPORT_CONFIG *tc = &queue->tp->cfg;
    int     limit = tc->dest_recipient_limit;
    int64_t now_sec = q->now / 1000000000;
    QMGR_ENTRY *best = NULL;
    double  best_score = 0;
    int64_t max_slots;
    QMGR_LINK *l;
    int     n;

    /* Negative answers hold until the queue changes; positive ones for
     * the second (the scores move with time), as Postfix's cache. */
    if (queue->cand_current == cur && (queue->cand == NULL || queue->cand_sec == now_sec))
	return queue->cand;
    max_slots = ((int64_t) qmgr_job_requests(cur->count, limit) + cur->slots_available)
	/ tc->delivery_slot_cost;
    if (max_slots > 0) {
	for (l = cur->qlink.next, n = 0; l != &queue->todo && n < QMGR_JOB_SCAN;
	     l = l->next, n++) {
	    QMGR_ENTRY *e = qmgr_job_of(l);
	    int64_t needed;
	    int64_t delay;

	    if (qmgr_job_has_child(queue, e))
		continue;			/* the current one's ancestors */
	    needed = qmgr_job_needed(e, limit);
	    delay = now_sec - e->qm->active_since / 1000000000 + 1;
	    if (needed > 0 && needed <= max_slots) {
		double  score = (double) delay / (double) (e->selected + needed);

		if (score > best_score) {
		    best_score = score;
		    best = e;
		}
	    }
	    /* Entries behind are younger: none can score better. */
	    if ((double) delay <= best_score && e->parent == 0)
		break;
	}
    }
    queue->cand = best;
    queue->cand_current = cur;
    queue->cand_sec = now_sec;
    return best;
}

/* The current entry, or the one that has earned the right to preempt it
 * (called when preemption is on and cur has slots). */
QMGR_ENTRY *qmgr_job_preempt(QMGR *q, QMGR_QUEUE *queue, QMGR_ENTRY *cur)
{
    const QMGR_TRANSPORT_CONFIG *tc = &queue->tp->cfg;
    int     cost = tc->delivery_slot_cost;
    int     limit = tc->dest_recipient_limit;
    QMGR_ENTRY *e;
    int64_t expected;

    if ((int64_t) cur->selected + qmgr_job_needed(cur, limit)
	< (int64_t) tc->minimum_delivery_slots * cost)
	return cur;
    if ((e = qmgr_job_candidate(q, queue, cur)) == NULL)
	return cur;
    expected = qmgr_job_needed(e, limit);
    /* The loan lets the preemption happen earlier; the full price is still
     * paid before cur can be preempted again. */
    if (cur->slots_available / cost + tc->delivery_slot_loan
	< (double) expected * tc->delivery_slot_discount / 100.0)
	return cur;
    qmgr_link_remove(&e->qlink);
    qmgr_link_prepend(&queue->todo, &e->qlink);
    e->parent = (uintptr_t) cur;
    /* Several entries may preempt cur in turn: book the slots now, correct
     * them when e leaves (slots_used counts the difference from here). */
    cur->slots_available -= (int32_t) (expected * cost);
    e->slots_used = (int32_t) -expected;
    qmgr_job_changed(queue);
    if (msg_verbose)
	msg_info("qmgr: %s:%s: %s preempted by %s", queue->tp->name, queue->nexthop,
		 cur->qm->msg->queue_id, e->qm->msg->queue_id);
    return e;
}

/*
 * e leaves its queue (nothing left to send, or taken back). Its parent gets
 * back the slots it booked and e did not use; an entry e had preempted is
 * adopted by e's parent, without that refund (as Postfix: only the original
 * parent is paid back). The caller unlinks e.
 */
void    qmgr_job_unstack(QMGR_QUEUE *queue, QMGR_ENTRY *e)
{
    QMGR_ENTRY *parent = qmgr_job_parent(e);

    if (parent && !(e->parent & QMGR_JOB_ADOPTED))
	parent->slots_available -= e->slots_used * queue->tp->cfg.delivery_slot_cost;
    if (qmgr_job_has_child(queue, e)) {
	QMGR_ENTRY *child = qmgr_job_of(e->qlink.prev);

	child->parent = parent ? (uintptr_t) parent | QMGR_JOB_ADOPTED : 0;
    }
}
