/*
 * delivery.h - the contract between qmgr and every delivery agent.
 *
 * qmgr hands an agent a DELIVERY_REQUEST: one message, one transport and
 * nexthop, and the recipients of that message that go there (at most
 * *_destination_recipient_limit). The agent tries them, fills in one
 * outcome per recipient, logs Postfix's
 *   ID: to=<r>, orig_to=<o>, relay=host[ip]:port, delay=T, delays=a/b/c/d,
 *   dsn=X.Y.Z, status=sent|deferred|bounced (reply)
 * line for each, and calls done(req) exactly once, from any thread. The
 * message and its content are read-only to the agent and stay alive until
 * done() returns. qmgr owns the request.
 */
#ifndef SLUICE_DELIVERY_H
#define SLUICE_DELIVERY_H

#include <stdint.h>
#include <stdbool.h>

#include "queue/message.h"

enum delivery_status {
    DELIVERY_SENT = 0,
    DELIVERY_DEFER,	/* 4xx or local trouble: retry later */
    DELIVERY_BOUNCE,	/* 5xx: permanent */
};

typedef struct DELIVERY_RCPT {
    size_t  index;		/* into msg->rcpt[] */
    enum delivery_status status;
    char    dsn[16];		/* "2.0.0", "4.4.1", "5.1.1" */
    char   *reason;		/* mem_alloc'd reply text or local reason */
} DELIVERY_RCPT;

typedef struct DELIVERY_REQUEST {
    const MESSAGE *msg;
    const char *transport;	/* "smtp", "relay", "lmtp", ... */
    const char *nexthop;	/* "example.com", "[127.0.0.1]:2525", "unix:/x" */
    DELIVERY_RCPT *rcpt;
    size_t  nrcpt;
    int64_t active_mono_ns;	/* when qmgr moved the message to active */
    int64_t queued_mono_ns;	/* when qmgr handed this request to the agent */
    /* Set by the agent: */
    bool    site_failed;	/* could not reach nexthop at all (counts as a
				 * failed cohort for qmgr's concurrency window) */
    char    relay[300];		/* "host[addr]:port" or "none" */
    void  (*done)(struct DELIVERY_REQUEST *req);
    void   *ctx;		/* qmgr's */
} DELIVERY_REQUEST;

#endif
