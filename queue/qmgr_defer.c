/*
 * qmgr_defer.c - what happens when a pass over a message ends, and retries.
 *
 * At the end of a pass (every expanded entry back): notices are requested
 * (bounce, success), then the message is done, held, expired or deferred:
 *  - expired: some recipients were deferred and the message is older than
 *    maximal_queue_lifetime (bounce_queue_lifetime for the null sender): they
 *    bounce, "ID: from=<s>, status=expired, returned to sender" as Postfix;
 *  - delay_warning_time passed and no warning yet: one delay notice;
 *  - deferred until now + backoff, backoff = message age clamped to
 *    [minimal_backoff_time, maximal_backoff_time], spread by
 *    +-backoff_jitter_percent (still inside the clamp) so that mail deferred
 *    together does not come back together. The time is chosen at the first
 *    deferral of the pass, so the journal record carries it.
 * Deferred messages wait in a min-heap by retry time; every queue_run_delay
 * the scan moves the due ones to incoming (postqueue -f: all of them).
 *
 * Threading: the qmgr thread only. Diagnostics: the "status=expired" line.
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/qmgr_priv.h"

static int64_t qmgr_defer_age(const QMGR *q, const QMGR_MSG *qm)
{
    int64_t arrival = qm->msg->arrival_us * 1000;

    if (qm->msg->arrival_us <= 0 || arrival > q->now)
	return 0;
    return q->now - arrival;
}

/* Delay before the next attempt (not an absolute time). */
int64_t qmgr_defer_backoff(QMGR *q, const QMGR_MSG *qm)
{
    int64_t min = q->cfg.minimal_backoff_ns;
    int64_t max = q->cfg.maximal_backoff_ns;
    int64_t d = qmgr_defer_age(q, qm);
    int64_t lo;
    int64_t hi;
    int64_t spread;

    if (d < min)
	d = min;
    if (d > max)
	d = max;
    if (q->cfg.backoff_jitter_percent <= 0 || min >= max)
	return d;
    spread = d / 100 * q->cfg.backoff_jitter_percent;
    lo = d - spread < min ? min : d - spread;
    hi = d + spread > max ? max : d + spread;
    if (hi <= lo)
	return lo;
    return lo + (int64_t) (qmgr_random(q) % (uint64_t) (hi - lo + 1));
}

int64_t qmgr_defer_pass_retry(QMGR *q, QMGR_MSG *qm)
{
    if (qm->pass_retry == 0)
	qm->pass_retry = q->now + qmgr_defer_backoff(q, qm);
    return qm->pass_retry;
}

void qmgr_defer_enter(QMGR *q, QMGR_MSG *qm, int64_t when)
{
    qmgr_message_set_state(q, qm, QMGR_MSG_DEFERRED);
    qm->timer.idx = 0;			/* was the FIFO link */
    qmgr_heap_set(&q->deferred, &qm->timer, when);
}

void qmgr_defer_leave(QMGR *q, QMGR_MSG *qm)
{
    qmgr_heap_remove(&q->deferred, &qm->timer);
    qmgr_message_set_state(q, qm, QMGR_MSG_INCOMING);
    qmgr_link_append(&q->incoming, &qm->link);
}

static void qmgr_defer_notify(QMGR *q, QMGR_MSG *qm, enum qmgr_notify kind,
			      const QMGR_IDX_LIST *l)
{
    static const char *const dflt[] = {
	[QMGR_NOTIFY_BOUNCE] = "5.0.0", [QMGR_NOTIFY_EXPIRED] = "4.4.7",
	[QMGR_NOTIFY_DELAY] = "4.0.0", [QMGR_NOTIFY_SUCCESS] = "2.0.0",
    };
    char  **reasons = qmgr_msg_reasons(qm);
    char  (*dsns)[QMGR_DSN_SIZE] = qmgr_msg_dsns(qm);
    QMGR_NOTIFY_RCPT *v;

    if (l->n == 0 || q->cfg.hooks.notify == NULL)
	return;
    v = mem_alloc(l->n * sizeof(*v));
    for (size_t k = 0; k < l->n; k++) {
	size_t  i = l->v[k];

	v[k].index = i;
	v[k].dsn = dsns && dsns[i][0] ? dsns[i] : dflt[kind];
	v[k].reason = reasons && reasons[i] ? reasons[i] : "";
    }
    q->cfg.hooks.notify(q->cfg.hooks.ctx, qm->msg, kind, v, l->n);
    mem_free(v);
}

static void qmgr_defer_pending_list(QMGR_MSG *qm, QMGR_IDX_LIST *l)
{
    for (size_t i = 0; i < qm->msg->nrcpt; i++) {
	enum rcpt_state st = qm->msg->rcpt[i].state;

	if (st == RCPT_PENDING || st == RCPT_DEFERRED)
	    qmgr_idx_push(l, i);
    }
}

static void qmgr_defer_expire(QMGR *q, QMGR_MSG *qm)
{
    QMGR_IDX_LIST l = {0};
    const QMGR_HOOKS *h = &q->cfg.hooks;
    char  **reasons = qmgr_msg_reasons(qm);

    msg_info("%s: from=<%s>, status=expired, returned to sender",
	     qm->msg->queue_id, qm->msg->sender ? qm->msg->sender : "");
    qmgr_defer_pending_list(qm, &l);
    for (size_t k = 0; k < l.n; k++) {
	size_t  i = l.v[k];
	const char *why = reasons && reasons[i] ? reasons[i] :
	    "delivery time expired";

	/* The last delay reason is what the sender needs to read. */
	if (h->outcome)
	    h->outcome(h->ctx, qm->msg, i, RCPT_BOUNCED, "4.4.7", why, 0);
	if (reasons == NULL || reasons[i] == NULL) {
	    qmgr_message_set_reason(qm, i, why);	/* for the notice */
	    reasons = qmgr_msg_reasons(qm);
	}
	qm->msg->rcpt[i].state = RCPT_BOUNCED;
	qm->pending--;
    }
    qmgr_defer_notify(q, qm, QMGR_NOTIFY_EXPIRED, &l);
    mem_free(l.v);
}

void qmgr_defer_pass_end(QMGR *q, QMGR_MSG *qm)
{
    int64_t age;
    int64_t lifetime;

    qmgr_message_free_rnext(q, qm);
    if (qm->flags & QMGR_MSG_F_DELETED) {
	qmgr_message_drop_all(q, qm);
	qmgr_message_done(q, qm);
	return;
    }
    if (qm->extra) {
	QMGR_NOTICES *n = &qm->extra->notices;

	qmgr_defer_notify(q, qm, QMGR_NOTIFY_BOUNCE, &n->bounced);
	qmgr_defer_notify(q, qm, QMGR_NOTIFY_SUCCESS, &n->success);
	mem_free(n->bounced.v);
	mem_free(n->success.v);
	memset(n, 0, sizeof(*n));
    }
    if (qm->pending == 0) {
	qmgr_message_done(q, qm);
	return;
    }
    if (qm->flags & QMGR_MSG_F_HOLD) {
	qm->flags &= ~QMGR_MSG_F_HOLD;
	qmgr_message_set_state(q, qm, QMGR_MSG_HOLD);
	return;
    }
    age = qmgr_defer_age(q, qm);
    lifetime = (qm->msg->sender && *qm->msg->sender) ?
	q->cfg.maximal_queue_lifetime_ns : q->cfg.bounce_queue_lifetime_ns;
    if (qm->msg->arrival_us > 0 && age >= lifetime) {
	qmgr_defer_expire(q, qm);
	qmgr_message_done(q, qm);
	return;
    }
    if (q->cfg.delay_warning_time_ns > 0 && !(qm->flags & QMGR_MSG_F_WARNED)
	&& qm->msg->arrival_us > 0 && age >= q->cfg.delay_warning_time_ns) {
	QMGR_IDX_LIST l = {0};

	qmgr_defer_pending_list(qm, &l);
	qmgr_defer_notify(q, qm, QMGR_NOTIFY_DELAY, &l);
	mem_free(l.v);
	qm->flags |= QMGR_MSG_F_WARNED;
    }
    qmgr_defer_enter(q, qm, qmgr_defer_pass_retry(q, qm));
}

void qmgr_defer_scan(QMGR *q, bool all)
{
    QMGR_TIMER *t;

    while ((t = qmgr_heap_top(&q->deferred)) != NULL && (all || t->when <= q->now))
	qmgr_defer_leave(q, QMGR_CONTAINER(t, QMGR_MSG, timer));
}
