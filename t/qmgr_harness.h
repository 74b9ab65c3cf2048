/*
 * qmgr_harness.h - a queue manager with a fake clock, recording hooks and a
 * scriptable delivery agent, for the qmgr tests (header-only, one user per
 * program).
 *
 * The agent keeps every request it is given in h->out until the test
 * completes it (h_complete*), or, in instant mode, answers at once through
 * h->answer (called inline from dispatch, done() pushes to the inbox as a
 * real agent would).
 */
#ifndef SLUICE_QMGR_HARNESS_H
#define SLUICE_QMGR_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/timeutil.h"
#include "queue/message.h"
#include "queue/qmgr.h"

#define H_SEC		1000000000LL
#define H_EPOCH		(1700000000LL * H_SEC)	/* a wall-clock-like start */

typedef struct H H;
typedef void (*h_answer_fn)(H *h, DELIVERY_REQUEST *req);

typedef struct H_OUTCOME {
    char    id[QUEUE_ID_MAX];
    size_t  idx;
    enum rcpt_state state;
    char    dsn[16];
    char    reason[200];
    int64_t next_retry_us;
} H_OUTCOME;

struct H {
    QMGR   *q;
    QMGR_CONFIG cfg;
    int64_t now;
    /* the agent */
    DELIVERY_REQUEST **out;
    size_t  nout;
    size_t  capout;
    h_answer_fn answer;		/* instant mode when set */
    size_t  dispatched;
    /* hooks */
    H_OUTCOME *oc;
    size_t  noc;
    size_t  capoc;
    size_t  count[5];		/* by enum rcpt_state */
    size_t  done_msgs;
    size_t  notify_count[4];	/* by enum qmgr_notify */
    size_t  notify_rcpts[4];
    char    notify_dsn[4][16];	/* of the last recipient notified */
    char    notify_reason[4][128];
    bool    keep_outcomes;
    int     msg_seq;
};

static int64_t h_clock(void *ctx)
{
    return ((H *) ctx)->now;
}

static void h_dispatch(void *ctx, DELIVERY_REQUEST *req)
{
    H      *h = ctx;

    h->dispatched++;
    if (h->answer) {
	h->answer(h, req);
	return;
    }
    if (h->nout == h->capout) {
	h->capout = h->capout ? 2 * h->capout : 64;
	h->out = realloc(h->out, h->capout * sizeof(*h->out));
    }
    h->out[h->nout++] = req;
}

static void h_outcome(void *ctx, const MESSAGE *msg, size_t idx, enum rcpt_state st,
		      const char *dsn, const char *reason, int64_t next_retry_us)
{
    H      *h = ctx;

    h->count[st]++;
    if (!h->keep_outcomes)
	return;
    if (h->noc == h->capoc) {
	h->capoc = h->capoc ? 2 * h->capoc : 256;
	h->oc = realloc(h->oc, h->capoc * sizeof(*h->oc));
    }
    H_OUTCOME *o = &h->oc[h->noc++];

    snprintf(o->id, sizeof(o->id), "%s", msg->queue_id);
    o->idx = idx;
    o->state = st;
    snprintf(o->dsn, sizeof(o->dsn), "%s", dsn);
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
    o->next_retry_us = next_retry_us;
}

static void h_message_done(void *ctx, MESSAGE *msg)
{
    H      *h = ctx;

    h->done_msgs++;
    message_free(msg);
}

static void h_notify(void *ctx, const MESSAGE *msg, enum qmgr_notify kind,
		     const QMGR_NOTIFY_RCPT *rcpt, size_t n)
{
    H      *h = ctx;

    (void) msg;
    (void) rcpt;
    h->notify_count[kind]++;
    h->notify_rcpts[kind] += n;
    if (n) {
	snprintf(h->notify_dsn[kind], sizeof(h->notify_dsn[kind]), "%s", rcpt[n - 1].dsn);
	snprintf(h->notify_reason[kind], sizeof(h->notify_reason[kind]), "%s",
		 rcpt[n - 1].reason);
    }
}

static void h_transport_config(void *ctx, const char *name, QMGR_TRANSPORT_CONFIG *tc)
{
    H      *h = ctx;

    if (strcmp(name, "broken") == 0)
	return;				/* no dispatch: transport unavailable */
    tc->dispatch = h_dispatch;
    tc->agent_ctx = h;
}

/* cfg_fn may change h->cfg before the QMGR is created. */
static H *h_new(void (*cfg_fn)(QMGR_CONFIG *))
{
    H      *h = calloc(1, sizeof(*h));

    h->now = H_EPOCH;
    h->keep_outcomes = true;
    qmgr_config_defaults(&h->cfg);
    h->cfg.clock = h_clock;
    h->cfg.clock_ctx = h;
    h->cfg.seed = 42;
    h->cfg.transport_config = h_transport_config;
    h->cfg.transport_config_ctx = h;
    h->cfg.hooks.ctx = h;
    h->cfg.hooks.outcome = h_outcome;
    h->cfg.hooks.message_done = h_message_done;
    h->cfg.hooks.notify = h_notify;
    if (cfg_fn)
	cfg_fn(&h->cfg);
    h->q = qmgr_create(&h->cfg);
    return h;
}

static void h_free(H *h)
{
    /* Agents finish what they hold before qmgr goes away. */
    qmgr_run(h->q);
    for (int i = 0; i < 1000 && h->nout; i++) {
	for (size_t k = 0; k < h->nout; k++)
	    h->out[k]->done(h->out[k]);
	h->nout = 0;
	qmgr_run(h->q);
    }
    qmgr_free(h->q);
    free(h->out);
    free(h->oc);
    free(h);
}

/* A message from sender with n recipients r<i>@<nexthop-of-i>. */
static MESSAGE *h_msg_multi(H *h, const char *sender, size_t n,
			    const char *(*nexthop_of)(size_t i, void *), void *arg)
{
    MESSAGE *m = message_new();
    char    addr[128];

    snprintf(m->queue_id, sizeof(m->queue_id), "Q%08d", ++h->msg_seq);
    m->arrival_us = h->now / 1000;
    mem_free(m->sender);
    m->sender = mem_strdup(sender);
    for (size_t i = 0; i < n; i++) {
	const char *nh = nexthop_of(i, arg);
	RCPT   *r;

	snprintf(addr, sizeof(addr), "r%zu@%s", i, nh);
	r = message_add_rcpt(m, addr, NULL);
	r->transport = mem_strdup("smtp");
	r->nexthop = mem_strdup(nh);
    }
    return m;
}

static const char *h_same_nexthop(size_t i, void *arg)
{
    (void) i;
    return arg;
}

static MESSAGE *h_msg(H *h, const char *nexthop, size_t nrcpt)
{
    return h_msg_multi(h, "sender@example.org", nrcpt, h_same_nexthop, (void *) nexthop);
}

static MESSAGE *h_enqueue(H *h, const char *nexthop, size_t nrcpt)
{
    MESSAGE *m = h_msg(h, nexthop, nrcpt);

    if (qmgr_enqueue(h->q, m, 0, 0) != 0)
	abort();
    return m;
}

static void h_run(H *h)
{
    qmgr_run(h->q);
}

static size_t h_out_to(H *h, const char *nexthop)
{
    size_t  n = 0;

    for (size_t i = 0; i < h->nout; i++)
	if (nexthop == NULL || strcmp(h->out[i]->nexthop, nexthop) == 0)
	    n++;
    return n;
}

static void h_answer_req(DELIVERY_REQUEST *req, enum delivery_status st, bool site_failed,
			 const char *reason)
{
    req->site_failed = site_failed;
    snprintf(req->relay, sizeof(req->relay), "%s", site_failed ? "none" : "mx[192.0.2.1]:25");
    for (size_t k = 0; k < req->nrcpt; k++) {
	req->rcpt[k].status = st;
	snprintf(req->rcpt[k].dsn, sizeof(req->rcpt[k].dsn), "%s",
		 st == DELIVERY_SENT ? "2.0.0" : st == DELIVERY_DEFER ? "4.4.1" : "5.1.1");
	req->rcpt[k].reason = mem_strdup(reason ? reason : "ok");
    }
    req->done(req);
}

/* Completes up to max outstanding requests to nexthop (NULL: any). */
static size_t h_complete(H *h, const char *nexthop, size_t max, enum delivery_status st,
			 bool site_failed, const char *reason)
{
    size_t  done = 0;
    size_t  j = 0;

    for (size_t i = 0; i < h->nout; i++) {
	DELIVERY_REQUEST *req = h->out[i];

	if (done < max && (nexthop == NULL || strcmp(req->nexthop, nexthop) == 0)) {
	    h_answer_req(req, st, site_failed, reason);
	    done++;
	} else {
	    h->out[j++] = req;
	}
    }
    h->nout = j;
    return done;
}

static size_t h_complete_all(H *h, enum delivery_status st)
{
    return h_complete(h, NULL, SIZE_MAX, st, false, NULL);
}

static const QMGR_DEST_INFO *h_dest_found;
static QMGR_DEST_INFO h_dest_copy;
static const char *h_dest_want;

static void h_dest_cb(void *ctx, const QMGR_DEST_INFO *info)
{
    (void) ctx;
    if (strcmp(info->nexthop, h_dest_want) == 0) {
	h_dest_copy = *info;
	h_dest_found = &h_dest_copy;
    }
}

static const QMGR_DEST_INFO *h_dest(H *h, const char *nexthop)
{
    h_dest_found = NULL;
    h_dest_want = nexthop;
    qmgr_list_dest(h->q, h_dest_cb, NULL);
    return h_dest_found;
}

static enum qmgr_msg_state h_state_val;
static void h_state_cb(void *ctx, const QMGR_MSG_INFO *info)
{
    (void) ctx;
    h_state_val = info->state;
}

static int h_state(H *h, const char *id)
{
    if (qmgr_list_one(h->q, id, h_state_cb, NULL) < 0)
	return -1;
    return (int) h_state_val;
}

#endif
