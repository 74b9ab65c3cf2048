/*
 * metrics.h - an optional Prometheus text endpoint (metrics_listen).
 *
 * metrics_start("127.0.0.1:9153", fn) listens on that TCP address and
 * answers "GET /metrics" (HTTP/1.0 or 1.1, one request per connection)
 * with whatever fn appends to a STR, as text/plain; version=0.0.4. Any
 * other path gets 404. "[::1]:9153" and "host:port" forms are accepted.
 * Off unless started; the engine starts it when metrics_listen is set.
 *
 * Threading: one thread of its own serves the requests one at a time
 * (fn runs there); metrics_start/metrics_stop from one thread.
 * Diagnostics: start failures are returned in why; bad requests are
 * answered 400 and not logged (the endpoint is for scrapers).
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "engine/str.h"

typedef void (*metrics_fn)(STR *out);

int     metrics_start(const char *listen, metrics_fn fn, STR *why);
void    metrics_stop(void);

#endif
