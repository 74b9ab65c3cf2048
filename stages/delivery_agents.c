/*
 * delivery_agents.c - the engine's delivery agents (see delivery_agents.h).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "stages/delivery_agents.h"
#include "stages/delivery_log.h"
#include "stages/smtp.h"
#include "stages/local.h"
#include "stages/pipe.h"
#include "stages/virtual.h"

enum agent_kind { AGENT_SMTP, AGENT_ERROR, AGENT_RETRY, AGENT_DISCARD,
    AGENT_LOCAL, AGENT_VIRTUAL, AGENT_PIPE };

typedef struct AGENT {
    char   *service;
    enum agent_kind kind;
    SMTP_AGENT *smtp;
    LOCAL_AGENT *local;
    VIRTUAL_AGENT *virtual_;
    PIPE_AGENT *pipe;
} AGENT;

#define AGENT_MAX	64
#define AGENT_SMTP_THREADS 2

/* One configuration's agents. A reload builds a new set; the old one
 * finishes what it was handed on a thread of its own, then goes. */
typedef struct AGENT_SET {
    AGENT   v[AGENT_MAX];
    size_t  count;
    pthread_t reaper;			/* retired sets: the thread freeing it */
    struct AGENT_SET *next_retired;
} AGENT_SET;

static AGENT_SET *agents_current;	/* atomic pointer */
static AGENT_SET *agents_pending;	/* replaced, qmgr may still use it */
static AGENT_SET *agents_retired;	/* being freed by their reapers */
static int agents_quiescing;

const char delivery_agents_shutdown_reason[] = "mail system is shutting down";

static const AGENT *agent_find(const AGENT_SET *set, const char *service)
{
    for (size_t i = 0; set && i < set->count; i++)
	if (strcmp(set->v[i].service, service) == 0)
	    return &set->v[i];
    return NULL;
}

static void agent_set_rcpt(DELIVERY_RCPT *dr, enum delivery_status st, const char *dsn,
			   const char *reason)
{
    dr->status = st;
    snprintf(dr->dsn, sizeof(dr->dsn), "%s", dsn);
    mem_free(dr->reason);
    dr->reason = mem_strdup(reason);
}

/*
 * error, retry and discard: Postfix's error(8) and discard(8). The nexthop
 * is the reason text, optionally led by an enhanced status code.
 */
static void agent_local_outcome(const AGENT *a, DELIVERY_REQUEST *req)
{
    const char *text = req->nexthop ? req->nexthop : "";
    char    dsn[16];

    if (a->kind == AGENT_DISCARD) {
	snprintf(dsn, sizeof(dsn), "2.0.0");
    } else {
	snprintf(dsn, sizeof(dsn), "%s", a->kind == AGENT_ERROR ? "5.0.0" : "4.0.0");
	/* "5.1.1 User unknown": take the code when its class fits. */
	if (isdigit((unsigned char) text[0]) && text[1] == '.' && strchr(text, ' ')
	    && (size_t) (strchr(text, ' ') - text) < sizeof(dsn)
	    && text[0] == dsn[0]) {
	    snprintf(dsn, (size_t) (strchr(text, ' ') - text) + 1, "%s", text);
	    text = strchr(text, ' ') + 1;
	}
    }
    if (*text == 0)
	text = a->kind == AGENT_DISCARD ? "discarded" : "unknown mail transport error";
    msg_service_set(a->kind == AGENT_DISCARD ? "discard" : a->kind == AGENT_ERROR ? "error"
		    : "retry");
    for (size_t i = 0; i < req->nrcpt; i++) {
	DELIVERY_LOG how = {0};

	agent_set_rcpt(req->rcpt + i, a->kind == AGENT_DISCARD ? DELIVERY_SENT
		       : a->kind == AGENT_ERROR ? DELIVERY_BOUNCE : DELIVERY_DEFER, dsn, text);
	delivery_log_rcpt(req, i, &how);
    }
    msg_service_set("qmgr");
    snprintf(req->relay, sizeof(req->relay), "none");
    req->done(req);
}

static void agent_dispatch(void *ctx, DELIVERY_REQUEST *req)
{
    const AGENT *a = ctx;

    if (__atomic_load_n(&agents_quiescing, __ATOMIC_ACQUIRE)) {
	for (size_t i = 0; i < req->nrcpt; i++)
	    agent_set_rcpt(req->rcpt + i, DELIVERY_DEFER, "4.3.2", delivery_agents_shutdown_reason);
	req->done(req);
	return;
    }
    if (a->kind == AGENT_SMTP)
	smtp_agent_deliver(a->smtp, req);
    else if (a->kind == AGENT_LOCAL)
	local_agent_deliver(a->local, req);
    else if (a->kind == AGENT_VIRTUAL)
	virtual_agent_deliver(a->virtual_, req);
    else if (a->kind == AGENT_PIPE)
	pipe_agent_deliver(a->pipe, req);
    else
	agent_local_outcome(a, req);
}

/* The agents master.cf and main.cf set up now. */
static AGENT_SET *agent_set_create(void)
{
    const MASTERCF *cf = config_mastercf(config_current());
    AGENT_SET *set = MEM_NEW(AGENT_SET);

    for (size_t i = 0; cf && i < cf->count && set->count < AGENT_MAX; i++) {
	const MASTERCF_SERVICE *svc = cf->svc + i;
	AGENT  *a = &set->v[set->count];

	if (strcmp(svc->type, "unix") != 0 || agent_find(set, svc->name))
	    continue;
	if (strcmp(svc->command, "smtp") == 0 || strcmp(svc->command, "lmtp") == 0) {
	    SMTP_CONFIG scfg;
	    bool    lmtp = strcmp(svc->command, "lmtp") == 0;
	    STR     ignored = STR_INIT;

	    smtp_config_load(&scfg, lmtp);
	    /* -o overrides the agent knows; others (syslog_name...) do not apply. */
	    for (size_t o = 0; o < svc->nopt; o++)
		(void) smtp_config_set(&scfg, svc->opt[o].name, svc->opt[o].value, &ignored);
	    str_release(&ignored);
	    a->kind = AGENT_SMTP;
	    a->smtp = smtp_agent_create(&scfg, AGENT_SMTP_THREADS);
	} else if (strcmp(svc->command, "error") == 0) {
	    a->kind = strcmp(svc->name, "retry") == 0 ? AGENT_RETRY : AGENT_ERROR;
	} else if (strcmp(svc->command, "discard") == 0) {
	    a->kind = AGENT_DISCARD;
	} else if (strcmp(svc->command, "local") == 0 || strcmp(svc->command, "virtual") == 0
		   || strcmp(svc->command, "pipe") == 0) {
	    STR     err = STR_INIT;

	    /* A broken service leaves its mail queued, not the engine down. */
	    if (svc->command[0] == 'l') {
		a->kind = AGENT_LOCAL;
		a->local = local_agent_create(svc->name, &err);
	    } else if (svc->command[0] == 'v') {
		a->kind = AGENT_VIRTUAL;
		a->virtual_ = virtual_agent_create(svc->name, &err);
	    } else {
		a->kind = AGENT_PIPE;
		a->pipe = pipe_agent_create(svc->name, &err);
	    }
	    if (a->local == NULL && a->virtual_ == NULL && a->pipe == NULL) {
		msg_warn("master.cf service %s: %s", svc->name, STR_DATA(&err));
		str_release(&err);
		memset(a, 0, sizeof(*a));
		continue;
	    }
	    str_release(&err);
	} else {
	    continue;
	}
	a->service = mem_strdup(svc->name);
	set->count++;
    }
    return set;
}

/* Waits for what the agents were handed (their destroy functions do). */
static void agent_set_free(AGENT_SET *set)
{
    for (size_t i = 0; i < set->count; i++) {
	AGENT  *a = &set->v[i];

	if (a->smtp)
	    smtp_agent_destroy(a->smtp);
	local_agent_destroy(a->local);
	virtual_agent_destroy(a->virtual_);
	pipe_agent_destroy(a->pipe);
	mem_free(a->service);
    }
    mem_free(set);
}

int delivery_agents_start(STR *why)
{
    agents_quiescing = 0;
    __atomic_store_n(&agents_current, agent_set_create(), __ATOMIC_RELEASE);
    (void) why;
    return 0;
}

void delivery_agents_reload(void)
{
    if (agents_pending)				/* two reloads, no retire between */
	delivery_agents_retire();
    agents_pending = agents_current;
    __atomic_store_n(&agents_current, agent_set_create(), __ATOMIC_RELEASE);
}

static void *agent_reaper(void *arg)
{
    agent_set_free(arg);
    return NULL;
}

void delivery_agents_retire(void)
{
    AGENT_SET *set = agents_pending;
    int     err;

    if (set == NULL)
	return;
    agents_pending = NULL;
    if ((err = pthread_create(&set->reaper, NULL, agent_reaper, set)) != 0) {
	msg_warn("reload: cannot start a thread to retire the old delivery agents: %s; "
		 "waiting for them here", strerror(err));
	agent_set_free(set);
	return;
    }
    set->next_retired = agents_retired;
    agents_retired = set;
}

void delivery_agents_setup(const char *transport, QMGR_TRANSPORT_CONFIG *tc)
{
    const AGENT *a = agent_find(__atomic_load_n(&agents_current, __ATOMIC_ACQUIRE), transport);

    tc->dispatch = a ? agent_dispatch : NULL;
    tc->agent_ctx = (void *) a;
    if (a == NULL)
	msg_warn("transport %s: no delivery agent in master.cf (mail for it stays queued)",
		 transport);
}

void delivery_agents_quiesce(void)
{
    __atomic_store_n(&agents_quiescing, 1, __ATOMIC_RELEASE);
}

void delivery_agents_stop(void)
{
    delivery_agents_retire();
    while (agents_retired) {
	AGENT_SET *set = agents_retired;

	agents_retired = set->next_retired;
	pthread_join(set->reaper, NULL);
    }
    if (agents_current)
	agent_set_free(agents_current);
    agents_current = NULL;
}
