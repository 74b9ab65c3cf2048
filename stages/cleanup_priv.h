/*
 * cleanup_priv.h - what the cleanup_*.c files share (cleanup.h is the API).
 *
 * cleanup.c drives one message; cleanup_addr.c does envelope and header
 * address mapping; cleanup_header.c the header section; cleanup_body.c
 * the body. A CLEANUP_STATE lives on the caller's stack for one message.
 *
 * Threading: CLEANUP_CTX is read-only after cleanup_create().
 */
#ifndef SLUICE_CLEANUP_PRIV_H
#define SLUICE_CLEANUP_PRIV_H

#include <stddef.h>

#include "stages/cleanup.h"
#include "stages/rewrite.h"
#include "stages/rewrite_maps.h"

struct CLEANUP_CTX {
    CLEANUP_CONFIG cfg;
    REWRITE *rw;
    REWRITE_MAPS *canonical;
    REWRITE_MAPS *send_canon;
    REWRITE_MAPS *rcpt_canon;
    REWRITE_MAPS *virtual;
    REWRITE_MAPS *header_checks;
    REWRITE_MAPS *body_checks;
};

/* A growable list of strings. */
typedef struct CLEANUP_LIST {
    char  **v;
    size_t  n;
    size_t  cap;
} CLEANUP_LIST;

void    cleanup_list_add(CLEANUP_LIST *l, const char *s);
void    cleanup_list_free(CLEANUP_LIST *l);

/* A set of strings (case-insensitive), bounded: once limit entries are in
 * (limit > 0), new ones are no longer remembered. */
typedef struct CLEANUP_SET {
    char  **slot;
    size_t  cap;
    size_t  n;
    size_t  limit;
} CLEANUP_SET;

void    cleanup_set_init(CLEANUP_SET *s, size_t limit);
/* 1 when key was in the set; else adds it (if there is room), returns 0 */
int     cleanup_set_check(CLEANUP_SET *s, const char *key);
void    cleanup_set_free(CLEANUP_SET *s);

typedef struct CLEANUP_STATE {
    CLEANUP_CTX *ctx;
    MESSAGE *m;
    CLEANUP_INFO info;
    STR    *reply;
    int     status;			/* CLEANUP_OK/REJECT/DEFER */
    int     hold;
    int     discard;
    STR     out;			/* the new content */
    char   *origin;			/* "name[addr]" for logging */
    char   *log_rcpt;			/* a recipient, for logging */
    char   *first_rcpt;		/* the only recipient, for Received: */
    int     hop_count;
    unsigned headers_seen;		/* 1 << CLEANUP_HDR_* */
    int     resent;			/* a Resent- header was seen */
    int     in_headers;
    size_t  body_offset;		/* bytes of body seen so far */
    char   *redirect;			/* REDIRECT action */
    CLEANUP_LIST bcc;			/* BCC actions */
    CLEANUP_LIST extracted;		/* sendmail -t: To/Cc/Bcc */
    CLEANUP_LIST extracted_resent;	/* sendmail -t: Resent-To/Cc/Bcc */
} CLEANUP_STATE;

enum {
    CLEANUP_HDR_OTHER = 0,
    CLEANUP_HDR_FROM,
    CLEANUP_HDR_DATE,
    CLEANUP_HDR_MESSAGE_ID,
    CLEANUP_HDR_RESENT_FROM,
    CLEANUP_HDR_RESENT_DATE,
    CLEANUP_HDR_RESENT_MESSAGE_ID,
    CLEANUP_HDR_RECEIVED,
};

/* cleanup.c */
void    cleanup_set_error(CLEANUP_STATE *st, int status, const char *reply);

/* cleanup_addr.c */
int     cleanup_addr_sender(CLEANUP_STATE *st);
int     cleanup_addr_recipients(CLEANUP_STATE *st);
/* Rewrites the addresses of one address header value; 1 when changed
 * (out holds the new value), 0 when not, -1 on a table error. */
int     cleanup_addr_header(CLEANUP_STATE *st, int sender_class,
			            const char *value, size_t len, STR *out);
/* Collects the addresses of a header value into list (internal form). */
void    cleanup_addr_extract(const char *value, size_t len, CLEANUP_LIST *list);

/* cleanup_header.c */
void    cleanup_header_received(CLEANUP_STATE *st, STR *hdr);
void    cleanup_header_one(CLEANUP_STATE *st, STR *hdr);
void    cleanup_header_done(CLEANUP_STATE *st);
/* Acts on a header_checks/body_checks result. Returns
 * CLEANUP_ACT_KEEP, CLEANUP_ACT_DROP or CLEANUP_ACT_REPLACE (new text in
 * repl); PREPEND output goes to prepend. */
#define CLEANUP_ACT_KEEP	0
#define CLEANUP_ACT_DROP	1
#define CLEANUP_ACT_REPLACE	2
int     cleanup_act(CLEANUP_STATE *st, const char *context, const char *text,
		            const char *value, const char *map_class,
		            STR *repl, STR *prepend);
int     cleanup_is_header(const char *line, size_t len, size_t *name_len);

/* cleanup_body.c */
void    cleanup_body_line(CLEANUP_STATE *st, const char *line, size_t len);
/* Are body_checks still looking (not off, not past the size limit)? */
int     cleanup_body_checking(const CLEANUP_STATE *st);
/* Copies the rest of the body at once (no checks look at it). */
void    cleanup_body_rest(CLEANUP_STATE *st, const char *data, size_t len);
/* Replaces stray CR and LF in line (in place). */
void    cleanup_body_fix_stray(char *line, size_t len);

#endif
