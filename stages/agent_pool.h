/*
 * agent_pool.h - worker threads for delivery agents whose work blocks
 * (local, virtual, pipe: file locks, fsync, commands that run for minutes).
 *
 * engine/stage.h hands a worker everything queued in one splice, which is
 * right for short work but would let one slow command hold back every
 * request queued behind it while other threads sleep. Here each idle
 * worker takes one request at a time; threads are started on demand up to
 * `max_threads` (the service's maxproc), so a quiet agent costs one thread.
 *
 * Threading: agent_pool_submit() from any thread; agent_pool_destroy()
 * waits until every submitted job has run.
 */
#ifndef SLUICE_AGENT_POOL_H
#define SLUICE_AGENT_POOL_H

typedef struct AGENT_POOL AGENT_POOL;

typedef void (*agent_pool_fn)(void *pool_ctx, void *job);

/* service: the thread's msg_service_set() name (static storage). */
AGENT_POOL *agent_pool_create(const char *service, int max_threads, agent_pool_fn fn,
			      void *pool_ctx);
void    agent_pool_submit(AGENT_POOL *pool, void *job);
void    agent_pool_destroy(AGENT_POOL *pool);

#endif
