/*
 * journal.h - the write-ahead spool journal: the only place a message lives
 * on disk (DESIGN.md invariants 1-4).
 *
 * LAYOUT
 *	$queue_directory/journal/lock		flock()ed: engine and postsuper
 *						LOCK_EX, readers LOCK_SH (never
 *						waits: EWOULDBLOCK if busy)
 *	$queue_directory/journal/NNNNNNNNNNNNNNNN.seg
 *						segments, 16 hex digits = segment
 *						number, strictly increasing
 * A segment is created at journal_segment_size (fallocate) with a 64-byte
 * header (magic "SLUICEJ1", version, segment number, first sequence number,
 * CRC32C), then records back to back. When it is full the writer moves to
 * the next segment (always prepared one ahead, so disk full shows up before
 * it stops anything) and shrinks the old one to its used size. A record that
 * does not fit in a fresh segment gets a segment of its own size.
 *
 * RECORD FRAMING (journal_rec.h), little endian, 32-byte header:
 *	u32 len		payload length (at most JREC_MAX_PAYLOAD)
 *	u32 pcrc	CRC32C of the payload
 *	u64 seq		sequence number, strictly increasing over the journal
 *	u32 segno	low 32 bits of the segment number (stale data from
 *			another file never passes)
 *	u16 type	JREC_MESSAGE .. JREC_NOTICED
 *	u16 flags	0
 *	u32 zero
 *	u32 hcrc	CRC32C of the 28 bytes above
 * Producers compute pcrc in their own thread; the writer only fills seq and
 * segno and the header CRC. Payloads are field lists (LEB128 integers,
 * length-prefixed strings); the MESSAGE payload ends with the content, so
 * the content of a recovered message is a slice of the segment's mmap.
 *
 * RECORD TYPES
 *	MESSAGE	the whole message, written once: envelope, client details,
 *		DSN parameters, every recipient (address, original recipient,
 *		ORCPT, NOTIFY, transport, nexthop, state, next retry, reason),
 *		flags (hold, corrupt), then the content. Compaction writes the
 *		same record again with the current state; a later MESSAGE record
 *		for an ID supersedes the earlier one.
 *	OUTCOME	one recipient: sent, bounced, deferred (reason, next retry
 *		time), dropped. Final states (sent, bounced, dropped) stick.
 *		Sent or bounced may carry "notice owed" (a bounce or success
 *		notice is due): the message stays live until a NOTICED
 *		record names the recipient, so a crash before the notice is
 *		queued makes recovery hand the message out again with the
 *		notice still owed (Postfix keeps its bounce logs for this).
 *	NOTICED	the notices owed for the listed recipients are queued.
 *	HOLD, RELEASE, DELETE, DONE, WARNED	message level. DONE is
 *		optional: a message whose recipients are all final and owe
 *		no notice is finished anyway. WARNED: the delay notice is
 *		queued (at most one per message).
 *	REQUEUE	new transport and nexthop per recipient; deferred
 *		recipients become pending again.
 * No checkpoint records: the journal's live state is rebuilt by replaying
 * every segment, and compaction bounds how much there is to replay.
 *
 * GROUP COMMIT
 * journal_append_*() encode the record in the caller's thread (the
 * caller's MESSAGE may be freed on return; its content BLOB is referenced,
 * not copied) and queue it on a wait-free liburcu queue. One writer thread
 * takes everything waiting, writes it with one pwritev and one fdatasync,
 * and then calls done(ctx, status) for every record, in queue order, on the
 * writer thread. status is 0, or ENOSPC when the disk is full: nothing
 * acknowledged before is lost and appends succeed again once there is
 * space (smtpd answers "452 4.3.1 Insufficient system storage"). Any other
 * write or fdatasync error is fatal (msg_fatal): it is never retried.
 *	journal_sync = always	done() only after fdatasync (default), except
 *				for OUTCOME, NOTICED, WARNED and DONE records:
 *				losing those in a crash only repeats a
 *				delivery or a notice, so they are
 *				synced with the next batch that needs a sync,
 *				or journal_batch_sync_delay later
 *	journal_sync = batch	done() after write; fdatasync at most
 *				journal_batch_sync_delay later
 *	journal_sync = off	never fdatasync (tests, benchmarks)
 * done() must not block: it runs on the journal's only writer thread.
 *
 * RECOVERY (journal_recover, once, before any append)
 * Replays every segment in order. A record is valid if its header CRC,
 * segment number, type, bounds, sequence order and payload CRC all hold.
 * At the first invalid byte the reader looks for the next valid record:
 *  - none in the segment: a torn tail. Logged as "warning: journal:
 *    truncated N bytes of torn record at segment S offset O" (N counts up
 *    to the last non-zero byte) and cut with ftruncate (read-write opens).
 *  - one further on: damage in the middle. Logged as "journal: skipped N
 *    bytes of damaged records at segment S offset O"; if the damaged
 *    record's extent and queue ID can still be read and that message is
 *    known, it moves to the corrupt state (flagged in JOURNAL_RECOVERED).
 * A torn tail that turns out not to be the journal's tail (valid records
 * follow in a later segment) is handled as middle damage. A recipient
 * outcome lost this way makes a recipient pending again (delivered twice,
 * never dropped); a lost MESSAGE record is counted, never made up.
 * queue_id_seen() is called for every replayed ID.
 *
 * SPACE (journal_compact.c, on the writer thread between batches)
 * Segments are deleted oldest first once no live message has its MESSAGE
 * record in them (deleting in order means no newer segment ever holds the
 * only copy of a state change of a message in a deleted one). The oldest
 * segment is compacted -- its live messages copied forward as new MESSAGE
 * records carrying their current state, then the segment deleted -- when
 * at least three closed segments exist and either it is at most half live
 * or the journal holds more than twice the live bytes plus three segments.
 * Disk use is thus about twice the live data plus a few segments.
 *
 * CONTENT WITHOUT COPIES
 * A recovered message's content is a BLOB over the segment's read-only
 * mmap; the segment stays mapped while any such BLOB lives (reference
 * count), even after the journal deleted the file or was closed.
 *
 * OFFLINE ACCESS (CLI with the engine stopped)
 * JOURNAL_RDONLY: shared lock, recovery without changing any file, no
 * appends (mailq, postqueue -p). Without it (postsuper): exclusive lock,
 * like the engine, then appends of control records. EWOULDBLOCK from
 * journal_open means the engine (or postsuper) holds the lock.
 *
 * THREADING
 * journal_open, journal_recover, journal_close: one thread, in that order.
 * journal_append_*: any thread, concurrently, between journal_recover and
 * journal_close. journal_stats: any thread. Completion callbacks: writer
 * thread. BLOB releases: any thread.
 *
 * BACKENDS (JOURNAL_BACKEND): journal_backend_fs (files), journal_backend_ram
 * (anonymous memory, instant commit, same semantics; a "directory" lives in
 * the process until journal_ram_purge(), so tests can close, reopen and
 * recover).
 */
#ifndef SLUICE_JOURNAL_H
#define SLUICE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "queue/message.h"

typedef struct JOURNAL JOURNAL;

/* done(ctx, status): status 0 or an errno value (ENOSPC). */
typedef void (*JOURNAL_DONE_FN) (void *ctx, int status);

enum journal_sync { JOURNAL_SYNC_ALWAYS, JOURNAL_SYNC_BATCH, JOURNAL_SYNC_OFF };

/* Message-level operations for journal_append_control(). */
enum journal_op {
    JOURNAL_OP_HOLD = 3, JOURNAL_OP_RELEASE, JOURNAL_OP_DELETE = 6, JOURNAL_OP_DONE,
    JOURNAL_OP_WARNED,			/* the delay notice is queued */
};

/* journal_append_outcome() flags: the recipient is final (sent or
 * bounced) but the notice it calls for is not queued yet. The message
 * stays live until journal_append_noticed() names the recipient. */
#define JOURNAL_NOTICE_OWED	(1u<<0)

#define JOURNAL_RDONLY	(1<<0)		/* shared lock, no appends, no file changes */

typedef struct JOURNAL_OPTIONS {
    size_t  segment_size;		/* journal_segment_size */
    enum journal_sync sync;		/* journal_sync */
    int     batch_sync_ms;		/* journal_batch_sync_delay, in ms */
    int     flags;			/* JOURNAL_RDONLY */
    /* Fault injection for tests: called before "create", "write", "sync";
     * a non-zero return is used as that operation's errno. */
    int   (*fault) (void *arg, const char *op);
    void   *fault_arg;
} JOURNAL_OPTIONS;

/* Storage. Every function returns 0 or an errno value. Segment numbers
 * are the file names. Functions take the handle from open(), except unmap,
 * which must work from any thread, even after close. */
typedef struct JOURNAL_BACKEND {
    const char *name;
    void   *(*open) (const char *dir, const JOURNAL_OPTIONS *opts, int *err);
    void    (*close) (void *bh);
    int     (*list) (void *bh, uint64_t **segnos, size_t *count);	/* ascending, mem_alloc'd */
    int     (*create) (void *bh, uint64_t segno, size_t size);	/* preallocated, zero */
    int     (*write) (void *bh, uint64_t segno, uint64_t off, const struct iovec *iov, int iovcnt);
    int     (*sync) (void *bh, uint64_t segno);
    int     (*truncate) (void *bh, uint64_t segno, uint64_t len);
    int     (*remove) (void *bh, uint64_t segno);	/* durable (directory synced) */
    int     (*map) (void *bh, uint64_t segno, const char **data, size_t *len, void **cookie);
    void    (*unmap) (const char *data, size_t len, void *cookie);
} JOURNAL_BACKEND;

extern const JOURNAL_BACKEND journal_backend_fs;
extern const JOURNAL_BACKEND journal_backend_ram;
void    journal_ram_purge(const char *dir);	/* forget a ram "directory" */

/* One recovered live message, handed to the journal_recover callback. */
typedef struct JOURNAL_RECOVERED {
    MESSAGE *msg;			/* the callback owns it (message_free);
					 * rcpt[i].state, transport, nexthop are
					 * current; content is a segment slice */
    bool    hold;			/* on hold */
    bool    corrupt;			/* damage found: the corrupt queue */
    bool    warned;			/* the delay notice was sent */
    bool    owed;			/* some notice owed (owed[] below) */
    const int64_t *next_retry;		/* per recipient, seconds, 0 = none */
    const char *const *reason;		/* per recipient, last reason or NULL */
    const bool *notice_owed;		/* per recipient: final, notice owed */
} JOURNAL_RECOVERED;			/* arrays valid during the callback */

typedef void (*JOURNAL_RECOVER_FN) (void *ctx, JOURNAL_RECOVERED *item);

typedef struct JOURNAL_RECOVERY_STATS {
    size_t  segments;			/* segment files read */
    size_t  records;			/* valid records replayed */
    size_t  messages;			/* live messages handed out */
    size_t  corrupt;			/* of which in the corrupt state */
    size_t  finished;			/* messages found complete */
    size_t  torn;			/* torn tails cut */
    size_t  torn_bytes;
    size_t  damaged;			/* damaged regions skipped */
    size_t  damaged_bytes;
    size_t  lost_records;		/* sequence numbers never found */
    size_t  orphans;			/* records for unknown messages */
} JOURNAL_RECOVERY_STATS;

/* Per-recipient route for journal_append_requeue(). */
typedef struct JOURNAL_ROUTE {
    size_t  rcpt_index;
    const char *transport;
    const char *nexthop;
} JOURNAL_ROUTE;

#define JOURNAL_SYNC_BUCKETS	12
extern const uint64_t journal_sync_bucket_us[JOURNAL_SYNC_BUCKETS - 1];

typedef struct JOURNAL_STATS {
    uint64_t records;			/* committed */
    uint64_t batches;			/* writes */
    uint64_t syncs;			/* fdatasync calls */
    uint64_t bytes;			/* written */
    uint64_t enospc;			/* records refused for lack of space */
    uint64_t segments;			/* existing segment files */
    uint64_t disk_bytes;		/* their size */
    uint64_t live_messages;
    uint64_t live_bytes;		/* MESSAGE records of live messages */
    uint64_t compacted;			/* messages copied forward */
    uint64_t removed_segments;
    /* fdatasync latency: count per bucket (upper bounds in
     * journal_sync_bucket_us, the last one unbounded) and the total. */
    uint64_t sync_hist[JOURNAL_SYNC_BUCKETS];
    uint64_t sync_ns_total;
} JOURNAL_STATS;

void    journal_options_default(JOURNAL_OPTIONS *opts);	/* from parameters */
long long journal_parse_size(const char *text);		/* "64m" -> bytes; -1 bad */

/* dir NULL = $queue_directory/journal. opts NULL = parameters. NULL and
 * errno set on failure (EWOULDBLOCK: locked by another process). */
JOURNAL *journal_open(const JOURNAL_BACKEND *be, const char *dir, const JOURNAL_OPTIONS *opts);
int     journal_recover(JOURNAL *j, JOURNAL_RECOVER_FN fn, void *ctx, JOURNAL_RECOVERY_STATS *stats);
void    journal_close(JOURNAL *j);

void    journal_append_message(JOURNAL *j, const MESSAGE *m, JOURNAL_DONE_FN done, void *ctx);
void    journal_append_outcome(JOURNAL *j, const char *queue_id, size_t rcpt_index,
			       enum rcpt_state state, unsigned flags, const char *reason,
			       int64_t next_retry, JOURNAL_DONE_FN done, void *ctx);
void    journal_append_noticed(JOURNAL *j, const char *queue_id, size_t n,
			       const size_t *rcpt_index, JOURNAL_DONE_FN done, void *ctx);
void    journal_append_control(JOURNAL *j, const char *queue_id, enum journal_op op,
			       JOURNAL_DONE_FN done, void *ctx);
void    journal_append_requeue(JOURNAL *j, const char *queue_id, size_t n,
			       const JOURNAL_ROUTE *routes, JOURNAL_DONE_FN done, void *ctx);

/*
 * Inside the done() of a MESSAGE append (writer thread, status 0): the
 * content as written, a BLOB over the segment's read-only mapping, or NULL
 * when it cannot be mapped. The caller may drop its heap copy for it:
 * queued mail then waits in the page cache, not on the heap.
 */
BLOB   *journal_done_content(JOURNAL *j);

void    journal_stats(JOURNAL *j, JOURNAL_STATS *st);

/* Waiting for one completion from a thread that may block (CLI, tests):
 *	JOURNAL_WAIT w; journal_wait_init(&w);
 *	journal_append_control(j, id, JOURNAL_OP_HOLD, journal_wait_done, &w);
 *	status = journal_wait(&w);						*/
typedef struct JOURNAL_WAIT {
    int     state;			/* futex word: 0 pending, 1 done */
    int     status;
} JOURNAL_WAIT;

void    journal_wait_init(JOURNAL_WAIT *w);
void    journal_wait_done(void *ctx, int status);
int     journal_wait(JOURNAL_WAIT *w);

#endif
