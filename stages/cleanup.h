/*
 * cleanup.h - the cleanup stage's work on one message, as a library.
 *
 * Given a MESSAGE as the receive side built it (envelope, and content in
 * canonical CRLF form), cleanup_message() produces the final MESSAGE, as
 * Postfix's cleanup(8) does:
 *   - the envelope sender and recipients in canonical form (rewrite.h),
 *     through sender_canonical_maps / recipient_canonical_maps and
 *     canonical_maps, then virtual_alias_maps (one address to many, with
 *     virtual_alias_recursion_limit, virtual_alias_expansion_limit, and an
 *     address that expands to itself kept); duplicate recipients dropped;
 *   - our Received: header in front (Postfix's layout; TLS details when
 *     given), Received: hops counted against hopcount_limit;
 *   - header_checks / body_checks (REJECT, WARN, INFO, HOLD, DISCARD,
 *     IGNORE, STRIP, REPLACE, PREPEND, REDIRECT, BCC, DUNNO, OK), logged
 *     as Postfix logs them;
 *   - addresses in From:, To:, Cc:, Reply-To:, Sender: ... rewritten (only
 *     for local submissions and clients named by local_header_rewrite_clients,
 *     as Postfix); Return-Path:, Bcc:, Resent-Bcc:, Content-Length: removed;
 *   - missing Message-Id:, Date:, From: added (same condition, or always
 *     with always_add_missing_headers); "ID: message-id=<...>" logged;
 *   - stray CR and LF inside a line become spaces
 *     (cleanup_replace_stray_cr_lf); a header longer than
 *     header_size_limit is truncated.
 *
 * Threading: a CLEANUP_CTX is built by one thread and then shared by any
 * number of cleanup threads; cleanup_message() keeps its state on the
 * stack. The caller names its thread: msg_service_set("cleanup").
 * Diagnostics: log lines as Postfix's cleanup(8) writes them
 * ("ID: message-id=<...>", "ID: reject: header ...", "ID: warning: ...").
 */
#ifndef SLUICE_CLEANUP_H
#define SLUICE_CLEANUP_H

#include <stdbool.h>

#include "engine/str.h"
#include "queue/message.h"
#include "stages/rewrite.h"

/* Settings; strings are borrowed, as in REWRITE_CONFIG. */
typedef struct CLEANUP_CONFIG {
    const char *myhostname;
    const char *mail_name;		/* "Postfix": the Received: comment */
    const char *canonical_maps;
    const char *sender_canonical_maps;
    const char *recipient_canonical_maps;
    const char *virtual_alias_maps;
    const char *header_checks;
    const char *body_checks;
    int     hopcount_limit;		/* 50 */
    int     header_size_limit;		/* 102400 */
    int     body_checks_size_limit;	/* 51200 */
    int     virtual_alias_recursion_limit;	/* 1000 */
    int     virtual_alias_expansion_limit;	/* 1000 */
    int     duplicate_filter_limit;	/* 1000; 0 = no limit */
    bool    replace_stray_cr_lf;	/* yes */
    bool    always_add_missing_headers;	/* no */
    bool    long_queue_ids;		/* Message-Id without the time */
    bool    propagate_canonical;	/* propagate_unmatched_extensions */
    bool    propagate_virtual;
} CLEANUP_CONFIG;

void    cleanup_config_defaults(CLEANUP_CONFIG *cfg);
void    cleanup_config_from_params(CLEANUP_CONFIG *cfg);

typedef struct CLEANUP_CTX CLEANUP_CTX;

/* rw (borrowed) does canonicalisation; it must outlive the context.
 * Returns NULL with the reason in err when a table cannot be opened. */
CLEANUP_CTX *cleanup_create(const CLEANUP_CONFIG *cfg, REWRITE *rw, STR *err);
void    cleanup_free(CLEANUP_CTX *ctx);

/* What the receive side knows that the MESSAGE does not carry. */
#define CLEANUP_FLAG_LOCAL_HEADERS (1<<0)	/* rewrite header addresses and
						 * add missing headers */
#define CLEANUP_FLAG_EXTRACT	(1<<1)	/* sendmail -t: recipients from the
					 * To:, Cc:, Bcc: headers too */
#define CLEANUP_FLAG_NO_CHECKS	(1<<2)	/* no header/body checks (our own
					 * bounce notices) */
#define CLEANUP_FLAG_NO_RECEIVED (1<<3)	/* do not prepend Received: */
#define CLEANUP_FLAG_VERIFY	(1<<4)	/* sendmail -bv: after cleanup and
					 * rewrite, a report (stages/trace.h)
					 * instead of the journal */

typedef struct CLEANUP_INFO {
    int     flags;			/* CLEANUP_FLAG_* */
    const char *tls_protocol;		/* "TLSv1.3", or NULL: no TLS */
    const char *tls_cipher;		/* "TLS_AES_256_GCM_SHA384" */
    int     tls_usebits;
    int     tls_algbits;
    const char *fullname;		/* sendmail -F, for a missing From: */
    long    uid;			/* local submission: the user ID */
} CLEANUP_INFO;

/*
 * With info NULL, the flags are guessed: local header treatment for
 * protocol "LOCAL" and loopback clients (Postfix's default,
 * local_header_rewrite_clients = permit_inet_interfaces, on a host that
 * listens on loopback only); the receive stage should pass its own.
 */
void    cleanup_info_default(const MESSAGE *m, CLEANUP_INFO *info);

/* Results of cleanup_message(). */
#define CLEANUP_OK	0		/* queue it */
#define CLEANUP_REJECT	1		/* reply: "5XX X.X.X text" */
#define CLEANUP_DEFER	2		/* reply: "4XX X.X.X text" */
#define CLEANUP_HOLD	3		/* queue it, on hold */
#define CLEANUP_DISCARD	4		/* say 250, then drop it */

/*
 * Rewrites m in place (envelope and content; the content BLOB is replaced).
 * On REJECT/DEFER, reply holds the SMTP reply for the client and m must
 * not be queued. reply is reset first.
 */
int     cleanup_message(CLEANUP_CTX *ctx, MESSAGE *m, const CLEANUP_INFO *info,
			        STR *reply);

#endif
