/*
 * bench/qmgr.c - the queue manager alone, in process: how many deliveries it
 * schedules per second and how much memory a queued recipient costs.
 *
 * Null delivery agents answer "sent" inline: dispatch fills the outcomes and
 * calls req->done(req), which goes through qmgr's inbox exactly as a real
 * agent's completion would. Everything runs on one thread, so the figures
 * are per core. Messages are built before the clock starts and handed back
 * (message_done) into a list freed after it stops: the figures are the
 * scheduler's (admission, grouping, round robin, dispatch, completion,
 * outcome hooks, pass end), not the allocator's work on message objects.
 *
 * Usage: bench/qmgr [-n recipients] [-q]   (-q: only the 1M memory run)
 * The mailing rows: one relay, a mailing of n/2 recipients then n/2
 * one-recipient messages, one recipient per request (preemption at work,
 * and with delivery_slot_cost 0, first come first served).
 * Memory is read from jemalloc's "stats.allocated" (after "epoch").
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/timeutil.h"
#include "queue/qmgr.h"

typedef struct B {
    MESSAGE **done;
    size_t  ndone;
    size_t  sent;
    size_t  requests;
    bool    hold;		/* agent keeps requests (memory run) */
    int     rcpt_limit;		/* dest_recipient_limit; 0: default */
    size_t  first_single;	/* requests before the first 1-recipient
				 * message went out (mailing run) */
    DELIVERY_REQUEST **held;
    size_t  nheld;
} B;

static void b_dispatch(void *ctx, DELIVERY_REQUEST *req)
{
    B      *b = ctx;

    if (req->msg->nrcpt == 1 && b->first_single == SIZE_MAX)
	b->first_single = b->requests;
    b->requests++;
    if (b->hold) {
	b->held[b->nheld++] = req;
	return;
    }
    for (size_t k = 0; k < req->nrcpt; k++)
	req->rcpt[k].status = DELIVERY_SENT;	/* dsn "" -> 2.0.0, no reason */
    req->done(req);
}

static void b_transport(void *ctx, const char *name, QMGR_TRANSPORT_CONFIG *tc)
{
    B      *b = ctx;

    (void) name;
    if (b->rcpt_limit)
	tc->dest_recipient_limit = b->rcpt_limit;
    tc->dispatch = b_dispatch;
    tc->agent_ctx = ctx;
}

static void b_outcome(void *ctx, const MESSAGE *msg, size_t idx, enum rcpt_state st,
		      const char *dsn, const char *reason, int64_t next)
{
    B      *b = ctx;

    (void) msg, (void) idx, (void) dsn, (void) reason, (void) next;
    b->sent += st == RCPT_SENT;
}

static void b_message_done(void *ctx, MESSAGE *msg)
{
    B      *b = ctx;

    b->done[b->ndone++] = msg;
}

static size_t b_allocated(void)
{
#ifdef HAVE_JEMALLOC
    uint64_t epoch = 1;
    size_t  sz = sizeof(epoch);
    size_t  allocated = 0;

    mallctl("epoch", &epoch, &sz, &epoch, sz);
    sz = sizeof(allocated);
    mallctl("stats.allocated", &allocated, &sz, NULL, 0);
    return allocated;
#else
    return 0;
#endif
}

static size_t b_usable(void *p)
{
#ifdef HAVE_JEMALLOC
    return malloc_usable_size(p);
#else
    return strlen(p) + 1;
#endif
}

static double b_cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* nmsg messages of nrcpt recipients spread over ndest destinations; address
 * bytes (allocator sizes) added to *addr_bytes. */
static MESSAGE **b_build(size_t nmsg, size_t nrcpt, size_t ndest, size_t *addr_bytes)
{
    MESSAGE **v = malloc(nmsg * sizeof(*v));
    size_t  d = 0;
    char    addr[64], nh[32];

    for (size_t i = 0; i < nmsg; i++) {
	MESSAGE *m = message_new();

	snprintf(m->queue_id, sizeof(m->queue_id), "B%010zu", i);
	m->arrival_us = time_real_us();
	mem_free(m->sender);
	m->sender = mem_strdup("bulk@sender.example");
	for (size_t k = 0; k < nrcpt; k++) {
	    RCPT   *r;

	    snprintf(nh, sizeof(nh), "d%zu.example", d);
	    d = (d + 1) % ndest;
	    snprintf(addr, sizeof(addr), "user%zu@%s", i * nrcpt + k, nh);
	    r = message_add_rcpt(m, addr, NULL);
	    r->transport = mem_strdup("smtp");
	    r->nexthop = mem_strdup(nh);
	    if (addr_bytes)
		*addr_bytes += b_usable(r->address);
	}
	v[i] = m;
    }
    return v;
}

static QMGR *b_qmgr(B *b, size_t limit, int cost)
{
    QMGR_CONFIG cfg;

    qmgr_config_defaults(&cfg);
    if (cost >= 0)
	cfg.transport_defaults.delivery_slot_cost = cost;
    cfg.transport_config = b_transport;
    cfg.transport_config_ctx = b;
    cfg.hooks.ctx = b;
    cfg.hooks.outcome = b_outcome;
    cfg.hooks.message_done = b_message_done;
    if (limit) {
	cfg.message_active_limit = limit;
	cfg.message_recipient_limit = limit;
    }
    return qmgr_create(&cfg);
}

static void b_throughput(size_t total_rcpt, size_t ndest, size_t nrcpt, size_t limit)
{
    size_t  nmsg = total_rcpt / nrcpt;
    MESSAGE **msgs = b_build(nmsg, nrcpt, ndest, NULL);
    B       b = {0};
    QMGR   *q;
    int64_t t0, t1, t2;
    double  c0, c2;

    b.done = malloc(nmsg * sizeof(*b.done));
    q = b_qmgr(&b, limit, -1);
    t0 = time_mono_ns();
    c0 = b_cpu();
    for (size_t i = 0; i < nmsg; i++)
	qmgr_enqueue(q, msgs[i], 0, 0);
    t1 = time_mono_ns();
    while (b.ndone < nmsg)
	qmgr_run(q);
    t2 = time_mono_ns();
    c2 = b_cpu();
    if (b.sent != nmsg * nrcpt)
	fprintf(stderr, "bench: sent %zu of %zu\n", b.sent, nmsg * nrcpt);
    printf("| %6zu | %3zu | %9zu | %8zu | %6.3f | %10.0f | %10.0f | %s |\n",
	   ndest, nrcpt, nmsg * nrcpt, b.requests, (double) (t2 - t0) / 1e9,
	   (double) b.requests / ((double) (t2 - t0) / 1e9),
	   (double) b.requests / (c2 - c0),
	   limit ? "all active" : "default limits (20000)");
    (void) t1;
    qmgr_free(q);
    for (size_t i = 0; i < b.ndone; i++)
	message_free(b.done[i]);
    free(b.done);
    free(msgs);
}

/*
 * The preemptive scheduler at work: one destination (a relay), a mailing of
 * total/2 recipients queued first, then total/2 one-recipient messages;
 * one recipient per request, so every request of the mailing is a delivery
 * slot and the candidate search runs all the time. cost 0 = FIFO.
 */
static void b_mailing(size_t total, int cost)
{
    size_t  nsingle = total / 2;
    MESSAGE **mv = b_build(1, total - nsingle, 1, NULL);
    MESSAGE *mailing = mv[0];
    MESSAGE **singles = b_build(nsingle, 1, 1, NULL);
    B       b = {0};
    QMGR   *q;
    int64_t t0, t1;
    double  c0, c1;

    b.done = malloc((nsingle + 1) * sizeof(*b.done));
    b.rcpt_limit = 1;
    b.first_single = SIZE_MAX;
    snprintf(mailing->queue_id, sizeof(mailing->queue_id), "MAILING");
    q = b_qmgr(&b, 0, cost);
    t0 = time_mono_ns();
    c0 = b_cpu();
    qmgr_enqueue(q, mailing, 0, 0);
    for (size_t i = 0; i < nsingle; i++)
	qmgr_enqueue(q, singles[i], 0, 0);
    while (b.ndone < nsingle + 1)
	qmgr_run(q);
    t1 = time_mono_ns();
    c1 = b_cpu();
    printf("| %d | %9zu | %8zu | %6.3f | %10.0f | %10.0f | %zu |\n", cost, total, b.requests,
	   (double) (t1 - t0) / 1e9, (double) b.requests / ((double) (t1 - t0) / 1e9),
	   (double) b.requests / (c1 - c0), b.first_single);
    qmgr_free(q);
    for (size_t i = 0; i < b.ndone; i++)
	message_free(b.done[i]);
    free(b.done);
    free(singles);
    free(mv);
}

static void b_memory(size_t total_rcpt, size_t nrcpt)
{
    size_t  nmsg = total_rcpt / nrcpt;
    size_t  addr = 0;
    size_t  m0, m1, m2;
    MESSAGE **msgs;
    B       b = {0};
    QMGR   *q;
    int64_t t0, t1;

    m0 = b_allocated();
    msgs = b_build(nmsg, nrcpt, 10000, &addr);
    m1 = b_allocated();
    b.done = malloc(nmsg * sizeof(*b.done));
    b.held = malloc(nmsg * nrcpt * sizeof(*b.held));
    b.hold = true;
    q = b_qmgr(&b, 2 * total_rcpt, -1);
    for (size_t i = 0; i < nmsg; i++)
	qmgr_enqueue(q, msgs[i], 0, 0);
    qmgr_run(q);			/* all admitted into 10 000 queues */
    m2 = b_allocated();
    {
	double  msg_per = (double) (m1 - m0 - addr) / (double) total_rcpt;
	double  q_per = (double) (m2 - m1) / (double) total_rcpt;

	printf("| %3zu | %9zu | %6.1f | %6.1f | %6.1f | %5.1f |\n", nrcpt, total_rcpt,
	       msg_per, q_per, msg_per + q_per, (double) addr / (double) total_rcpt);
    }
    /* Then deliver the million (agents answer what they held, then inline). */
    t0 = time_mono_ns();
    b.hold = false;
    for (size_t i = 0; i < b.nheld; i++) {
	for (size_t k = 0; k < b.held[i]->nrcpt; k++)
	    b.held[i]->rcpt[k].status = DELIVERY_SENT;
	b.held[i]->done(b.held[i]);
    }
    while (b.ndone < nmsg)
	qmgr_run(q);
    t1 = time_mono_ns();
    fprintf(stderr, "  1M queued, %zu rcpt/msg: drained %zu requests in %.3f s (%.0f/s)\n",
	    nrcpt, b.requests, (double) (t1 - t0) / 1e9,
	    (double) b.requests / ((double) (t1 - t0) / 1e9));
    qmgr_free(q);
    for (size_t i = 0; i < b.ndone; i++)
	message_free(b.done[i]);
    free(b.done);
    free(b.held);
    free(msgs);
}

/* The scheduler's own log lines (queue active, qmgr decisions) would
 * measure stderr, not the scheduler: the engine logs through a writer thread. */
static void bench_log_discard(enum msg_level level, const char *service, const char *text)
{
    if (level >= MSG_WARN)
	msg_sink_stderr(level, service, text);
}

int main(int argc, char **argv)
{
    size_t  total = 1000000;
    bool    memonly = false;
    int     c;

    msg_sink_set(bench_log_discard);

    while ((c = getopt(argc, argv, "n:q")) != -1) {
	if (c == 'n')
	    total = (size_t) strtoull(optarg, NULL, 10);
	else if (c == 'q')
	    memonly = true;
	else {
	    fprintf(stderr, "usage: %s [-n recipients] [-q]\n", argv[0]);
	    return 2;
	}
    }
    if (total < 10)
	total = 10;
    if (!memonly) {
	printf("| dests | rcpt/msg | recipients | requests | seconds | requests/s (wall) | requests/s (CPU) | active set |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---|\n");
	for (size_t r = 1; r <= 10; r += 9)
	    for (size_t d = 1; d <= 10000; d *= 100)
		b_throughput(total, d, r, 0);
	b_throughput(total, 10000, 1, 2 * total);
	b_throughput(total, 10000, 10, 2 * total);
	printf("\n");
	printf("| delivery_slot_cost | recipients | requests | seconds | requests/s (wall) | requests/s (CPU) | first single-recipient message after |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|\n");
	b_mailing(total, 5);
	b_mailing(total, 0);
	printf("\n");
    }
    printf("| rcpt/msg | queued recipients | message objects B/rcpt | scheduler B/rcpt | total B/rcpt (without address) | address B/rcpt |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    b_memory(1000000, 1);
    b_memory(1000000, 10);
    return 0;
}
