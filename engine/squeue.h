/*
 * squeue.h - the queue in front of every stage: many producers, batched
 * consumers, and a sleep that never misses a wake-up.
 *
 * Built on liburcu's wait-free concurrent queue (cds_wfcq): producers never
 * take a lock; a consumer takes everything waiting in one splice. A consumer
 * with nothing to do sleeps on a futex (SQUEUE_WAKE_FUTEX) or, when it also
 * sits in an epoll loop, on an eventfd (SQUEUE_WAKE_EVENTFD) that the loop
 * watches. Producers pay for a wake-up only while a consumer sleeps.
 *
 * Threading: squeue_push() from any thread at any time. squeue_take() from
 * any number of consumer threads (the splice is serialised by cds_wfcq's
 * dequeue lock). The caller embeds SQUEUE_NODE in its own event structure.
 */
#ifndef SLUICE_SQUEUE_H
#define SLUICE_SQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <urcu/wfcqueue.h>

typedef struct cds_wfcq_node SQUEUE_NODE;

enum squeue_wake { SQUEUE_WAKE_FUTEX, SQUEUE_WAKE_EVENTFD };

typedef struct SQUEUE {
    /* Head and tail on separate cache lines: producers touch only the tail. */
    struct cds_wfcq_head head __attribute__((aligned(64)));
    struct cds_wfcq_tail tail __attribute__((aligned(64)));
    uint32_t seq __attribute__((aligned(64)));	/* futex word */
    int32_t  sleepers;
    int      closed;		/* squeue_close(): sleepers never sleep again */
    int      event_fd;		/* -1 unless SQUEUE_WAKE_EVENTFD */
    enum squeue_wake wake;
} SQUEUE;

/* A private batch taken off a queue; walk it with squeue_batch_next(). */
typedef struct SQUEUE_BATCH {
    struct cds_wfcq_head head;
    struct cds_wfcq_tail tail;
} SQUEUE_BATCH;

void squeue_init(SQUEUE *q, enum squeue_wake wake);
void squeue_destroy(SQUEUE *q);
/* Returns true when the queue was empty before (useful as a hint). */
bool squeue_push(SQUEUE *q, SQUEUE_NODE *node);
bool squeue_empty(SQUEUE *q);
/* Moves everything waiting into batch; false if there was nothing. */
bool squeue_take(SQUEUE *q, SQUEUE_BATCH *batch);
SQUEUE_NODE *squeue_batch_next(SQUEUE_BATCH *batch);	/* NULL at the end */
/* Futex mode: sleep until something is pushed or timeout_ns passes
 * (negative: forever) or squeue_kick(). Returns at once if not empty. */
void squeue_wait(SQUEUE *q, int64_t timeout_ns);
/* Wake every sleeper once (e.g. to run timers now). A consumer about to
 * sleep may miss a kick: use it only where a late wake-up is harmless. */
void squeue_kick(SQUEUE *q);
/* Shutdown: wake every sleeper, and from now on squeue_wait() returns at
 * once -- a consumer that checks its stop flag and then sleeps cannot miss
 * this, unlike a kick. */
void squeue_close(SQUEUE *q);
/* Eventfd mode: the fd to watch for readability; drain it before taking. */
int  squeue_fd(SQUEUE *q);
void squeue_fd_drain(SQUEUE *q);

#define SQUEUE_CONTAINER(ptr, type, member) \
	((type *) ((char *) (ptr) - offsetof(type, member)))

#endif
