/*
 * message.h - one message as the stages hand it to each other.
 *
 * The receive side (smtpd, qmqpd, pickup) fills in a MESSAGE, cleanup and
 * trivial-rewrite complete it (headers, canonical addresses, transport and
 * nexthop per recipient), the journal writes it once, and qmgr schedules its
 * recipients. Content is canonical: lines end in CRLF, no dot-stuffing, no
 * trailing "." line; headers first, an empty line, then the body. The SMTP
 * client dot-stuffs on output; local delivery converts to LF.
 *
 * A MESSAGE belongs to one stage at a time (it is handed over, not shared);
 * its content BLOB may be shared by reference with delivery agents.
 */
#ifndef SLUICE_MESSAGE_H
#define SLUICE_MESSAGE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "engine/blob.h"

#define QUEUE_ID_MAX	32		/* long IDs fit, NUL included */

/* DSN NOTIFY bits (RFC 3461). 0 = not given (NOTIFY=FAILURE,DELAY implied). */
#define DSN_NOTIFY_NEVER	(1<<0)
#define DSN_NOTIFY_SUCCESS	(1<<1)
#define DSN_NOTIFY_FAILURE	(1<<2)
#define DSN_NOTIFY_DELAY	(1<<3)

#define DSN_RET_NONE	0
#define DSN_RET_FULL	1
#define DSN_RET_HDRS	2

#define BODY_TYPE_NONE	  0
#define BODY_TYPE_7BIT	  1
#define BODY_TYPE_8BITMIME 2

/* Per-recipient state, as the journal records it. */
enum rcpt_state {
    RCPT_PENDING = 0,	/* not yet delivered */
    RCPT_DEFERRED,	/* last attempt failed temporarily */
    RCPT_SENT,		/* done: delivered */
    RCPT_BOUNCED,	/* done: failed permanently, notice sent */
    RCPT_DROPPED,	/* done: removed by the operator */
};

typedef struct RCPT {
    char   *address;		/* after rewriting and aliasing */
    char   *orig_rcpt;		/* as the client gave it, or ORCPT; may be NULL */
    char   *dsn_orcpt;		/* RFC 3461 ORCPT as given ("rfc822;x@y"), or NULL */
    int     dsn_notify;		/* DSN_NOTIFY_* */
    char   *transport;		/* "smtp", "local", "relay", "lmtp", "error", ... */
    char   *nexthop;		/* "example.com", "[10.0.0.1]:25", "unix:/path" */
    enum rcpt_state state;
} RCPT;

typedef struct MESSAGE {
    char    queue_id[QUEUE_ID_MAX];
    int64_t arrival_us;		/* wall clock, microseconds */
    char   *sender;		/* "" for the null sender */
    char   *client_name;	/* "localhost", "unknown" */
    char   *client_addr;	/* "127.0.0.1" */
    char   *helo;		/* may be NULL */
    char   *protocol;		/* "SMTP", "ESMTP", "ESMTPS", "QMQP", "LOCAL" */
    char   *tls_info;		/* "TLSv1.3 with cipher ... (256/256 bits)" or NULL */
    char   *dsn_envid;		/* RFC 3461 ENVID (xtext decoded), or NULL */
    int     dsn_ret;		/* DSN_RET_* */
    int     body_type;		/* BODY_TYPE_* */
    bool    smtputf8;
    bool    probe;		/* address verification probe: never journaled;
				 * SMTP stops after RCPT, logs "deliverable" */
    unsigned route_gen;		/* routing generation its recipients were
				 * resolved under (queue_service; not
				 * journaled: 0 after a restart) */
    RCPT   *rcpt;
    size_t  nrcpt;
    size_t  rcpt_cap;
    BLOB   *content;		/* canonical content, see above */
} MESSAGE;

MESSAGE *message_new(void);
void     message_free(MESSAGE *m);
RCPT    *message_add_rcpt(MESSAGE *m, const char *address, const char *orig_rcpt);

#endif
