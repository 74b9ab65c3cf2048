/*
 * queue_service.c - the journal and the queue manager as one engine
 * component (see queue_service.h).
 *
 * Stopping: the delivery agents are told to hand back new requests at once
 * (deferred, not journaled: the journal keeps those recipients pending for
 * the next start), the qmgr thread stops, the agents finish what they have
 * (their completions, sent or bounced, are still journaled), qmgr drains
 * them, and only then the journal closes.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "engine/config.h"
#include "engine/ctl.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/stage.h"
#include "engine/timeutil.h"
#include "queue/journal.h"
#include "queue/queue_ctl.h"
#include "queue/queue_notice.h"
#include "queue/queue_service.h"
#include "stages/delivery_agents.h"
#include "stages/rewrite.h"

static JOURNAL *qs_journal;
static QMGR *qs_qmgr;

/*
 * Routing for activation (qs_activate): the trivial-rewrite of the current
 * configuration, replaced on reload. Older ones stay until the queue
 * stops (the qmgr thread may still hold one). gen counts them; a message
 * resolved under an older one (or recovered: route_gen 0) is resolved
 * again when it is activated.
 */
typedef struct QS_ROUTING {
    REWRITE *rw;
    unsigned gen;
    struct QS_ROUTING *older;
} QS_ROUTING;

static QS_ROUTING *qs_routing;		/* atomic pointer */
static pthread_t qs_tid;
static int qs_stopping;

typedef struct QS_SUBMIT {
    MESSAGE *msg;
    bool    hold;
    queue_submit_done_fn done;
    void   *ctx;
} QS_SUBMIT;

/* ---- qmgr hooks (qmgr thread) ---------------------------------------- */

static void qs_outcome(void *ctx, const MESSAGE *msg, size_t rcpt_index, enum rcpt_state state,
		       const char *dsn, const char *reason, int64_t next_retry_us)
{
    /* A request handed back by quiescing agents: the recipient stays pending. */
    if (state == RCPT_DEFERRED && __atomic_load_n(&qs_stopping, __ATOMIC_ACQUIRE)
	&& reason && strcmp(reason, delivery_agents_shutdown_reason) == 0)
	return;
    queue_ctl_count_outcome(state);
    journal_append_outcome(qs_journal, msg->queue_id, rcpt_index, state,
			   queue_notice_outcome_flags(msg, rcpt_index, state), reason,
			   next_retry_us / 1000000, NULL, NULL);
}

static void qs_removed(void *ctx, int status)
{
    MESSAGE *msg = ctx;
    const char *service = msg_service();

    msg_service_set("qmgr");
    if (status == 0)
	msg_info("%s: removed", msg->queue_id);
    else
	msg_warn("%s: journal DONE record: %s", msg->queue_id, strerror(status));
    msg_service_set(service);
    message_free(msg);
}

/* Every recipient final and every notice queued. */
static void qs_finish(MESSAGE *msg)
{
    journal_append_control(qs_journal, msg->queue_id, JOURNAL_OP_DONE, qs_removed, msg);
}

static void qs_message_done(void *ctx, MESSAGE *msg)
{
    if (!queue_notice_message_done(msg))
	qs_finish(msg);
}

static void qs_notify(void *ctx, const MESSAGE *msg, enum qmgr_notify kind,
		      const QMGR_NOTIFY_RCPT *rcpt, size_t n)
{
    /* The notice is new mail: through cleanup, then back to the journal. */
    queue_notice_event(msg, kind, rcpt, n);
}

/* Postfix resolves recipients when qmgr activates a message: a relayhost or
 * transport_maps changed by "postfix reload" applies to queued mail too. */
static void qs_activate(void *ctx, MESSAGE *msg)
{
    QS_ROUTING *routing = __atomic_load_n(&qs_routing, __ATOMIC_ACQUIRE);
    JOURNAL_ROUTE *changed;
    size_t  n = 0;

    if (routing == NULL || msg->route_gen == routing->gen)
	return;
    changed = mem_alloc((msg->nrcpt ? msg->nrcpt : 1) * sizeof(*changed));
    for (size_t i = 0; i < msg->nrcpt; i++) {
	RCPT   *r = &msg->rcpt[i];
	RESOLVED res;

	if (r->state != RCPT_PENDING && r->state != RCPT_DEFERRED)
	    continue;
	resolved_init(&res);
	/* A table that fails now: keep the route it has. */
	if (rewrite_resolve(routing->rw, r->address, &res) == 0
	    && (r->transport == NULL || strcmp(r->transport, STR_DATA(&res.transport)) != 0
		|| r->nexthop == NULL || strcmp(r->nexthop, STR_DATA(&res.nexthop)) != 0)) {
	    mem_free(r->transport);
	    mem_free(r->nexthop);
	    r->transport = mem_strdup(STR_DATA(&res.transport));
	    r->nexthop = mem_strdup(STR_DATA(&res.nexthop));
	    changed[n].rcpt_index = i;
	    changed[n].transport = r->transport;
	    changed[n].nexthop = r->nexthop;
	    n++;
	}
	resolved_release(&res);
    }
    if (n)
	journal_append_requeue(qs_journal, msg->queue_id, n, changed, NULL, NULL);
    mem_free(changed);
    msg->route_gen = routing->gen;
}

static int qs_routing_update(STR *why)
{
    REWRITE_CONFIG rcfg;
    REWRITE *rw;
    QS_ROUTING *routing;

    rewrite_config_from_params(&rcfg);
    if ((rw = rewrite_create(&rcfg, why)) == NULL)
	return -1;
    routing = MEM_NEW(QS_ROUTING);
    routing->rw = rw;
    routing->older = qs_routing;
    routing->gen = qs_routing ? qs_routing->gen + 1 : 1;
    __atomic_store_n(&qs_routing, routing, __ATOMIC_RELEASE);
    return 0;
}

static void qs_routing_free(void)
{
    QS_ROUTING *routing, *older;

    for (routing = qs_routing, qs_routing = NULL; routing; routing = older) {
	older = routing->older;
	rewrite_free(routing->rw);
	mem_free(routing);
    }
}

static void qs_transport_config(void *ctx, const char *transport, QMGR_TRANSPORT_CONFIG *tc)
{
    STR     service = STR_INIT;
    int     maxproc;

    tc->dest_concurrency_limit =
	(int) param_transport_int(transport, P_DEFAULT_DESTINATION_CONCURRENCY_LIMIT);
    tc->initial_dest_concurrency =
	(int) param_transport_int(transport, P_INITIAL_DESTINATION_CONCURRENCY);
    if (qmgr_feedback_parse(param_transport_str(transport,
			 P_DEFAULT_DESTINATION_CONCURRENCY_POSITIVE_FEEDBACK), &tc->pos_feedback) < 0)
	msg_warn("%s: bad positive feedback; using the default", transport);
    if (qmgr_feedback_parse(param_transport_str(transport,
			 P_DEFAULT_DESTINATION_CONCURRENCY_NEGATIVE_FEEDBACK), &tc->neg_feedback) < 0)
	msg_warn("%s: bad negative feedback; using the default", transport);
    tc->dest_failed_cohort_limit = (double)
	param_transport_int(transport, P_DEFAULT_DESTINATION_CONCURRENCY_FAILED_COHORT_LIMIT);
    tc->dest_recipient_limit =
	(int) param_transport_int(transport, P_DEFAULT_DESTINATION_RECIPIENT_LIMIT);
    tc->dest_rate_delay_ns =
	param_transport_int(transport, P_DEFAULT_DESTINATION_RATE_DELAY) * TIME_NS_PER_SEC;
    if (qmgr_rate_parse(param_transport_str(transport,
			   P_DEFAULT_DESTINATION_MESSAGE_RATE_LIMIT), &tc->dest_message_rate) < 0)
	msg_warn("%s: bad destination message rate limit; no limit", transport);
    tc->dest_connection_limit =
	(int) param_transport_int(transport, P_DEFAULT_DESTINATION_CONNECTION_LIMIT);
    tc->delivery_slot_cost = (int) param_transport_int(transport, P_DEFAULT_DELIVERY_SLOT_COST);
    tc->delivery_slot_loan = (int) param_transport_int(transport, P_DEFAULT_DELIVERY_SLOT_LOAN);
    tc->delivery_slot_discount =
	(int) param_transport_int(transport, P_DEFAULT_DELIVERY_SLOT_DISCOUNT);
    tc->minimum_delivery_slots =
	(int) param_transport_int(transport, P_DEFAULT_MINIMUM_DELIVERY_SLOTS);
    str_printf(&service, "%s/unix", transport);
    maxproc = param_service_maxproc(STR_DATA(&service));
    tc->process_limit = maxproc > 0 ? maxproc : 0;
    str_release(&service);
    delivery_agents_setup(transport, tc);
}

static void qs_config(QMGR_CONFIG *cfg)
{
    qmgr_config_defaults(cfg);
    cfg->transport_config = qs_transport_config;
    cfg->transport_retry_time_ns = param_int(P_TRANSPORT_RETRY_TIME) * TIME_NS_PER_SEC;
    cfg->queue_run_delay_ns = param_int(P_QUEUE_RUN_DELAY) * TIME_NS_PER_SEC;
    cfg->minimal_backoff_ns = param_int(P_MINIMAL_BACKOFF_TIME) * TIME_NS_PER_SEC;
    cfg->maximal_backoff_ns = param_int(P_MAXIMAL_BACKOFF_TIME) * TIME_NS_PER_SEC;
    cfg->maximal_queue_lifetime_ns = param_int(P_MAXIMAL_QUEUE_LIFETIME) * TIME_NS_PER_SEC;
    cfg->bounce_queue_lifetime_ns = param_int(P_BOUNCE_QUEUE_LIFETIME) * TIME_NS_PER_SEC;
    cfg->delay_warning_time_ns = param_int(P_DELAY_WARNING_TIME) * TIME_NS_PER_SEC;
    cfg->message_active_limit = (size_t) param_int(P_QMGR_MESSAGE_ACTIVE_LIMIT);
    cfg->message_recipient_limit = (size_t) param_int(P_QMGR_MESSAGE_RECIPIENT_LIMIT);
    cfg->hooks.outcome = qs_outcome;
    cfg->hooks.message_done = qs_message_done;
    cfg->hooks.notify = qs_notify;
    cfg->hooks.activate = qs_activate;
}

/* ---- recovery ---------------------------------------------------------- */

/* A recovered message that owes notices, kept until the journal takes
 * appends again (journal_recover forbids them). */
typedef struct QS_OWED {
    struct QS_OWED *next;
    JOURNAL_RECOVERED item;		/* arrays copied */
} QS_OWED;

static QS_OWED *qs_owed;

static void qs_enqueue_recovered(JOURNAL_RECOVERED *item)
{
    MESSAGE *msg = item->msg;
    unsigned flags = 0;
    int64_t next_retry = 0;
    char    id[QUEUE_ID_MAX];

    if (item->hold)
	flags |= QMGR_ENQ_HOLD;
    if (item->warned)
	flags |= QMGR_ENQ_WARNED;
    for (size_t i = 0; i < msg->nrcpt; i++) {
	if (msg->rcpt[i].state == RCPT_DEFERRED && item->next_retry[i] > 0
	    && (next_retry == 0 || item->next_retry[i] * 1000000 < next_retry))
	    next_retry = item->next_retry[i] * 1000000;
    }
    if (next_retry)
	flags |= QMGR_ENQ_DEFERRED;
    memcpy(id, msg->queue_id, sizeof(id));
    if (qmgr_enqueue(qs_qmgr, msg, flags, next_retry) < 0) {
	message_free(msg);
	return;
    }
    for (size_t i = 0; i < item->msg->nrcpt && item->reason; i++)
	if (item->reason[i])
	    qmgr_set_reason(qs_qmgr, id, i, item->reason[i]);
}

static void qs_recovered(void *ctx, JOURNAL_RECOVERED *item)
{
    MESSAGE *msg = item->msg;

    if (item->corrupt) {
	/* Kept in the journal for the operator (postsuper -d); not delivered. */
	msg_warn("%s: damaged in the journal: moved to the corrupt queue", msg->queue_id);
	message_free(msg);
	return;
    }
    if (item->owed) {
	QS_OWED *o = MEM_NEW(QS_OWED);
	size_t  n = msg->nrcpt ? msg->nrcpt : 1;
	int64_t *retry = mem_alloc(n * sizeof(int64_t));
	char  **reason = mem_calloc(n, sizeof(char *));
	bool   *owed = mem_alloc(n * sizeof(bool));

	o->item = *item;
	memcpy(retry, item->next_retry, msg->nrcpt * sizeof(int64_t));
	memcpy(owed, item->notice_owed, msg->nrcpt * sizeof(bool));
	for (size_t i = 0; i < msg->nrcpt; i++)
	    reason[i] = item->reason[i] ? mem_strdup(item->reason[i]) : NULL;
	o->item.next_retry = retry;
	o->item.reason = (const char *const *) reason;
	o->item.notice_owed = owed;
	o->next = qs_owed;
	qs_owed = o;
	return;
    }
    qs_enqueue_recovered(item);
}

/* After recovery: the notices still owed, then the messages to qmgr. */
static void qs_recovered_owed(void)
{
    QS_OWED *o, *next;

    for (o = qs_owed, qs_owed = NULL; o; o = next) {
	next = o->next;
	msg_info("%s: notice owed since before the restart: sending it", o->item.msg->queue_id);
	if (!queue_notice_recovered(o->item.msg, &o->item))
	    qs_enqueue_recovered(&o->item);
	for (size_t i = 0; i < o->item.msg->nrcpt; i++)
	    mem_free((char *) o->item.reason[i]);
	mem_free((void *) o->item.reason);
	mem_free((void *) o->item.next_retry);
	mem_free((void *) o->item.notice_owed);
	mem_free(o);
    }
}

/* ---- the qmgr thread ---------------------------------------------------- */

static void *qs_thread(void *arg)
{
    msg_service_set("qmgr");
    (void) pthread_setname_np(pthread_self(), "qmgr");
    stage_thread_sched(false);		/* like the pipeline's other threads */
    while (!__atomic_load_n(&qs_stopping, __ATOMIC_ACQUIRE)) {
	int64_t when = qmgr_run(qs_qmgr);

	if (__atomic_load_n(&qs_stopping, __ATOMIC_ACQUIRE))
	    break;
	qmgr_wait(qs_qmgr, when);
    }
    return NULL;
}

/* ---- the receive side's end: journal, then qmgr ------------------------- */

static void qs_journaled(void *ctx, int status)
{
    QS_SUBMIT *s = ctx;

    if (status == 0) {
	BLOB   *mapped = journal_done_content(qs_journal);

	s->done(s->ctx, 0);
	/* While it waits, the content lives in the page cache (the journal's
	 * mapping), not on the heap: a large queue costs no heap for it. */
	if (mapped) {
	    blob_unref(s->msg->content);
	    s->msg->content = mapped;
	}
	qmgr_submit(qs_qmgr, s->msg, s->hold ? QMGR_ENQ_HOLD : 0, 0);
    } else {
	s->done(s->ctx, status);
	message_free(s->msg);
    }
    mem_free(s);
}

void queue_service_submit(MESSAGE *msg, bool hold, queue_submit_done_fn done, void *ctx)
{
    QS_SUBMIT *s = MEM_NEW(QS_SUBMIT);
    QS_ROUTING *routing = __atomic_load_n(&qs_routing, __ATOMIC_ACQUIRE);

    /* Resolved just now by the receive side (a reload in between is rare,
     * and then only its first attempt takes the old route). */
    msg->route_gen = routing ? routing->gen : 0;
    s->msg = msg;
    s->hold = hold;
    s->done = done;
    s->ctx = ctx;
    if (hold) {
	journal_append_message(qs_journal, msg, NULL, NULL);
	journal_append_control(qs_journal, msg->queue_id, JOURNAL_OP_HOLD, qs_journaled, s);
    } else {
	journal_append_message(qs_journal, msg, qs_journaled, s);
    }
}

/* ---- control ------------------------------------------------------------ */

typedef struct QS_WAIT {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int     done;
    void  (*user_done)(QMGR_CONTROL *);
} QS_WAIT;

static QS_WAIT *qs_wait_of(QMGR_CONTROL *ctl)
{
    return (QS_WAIT *) ctl->ctx;
}

static void qs_control_done(QMGR_CONTROL *ctl)
{
    QS_WAIT *w = qs_wait_of(ctl);

    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void queue_service_control(QMGR_CONTROL *ctl)
{
    QS_WAIT w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL};
    void   *saved_ctx = ctl->ctx;

    ctl->ctx = &w;
    ctl->done = qs_control_done;
    qmgr_control(qs_qmgr, ctl);
    pthread_mutex_lock(&w.lock);
    while (!w.done)
	pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    ctl->ctx = saved_ctx;
}

JOURNAL *queue_service_journal(void)
{
    return qs_journal;
}

void queue_service_control_async(QMGR_CONTROL *ctl)
{
    qmgr_control(qs_qmgr, ctl);
}

/* ---- the component ------------------------------------------------------ */

static int qs_start(STR *why)
{
    JOURNAL_RECOVERY_STATS rs;
    QMGR_CONFIG cfg;
    int     err;

    if (delivery_agents_start(why) < 0)
	return -1;
    if (qs_routing_update(why) < 0) {
	delivery_agents_stop();
	return -1;
    }
    qs_config(&cfg);
    qs_qmgr = qmgr_create(&cfg);
    if ((qs_journal = journal_open(&journal_backend_fs, NULL, NULL)) == NULL) {
	str_printf(why, "open journal in %s/journal: %s%s", param_str(P_QUEUE_DIRECTORY),
		   strerror(errno), errno == EWOULDBLOCK ? " (locked by another process)" : "");
	qmgr_free(qs_qmgr);
	qs_routing_free();
	delivery_agents_stop();
	return -1;
    }
    memset(&rs, 0, sizeof(rs));
    msg_service_set("qmgr");			/* recovery speaks for the queue */
    if (journal_recover(qs_journal, qs_recovered, NULL, &rs) < 0) {
	str_printf(why, "journal recovery failed: %s", strerror(errno));
	return -1;
    }
    if (rs.messages || rs.torn || rs.damaged)
	msg_info("journal: recovered %zu messages from %zu segments (%zu records, "
		 "%zu torn tails, %zu damaged regions, %zu corrupt messages)",
		 rs.messages, rs.segments, rs.records, rs.torn, rs.damaged, rs.corrupt);
    queue_notice_init(qs_journal, qs_finish);
    qs_recovered_owed();
    msg_service_set("master");
    qs_stopping = 0;
    queue_ctl_register();		/* flush, queue-list, queue-op, ... */
    if ((err = pthread_create(&qs_tid, NULL, qs_thread, NULL)) != 0) {
	str_printf(why, "pthread_create: %s", strerror(err));
	return -1;
    }
    return 0;
}

static void qs_stop(void)
{
    QMGR_STATS st;
    QMGR_CONTROL ctl;

    queue_ctl_stop();			/* the metrics endpoint calls into qmgr */
    delivery_agents_quiesce();
    __atomic_store_n(&qs_stopping, 1, __ATOMIC_RELEASE);
    /* Any inbox event wakes the qmgr thread, which then sees qs_stopping. */
    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_STATS;
    qmgr_control(qs_qmgr, &ctl);
    pthread_join(qs_tid, NULL);
    delivery_agents_stop();
    /* The qmgr is ours now: drain completions until nothing is out. */
    for (;;) {
	qmgr_run(qs_qmgr);
	qmgr_stats(qs_qmgr, &st);
	if (st.requests_out == 0)
	    break;
	qmgr_wait(qs_qmgr, qmgr_now(qs_qmgr) + TIME_NS_PER_SEC / 10);
    }
    queue_notice_stop();
    journal_close(qs_journal);
    qs_journal = NULL;
    qmgr_free(qs_qmgr);
    qs_qmgr = NULL;
    qs_routing_free();
}

static void qs_reload(void)
{
    STR     why = STR_INIT;
    QMGR_CONTROL ctl;

    if (qs_routing_update(&why) < 0)
	msg_warn("reload: trivial-rewrite: %s; queued mail keeps its routes", STR_DATA(&why));
    str_release(&why);
    /* New delivery agents, then qmgr's per-transport settings (limits,
     * rates, delivery slots, and which agent), then the old agents go. */
    delivery_agents_reload();
    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_RECONFIGURE;
    queue_service_control(&ctl);
    delivery_agents_retire();
}

const ENGINE_COMPONENT queue_component = {"queue", qs_start, qs_stop, qs_reload};
