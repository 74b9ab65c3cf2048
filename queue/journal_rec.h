/*
 * journal_rec.h - journal record framing and payload encoding (see journal.h
 * for the layout).
 *
 * Encoders append to a STR. Decoders take untrusted bytes: every length,
 * count and enum is checked against the bytes that remain, strings with NUL
 * bytes are refused, and a decoder either fills its output completely or
 * returns -1 with nothing allocated. Thread safe (no shared state).
 */
#ifndef SLUICE_JOURNAL_REC_H
#define SLUICE_JOURNAL_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/str.h"
#include "queue/message.h"
#include "queue/journal.h"

#define JREC_HDR_SIZE		32
#define JSEG_HDR_SIZE		64
#define JREC_MAX_PAYLOAD	(1u << 30)
#define JSEG_MAGIC		"SLUICEJ1"
#define JSEG_VERSION		1

enum jrec_type {
    JREC_MESSAGE = 1, JREC_OUTCOME = 2, JREC_HOLD = 3, JREC_RELEASE = 4,
    JREC_REQUEUE = 5, JREC_DELETE = 6, JREC_DONE = 7, JREC_WARNED = 8,
    JREC_NOTICED = 9,
};
#define JREC_TYPE_VALID(t)	((t) >= JREC_MESSAGE && (t) <= JREC_NOTICED)

/* MESSAGE record flags. */
#define JREC_FLAG_HOLD		(1u<<0)
#define JREC_FLAG_CORRUPT	(1u<<1)
#define JREC_FLAG_WARNED	(1u<<2)		/* delay notice sent */
#define JREC_FLAGS_KNOWN	(JREC_FLAG_HOLD | JREC_FLAG_CORRUPT | JREC_FLAG_WARNED)

/* In a recipient state (MESSAGE and OUTCOME records): final, but its
 * notice (bounce, success) is not queued yet. */
#define JREC_STATE_OWED		0x10

typedef struct JREC_HDR {
    uint32_t len;			/* payload bytes */
    uint32_t pcrc;			/* CRC32C of the payload */
    uint64_t seq;
    uint32_t segno;			/* low 32 bits */
    uint16_t type;
    uint16_t flags;
} JREC_HDR;

void    jrec_hdr_encode(unsigned char out[JREC_HDR_SIZE], const JREC_HDR *h);
bool    jrec_hdr_decode(const unsigned char *in, JREC_HDR *h);

void    jseg_hdr_encode(unsigned char out[JSEG_HDR_SIZE], uint64_t segno,
			uint64_t first_seq, int64_t created_us);
bool    jseg_hdr_decode(const unsigned char *in, size_t len, uint64_t *segno,
			uint64_t *first_seq);

/* Recipient state carried by a MESSAGE record (NULL array: all fresh). */
typedef struct JREC_RSTATE {
    int64_t next_retry;
    const char *reason;
    bool    owed;			/* notice owed (JREC_STATE_OWED) */
} JREC_RSTATE;

/* The envelope, ending with the content length; the caller appends the
 * m->content bytes (so they can be written straight from their buffer). */
void    jrec_encode_message(STR *out, const MESSAGE *m, unsigned flags, const JREC_RSTATE *rs);

typedef struct JREC_MSG {
    MESSAGE *msg;			/* content == NULL */
    unsigned flags;
    int64_t *next_retry;		/* msg->nrcpt entries */
    char  **reason;			/* msg->nrcpt entries, NULL or string */
    bool   *owed;			/* msg->nrcpt entries: notice owed */
    size_t  content_off;		/* content position in the payload */
    size_t  content_len;
} JREC_MSG;

int     jrec_decode_message(const char *p, size_t len, JREC_MSG *out);
void    jrec_msg_free(JREC_MSG *d);	/* everything, msg included if set */

/* state may carry JREC_STATE_OWED (final states only). */
void    jrec_encode_outcome(STR *out, const char *qid, uint32_t rcpt, int state,
			    int64_t next_retry, const char *reason);
int     jrec_decode_outcome(const char *p, size_t len, char qid[QUEUE_ID_MAX], uint32_t *rcpt,
			    int *state, int64_t *next_retry, char **reason);

/* HOLD, RELEASE, DELETE, DONE, WARNED */
void    jrec_encode_control(STR *out, const char *qid);
int     jrec_decode_control(const char *p, size_t len, char qid[QUEUE_ID_MAX]);

void    jrec_encode_requeue(STR *out, const char *qid, size_t n, const JOURNAL_ROUTE *r);
int     jrec_decode_requeue(const char *p, size_t len, char qid[QUEUE_ID_MAX], size_t *n,
			    JOURNAL_ROUTE **routes);
void    jrec_routes_free(size_t n, JOURNAL_ROUTE *routes);

/* NOTICED: the notices owed for these recipients are queued. */
void    jrec_encode_noticed(STR *out, const char *qid, size_t n, const uint32_t *rcpt);
int     jrec_decode_noticed(const char *p, size_t len, char qid[QUEUE_ID_MAX], size_t *n,
			    uint32_t **rcpt);

/* The queue ID at the start of any payload (damaged records). */
int     jrec_peek_qid(const char *p, size_t len, char qid[QUEUE_ID_MAX]);

#endif
