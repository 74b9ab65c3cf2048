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

/* Appends text to the line at *p, within end (one byte kept for the NUL). */
static void qmgr_log_put(char **p, const char *end, const char *text)
{
    size_t  len = strlen(text), room = (size_t) (end - *p) - 1;

    if (len > room)
	len = room;
    memcpy(*p, text, len);
    *p += len;
}

static void qmgr_log_uint(char **p, const char *end, size_t n)
{
    char    digits[24], *d = digits + sizeof(digits);

    *--d = 0;
    do
	*--d = (char) ('0' + n % 10);
    while ((n /= 10) != 0);
    qmgr_log_put(p, end, d);
}

/*
 * Once per message on the qmgr thread, so built by hand rather than
 * through printf (a tenth of the scheduler's time per delivery). pflogsumm
 * counts a message's bytes from this line.
 */
void qmgr_log_active(const QMGR_MSG *qm)
{
    const MESSAGE *m = qm->msg;
    char    line[2048], *p = line;
    const char *end = line + sizeof(line);

    qmgr_log_put(&p, end, m->queue_id);
    qmgr_log_put(&p, end, ": from=<");
    qmgr_log_put(&p, end, m->sender ? m->sender : "");
    qmgr_log_put(&p, end, ">, size=");
    qmgr_log_uint(&p, end, m->content ? m->content->len : 0);
    qmgr_log_put(&p, end, ", nrcpt=");
    qmgr_log_uint(&p, end, m->nrcpt);
    qmgr_log_put(&p, end, " (queue active)");
    *p = 0;
    msg_info("%s", line);
}
