/*
 * tsan_journal.c - the journal's threaded paths, for ThreadSanitizer:
 * many producers appending messages, outcomes and control records while the
 * writer group-commits, rotates and compacts; content BLOBs over segment
 * mappings released from other threads after the journal is closed.
 * Built without Criterion (t/mini_criterion.h), run by `make check-tsan`.
 */
#include "config.h"

#include "t/mini_criterion.h"
#include "test_journal_util.h"
#include "engine/timeutil.h"
#include <time.h>

#define TS_THREADS	16
#define TS_PER		400

static JOURNAL *ts_j;
static int ts_done[TS_THREADS][TS_PER];
static int ts_last[TS_THREADS];
static int ts_bad;

struct ts_ctx {
    int     t, i;
};

static void ts_done_fn(void *ctx, int status)
{
    struct ts_ctx *c = ctx;

    if (status != 0 || c->i != ts_last[c->t] + 1)
	__atomic_add_fetch(&ts_bad, 1, __ATOMIC_SEQ_CST);
    ts_last[c->t] = c->i;
    __atomic_add_fetch(&ts_done[c->t][c->i], 1, __ATOMIC_SEQ_CST);
}

static void *ts_producer(void *arg)
{
    int     t = (int) (intptr_t) arg;
    struct ts_ctx *ctx = mem_calloc(TS_PER, sizeof(*ctx));
    MESSAGE *m = tj_message(NULL, 2, 900, (unsigned) t);
    JOURNAL_WAIT w;

    for (int i = 0; i < TS_PER; i++) {
	ctx[i] = (struct ts_ctx) {t, i};
	queue_id_next(m->queue_id);
	journal_append_message(ts_j, m, ts_done_fn, &ctx[i]);
	/* Most finish at once, some stay deferred: compaction work. */
	journal_append_outcome(ts_j, m->queue_id, 0, RCPT_SENT, 0, NULL, 0, NULL, NULL);
	if (i % 37)
	    journal_append_outcome(ts_j, m->queue_id, 1, RCPT_SENT, 0, NULL, 0, NULL, NULL);
	else
	    journal_append_outcome(ts_j, m->queue_id, 1, RCPT_DEFERRED, 0, "451 later", 9, NULL, NULL);
    }
    journal_wait_init(&w);
    journal_append_control(ts_j, "0", JOURNAL_OP_DONE, journal_wait_done, &w);
    journal_wait(&w);
    message_free(m);
    return ctx;
}

struct ts_blobs {
    BLOB  **v;
    size_t  n;
    unsigned long sum;
};

/* Reads every content and drops its references: the last one unmaps. */
static void *ts_reader(void *arg)
{
    struct ts_blobs *b = arg;

    for (size_t i = 0; i < b->n; i++) {
	for (size_t k = 0; k < b->v[i]->len; k += 64)
	    b->sum += (unsigned char) b->v[i]->data[k];
	blob_unref(b->v[i]);
    }
    mem_free(b->v);
    return NULL;
}

static void ts_run(const JOURNAL_BACKEND *be, const char *dir, enum journal_sync sync)
{
    JOURNAL_OPTIONS o = tj_options(64 * 1024, sync);
    pthread_t th[TS_THREADS];
    void   *ctx[TS_THREADS];
    TJ_SET  set = {0};
    JOURNAL_STATS st;

    memset(ts_done, 0, sizeof(ts_done));
    for (int t = 0; t < TS_THREADS; t++)
	ts_last[t] = -1;
    ts_j = tj_open(be, dir, &o, NULL, NULL);
    for (int t = 0; t < TS_THREADS; t++)
	pthread_create(&th[t], NULL, ts_producer, (void *) (intptr_t) t);
    for (int t = 0; t < TS_THREADS; t++)
	pthread_join(th[t], &ctx[t]);
    /* Compaction runs on the writer after the batch whose done() we saw
     * last: wait for it (bounded) rather than read the stats too early. */
    int64_t deadline = time_mono_ns() + 10 * TIME_NS_PER_SEC;
    do {
	journal_stats(ts_j, &st);
	if (st.compacted > 0)
	    break;
	struct timespec nap = {0, 1000000};
	nanosleep(&nap, NULL);
    } while (time_mono_ns() < deadline);
    journal_close(ts_j);
    cr_assert_eq(ts_bad, 0);
    for (int t = 0; t < TS_THREADS; t++) {
	for (int i = 0; i < TS_PER; i++)
	    cr_assert_eq(ts_done[t][i], 1);
	mem_free(ctx[t]);
    }
    cr_assert_gt(st.compacted, 0);

    /* Recovered content read and released by other threads after close. */
    ts_j = tj_open(be, dir, &o, &set, NULL);
    journal_close(ts_j);
    cr_assert_eq(set.n, (size_t) TS_THREADS * ((TS_PER + 36) / 37));
    struct ts_blobs rb[TS_THREADS];

    for (int t = 0; t < TS_THREADS; t++) {
	rb[t].v = mem_calloc(set.n, sizeof(BLOB *));
	rb[t].n = set.n;
	rb[t].sum = 0;
	for (size_t i = 0; i < set.n; i++)
	    rb[t].v[i] = blob_ref(set.v[i].msg->content);
    }
    tj_set_free(&set);
    for (int t = 0; t < TS_THREADS; t++)
	pthread_create(&th[t], NULL, ts_reader, &rb[t]);
    for (int t = 0; t < TS_THREADS; t++)
	pthread_join(th[t], NULL);
    for (int t = 1; t < TS_THREADS; t++)
	cr_assert_eq(rb[t].sum, rb[0].sum);
}

Test(tsan_journal, ram_always)
{
    tj_log_init(0);
    ts_run(&journal_backend_ram, "tsan-ram", JOURNAL_SYNC_ALWAYS);
    journal_ram_purge("tsan-ram");
}

Test(tsan_journal, fs_batch)
{
    char   *dir = tj_tmpdir();

    tj_log_init(0);
    ts_run(&journal_backend_fs, dir, JOURNAL_SYNC_BATCH);
    tj_rmtree(dir);
    mem_free(dir);
}

Test(tsan_journal, fs_always)
{
    char   *dir = tj_tmpdir();

    tj_log_init(0);
    ts_run(&journal_backend_fs, dir, JOURNAL_SYNC_ALWAYS);
    tj_rmtree(dir);
    mem_free(dir);
}
