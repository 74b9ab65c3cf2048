/*
 * tlsmgr.h - TLS session resumption for the SMTP server (Postfix's
 * tlsmgr(8), in process).
 *
 * Postfix needs a tlsmgr process because its smtpd processes share nothing;
 * in Sluice every smtpd thread already shares one SSL_CTX per
 * configuration, so "the shared session cache" is that SSL_CTX's internal
 * (locked) cache, and the session ticket keys are one process-wide key
 * ring: a current key that encrypts new tickets and the previous one that
 * still decrypts (tickets it opened are renewed with the current key).
 * Keys rotate every smtpd_tls_session_cache_timeout, as Postfix's tlsmgr
 * rotates them, so a ticket lives at most two timeouts.
 *
 * Threading: tlsmgr_server_setup() when a context is built; the ticket
 * callback runs on any smtpd thread (a mutex guards the key ring).
 * Diagnostics: -1 with the reason in err; a failed key generation logs a
 * warning and the handshake falls back to a full one.
 */
#ifndef SLUICE_TLSMGR_H
#define SLUICE_TLSMGR_H

#include "engine/str.h"

/* ssl_ctx is an SSL_CTX *. timeout_s 0 turns resumption off (no cache, no
 * tickets), as Postfix does for smtpd_tls_session_cache_timeout = 0. */
int     tlsmgr_server_setup(void *ssl_ctx, long timeout_s, STR *err);

/* Number of ticket key rotations so far (for tests). */
unsigned tlsmgr_rotations(void);

#endif
