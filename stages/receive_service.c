/*
 * receive_service.c - the cleanup stage and the SMTP listeners (see
 * receive_service.h).
 *
 * The cleanup stage runs cleanup_message() and rewrite_message() -- on its
 * own threads for pickup, qmqpd and internal mail, inline on the calling
 * I/O thread for smtpd -- then hands the message to the journal; the client's reply
 * waits for the journal's sync (queue_service_submit). smtpd is told to
 * slow down while the stage is congested, and to answer 451 at MAIL FROM
 * when it is twice over its bound.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/stage.h"
#include "queue/queue_service.h"
#include "stages/cleanup.h"
#include "stages/receive_service.h"
#include "stages/rewrite.h"
#include "stages/trace.h"

#define RS_INFLIGHT_LIMIT	4096	/* messages between smtpd and the journal */
#define RS_MAX_SMTPD		16

typedef struct RS_JOB {
    STAGE_EVENT ev;
    MESSAGE *msg;
    smtpd_done_fn done;
    void   *done_ctx;
    char    queue_id[QUEUE_ID_MAX];
    int     cleanup_flags;		/* receive_submit_internal() */
    bool    internal;
    bool    has_info;			/* receive_submit_info(): info below */
    CLEANUP_INFO info;			/* its fullname owned by the job */
} RS_JOB;

/* Internal submissions (notices from the qmgr thread) may come before the
 * stage starts or while it stops: they are refused while it is closed, and
 * rs_stop waits for those in flight. */
static pthread_mutex_t rs_internal_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rs_internal_cond = PTHREAD_COND_INITIALIZER;
static bool rs_internal_open;
static size_t rs_internal_out;

static STAGE *rs_stage;

/*
 * cleanup and trivial-rewrite as the current configuration sets them up;
 * "postfix reload" builds new ones (as Postfix's reload restarts those
 * daemons) and the next message takes them. Older ones stay until the
 * component stops: a cleanup thread may still be using one.
 */
typedef struct RS_ROUTING {
    REWRITE *rewrite;
    CLEANUP_CTX *cleanup;
    struct RS_ROUTING *older;
} RS_ROUTING;

static RS_ROUTING *rs_routing;		/* atomic pointer */
static SMTPD *rs_smtpd[RS_MAX_SMTPD];
static SMTPD_CONFIG *rs_smtpd_cfg[RS_MAX_SMTPD];
static char *rs_smtpd_view[RS_MAX_SMTPD];	/* "name/inet": its -o view */
static size_t rs_nsmtpd;
static SMTPD_CONFIG **rs_smtpd_retired;	/* replaced by reloads, freed at stop */
static size_t rs_nretired;

static void rs_job_end(RS_JOB *job, int code, const char *text)
{
    bool    internal = job->internal;

    /* Before done(): once a submitter has its answer it may stop, and the
     * stage may be freed (rs_stop) while this thread would still touch it. */
    stage_finished(rs_stage, 1);
    job->done(job->done_ctx, code, text);
    mem_free((char *) job->info.fullname);
    mem_free(job);
    if (internal) {
	pthread_mutex_lock(&rs_internal_lock);
	if (--rs_internal_out == 0)
	    pthread_cond_broadcast(&rs_internal_cond);
	pthread_mutex_unlock(&rs_internal_lock);
    }
}

static void rs_queued(void *ctx, int status)
{
    RS_JOB *job = ctx;

    if (status == 0)
	rs_job_end(job, 250, job->queue_id);
    else if (status == ENOSPC)
	rs_job_end(job, 452, "4.3.1 Insufficient system storage");
    else
	rs_job_end(job, 451, "4.3.0 Error: queue file write error");
}

static void rs_reply(RS_JOB *job, const char *reply, int fallback);

/* sendmail -bv: the report's submission answered (250: the probe's ID). */
static void rs_verified(void *ctx, int code, const char *text)
{
    RS_JOB *job = ctx;

    if (code == 250)
	rs_job_end(job, 250, job->queue_id);
    else if (code >= 400 && code < 600)
	rs_job_end(job, code, text ? text : "");
    else
	rs_reply(job, text ? text : "451 4.3.0 Error: internal error", 451);
}

/* "550 5.7.1 text" -> 550, "5.7.1 text". */
static void rs_reply(RS_JOB *job, const char *reply, int fallback)
{
    char   *end;
    long    code = strtol(reply, &end, 10);

    if (code < 400 || code > 599 || (*end != ' ' && *end != '-' && *end != 0))
	rs_job_end(job, fallback, reply);
    else
	rs_job_end(job, (int) code, *end ? end + 1 : "");
}

static void rs_tls_info(const MESSAGE *m, CLEANUP_INFO *info, char *proto, char *cipher)
{
    /* smtpd writes "TLSv1.3 with cipher NAME (256/256 bits)". */
    if (m->tls_info && sscanf(m->tls_info, "%31s with cipher %127s (%d/%d bits)", proto,
			      cipher, &info->tls_usebits, &info->tls_algbits) >= 2) {
	info->tls_protocol = proto;
	info->tls_cipher = cipher;
    }
}

static void rs_cleanup_one(RS_JOB *job)
{
    MESSAGE *m = job->msg;
    CLEANUP_INFO info;
    STR     reply = STR_INIT;
    char    proto[32], cipher[128];
    int     rc;

    memcpy(job->queue_id, m->queue_id, QUEUE_ID_MAX);
    if (job->has_info)
	info = job->info;
    else
	cleanup_info_default(m, &info);
    info.flags |= job->cleanup_flags;
    rs_tls_info(m, &info, proto, cipher);
    RS_ROUTING *routing = __atomic_load_n(&rs_routing, __ATOMIC_ACQUIRE);

    rc = cleanup_message(routing->cleanup, m, &info, &reply);
    switch (rc) {
    case CLEANUP_OK:
    case CLEANUP_HOLD:
	if (rewrite_message(routing->rewrite, m, &reply) < 0) {
	    message_free(m);
	    rs_reply(job, STR_DATA(&reply), 451);
	    break;
	}
	if (info.flags & CLEANUP_FLAG_VERIFY) {
	    /* sendmail -bv: the report is queued, the probe never is. */
	    trace_verify(m, receive_submit_internal, rs_verified, job);
	    break;
	}
	queue_service_submit(m, rc == CLEANUP_HOLD, rs_queued, job);
	break;
    case CLEANUP_DISCARD:
	message_free(m);
	rs_job_end(job, 250, job->queue_id);
	break;
    default:					/* REJECT, DEFER */
	message_free(m);
	rs_reply(job, STR_DATA(&reply), rc == CLEANUP_DEFER ? 451 : 550);
	break;
    }
    str_release(&reply);
}

static void rs_handler(STAGE *stage, void *ctx, STAGE_EVENT **events, size_t n)
{
    const char *service = msg_service();

    /* Inline on an smtpd thread too, cleanup's lines say "cleanup". */
    msg_service_set("cleanup");
    for (size_t i = 0; i < n; i++)
	rs_cleanup_one((RS_JOB *) events[i]);
    msg_service_set(service);
}

void receive_submit(MESSAGE *msg, smtpd_done_fn done, void *done_ctx)
{
    RS_JOB *job = MEM_NEW(RS_JOB);

    job->msg = msg;
    job->done = done;
    job->done_ctx = done_ctx;
    /* cleanup and trivial-rewrite never block (tables are in memory) and
     * the journal append is asynchronous: do them on smtpd's own thread. */
    stage_run_inline(rs_stage, &job->ev);
}

void receive_submit_info(MESSAGE *msg, const CLEANUP_INFO *info, smtpd_done_fn done,
			 void *done_ctx)
{
    RS_JOB *job = MEM_NEW(RS_JOB);

    job->msg = msg;
    job->done = done;
    job->done_ctx = done_ctx;
    job->has_info = true;
    job->info = *info;
    job->info.tls_protocol = job->info.tls_cipher = NULL;
    job->info.fullname = info->fullname ? mem_strdup(info->fullname) : NULL;
    stage_post(rs_stage, &job->ev);
}

int receive_submit_internal(MESSAGE *msg, int cleanup_flags, smtpd_done_fn done,
			    void *done_ctx)
{
    RS_JOB *job;

    pthread_mutex_lock(&rs_internal_lock);
    if (!rs_internal_open) {
	pthread_mutex_unlock(&rs_internal_lock);
	return -1;
    }
    rs_internal_out++;
    pthread_mutex_unlock(&rs_internal_lock);
    job = MEM_NEW(RS_JOB);
    job->msg = msg;
    job->done = done;
    job->done_ctx = done_ctx;
    job->cleanup_flags = cleanup_flags;
    job->internal = true;
    stage_post(rs_stage, &job->ev);
    return 0;
}

int receive_pressure(void *ctx)
{
    STAGE_STATS st;

    if (!stage_congested(rs_stage))
	return SMTPD_PRESSURE_NONE;
    stage_stats(rs_stage, &st);
    return st.inflight >= 2 * RS_INFLIGHT_LIMIT ? SMTPD_PRESSURE_FULL : SMTPD_PRESSURE_SLOW;
}

static void rs_etrn_done(QMGR_CONTROL *ctl)
{
    mem_free((char *) ctl->site);
    mem_free(ctl);
}

static int rs_etrn(void *ctx, const char *site)
{
    QMGR_CONTROL *ctl = MEM_NEW(QMGR_CONTROL);

    ctl->op = QMGR_CTL_FLUSH_SITE;
    ctl->site = mem_strdup(site[0] == '@' ? site + 1 : site);
    ctl->done = rs_etrn_done;
    queue_service_control_async(ctl);
    return 0;
}

/* A service's view of the parameters: main.cf plus its -o overrides. */
static const char *rs_param(void *ctx, const char *name)
{
    param_id id = param_lookup(name);

    return id == P_COUNT ? NULL : param_service_str((const char *) ctx, id);
}

static int rs_start_smtpd(const MASTERCF_SERVICE *svc, STR *why)
{
    STR     view = STR_INIT, err = STR_INIT;
    SMTPD_OPTS opts;
    SMTPD_CONFIG *cfg;
    char  **addrs;
    size_t  n;
    long    ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (rs_nsmtpd == RS_MAX_SMTPD) {
	str_printf(why, "too many smtpd services in master.cf");
	return -1;
    }
    str_printf(&view, "%s/inet", svc->name);
    cfg = smtpd_config_build(rs_param, (void *) STR_DATA(&view), &err);
    if (cfg == NULL) {
	str_printf(why, "smtpd service %s: %s", svc->name, STR_DATA(&err));
	str_release(&view);
	str_release(&err);
	return -1;
    }
    n = config_listen_addrs(svc->name, &addrs);
    memset(&opts, 0, sizeof(opts));
    opts.listen = (const char *const *) addrs;
    opts.n_listen = n;
    /*
     * In Sluice maxproc is the number of I/O threads; "-" means one per CPU
     * but one, left to the journal, qmgr and delivery threads (on 2 CPUs,
     * one smtpd thread took 10-20 % less CPU per message than two).
     */
    opts.threads = svc->maxproc > 0 ? svc->maxproc : (int) (ncpu > 2 ? ncpu - 1 : 1);
    opts.config = cfg;
    opts.submit = receive_submit;
    opts.etrn = rs_etrn;
    opts.pressure = receive_pressure;
    rs_smtpd_cfg[rs_nsmtpd] = cfg;
    rs_smtpd[rs_nsmtpd] = smtpd_start(&opts, &err);
    for (size_t i = 0; i < n; i++)
	mem_free(addrs[i]);
    mem_free(addrs);
    if (rs_smtpd[rs_nsmtpd] == NULL) {
	str_printf(why, "smtpd service %s: %s", svc->name, STR_DATA(&err));
	smtpd_config_free(cfg);
	str_release(&view);
	str_release(&err);
	return -1;
    }
    rs_smtpd_view[rs_nsmtpd] = mem_strdup(STR_DATA(&view));
    str_release(&view);
    rs_nsmtpd++;
    str_release(&err);
    return 0;
}

/* New cleanup and trivial-rewrite from the current parameters. */
static int rs_routing_update(STR *why)
{
    REWRITE_CONFIG rcfg;
    CLEANUP_CONFIG ccfg;
    RS_ROUTING *routing = MEM_NEW(RS_ROUTING);

    rewrite_config_from_params(&rcfg);
    cleanup_config_from_params(&ccfg);
    if ((routing->rewrite = rewrite_create(&rcfg, why)) == NULL
	|| (routing->cleanup = cleanup_create(&ccfg, routing->rewrite, why)) == NULL) {
	if (routing->rewrite)
	    rewrite_free(routing->rewrite);
	mem_free(routing);
	return -1;
    }
    routing->older = rs_routing;
    __atomic_store_n(&rs_routing, routing, __ATOMIC_RELEASE);
    return 0;
}

static int rs_start(STR *why)
{
    const MASTERCF *mcf = config_mastercf(config_current());
    long    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    STAGE_OPTS so = {.name = "cleanup", .handler = rs_handler,
	.inflight_limit = RS_INFLIGHT_LIMIT, .batch_max = 64};

    if (rs_routing_update(why) < 0)
	return -1;
    so.threads = (int) param_service_maxproc("cleanup/unix");
    if (so.threads <= 0 || so.threads > ncpu)
	so.threads = (int) (ncpu > 0 ? ncpu : 1);
    rs_stage = stage_create(&so);
    stage_start(rs_stage);
    for (size_t i = 0; mcf && i < mcf->count; i++)
	if (strcmp(mcf->svc[i].type, "inet") == 0 && strcmp(mcf->svc[i].command, "smtpd") == 0
	    && rs_start_smtpd(&mcf->svc[i], why) < 0)
	    return -1;
    pthread_mutex_lock(&rs_internal_lock);
    rs_internal_open = true;
    pthread_mutex_unlock(&rs_internal_lock);
    return 0;
}

static void rs_stop(void)
{
    /* smtpd_stop waits for outstanding replies, so the stage still runs. */
    while (rs_nsmtpd > 0) {
	smtpd_stop(rs_smtpd[--rs_nsmtpd]);
	smtpd_config_free(rs_smtpd_cfg[rs_nsmtpd]);
	mem_free(rs_smtpd_view[rs_nsmtpd]);
    }
    while (rs_nretired > 0)
	smtpd_config_free(rs_smtpd_retired[--rs_nretired]);
    mem_free(rs_smtpd_retired);
    rs_smtpd_retired = NULL;
    pthread_mutex_lock(&rs_internal_lock);
    rs_internal_open = false;
    while (rs_internal_out > 0)
	pthread_cond_wait(&rs_internal_cond, &rs_internal_lock);
    pthread_mutex_unlock(&rs_internal_lock);
    if (rs_stage) {
	stage_free(rs_stage);
	rs_stage = NULL;
    }
    for (RS_ROUTING *r = rs_routing, *older; r; r = older) {
	older = r->older;
	cleanup_free(r->cleanup);
	rewrite_free(r->rewrite);
	mem_free(r);
    }
    rs_routing = NULL;
}

/* Is an "inet ... smtpd" service of that view ("name/inet") in master.cf? */
static const MASTERCF_SERVICE *rs_service(const MASTERCF *mcf, const char *view)
{
    size_t  len = strlen(view) - strlen("/inet");

    for (size_t i = 0; mcf && i < mcf->count; i++)
	if (strcmp(mcf->svc[i].type, "inet") == 0 && strcmp(mcf->svc[i].command, "smtpd") == 0
	    && strlen(mcf->svc[i].name) == len && strncmp(mcf->svc[i].name, view, len) == 0)
	    return &mcf->svc[i];
    return NULL;
}

static void rs_reload(void)
{
    const MASTERCF *mcf = config_mastercf(config_current());
    STR     why = STR_INIT, view = STR_INIT;

    if (rs_routing_update(&why) < 0)
	msg_warn("reload: cleanup: %s; keeping the old settings", STR_DATA(&why));

    /* smtpd services gone from master.cf stop (their sessions end). */
    for (size_t i = 0; i < rs_nsmtpd;) {
	if (rs_service(mcf, rs_smtpd_view[i])) {
	    i++;
	    continue;
	}
	msg_info("reload: smtpd service %s removed", rs_smtpd_view[i]);
	smtpd_stop(rs_smtpd[i]);
	smtpd_config_free(rs_smtpd_cfg[i]);
	mem_free(rs_smtpd_view[i]);
	rs_nsmtpd--;
	rs_smtpd[i] = rs_smtpd[rs_nsmtpd];
	rs_smtpd_cfg[i] = rs_smtpd_cfg[rs_nsmtpd];
	rs_smtpd_view[i] = rs_smtpd_view[rs_nsmtpd];
    }

    /* The others: new clients get the reloaded settings (restrictions,
     * limits, banner, TLS). Addresses and thread counts stay. */
    for (size_t i = 0; i < rs_nsmtpd; i++) {
	SMTPD_CONFIG *cfg;

	str_reset(&why);
	if ((cfg = smtpd_config_build(rs_param, rs_smtpd_view[i], &why)) == NULL) {
	    msg_warn("reload: smtpd service %s: %s; keeping the old settings",
		     rs_smtpd_view[i], STR_DATA(&why));
	    continue;
	}
	rs_smtpd_retired = mem_realloc(rs_smtpd_retired,
				       (rs_nretired + 1) * sizeof(*rs_smtpd_retired));
	rs_smtpd_retired[rs_nretired++] = rs_smtpd_cfg[i];
	rs_smtpd_cfg[i] = cfg;
	smtpd_set_config(rs_smtpd[i], cfg);
    }

    /* New smtpd services in master.cf start. */
    for (size_t k = 0; mcf && k < mcf->count; k++) {
	const MASTERCF_SERVICE *svc = &mcf->svc[k];
	bool    running = false;

	if (strcmp(svc->type, "inet") != 0 || strcmp(svc->command, "smtpd") != 0)
	    continue;
	str_printf(&view, "%s/inet", svc->name);
	for (size_t i = 0; i < rs_nsmtpd && !running; i++)
	    running = strcmp(rs_smtpd_view[i], STR_DATA(&view)) == 0;
	str_reset(&view);
	if (running)
	    continue;
	str_reset(&why);
	if (rs_start_smtpd(svc, &why) < 0)
	    msg_warn("reload: %s", STR_DATA(&why));
	else
	    msg_info("reload: smtpd service %s/inet started", svc->name);
    }
    str_release(&view);
    str_release(&why);
}

const ENGINE_COMPONENT receive_component = {"receive", rs_start, rs_stop, rs_reload};
