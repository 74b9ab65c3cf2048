/*
 * journal_recover.c - replay the journal at start (see journal.h, RECOVERY).
 *
 * Every segment is mapped read-only and walked record by record. A record
 * counts only if all of these hold: header CRC, segment number, type, zero
 * reserved bits, length within the file, sequence number above every one
 * seen so far, payload CRC, and a payload the decoder accepts. Nothing read
 * from disk is trusted before that, so a damaged journal can lose records
 * but never crash the reader or produce a message that was never written.
 *
 * Damage handling: at the first byte that does not start a valid record,
 * the rest of the segment is searched for the next valid record (cheap
 * prefilter on the segment number and reserved bytes, then both CRCs).
 * None: a torn tail, cut (read-write) and logged. One: the bytes between
 * are skipped and logged, and if the broken record's extent and queue ID
 * are still readable, that message goes to the corrupt state.
 *
 * Threading: the thread calling journal_recover(), before the writer
 * thread exists. Diagnostics: msg_warn for every damage found.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/crc32c.h"
#include "queue/journal_impl.h"
#include "queue/queue_id.h"

typedef struct JRECOVER {
    JOURNAL *j;
    JOURNAL_RECOVERY_STATS *st;
    uint64_t last_seq;
    bool    after_damage;		/* count the sequence gap at the next record */
    struct JRECOVER_MARK {
	char    qid[QUEUE_ID_MAX];
	uint64_t segno;
    }      *marks;			/* damaged records with a readable ID */
    size_t  nmarks;
} JRECOVER;

static void journal_recover_note(JRECOVER *rc, const char *qid, uint64_t segno)
{
    rc->marks = mem_realloc(rc->marks, (rc->nmarks + 1) * sizeof(*rc->marks));
    snprintf(rc->marks[rc->nmarks].qid, QUEUE_ID_MAX, "%s", qid);
    rc->marks[rc->nmarks++].segno = segno;
}

static void journal_recover_mark(JRECOVER *rc, const char *qid)
{
    JENTRY *e = journal_index_find(&rc->j->index, qid);

    if (e != NULL && !(e->flags & JREC_FLAG_CORRUPT)) {
	e->flags |= JREC_FLAG_CORRUPT;
	msg_warn("journal: %s: damaged record, message moved to the corrupt queue", qid);
    }
}

/* Is there a fully valid record at off? */
static bool journal_recover_valid(const unsigned char *d, size_t len, uint64_t off,
				  uint64_t segno, uint64_t last_seq, JREC_HDR *h, bool *hdr_ok)
{
    *hdr_ok = false;
    if (len - off < JREC_HDR_SIZE || !jrec_hdr_decode(d + off, h))
	return false;
    if (h->segno != (uint32_t) segno || h->seq <= last_seq
	|| h->len > len - off - JREC_HDR_SIZE)
	return false;
    *hdr_ok = true;
    return crc32c(0, d + off + JREC_HDR_SIZE, h->len) == h->pcrc;
}

static uint64_t journal_recover_resync(const unsigned char *d, size_t len, uint64_t from,
				       uint64_t segno, uint64_t last_seq)
{
    unsigned char key[4] = {(unsigned char) segno, (unsigned char) (segno >> 8),
    (unsigned char) (segno >> 16), (unsigned char) (segno >> 24)};
    JREC_HDR h;
    bool    hok;

    for (uint64_t p = from; p + JREC_HDR_SIZE <= len; p++) {
	if (memcmp(d + p + 16, key, 4) != 0 || d[p + 24] | d[p + 25] | d[p + 26] | d[p + 27]
	    || d[p + 21] || !JREC_TYPE_VALID(d[p + 20]))
	    continue;
	if (journal_recover_valid(d, len, p, segno, last_seq, &h, &hok))
	    return p;
    }
    return len;
}

static void journal_recover_record(JRECOVER *rc, JSEG *s, uint64_t off, const JREC_HDR *h)
{
    JOURNAL *j = rc->j;
    const char *p = s->map + off + JREC_HDR_SIZE;
    uint32_t reclen = JREC_HDR_SIZE + h->len;
    char    qid[QUEUE_ID_MAX];
    JOP     op = {.type = h->type, .qid = qid};
    bool    ok = true, known = true;

    switch (h->type) {
    case JREC_MESSAGE:{
	    JREC_MSG *rec = MEM_NEW(JREC_MSG);

	    if (jrec_decode_message(p, h->len, rec) != 0) {
		mem_free(rec);
		ok = false;
		break;
	    }
	    MESSAGE *m = rec->msg;

	    queue_id_seen(m->queue_id);
	    snprintf(qid, sizeof(qid), "%s", m->queue_id);
	    op.nrcpt = (uint32_t) m->nrcpt;
	    op.flags = rec->flags;
	    op.rcpt = mem_calloc(m->nrcpt ? m->nrcpt : 1, sizeof(JRCPT));
	    for (size_t i = 0; i < m->nrcpt; i++) {
		op.rcpt[i].state = (uint8_t) m->rcpt[i].state;
		op.rcpt[i].next_retry = rec->next_retry[i];
		op.rcpt[i].reason = rec->reason[i];
		op.rcpt[i].owed = rec->owed[i];
		rec->reason[i] = NULL;
	    }
	    op.rec = rec;
	    (void) journal_apply(j, s, off, reclen, h->seq, &op);
	    break;
	}
    case JREC_OUTCOME:{
	    char   *reason = NULL;

	    if (jrec_decode_outcome(p, h->len, qid, &op.rcpt_index, &op.state,
				    &op.next_retry, &reason) != 0) {
		ok = false;
		break;
	    }
	    op.reason = &reason;
	    known = journal_apply(j, s, off, reclen, h->seq, &op);
	    mem_free(reason);
	    break;
	}
    case JREC_NOTICED:{
	    uint32_t *noticed = NULL;

	    if (jrec_decode_noticed(p, h->len, qid, &op.nnoticed, &noticed) != 0) {
		ok = false;
		break;
	    }
	    op.noticed = noticed;
	    known = journal_apply(j, s, off, reclen, h->seq, &op);
	    mem_free(noticed);
	    break;
	}
    case JREC_REQUEUE:{
	    JOURNAL_ROUTE *routes = NULL;

	    if (jrec_decode_requeue(p, h->len, qid, &op.nroutes, &routes) != 0) {
		ok = false;
		break;
	    }
	    op.routes = routes;
	    known = journal_apply(j, s, off, reclen, h->seq, &op);
	    jrec_routes_free(op.nroutes, routes);
	    break;
	}
    default:
	if (jrec_decode_control(p, h->len, qid) != 0) {
	    ok = false;
	    break;
	}
	known = journal_apply(j, s, off, reclen, h->seq, &op);
	break;
    }
    if (!ok) {
	/* CRC-valid but undecodable: a bug or a forgery, never trusted. */
	msg_warn("journal: undecodable record type %u at segment %llu offset %llu",
		 h->type, (unsigned long long) s->segno, (unsigned long long) off);
	rc->st->damaged++;
	rc->st->damaged_bytes += reclen;
	s->damaged = true;
	if (jrec_peek_qid(p, h->len, qid) == 0)
	    journal_recover_note(rc, qid, s->segno);
	return;
    }
    if (!known)
	rc->st->orphans++;
    rc->st->records++;
}

/* One past the last non-zero byte in [off, len), or off. */
static uint64_t journal_recover_data_end(const unsigned char *d, uint64_t off, uint64_t len)
{
    uint64_t end = len;

    while (end > off && (end & 7))
	if (d[--end] != 0)
	    return end + 1;
    while (end >= off + 8) {
	uint64_t w;

	memcpy(&w, d + end - 8, 8);
	if (w != 0)
	    break;
	end -= 8;
    }
    while (end > off && d[end - 1] == 0)
	end--;
    return end;
}

static void journal_recover_segment(JRECOVER *rc, JSEG *s)
{
    JOURNAL *j = rc->j;
    const unsigned char *d = (const unsigned char *) s->map;
    size_t  len = s->map_len;
    uint64_t off = JSEG_HDR_SIZE, segno, first_seq;

    if (len == 0) {
	s->used = 0;
	return;
    }
    if (jseg_hdr_decode(d, len, &segno, &first_seq) && segno == s->segno) {
	if (first_seq > 0 && first_seq - 1 > rc->last_seq)
	    rc->last_seq = first_seq - 1;
    } else {
	msg_warn("journal: segment %llu: bad segment header", (unsigned long long) s->segno);
	rc->st->damaged++;
	s->damaged = true;
    }
    if (off > len)
	off = len;
    while (off < len) {
	JREC_HDR h;
	bool    hok;

	if (journal_recover_valid(d, len, off, s->segno, rc->last_seq, &h, &hok)) {
	    if (rc->after_damage && h.seq > rc->last_seq + 1)
		rc->st->lost_records += h.seq - rc->last_seq - 1;
	    rc->after_damage = false;
	    journal_recover_record(rc, s, off, &h);
	    rc->last_seq = h.seq;
	    s->has_records = true;
	    off += JREC_HDR_SIZE + h.len;
	    continue;
	}
	/* Not a record: zeros to the end are the clean end of the data. */
	uint64_t end = journal_recover_data_end(d, off, len);

	if (end == off)
	    break;
	char    qid[QUEUE_ID_MAX];
	bool    have_qid = hok && jrec_peek_qid((const char *) d + off + JREC_HDR_SIZE,
						h.len, qid) == 0;
	uint64_t next = journal_recover_resync(d, len, off + 1, s->segno, rc->last_seq);

	if (next >= len) {
	    if (j->rdonly)
		msg_warn("journal: ignored %llu bytes of torn record at segment %llu offset %llu",
			 (unsigned long long) (end - off), (unsigned long long) s->segno,
			 (unsigned long long) off);
	    else
		msg_warn("journal: truncated %llu bytes of torn record at segment %llu offset %llu",
			 (unsigned long long) (end - off), (unsigned long long) s->segno,
			 (unsigned long long) off);
	    rc->st->torn++;
	    rc->st->torn_bytes += end - off;
	    rc->after_damage = true;
	    s->damaged = true;
	    if (have_qid)
		journal_recover_note(rc, qid, s->segno);
	    break;
	}
	msg_warn("journal: skipped %llu bytes of damaged records at segment %llu offset %llu",
		 (unsigned long long) (next - off), (unsigned long long) s->segno,
		 (unsigned long long) off);
	rc->st->damaged++;
	rc->st->damaged_bytes += next - off;
	rc->after_damage = true;
	s->damaged = true;
	if (have_qid)
	    journal_recover_note(rc, qid, s->segno);
	off = next;
    }
    s->used = off;
    s->cap = len;
}

static int journal_recover_cmp(const void *a, const void *b)
{
    const JENTRY *x = *(JENTRY *const *) a, *y = *(JENTRY *const *) b;

    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand every live message to the caller, oldest first. */
static void journal_recover_handout(JOURNAL *j, JOURNAL_RECOVER_FN fn, void *ctx,
				    JOURNAL_RECOVERY_STATS *st)
{
    JENTRY **v = mem_calloc(j->index.count ? j->index.count : 1, sizeof(*v));
    size_t  n = 0;

    for (size_t b = 0; b < j->index.nbuckets; b++)
	for (JENTRY *e = j->index.buckets[b]; e; e = e->hnext)
	    v[n++] = e;
    qsort(v, n, sizeof(*v), journal_recover_cmp);
    for (size_t i = 0; i < n; i++) {
	JENTRY *e = v[i];
	JREC_MSG *rec = e->rec;
	MESSAGE *m = rec->msg;
	const char *base = e->seg->map + e->off + JREC_HDR_SIZE;
	int64_t *retry = mem_calloc(e->nrcpt ? e->nrcpt : 1, sizeof(int64_t));
	const char **reason = mem_calloc(e->nrcpt ? e->nrcpt : 1, sizeof(char *));
	bool   *owed = mem_calloc(e->nrcpt ? e->nrcpt : 1, sizeof(bool));
	JOURNAL_RECOVERED item;

	for (uint32_t r = 0; r < e->nrcpt; r++) {
	    JRCPT  *jr = &e->rcpt[r];

	    m->rcpt[r].state = jr->state;
	    if (jr->transport) {
		mem_free(m->rcpt[r].transport);
		mem_free(m->rcpt[r].nexthop);
		m->rcpt[r].transport = mem_strdup(jr->transport);
		m->rcpt[r].nexthop = mem_strdup(jr->nexthop);
	    }
	    retry[r] = jr->next_retry;
	    reason[r] = jr->reason;
	    owed[r] = jr->owed;
	}
	m->content = journal_seg_blob(e->seg, base + rec->content_off, rec->content_len);
	rec->msg = NULL;
	jrec_msg_free(rec);
	mem_free(rec);
	e->rec = NULL;
	item.msg = m;
	item.hold = (e->flags & JREC_FLAG_HOLD) != 0;
	item.corrupt = (e->flags & JREC_FLAG_CORRUPT) != 0;
	item.warned = (e->flags & JREC_FLAG_WARNED) != 0;
	item.owed = e->nowed > 0;
	item.next_retry = retry;
	item.reason = reason;
	item.notice_owed = owed;
	st->messages++;
	if (item.corrupt)
	    st->corrupt++;
	if (fn)
	    fn(ctx, &item);
	else
	    message_free(m);
	mem_free(retry);
	mem_free(reason);
	mem_free(owed);
    }
    mem_free(v);
}

int     journal_recover(JOURNAL *j, JOURNAL_RECOVER_FN fn, void *ctx,
			JOURNAL_RECOVERY_STATS *stats)
{
    JOURNAL_RECOVERY_STATS st;
    JRECOVER rc = {.j = j, .st = &st};
    uint64_t *segnos = NULL;
    size_t  nseg = 0;
    int     err;

    if (j->recovered)
	msg_panic("journal_recover: called twice");
    memset(&st, 0, sizeof(st));
    if ((err = j->be->list(j->bh, &segnos, &nseg)) != 0)
	return err;
    for (size_t i = 0; i < nseg; i++) {
	JSEG   *s = journal_seg_new(j, segnos[i]);

	if ((err = journal_seg_map(j, s)) != 0) {
	    msg_warn("journal: cannot read segment %llu in %s: %s",
		     (unsigned long long) s->segno, j->dir, strerror(err));
	    mem_free(segnos);
	    mem_free(rc.marks);
	    return err;
	}
	st.segments++;
	journal_recover_segment(&rc, s);
	JOURNAL_STAT_ADD(j, disk_bytes, s->map_len);
    }
    mem_free(segnos);

    /*
     * Damage in the last segment holding records is what a crash leaves
     * behind (an unsynced write torn in any order): those records were
     * never acknowledged, so they change nothing. Damage anywhere else hit
     * acknowledged state: the message, if still live, becomes corrupt.
     */
    uint64_t last_rec_segno = 0;

    for (JSEG *s = j->seg_head; s; s = s->next)
	if (s->has_records)
	    last_rec_segno = s->segno;
    for (size_t i = 0; i < rc.nmarks; i++)
	if (rc.marks[i].segno < last_rec_segno)
	    journal_recover_mark(&rc, rc.marks[i].qid);
    mem_free(rc.marks);
    st.finished = j->nfinished;
    if (!j->rdonly) {
	/* Cut torn tails and preallocated zeros; drop empty segments. */
	JSEG   *next;

	for (JSEG *s = j->seg_head; s; s = next) {
	    next = s->next;
	    if (!s->has_records && !s->damaged) {
		journal_seg_remove(j, s);
		continue;
	    }
	    if (s->used < s->cap) {
		if ((err = j->be->truncate(j->bh, s->segno, s->used)) != 0)
		    msg_fatal("journal: cannot truncate segment %llu in %s: %s",
			      (unsigned long long) s->segno, j->dir, strerror(err));
		JOURNAL_STAT_SUB(j, disk_bytes, s->cap - s->used);
		s->cap = s->used;
	    }
	    s->closed = true;
	}
    }
    j->next_seq = rc.last_seq + 1;
    journal_recover_handout(j, fn, ctx, &st);
    j->recovered = true;
    if (stats)
	*stats = st;
    if (!j->rdonly)
	journal_start_writer(j);
    return 0;
}
