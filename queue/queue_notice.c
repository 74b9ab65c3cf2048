/*
 * queue_notice.c - notices from the queue manager until they are durably
 * queued (see queue_notice.h).
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/queue_notice.h"
#include "stages/bounce.h"
#include "stages/receive_service.h"

/* A message with notices in flight (or one that failed), by queue ID. */
typedef struct QN_MSG {
    char    qid[QUEUE_ID_MAX];
    struct QN_MSG *next;		/* hash chain */
    int     inflight;			/* events not completed */
    bool    failed;			/* one was not queued */
    MESSAGE *done_msg;			/* qmgr is done with it: DONE waits */
} QN_MSG;

/* One notify event: what its completion records in the journal. */
typedef struct QN_EVENT {
    QN_MSG *m;
    enum qmgr_notify kind;
    size_t  n;
    size_t *idx;
} QN_EVENT;

/* A notice built while the cleanup service was closed. */
typedef struct QN_PARKED {
    struct QN_PARKED *next;
    MESSAGE *msg;
    int     flags;
    void    (*done) (void *ctx, int code, const char *text);
    void   *ctx;
} QN_PARKED;

#define QN_BUCKETS	256

static pthread_mutex_t qn_lock = PTHREAD_MUTEX_INITIALIZER;
static QN_MSG *qn_table[QN_BUCKETS];
static QN_PARKED *qn_parked, **qn_parked_tail = &qn_parked;
static bool qn_cleanup_open;
static JOURNAL *qn_journal;
static void (*qn_finish) (MESSAGE *msg);

void    queue_notice_init(JOURNAL *journal, void (*finish)(MESSAGE *msg))
{
    qn_journal = journal;
    qn_finish = finish;
}

static QN_MSG **qn_slot(const char *qid)
{
    unsigned h = 2166136261u;		/* FNV-1a */

    for (const char *p = qid; *p; p++)
	h = (h ^ (unsigned char) *p) * 16777619u;
    for (QN_MSG **pp = &qn_table[h % QN_BUCKETS];; pp = &(*pp)->next)
	if (*pp == NULL || strcmp((*pp)->qid, qid) == 0)
	    return pp;
}

/* qn_lock held. */
static void qn_unlink(QN_MSG **pp)
{
    QN_MSG *m = *pp;

    *pp = m->next;
    mem_free(m);
}

unsigned queue_notice_outcome_flags(const MESSAGE *msg, size_t rcpt_index,
				    enum rcpt_state state)
{
    if (state == RCPT_BOUNCED
	|| (state == RCPT_SENT && (msg->rcpt[rcpt_index].dsn_notify & DSN_NOTIFY_SUCCESS)))
	return JOURNAL_NOTICE_OWED;
    return 0;
}

/* ---- the way to cleanup ------------------------------------------------- */

static int qn_submit(MESSAGE *msg, int flags, void (*done)(void *, int, const char *),
		     void *ctx)
{
    pthread_mutex_lock(&qn_lock);
    if (!qn_cleanup_open) {
	QN_PARKED *p = MEM_NEW(QN_PARKED);

	p->msg = msg;
	p->flags = flags;
	p->done = done;
	p->ctx = ctx;
	*qn_parked_tail = p;
	qn_parked_tail = &p->next;
	pthread_mutex_unlock(&qn_lock);
	return 0;
    }
    pthread_mutex_unlock(&qn_lock);
    return receive_submit_internal(msg, flags, done, ctx);
}

/* Takes the parked notices; with submit, hands them to cleanup, else
 * reports them as not queued. */
static void qn_parked_flush(bool submit)
{
    QN_PARKED *p, *next;

    pthread_mutex_lock(&qn_lock);
    p = qn_parked;
    qn_parked = NULL;
    qn_parked_tail = &qn_parked;
    pthread_mutex_unlock(&qn_lock);
    for (; p; p = next) {
	next = p->next;
	if (!submit || receive_submit_internal(p->msg, p->flags, p->done, p->ctx) < 0) {
	    message_free(p->msg);
	    p->done(p->ctx, 421, "the cleanup service is not running");
	}
	mem_free(p);
    }
}

static int qn_gate_open(STR *why)
{
    (void) why;
    pthread_mutex_lock(&qn_lock);
    qn_cleanup_open = true;
    pthread_mutex_unlock(&qn_lock);
    qn_parked_flush(true);
    return 0;
}

static void qn_gate_close(void)
{
    pthread_mutex_lock(&qn_lock);
    qn_cleanup_open = false;
    pthread_mutex_unlock(&qn_lock);
}

const ENGINE_COMPONENT queue_notice_component = {"notices", qn_gate_open, qn_gate_close, NULL};

/* ---- events -------------------------------------------------------------- */

static void qn_event_done(void *ctx, bool queued)
{
    QN_EVENT *ev = ctx;
    QN_MSG **pp;
    QN_MSG *m;
    MESSAGE *finished = NULL;
    bool    failed = false;
    char    qid[QUEUE_ID_MAX];

    memcpy(qid, ev->m->qid, sizeof(qid));
    if (queued && ev->kind == QMGR_NOTIFY_DELAY)
	journal_append_control(qn_journal, qid, JOURNAL_OP_WARNED, NULL, NULL);
    else if (queued)
	journal_append_noticed(qn_journal, qid, ev->n, ev->idx, NULL, NULL);
    else
	msg_warn("%s: notice not queued; it is sent again at the next start", qid);
    pthread_mutex_lock(&qn_lock);
    m = *(pp = qn_slot(qid));
    if (!queued)
	m->failed = true;
    if (--m->inflight == 0 && (m->done_msg || !m->failed)) {
	finished = m->done_msg;
	failed = m->failed;
	qn_unlink(pp);
    }
    pthread_mutex_unlock(&qn_lock);
    mem_free(ev->idx);
    mem_free(ev);
    if (finished && failed)
	message_free(finished);		/* no DONE: the journal still owes it */
    else if (finished)
	qn_finish(finished);
}

void    queue_notice_event(const MESSAGE *msg, enum qmgr_notify kind,
			   const QMGR_NOTIFY_RCPT *rcpt, size_t n)
{
    QN_EVENT *ev;
    QN_MSG **pp;

    if (n == 0)
	return;
    ev = MEM_NEW(QN_EVENT);
    ev->kind = kind;
    ev->n = n;
    ev->idx = mem_alloc(n * sizeof(size_t));
    for (size_t k = 0; k < n; k++)
	ev->idx[k] = rcpt[k].index;
    pthread_mutex_lock(&qn_lock);
    if (*(pp = qn_slot(msg->queue_id)) == NULL) {
	*pp = MEM_NEW(QN_MSG);
	memcpy((*pp)->qid, msg->queue_id, QUEUE_ID_MAX);
    }
    ev->m = *pp;
    ev->m->inflight++;
    pthread_mutex_unlock(&qn_lock);
    bounce_qmgr_notify(msg, kind, rcpt, n, qn_submit, qn_event_done, ev);
}

bool    queue_notice_message_done(MESSAGE *msg)
{
    QN_MSG **pp;
    bool    failed = false;

    pthread_mutex_lock(&qn_lock);
    if (*(pp = qn_slot(msg->queue_id)) == NULL) {
	pthread_mutex_unlock(&qn_lock);
	return false;
    }
    if ((*pp)->inflight > 0) {
	(*pp)->done_msg = msg;
	pthread_mutex_unlock(&qn_lock);
	return true;
    }
    failed = (*pp)->failed;		/* only failed entries stay idle */
    qn_unlink(pp);
    pthread_mutex_unlock(&qn_lock);
    if (!failed)
	return false;
    message_free(msg);			/* no DONE: the journal still owes it */
    return true;
}

/* ---- recovery ------------------------------------------------------------ */

void    queue_notice_reason_dsn(const char *reason, const char *dflt, char out[QUEUE_NOTICE_DSN_SIZE])
{
    for (const char *p = reason ? reason : ""; *p; p++) {
	size_t  a, b;

	if ((p > reason && (isalnum((unsigned char) p[-1]) || p[-1] == '.'))
	    || (*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
	    continue;
	a = strspn(p + 2, "0123456789");
	if (a < 1 || a > 3 || p[2 + a] != '.')
	    continue;
	b = strspn(p + 3 + a, "0123456789");
	if (b < 1 || b > 3 || isalnum((unsigned char) p[3 + a + b]) || p[3 + a + b] == '.')
	    continue;
	snprintf(out, QUEUE_NOTICE_DSN_SIZE, "%.*s", (int) (3 + a + b), p);
	return;
    }
    snprintf(out, QUEUE_NOTICE_DSN_SIZE, "%s", dflt);
}

bool    queue_notice_recovered(MESSAGE *msg, const JOURNAL_RECOVERED *item)
{
    static const struct {
	enum rcpt_state state;
	enum qmgr_notify kind;
	const char *dsn;
    } kinds[] = {
	{RCPT_BOUNCED, QMGR_NOTIFY_BOUNCE, "5.0.0"},
	{RCPT_SENT, QMGR_NOTIFY_SUCCESS, "2.0.0"},
    };
    size_t  nrcpt = msg->nrcpt ? msg->nrcpt : 1;
    QMGR_NOTIFY_RCPT *v = mem_calloc(nrcpt, sizeof(*v));
    char  (*dsn)[QUEUE_NOTICE_DSN_SIZE] = mem_calloc(nrcpt, QUEUE_NOTICE_DSN_SIZE);
    bool    all_final = true;

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
	size_t  n = 0;

	for (size_t i = 0; i < msg->nrcpt; i++) {
	    if (!item->notice_owed[i] || msg->rcpt[i].state != kinds[k].state)
		continue;
	    queue_notice_reason_dsn(item->reason[i], kinds[k].dsn, dsn[n]);
	    v[n].index = i;
	    v[n].dsn = dsn[n];
	    v[n].reason = item->reason[i] ? item->reason[i] : "";
	    n++;
	}
	queue_notice_event(msg, kinds[k].kind, v, n);
    }
    mem_free(v);
    mem_free(dsn);
    for (size_t i = 0; i < msg->nrcpt; i++)
	if (msg->rcpt[i].state == RCPT_PENDING || msg->rcpt[i].state == RCPT_DEFERRED)
	    all_final = false;
    if (!all_final)
	return false;
    if (!queue_notice_message_done(msg))
	qn_finish(msg);
    return true;
}

void    queue_notice_stop(void)
{
    /* Parked notices: reported as not queued, so no NOTICED record and no
     * DONE; their messages' owed notices go out at the next start. */
    qn_parked_flush(false);
    pthread_mutex_lock(&qn_lock);
    for (size_t b = 0; b < QN_BUCKETS; b++)
	while (qn_table[b]) {
	    if (qn_table[b]->inflight)
		msg_panic("queue_notice_stop: %s: notice still in flight", qn_table[b]->qid);
	    message_free(qn_table[b]->done_msg);
	    qn_unlink(&qn_table[b]);
	}
    qn_journal = NULL;
    pthread_mutex_unlock(&qn_lock);
}
