/*
 * test_journal.c - the journal end to end: recovery reproduces state (both
 * backends), group commit under many producers (exactly once, in order,
 * never before the sync), zero-copy recovered content, torn tails and
 * middle damage, compaction keeping disk bounded, ENOSPC, fatal fdatasync
 * errors, and the offline lock.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "queue/journal_rec.h"
#include "test_journal_util.h"

/* Recovery reproduces the state of every message. */

static void state_roundtrip(const JOURNAL_BACKEND *be, const char *dir)
{
    JOURNAL_OPTIONS o = tj_options(64 * 1024, JOURNAL_SYNC_ALWAYS);
    JOURNAL *j;
    TJ_SET  set = {0};
    JOURNAL_RECOVERY_STATS st;
    MESSAGE *m[8];

    j = tj_open(be, dir, &o, &set, &st);
    cr_assert_eq(set.n, 0);
    for (int i = 0; i < 8; i++) {
	m[i] = tj_message(NULL, 3, 2000 + (size_t) i * 10000, (unsigned) i);
	cr_assert_eq(tj_append_message(j, m[i]), 0);
    }
    /* m0: all sent -> finished. m1: deferred + sent + bounced. m2: held.
     * m3: deleted. m4: explicit DONE. m5: requeued deferred recipient.
     * m6: all final, one bounce notice still owed (live), delay warned.
     * m7: all final, its owed notice queued (NOTICED) -> finished. */
    for (size_t r = 0; r < 3; r++)
	cr_assert_eq(tj_append_outcome(j, m[0]->queue_id, r, RCPT_SENT, NULL, 0), 0);
    cr_assert_eq(tj_append_outcome(j, m[1]->queue_id, 0, RCPT_DEFERRED, "451 later", 1234), 0);
    cr_assert_eq(tj_append_outcome(j, m[1]->queue_id, 1, RCPT_SENT, "250 ok", 0), 0);
    cr_assert_eq(tj_append_outcome(j, m[1]->queue_id, 2, RCPT_BOUNCED, "550 no", 0), 0);
    /* A final state sticks. */
    cr_assert_eq(tj_append_outcome(j, m[1]->queue_id, 1, RCPT_DEFERRED, "again", 99), 0);
    cr_assert_eq(tj_append_control(j, m[2]->queue_id, JOURNAL_OP_HOLD), 0);
    cr_assert_eq(tj_append_control(j, m[3]->queue_id, JOURNAL_OP_HOLD), 0);
    cr_assert_eq(tj_append_control(j, m[3]->queue_id, JOURNAL_OP_DELETE), 0);
    cr_assert_eq(tj_append_control(j, m[4]->queue_id, JOURNAL_OP_DONE), 0);
    cr_assert_eq(tj_append_outcome(j, m[5]->queue_id, 2, RCPT_DEFERRED, "421 busy", 777), 0);
    cr_assert_eq(tj_append_control(j, m[6]->queue_id, JOURNAL_OP_WARNED), 0);
    for (size_t r = 0; r < 3; r++) {
	cr_assert_eq(tj_append_outcome_flags(j, m[6]->queue_id, r, r == 1 ? RCPT_BOUNCED : RCPT_SENT,
				       r == 1 ? JOURNAL_NOTICE_OWED : 0, "550 5.1.1 no", 0), 0);
	cr_assert_eq(tj_append_outcome_flags(j, m[7]->queue_id, r, RCPT_BOUNCED,
					     JOURNAL_NOTICE_OWED, "550 no", 0), 0);
    }
    size_t  all3[] = {0, 1, 2};

    cr_assert_eq(tj_append_noticed(j, m[7]->queue_id, 3, all3), 0);

    JOURNAL_ROUTE rt[1] = {{2, "relay", "[192.0.2.1]:2525"}};
    JOURNAL_WAIT w;

    journal_wait_init(&w);
    journal_append_requeue(j, m[5]->queue_id, 1, rt, journal_wait_done, &w);
    cr_assert_eq(journal_wait(&w), 0);
    /* Records for unknown messages are harmless. */
    cr_assert_eq(tj_append_outcome(j, "FFFFFFFF", 0, RCPT_SENT, NULL, 0), 0);
    journal_close(j);

    j = tj_open(be, dir, &o, &set, &st);
    cr_assert_eq(set.n, 4, "recovered %zu", set.n);
    cr_assert_eq(st.messages, 4);
    cr_assert_eq(st.torn + st.damaged, 0);

    TJ_REC *r1 = tj_find(&set, m[1]->queue_id), *r2 = tj_find(&set, m[2]->queue_id);
    TJ_REC *r5 = tj_find(&set, m[5]->queue_id), *r6 = tj_find(&set, m[6]->queue_id);

    cr_assert(r1 && r2 && r5 && r6);
    cr_assert(r6->warned && !r1->warned, "WARNED survives recovery");
    cr_assert(r6->any_owed && !r1->any_owed);
    cr_assert(!r6->owed[0] && r6->owed[1] && !r6->owed[2], "the owed notice is per recipient");
    cr_assert_eq(r6->msg->rcpt[1].state, RCPT_BOUNCED);
    cr_assert_str_eq(r6->reason[1], "550 5.1.1 no");
    cr_assert(tj_message_same(r1->msg, m[1]));
    cr_assert(tj_message_same(r2->msg, m[2]));
    cr_assert(tj_message_same(r5->msg, m[5]));
    cr_assert_eq(r1->msg->rcpt[0].state, RCPT_DEFERRED);
    cr_assert_eq(r1->next_retry[0], 1234);
    cr_assert_str_eq(r1->reason[0], "451 later");
    cr_assert_eq(r1->msg->rcpt[1].state, RCPT_SENT);
    cr_assert_eq(r1->msg->rcpt[2].state, RCPT_BOUNCED);
    cr_assert(!r1->hold && r2->hold && !r5->hold);
    cr_assert_eq(r5->msg->rcpt[2].state, RCPT_PENDING);
    cr_assert_str_eq(r5->msg->rcpt[2].transport, "relay");
    cr_assert_str_eq(r5->msg->rcpt[2].nexthop, "[192.0.2.1]:2525");
    cr_assert_str_eq(r5->msg->rcpt[1].transport, "smtp");
    /* Oldest first. */
    cr_assert_eq(strcmp(set.v[0].msg->queue_id, m[1]->queue_id), 0);

    /* Release survives another round; a NOTICED record finishes m6. */
    cr_assert_eq(tj_append_control(j, m[2]->queue_id, JOURNAL_OP_RELEASE), 0);
    cr_assert_eq(tj_append_noticed(j, m[6]->queue_id, 1, all3 + 1), 0);
    journal_close(j);
    tj_set_free(&set);
    j = tj_open(be, dir, &o, &set, &st);
    cr_assert_eq(set.n, 3);
    cr_assert(!tj_find(&set, m[2]->queue_id)->hold);
    cr_assert_null(tj_find(&set, m[6]->queue_id));
    journal_close(j);
    tj_set_free(&set);
    for (int i = 0; i < 8; i++)
	message_free(m[i]);
}

Test(journal, recovery_reproduces_state_ram)
{
    tj_log_init(0);
    state_roundtrip(&journal_backend_ram, "ram-state");
    journal_ram_purge("ram-state");
}

Test(journal, recovery_reproduces_state_fs)
{
    char   *dir = tj_tmpdir();

    tj_log_init(0);
    state_roundtrip(&journal_backend_fs, dir);
    tj_rmtree(dir);
    mem_free(dir);
}

/* Recovered content is a slice of the segment mapping and outlives close. */
Test(journal, recovered_content_is_mapped)
{
    char   *dir = tj_tmpdir();
    JOURNAL_OPTIONS o = tj_options(1 << 20, JOURNAL_SYNC_ALWAYS);
    TJ_SET  set = {0};
    JOURNAL *j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    MESSAGE *m = tj_message(NULL, 1, 100 * 1024, 9);

    tj_log_init(0);
    cr_assert_eq(tj_append_message(j, m), 0);
    journal_close(j);
    j = tj_open(&journal_backend_fs, dir, &o, &set, NULL);
    cr_assert_eq(set.n, 1);
    BLOB   *b = set.v[0].msg->content;

    cr_assert_not_null(b->release, "content was copied, not mapped");
    cr_assert_not_null(b->owner);
    journal_close(j);
    tj_rmtree(dir);				/* file gone, mapping stays */
    cr_assert_eq(b->len, m->content->len);
    cr_assert_eq(memcmp(b->data, m->content->data, b->len), 0);
    tj_set_free(&set);
    message_free(m);
    mem_free(dir);
}

/* Group commit: a backend wrapper watches every write and sync. */

static const JOURNAL_BACKEND *gc_inner = &journal_backend_fs;
static int gc_unsynced;			/* written since the last sync */
static long gc_writes, gc_syncs;

static int gc_write(void *bh, uint64_t segno, uint64_t off, const struct iovec *iov, int n)
{
    __atomic_store_n(&gc_unsynced, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&gc_writes, 1, __ATOMIC_SEQ_CST);
    return gc_inner->write(bh, segno, off, iov, n);
}

static int gc_sync(void *bh, uint64_t segno)
{
    int     err = gc_inner->sync(bh, segno);

    __atomic_store_n(&gc_unsynced, 0, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&gc_syncs, 1, __ATOMIC_SEQ_CST);
    return err;
}

#define GC_THREADS	64
#define GC_PER		150

static int gc_done_count[GC_THREADS][GC_PER];
static int gc_last[GC_THREADS];
static int gc_errors;
static JOURNAL *gc_j;

struct gc_ctx {
    int     thread, i;
};

static void gc_done(void *ctx, int status)
{
    struct gc_ctx *c = ctx;

    if (status != 0 || __atomic_load_n(&gc_unsynced, __ATOMIC_SEQ_CST) != 0
	|| c->i != gc_last[c->thread] + 1)
	__atomic_add_fetch(&gc_errors, 1, __ATOMIC_SEQ_CST);
    gc_last[c->thread] = c->i;
    __atomic_add_fetch(&gc_done_count[c->thread][c->i], 1, __ATOMIC_SEQ_CST);
}

static void *gc_producer(void *arg)
{
    int     t = (int) (intptr_t) arg;
    struct gc_ctx *ctx = mem_calloc(GC_PER, sizeof(*ctx));
    MESSAGE *m = tj_message(NULL, 2, 512, (unsigned) t);
    JOURNAL_WAIT w;

    for (int i = 0; i < GC_PER; i++) {
	ctx[i].thread = t;
	ctx[i].i = i;
	queue_id_next(m->queue_id);
	if (i % 10 == 9) {		/* sometimes wait, mostly stream */
	    journal_wait_init(&w);
	    journal_append_control(gc_j, m->queue_id, JOURNAL_OP_HOLD, journal_wait_done, &w);
	    journal_append_message(gc_j, m, gc_done, &ctx[i]);
	    journal_wait(&w);
	} else
	    journal_append_message(gc_j, m, gc_done, &ctx[i]);
    }
    /* Completions are in order: the last one done means all are. */
    journal_wait_init(&w);
    journal_append_control(gc_j, m->queue_id, JOURNAL_OP_DONE, journal_wait_done, &w);
    journal_wait(&w);
    message_free(m);
    return ctx;
}

Test(journal, group_commit_many_producers, .timeout = 60)
{
    char   *dir = tj_tmpdir();
    JOURNAL_BACKEND be = journal_backend_fs;
    JOURNAL_OPTIONS o = tj_options(256 * 1024, JOURNAL_SYNC_ALWAYS);
    pthread_t th[GC_THREADS];
    void   *ctx[GC_THREADS];
    JOURNAL_STATS st;
    TJ_SET  set = {0};

    tj_log_init(0);
    be.write = gc_write;
    be.sync = gc_sync;
    for (int t = 0; t < GC_THREADS; t++)
	gc_last[t] = -1;
    gc_j = tj_open(&be, dir, &o, NULL, NULL);
    for (int t = 0; t < GC_THREADS; t++)
	pthread_create(&th[t], NULL, gc_producer, (void *) (intptr_t) t);
    for (int t = 0; t < GC_THREADS; t++)
	pthread_join(th[t], &ctx[t]);
    journal_stats(gc_j, &st);
    journal_close(gc_j);
    cr_assert_eq(gc_errors, 0, "%d completions early, failed or out of order", gc_errors);
    for (int t = 0; t < GC_THREADS; t++) {
	for (int i = 0; i < GC_PER; i++)
	    cr_assert_eq(gc_done_count[t][i], 1, "thread %d record %d completed %d times",
			 t, i, gc_done_count[t][i]);
	mem_free(ctx[t]);
    }
    /* Group commit happened: far fewer syncs than records. */
    cr_assert_geq(st.records, (uint64_t) GC_THREADS * (GC_PER + GC_PER / 10 + 1));
    cr_assert_lt(st.syncs, st.records / 2, "syncs %llu records %llu",
		 (unsigned long long) st.syncs, (unsigned long long) st.records);
    cr_log_info("group commit: %llu records, %llu syncs, %ld writes",
		(unsigned long long) st.records, (unsigned long long) st.syncs, gc_writes);
    /* Every message is there (none done: DONE went to another ID). */
    gc_j = tj_open(&journal_backend_fs, dir, &o, &set, NULL);
    cr_assert_eq(set.n, (size_t) GC_THREADS * GC_PER - GC_THREADS);
    journal_close(gc_j);
    tj_set_free(&set);
    tj_rmtree(dir);
    mem_free(dir);
}

/* Torn tail: cut, logged with the exact text, appends continue. */

static char *seg_path(const char *dir, int nth_from_end)
{
    struct dirent **names;
    int     n = scandir(dir, &names, NULL, alphasort), k = 0;
    char   *res = NULL;

    for (int i = n - 1; i >= 0; i--) {
	if (strstr(names[i]->d_name, ".seg") && k++ == nth_from_end && res == NULL) {
	    STR     p = STR_INIT;

	    str_printf(&p, "%s/%s", dir, names[i]->d_name);
	    res = str_steal(&p, NULL);
	}
	free(names[i]);
    }
    free(names);
    return res;
}

static off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

Test(journal, torn_tail_is_cut_and_logged)
{
    char   *dir = tj_tmpdir();
    JOURNAL_OPTIONS o = tj_options(1 << 20, JOURNAL_SYNC_ALWAYS);
    JOURNAL_RECOVERY_STATS st;
    TJ_SET  set = {0};
    JOURNAL *j;
    MESSAGE *m[3];

    tj_log_init(1);
    j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    for (int i = 0; i < 3; i++) {
	m[i] = tj_message(NULL, 1, 3000, (unsigned) i);
	cr_assert_eq(tj_append_message(j, m[i]), 0);
    }
    journal_close(j);

    /* Chop the last record in half: a write torn by a crash. */
    char   *seg = seg_path(dir, 0);
    off_t   size = file_size(seg);
    off_t   keep = size - 1500;
    char    expect[256];

    cr_assert(truncate(seg, keep) == 0);
    j = tj_open(&journal_backend_fs, dir, &o, &set, &st);
    cr_assert_eq(set.n, 2);
    cr_assert_eq(st.torn, 1);
    cr_assert_null(tj_find(&set, m[2]->queue_id));
    off_t   good = file_size(seg);
    char   *base = strrchr(seg, '/') + 1;
    unsigned long long segno = strtoull(base, NULL, 16);

    snprintf(expect, sizeof(expect),
	     "warning: journal: truncated %llu bytes of torn record at segment %llu offset %llu",
	     (unsigned long long) (keep - good), segno, (unsigned long long) good);
    cr_assert(tj_log_has(expect), "missing \"%s\" in log:\n%s", expect, STR_DATA(&tj_log));
    cr_assert(good < keep);
    cr_assert_eq(st.torn_bytes, (size_t) (keep - good));
    /* Appends go on after the cut; the next recovery is clean. */
    cr_assert_eq(tj_append_message(j, m[2]), 0);
    journal_close(j);
    tj_set_free(&set);
    j = tj_open(&journal_backend_fs, dir, &o, &set, &st);
    cr_assert_eq(set.n, 3);
    cr_assert_eq(st.torn + st.damaged, 0);
    journal_close(j);
    tj_set_free(&set);

    /* Garbage after valid records (a torn write of random bytes). */
    int     fd = open(seg, O_WRONLY | O_APPEND);

    cr_assert(write(fd, "\x17\x42garbage-garbage-garbage", 25) == 25);
    close(fd);
    j = tj_open(&journal_backend_fs, dir, &o, &set, &st);
    cr_assert_eq(st.torn, 1);
    cr_assert_eq(st.torn_bytes, 25);
    cr_assert_eq(set.n, 3);
    journal_close(j);
    tj_set_free(&set);
    for (int i = 0; i < 3; i++)
	message_free(m[i]);
    mem_free(seg);
    tj_rmtree(dir);
    mem_free(dir);
}

/* Damage to an acknowledged record in an older segment: corrupt state. */
Test(journal, middle_damage_marks_message_corrupt)
{
    char   *dir = tj_tmpdir();
    JOURNAL_OPTIONS o = tj_options(16 * 1024, JOURNAL_SYNC_ALWAYS);
    JOURNAL_RECOVERY_STATS st;
    TJ_SET  set = {0};
    JOURNAL *j;
    MESSAGE *x = tj_message(NULL, 2, 500, 1), *f;
    int     nfill = 0;

    tj_log_init(1);
    j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    cr_assert_eq(tj_append_message(j, x), 0);
    cr_assert_eq(tj_append_outcome(j, x->queue_id, 0, RCPT_DEFERRED, "MARKER-REASON", 5), 0);
    /* Fill several segments behind it, with messages that stay live. */
    for (int i = 0; i < 40; i++, nfill++) {
	f = tj_message(NULL, 1, 1500, (unsigned) (100 + i));
	cr_assert_eq(tj_append_message(j, f), 0);
	message_free(f);
    }
    journal_close(j);

    /* Find the outcome record in the oldest segment and flip a payload byte. */
    char   *seg = seg_path(dir, 0);
    int     k = 0;

    for (char *p = NULL; (p = seg_path(dir, k)) != NULL; k++) {
	mem_free(seg);
	seg = p;
    }
    int     fd = open(seg, O_RDWR);
    off_t   size = lseek(fd, 0, SEEK_END);
    unsigned char *d = mmap(NULL, (size_t) size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    bool    hit = false;

    for (off_t off = JSEG_HDR_SIZE; off + JREC_HDR_SIZE <= size;) {
	JREC_HDR h;

	cr_assert(jrec_hdr_decode(d + off, &h));
	if (h.type == JREC_OUTCOME) {
	    d[off + JREC_HDR_SIZE + h.len - 3] ^= 0x55;	/* inside the reason */
	    hit = true;
	    break;
	}
	off += JREC_HDR_SIZE + h.len;
    }
    munmap(d, (size_t) size);
    close(fd);
    cr_assert(hit);

    j = tj_open(&journal_backend_fs, dir, &o, &set, &st);
    cr_assert_eq(st.damaged, 1);
    cr_assert_eq(st.corrupt, 1);
    cr_assert_eq(set.n, (size_t) nfill + 1);
    TJ_REC *r = tj_find(&set, x->queue_id);

    cr_assert_not_null(r);
    cr_assert(r->corrupt);
    cr_assert(tj_message_same(r->msg, x));
    cr_assert_eq(r->msg->rcpt[0].state, RCPT_PENDING);	/* the outcome is lost */
    cr_assert(tj_log_has("journal: skipped"));
    for (size_t i = 0; i < set.n; i++)
	if (&set.v[i] != r)
	    cr_assert(!set.v[i].corrupt);
    journal_close(j);
    tj_set_free(&set);
    message_free(x);
    mem_free(seg);
    tj_rmtree(dir);
    mem_free(dir);
}

/* Compaction: 100 000 messages, 1 in 500 deferred for ever; disk bounded. */
Test(journal, compaction_keeps_disk_bounded, .timeout = 120)
{
    char   *dir = tj_tmpdir();
    const size_t segsize = 256 * 1024;
    JOURNAL_OPTIONS o = tj_options(segsize, JOURNAL_SYNC_OFF);
    JOURNAL_STATS st;
    JOURNAL_RECOVERY_STATS rst;
    TJ_SET  set = {0};
    JOURNAL *j;
    MESSAGE *m = tj_message(NULL, 1, 700, 3);
    char  (*deferred)[QUEUE_ID_MAX] = mem_calloc(200, QUEUE_ID_MAX);
    size_t  ndef = 0;
    uint64_t max_disk = 0;
    unsigned long long max_dir = 0;
    int     nseg;

    tj_log_init(0);
    j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    for (int i = 0; i < 100000; i++) {
	queue_id_next(m->queue_id);
	journal_append_message(j, m, NULL, NULL);
	if (i % 500 == 0) {
	    /* Every 10th: bounced, its notice owed (live, all final). */
	    if (ndef % 10 == 9)
		journal_append_outcome(j, m->queue_id, 0, RCPT_BOUNCED, JOURNAL_NOTICE_OWED,
				       "451 4.4.1 later", i, NULL, NULL);
	    else
		journal_append_outcome(j, m->queue_id, 0, RCPT_DEFERRED, 0, "451 4.4.1 later",
				       i, NULL, NULL);
	    memcpy(deferred[ndef++], m->queue_id, QUEUE_ID_MAX);
	    if (ndef % 20 == 0)
		journal_append_control(j, m->queue_id, JOURNAL_OP_HOLD, NULL, NULL);
	    if (ndef % 3 == 0)
		journal_append_control(j, m->queue_id, JOURNAL_OP_WARNED, NULL, NULL);
	} else
	    journal_append_outcome(j, m->queue_id, 0, RCPT_SENT, 0, NULL, 0, NULL, NULL);
	if (i % 1000 == 999) {		/* bound the queue; sample the disk */
	    cr_assert_eq(tj_append_control(j, "0", JOURNAL_OP_DONE), 0);
	    journal_stats(j, &st);
	    if (st.disk_bytes > max_disk)
		max_disk = st.disk_bytes;
	    unsigned long long b = tj_dir_bytes(dir, &nseg);

	    if (b > max_dir)
		max_dir = b;
	}
    }
    journal_stats(j, &st);
    cr_log_info("compaction: %llu records, max disk %llu (dir %llu), now %llu in %llu segments, "
		"%llu compacted, %llu removed, live %llu bytes",
		(unsigned long long) st.records, (unsigned long long) max_disk, max_dir,
		(unsigned long long) st.disk_bytes, (unsigned long long) st.segments,
		(unsigned long long) st.compacted, (unsigned long long) st.removed_segments,
		(unsigned long long) st.live_bytes);
    /*
     * 100 000 x ~1 KiB went through (400 segments); what stays is the
     * policy's bound (journal.h): twice the live bytes, three closed
     * segments, current and spare, plus what one batch (1000 messages,
     * 4 segments here) writes before the writer compacts.
     */
    cr_assert_gt(st.bytes, 80ULL * 1000 * 1000);
    cr_assert_leq(max_disk, 2 * st.live_bytes + 10 * segsize, "disk grew to %llu",
		  (unsigned long long) max_disk);
    cr_assert_leq(max_dir, 2 * st.live_bytes + 10 * segsize);
    cr_assert_gt(st.compacted, 0);
    cr_assert_eq(st.live_messages, ndef);
    journal_close(j);

    /* Every deferred message survived its copies, with its state. */
    j = tj_open(&journal_backend_fs, dir, &o, &set, &rst);
    cr_assert_eq(set.n, ndef);
    cr_assert_eq(rst.torn + rst.damaged, 0);
    for (size_t i = 0; i < ndef; i++) {
	TJ_REC *r = tj_find(&set, deferred[i]);

	cr_assert_not_null(r, "deferred message %s lost", deferred[i]);
	cr_assert_eq(r->msg->rcpt[0].state, i % 10 == 9 ? RCPT_BOUNCED : RCPT_DEFERRED);
	cr_assert_eq(r->owed[0], i % 10 == 9, "owed notice kept by compaction copies");
	cr_assert_eq(r->warned, (i + 1) % 3 == 0, "WARNED kept by compaction copies");
	cr_assert_str_eq(r->reason[0], "451 4.4.1 later");
	cr_assert_eq(r->next_retry[0], (int64_t) i * 500);
	cr_assert_eq(r->hold, (i + 1) % 20 == 0);
	cr_assert_eq(r->msg->content->len, m->content->len);
	cr_assert_eq(memcmp(r->msg->content->data, m->content->data, m->content->len), 0);
    }
    /* Deliver them too: disk returns to a small constant. */
    for (size_t i = 0; i < ndef; i++) {
	size_t  zero = 0;

	if (i % 10 == 9)
	    journal_append_noticed(j, deferred[i], 1, &zero, NULL, NULL);
	else
	    journal_append_outcome(j, deferred[i], 0, RCPT_SENT, 0, NULL, 0, NULL, NULL);
    }
    for (int i = 0; i < 4 * 256; i++) {	/* enough traffic to rotate past them */
	queue_id_next(m->queue_id);
	journal_append_message(j, m, NULL, NULL);
	journal_append_control(j, m->queue_id, JOURNAL_OP_DONE, NULL, NULL);
    }
    cr_assert_eq(tj_append_control(j, "0", JOURNAL_OP_DONE), 0);
    /* The writer cleans up after each batch: one more round trip. */
    cr_assert_eq(tj_append_control(j, "0", JOURNAL_OP_DONE), 0);
    journal_stats(j, &st);
    cr_assert_eq(st.live_messages, 0);
    cr_assert_leq(st.segments, 3, "segments %llu", (unsigned long long) st.segments);
    journal_close(j);
    unsigned long long left = tj_dir_bytes(dir, &nseg);

    cr_assert_leq(left, 2 * segsize, "left %llu bytes in %d segments", left, nseg);
    tj_set_free(&set);
    message_free(m);
    mem_free(deferred);
    tj_rmtree(dir);
    mem_free(dir);
}

/* ENOSPC: refused records are reported, acknowledged ones kept. */

static int enospc_on;
static const char *enospc_ops = "create write";

static int enospc_fault(void *arg, const char *op)
{
    if (__atomic_load_n(&enospc_on, __ATOMIC_SEQ_CST) && strstr(enospc_ops, op))
	return ENOSPC;
    return 0;
}

static void enospc_run(const char *ops, size_t segsize)
{
    char   *dir = tj_tmpdir();
    JOURNAL_OPTIONS o = tj_options(segsize, JOURNAL_SYNC_ALWAYS);
    TJ_SET  set = {0};
    JOURNAL_STATS st;
    JOURNAL *j;
    char    acked[300][QUEUE_ID_MAX], refused[300][QUEUE_ID_MAX];
    size_t  nacked = 0, nrefused = 0;
    MESSAGE *m = tj_message(NULL, 1, 3000, 1);

    tj_log_init(1);
    enospc_ops = ops;
    o.fault = enospc_fault;
    j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    for (int i = 0; i < 300; i++) {
	if (i == 50)
	    __atomic_store_n(&enospc_on, 1, __ATOMIC_SEQ_CST);
	if (i == 200)
	    __atomic_store_n(&enospc_on, 0, __ATOMIC_SEQ_CST);
	queue_id_next(m->queue_id);
	int     err = tj_append_message(j, m);

	if (err == 0)
	    memcpy(acked[nacked++], m->queue_id, QUEUE_ID_MAX);
	else {
	    cr_assert_eq(err, ENOSPC, "status %d", err);
	    cr_assert(i >= 50 && i < 200, "refused outside the full window: %d", i);
	    memcpy(refused[nrefused++], m->queue_id, QUEUE_ID_MAX);
	}
    }
    journal_stats(j, &st);
    cr_assert_gt(nrefused, 0);
    cr_assert_eq(st.enospc, nrefused);
    cr_assert_geq(nacked, 150);
    journal_close(j);
    j = tj_open(&journal_backend_fs, dir, &o, &set, NULL);
    cr_assert_eq(set.n, nacked);
    for (size_t i = 0; i < nacked; i++)
	cr_assert_not_null(tj_find(&set, acked[i]), "acknowledged %s lost", acked[i]);
    for (size_t i = 0; i < nrefused; i++)
	cr_assert_null(tj_find(&set, refused[i]), "refused %s came back", refused[i]);
    journal_close(j);
    tj_set_free(&set);
    message_free(m);
    tj_rmtree(dir);
    mem_free(dir);
}

Test(journal, enospc_on_write)
{
    enospc_run("write", 1 << 20);
}

Test(journal, enospc_on_new_segment)
{
    enospc_run("create", 64 * 1024);
    cr_assert(tj_log_has("cannot prepare the next segment"));
}

/* A failed fdatasync stops the process: never retried, never ignored. */

static int eio_fault(void *arg, const char *op)
{
    return strcmp(op, "sync") == 0 && __atomic_load_n(&enospc_on, __ATOMIC_SEQ_CST) ? EIO : 0;
}

static char *eio_dir;

static void eio_cleanup(void)
{
    tj_rmtree(eio_dir);
}

Test(journal, fdatasync_failure_is_fatal, .exit_code = 1)
{
    char   *dir = eio_dir = tj_tmpdir();
    JOURNAL_OPTIONS o = tj_options(1 << 20, JOURNAL_SYNC_ALWAYS);
    MESSAGE *m = tj_message(NULL, 1, 100, 1);
    JOURNAL *j;

    tj_log_init(1);
    o.fault = eio_fault;
    msg_cleanup_set(eio_cleanup);
    j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    cr_assert_eq(tj_append_message(j, m), 0);
    __atomic_store_n(&enospc_on, 1, __ATOMIC_SEQ_CST);
    tj_append_message(j, m);			/* exits */
    cr_assert_fail("fdatasync failure did not stop the process");
}

/* Offline access: the lock, a reader, and a postsuper-like writer. */
Test(journal, offline_lock)
{
    char   *dir = tj_tmpdir();
    JOURNAL_OPTIONS o = tj_options(1 << 20, JOURNAL_SYNC_ALWAYS);
    JOURNAL_OPTIONS ro = o;
    TJ_SET  set = {0};
    JOURNAL *j, *r1, *r2;
    MESSAGE *m = tj_message(NULL, 1, 100, 1);

    tj_log_init(0);
    ro.flags = JOURNAL_RDONLY;
    j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    cr_assert_eq(tj_append_message(j, m), 0);
    errno = 0;
    cr_assert_null(journal_open(&journal_backend_fs, dir, &o));
    cr_assert_eq(errno, EWOULDBLOCK);
    cr_assert_null(journal_open(&journal_backend_fs, dir, &ro));
    cr_assert_eq(errno, EWOULDBLOCK);
    journal_close(j);

    /* Two readers at once; a writer must wait for them. */
    r1 = tj_open(&journal_backend_fs, dir, &ro, &set, NULL);
    r2 = journal_open(&journal_backend_fs, dir, &ro);
    cr_assert_not_null(r2);
    cr_assert_null(journal_open(&journal_backend_fs, dir, &o));
    cr_assert_eq(errno, EWOULDBLOCK);
    cr_assert_eq(set.n, 1);
    journal_close(r2);
    journal_close(r1);
    tj_set_free(&set);

    /* postsuper -h with the engine stopped. */
    j = tj_open(&journal_backend_fs, dir, &o, NULL, NULL);
    cr_assert_eq(tj_append_control(j, m->queue_id, JOURNAL_OP_HOLD), 0);
    journal_close(j);
    r1 = tj_open(&journal_backend_fs, dir, &ro, &set, NULL);
    cr_assert_eq(set.n, 1);
    cr_assert(set.v[0].hold);
    journal_close(r1);
    tj_set_free(&set);
    /* A reader of a journal that never existed gets ENOENT. */
    cr_assert_null(journal_open(&journal_backend_fs, "/nonexistent/journal", &ro));
    cr_assert_eq(errno, ENOENT);
    message_free(m);
    tj_rmtree(dir);
    mem_free(dir);
}

/* journal_sync = batch acknowledges before the sync and syncs soon after. */
Test(journal, batch_mode_syncs_later)
{
    JOURNAL_BACKEND be = journal_backend_ram;
    JOURNAL_OPTIONS o = tj_options(1 << 20, JOURNAL_SYNC_BATCH);
    MESSAGE *m = tj_message(NULL, 1, 100, 1);
    JOURNAL *j;
    JOURNAL_STATS st;

    tj_log_init(0);
    gc_inner = &journal_backend_ram;
    be.write = gc_write;
    be.sync = gc_sync;
    o.batch_sync_ms = 300;
    j = tj_open(&be, "ram-batch", &o, NULL, NULL);
    long    syncs0 = __atomic_load_n(&gc_syncs, __ATOMIC_SEQ_CST);

    cr_assert_eq(tj_append_message(j, m), 0);
    /* Acknowledged before any sync... */
    cr_assert_eq(__atomic_load_n(&gc_syncs, __ATOMIC_SEQ_CST), syncs0);
    cr_assert_eq(__atomic_load_n(&gc_unsynced, __ATOMIC_SEQ_CST), 1);
    /* ...and synced within the delay. */
    for (int i = 0; i < 500 && __atomic_load_n(&gc_unsynced, __ATOMIC_SEQ_CST); i++)
	usleep(2000);
    cr_assert_eq(__atomic_load_n(&gc_unsynced, __ATOMIC_SEQ_CST), 0, "never synced");
    cr_assert_gt(__atomic_load_n(&gc_syncs, __ATOMIC_SEQ_CST), syncs0);
    journal_stats(j, &st);
    cr_assert_eq(st.records, 1);
    journal_close(j);
    journal_ram_purge("ram-batch");
    message_free(m);
}

/* Parameters. */
Test(journal, parse_size)
{
    cr_assert_eq(journal_parse_size("64m"), 64LL << 20);
    cr_assert_eq(journal_parse_size("1G"), 1LL << 30);
    cr_assert_eq(journal_parse_size("4096"), 4096);
    cr_assert_eq(journal_parse_size("12k"), 12 << 10);
    cr_assert_eq(journal_parse_size(""), -1);
    cr_assert_eq(journal_parse_size("m"), -1);
    cr_assert_eq(journal_parse_size("-1"), -1);
    cr_assert_eq(journal_parse_size("5x"), -1);
    cr_assert_eq(journal_parse_size("99999999999999999999"), -1);
    cr_assert_eq(journal_parse_size("9999999999999g"), -1);
    JOURNAL_OPTIONS o;

    journal_options_default(&o);
    cr_assert_eq(o.segment_size, 64u << 20);
    cr_assert_eq(o.sync, JOURNAL_SYNC_ALWAYS);
}
