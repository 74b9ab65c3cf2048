/*
 * test_agent_pool.c - the delivery agents' worker pool: every job runs
 * once, destroy waits for all of them, and blocked jobs do not hold back
 * others while threads remain (the reason it is not a stage). Built twice:
 * with Criterion, and with t/mini_criterion.h for ThreadSanitizer.
 */
#include "config.h"

#ifdef SLUICE_MINI_CRITERION
#include "t/mini_criterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <pthread.h>
#include <time.h>

#include "stages/agent_pool.h"

typedef struct POOL_TEST {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long    sum;
    int     ran;
    int     running;
    int     max_running;
    int     block;			/* jobs wait until this many run at once */
} POOL_TEST;

static void pool_test_job(void *ctx, void *job)
{
    POOL_TEST *t = ctx;
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&t->lock);
    t->sum += (long) (size_t) job;
    t->ran++;
    if (++t->running > t->max_running)
	t->max_running = t->running;
    pthread_cond_broadcast(&t->cond);
    while (t->block && t->running < t->block
	   && pthread_cond_timedwait(&t->cond, &t->lock, &deadline) == 0)
	 /* void */ ;
    t->running--;
    pthread_mutex_unlock(&t->lock);
}

typedef struct PRODUCER {
    AGENT_POOL *pool;
    size_t  first;
    size_t  n;
} PRODUCER;

static void *pool_test_producer(void *arg)
{
    PRODUCER *p = arg;

    for (size_t i = 0; i < p->n; i++)
	agent_pool_submit(p->pool, (void *) (p->first + i));
    return NULL;
}

Test(agent_pool, every_job_runs_once)
{
    POOL_TEST t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
    AGENT_POOL *pool = agent_pool_create("test", 4, pool_test_job, &t);
    pthread_t tid[4];
    PRODUCER prod[4];
    long    want = 0;

    for (size_t i = 0; i < 4; i++) {
	prod[i] = (PRODUCER) {pool, 1 + i * 5000, 5000};
	pthread_create(&tid[i], NULL, pool_test_producer, &prod[i]);
    }
    for (size_t i = 0; i < 4; i++)
	pthread_join(tid[i], NULL);
    agent_pool_destroy(pool);		/* waits for every job */
    for (long v = 1; v <= 20000; v++)
	want += v;
    cr_assert_eq(t.ran, 20000);
    cr_assert_eq(t.sum, want);
    cr_assert_leq(t.max_running, 4);
}

Test(agent_pool, blocked_jobs_do_not_hold_others)
{
    POOL_TEST t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
    AGENT_POOL *pool = agent_pool_create("test", 3, pool_test_job, &t);

    /* Each job waits until three run at once: only true with 3 workers. */
    t.block = 3;
    for (size_t i = 1; i <= 3; i++)
	agent_pool_submit(pool, (void *) i);
    agent_pool_destroy(pool);
    cr_assert_eq(t.ran, 3);
    cr_assert_eq(t.max_running, 3);
}

Test(agent_pool, idle_pool_destroys)
{
    POOL_TEST t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

    agent_pool_destroy(agent_pool_create("test", 8, pool_test_job, &t));
    cr_assert_eq(t.ran, 0);
}
