/*
 * test_stage.c - the stage runtime: nothing lost, nothing duplicated, no
 * missed wake-up, back-pressure bounds the in-flight count.
 *
 * SLUICE_STRESS_EVENTS scales the stress test (TSan builds use fewer).
 */
#include "config.h"

#ifdef SLUICE_MINI_CRITERION
#include "t/mini_criterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <pthread.h>
#include <poll.h>
#include <stdlib.h>

#include "engine/mem.h"
#include "engine/stage.h"
#include "engine/timeutil.h"

typedef struct TEST_EVENT {
    STAGE_EVENT ev;
    size_t  id;
} TEST_EVENT;

typedef struct TEST_CTX {
    uint32_t *seen;
    uint64_t handled;
    uint64_t max_inflight;
    STAGE  *stage;
} TEST_CTX;

static void test_handler(STAGE *stage, void *ctx, STAGE_EVENT **events, size_t n)
{
    TEST_CTX *t = ctx;
    STAGE_STATS st;

    stage_stats(stage, &st);
    if (st.inflight > __atomic_load_n(&t->max_inflight, __ATOMIC_RELAXED))
	__atomic_store_n(&t->max_inflight, st.inflight, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++) {
	TEST_EVENT *e = (TEST_EVENT *) events[i];

	__atomic_add_fetch(&t->seen[e->id], 1, __ATOMIC_RELAXED);
    }
    __atomic_add_fetch(&t->handled, n, __ATOMIC_RELEASE);
    stage_finished(stage, n);
}

typedef struct PRODUCER {
    STAGE  *stage;
    TEST_EVENT *events;
    size_t  first, count;
    int     use_room;
} PRODUCER;

static void *producer_main(void *arg)
{
    PRODUCER *p = arg;

    for (size_t i = 0; i < p->count; i++) {
	if (p->use_room)
	    stage_wait_room(p->stage);
	p->events[p->first + i].id = p->first + i;
	stage_post(p->stage, &p->events[p->first + i].ev);
    }
    return NULL;
}

static size_t stress_events(void)
{
    const char *s = getenv("SLUICE_STRESS_EVENTS");

    return s ? strtoul(s, NULL, 10) : 2000000;
}

static void run_stress(int producers, int consumers, uint64_t limit)
{
    size_t total = stress_events() / (size_t) producers * (size_t) producers;
    TEST_EVENT *events = mem_calloc(total, sizeof(*events));
    TEST_CTX ctx = {.seen = mem_calloc(total, sizeof(uint32_t))};
    STAGE_OPTS opts = {.name = "stress", .threads = consumers, .handler = test_handler,
	.ctx = &ctx, .inflight_limit = limit, .batch_max = 64};
    STAGE *stage = stage_create(&opts);
    pthread_t tid[64];
    PRODUCER prod[64];

    stage_start(stage);
    for (int i = 0; i < producers; i++) {
	prod[i] = (PRODUCER) {stage, events, total / (size_t) producers * (size_t) i,
	    total / (size_t) producers, limit != 0};
	cr_assert_eq(pthread_create(&tid[i], NULL, producer_main, &prod[i]), 0);
    }
    for (int i = 0; i < producers; i++)
	pthread_join(tid[i], NULL);
    /* Await the consumers (bounded), then stop. */
    int64_t deadline = time_mono_ns() + 60 * TIME_NS_PER_SEC;
    while (__atomic_load_n(&ctx.handled, __ATOMIC_ACQUIRE) < total && time_mono_ns() < deadline)
	poll(NULL, 0, 1);
    stage_stop(stage);

    cr_assert_eq(ctx.handled, total, "handled %llu of %zu",
		 (unsigned long long) ctx.handled, total);
    for (size_t i = 0; i < total; i++)
	cr_assert_eq(ctx.seen[i], 1, "event %zu seen %u times", i, ctx.seen[i]);
    if (limit) {
	/* Producers may overshoot the bound by one event each (check-then-post). */
	cr_assert_leq(ctx.max_inflight, limit + (uint64_t) producers,
		      "in flight %llu > limit %llu", (unsigned long long) ctx.max_inflight,
		      (unsigned long long) limit);
    }
    STAGE_STATS st;
    stage_stats(stage, &st);
    cr_assert_eq(st.events_in, total);
    cr_assert_eq(st.events_out, total);
    cr_assert_eq(st.inflight, 0);
    stage_free(stage);
    mem_free(ctx.seen);
    mem_free(events);
}

Test(stage, many_producers_many_consumers, .timeout = 120)
{
    run_stress(8, 4, 0);
}

Test(stage, one_producer_one_consumer, .timeout = 120)
{
    run_stress(1, 1, 0);
}

Test(stage, backpressure_bounds_inflight, .timeout = 120)
{
    run_stress(4, 2, 1000);
}

/* A consumer that sleeps between bursts must wake for every burst. */
Test(stage, no_missed_wakeup, .timeout = 60)
{
    enum { ROUNDS = 20000 };
    TEST_EVENT *events = mem_calloc(ROUNDS, sizeof(*events));
    TEST_CTX ctx = {.seen = mem_calloc(ROUNDS, sizeof(uint32_t))};
    STAGE_OPTS opts = {.name = "wake", .threads = 2, .handler = test_handler, .ctx = &ctx};
    STAGE *stage = stage_create(&opts);

    stage_start(stage);
    for (size_t i = 0; i < ROUNDS; i++) {
	events[i].id = i;
	stage_post(stage, &events[i].ev);
	/* Wait until handled so the consumer goes back to sleep each time. */
	int64_t deadline = time_mono_ns() + 5 * TIME_NS_PER_SEC;
	while (__atomic_load_n(&ctx.handled, __ATOMIC_ACQUIRE) <= i) {
	    cr_assert_lt(time_mono_ns(), deadline, "event %zu never handled: lost wake-up", i);
	    sched_yield();
	}
    }
    stage_free(stage);
    mem_free(ctx.seen);
    mem_free(events);
}

/* Eventfd mode: the fd becomes readable when the queue goes non-empty. */
Test(squeue, eventfd_signals_nonempty)
{
    SQUEUE q;
    TEST_EVENT e[3];
    SQUEUE_BATCH b;
    struct pollfd pfd;
    size_t n = 0;

    squeue_init(&q, SQUEUE_WAKE_EVENTFD);
    pfd = (struct pollfd) {.fd = squeue_fd(&q), .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 0), 0);
    for (int i = 0; i < 3; i++)
	squeue_push(&q, &e[i].ev.node);
    cr_assert_eq(poll(&pfd, 1, 0), 1);
    squeue_fd_drain(&q);
    cr_assert(squeue_take(&q, &b));
    while (squeue_batch_next(&b))
	n++;
    cr_assert_eq(n, 3);
    cr_assert_eq(poll(&pfd, 1, 0), 0);
    cr_assert_not(squeue_take(&q, &b));
    squeue_destroy(&q);
}

/* Stopping idle workers: a stop that races with a worker going to sleep must
 * still wake it (a lost wake-up here hangs the engine's shutdown). */
Test(stage, stop_never_hangs, .timeout = 120)
{
    TEST_CTX ctx = {.seen = NULL};
    STAGE_OPTS opts = {.name = "stop", .threads = 4, .handler = test_handler, .ctx = &ctx};

    for (int round = 0; round < 2000; round++) {
	STAGE  *stage = stage_create(&opts);

	stage_start(stage);
	if (round & 1)
	    sched_yield();			/* vary who gets where first */
	stage_free(stage);
    }
    cr_assert(true);
}
