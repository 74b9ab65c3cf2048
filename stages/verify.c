/*
 * verify.c - address verification: the result cache and the probes (see
 * verify.h).
 *
 * Cache records are "status:probed:updated:text" (status 0 ok, 1 defer,
 * 2 bounce, 3 in progress; times in wall-clock seconds, 0 for never), the
 * record Postfix's verify(8) keeps, so an entry says both what the last
 * probe found and whether a probe is out now.
 *
 * verify_lock guards the running flag, the cache handle, the rewrite
 * context and the parameters; probes are resolved under it and dispatched
 * after it is released (an agent may answer on this very thread). A probe
 * that completes after verify_stop() only frees itself.
 *
 * Threading: see verify.h. Diagnostics: probe outcomes are logged by the
 * delivery agent (status=deliverable/undeliverable); cache problems with
 * msg_warn().
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "queue/message.h"
#include "queue/queue_id.h"
#include "stages/delivery.h"
#include "stages/delivery_agents.h"
#include "stages/delivery_log.h"
#include "stages/rewrite.h"
#include "stages/screen_cache.h"
#include "stages/verify.h"

#define VERIFY_TEXT_MAX	400		/* reason kept per address */

static pthread_mutex_t verify_lock = PTHREAD_MUTEX_INITIALIZER;
static bool verify_running;
static SCREEN_CACHE *verify_cache;	/* opened at the first query */
static REWRITE *verify_rw;
static char *verify_sender;
static long long verify_pos_expire, verify_pos_refresh;
static long long verify_neg_expire, verify_neg_refresh;
static long long verify_pending_time;
static bool verify_neg_cache;

static const char verify_in_progress[] = "Address verification in progress";

typedef struct VERIFY_REC {
    int     status;
    long long probed;
    long long updated;
    const char *text;
} VERIFY_REC;

/* "status:probed:updated:text"; -1 on a damaged record. */
static int verify_rec_parse(const char *s, VERIFY_REC *r)
{
    char   *end;

    r->status = (int) strtol(s, &end, 10);
    if (*end != ':' || r->status < VERIFY_OK || r->status > VERIFY_TODO)
	return -1;
    r->probed = strtoll(end + 1, &end, 10);
    if (*end != ':')
	return -1;
    r->updated = strtoll(end + 1, &end, 10);
    if (*end != ':')
	return -1;
    r->text = end + 1;
    return 0;
}

static void verify_rec_store(const char *addr, const VERIFY_REC *r)
{
    STR     v = STR_INIT;

    str_printf(&v, "%d:%lld:%lld:%.*s", r->status, r->probed, r->updated,
	       VERIFY_TEXT_MAX, r->text ? r->text : "");
    screen_cache_put(verify_cache, addr, STR_DATA(&v));
    str_release(&v);
}

/* ---- probes ---- */

typedef struct VERIFY_PROBE {
    DELIVERY_REQUEST req;
    DELIVERY_RCPT rcpt;
    char   *addr;			/* the cache key */
    /* Set when no agent is involved: */
    enum delivery_status status;
    const char *dsn;
    char   *reason;
    bool    immediate;
} VERIFY_PROBE;

static void verify_probe_free(VERIFY_PROBE *p)
{
    mem_free(p->rcpt.reason);
    mem_free(p->reason);
    mem_free(p->addr);
    message_free((MESSAGE *) p->req.msg);
    mem_free(p);
}

/* done() of the probe: any thread. */
static void verify_probe_done(DELIVERY_REQUEST *req)
{
    VERIFY_PROBE *p = req->ctx;
    const DELIVERY_RCPT *dr = &req->rcpt[0];
    VERIFY_REC r = {
	.status = dr->status == DELIVERY_SENT ? VERIFY_OK
	: dr->status == DELIVERY_BOUNCE ? VERIFY_BOUNCE : VERIFY_DEFER,
	.probed = 0,
	.updated = (long long) time(NULL),
	.text = dr->reason ? dr->reason : "",
    };

    pthread_mutex_lock(&verify_lock);
    if (verify_running) {
	if (r.status != VERIFY_OK && !verify_neg_cache)
	    screen_cache_del(verify_cache, p->addr);
	else
	    verify_rec_store(p->addr, &r);
    }
    pthread_mutex_unlock(&verify_lock);
    verify_probe_free(p);
}

/* The master.cf command of a transport ("smtp", "error", ...), or NULL. */
static const char *verify_transport_command(const char *transport)
{
    const MASTERCF *cf = config_mastercf(config_current());

    for (size_t i = 0; cf && i < cf->count; i++)
	if (strcmp(cf->svc[i].type, "unix") == 0 && strcmp(cf->svc[i].name, transport) == 0)
	    return cf->svc[i].command;
    return NULL;
}

static void verify_probe_result(VERIFY_PROBE *p, enum delivery_status st, const char *dsn,
				        const char *reason)
{
    p->immediate = true;
    p->status = st;
    p->dsn = dsn;
    p->reason = mem_strdup(reason);
}

/* Under verify_lock: a probe ready to go, resolved. */
static VERIFY_PROBE *verify_probe_new(const char *addr)
{
    VERIFY_PROBE *p = MEM_NEW(VERIFY_PROBE);
    MESSAGE *m = message_new();
    RESOLVED res;
    STR     canon = STR_INIT;
    RCPT   *r;

    p->addr = mem_strdup(addr);
    queue_id_next(m->queue_id);
    m->arrival_us = time_real_us();
    mem_free(m->sender);
    m->sender = mem_strdup(verify_sender);
    m->protocol = mem_strdup("LOCAL");
    m->probe = true;
    m->content = blob_new("\r\n", 2);	/* never sent: no DATA in a probe */
    r = message_add_rcpt(m, addr, addr);
    p->req.msg = m;
    p->req.rcpt = &p->rcpt;
    p->req.nrcpt = 1;
    p->req.done = verify_probe_done;
    p->req.ctx = p;
    p->rcpt.index = 0;

    resolved_init(&res);
    rewrite_address(verify_rw, addr, &canon);
    if (rewrite_resolve(verify_rw, STR_DATA(&canon), &res) < 0) {
	verify_probe_result(p, DELIVERY_DEFER, "4.3.0", "address resolver failure");
    } else if (res.flags & RESOLVE_FLAG_ERROR) {
	verify_probe_result(p, DELIVERY_BOUNCE, "5.1.3", "bad address syntax");
    } else {
	r->transport = mem_strdup(STR_DATA(&res.transport));
	r->nexthop = mem_strdup(STR_DATA(&res.nexthop));
	mem_free(r->address);
	r->address = mem_strdup(STR_DATA(&res.recipient));
    }
    resolved_release(&res);
    str_release(&canon);
    p->req.transport = r->transport ? r->transport : "none";
    p->req.nexthop = r->nexthop ? r->nexthop : "";
    return p;
}

/* After verify_lock is released: send it on its way. */
static void verify_probe_send(VERIFY_PROBE *p)
{
    const char *cmd = p->immediate ? NULL : verify_transport_command(p->req.transport);
    int64_t now = time_mono_ns();

    p->req.active_mono_ns = p->req.queued_mono_ns = now;
    if (!p->immediate) {
	if (cmd && (strcmp(cmd, "smtp") == 0 || strcmp(cmd, "lmtp") == 0)) {
	    QMGR_TRANSPORT_CONFIG tc = {0};

	    delivery_agents_setup(p->req.transport, &tc);
	    if (tc.dispatch) {
		tc.dispatch(tc.agent_ctx, &p->req);
		return;
	    }
	    verify_probe_result(p, DELIVERY_DEFER, "4.3.0", "mail transport unavailable");
	} else if (cmd && strcmp(cmd, "error") == 0) {
	    const char *text = *p->req.nexthop ? p->req.nexthop : "unknown mail transport error";
	    bool    retry = strcmp(p->req.transport, "retry") == 0;

	    verify_probe_result(p, retry ? DELIVERY_DEFER : DELIVERY_BOUNCE,
				retry ? "4.0.0" : "5.0.0", text);
	} else if (cmd && (strcmp(cmd, "discard") == 0 || strcmp(cmd, "local") == 0
			   || strcmp(cmd, "virtual") == 0 || strcmp(cmd, "pipe") == 0)) {
	    verify_probe_result(p, DELIVERY_SENT, "2.0.0",
				strcmp(cmd, "discard") == 0 ? "discards mail"
				: "delivers to mailbox");
	} else {
	    verify_probe_result(p, DELIVERY_DEFER, "4.3.0", "mail transport unavailable");
	}
    }
    /* Answered without a network agent: log it as the agent would. */
    DELIVERY_LOG how = {0};

    p->rcpt.status = p->status;
    snprintf(p->rcpt.dsn, sizeof(p->rcpt.dsn), "%s", p->dsn);
    p->rcpt.reason = mem_strdup(p->reason);
    snprintf(p->req.relay, sizeof(p->req.relay), "none");
    const char *was = msg_service();

    msg_service_set("verify");
    delivery_log_rcpt(&p->req, 0, &how);
    msg_service_set(was);
    p->req.done(&p->req);
}

/* ---- queries ---- */

/*
 * Under verify_lock. Only a configuration that uses reject_unverified_*
 * needs the cache, so it is opened on first use (as Postfix starts its
 * verify daemon on demand): no warning about an unwritable default
 * data_directory on every start.
 */
static void verify_cache_open(void)
{
    STR     err = STR_INIT;

    if ((verify_cache = screen_cache_open(param_str(P_ADDRESS_VERIFY_MAP), &err)) == NULL) {
	msg_warn("address_verify_map: %s; results are kept in memory only", STR_DATA(&err));
	verify_cache = screen_cache_open("internal:", &err);
    }
    str_release(&err);
}

enum verify_status verify_query(const char *addr, STR *text)
{
    STR     val = STR_INIT;
    VERIFY_REC r = {VERIFY_TODO, 0, 0, verify_in_progress};
    VERIFY_PROBE *probe = NULL;
    long long now = (long long) time(NULL);
    bool    need;

    str_reset(text);
    pthread_mutex_lock(&verify_lock);
    if (!verify_running) {
	pthread_mutex_unlock(&verify_lock);
	str_puts(text, "address verification service is unavailable");
	return VERIFY_UNAVAIL;
    }
    if (verify_cache == NULL)
	verify_cache_open();
    if (screen_cache_get(verify_cache, addr, &val) && verify_rec_parse(STR_DATA(&val), &r) < 0) {
	msg_warn("%s: damaged record for %s; probing again", screen_cache_name(verify_cache),
		 addr);
	r = (VERIFY_REC) {VERIFY_TODO, 0, 0, verify_in_progress};
    }
    /* A result too old to trust is no result. */
    if (r.status != VERIFY_TODO && r.updated
	&& now - r.updated > (r.status == VERIFY_OK ? verify_pos_expire : verify_neg_expire)) {
	r.status = VERIFY_TODO;
	r.updated = 0;
	r.text = verify_in_progress;
    }
    need = r.status == VERIFY_TODO
	|| now - r.updated > (r.status == VERIFY_OK ? verify_pos_refresh : verify_neg_refresh);
    if (need && (r.probed == 0 || now - r.probed > verify_pending_time)) {
	r.probed = now;
	verify_rec_store(addr, &r);
	probe = verify_probe_new(addr);
    }
    str_puts(text, r.text);
    pthread_mutex_unlock(&verify_lock);
    str_release(&val);
    if (probe)
	verify_probe_send(probe);
    return (enum verify_status) r.status;
}

/* ---- start and stop ---- */

int     verify_start(STR *why)
{
    REWRITE_CONFIG rcfg;
    REWRITE *rw;
    const char *sender = param_str(P_ADDRESS_VERIFY_SENDER);

    rewrite_config_from_params(&rcfg);
    if ((rw = rewrite_create(&rcfg, why)) == NULL)
	return -1;
    pthread_mutex_lock(&verify_lock);
    verify_rw = rw;
    verify_cache = NULL;
    if (strcmp(sender, "<>") == 0 || *sender == 0)
	verify_sender = mem_strdup("");
    else if (strchr(sender, '@') == NULL) {
	STR     s = STR_INIT;

	str_printf(&s, "%s@%s", sender, param_str(P_MYORIGIN));
	verify_sender = str_steal(&s, NULL);
    } else
	verify_sender = mem_strdup(sender);
    verify_pos_expire = param_int(P_ADDRESS_VERIFY_POSITIVE_EXPIRE_TIME);
    verify_pos_refresh = param_int(P_ADDRESS_VERIFY_POSITIVE_REFRESH_TIME);
    verify_neg_expire = param_int(P_ADDRESS_VERIFY_NEGATIVE_EXPIRE_TIME);
    verify_neg_refresh = param_int(P_ADDRESS_VERIFY_NEGATIVE_REFRESH_TIME);
    verify_pending_time = param_int(P_ADDRESS_VERIFY_PENDING_TIME);
    verify_neg_cache = param_bool(P_ADDRESS_VERIFY_NEGATIVE_CACHE);
    verify_running = true;
    pthread_mutex_unlock(&verify_lock);
    return 0;
}

void    verify_stop(void)
{
    pthread_mutex_lock(&verify_lock);
    if (verify_running) {
	verify_running = false;
	screen_cache_close(verify_cache);
	verify_cache = NULL;
	rewrite_free(verify_rw);
	verify_rw = NULL;
	mem_free(verify_sender);
	verify_sender = NULL;
    }
    pthread_mutex_unlock(&verify_lock);
}

static int verify_component_start(STR *why)
{
    return verify_start(why);
}

const ENGINE_COMPONENT verify_component = {"verify", verify_component_start, verify_stop, NULL};
