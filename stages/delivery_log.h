/*
 * delivery_log.h - Postfix's per-recipient delivery log line, for every
 * delivery agent:
 *   ID: to=<r>, orig_to=<o>, relay=host[ip]:port, conn_use=N, delay=T,
 *   delays=a/b/c/d, dsn=X.Y.Z, status=sent|deferred|bounced (text)
 * a = before the active queue, b = in the active queue, c = connection
 * set-up, d = transmission (postfix-reference.md). Thread safe.
 */
#ifndef SLUICE_DELIVERY_LOG_H
#define SLUICE_DELIVERY_LOG_H

#include <stdint.h>

#include "engine/str.h"
#include "stages/delivery.h"

typedef struct DELIVERY_LOG {
    const char *relay;		/* "host[ip]:port", or NULL: "none" */
    int     conn_use;		/* > 1: a reused connection */
    int64_t conn_done_ns;	/* monotonic time the session was ready, 0: none */
    int64_t now_ns;		/* monotonic time of the outcome, 0: now */
} DELIVERY_LOG;

/* Appends Postfix's delay format (2 significant digits): "0.01", "1.2", "12". */
void delivery_log_delay(STR *buf, int64_t ns);
void delivery_log_rcpt(const DELIVERY_REQUEST *req, size_t i, const DELIVERY_LOG *how);

#endif
