/*
 * journal_impl.h - journal internals shared by journal*.c (not an API).
 *
 * The index (JENTRY per live message, JSEG per segment) belongs to the
 * thread running journal_recover() and then to the writer thread alone;
 * nothing else reads it, so it has no locks. Counters other threads read
 * (journal_stats) are updated with atomics. JSEG reference counts are
 * atomic because content BLOBs over a segment mapping are released by any
 * thread.
 */
#ifndef SLUICE_JOURNAL_IMPL_H
#define SLUICE_JOURNAL_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu/wfcqueue.h>

#include "engine/str.h"
#include "engine/blob.h"
#include "queue/journal.h"
#include "queue/journal_rec.h"

typedef struct JSEG JSEG;
typedef struct JENTRY JENTRY;

/* Current state of one recipient of a live message. */
typedef struct JRCPT {
    uint8_t state;			/* enum rcpt_state */
    bool    owed;			/* final, its notice not queued yet */
    int64_t next_retry;
    char   *reason;			/* NULL or owned */
    char   *transport;		/* REQUEUE override, NULL or owned */
    char   *nexthop;
} JRCPT;

/* One live message: where its MESSAGE record is, and its current state. */
struct JENTRY {
    char    qid[QUEUE_ID_MAX];
    JENTRY *hnext;			/* hash chain */
    JENTRY *sprev, *snext;		/* entries of the same segment */
    JSEG   *seg;			/* segment of the MESSAGE record */
    uint64_t off;			/* record offset in the segment */
    uint32_t reclen;			/* header + payload */
    uint64_t seq;
    uint32_t nrcpt;
    uint32_t nfinal;			/* recipients in a final state */
    uint32_t nowed;			/* of which with a notice owed */
    unsigned flags;			/* JREC_FLAG_* */
    JRCPT  *rcpt;
    JREC_MSG *rec;			/* recovery only: the decoded record */
};

struct JSEG {
    uint64_t segno;
    uint32_t refs;			/* atomic: list + content BLOBs */
    const JOURNAL_BACKEND *be;
    const char *map;			/* read-only mapping, or NULL */
    size_t  map_len;
    void   *map_cookie;
    uint64_t used;			/* end of valid data */
    uint64_t cap;			/* file size while writable */
    bool    closed;			/* no more appends */
    bool    has_records;
    bool    damaged;			/* recovery found damage */
    size_t  live_count;
    uint64_t live_bytes;
    JENTRY *entries;
    JSEG   *prev, *next;
};

/* One queued record. */
typedef struct JREQ {
    struct cds_wfcq_node node;
    int     ready;			/* publication flag (TSan-visible) */
    uint16_t type;
    unsigned char hdr[JREC_HDR_SIZE];
    STR     payload;			/* without the content */
    BLOB   *content;			/* MESSAGE: appended after payload */
    uint32_t pcrc;
    uint64_t total;			/* header + payload + content */
    uint64_t seq;			/* assigned by the writer */
    JOURNAL_DONE_FN done;
    void   *ctx;
    /* What the index needs, so the writer never decodes. */
    char    qid[QUEUE_ID_MAX];
    uint32_t nrcpt;			/* MESSAGE */
    unsigned flags;			/* MESSAGE */
    JRCPT  *rcpt;			/* MESSAGE: initial states (owned) */
    uint32_t rcpt_index;		/* OUTCOME */
    int     state;
    int64_t next_retry;
    char   *reason;
    size_t  nroutes;			/* REQUEUE */
    JOURNAL_ROUTE *routes;
    size_t  nnoticed;			/* NOTICED */
    uint32_t *noticed;
    JSEG   *seg;			/* where it was written */
    uint64_t off;
} JREQ;

typedef struct JINDEX {
    JENTRY **buckets;
    size_t  nbuckets;			/* power of two */
    size_t  count;
} JINDEX;

struct JOURNAL {
    /* Producers touch only the queue tail and the futex word. */
    struct __cds_wfcq_head qhead;	/* writer */
    char    pad1[64];
    struct cds_wfcq_tail qtail;		/* producers */
    char    pad2[64];
    int     futex;			/* -1: writer sleeps; -2: writer naps (only
					 * appends that need a sync wake it) */
    char    pad3[64];

    const JOURNAL_BACKEND *be;
    void   *bh;
    char   *dir;
    JOURNAL_OPTIONS opts;
    bool    rdonly;
    bool    recovered;
    int     stop;			/* atomic */
    pthread_t writer;
    bool    writer_running;

    /* Writer-owned (recovery thread before the writer starts). */
    JSEG   *seg_head, *seg_tail;	/* oldest .. newest */
    JSEG   *cur;			/* being appended to */
    JSEG   *spare;			/* prepared next segment, or NULL */
    uint64_t last_segno;
    uint64_t next_seq;
    JINDEX  index;
    bool    dirty;			/* written, not yet synced */
    int64_t dirty_since_ns;
    bool    spare_warned;
    bool    compact_warned;
    bool    compacting;
    const struct JREQ *completing;	/* its done() is running */
    uint64_t nfinished;			/* messages finished (recovery stats) */
    struct iovec *iov;
    size_t  iov_cap;

    /* Statistics (atomics). */
    JOURNAL_STATS st;
};

/* journal.c */
void    journal_writer_batch(JOURNAL *j, JREQ **v, size_t n);
void    journal_req_free(JREQ *r);
JREQ   *journal_req_message(const MESSAGE *m, unsigned flags, const JREC_RSTATE *rs);
void    journal_seg_remove(JOURNAL *j, JSEG *seg);
JSEG   *journal_seg_new(JOURNAL *j, uint64_t segno);
void    journal_seg_unref(JSEG *seg);
int     journal_seg_map(JOURNAL *j, JSEG *seg);
BLOB   *journal_seg_blob(JSEG *seg, const char *data, size_t len);
int     journal_start_writer(JOURNAL *j);
#define JOURNAL_STAT_ADD(j, field, n) __atomic_add_fetch(&(j)->st.field, (n), __ATOMIC_RELAXED)
#define JOURNAL_STAT_SUB(j, field, n) __atomic_sub_fetch(&(j)->st.field, (n), __ATOMIC_RELAXED)

/* journal_index.c */
void    journal_index_init(JINDEX *ix);
void    journal_index_free(JINDEX *ix);
JENTRY *journal_index_find(JINDEX *ix, const char *qid);
void    journal_index_insert(JINDEX *ix, JENTRY *e);
void    journal_index_delete(JINDEX *ix, JENTRY *e);

/* A record, decoded or straight from a request, applied to the index. */
typedef struct JOP {
    int     type;
    const char *qid;
    /* MESSAGE */
    uint32_t nrcpt;
    unsigned flags;
    JRCPT  *rcpt;			/* taken over (set to NULL) */
    JREC_MSG *rec;			/* recovery: taken over */
    /* OUTCOME */
    uint32_t rcpt_index;
    int     state;
    int64_t next_retry;
    char  **reason;			/* taken over */
    /* REQUEUE */
    size_t  nroutes;
    const JOURNAL_ROUTE *routes;
    /* NOTICED */
    size_t  nnoticed;
    const uint32_t *noticed;
} JOP;

/* Returns false if the record named no live message (an orphan). */
bool    journal_apply(JOURNAL *j, JSEG *seg, uint64_t off, uint32_t reclen, uint64_t seq,
		      JOP *op);
void    journal_entry_finish(JOURNAL *j, JENTRY *e);
void    journal_entry_free(JENTRY *e);
bool    journal_rcpt_final(int state);

/* journal_compact.c */
void    journal_compact_step(JOURNAL *j);

#endif
