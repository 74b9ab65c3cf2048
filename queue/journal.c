/*
 * journal.c - journal front end: open/close, appends, the writer thread and
 * group commit, segments (see journal.h for the design).
 *
 * Producers encode a JREQ (payload CRC included) and push it on a liburcu
 * wait-free queue, then wake the writer through a futex word with the
 * "set -1, re-check, sleep" pattern of liburcu's call_rcu, so a wake-up is
 * never lost. A writer that will wake by itself within JOURNAL_NAP_NS
 * (it just worked, or a sync is due) sleeps with -2 instead: records that
 * need no sync (OUTCOME, DONE: "lazy") do not wake it, they ride along with
 * the next batch, at most JOURNAL_NAP_NS later. The writer splices
 * everything queued, writes it with one pwritev per segment touched, syncs
 * once, applies it to the index, and completes the waiters in queue order. Segment management and compaction
 * run on the writer thread between batches.
 *
 * Diagnostics: write/fdatasync errors other than ENOSPC/EDQUOT are fatal
 * (msg_fatal), never retried; a segment that cannot be prepared in advance
 * is a warning (once until it works again).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/stage.h"
#include "engine/timeutil.h"
#include "queue/crc32c.h"
#include "queue/journal_impl.h"

/* How long a lazy record may wait for a writer that naps (see above). */
#define JOURNAL_NAP_NS		(10 * 1000 * 1000)
#define JOURNAL_SLEEPING	(-1)	/* every append wakes the writer */
#define JOURNAL_NAPPING		(-2)	/* only appends that need a sync do */

/* Options and parameters. */

long long journal_parse_size(const char *text)
{
    char   *end;
    long long v, mul = 1;

    if (text == NULL || *text < '0' || *text > '9')
	return -1;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno)
	return -1;
    switch (*end) {
    case 'k': case 'K': mul = 1LL << 10; end++; break;
    case 'm': case 'M': mul = 1LL << 20; end++; break;
    case 'g': case 'G': mul = 1LL << 30; end++; break;
    }
    if (*end != 0 || v > LLONG_MAX / mul)
	return -1;
    return v * mul;
}

void    journal_options_default(JOURNAL_OPTIONS *o)
{
    const char *s = param_str(P_JOURNAL_SEGMENT_SIZE);
    long long size = journal_parse_size(s);

    memset(o, 0, sizeof(*o));
    if (size < 65536 || size > (1LL << 40))
	msg_fatal("invalid journal_segment_size value: \"%s\" (64k..1024g)", s);
    o->segment_size = (size_t) size;
    s = param_str(P_JOURNAL_SYNC);
    if (strcmp(s, "always") == 0)
	o->sync = JOURNAL_SYNC_ALWAYS;
    else if (strcmp(s, "batch") == 0)
	o->sync = JOURNAL_SYNC_BATCH;
    else if (strcmp(s, "off") == 0)
	o->sync = JOURNAL_SYNC_OFF;
    else
	msg_fatal("invalid journal_sync value: \"%s\" (always, batch or off)", s);
    o->batch_sync_ms = (int) (param_int(P_JOURNAL_BATCH_SYNC_DELAY) * 1000);
}

/* Segments. */

JSEG   *journal_seg_new(JOURNAL *j, uint64_t segno)
{
    JSEG   *s = MEM_NEW(JSEG);

    s->segno = segno;
    s->refs = 1;			/* the journal's list */
    s->be = j->be;
    s->prev = j->seg_tail;
    if (j->seg_tail)
	j->seg_tail->next = s;
    else
	j->seg_head = s;
    j->seg_tail = s;
    if (segno > j->last_segno)
	j->last_segno = segno;
    JOURNAL_STAT_ADD(j, segments, 1);
    return s;
}

void    journal_seg_unref(JSEG *s)
{
    uint32_t left = __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);

    if (left == UINT32_MAX)
	msg_panic("journal_seg_unref: reference count underflow");
    if (left)
	return;
    if (s->map_cookie || s->map)
	s->be->unmap(s->map, s->map_len, s->map_cookie);
    mem_free(s);
}

int     journal_seg_map(JOURNAL *j, JSEG *s)
{
    if (s->map || s->map_cookie)
	return 0;
    return j->be->map(j->bh, s->segno, &s->map, &s->map_len, &s->map_cookie);
}

static void journal_seg_blob_release(BLOB *b)
{
    journal_seg_unref((JSEG *) b->owner);
}

BLOB   *journal_seg_blob(JSEG *s, const char *data, size_t len)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    /* The mapping is read-only; BLOB bytes are immutable by contract. */
    return blob_external((char *) data, len, journal_seg_blob_release, s);
}

BLOB   *journal_done_content(JOURNAL *j)
{
    const JREQ *r = j->completing;
    size_t  payload;

    if (r == NULL || r->type != JREC_MESSAGE || r->content == NULL || r->seg == NULL
	|| journal_seg_map(j, r->seg) != 0)
	return NULL;
    payload = STR_LEN(&r->payload);
    if (r->off + JREC_HDR_SIZE + payload + r->content->len > r->seg->map_len)
	return NULL;
    return journal_seg_blob(r->seg, r->seg->map + r->off + JREC_HDR_SIZE + payload,
			    r->content->len);
}

const uint64_t journal_sync_bucket_us[JOURNAL_SYNC_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000,
};

static void journal_sync_now(JOURNAL *j, JSEG *s)
{
    int64_t start = time_mono_ns();
    int     err = j->be->sync(j->bh, s->segno);
    uint64_t us, ns = (uint64_t) (time_mono_ns() - start);
    size_t  b = 0;

    if (err)
	msg_fatal("journal: fdatasync segment %llu in %s: %s",
		  (unsigned long long) s->segno, j->dir, strerror(err));
    JOURNAL_STAT_ADD(j, syncs, 1);
    for (us = ns / 1000; b < JOURNAL_SYNC_BUCKETS - 1 && us > journal_sync_bucket_us[b]; b++)
	 /* find the bucket */ ;
    JOURNAL_STAT_ADD(j, sync_hist[b], 1);
    JOURNAL_STAT_ADD(j, sync_ns_total, ns);
    j->dirty = false;
}

void    journal_seg_remove(JOURNAL *j, JSEG *s)
{
    int     err;

    /* Copies made by compaction must be on disk before the original goes. */
    if (j->dirty && j->cur && j->opts.sync != JOURNAL_SYNC_OFF)
	journal_sync_now(j, j->cur);
    if ((err = j->be->remove(j->bh, s->segno)) != 0)
	msg_warn("journal: cannot remove segment %llu in %s: %s",
		 (unsigned long long) s->segno, j->dir, strerror(err));
    if (s->prev)
	s->prev->next = s->next;
    else
	j->seg_head = s->next;
    if (s->next)
	s->next->prev = s->prev;
    else
	j->seg_tail = s->prev;
    if (j->cur == s)
	j->cur = NULL;
    if (j->spare == s)
	j->spare = NULL;
    JOURNAL_STAT_SUB(j, segments, 1);
    JOURNAL_STAT_SUB(j, disk_bytes, s->cap);
    JOURNAL_STAT_ADD(j, removed_segments, 1);
    /* Entries of a removed segment are finished by definition. */
    while (s->entries)
	journal_entry_finish(j, s->entries);
    journal_seg_unref(s);
}

/* Create, preallocate and stamp the next segment. */
static int journal_seg_prepare(JOURNAL *j, uint64_t size, JSEG **out)
{
    uint64_t segno = j->last_segno + 1;
    unsigned char hdr[JSEG_HDR_SIZE];
    struct iovec iov = {hdr, sizeof(hdr)};
    int     err;
    JSEG   *s;

    if ((err = j->be->create(j->bh, segno, (size_t) size)) != 0)
	return err;
    jseg_hdr_encode(hdr, segno, j->next_seq, time_real_us());
    if ((err = j->be->write(j->bh, segno, 0, &iov, 1)) != 0) {
	(void) j->be->remove(j->bh, segno);
	return err;
    }
    s = journal_seg_new(j, segno);
    s->used = JSEG_HDR_SIZE;
    s->cap = size;
    JOURNAL_STAT_ADD(j, disk_bytes, size);
    *out = s;
    return 0;
}

/* Close the current segment and move to the next, prepared one. */
static int journal_rotate(JOURNAL *j, uint64_t need)
{
    JSEG   *s = j->cur;
    uint64_t size = j->opts.segment_size;
    int     err;

    if (s != NULL) {
	if (j->dirty && j->opts.sync != JOURNAL_SYNC_OFF)
	    journal_sync_now(j, s);
	if (!s->closed && s->cap > s->used) {
	    if ((err = j->be->truncate(j->bh, s->segno, s->used)) != 0)
		msg_warn("journal: cannot shrink segment %llu: %s",
			 (unsigned long long) s->segno, strerror(err));
	    else {
		JOURNAL_STAT_SUB(j, disk_bytes, s->cap - s->used);
		s->cap = s->used;
	    }
	}
	s->closed = true;
	j->cur = NULL;
    }
    if (need + JSEG_HDR_SIZE > size)
	size = need + JSEG_HDR_SIZE;
    if (j->spare && j->spare->cap < need + JSEG_HDR_SIZE)
	journal_seg_remove(j, j->spare);	/* too small for this record */
    if (j->spare) {
	j->cur = j->spare;
	j->spare = NULL;
    } else if ((err = journal_seg_prepare(j, size, &j->cur)) != 0) {
	return err;
    }
    /* One segment ahead: disk full shows before the current one fills. */
    if ((err = journal_seg_prepare(j, j->opts.segment_size, &j->spare)) != 0) {
	if (!j->spare_warned)
	    msg_warn("journal: cannot prepare the next segment in %s: %s",
		     j->dir, strerror(err));
	j->spare_warned = true;
    } else
	j->spare_warned = false;
    return 0;
}

/* Requests. */

void    journal_req_free(JREQ *r)
{
    str_release(&r->payload);
    blob_unref(r->content);
    if (r->rcpt) {
	for (uint32_t i = 0; i < r->nrcpt; i++) {
	    mem_free(r->rcpt[i].reason);
	    mem_free(r->rcpt[i].transport);
	    mem_free(r->rcpt[i].nexthop);
	}
	mem_free(r->rcpt);
    }
    mem_free(r->reason);
    jrec_routes_free(r->nroutes, r->routes);
    mem_free(r->noticed);
    mem_free(r);
}

/*
 * Records that need no sync of their own: lost in a crash, they only make
 * a recipient pending again (delivered twice, never dropped), a notice
 * owed again (sent twice) or a delay notice due again.
 */
static bool journal_req_lazy(const JREQ *r)
{
    return r->type == JREC_OUTCOME || r->type == JREC_DONE || r->type == JREC_NOTICED
	|| r->type == JREC_WARNED;
}

static JREQ *journal_req_new(int type, const char *qid)
{
    JREQ   *r = MEM_NEW(JREQ);

    if (qid == NULL || *qid == 0 || strlen(qid) >= QUEUE_ID_MAX)
	msg_panic("journal: bad queue ID \"%s\"", qid ? qid : "(null)");
    r->type = (uint16_t) type;
    str_init(&r->payload);
    snprintf(r->qid, sizeof(r->qid), "%s", qid);
    return r;
}

static void journal_req_seal(JREQ *r)
{
    r->pcrc = crc32c(0, STR_DATA(&r->payload), STR_LEN(&r->payload));
    r->total = JREC_HDR_SIZE + STR_LEN(&r->payload);
    if (r->content) {
	r->pcrc = crc32c(r->pcrc, r->content->data, r->content->len);
	r->total += r->content->len;
    }
}

JREQ   *journal_req_message(const MESSAGE *m, unsigned flags, const JREC_RSTATE *rs)
{
    JREQ   *r = journal_req_new(JREC_MESSAGE, m->queue_id);

    jrec_encode_message(&r->payload, m, flags, rs);
    r->content = m->content ? blob_ref(m->content) : NULL;
    journal_req_seal(r);
    r->nrcpt = (uint32_t) m->nrcpt;
    r->flags = flags;
    r->rcpt = mem_calloc(m->nrcpt ? m->nrcpt : 1, sizeof(JRCPT));
    for (size_t i = 0; i < m->nrcpt; i++) {
	r->rcpt[i].state = (uint8_t) m->rcpt[i].state;
	if (rs) {
	    r->rcpt[i].next_retry = rs[i].next_retry;
	    r->rcpt[i].reason = rs[i].reason ? mem_strdup(rs[i].reason) : NULL;
	    r->rcpt[i].owed = rs[i].owed;
	}
    }
    return r;
}

/*
 * The full barriers between "enqueue" and "read the futex word" here, and
 * between "set -1" and "look at the queue" in journal_writer_sleep, are
 * seq_cst read-modify-writes (locked instructions on x86) rather than
 * fences, which ThreadSanitizer does not model.
 */
static void journal_wake(JOURNAL *j, bool lazy)
{
    int     state = __atomic_fetch_or(&j->futex, 0, __ATOMIC_SEQ_CST);

    if (state == JOURNAL_SLEEPING || (state == JOURNAL_NAPPING && !lazy)) {
	__atomic_store_n(&j->futex, 0, __ATOMIC_SEQ_CST);
	(void) syscall(SYS_futex, &j->futex, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

/* A wake-up an I/O thread deferred to the end of its turn (stage_defer). */
static void journal_wake_deferred(void *arg)
{
    journal_wake((JOURNAL *) arg, false);
}

static void journal_enqueue(JOURNAL *j, JREQ *r, JOURNAL_DONE_FN done, void *ctx)
{
    if (!j->recovered || j->rdonly || __atomic_load_n(&j->stop, __ATOMIC_RELAXED))
	msg_panic("journal: append %s", j->rdonly ? "to a read-only journal" :
		  j->recovered ? "after journal_close" : "before journal_recover");
    r->done = done;
    r->ctx = ctx;
    if (r->total - JREC_HDR_SIZE > JREC_MAX_PAYLOAD) {
	journal_req_free(r);
	if (done)
	    done(ctx, EFBIG);
	return;
    }
    cds_wfcq_node_init(&r->node);
    /* The queue's own ordering is inside liburcu, invisible to TSan. */
    /* The records journal_writer_batch() writes without a sync. Decided
     * before the enqueue: after it, the writer may free r at any time. */
    bool    lazy = journal_req_lazy(r);

    __atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
    cds_wfcq_enqueue(&j->qhead, &j->qtail, &r->node);
    /*
     * Group commit across sessions: an smtpd thread wakes the writer once
     * at the end of its epoll batch, so the messages that batch completed
     * share one write and one sync (and a writer that preempts on wake-up
     * does not take them one by one).
     */
    if (lazy || !stage_defer(journal_wake_deferred, j))
	journal_wake(j, lazy);
}

void    journal_append_message(JOURNAL *j, const MESSAGE *m, JOURNAL_DONE_FN done, void *ctx)
{
    journal_enqueue(j, journal_req_message(m, 0, NULL), done, ctx);
}

void    journal_append_outcome(JOURNAL *j, const char *queue_id, size_t rcpt_index,
			       enum rcpt_state state, unsigned flags, const char *reason,
			       int64_t next_retry, JOURNAL_DONE_FN done, void *ctx)
{
    JREQ   *r = journal_req_new(JREC_OUTCOME, queue_id);
    int     st = (int) state;

    if ((int) state < RCPT_PENDING || state > RCPT_DROPPED || rcpt_index > UINT32_MAX
	|| (flags & ~JOURNAL_NOTICE_OWED)
	|| ((flags & JOURNAL_NOTICE_OWED) && state != RCPT_SENT && state != RCPT_BOUNCED))
	msg_panic("journal_append_outcome: bad state %d, flags %#x or index %zu",
		  (int) state, flags, rcpt_index);
    if (flags & JOURNAL_NOTICE_OWED)
	st |= JREC_STATE_OWED;
    jrec_encode_outcome(&r->payload, queue_id, (uint32_t) rcpt_index, st, next_retry, reason);
    journal_req_seal(r);
    r->rcpt_index = (uint32_t) rcpt_index;
    r->state = st;
    r->next_retry = next_retry;
    r->reason = reason ? mem_strdup(reason) : NULL;
    journal_enqueue(j, r, done, ctx);
}

void    journal_append_control(JOURNAL *j, const char *queue_id, enum journal_op op,
			       JOURNAL_DONE_FN done, void *ctx)
{
    if (op != JOURNAL_OP_HOLD && op != JOURNAL_OP_RELEASE && op != JOURNAL_OP_DELETE
	&& op != JOURNAL_OP_DONE && op != JOURNAL_OP_WARNED)
	msg_panic("journal_append_control: bad operation %d", (int) op);
    JREQ   *r = journal_req_new((int) op, queue_id);

    jrec_encode_control(&r->payload, queue_id);
    journal_req_seal(r);
    journal_enqueue(j, r, done, ctx);
}

void    journal_append_noticed(JOURNAL *j, const char *queue_id, size_t n,
			       const size_t *rcpt_index, JOURNAL_DONE_FN done, void *ctx)
{
    JREQ   *r = journal_req_new(JREC_NOTICED, queue_id);

    r->nnoticed = n;
    r->noticed = mem_calloc(n ? n : 1, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
	if (rcpt_index[i] > UINT32_MAX)
	    msg_panic("journal_append_noticed: bad index %zu", rcpt_index[i]);
	r->noticed[i] = (uint32_t) rcpt_index[i];
    }
    jrec_encode_noticed(&r->payload, queue_id, n, r->noticed);
    journal_req_seal(r);
    journal_enqueue(j, r, done, ctx);
}

void    journal_append_requeue(JOURNAL *j, const char *queue_id, size_t n,
			       const JOURNAL_ROUTE *routes, JOURNAL_DONE_FN done, void *ctx)
{
    JREQ   *r = journal_req_new(JREC_REQUEUE, queue_id);

    jrec_encode_requeue(&r->payload, queue_id, n, routes);
    journal_req_seal(r);
    r->nroutes = n;
    r->routes = mem_calloc(n ? n : 1, sizeof(JOURNAL_ROUTE));
    for (size_t i = 0; i < n; i++) {
	r->routes[i].rcpt_index = routes[i].rcpt_index;
	r->routes[i].transport = routes[i].transport ? mem_strdup(routes[i].transport) : NULL;
	r->routes[i].nexthop = routes[i].nexthop ? mem_strdup(routes[i].nexthop) : NULL;
    }
    journal_enqueue(j, r, done, ctx);
}

/* The writer. */

static void journal_fail(JREQ **v, size_t from, size_t to, int err)
{
    for (size_t i = from; i < to; i++)
	if (v[i]->done)
	    v[i]->done(v[i]->ctx, err);
}

static bool journal_soft_error(int err)
{
    return err == ENOSPC || err == EDQUOT;
}

static void journal_iov_add(JOURNAL *j, size_t *n, const void *base, size_t len)
{
    if (len == 0)
	return;
    if (*n == j->iov_cap) {
	j->iov_cap = j->iov_cap ? 2 * j->iov_cap : 256;
	j->iov = mem_realloc(j->iov, j->iov_cap * sizeof(struct iovec));
    }
    j->iov[*n].iov_base = (void *) base;
    j->iov[*n].iov_len = len;
    (*n)++;
}

/* Write, sync, apply and complete v[0..n) in order. Writer thread only. */
void    journal_writer_batch(JOURNAL *j, JREQ **v, size_t n)
{
    size_t  i = 0;
    int     err;

    while (i < n) {
	JSEG   *s = j->cur;

	if (s == NULL || s->closed || s->used + v[i]->total > s->cap) {
	    if ((err = journal_rotate(j, v[i]->total)) != 0) {
		/* Finished segments may free enough; try once more. */
		journal_compact_step(j);
		err = journal_rotate(j, v[i]->total);
	    }
	    if (err != 0) {
		if (!journal_soft_error(err))
		    msg_fatal("journal: cannot create a segment in %s: %s", j->dir, strerror(err));
		JOURNAL_STAT_ADD(j, enospc, n - i);
		journal_fail(v, i, n, err);
		return;
	    }
	    s = j->cur;
	}

	/* The longest run that fits in this segment. */
	size_t  k = i, niov = 0;
	uint64_t bytes = 0;

	while (k < n && s->used + bytes + v[k]->total <= s->cap) {
	    JREQ   *r = v[k];
	    JREC_HDR h;

	    h.len = (uint32_t) (r->total - JREC_HDR_SIZE);
	    h.pcrc = r->pcrc;
	    h.seq = r->seq = j->next_seq++;
	    h.segno = (uint32_t) s->segno;
	    h.type = r->type;
	    h.flags = 0;
	    jrec_hdr_encode(r->hdr, &h);
	    journal_iov_add(j, &niov, r->hdr, JREC_HDR_SIZE);
	    journal_iov_add(j, &niov, STR_DATA(&r->payload), STR_LEN(&r->payload));
	    if (r->content)
		journal_iov_add(j, &niov, r->content->data, r->content->len);
	    bytes += r->total;
	    k++;
	}
	err = j->be->write(j->bh, s->segno, s->used, j->iov, (int) niov);
	if (err != 0) {
	    if (!journal_soft_error(err))
		msg_fatal("journal: write to segment %llu in %s: %s",
			  (unsigned long long) s->segno, j->dir, strerror(err));
	    /* Cut whatever landed, so refused records never replay. */
	    if ((err = j->be->truncate(j->bh, s->segno, s->used)) != 0)
		msg_fatal("journal: truncate segment %llu in %s: %s",
			  (unsigned long long) s->segno, j->dir, strerror(err));
	    journal_sync_now(j, s);
	    JOURNAL_STAT_SUB(j, disk_bytes, s->cap - s->used);
	    s->cap = s->used;
	    s->closed = true;
	    j->cur = NULL;
	    JOURNAL_STAT_ADD(j, enospc, k - i);
	    journal_fail(v, i, k, ENOSPC);
	    i = k;
	    continue;
	}
	/* Lazy records ride along with the next sync, or the timer syncs
	 * them within journal_batch_sync_delay. */
	bool    must_sync = false;

	for (size_t m = i; m < k && !must_sync; m++)
	    must_sync = !journal_req_lazy(v[m]);
	if (j->opts.sync == JOURNAL_SYNC_ALWAYS && must_sync)
	    journal_sync_now(j, s);
	else if (!j->dirty) {
	    j->dirty = true;
	    j->dirty_since_ns = time_mono_ns();
	}
	uint64_t off = s->used;

	for (size_t m = i; m < k; m++) {
	    JREQ   *r = v[m];
	    JOP     op = {
		.type = r->type, .qid = r->qid, .nrcpt = r->nrcpt, .flags = r->flags,
		.rcpt = r->rcpt, .rcpt_index = r->rcpt_index, .state = r->state,
		.next_retry = r->next_retry, .reason = &r->reason,
		.nroutes = r->nroutes, .routes = r->routes,
		.nnoticed = r->nnoticed, .noticed = r->noticed,
	    };

	    (void) journal_apply(j, s, off, (uint32_t) r->total, r->seq, &op);
	    r->rcpt = op.rcpt;
	    r->seg = s;
	    r->off = off;
	    off += r->total;
	}
	s->used += bytes;
	s->has_records = true;
	JOURNAL_STAT_ADD(j, records, k - i);
	JOURNAL_STAT_ADD(j, batches, 1);
	JOURNAL_STAT_ADD(j, bytes, bytes);
	for (size_t m = i; m < k; m++) {
	    if (v[m]->done) {
		j->completing = v[m];
		v[m]->done(v[m]->ctx, 0);
		j->completing = NULL;
	    }
	}
	i = k;
    }
}

static void journal_writer_sleep(JOURNAL *j, int64_t timeout_ns)
{
    /* A short sleep need not be cut short for lazy records. */
    int     state = timeout_ns >= 0 && timeout_ns <= JOURNAL_NAP_NS
	? JOURNAL_NAPPING : JOURNAL_SLEEPING;

    (void) __atomic_exchange_n(&j->futex, state, __ATOMIC_SEQ_CST);
    if (!cds_wfcq_empty(&j->qhead, &j->qtail) || __atomic_load_n(&j->stop, __ATOMIC_SEQ_CST)) {
	__atomic_store_n(&j->futex, 0, __ATOMIC_SEQ_CST);
	return;
    }
    while (__atomic_load_n(&j->futex, __ATOMIC_SEQ_CST) == state) {
	struct timespec ts, *tsp = NULL;

	if (timeout_ns >= 0) {
	    ts.tv_sec = timeout_ns / TIME_NS_PER_SEC;
	    ts.tv_nsec = timeout_ns % TIME_NS_PER_SEC;
	    tsp = &ts;
	}
	if (syscall(SYS_futex, &j->futex, FUTEX_WAIT_PRIVATE, state, tsp, NULL, 0) < 0
	    && errno == ETIMEDOUT)
	    break;
    }
    __atomic_store_n(&j->futex, 0, __ATOMIC_SEQ_CST);
}

static void *journal_writer_main(void *arg)
{
    JOURNAL *j = arg;
    JREQ  **v = NULL;
    size_t  cap = 0;
    bool    worked = false;		/* since the last sleep: nap first */

    (void) pthread_setname_np(pthread_self(), "journal");
    stage_thread_sched(true);
    journal_compact_step(j);
    for (;;) {
	struct __cds_wfcq_head bh;
	struct cds_wfcq_tail bt;
	struct cds_wfcq_node *node, *next;
	size_t  n = 0;

	__cds_wfcq_init(&bh, &bt);
	if (__cds_wfcq_splice_blocking(&bh, &bt, &j->qhead, &j->qtail) == CDS_WFCQ_RET_SRC_EMPTY) {
	    int64_t timeout = -1;

	    if (j->dirty && j->opts.sync != JOURNAL_SYNC_OFF) {
		int64_t due = j->dirty_since_ns + (int64_t) j->opts.batch_sync_ms * 1000000;
		int64_t now = time_mono_ns();

		if (now >= due) {
		    journal_sync_now(j, j->cur);
		    continue;
		}
		timeout = due - now;
	    }
	    if (__atomic_load_n(&j->stop, __ATOMIC_SEQ_CST))
		break;
	    /* More records are likely soon: nap, so lazy ones need no wake-up. */
	    if (worked && (timeout < 0 || timeout > JOURNAL_NAP_NS))
		timeout = JOURNAL_NAP_NS;
	    worked = false;
	    journal_writer_sleep(j, timeout);
	    continue;
	}
	__cds_wfcq_for_each_blocking_safe(&bh, &bt, node, next) {
	    JREQ   *r = caa_container_of(node, JREQ, node);

	    if (__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE) != 1)
		msg_panic("journal: unpublished request");
	    if (n == cap) {
		cap = cap ? 2 * cap : 256;
		v = mem_realloc(v, cap * sizeof(*v));
	    }
	    v[n++] = r;
	}
	journal_writer_batch(j, v, n);
	worked = true;
	for (size_t i = 0; i < n; i++)
	    journal_req_free(v[i]);
	if (j->dirty && j->opts.sync != JOURNAL_SYNC_OFF
	    && time_mono_ns() - j->dirty_since_ns >= (int64_t) j->opts.batch_sync_ms * 1000000)
	    journal_sync_now(j, j->cur);
	journal_compact_step(j);
    }
    if (j->dirty && j->cur && j->opts.sync != JOURNAL_SYNC_OFF)
	journal_sync_now(j, j->cur);
    mem_free(v);
    return NULL;
}

int     journal_start_writer(JOURNAL *j)
{
    int     err;

    if ((err = journal_rotate(j, 0)) != 0)
	msg_warn("journal: cannot create a segment in %s: %s", j->dir, strerror(err));
    if ((err = pthread_create(&j->writer, NULL, journal_writer_main, j)) != 0)
	msg_fatal("journal: cannot start the writer thread: %s", strerror(err));
    j->writer_running = true;
    return 0;
}

/* Open and close. */

JOURNAL *journal_open(const JOURNAL_BACKEND *be, const char *dir, const JOURNAL_OPTIONS *opts)
{
    JOURNAL *j;
    JOURNAL_OPTIONS o;
    STR     path = STR_INIT;
    int     err = 0;
    void   *bh;

    if (opts)
	o = *opts;
    else
	journal_options_default(&o);
    if (o.segment_size < 4096)
	o.segment_size = 4096;
    if (dir == NULL) {
	str_printf(&path, "%s/journal", param_str(P_QUEUE_DIRECTORY));
	dir = STR_DATA(&path);
    }
    if ((bh = be->open(dir, &o, &err)) == NULL) {
	str_release(&path);
	errno = err;
	return NULL;
    }
    j = MEM_NEW(JOURNAL);
    j->be = be;
    j->bh = bh;
    j->dir = mem_strdup(dir);
    j->opts = o;
    j->rdonly = (o.flags & JOURNAL_RDONLY) != 0;
    j->next_seq = 1;
    __cds_wfcq_init(&j->qhead, &j->qtail);
    journal_index_init(&j->index);
    str_release(&path);
    return j;
}

void    journal_close(JOURNAL *j)
{
    if (j == NULL)
	return;
    if (j->writer_running) {
	__atomic_store_n(&j->stop, 1, __ATOMIC_SEQ_CST);
	journal_wake(j, false);
	pthread_join(j->writer, NULL);
	if (j->spare)
	    journal_seg_remove(j, j->spare);
	if (j->cur && j->cur->cap > j->cur->used
	    && j->be->truncate(j->bh, j->cur->segno, j->cur->used) == 0)
	    JOURNAL_STAT_SUB(j, disk_bytes, j->cur->cap - j->cur->used);
    }
    journal_index_free(&j->index);
    while (j->seg_head) {
	JSEG   *s = j->seg_head;

	j->seg_head = s->next;
	s->entries = NULL;		/* freed with the index */
	journal_seg_unref(s);
    }
    j->be->close(j->bh);
    mem_free(j->iov);
    mem_free(j->dir);
    mem_free(j);
}

void    journal_stats(JOURNAL *j, JOURNAL_STATS *st)
{
#define JOURNAL_STAT_GET(f) st->f = __atomic_load_n(&j->st.f, __ATOMIC_RELAXED)
    JOURNAL_STAT_GET(records);
    JOURNAL_STAT_GET(batches);
    JOURNAL_STAT_GET(syncs);
    JOURNAL_STAT_GET(bytes);
    JOURNAL_STAT_GET(enospc);
    JOURNAL_STAT_GET(segments);
    JOURNAL_STAT_GET(disk_bytes);
    JOURNAL_STAT_GET(live_messages);
    JOURNAL_STAT_GET(live_bytes);
    JOURNAL_STAT_GET(compacted);
    JOURNAL_STAT_GET(removed_segments);
    JOURNAL_STAT_GET(sync_ns_total);
    for (size_t b = 0; b < JOURNAL_SYNC_BUCKETS; b++)
	JOURNAL_STAT_GET(sync_hist[b]);
}

/* Blocking wait for one completion. */

void    journal_wait_init(JOURNAL_WAIT *w)
{
    w->state = 0;
    w->status = 0;
}

void    journal_wait_done(void *ctx, int status)
{
    JOURNAL_WAIT *w = ctx;

    w->status = status;
    __atomic_store_n(&w->state, 1, __ATOMIC_RELEASE);
    (void) syscall(SYS_futex, &w->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int     journal_wait(JOURNAL_WAIT *w)
{
    while (__atomic_load_n(&w->state, __ATOMIC_ACQUIRE) == 0)
	(void) syscall(SYS_futex, &w->state, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return w->status;
}
