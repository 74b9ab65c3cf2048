/*
 * verify.h - address verification (Postfix's verify(8)), in process.
 *
 * smtpd's reject_unverified_recipient and reject_unverified_sender ask
 * verify_query() about an address. The answer comes from the cache
 * (address_verify_map, GDBM; it survives restarts) and never waits: an
 * unknown or stale address gets a probe fired and, meanwhile, VERIFY_TODO
 * ("Address verification in progress"), as Postfix's smtpd answers with
 * address_verify_poll_count = 1.
 *
 * A probe is a MESSAGE with msg->probe set, the address_verify_sender and
 * the one address, resolved by trivial-rewrite and handed straight to the
 * delivery agent of its transport: the SMTP client says MAIL and RCPT,
 * then RSET or QUIT, and logs "status=deliverable (250 ...)" or
 * "status=undeliverable (...)". The probe is never journaled and never
 * reaches qmgr, so it can neither bounce to anyone nor come back after a
 * crash (a lost probe just leaves the address unknown: the next query
 * fires another). Transports without a network client answer at once:
 * error (undeliverable, its reason), discard, local, virtual and pipe
 * (deliverable: smtpd's local_recipient_maps already judged the user).
 *
 * Cache entries: positive ones expire after
 * address_verify_positive_expire_time and are refreshed (re-probed while
 * still answering OK) after address_verify_positive_refresh_time;
 * negative ones likewise with the negative_* times. One probe per address
 * at a time (address_verify_pending_request_time).
 *
 * Threading: verify_query() from any thread; start/stop from the engine's
 * main thread (verify_component). Probe results arrive on delivery agent threads.
 * Diagnostics: start fails with the reason; a cache that cannot be opened
 * is a warning and an in-memory cache.
 */
#ifndef SLUICE_VERIFY_H
#define SLUICE_VERIFY_H

#include "engine/engine.h"
#include "engine/str.h"

enum verify_status {
    VERIFY_OK = 0,		/* deliverable */
    VERIFY_DEFER,		/* the probe was deferred: text says why */
    VERIFY_BOUNCE,		/* undeliverable: text says why */
    VERIFY_TODO,		/* probe in progress */
    VERIFY_UNAVAIL,		/* the verify service is not running */
};

/* Status of addr, with the reason in text (reset first). Never blocks on
 * the network. */
enum verify_status verify_query(const char *addr, STR *text);

int     verify_start(STR *why);
void    verify_stop(void);

/* The engine component: after the queue (its delivery agents carry the
 * probes), before receive (whose smtpd asks from its first session on). */
extern const ENGINE_COMPONENT verify_component;

#endif
