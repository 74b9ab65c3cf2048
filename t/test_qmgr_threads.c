/*
 * test_qmgr_threads.c - the queue manager's cross-thread paths under real
 * threads: messages submitted from a producer thread, requests completed by
 * a pool of agent threads (done() from any thread), a control request from
 * another thread, while the qmgr thread sleeps in qmgr_wait(). Built with
 * mini_criterion for ThreadSanitizer (`make check-tsan`), and runs in the
 * normal suite too.
 */
#include "config.h"

#ifdef SLUICE_MINI_CRITERION
#include "t/mini_criterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/timeutil.h"
#include "queue/qmgr.h"

#define T_MSGS		3000
#define T_AGENTS	4

typedef struct T_AGENT_POOL {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    DELIVERY_REQUEST **v;
    size_t  n, cap;
    bool    stop;
} T_AGENT_POOL;

typedef struct T_CTX {
    QMGR   *q;
    T_AGENT_POOL pool;
    size_t  done_msgs;		/* qmgr thread only */
    size_t  sent;		/* qmgr thread only */
    int     ctl_done;		/* atomic */
} T_CTX;

static void t_dispatch(void *ctx, DELIVERY_REQUEST *req)
{
    T_AGENT_POOL *p = ctx;

    pthread_mutex_lock(&p->lock);
    if (p->n == p->cap) {
	p->cap = p->cap ? 2 * p->cap : 256;
	p->v = realloc(p->v, p->cap * sizeof(*p->v));
    }
    p->v[p->n++] = req;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void *t_agent(void *arg)
{
    T_AGENT_POOL *p = arg;

    for (;;) {
	DELIVERY_REQUEST *req;

	pthread_mutex_lock(&p->lock);
	while (p->n == 0 && !p->stop)
	    pthread_cond_wait(&p->cond, &p->lock);
	if (p->n == 0) {
	    pthread_mutex_unlock(&p->lock);
	    return NULL;
	}
	req = p->v[--p->n];
	pthread_mutex_unlock(&p->lock);
	/* The message is readable by the agent until done(). */
	for (size_t k = 0; k < req->nrcpt; k++) {
	    const RCPT *r = &req->msg->rcpt[req->rcpt[k].index];

	    req->rcpt[k].status = strncmp(r->address, "x", 1) == 0 ? DELIVERY_BOUNCE : DELIVERY_SENT;
	    req->rcpt[k].reason = mem_strdup("250 ok");
	}
	snprintf(req->relay, sizeof(req->relay), "%s[127.0.0.1]:25", req->nexthop);
	req->done(req);
    }
}

static void t_transport_config(void *ctx, const char *name, QMGR_TRANSPORT_CONFIG *tc)
{
    (void) name;
    tc->dispatch = t_dispatch;
    tc->agent_ctx = ctx;
}

static void t_outcome(void *ctx, const MESSAGE *msg, size_t idx, enum rcpt_state st,
		      const char *dsn, const char *reason, int64_t next)
{
    T_CTX  *t = ctx;

    (void) msg, (void) idx, (void) dsn, (void) reason, (void) next;
    if (st == RCPT_SENT)
	t->sent++;
}

static void t_message_done(void *ctx, MESSAGE *msg)
{
    T_CTX  *t = ctx;

    t->done_msgs++;
    message_free(msg);
}

static void *t_producer(void *arg)
{
    T_CTX  *t = arg;

    for (int i = 0; i < T_MSGS; i++) {
	MESSAGE *m = message_new();
	char    addr[64], nh[32];

	snprintf(m->queue_id, sizeof(m->queue_id), "T%06d", i);
	m->arrival_us = time_real_us();
	for (int k = 0; k < 3; k++) {
	    RCPT   *r;

	    snprintf(nh, sizeof(nh), "d%d.example", (i + k) % 37);
	    snprintf(addr, sizeof(addr), "u%d@%s", k, nh);
	    r = message_add_rcpt(m, addr, NULL);
	    r->transport = mem_strdup(k == 2 ? "relay" : "smtp");
	    r->nexthop = mem_strdup(nh);
	}
	qmgr_submit(t->q, m, 0, 0);
    }
    return NULL;
}

static void t_ctl_done(QMGR_CONTROL *ctl)
{
    T_CTX  *t = ctl->ctx;

    __atomic_store_n(&t->ctl_done, 1, __ATOMIC_RELEASE);
}

static void *t_controller(void *arg)
{
    T_CTX  *t = arg;
    QMGR_CONTROL ctl;

    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_STATS;
    ctl.done = t_ctl_done;
    ctl.ctx = t;
    qmgr_control(t->q, &ctl);
    while (!__atomic_load_n(&t->ctl_done, __ATOMIC_ACQUIRE))
	sched_yield();
    return (void *) (uintptr_t) (ctl.result == 0);
}

Test(qmgr_threads, completions_and_submissions_from_other_threads)
{
    T_CTX   t;
    QMGR_CONFIG cfg;
    pthread_t agents[T_AGENTS], producer, controller;
    void   *ok;
    int64_t deadline = time_mono_ns() + 60 * TIME_NS_PER_SEC;

    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.pool.lock, NULL);
    pthread_cond_init(&t.pool.cond, NULL);
    qmgr_config_defaults(&cfg);
    cfg.transport_config = t_transport_config;
    cfg.transport_config_ctx = &t.pool;
    cfg.hooks.ctx = &t;
    cfg.hooks.outcome = t_outcome;
    cfg.hooks.message_done = t_message_done;
    cfg.message_active_limit = 500;	/* exercise admission limits too */
    t.q = qmgr_create(&cfg);
    for (int i = 0; i < T_AGENTS; i++)
	pthread_create(&agents[i], NULL, t_agent, &t.pool);
    pthread_create(&producer, NULL, t_producer, &t);
    pthread_create(&controller, NULL, t_controller, &t);
    while (t.done_msgs < T_MSGS && time_mono_ns() < deadline) {
	int64_t next = qmgr_run(t.q);
	int64_t cap = qmgr_now(t.q) + 10000000;	/* 10 ms */

	qmgr_wait(t.q, next < cap ? next : cap);
    }
    /* The controller's request was served by qmgr_run on this thread. */
    while (!__atomic_load_n(&t.ctl_done, __ATOMIC_ACQUIRE) && time_mono_ns() < deadline)
	qmgr_wait(t.q, qmgr_run(t.q));
    pthread_join(producer, NULL);
    pthread_join(controller, &ok);
    pthread_mutex_lock(&t.pool.lock);
    t.pool.stop = true;
    pthread_cond_broadcast(&t.pool.cond);
    pthread_mutex_unlock(&t.pool.lock);
    for (int i = 0; i < T_AGENTS; i++)
	pthread_join(agents[i], NULL);
    cr_assert_eq(t.done_msgs, T_MSGS);
    cr_assert_eq(t.sent, 3 * T_MSGS);
    cr_assert(ok != NULL);
    qmgr_free(t.q);
    free(t.pool.v);
    pthread_mutex_destroy(&t.pool.lock);
    pthread_cond_destroy(&t.pool.cond);
}
