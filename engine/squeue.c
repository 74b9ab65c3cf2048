/*
 * squeue.c - stage queues with batched take and lost-wake-up-free sleep
 * (see squeue.h).
 *
 * The sleep protocol is Dekker-style: a consumer announces itself in
 * `sleepers`, issues a full barrier, and re-checks the queue before it sleeps
 * on `seq`; a producer enqueues (cds_wfcq_enqueue has a full barrier), then
 * reads `sleepers`, and if anybody sleeps bumps `seq` and wakes. Either the
 * consumer sees the node, or the producer sees the sleeper and the changed
 * `seq` makes FUTEX_WAIT return at once. Only the push that finds the queue
 * empty does this: later ones find a consumer already woken or about to look.
 *
 * Diagnostics: a failing eventfd write/read other than EAGAIN is a panic.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <stdint.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <urcu/arch.h>

#include "engine/squeue.h"
#include "engine/msg.h"

/*
 * liburcu is not built with ThreadSanitizer, so TSan cannot see that its
 * enqueue (full barrier) orders the producer's writes before the consumer's
 * reads. Tell it, node by node.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define SQUEUE_TSAN_RELEASE(p)	__tsan_release(p)
#define SQUEUE_TSAN_ACQUIRE(p)	__tsan_acquire(p)
#else
#define SQUEUE_TSAN_RELEASE(p)	((void) 0)
#define SQUEUE_TSAN_ACQUIRE(p)	((void) 0)
#endif

static long squeue_futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

void squeue_init(SQUEUE *q, enum squeue_wake wake)
{
    cds_wfcq_init(&q->head, &q->tail);
    q->seq = 0;
    q->sleepers = 0;
    q->closed = 0;
    q->wake = wake;
    q->event_fd = -1;
    if (wake == SQUEUE_WAKE_EVENTFD
	&& (q->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
	msg_fatal("squeue_init: eventfd: %m");
}

void squeue_destroy(SQUEUE *q)
{
    cds_wfcq_destroy(&q->head, &q->tail);
    if (q->event_fd >= 0)
	close(q->event_fd);
    q->event_fd = -1;
}

static void squeue_wake(SQUEUE *q)
{
    if (q->wake == SQUEUE_WAKE_EVENTFD) {
	uint64_t one = 1;

	if (write(q->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	    msg_panic("squeue: eventfd write: %m");
    } else {
	__atomic_add_fetch(&q->seq, 1, __ATOMIC_SEQ_CST);
	squeue_futex(&q->seq, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
}

bool squeue_push(SQUEUE *q, SQUEUE_NODE *node)
{
    bool was_empty;

    cds_wfcq_node_init(node);
    SQUEUE_TSAN_RELEASE(node);
    was_empty = !cds_wfcq_enqueue(&q->head, &q->tail, node);
    cmm_smp_mb();
    /*
     * Only the push that makes the queue non-empty may need to wake: a
     * consumer re-checks the queue after announcing itself, so a node
     * already waiting means a wake-up was sent or is not needed. Without
     * this, every push of a burst paid a FUTEX_WAKE while the woken
     * consumer had not yet left `sleepers`.
     */
    if (was_empty && (q->wake == SQUEUE_WAKE_EVENTFD
		      || __atomic_load_n(&q->sleepers, __ATOMIC_SEQ_CST) > 0))
	squeue_wake(q);
    return was_empty;
}

bool squeue_empty(SQUEUE *q)
{
    return cds_wfcq_empty(&q->head, &q->tail);
}

bool squeue_take(SQUEUE *q, SQUEUE_BATCH *batch)
{
    enum cds_wfcq_ret ret;

    cds_wfcq_init(&batch->head, &batch->tail);
    ret = cds_wfcq_splice_blocking(&batch->head, &batch->tail, &q->head, &q->tail);
    return ret != CDS_WFCQ_RET_SRC_EMPTY;
}

SQUEUE_NODE *squeue_batch_next(SQUEUE_BATCH *batch)
{
    /* The batch is private to the caller: no lock needed. */
    SQUEUE_NODE *node = __cds_wfcq_dequeue_blocking(&batch->head, &batch->tail);

    if (node)
	SQUEUE_TSAN_ACQUIRE(node);
    return node;
}

void squeue_wait(SQUEUE *q, int64_t timeout_ns)
{
    uint32_t seq = __atomic_load_n(&q->seq, __ATOMIC_SEQ_CST);
    struct timespec ts, *tsp = NULL;

    __atomic_add_fetch(&q->sleepers, 1, __ATOMIC_SEQ_CST);
    cmm_smp_mb();
    if (cds_wfcq_empty(&q->head, &q->tail) && !__atomic_load_n(&q->closed, __ATOMIC_SEQ_CST)) {
	if (timeout_ns >= 0) {
	    ts.tv_sec = timeout_ns / 1000000000LL;
	    ts.tv_nsec = timeout_ns % 1000000000LL;
	    tsp = &ts;
	}
	if (squeue_futex(&q->seq, FUTEX_WAIT_PRIVATE, seq, tsp) < 0
	    && errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
	    msg_panic("squeue_wait: futex: %m");
    }
    __atomic_sub_fetch(&q->sleepers, 1, __ATOMIC_SEQ_CST);
}

void squeue_kick(SQUEUE *q)
{
    if (q->wake == SQUEUE_WAKE_EVENTFD) {
	squeue_wake(q);
	return;
    }
    __atomic_add_fetch(&q->seq, 1, __ATOMIC_SEQ_CST);
    squeue_futex(&q->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

void squeue_close(SQUEUE *q)
{
    /* closed before seq: a sleeper that loaded the old seq sees closed. */
    __atomic_store_n(&q->closed, 1, __ATOMIC_SEQ_CST);
    squeue_kick(q);
}

int squeue_fd(SQUEUE *q)
{
    return q->event_fd;
}

void squeue_fd_drain(SQUEUE *q)
{
    uint64_t n;

    if (read(q->event_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
	msg_panic("squeue: eventfd read: %m");
}
