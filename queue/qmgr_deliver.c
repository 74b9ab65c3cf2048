/*
 * qmgr_deliver.c - from a waiting entry to a DELIVERY_REQUEST and back.
 *
 * qmgr_deliver() cuts a request of at most dest_recipient_limit recipients
 * off the entry the scheduler picks (qmgr_job.c: the queue's current
 * message, or one that preempts it) -- one allocation: the request and its
 * recipient array -- and hands it to the transport's dispatch function. The
 * agent calls req->done(req) from whatever thread it runs on; done only
 * pushes the request onto qmgr's inbox (wait-free) and maybe calls the
 * wakeup hook. qmgr_deliver_complete() then runs on the qmgr thread:
 * concurrency feedback first (as Postfix: site failure = negative, else
 * positive), the rate delay, then each recipient's outcome through the
 * journal hook, then the request is gone and the message's pass may end.
 *
 * Threading: qmgr_deliver_done() on any thread (it reads only immutable
 * fields); the rest on the qmgr thread. Diagnostics: msg_warn for an agent
 * that reports a recipient it was not given (ignored).
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/qmgr_priv.h"

static void qmgr_deliver_done(DELIVERY_REQUEST *req)
{
    QMGR_REQ *r = req->ctx;
    QMGR   *q = r->queue->tp->q;	/* immutable while a request is out */

    /* After the push the qmgr thread may free r at any moment. */
    if (squeue_push(&q->inbox, &r->node) && q->cfg.hooks.wakeup)
	q->cfg.hooks.wakeup(q->cfg.hooks.ctx);
}

void qmgr_deliver(QMGR *q, QMGR_QUEUE *queue)
{
    QMGR_ENTRY *e = qmgr_job_select(q, queue);
    QMGR_MSG *qm = e->qm;
    QMGR_TRANSPORT *tp = queue->tp;
    int     limit = tp->cfg.dest_recipient_limit;
    uint32_t n = limit > 0 && e->count > (uint32_t) limit ? (uint32_t) limit : e->count;
    QMGR_REQ *r = mem_alloc(sizeof(*r) + n * sizeof(DELIVERY_RCPT));
    DELIVERY_REQUEST *req = &r->req;
    uint32_t i = e->first;

    r->kind = QMGR_EV_DONE;
    r->qm = qm;
    r->queue = queue;
    for (uint32_t k = 0; k < n; k++) {
	DELIVERY_RCPT *d = &r->rcpt[k];

	d->index = i;
	d->status = DELIVERY_DEFER;	/* an agent that says nothing defers */
	d->dsn[0] = 0;
	d->reason = NULL;
	i = qm->rnext[i];
    }
    /* The first n recipients go; the entry keeps the rest, or goes. */
    e->first = i;
    e->count -= n;
    queue->todo_rcpts -= n;
    qm->refcount++;			/* the request */
    if (e->count == 0)
	qmgr_message_entry_free(q, e);
    req->msg = qm->msg;
    req->transport = tp->name;
    req->nexthop = queue->nexthop;
    req->rcpt = r->rcpt;
    req->nrcpt = n;
    req->active_mono_ns = qm->active_since - q->mono_offset;
    req->queued_mono_ns = q->now - q->mono_offset;
    req->site_failed = false;
    req->relay[0] = 0;
    req->done = qmgr_deliver_done;
    req->ctx = r;

    queue->busy++;
    tp->busy++;
    q->requests_out++;
    q->dispatched++;
    queue->last_used = q->now;
    qmgr_queue_rate_used(q, queue);
    tp->cfg.dispatch(tp->cfg.agent_ctx, req);
}

void qmgr_deliver_complete(QMGR *q, QMGR_REQ *r)
{
    QMGR_MSG *qm = r->qm;
    QMGR_QUEUE *queue = r->queue;
    QMGR_TRANSPORT *tp = queue->tp;
    DELIVERY_REQUEST *req = &r->req;

    q->requests_out--;
    q->completed++;
    if (req->site_failed) {
	const char *why = req->nrcpt && req->rcpt[0].reason ?
	    req->rcpt[0].reason : "connection failed";

	qmgr_queue_failure(q, queue, why);
    } else {
	qmgr_queue_success(q, queue);
    }
    queue->busy--;
    tp->busy--;
    if (tp->cfg.dest_rate_delay_ns > 0)
	queue->next_ok = q->now + tp->cfg.dest_rate_delay_ns;

    for (size_t k = 0; k < req->nrcpt; k++) {
	DELIVERY_RCPT *d = &req->rcpt[k];

	if (d->index >= qm->msg->nrcpt) {
	    msg_warn("qmgr: %s: agent %s reported recipient #%zu of %zu",
		     qm->msg->queue_id, tp->name, d->index, qm->msg->nrcpt);
	} else {
	    d->dsn[sizeof(d->dsn) - 1] = 0;
	    qmgr_message_outcome(q, qm, d->index, d->status, d->dsn, d->reason, false);
	}
	mem_free(d->reason);
    }
    q->active_rcpts -= req->nrcpt;
    queue->last_used = q->now;
    qm->refcount--;
    mem_free(r);
    qmgr_queue_kick(q, queue);
    qmgr_transport_kick(q, tp);
    qmgr_message_check_pass(q, qm);
}
