/*
 * stage.h - a stage: a named pool of threads with one input queue.
 *
 * Producers stage_post() events (a STAGE_EVENT embedded in their own
 * structure). A worker takes everything waiting in one splice, hands the
 * handler up to batch_max events at a time, and sleeps only when the queue is
 * empty. Each stage has an in-flight bound: stage_post() always succeeds
 * (so no completion is ever lost), but producers that can slow down ask
 * stage_congested() first, or block in stage_wait_room() -- that is the
 * back-pressure of DESIGN.md invariant 5. The handler marks events finished
 * with stage_finished() when their work is really done (which may be later,
 * from another thread, e.g. after a journal sync).
 *
 * Counters (events in/out, depth, batches, busy time) are read lock-free
 * with stage_stats() and served on the control socket.
 *
 * Threading: everything here is thread safe. The handler runs on the
 * stage's threads, concurrently when the stage has several.
 */
#ifndef SLUICE_STAGE_H
#define SLUICE_STAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "engine/squeue.h"

typedef struct STAGE_EVENT {
    SQUEUE_NODE node;
    int     type;		/* the stage's own event kinds */
} STAGE_EVENT;

typedef struct STAGE STAGE;

/* Handles a batch; n >= 1. The array is valid only during the call. */
typedef void (*stage_handler_fn)(STAGE *stage, void *ctx, STAGE_EVENT **events, size_t n);
/* Called on each worker when the queue stays empty for `idle_ns` (timers). */
typedef void (*stage_idle_fn)(STAGE *stage, void *ctx);

typedef struct STAGE_STATS {
    const char *name;
    int      threads;
    uint64_t events_in;
    uint64_t events_out;	/* stage_finished() */
    uint64_t batches;
    uint64_t busy_ns;
    uint64_t inflight;		/* in - out */
    uint64_t inflight_limit;
} STAGE_STATS;

typedef struct STAGE_OPTS {
    const char *name;		/* "cleanup", "qmgr", ... (static storage) */
    int      threads;		/* >= 1 */
    size_t   batch_max;		/* 0: 256 */
    uint64_t inflight_limit;	/* 0: unbounded */
    stage_handler_fn handler;
    stage_idle_fn idle;		/* optional */
    int64_t  idle_ns;		/* period of idle calls; 0: 1 s */
    void    *ctx;
} STAGE_OPTS;

STAGE *stage_create(const STAGE_OPTS *opts);
void   stage_start(STAGE *stage);
/* Stops the workers after they drain what was posted before the call. */
void   stage_stop(STAGE *stage);
void   stage_free(STAGE *stage);

void   stage_post(STAGE *stage, STAGE_EVENT *event);
/* Runs the handler for one event on the caller's thread: the same counters
 * and bound, no hand-off. For work that never blocks, on a hot path where a
 * thread switch would cost more than the work itself. */
void   stage_run_inline(STAGE *stage, STAGE_EVENT *event);
void   stage_finished(STAGE *stage, uint64_t count);
bool   stage_congested(STAGE *stage);
void   stage_wait_room(STAGE *stage);
void   stage_wakeup(STAGE *stage);	/* run the idle hook soon */
const char *stage_name(STAGE *stage);
void   stage_stats(STAGE *stage, STAGE_STATS *stats);

/* Scheduling of a pipeline I/O or queue thread (smtpd, smtp, journal),
 * called on the thread itself: SCHED_BATCH, or with latency (a thread that
 * every acceptance waits on) SCHED_OTHER with a short slice. */
void   stage_thread_sched(bool latency);

/*
 * Deferred wake-ups, for group commit across sessions: between
 * stage_defer_begin() and stage_defer_end() on one thread (an I/O thread's
 * turn over one epoll batch), stage_defer() keeps a wake-up for the end
 * instead of making it now, once per distinct (fn, arg); it returns false
 * (wake now) outside such a turn or when its few slots are full. The turn
 * must not block waiting on what it deferred.
 */
void   stage_defer_begin(void);
bool   stage_defer(void (*fn)(void *), void *arg);
void   stage_defer_end(void);

/* Every stage created, for the control socket's "stats" request. */
size_t stage_all(STAGE **stages, size_t max);

#endif
