/*
 * journal_compact.c - keep the journal's disk use bounded (invariant 4).
 *
 * Run by the writer thread after every batch. First, the oldest segments
 * that hold no live message are deleted, oldest first (a newer segment may
 * hold a state change of a message in an older one, never the reverse, so
 * deleting in order never resurrects or forgets anything). Then, if the
 * oldest segment is pinned by live messages and the policy in journal.h
 * says so, up to JOURNAL_COMPACT_BUDGET bytes of its live messages are
 * copied forward as new MESSAGE records carrying their current state (the
 * content written straight from the old segment's mapping); once it holds
 * no live message it is deleted like any other. A large backlog is thus
 * moved a few megabytes per batch, never stalling commits for long.
 *
 * Diagnostics: a segment that cannot be mapped, or a record that no
 * longer decodes, is logged once and left in place (never dropped).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/crc32c.h"
#include "queue/journal_impl.h"

#define JOURNAL_COMPACT_BUDGET	(8u << 20)	/* bytes copied per step */
#define JOURNAL_COMPACT_MAX	256		/* messages copied per step */
#define JOURNAL_COMPACT_CLOSED	3		/* closed segments before any copy */
#define JENTRY_UNCOPYABLE	(1u<<8)		/* in JENTRY.flags, never on disk */

/* A MESSAGE record of e with its current state, or NULL if unreadable. */
static JREQ *journal_compact_copy(JOURNAL *j, JENTRY *e)
{
    JSEG   *s = e->seg;
    JREC_HDR h;
    JREC_MSG d;
    const char *p;
    JREQ   *r;

    if (e->off + e->reclen > s->map_len
	|| !jrec_hdr_decode((const unsigned char *) s->map + e->off, &h)
	|| h.len + JREC_HDR_SIZE != e->reclen || h.type != JREC_MESSAGE)
	return NULL;
    p = s->map + e->off + JREC_HDR_SIZE;
    if (crc32c(0, p, h.len) != h.pcrc || jrec_decode_message(p, h.len, &d) != 0)
	return NULL;
    if (d.msg->nrcpt != e->nrcpt) {
	jrec_msg_free(&d);
	return NULL;
    }
    JREC_RSTATE *rs = mem_calloc(e->nrcpt ? e->nrcpt : 1, sizeof(*rs));

    for (uint32_t i = 0; i < e->nrcpt; i++) {
	RCPT   *rc = &d.msg->rcpt[i];
	JRCPT  *jr = &e->rcpt[i];

	rc->state = jr->state;
	if (jr->transport) {
	    mem_free(rc->transport);
	    mem_free(rc->nexthop);
	    rc->transport = mem_strdup(jr->transport);
	    rc->nexthop = mem_strdup(jr->nexthop);
	}
	rs[i].next_retry = jr->next_retry;
	rs[i].reason = jr->reason;
	rs[i].owed = jr->owed;
    }
    d.msg->content = journal_seg_blob(s, p + d.content_off, d.content_len);
    r = journal_req_message(d.msg, e->flags & JREC_FLAGS_KNOWN, rs);
    mem_free(rs);
    jrec_msg_free(&d);
    return r;
}

/* Copy forward up to *budget bytes of the oldest segment's live messages.
 * Returns false when there is nothing (more) to do. */
static bool journal_compact_one(JOURNAL *j, JSEG *s, uint64_t *budget)
{
    int     err = journal_seg_map(j, s);

    if (err != 0) {
	if (!j->compact_warned)
	    msg_warn("journal: cannot read segment %llu for compaction: %s",
		     (unsigned long long) s->segno, strerror(err));
	j->compact_warned = true;
	return false;
    }

    JREQ   *v[JOURNAL_COMPACT_MAX];
    size_t  n = 0, before = s->live_count;
    uint64_t bytes = 0;

    for (JENTRY *e = s->entries; e && n < JOURNAL_COMPACT_MAX && bytes < *budget;
	 e = e->snext) {
	JREQ   *r;

	if (e->flags & JENTRY_UNCOPYABLE)
	    continue;
	if ((r = journal_compact_copy(j, e)) == NULL) {
	    msg_warn("journal: %s: record at segment %llu offset %llu no longer reads;"
		     " left in place, marked corrupt", e->qid,
		     (unsigned long long) s->segno, (unsigned long long) e->off);
	    e->flags |= JREC_FLAG_CORRUPT | JENTRY_UNCOPYABLE;
	    continue;
	}
	bytes += r->total;
	v[n++] = r;
    }
    if (n == 0)
	return false;
    j->compacting = true;
    journal_writer_batch(j, v, n);
    j->compacting = false;
    for (size_t i = 0; i < n; i++)
	journal_req_free(v[i]);
    JOURNAL_STAT_ADD(j, compacted, before - s->live_count);
    *budget = bytes < *budget ? *budget - bytes : 0;
    return s->live_count < before;		/* no progress: ENOSPC */
}

void    journal_compact_step(JOURNAL *j)
{
    uint64_t budget = JOURNAL_COMPACT_BUDGET;

    if (j->compacting)				/* from journal_writer_batch */
	return;
    for (;;) {
	JSEG   *s;
	size_t  nclosed = 0;

	/* Delete finished segments, oldest first. */
	while ((s = j->seg_head) != NULL && s != j->cur && s != j->spare && s->live_count == 0)
	    journal_seg_remove(j, s);
	if (s == NULL || s == j->cur || s == j->spare || budget == 0)
	    return;
	for (JSEG *t = s; t && t != j->cur && t != j->spare; t = t->next)
	    nclosed++;
	if (nclosed < JOURNAL_COMPACT_CLOSED)
	    return;
	uint64_t disk = __atomic_load_n(&j->st.disk_bytes, __ATOMIC_RELAXED);
	uint64_t live = __atomic_load_n(&j->st.live_bytes, __ATOMIC_RELAXED);

	if (!(s->live_bytes * 2 <= s->used
	      || disk > 2 * live + JOURNAL_COMPACT_CLOSED * (uint64_t) j->opts.segment_size))
	    return;
	if (!journal_compact_one(j, s, &budget))
	    return;
    }
}
