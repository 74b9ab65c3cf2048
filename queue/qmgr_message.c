/*
 * qmgr_message.c - messages in the queue manager: intake, admission into the
 * active set, expansion of recipients into destination entries, per-
 * recipient outcomes, and the hand-back when a message is finished.
 *
 * A message waits in "incoming" (FIFO) as a light reference (no per-
 * recipient state) until the active set has room under
 * qmgr_message_active_limit and qmgr_message_recipient_limit. Admission
 * walks its recipients once: each non-final one joins the message's entry
 * for its (transport, nexthop) queue (qmgr_deliver.c cuts it into requests
 * of at most dest_recipient_limit); a message with more recipients than
 * there is room for stays on the refill list and is expanded further as
 * recipients complete (as Postfix reads recipients in slices), in at most
 * three quarters of the budget: new messages that fit whole in the rest are
 * admitted meanwhile, so a big mailing does not hold them out of the active
 * set (where the scheduler lets them overtake it). A pass ends
 * when no entry waits and no request is out; qmgr_defer.c then decides
 * done / deferred / expired.
 *
 * Threading: the qmgr thread only. Diagnostics: msg_warn for a duplicate
 * queue ID or a recipient without transport.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/qmgr_priv.h"

/* ---- the table of messages by queue ID (linear probing) ---------------- */

/* A deleted slot: probing goes on past it, insertion may reuse it. Deleting
 * this way never touches other messages (backward shifting would read each
 * neighbour's hash: a cache miss per message at a million messages). */
#define QMGR_TOMB	((uintptr_t) 1)

#define QMGR_TAG_SHIFT	48
#define QMGR_PTR_MASK	((((uintptr_t) 1) << QMGR_TAG_SHIFT) - 1)

static inline QMGR_MSG *qmgr_slot_msg(uintptr_t slot)
{
    return (QMGR_MSG *) (slot & QMGR_PTR_MASK);
}

static inline uintptr_t qmgr_slot_tag(uint64_t h)
{
    return (uintptr_t) (h >> QMGR_TAG_SHIFT) << QMGR_TAG_SHIFT;
}

QMGR_MSG *qmgr_message_find(QMGR *q, const char *queue_id)
{
    uint64_t h = qmgr_hash(queue_id);
    uintptr_t tag = qmgr_slot_tag(h);
    size_t  mask = q->mcap - 1;
    size_t  i = (uint32_t) h & mask;
    uintptr_t slot;

    while ((slot = q->mslot[i]) != 0) {
	if ((slot & ~QMGR_PTR_MASK) == tag && slot != QMGR_TOMB) {
	    QMGR_MSG *qm = qmgr_slot_msg(slot);

	    if (strcmp(qm->msg->queue_id, queue_id) == 0)
		return qm;
	}
	i = (i + 1) & mask;
    }
    return NULL;
}

static void qmgr_message_place(QMGR *q, uintptr_t slot)
{
    size_t  mask = q->mcap - 1;
    size_t  i = qmgr_slot_msg(slot)->hash & mask;

    while (q->mslot[i] > QMGR_TOMB)
	i = (i + 1) & mask;
    if (q->mslot[i] == QMGR_TOMB)
	q->mtomb--;
    q->mslot[i] = slot;
}

static void qmgr_message_rehash(QMGR *q, size_t cap)
{
    uintptr_t *old = q->mslot;
    size_t  oldcap = q->mcap;

    q->mcap = cap;
    q->mslot = mem_calloc(q->mcap, sizeof(*q->mslot));
    q->mtomb = 0;
    for (size_t i = 0; i < oldcap; i++)
	if (old[i] > QMGR_TOMB)
	    qmgr_message_place(q, old[i]);
    mem_free(old);
}

static void qmgr_message_insert(QMGR *q, QMGR_MSG *qm, uint64_t h)
{
    if (2 * (q->mcount + q->mtomb + 1) > q->mcap)
	qmgr_message_rehash(q, 4 * (q->mcount + 1) > q->mcap ? 2 * q->mcap : q->mcap);
    if ((uintptr_t) qm & ~QMGR_PTR_MASK)	/* user space is 47 bits on Linux */
	msg_panic("qmgr_message_insert: pointer %p does not fit in 48 bits", (void *) qm);
    qm->hash = (uint32_t) h;
    qmgr_message_place(q, (uintptr_t) qm | qmgr_slot_tag(h));
    q->mcount++;
}

static void qmgr_message_unlink(QMGR *q, QMGR_MSG *qm)
{
    size_t  mask = q->mcap - 1;
    size_t  i = qm->hash & mask;

    while (qmgr_slot_msg(q->mslot[i]) != qm || q->mslot[i] == QMGR_TOMB) {
	if (q->mslot[i] == 0)
	    msg_panic("qmgr_message_unlink: %s not in table", qm->msg->queue_id);
	i = (i + 1) & mask;
    }
    q->mslot[i] = QMGR_TOMB;
    q->mtomb++;
    q->mcount--;
}

/* ---- small helpers ----------------------------------------------------- */

void qmgr_idx_push(QMGR_IDX_LIST *l, size_t idx)
{
    if (l->n == l->cap) {
	l->cap = l->cap ? 2 * l->cap : 8;
	l->v = mem_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = idx;
}

static QMGR_MSG_EXTRA *qmgr_message_extra(QMGR_MSG *qm)
{
    if (qm->extra == NULL)
	qm->extra = MEM_NEW(QMGR_MSG_EXTRA);
    return qm->extra;
}

static QMGR_NOTICES *qmgr_message_notices(QMGR_MSG *qm)
{
    return &qmgr_message_extra(qm)->notices;
}

void qmgr_message_free_rnext(QMGR *q, QMGR_MSG *qm)
{
    if (qm->rnext != &q->rnext_one)
	mem_free(qm->rnext);
    qm->rnext = NULL;
}

void qmgr_message_set_reason(QMGR_MSG *qm, size_t idx, const char *reason)
{
    if (reason == NULL || *reason == 0)
	return;
    QMGR_MSG_EXTRA *x = qmgr_message_extra(qm);

    if (x->reason == NULL)
	x->reason = mem_calloc(qm->msg->nrcpt, sizeof(*x->reason));
    if (x->reason[idx] && strcmp(x->reason[idx], reason) == 0)
	return;
    mem_free(x->reason[idx]);
    x->reason[idx] = mem_strdup(reason);
}

/* The status that goes with the reason, for the notices. */
void qmgr_message_set_dsn(QMGR_MSG *qm, size_t idx, const char *dsn)
{
    if (dsn == NULL || *dsn == 0)
	return;
    QMGR_MSG_EXTRA *x = qmgr_message_extra(qm);

    if (x->dsn == NULL)
	x->dsn = mem_calloc(qm->msg->nrcpt, sizeof(*x->dsn));
    snprintf(x->dsn[idx], sizeof(x->dsn[idx]), "%s", dsn);
}

void qmgr_set_reason(QMGR *q, const char *queue_id, size_t rcpt_index, const char *reason)
{
    QMGR_MSG *qm = qmgr_message_find(q, queue_id);

    if (qm && rcpt_index < qm->msg->nrcpt)
	qmgr_message_set_reason(qm, rcpt_index, reason);
}

void qmgr_message_set_state(QMGR *q, QMGR_MSG *qm, enum qmgr_msg_state st)
{
    q->n_state[qm->state]--;
    qm->state = (uint8_t) st;
    q->n_state[st]++;
}

static inline bool qmgr_rcpt_final(const RCPT *r)
{
    return r->state == RCPT_SENT || r->state == RCPT_BOUNCED || r->state == RCPT_DROPPED;
}

/* ---- intake ------------------------------------------------------------ */

int qmgr_enqueue(QMGR *q, MESSAGE *msg, unsigned flags, int64_t next_retry_us)
{
    QMGR_MSG *qm;
    uint32_t pending = 0;

    uint64_t h = qmgr_hash(msg->queue_id);

    if (qmgr_message_find(q, msg->queue_id) != NULL) {
	msg_warn("qmgr: duplicate queue ID %s: message ignored", msg->queue_id);
	return -1;
    }
    if (msg->nrcpt >= QMGR_NO_RCPT) {
	msg_warn("qmgr: %s: too many recipients (%zu)", msg->queue_id, msg->nrcpt);
	return -1;
    }
    for (size_t i = 0; i < msg->nrcpt; i++)
	if (!qmgr_rcpt_final(&msg->rcpt[i]))
	    pending++;
    if (pending == 0) {
	if (q->cfg.hooks.message_done)
	    q->cfg.hooks.message_done(q->cfg.hooks.ctx, msg);
	else
	    message_free(msg);
	return 0;
    }
    q->now = qmgr_clock(q);
    qm = MEM_NEW(QMGR_MSG);
    qm->msg = msg;
    qmgr_link_init(&qm->link);
    qmgr_link_init(&qm->entries);
    qm->pending = pending;
    if (flags & QMGR_ENQ_WARNED)
	qm->flags |= QMGR_MSG_F_WARNED;
    qmgr_message_insert(q, qm, h);
    if (flags & QMGR_ENQ_HOLD) {
	qm->state = QMGR_MSG_HOLD;
	q->n_state[QMGR_MSG_HOLD]++;
    } else if ((flags & QMGR_ENQ_DEFERRED) && next_retry_us * 1000 > q->now) {
	qm->state = QMGR_MSG_DEFERRED;
	q->n_state[QMGR_MSG_DEFERRED]++;
	qm->timer.idx = 0;
	qmgr_heap_set(&q->deferred, &qm->timer, next_retry_us * 1000);
    } else {
	qm->state = QMGR_MSG_INCOMING;
	q->n_state[QMGR_MSG_INCOMING]++;
	qmgr_link_append(&q->incoming, &qm->link);
    }
    return 0;
}

/* ---- admission and expansion ------------------------------------------- */

static void qmgr_message_defer_now(QMGR *q, QMGR_MSG *qm, uint32_t i,
				   const char *dsn, const char *why, const char *detail)
{
    char   *reason = NULL;

    if (detail) {
	reason = mem_alloc(strlen(why) + strlen(detail) + 1);
	strcpy(reason, why);
	strcat(reason, detail);
    }
    qmgr_message_outcome(q, qm, i, DELIVERY_DEFER, dsn, reason ? reason : why, true);
    mem_free(reason);
}

static void qmgr_message_expand(QMGR *q, QMGR_MSG *qm, size_t slots)
{
    MESSAGE *m = qm->msg;

    /* One-recipient messages (most bulk mail) share a one-slot chain. */
    if (qm->rnext == NULL)
	qm->rnext = m->nrcpt == 1 ? &q->rnext_one : mem_alloc(m->nrcpt * sizeof(*qm->rnext));
    while (qm->cursor < m->nrcpt && slots > 0) {
	uint32_t i = qm->cursor++;
	RCPT   *r = &m->rcpt[i];
	QMGR_TRANSPORT *tp;
	QMGR_QUEUE *queue;
	QMGR_ENTRY *e = NULL;

	if (qmgr_rcpt_final(r))
	    continue;
	if (r->transport == NULL || *r->transport == 0) {
	    msg_warn("qmgr: %s: recipient <%s> has no transport",
		     m->queue_id, r->address ? r->address : "");
	    qmgr_message_defer_now(q, qm, i, "4.3.5", "mail transport unavailable", NULL);
	    continue;
	}
	tp = qmgr_transport_find(q, r->transport);
	if (tp->cfg.dispatch == NULL) {
	    qmgr_message_defer_now(q, qm, i, "4.3.0", "mail transport unavailable", NULL);
	    continue;
	}
	queue = qmgr_queue_find(q, tp, r->nexthop ? r->nexthop : "", true);
	if (queue->dead) {
	    qmgr_message_defer_now(q, qm, i, "4.4.1", "delivery temporarily suspended: ",
				   queue->last_error ? queue->last_error : "");
	    continue;
	}
	/* Recipients of one message for one destination gather in one entry
	 * (the tail one, unless another message came in between). */
	if (!qmgr_link_empty(&queue->todo)) {
	    e = QMGR_CONTAINER(queue->todo.prev, QMGR_ENTRY, qlink);
	    if (e->qm != qm)
		e = NULL;
	}
	qm->rnext[i] = QMGR_NO_RCPT;
	if (e == NULL) {
	    e = mem_alloc(sizeof(*e));	/* not calloc: a hot path */
	    e->qm = qm;
	    e->queue = queue;
	    e->parent = 0;
	    e->first = e->last = i;
	    e->count = 1;
	    e->selected = 0;
	    e->slots_available = e->slots_used = 0;
	    qmgr_link_append(&queue->todo, &e->qlink);
	    qmgr_link_append(&qm->entries, &e->mlink);
	    qm->refcount++;
	} else {
	    qm->rnext[e->last] = i;
	    e->last = i;
	    e->count++;
	}
	qmgr_job_changed(queue);
	queue->todo_rcpts++;
	q->active_rcpts++;
	slots--;
	if (!queue->in_ready)
	    qmgr_queue_kick(q, queue);
    }
}

/*
 * Refill first, then new messages. A message refilled in slices (more
 * recipients than the budget) may take three quarters of the recipient
 * budget; the last quarter is for new mail, admitted whole while a refill
 * is going on, so a mailing bigger than the budget does not keep every
 * later message out of the active set until its last slice.
 */
void qmgr_message_admit(QMGR *q)
{
    size_t  rlimit = q->cfg.message_recipient_limit;
    size_t  refill_limit = rlimit - rlimit / 4;

    while (!qmgr_link_empty(&q->refill) && q->active_rcpts < refill_limit) {
	QMGR_MSG *qm = QMGR_CONTAINER(q->refill.next, QMGR_MSG, link);

	qmgr_message_expand(q, qm, refill_limit - q->active_rcpts);
	if (qm->cursor < qm->msg->nrcpt)
	    break;
	qmgr_link_remove(&qm->link);
	qm->flags &= ~QMGR_MSG_F_REFILL;
	qmgr_message_check_pass(q, qm);
    }
    while (!qmgr_link_empty(&q->incoming)
	   && q->n_state[QMGR_MSG_ACTIVE] < q->cfg.message_active_limit
	   && q->active_rcpts < rlimit) {
	QMGR_MSG *qm = QMGR_CONTAINER(q->incoming.next, QMGR_MSG, link);

	if (!qmgr_link_empty(&q->refill) && qm->pending > rlimit - q->active_rcpts)
	    break;			/* only whole ones next to a refill */
	qmgr_link_remove(&qm->link);
	qmgr_message_set_state(q, qm, QMGR_MSG_ACTIVE);
	qmgr_log_active(qm);
	if (q->cfg.hooks.activate)
	    q->cfg.hooks.activate(q->cfg.hooks.ctx, qm->msg);
	qm->cursor = 0;
	qm->pass_retry = 0;
	qm->active_since = q->now;
	qmgr_message_expand(q, qm, rlimit - q->active_rcpts);
	if (qm->cursor < qm->msg->nrcpt) {
	    qmgr_link_append(&q->refill, &qm->link);
	    qm->flags |= QMGR_MSG_F_REFILL;
	} else {
	    qmgr_message_check_pass(q, qm);
	}
    }
}

/* ---- outcomes ---------------------------------------------------------- */

static const char *qmgr_message_dsn(const char *dsn, enum delivery_status st)
{
    if (dsn && *dsn)
	return dsn;
    return st == DELIVERY_SENT ? "2.0.0" : st == DELIVERY_BOUNCE ? "5.0.0" : "4.0.0";
}

static void qmgr_message_drop(QMGR *q, QMGR_MSG *qm, size_t idx)
{
    RCPT   *r = &qm->msg->rcpt[idx];

    if (q->cfg.hooks.outcome)
	q->cfg.hooks.outcome(q->cfg.hooks.ctx, qm->msg, idx, RCPT_DROPPED, "5.0.0",
			     "deleted by the operator", 0);
    r->state = RCPT_DROPPED;
    qm->pending--;
}

void qmgr_message_outcome(QMGR *q, QMGR_MSG *qm, size_t idx,
			  enum delivery_status status, const char *dsn,
			  const char *reason, bool log_here)
{
    const QMGR_HOOKS *h = &q->cfg.hooks;
    RCPT   *r = &qm->msg->rcpt[idx];
    int64_t retry;

    if (qmgr_rcpt_final(r))
	return;				/* an agent reported twice: first wins */
    if (reason == NULL)
	reason = "";
    dsn = qmgr_message_dsn(dsn, status);
    switch (status) {
    case DELIVERY_SENT:
	if (h->outcome)
	    h->outcome(h->ctx, qm->msg, idx, RCPT_SENT, dsn, reason, 0);
	r->state = RCPT_SENT;
	qm->pending--;
	if ((r->dsn_notify & DSN_NOTIFY_SUCCESS) && !(qm->flags & QMGR_MSG_F_DELETED)) {
	    qmgr_message_set_reason(qm, idx, reason);
	    qmgr_message_set_dsn(qm, idx, dsn);
	    qmgr_idx_push(&qmgr_message_notices(qm)->success, idx);
	}
	break;
    case DELIVERY_BOUNCE:
	if (h->outcome)
	    h->outcome(h->ctx, qm->msg, idx, RCPT_BOUNCED, dsn, reason, 0);
	if (log_here)
	    qmgr_log_outcome(q, qm, idx, dsn, "bounced", reason);
	r->state = RCPT_BOUNCED;
	qm->pending--;
	qmgr_message_set_reason(qm, idx, reason);
	qmgr_message_set_dsn(qm, idx, dsn);
	if (!(qm->flags & QMGR_MSG_F_DELETED))
	    qmgr_idx_push(&qmgr_message_notices(qm)->bounced, idx);
	break;
    case DELIVERY_DEFER:
    default:
	if (qm->flags & QMGR_MSG_F_DELETED) {
	    qmgr_message_drop(q, qm, idx);
	    break;
	}
	retry = qmgr_defer_pass_retry(q, qm);
	if (h->outcome)
	    h->outcome(h->ctx, qm->msg, idx, RCPT_DEFERRED, dsn, reason, retry / 1000);
	if (log_here)
	    qmgr_log_outcome(q, qm, idx, dsn, "deferred", reason);
	r->state = RCPT_DEFERRED;
	qmgr_message_set_reason(qm, idx, reason);
	qmgr_message_set_dsn(qm, idx, dsn);
	break;
    }
}

void qmgr_message_drop_all(QMGR *q, QMGR_MSG *qm)
{
    for (size_t i = 0; i < qm->msg->nrcpt; i++)
	if (!qmgr_rcpt_final(&qm->msg->rcpt[i]))
	    qmgr_message_drop(q, qm, i);
}

/* ---- entries ----------------------------------------------------------- */

/* A waiting entry goes away; its recipients (if any left) stay pending. */
void qmgr_message_entry_free(QMGR *q, QMGR_ENTRY *e)
{
    qmgr_job_unlink(e->queue, e);
    e->queue->todo_rcpts -= e->count;
    qmgr_link_remove(&e->mlink);
    q->active_rcpts -= e->count;
    e->queue->last_used = q->now;
    e->qm->refcount--;
    mem_free(e);
}

/* Takes back every waiting entry of qm (hold, delete): the recipients stay
 * pending; requests already out finish. Expansion stops too. */
void qmgr_message_drop_todo(QMGR *q, QMGR_MSG *qm)
{
    QMGR_LINK *l = qm->entries.next;

    while (l != &qm->entries) {
	QMGR_ENTRY *e = QMGR_CONTAINER(l, QMGR_ENTRY, mlink);

	l = l->next;
	qmgr_message_entry_free(q, e);
    }
    if (qm->flags & QMGR_MSG_F_REFILL) {
	qmgr_link_remove(&qm->link);
	qm->flags &= ~QMGR_MSG_F_REFILL;
    }
    qm->cursor = (uint32_t) qm->msg->nrcpt;
}

void qmgr_message_check_pass(QMGR *q, QMGR_MSG *qm)
{
    if (qm->state == QMGR_MSG_ACTIVE && qm->refcount == 0
	&& qm->cursor >= qm->msg->nrcpt && !(qm->flags & QMGR_MSG_F_REFILL))
	qmgr_defer_pass_end(q, qm);
}

/* ---- the end ----------------------------------------------------------- */

static void qmgr_message_release(QMGR *q, QMGR_MSG *qm)
{
    QMGR_MSG_EXTRA *x = qm->extra;

    if (x) {
	if (x->reason) {
	    for (size_t i = 0; i < qm->msg->nrcpt; i++)
		mem_free(x->reason[i]);
	    mem_free(x->reason);
	}
	mem_free(x->dsn);
	mem_free(x->notices.bounced.v);
	mem_free(x->notices.success.v);
	mem_free(x);
    }
    qmgr_message_free_rnext(q, qm);
    mem_free(qm);
}

/* Forget the message and hand it back to the engine. */
void qmgr_message_done(QMGR *q, QMGR_MSG *qm)
{
    MESSAGE *msg = qm->msg;

    if (qm->refcount)
	msg_panic("qmgr_message_done: %s: %u entries left", msg->queue_id, qm->refcount);
    qmgr_message_unlink(q, qm);
    q->n_state[qm->state]--;
    if (qm->state == QMGR_MSG_INCOMING || (qm->flags & QMGR_MSG_F_REFILL))
	qmgr_link_remove(&qm->link);
    else if (qm->state == QMGR_MSG_DEFERRED)
	qmgr_heap_remove(&q->deferred, &qm->timer);
    qmgr_message_release(q, qm);
    if (q->cfg.hooks.message_done)
	q->cfg.hooks.message_done(q->cfg.hooks.ctx, msg);
    else
	message_free(msg);
}

void qmgr_message_free_all(QMGR *q)
{
    for (size_t i = 0; i < q->mcap; i++) {
	QMGR_MSG *qm = qmgr_slot_msg(q->mslot[i]);

	if (q->mslot[i] <= QMGR_TOMB)
	    continue;
	while (!qmgr_link_empty(&qm->entries))
	    qmgr_message_entry_free(q, QMGR_CONTAINER(qm->entries.next, QMGR_ENTRY, mlink));
	{
	    MESSAGE *msg = qm->msg;

	    qmgr_message_release(q, qm);	/* reads msg->nrcpt */
	    message_free(msg);
	}
	q->mslot[i] = 0;
    }
    q->mcount = 0;
}
