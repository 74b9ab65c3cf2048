/*
 * agent_pool.c - on-demand worker threads, one job each (see agent_pool.h).
 *
 * Diagnostics: pthread failures when no worker exists yet are fatal (a job
 * would never run); later ones are logged and the job waits for a worker.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "stages/agent_pool.h"

typedef struct AGENT_POOL_JOB {
    struct AGENT_POOL_JOB *next;
    void   *job;
} AGENT_POOL_JOB;

#define AGENT_POOL_THREADS_MAX	256

struct AGENT_POOL {
    pthread_mutex_t lock;
    pthread_cond_t work;
    AGENT_POOL_JOB *head, **tail;
    const char *service;
    agent_pool_fn fn;
    void   *ctx;
    int     max_threads;
    int     nthreads;
    int     nidle;
    int     nqueued;			/* jobs not yet taken */
    int     stopping;
    pthread_t tids[AGENT_POOL_THREADS_MAX];
};

static void *agent_pool_thread(void *arg)
{
    AGENT_POOL *p = arg;

    msg_service_set(p->service);
    pthread_mutex_lock(&p->lock);
    for (;;) {
	AGENT_POOL_JOB *j;

	while (p->head == NULL && !p->stopping) {
	    p->nidle++;
	    pthread_cond_wait(&p->work, &p->lock);
	    p->nidle--;
	}
	if ((j = p->head) == NULL)
	    break;				/* stopping, nothing left */
	if ((p->head = j->next) == NULL)
	    p->tail = &p->head;
	p->nqueued--;
	pthread_mutex_unlock(&p->lock);
	p->fn(p->ctx, j->job);
	mem_free(j);
	pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

AGENT_POOL *agent_pool_create(const char *service, int max_threads, agent_pool_fn fn,
			      void *pool_ctx)
{
    AGENT_POOL *p = MEM_NEW(AGENT_POOL);

    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    p->tail = &p->head;
    p->service = service;
    p->fn = fn;
    p->ctx = pool_ctx;
    p->max_threads = max_threads < 1 ? 1 : max_threads > AGENT_POOL_THREADS_MAX
	? AGENT_POOL_THREADS_MAX : max_threads;
    return p;
}

void    agent_pool_submit(AGENT_POOL *p, void *job)
{
    AGENT_POOL_JOB *j = MEM_NEW(AGENT_POOL_JOB);
    int     err;

    j->job = job;
    pthread_mutex_lock(&p->lock);
    *p->tail = j;
    p->tail = &j->next;
    /* More waiting jobs than sleeping workers (some of which may already
     * be woken for earlier jobs): one more worker, while allowed. */
    if (++p->nqueued > p->nidle && p->nthreads < p->max_threads) {
	/* Threads are spawned with the signal mask of the engine's caller. */
	if ((err = pthread_create(&p->tids[p->nthreads], NULL, agent_pool_thread, p)) == 0)
	    p->nthreads++;
	else if (p->nthreads == 0)
	    msg_fatal("%s: pthread_create: %s", p->service, strerror(err));
	else
	    msg_warn("%s: pthread_create: %s", p->service, strerror(err));
    }
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void    agent_pool_destroy(AGENT_POOL *p)
{
    if (p == NULL)
	return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    /* Workers drain the queue before they see `stopping` with nothing left. */
    for (int i = 0; i < p->nthreads; i++)
	pthread_join(p->tids[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    mem_free(p);
}
