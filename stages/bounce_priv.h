/*
 * bounce_priv.h - shared between bounce.c, bounce_text.c and bounce_dsn.c.
 *
 * Threading: pure functions. Diagnostics: none.
 */
#ifndef SLUICE_BOUNCE_PRIV_H
#define SLUICE_BOUNCE_PRIV_H

#include "stages/bounce.h"

/* Appends text with every control character (CR, LF, NUL ...) turned into
 * a space: remote replies and envelope strings never break a header. */
void    bounce_put_clean(STR *out, const char *text, size_t len);
/* The same for an address, in external (quoted) form. */
void    bounce_put_addr(STR *out, const char *addr);

/* "host NAME[ADDR] said: TEXT (in reply to X command)": NAME and TEXT.
 * Returns false when the reason did not come from a remote server. */
bool    bounce_remote_reply(const char *reason, const char **host, size_t *host_len,
			    const char **text, size_t *text_len);
/* The X.Y.Z status to report: dsn when well formed, else found in the
 * reply, else the kind's default. buf: at least 16 bytes. */
const char *bounce_status(enum bounce_kind kind, const char *dsn, const char *reason,
			  char *buf);
/* RFC 3464 action of one recipient. */
const char *bounce_action(enum bounce_kind kind, const MESSAGE *orig, const BOUNCE_RCPT *r);
/* The reason to show (never NULL). */
const char *bounce_reason(enum bounce_kind kind, const BOUNCE_RCPT *r);

/* bounce_text.c: the notice's header and its text/plain explanation. */
void    bounce_text_header(STR *out, const BOUNCE_CONFIG *cfg, enum bounce_kind kind,
			   bool postmaster, const char *to, const char *boundary,
			   bool eightbit, int64_t now_us);
void    bounce_text_part(STR *out, const BOUNCE_CONFIG *cfg, const MESSAGE *orig,
			 enum bounce_kind kind, bool postmaster, const BOUNCE_RCPT *rcpt,
			 size_t n);

/* bounce_dsn.c: message/delivery-status, and the original (or its header). */
void    bounce_dsn_part(STR *out, const BOUNCE_CONFIG *cfg, const MESSAGE *orig,
			enum bounce_kind kind, const BOUNCE_RCPT *rcpt, size_t n,
			int64_t now_us);
/* Whether the original goes back whole (else only its header section). */
bool    bounce_dsn_full(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
			bool postmaster);
/* Part headers + body of the returned original. */
void    bounce_dsn_original(STR *out, const MESSAGE *orig, bool full);

#endif
