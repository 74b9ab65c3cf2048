/*
 * maildrop.h - the maildrop file format: what postdrop writes into
 * $queue_directory/maildrop and what pickup reads back.
 *
 * A maildrop file is written by an untrusted local user, so the format is
 * small, versioned and length-prefixed, and every reader bounds every
 * length before it allocates:
 *
 *   "SLUICE-MAILDROP 1\n"            magic and version (MAILDROP_MAGIC)
 *   records: type (1 byte), length (4 bytes, big endian), payload
 *     'T' arrival time, decimal microseconds since the epoch (optional)
 *     'S' envelope sender, "" for the null sender (exactly one)
 *     'N' full name for a missing From: header, sendmail -F (optional)
 *     'F' flags, decimal MAILDROP_FLAG_* (optional)
 *     'R' one envelope recipient (any number, at most MAILDROP_MAX_RCPTS)
 *     'C' a chunk of content: canonical CRLF lines, not dot-stuffed
 *     'E' end of file, empty payload (required, last)
 *   Envelope records ('T' 'S' 'N' 'F' 'R') come before the first 'C'.
 *
 * Limits: an envelope field is at most MAILDROP_MAX_FIELD bytes and holds
 * no NUL, CR or LF; a content chunk at most MAILDROP_MAX_CHUNK; all content
 * at most the caller's limit (message_size_limit). Anything else -- a bad
 * magic, an unknown type, a record cut short, data after 'E' -- is
 * malformed, with the reason in err.
 *
 * Writers (sendmail, postdrop) build the stream with maildrop_put();
 * postdrop copies it into the maildrop with maildrop_copy(), which
 * validates as it copies, so pickup never sees a stream postdrop did not
 * check. pickup reads with maildrop_read(). The submitting user is not a
 * field: pickup takes it from the file's owner.
 *
 * Threading: no shared state; any thread. Diagnostics: returned in err.
 */
#ifndef SLUICE_MAILDROP_H
#define SLUICE_MAILDROP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/str.h"

#define MAILDROP_MAGIC		"SLUICE-MAILDROP 1\n"
#define MAILDROP_MAGIC_LEN	(sizeof(MAILDROP_MAGIC) - 1)

#define MAILDROP_MAX_FIELD	4096	/* sender, full name, one recipient */
#define MAILDROP_MAX_RCPTS	100000
#define MAILDROP_MAX_CHUNK	(1 << 20)

#define MAILDROP_REC_TIME	'T'
#define MAILDROP_REC_SENDER	'S'
#define MAILDROP_REC_FULLNAME	'N'
#define MAILDROP_REC_FLAGS	'F'
#define MAILDROP_REC_RCPT	'R'
#define MAILDROP_REC_CONTENT	'C'
#define MAILDROP_REC_END	'E'

#define MAILDROP_FLAG_EXTRACT	(1<<0)	/* sendmail -t */
#define MAILDROP_FLAG_VERIFY	(1<<1)	/* sendmail -bv: report, do not deliver
					 * (a new bit: older readers refuse it
					 * as malformed rather than deliver) */
#define MAILDROP_FLAG_MASK	(MAILDROP_FLAG_EXTRACT | MAILDROP_FLAG_VERIFY)

/* One parsed maildrop file. */
typedef struct MAILDROP {
    int64_t arrival_us;		/* 0: not given */
    char   *sender;
    char   *fullname;		/* NULL: not given */
    int     flags;
    char  **rcpt;
    size_t  nrcpt;
    STR     content;		/* canonical CRLF */
} MAILDROP;

/* Appends the magic (maildrop_start) or one record to out. */
void    maildrop_start(STR *out);
void    maildrop_put(STR *out, int type, const void *data, size_t len);

/*
 * Reads a whole maildrop stream from fd into md (maildrop_free releases it).
 * content_limit bounds the content (0: no bound). 0 on success; -1 with
 * the reason in err for a malformed stream, -2 for a read error (errno).
 */
int     maildrop_read(int fd, long long content_limit, MAILDROP *md, STR *err);
void    maildrop_free(MAILDROP *md);

/*
 * Copies a stream from in_fd to out_fd, validating it as maildrop_read
 * does, without holding it in memory. nrcpt receives the number of 'R'
 * records. 0 on success; -1 malformed (err); -2 read error; -3 write
 * error (errno kept in both cases).
 */
int     maildrop_copy(int in_fd, int out_fd, long long content_limit, size_t *nrcpt,
		              STR *err);

#endif
