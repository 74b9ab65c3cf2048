/*
 * virtual.c - the virtual(8) delivery agent (see virtual.h).
 *
 * Threading: requests run on the agent pool's threads; the tables are
 * shared (dict.h lookups are thread safe).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/dict.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "stages/agent_pool.h"
#include "stages/delivery_log.h"
#include "stages/mailbox_exec.h"
#include "stages/mailbox_util.h"
#include "stages/virtual.h"

typedef struct VIRTUAL_MAPS {
    DICT  **dict;
    size_t  n;
} VIRTUAL_MAPS;

struct VIRTUAL_AGENT {
    AGENT_POOL *pool;
    VIRTUAL_MAPS mailbox, uid, gid;
    char   *base;
    char   *delims;
    long long minimum_uid;
    long long size_limit;
    MAILBOX_LOCK lock;
};

static int virtual_maps_open(VIRTUAL_MAPS *m, const char *what, const char *value, STR *why)
{
    char  **list = config_list_split(value, &m->n);

    m->dict = mem_calloc(m->n + 1, sizeof(DICT *));
    for (size_t i = 0; i < m->n; i++) {
	STR     err = STR_INIT;

	if ((m->dict[i] = dict_open(list[i], DICT_FLAG_NONE, &err)) == NULL) {
	    str_printf(why, "%s: %s: %s", what, list[i], STR_DATA(&err));
	    str_release(&err);
	    m->n = i;
	    config_list_free(list);
	    return -1;
	}
	str_release(&err);
    }
    config_list_free(list);
    return 0;
}

static void virtual_maps_close(VIRTUAL_MAPS *m)
{
    for (size_t i = 0; i < m->n; i++)
	dict_close(m->dict[i]);
    mem_free(m->dict);
    m->dict = NULL;
    m->n = 0;
}

/* user+ext@domain, user@domain, @domain over every table in order. */
static int virtual_lookup(const VIRTUAL_AGENT *a, const VIRTUAL_MAPS *m, const char *addr,
			          STR *result)
{
    MAILBOX_ADDR pa;
    STR     base = STR_INIT;
    int     rc = DICT_NOTFOUND;

    mailbox_addr_split(&pa, addr, a->delims);
    for (size_t i = 0; i < m->n && rc == DICT_NOTFOUND; i++) {
	rc = dict_lookup(m->dict[i], addr, result);
	if (rc == DICT_NOTFOUND && STR_LEN(&pa.extension)) {
	    str_reset(&base);
	    str_printf(&base, "%s@%s", STR_DATA(&pa.user), STR_DATA(&pa.domain));
	    rc = dict_lookup(m->dict[i], STR_DATA(&base), result);
	}
	if (rc == DICT_NOTFOUND && STR_LEN(&pa.domain)) {
	    str_reset(&base);
	    str_printf(&base, "@%s", STR_DATA(&pa.domain));
	    rc = dict_lookup(m->dict[i], STR_DATA(&base), result);
	}
    }
    mailbox_addr_release(&pa);
    str_release(&base);
    return rc;
}

/* A uid or gid from its tables; -1 (outcome set) on trouble. */
static int virtual_id(const VIRTUAL_AGENT *a, const VIRTUAL_MAPS *m, const char *what,
		              const char *addr, long long *id, MAILBOX_RESULT *res)
{
    STR     v = STR_INIT;
    char   *end;
    int     rc = virtual_lookup(a, m, addr, &v);

    if (rc == DICT_ERR) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "%s lookup failure", what);
    } else if (rc == DICT_NOTFOUND) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0",
			   "mail system configuration error: recipient %s: %s not found",
			   addr, what);
	rc = DICT_ERR;
    } else {
	errno = 0;
	*id = strtoll(STR_DATA(&v), &end, 10);
	if (errno || end == STR_DATA(&v) || *end || *id < 0) {
	    mailbox_result_set(res, DELIVERY_DEFER, "4.3.0",
			       "mail system configuration error: recipient %s: bad %s: %s",
			       addr, what, STR_DATA(&v));
	    rc = DICT_ERR;
	}
    }
    str_release(&v);
    return rc == DICT_ERR ? -1 : 0;
}

static void virtual_rcpt(VIRTUAL_AGENT *a, DELIVERY_REQUEST *req, size_t i, MAILBOX_RESULT *res)
{
    const MESSAGE *m = req->msg;
    const RCPT *r = m->rcpt + req->rcpt[i].index;
    STR     mbox = STR_INIT, path = STR_INIT, data = STR_INIT;
    long long uid = 0, gid = 0;
    MAILBOX_CREDS creds;
    MAILBOX_FILE_JOB job = {.lock = &a->lock, .chown_uid = (uid_t) -1,
    .chown_gid = (gid_t) -1, .size_limit = a->size_limit};
    MAILBOX_ENVELOPE env = {.sender = m->sender, .time_s = time_real_us() / 1000000,
	.return_path = m->sender, .delivered_to = r->address,
    .x_original_to = r->orig_rcpt && *r->orig_rcpt ? r->orig_rcpt : r->address};
    int     rc;

    if (m->content && mailbox_delivered_to(m->content->data, m->content->len, r->address)) {
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.4.6", "mail forwarding loop for %s",
			   r->address);
	goto done;
    }
    rc = virtual_lookup(a, &a->mailbox, r->address, &mbox);
    if (rc == DICT_ERR) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "virtual_mailbox_maps lookup failure");
	goto done;
    }
    if (rc == DICT_NOTFOUND) {
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.1.1", "unknown user: \"%s\"", r->address);
	goto done;
    }
    if (virtual_id(a, &a->uid, "virtual_uid_maps", r->address, &uid, res) < 0
	|| virtual_id(a, &a->gid, "virtual_gid_maps", r->address, &gid, res) < 0)
	goto done;
    if (uid < a->minimum_uid) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0",
			   "mail system configuration error: recipient %s: uid %lld is below "
			   "virtual_minimum_uid %lld", r->address, uid, a->minimum_uid);
	goto done;
    }
    /* A result that climbs out of the base directory is not a mailbox. */
    if (strstr(STR_DATA(&mbox), "..") != NULL || STR_LEN(&mbox) == 0) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0",
			   "mail system configuration error: recipient %s: bad mailbox \"%s\"",
			   r->address, STR_DATA(&mbox));
	goto done;
    }
    str_printf(&path, "%s/%s", a->base, STR_DATA(&mbox));
    job.maildir = STR_DATA(&mbox)[STR_LEN(&mbox) - 1] == '/';
    mailbox_format(&data, &env, job.maildir ? 0 : MAILBOX_FMT_FROM_LINE | MAILBOX_FMT_QUOTE_FROM
		   | MAILBOX_FMT_BLANK_END, m->content ? m->content->data : "",
		   m->content ? m->content->len : 0);
    if (job.maildir && a->size_limit > 0 && (long long) STR_LEN(&data) > a->size_limit) {
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.2.2", "cannot update maildir %s: %s",
			   STR_DATA(&path), strerror(EFBIG));
	goto done;
    }
    job.path = STR_DATA(&path);
    job.data = STR_DATA(&data);
    job.len = STR_LEN(&data);
    /* Not root: the invoking user writes, whatever the tables say. */
    if (mailbox_exec_privileged()) {
	creds.uid = (uid_t) uid;
	creds.gid = (gid_t) gid;
    } else {
	mailbox_exec_self(&creds);
    }
    mailbox_exec_file(&creds, &job, res);

done:
    str_release(&mbox);
    str_release(&path);
    str_release(&data);
}

static void virtual_job(void *ctx, void *jobp)
{
    VIRTUAL_AGENT *a = ctx;
    DELIVERY_REQUEST *req = jobp;

    msg_service_set("virtual");
    for (size_t i = 0; i < req->nrcpt; i++) {
	DELIVERY_RCPT *dr = req->rcpt + i;
	DELIVERY_LOG how = {.relay = "virtual"};
	MAILBOX_RESULT res;

	virtual_rcpt(a, req, i, &res);
	dr->status = res.status;
	snprintf(dr->dsn, sizeof(dr->dsn), "%s", res.dsn);
	mem_free(dr->reason);
	dr->reason = mem_strdup(res.text);
	delivery_log_rcpt(req, i, &how);
    }
    snprintf(req->relay, sizeof(req->relay), "virtual");
    msg_service_set("qmgr");
    req->done(req);
}

VIRTUAL_AGENT *virtual_agent_create(const char *service, STR *why)
{
    VIRTUAL_AGENT *a = MEM_NEW(VIRTUAL_AGENT);
    int     m;

    a->base = mem_strdup(param_service_str(service, P_VIRTUAL_MAILBOX_BASE));
    a->delims = mem_strdup(param_service_str(service, P_RECIPIENT_DELIMITER));
    a->minimum_uid = param_service_int(service, P_VIRTUAL_MINIMUM_UID);
    a->size_limit = param_service_int(service, P_VIRTUAL_MAILBOX_LIMIT);
    a->lock.attempts = (int) param_service_int(service, P_DELIVER_LOCK_ATTEMPTS);
    a->lock.delay_ms = (int) param_service_int(service, P_DELIVER_LOCK_DELAY) * 1000;
    a->lock.stale_s = (int) param_service_int(service, P_STALE_LOCK_TIME);
    if ((m = mailbox_lock_methods(param_service_str(service, P_VIRTUAL_MAILBOX_LOCK), why)) < 0)
	goto bad;
    a->lock.methods = m;
    if (virtual_maps_open(&a->mailbox, "virtual_mailbox_maps",
			  param_service_str(service, P_VIRTUAL_MAILBOX_MAPS), why) < 0
	|| virtual_maps_open(&a->uid, "virtual_uid_maps",
			     param_service_str(service, P_VIRTUAL_UID_MAPS), why) < 0
	|| virtual_maps_open(&a->gid, "virtual_gid_maps",
			     param_service_str(service, P_VIRTUAL_GID_MAPS), why) < 0)
	goto bad;
    a->pool = agent_pool_create("virtual", param_service_maxproc(service), virtual_job, a);
    return a;

bad:
    virtual_agent_destroy(a);
    return NULL;
}

void    virtual_agent_deliver(VIRTUAL_AGENT *a, DELIVERY_REQUEST *req)
{
    agent_pool_submit(a->pool, req);
}

void    virtual_agent_destroy(VIRTUAL_AGENT *a)
{
    if (a == NULL)
	return;
    agent_pool_destroy(a->pool);
    virtual_maps_close(&a->mailbox);
    virtual_maps_close(&a->uid);
    virtual_maps_close(&a->gid);
    mem_free(a->base);
    mem_free(a->delims);
    mem_free(a);
}
