/*
 * stage.c - stage runtime: thread pool, batched queue, back-pressure,
 * counters (see stage.h).
 *
 * Room for blocked producers (stage_wait_room) is signalled through a second
 * futex word bumped by stage_finished(); waiters re-check the bound, so a
 * spurious wake-up costs a loop, never a missed event.
 *
 * Diagnostics: pthread failures are fatal.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "engine/stage.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/timeutil.h"

struct STAGE {
    SQUEUE   queue;
    STAGE_OPTS opts;
    pthread_t *tids;
    int      stopping;
    int      idle_requested;
    uint64_t events_in __attribute__((aligned(64)));
    uint64_t events_out __attribute__((aligned(64)));
    uint64_t batches;
    uint64_t busy_ns;
    uint32_t room_seq;
    int32_t  room_waiters;
};

#define STAGE_MAX	64
static STAGE *stage_registry[STAGE_MAX];
static size_t stage_count;
static pthread_mutex_t stage_registry_lock = PTHREAD_MUTEX_INITIALIZER;

STAGE *stage_create(const STAGE_OPTS *opts)
{
    STAGE *s = MEM_NEW(STAGE);

    s->opts = *opts;
    if (s->opts.threads < 1)
	s->opts.threads = 1;
    if (s->opts.batch_max == 0)
	s->opts.batch_max = 256;
    if (s->opts.idle_ns <= 0)
	s->opts.idle_ns = TIME_NS_PER_SEC;
    squeue_init(&s->queue, SQUEUE_WAKE_FUTEX);
    pthread_mutex_lock(&stage_registry_lock);
    if (stage_count < STAGE_MAX)
	stage_registry[stage_count++] = s;
    pthread_mutex_unlock(&stage_registry_lock);
    return s;
}

static void stage_run_batch(STAGE *s, SQUEUE_BATCH *batch, STAGE_EVENT **events)
{
    SQUEUE_NODE *node;
    size_t n = 0;
    int64_t start = time_mono_ns();

    while ((node = squeue_batch_next(batch)) != NULL) {
	events[n++] = SQUEUE_CONTAINER(node, STAGE_EVENT, node);
	if (n == s->opts.batch_max) {
	    s->opts.handler(s, s->opts.ctx, events, n);
	    __atomic_add_fetch(&s->batches, 1, __ATOMIC_RELAXED);
	    n = 0;
	}
    }
    if (n) {
	s->opts.handler(s, s->opts.ctx, events, n);
	__atomic_add_fetch(&s->batches, 1, __ATOMIC_RELAXED);
    }
    __atomic_add_fetch(&s->busy_ns, (uint64_t) (time_mono_ns() - start), __ATOMIC_RELAXED);
}

/* Name the thread after its stage, so top -H, perf and /proc show roles
 * (the kernel keeps 15 bytes). */
static void stage_thread_name(const char *name)
{
    char    buf[16];

    snprintf(buf, sizeof(buf), "%s", name);
    (void) pthread_setname_np(pthread_self(), buf);
}

static void *stage_worker(void *arg)
{
    STAGE *s = arg;
    STAGE_EVENT **events = mem_alloc(s->opts.batch_max * sizeof(*events));
    SQUEUE_BATCH batch;
    int64_t next_idle = time_mono_ns() + s->opts.idle_ns;

    msg_service_set(s->opts.name);
    stage_thread_name(s->opts.name);
    for (;;) {
	if (squeue_take(&s->queue, &batch)) {
	    stage_run_batch(s, &batch, events);
	} else if (__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE)) {
	    break;
	} else {
	    int64_t now = time_mono_ns();

	    if (s->opts.idle && (now >= next_idle
		       || __atomic_exchange_n(&s->idle_requested, 0, __ATOMIC_ACQ_REL))) {
		s->opts.idle(s, s->opts.ctx);
		next_idle = time_mono_ns() + s->opts.idle_ns;
		continue;
	    }
	    squeue_wait(&s->queue, s->opts.idle ? next_idle - now : -1);
	}
	if (s->opts.idle && time_mono_ns() >= next_idle) {
	    s->opts.idle(s, s->opts.ctx);
	    next_idle = time_mono_ns() + s->opts.idle_ns;
	}
    }
    mem_free(events);
    return NULL;
}

void stage_start(STAGE *s)
{
    int err;

    s->tids = mem_calloc((size_t) s->opts.threads, sizeof(pthread_t));
    for (int i = 0; i < s->opts.threads; i++)
	if ((err = pthread_create(&s->tids[i], NULL, stage_worker, s)) != 0)
	    msg_fatal("stage %s: pthread_create: %s", s->opts.name, strerror(err));
}

void stage_stop(STAGE *s)
{
    if (s->tids == NULL)
	return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    squeue_close(&s->queue);
    for (int i = 0; i < s->opts.threads; i++)
	pthread_join(s->tids[i], NULL);
    mem_free(s->tids);
    s->tids = NULL;
}

void stage_free(STAGE *s)
{
    if (s == NULL)
	return;
    stage_stop(s);
    pthread_mutex_lock(&stage_registry_lock);
    for (size_t i = 0; i < stage_count; i++)
	if (stage_registry[i] == s) {
	    stage_registry[i] = stage_registry[--stage_count];
	    break;
	}
    pthread_mutex_unlock(&stage_registry_lock);
    squeue_destroy(&s->queue);
    mem_free(s);
}

void stage_post(STAGE *s, STAGE_EVENT *event)
{
    __atomic_add_fetch(&s->events_in, 1, __ATOMIC_RELAXED);
    squeue_push(&s->queue, &event->node);
}

void stage_run_inline(STAGE *s, STAGE_EVENT *event)
{
    int64_t start = time_mono_ns();

    __atomic_add_fetch(&s->events_in, 1, __ATOMIC_RELAXED);
    s->opts.handler(s, s->opts.ctx, &event, 1);
    __atomic_add_fetch(&s->batches, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->busy_ns, (uint64_t) (time_mono_ns() - start), __ATOMIC_RELAXED);
}

void stage_finished(STAGE *s, uint64_t count)
{
    __atomic_add_fetch(&s->events_out, count, __ATOMIC_RELEASE);
    if (__atomic_load_n(&s->room_waiters, __ATOMIC_SEQ_CST) > 0) {
	__atomic_add_fetch(&s->room_seq, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &s->room_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    }
}

bool stage_congested(STAGE *s)
{
    uint64_t in, out;

    if (s->opts.inflight_limit == 0)
	return false;
    out = __atomic_load_n(&s->events_out, __ATOMIC_ACQUIRE);
    in = __atomic_load_n(&s->events_in, __ATOMIC_RELAXED);
    return in - out >= s->opts.inflight_limit;
}

void stage_wait_room(STAGE *s)
{
    while (stage_congested(s)) {
	uint32_t seq = __atomic_load_n(&s->room_seq, __ATOMIC_SEQ_CST);
	struct timespec ts = {0, 100 * 1000 * 1000};	/* re-check: belt and braces */

	__atomic_add_fetch(&s->room_waiters, 1, __ATOMIC_SEQ_CST);
	if (stage_congested(s))
	    syscall(SYS_futex, &s->room_seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
	__atomic_sub_fetch(&s->room_waiters, 1, __ATOMIC_SEQ_CST);
    }
}

void stage_wakeup(STAGE *s)
{
    __atomic_store_n(&s->idle_requested, 1, __ATOMIC_RELEASE);
    squeue_kick(&s->queue);
}

const char *stage_name(STAGE *s)
{
    return s->opts.name;
}

void stage_stats(STAGE *s, STAGE_STATS *st)
{
    st->name = s->opts.name;
    st->threads = s->opts.threads;
    /* In before out: the in-flight figure may be low, never high. */
    st->events_in = __atomic_load_n(&s->events_in, __ATOMIC_ACQUIRE);
    st->events_out = __atomic_load_n(&s->events_out, __ATOMIC_ACQUIRE);
    st->batches = __atomic_load_n(&s->batches, __ATOMIC_RELAXED);
    st->busy_ns = __atomic_load_n(&s->busy_ns, __ATOMIC_RELAXED);
    st->inflight = st->events_in >= st->events_out ? st->events_in - st->events_out : 0;
    st->inflight_limit = s->opts.inflight_limit;
}

size_t stage_all(STAGE **stages, size_t max)
{
    size_t n;

    pthread_mutex_lock(&stage_registry_lock);
    n = stage_count < max ? stage_count : max;
    memcpy(stages, stage_registry, n * sizeof(*stages));
    pthread_mutex_unlock(&stage_registry_lock);
    return n;
}

/*
 * SCHED_BATCH (throughput over wake-up latency): a woken SCHED_BATCH thread
 * does not preempt the running one, so the pipeline's threads stop trading
 * the CPU at every hand-off and each runs its queue down first (measured: 3
 * instead of 8-10 context switches per message, a quarter less CPU).
 *
 * Except a thread everybody waits on (latency: the journal writer, whose
 * sync gates every 250): a woken SCHED_BATCH thread also waits for any
 * other process's slice to end, so one CPU-bound neighbour made each
 * session wait for whole ticks (with a busy neighbour 1 770 msg/s against
 * 2 990 for SCHED_OTHER with a 100 us slice; on a quiet machine the rate
 * was the same). A short slice (sched_attr.sched_runtime, Linux 6.12 and
 * later; ignored before) lets it preempt when it wakes. All threads
 * SCHED_OTHER was worse: more CPU and context switches per message.
 * No privilege needed; failure only costs speed.
 */
void    stage_thread_sched(bool latency)
{
    struct sched_param sp = {0};

    if (latency) {
	struct {			/* struct sched_attr (sched_setattr(2)) */
	    uint32_t size, policy;
	    uint64_t flags;
	    int32_t nice;
	    uint32_t priority;
	    uint64_t runtime, deadline, period;
	}       attr = {.size = 48,.policy = SCHED_OTHER,.runtime = 100 * 1000};

	(void) syscall(SYS_sched_setattr, 0, &attr, 0);
	return;
    }
    (void) sched_setscheduler(0, SCHED_BATCH, &sp);
}

#define STAGE_DEFER_MAX	8

static __thread struct {
    bool    on;
    int     n;
    struct {
	void    (*fn) (void *);
	void   *arg;
    }       v[STAGE_DEFER_MAX];
} stage_deferred;

void    stage_defer_begin(void)
{
    stage_deferred.on = true;
}

bool    stage_defer(void (*fn)(void *), void *arg)
{
    if (!stage_deferred.on)
	return false;
    for (int i = 0; i < stage_deferred.n; i++)
	if (stage_deferred.v[i].fn == fn && stage_deferred.v[i].arg == arg)
	    return true;
    if (stage_deferred.n == STAGE_DEFER_MAX)
	return false;
    stage_deferred.v[stage_deferred.n].fn = fn;
    stage_deferred.v[stage_deferred.n].arg = arg;
    stage_deferred.n++;
    return true;
}

void    stage_defer_end(void)
{
    stage_deferred.on = false;
    for (int i = 0; i < stage_deferred.n; i++)
	stage_deferred.v[i].fn(stage_deferred.v[i].arg);
    stage_deferred.n = 0;
}
