/*
 * qmgr_log.c - the maillog line for outcomes the queue manager decides by
 * itself (no agent involved): recipients deferred because their destination
 * is dead or their transport is unavailable, as Postfix's qmgr logs them:
 *   ID: to=<r>, orig_to=<o>, relay=none, delay=T, delays=a/b/0/0,
 *   dsn=X.Y.Z, status=deferred (delivery temporarily suspended: ...)
 * Times keep at most two digits after the point, like Postfix's default
 * delay_logging_resolution_limit.
 *
 * Threading: the qmgr thread (msg_info is thread safe). Diagnostics: this is one.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "queue/qmgr_priv.h"
#include "engine/msg.h"

static void qmgr_log_secs(char *buf, size_t len, int64_t ns)
{
    char   *p;

    if (ns < 0)
	ns = 0;
    snprintf(buf, len, "%.2f", (double) ns / 1e9);
    if ((p = strchr(buf, '.')) != NULL) {
	char   *end = buf + strlen(buf);

	while (end > p + 1 && end[-1] == '0')
	    *--end = 0;
	if (end == p + 1)
	    *p = 0;
    }
}

void qmgr_log_outcome(QMGR *q, const QMGR_MSG *qm, size_t idx,
		      const char *dsn, const char *status, const char *reason)
{
    const MESSAGE *m = qm->msg;
    const RCPT *r = &m->rcpt[idx];
    int64_t arrival = m->arrival_us * 1000;
    int64_t active = qm->active_since ? qm->active_since : q->now;
    char    delay[32], a[32], b[32];

    qmgr_log_secs(delay, sizeof(delay), q->now - arrival);
    qmgr_log_secs(a, sizeof(a), active - arrival);
    qmgr_log_secs(b, sizeof(b), q->now - active);
    if (r->orig_rcpt && strcmp(r->orig_rcpt, r->address ? r->address : "") != 0)
	msg_info("%s: to=<%s>, orig_to=<%s>, relay=none, delay=%s, delays=%s/%s/0/0, "
		 "dsn=%s, status=%s (%s)", m->queue_id, r->address ? r->address : "",
		 r->orig_rcpt, delay, a, b, dsn, status, reason);
    else
	msg_info("%s: to=<%s>, relay=none, delay=%s, delays=%s/%s/0/0, "
		 "dsn=%s, status=%s (%s)", m->queue_id, r->address ? r->address : "",
		 delay, a, b, dsn, status, reason);
}

void qmgr_log_active(const QMGR_MSG *qm)
{
    const MESSAGE *m = qm->msg;

    /* pflogsumm counts a message's bytes from this line. */
    msg_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", m->queue_id, m->sender,
	     m->content ? m->content->len : (size_t) 0, m->nrcpt);
}
