/*
 * qmgr_control.c - operator operations and queue listings: postqueue -f / -s
 * / -i, postsuper -h / -H / -d, mailq and per-destination status.
 *
 * These are rare, so they may walk tables (flush by site walks the deferred
 * messages and the destination tables); the delivery path never does.
 * Hold and delete of an active message take back its waiting entries at
 * once; requests already out finish, then the message is held or dropped.
 * The engine journals hold/release itself before calling; delete reports
 * every recipient it drops through the outcome hook (RCPT_DROPPED).
 *
 * Threading: the qmgr thread (qmgr_control() posts here from any thread).
 * Diagnostics: none; results are return values.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "engine/mem.h"
#include "queue/qmgr_priv.h"

static bool qmgr_control_site_match(const char *nexthop, const char *site);

/* Dead destinations of a transport (NULL: every transport) whose nexthop
 * matches site (NULL: all) get their probe now. */
static void qmgr_control_revive(QMGR *q, const char *transport, const char *site)
{
    for (QMGR_LINK *l = q->transports.next; l != &q->transports; l = l->next) {
	QMGR_TRANSPORT *tp = QMGR_CONTAINER(l, QMGR_TRANSPORT, all_link);

	if (transport && strcmp(transport, tp->name) != 0)
	    continue;
	for (size_t i = 0; i < tp->cap; i++) {
	    QMGR_QUEUE *queue = tp->slot[i];

	    if (queue && queue->dead
		&& (site == NULL || qmgr_control_site_match(queue->nexthop, site)))
		qmgr_queue_revive(q, queue);
	}
    }
}

/* postqueue -f: like Postfix (mail_flush_deferred: FLUSH_DEAD, SCAN_ALL),
 * dead destinations are tried again too, not only deferred messages. */
size_t qmgr_flush_all(QMGR *q)
{
    size_t  n = q->n_state[QMGR_MSG_DEFERRED];

    q->now = qmgr_clock(q);
    qmgr_control_revive(q, NULL, NULL);
    qmgr_defer_scan(q, true);
    return n;
}

/* "example.com" matches "example.com", "[example.com]", "example.com:25",
 * "[example.com]:587", in any case. */
static bool qmgr_control_site_match(const char *nexthop, const char *site)
{
    size_t  len = strlen(site);
    const char *p = nexthop;

    if (*p == '[')
	p++;
    if (strncasecmp(p, site, len) != 0)
	return false;
    p += len;
    if (nexthop[0] == '[') {
	if (*p != ']')
	    return false;
	p++;
    }
    return *p == 0 || *p == ':';
}

size_t qmgr_flush_site(QMGR *q, const char *transport, const char *site)
{
    QMGR_MSG **hit;
    size_t  nhit = 0;

    q->now = qmgr_clock(q);
    qmgr_control_revive(q, transport, site);
    /* Collect first: moving a message changes the heap under us. */
    hit = mem_alloc((q->deferred.n + 1) * sizeof(*hit));
    for (size_t k = 0; k < q->deferred.n; k++) {
	QMGR_MSG *qm = QMGR_CONTAINER(q->deferred.v[k], QMGR_MSG, timer);

	for (size_t i = 0; i < qm->msg->nrcpt; i++) {
	    const RCPT *r = &qm->msg->rcpt[i];

	    if ((r->state == RCPT_PENDING || r->state == RCPT_DEFERRED)
		&& r->nexthop && qmgr_control_site_match(r->nexthop, site)
		&& (transport == NULL || (r->transport && strcmp(r->transport, transport) == 0))) {
		hit[nhit++] = qm;
		break;
	    }
	}
    }
    for (size_t k = 0; k < nhit; k++)
	qmgr_defer_leave(q, hit[k]);
    mem_free(hit);
    return nhit;
}

int qmgr_flush_message(QMGR *q, const char *queue_id)
{
    QMGR_MSG *qm = qmgr_message_find(q, queue_id);

    if (qm == NULL)
	return -1;
    if (qm->state == QMGR_MSG_DEFERRED)
	qmgr_defer_leave(q, qm);
    return 0;
}

int qmgr_hold(QMGR *q, const char *queue_id)
{
    QMGR_MSG *qm = qmgr_message_find(q, queue_id);

    if (qm == NULL)
	return -1;
    q->now = qmgr_clock(q);
    switch (qm->state) {
    case QMGR_MSG_INCOMING:
	qmgr_link_remove(&qm->link);
	qmgr_message_set_state(q, qm, QMGR_MSG_HOLD);
	break;
    case QMGR_MSG_DEFERRED:
	qmgr_heap_remove(&q->deferred, &qm->timer);
	qmgr_message_set_state(q, qm, QMGR_MSG_HOLD);
	break;
    case QMGR_MSG_ACTIVE:
	qm->flags |= QMGR_MSG_F_HOLD;
	qmgr_message_drop_todo(q, qm);
	qmgr_message_check_pass(q, qm);
	break;
    default:
	break;
    }
    return 0;
}

int qmgr_release(QMGR *q, const char *queue_id)
{
    QMGR_MSG *qm = qmgr_message_find(q, queue_id);

    if (qm == NULL)
	return -1;
    if (qm->state == QMGR_MSG_HOLD) {
	qmgr_message_set_state(q, qm, QMGR_MSG_INCOMING);
	qmgr_link_append(&q->incoming, &qm->link);
    } else if (qm->state == QMGR_MSG_ACTIVE) {
	qm->flags &= ~QMGR_MSG_F_HOLD;	/* hold asked, not yet effective */
    }
    return 0;
}

int qmgr_delete(QMGR *q, const char *queue_id)
{
    QMGR_MSG *qm = qmgr_message_find(q, queue_id);

    if (qm == NULL)
	return -1;
    q->now = qmgr_clock(q);
    qm->flags |= QMGR_MSG_F_DELETED;
    if (qm->state == QMGR_MSG_ACTIVE) {
	qmgr_message_drop_todo(q, qm);
	qmgr_message_check_pass(q, qm);	/* else when the last request is back */
    } else {
	qmgr_message_drop_all(q, qm);
	qmgr_message_done(q, qm);
    }
    return 0;
}

int qmgr_requeue(QMGR *q, const char *queue_id, const QMGR_ROUTE *routes, size_t n)
{
    QMGR_MSG *qm = qmgr_message_find(q, queue_id);

    if (qm == NULL || (qm->flags & QMGR_MSG_F_DELETED))
	return -1;
    /* An active message has entries queued per destination: changing its
     * routes under them would be wrong, so the operator retries later. */
    if (qm->state == QMGR_MSG_ACTIVE)
	return -2;
    for (size_t k = 0; k < n; k++) {
	RCPT   *r;

	if (routes[k].rcpt_index >= qm->msg->nrcpt)
	    continue;
	r = &qm->msg->rcpt[routes[k].rcpt_index];
	if (r->state != RCPT_PENDING && r->state != RCPT_DEFERRED)
	    continue;
	mem_free(r->transport);
	mem_free(r->nexthop);
	r->transport = mem_strdup(routes[k].transport);
	r->nexthop = mem_strdup(routes[k].nexthop);
	r->state = RCPT_PENDING;
	if (qm->extra && qm->extra->reason) {
	    mem_free(qm->extra->reason[routes[k].rcpt_index]);
	    qm->extra->reason[routes[k].rcpt_index] = NULL;
	}
    }
    q->now = qmgr_clock(q);
    if (qm->state == QMGR_MSG_DEFERRED)
	qmgr_defer_leave(q, qm);
    return 0;
}

/* ---- listings ---------------------------------------------------------- */

static void qmgr_control_info(QMGR_MSG *qm, QMGR_MSG_INFO *info)
{
    info->msg = qm->msg;
    info->state = (enum qmgr_msg_state) qm->state;
    info->size = qm->msg->content ? qm->msg->content->len : 0;
    info->next_retry_us = qm->state == QMGR_MSG_DEFERRED ? qm->timer.when / 1000 : 0;
    info->reason = (const char *const *) qmgr_msg_reasons(qm);
}

void qmgr_list(QMGR *q, qmgr_msg_fn fn, void *ctx)
{
    QMGR_MSG_INFO info;

    for (size_t i = 0; i < q->mcap; i++) {
	if (q->mslot[i] > 1) {		/* not empty, not deleted */
	    qmgr_control_info((QMGR_MSG *) (q->mslot[i] & ((((uintptr_t) 1) << 48) - 1)), &info);
	    fn(ctx, &info);
	}
    }
}

int qmgr_list_one(QMGR *q, const char *queue_id, qmgr_msg_fn fn, void *ctx)
{
    QMGR_MSG *qm = qmgr_message_find(q, queue_id);
    QMGR_MSG_INFO info;

    if (qm == NULL)
	return -1;
    qmgr_control_info(qm, &info);
    fn(ctx, &info);
    return 0;
}

void qmgr_list_dest(QMGR *q, qmgr_dest_fn fn, void *ctx)
{
    QMGR_LINK *l;

    for (l = q->transports.next; l != &q->transports; l = l->next) {
	QMGR_TRANSPORT *tp = QMGR_CONTAINER(l, QMGR_TRANSPORT, all_link);

	for (size_t i = 0; i < tp->cap; i++) {
	    QMGR_QUEUE *queue = tp->slot[i];
	    QMGR_DEST_INFO info;

	    if (queue == NULL)
		continue;
	    memset(&info, 0, sizeof(info));
	    info.transport = tp->name;
	    info.nexthop = queue->nexthop;
	    info.queued_rcpts = queue->todo_rcpts;
	    info.active_requests = (size_t) queue->busy;
	    info.window = queue->dead ? 0 : qmgr_queue_limit(queue);
	    info.limit = tp->cfg.dest_concurrency_limit;
	    info.rate = tp->cfg.dest_message_rate;
	    info.rate_delay_ns = tp->cfg.dest_rate_delay_ns;
	    info.dead = queue->dead;
	    info.dead_until_us = queue->dead ? queue->dead_until / 1000 : 0;
	    info.last_error = queue->last_error;
	    info.delivered = queue->delivered;
	    info.failed = queue->failed;
	    fn(ctx, &info);
	}
    }
}

void qmgr_stats(QMGR *q, QMGR_STATS *st)
{
    memset(st, 0, sizeof(*st));
    st->messages = q->mcount;
    st->incoming = q->n_state[QMGR_MSG_INCOMING];
    st->active = q->n_state[QMGR_MSG_ACTIVE];
    st->deferred = q->n_state[QMGR_MSG_DEFERRED];
    st->hold = q->n_state[QMGR_MSG_HOLD];
    st->active_rcpts = q->active_rcpts;
    st->destinations = q->nqueues;
    st->requests_out = q->requests_out;
    st->requests_dispatched = q->dispatched;
    st->requests_completed = q->completed;
}

void qmgr_control_run(QMGR *q, QMGR_CONTROL *ctl)
{
    switch (ctl->op) {
    case QMGR_CTL_FLUSH_ALL:
	ctl->result = (long) qmgr_flush_all(q);
	break;
    case QMGR_CTL_RECONFIGURE:
	qmgr_reconfigure(q);
	ctl->result = 0;
	break;
    case QMGR_CTL_FLUSH_SITE:
	ctl->result = ctl->site ? (long) qmgr_flush_site(q, ctl->transport, ctl->site) : -1;
	break;
    case QMGR_CTL_FLUSH_MESSAGE:
	ctl->result = ctl->queue_id ? qmgr_flush_message(q, ctl->queue_id) : -1;
	break;
    case QMGR_CTL_HOLD:
	ctl->result = ctl->queue_id ? qmgr_hold(q, ctl->queue_id) : -1;
	break;
    case QMGR_CTL_RELEASE:
	ctl->result = ctl->queue_id ? qmgr_release(q, ctl->queue_id) : -1;
	break;
    case QMGR_CTL_DELETE:
	ctl->result = ctl->queue_id ? qmgr_delete(q, ctl->queue_id) : -1;
	break;
    case QMGR_CTL_LIST:
	if (ctl->list_fn == NULL)
	    ctl->result = -1;
	else if (ctl->queue_id)
	    ctl->result = qmgr_list_one(q, ctl->queue_id, ctl->list_fn, ctl->list_ctx);
	else {
	    qmgr_list(q, ctl->list_fn, ctl->list_ctx);
	    ctl->result = 0;
	}
	break;
    case QMGR_CTL_LIST_DEST:
	if (ctl->dest_fn)
	    qmgr_list_dest(q, ctl->dest_fn, ctl->list_ctx);
	ctl->result = ctl->dest_fn ? 0 : -1;
	break;
    case QMGR_CTL_STATS:
	qmgr_stats(q, &ctl->stats);
	ctl->result = 0;
	break;
    case QMGR_CTL_REQUEUE:
	ctl->result = ctl->queue_id ? qmgr_requeue(q, ctl->queue_id, ctl->routes, ctl->nroutes) : -1;
	break;
    default:
	ctl->result = -1;
	break;
    }
}
