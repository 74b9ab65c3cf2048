/*
 * journal_index.c - the journal's live-message index and record application.
 *
 * One JENTRY per live message, found by queue ID (chained hash, doubling
 * at load 1) and linked into the list of the segment that holds its
 * MESSAGE record, which is what segment deletion and compaction walk.
 * journal_apply() is the one place where a record changes state, used by
 * both recovery (decoded records) and the writer (requests it just made
 * durable), so replay reproduces exactly what the running engine saw.
 *
 * Threading: recovery thread, then writer thread only (journal_impl.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/journal_impl.h"

static size_t journal_index_hash(const char *qid)
{
    uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

    for (; *qid; qid++)
	h = (h ^ (unsigned char) *qid) * 1099511628211ULL;
    return (size_t) (h ^ (h >> 29));
}

void    journal_index_init(JINDEX *ix)
{
    ix->nbuckets = 1024;
    ix->buckets = mem_calloc(ix->nbuckets, sizeof(JENTRY *));
    ix->count = 0;
}

void    journal_index_free(JINDEX *ix)
{
    for (size_t i = 0; i < ix->nbuckets; i++) {
	JENTRY *e, *next;

	for (e = ix->buckets[i]; e; e = next) {
	    next = e->hnext;
	    journal_entry_free(e);
	}
    }
    mem_free(ix->buckets);
    memset(ix, 0, sizeof(*ix));
}

JENTRY *journal_index_find(JINDEX *ix, const char *qid)
{
    JENTRY *e = ix->buckets[journal_index_hash(qid) & (ix->nbuckets - 1)];

    while (e && strcmp(e->qid, qid) != 0)
	e = e->hnext;
    return e;
}

static void journal_index_grow(JINDEX *ix)
{
    size_t  n = ix->nbuckets * 2;
    JENTRY **b = mem_calloc(n, sizeof(JENTRY *));

    for (size_t i = 0; i < ix->nbuckets; i++) {
	JENTRY *e, *next;

	for (e = ix->buckets[i]; e; e = next) {
	    size_t  h = journal_index_hash(e->qid) & (n - 1);

	    next = e->hnext;
	    e->hnext = b[h];
	    b[h] = e;
	}
    }
    mem_free(ix->buckets);
    ix->buckets = b;
    ix->nbuckets = n;
}

void    journal_index_insert(JINDEX *ix, JENTRY *e)
{
    if (ix->count >= ix->nbuckets)
	journal_index_grow(ix);
    size_t  h = journal_index_hash(e->qid) & (ix->nbuckets - 1);

    e->hnext = ix->buckets[h];
    ix->buckets[h] = e;
    ix->count++;
}

void    journal_index_delete(JINDEX *ix, JENTRY *e)
{
    JENTRY **pp = &ix->buckets[journal_index_hash(e->qid) & (ix->nbuckets - 1)];

    while (*pp && *pp != e)
	pp = &(*pp)->hnext;
    if (*pp == NULL)
	msg_panic("journal_index_delete: %s not in the index", e->qid);
    *pp = e->hnext;
    ix->count--;
}

bool    journal_rcpt_final(int state)
{
    return state == RCPT_SENT || state == RCPT_BOUNCED || state == RCPT_DROPPED;
}

void    journal_entry_free(JENTRY *e)
{
    for (uint32_t i = 0; i < e->nrcpt; i++) {
	mem_free(e->rcpt[i].reason);
	mem_free(e->rcpt[i].transport);
	mem_free(e->rcpt[i].nexthop);
    }
    mem_free(e->rcpt);
    if (e->rec) {
	jrec_msg_free(e->rec);
	mem_free(e->rec);
    }
    mem_free(e);
}

/* Unlink a message that needs no journal space any more, and free it. */
void    journal_entry_finish(JOURNAL *j, JENTRY *e)
{
    JSEG   *s = e->seg;

    if (e->sprev)
	e->sprev->snext = e->snext;
    else
	s->entries = e->snext;
    if (e->snext)
	e->snext->sprev = e->sprev;
    s->live_count--;
    s->live_bytes -= e->reclen;
    JOURNAL_STAT_SUB(j, live_messages, 1);
    JOURNAL_STAT_SUB(j, live_bytes, e->reclen);
    journal_index_delete(&j->index, e);
    journal_entry_free(e);
    j->nfinished++;
}

/* Every recipient final and no notice owed: the message needs no space. */
static void journal_entry_finish_if_done(JOURNAL *j, JENTRY *e)
{
    if (e->nfinal == e->nrcpt && e->nowed == 0)
	journal_entry_finish(j, e);
}

static void journal_apply_message(JOURNAL *j, JSEG *seg, uint64_t off, uint32_t reclen,
				  uint64_t seq, JOP *op)
{
    JENTRY *e = journal_index_find(&j->index, op->qid);

    if (e != NULL) {				/* superseded by a copy */
	journal_entry_finish(j, e);
	j->nfinished--;
    }
    e = MEM_NEW(JENTRY);
    snprintf(e->qid, sizeof(e->qid), "%s", op->qid);
    e->seg = seg;
    e->off = off;
    e->reclen = reclen;
    e->seq = seq;
    e->nrcpt = op->nrcpt;
    e->rcpt = op->rcpt;
    op->rcpt = NULL;
    e->flags = op->flags;
    e->rec = op->rec;
    op->rec = NULL;
    for (uint32_t i = 0; i < e->nrcpt; i++) {
	if (journal_rcpt_final(e->rcpt[i].state))
	    e->nfinal++;
	if (e->rcpt[i].owed)
	    e->nowed++;
    }
    e->snext = seg->entries;
    if (seg->entries)
	seg->entries->sprev = e;
    seg->entries = e;
    seg->live_count++;
    seg->live_bytes += reclen;
    JOURNAL_STAT_ADD(j, live_messages, 1);
    JOURNAL_STAT_ADD(j, live_bytes, reclen);
    journal_index_insert(&j->index, e);
    journal_entry_finish_if_done(j, e);
}

bool    journal_apply(JOURNAL *j, JSEG *seg, uint64_t off, uint32_t reclen, uint64_t seq,
		      JOP *op)
{
    JENTRY *e;

    if (op->type == JREC_MESSAGE) {
	journal_apply_message(j, seg, off, reclen, seq, op);
	return true;
    }
    if ((e = journal_index_find(&j->index, op->qid)) == NULL)
	return false;
    switch (op->type) {
    case JREC_OUTCOME:{
	    int     state = op->state & ~JREC_STATE_OWED;

	    if (op->rcpt_index >= e->nrcpt)
		return false;
	    JRCPT  *r = &e->rcpt[op->rcpt_index];

	    if (journal_rcpt_final(r->state))	/* final states stick */
		return true;
	    r->state = (uint8_t) state;
	    r->next_retry = op->next_retry;
	    if (op->reason && *op->reason) {
		mem_free(r->reason);
		r->reason = *op->reason;
		*op->reason = NULL;
	    }
	    if (op->state & JREC_STATE_OWED) {
		r->owed = true;
		e->nowed++;
	    }
	    if (journal_rcpt_final(state))
		e->nfinal++;
	    journal_entry_finish_if_done(j, e);
	    return true;
	}
    case JREC_NOTICED:
	for (size_t i = 0; i < op->nnoticed; i++) {
	    if (op->noticed[i] < e->nrcpt && e->rcpt[op->noticed[i]].owed) {
		e->rcpt[op->noticed[i]].owed = false;
		e->nowed--;
	    }
	}
	journal_entry_finish_if_done(j, e);
	return true;
    case JREC_WARNED:
	e->flags |= JREC_FLAG_WARNED;
	return true;
    case JREC_HOLD:
	e->flags |= JREC_FLAG_HOLD;
	return true;
    case JREC_RELEASE:
	e->flags &= ~JREC_FLAG_HOLD;
	return true;
    case JREC_REQUEUE:
	for (size_t i = 0; i < op->nroutes; i++) {
	    const JOURNAL_ROUTE *rt = &op->routes[i];

	    if (rt->rcpt_index >= e->nrcpt)
		continue;
	    JRCPT  *r = &e->rcpt[rt->rcpt_index];

	    if (journal_rcpt_final(r->state))
		continue;
	    mem_free(r->transport);
	    mem_free(r->nexthop);
	    r->transport = mem_strdup(rt->transport ? rt->transport : "");
	    r->nexthop = mem_strdup(rt->nexthop ? rt->nexthop : "");
	    if (r->state == RCPT_DEFERRED) {
		r->state = RCPT_PENDING;
		r->next_retry = 0;
	    }
	}
	return true;
    case JREC_DELETE:
    case JREC_DONE:
	journal_entry_finish(j, e);
	return true;
    default:
	msg_panic("journal_apply: record type %d", op->type);
    }
}
