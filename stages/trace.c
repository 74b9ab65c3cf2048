/*
 * trace.c - sendmail -bv reports (see trace.h).
 *
 * The verdicts read only what the cleanup stage already holds (the
 * rewritten recipients, master.cf, the parameters) plus the local agent's
 * two lookups (alias_maps, the password file), so a probe costs no
 * delivery and no journal write: only its report is queued.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/dict.h"
#include "engine/mastercf.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "stages/cleanup.h"
#include "stages/delivery_log.h"
#include "stages/mailbox_util.h"
#include "stages/trace.h"

static void trace_set(TRACE_VERDICT *v, bool ok, const char *dsn, const char *service)
{
    v->deliverable = ok;
    snprintf(v->dsn, sizeof(v->dsn), "%s", dsn);
    v->service = service;
}

/* error(8)'s nexthop: "5.1.1 text", or just text (class from the agent). */
static void trace_error_text(TRACE_VERDICT *v, const char *text, char cls)
{
    const char *sp = text ? strchr(text, ' ') : NULL;

    if (text == NULL)
	text = "";
    snprintf(v->dsn, sizeof(v->dsn), "%c.0.0", cls);
    if (sp && text[0] == cls && text[1] == '.' && (size_t) (sp - text) < sizeof(v->dsn)) {
	bool    code = true;

	for (const char *p = text; p < sp; p++)
	    if (!isdigit((unsigned char) *p) && *p != '.')
		code = false;
	if (code) {
	    snprintf(v->dsn, (size_t) (sp - text) + 1, "%s", text);
	    text = sp + 1;
	}
    }
    str_puts(&v->reason, *text ? text : "unknown mail transport error");
}

/* local(8)'s first two questions: an alias? a user? */
static void trace_local(const char *service, const RCPT *r, TRACE_VERDICT *v)
{
    MAILBOX_ADDR a;
    size_t  nmaps = 0;
    char  **maps = config_list_split(param_service_str(service, P_ALIAS_MAPS), &nmaps);
    STR     value = STR_INIT, err = STR_INIT;
    int     rc = DICT_NOTFOUND;
    struct passwd pw, *res = NULL;
    char    buf[16384];
    int     pwerr = 0;

    mailbox_addr_split(&a, r->address, param_service_str(service, P_RECIPIENT_DELIMITER));
    for (char *s = a.local.data; s && *s; s++)
	*s = (char) tolower((unsigned char) *s);
    for (char *s = a.user.data; s && *s; s++)
	*s = (char) tolower((unsigned char) *s);
    for (size_t i = 0; i < nmaps && rc == DICT_NOTFOUND; i++) {
	DICT   *d = dict_open(maps[i], DICT_FLAG_NONE, &err);

	if (d == NULL) {
	    rc = DICT_ERR;
	    str_reset(&err);
	    str_printf(&err, "%s", maps[i]);
	    break;
	}
	rc = dict_lookup(d, STR_DATA(&a.local), &value);
	if (rc == DICT_NOTFOUND && STR_LEN(&a.extension))
	    rc = dict_lookup(d, STR_DATA(&a.user), &value);
	if (rc == DICT_ERR) {
	    str_reset(&err);
	    str_puts(&err, dict_name(d));
	}
	dict_close(d);
    }
    if (rc == DICT_ERR) {
	trace_set(v, false, "4.3.0", "local");
	str_printf(&v->reason, "alias database unavailable: %s", STR_DATA(&err));
    } else if (rc == DICT_FOUND) {
	trace_set(v, true, "2.0.0", "local");
	str_printf(&v->reason, "alias expansion: %s", STR_DATA(&value));
    } else if ((pwerr = getpwnam_r(STR_DATA(&a.user), &pw, buf, sizeof(buf), &res)) == 0
	       && res) {
	trace_set(v, true, "2.0.0", "local");
	str_puts(&v->reason, "delivers to mailbox");
    } else if (pwerr != 0 && pwerr != ENOENT && pwerr != ESRCH && pwerr != EBADF
	       && pwerr != EPERM) {
	trace_set(v, false, "4.3.0", "local");
	str_printf(&v->reason, "user lookup error for \"%s\"", STR_DATA(&a.user));
    } else {
	trace_set(v, false, "5.1.1", "local");
	str_printf(&v->reason, "unknown user: \"%s\"", STR_DATA(&a.user));
    }
    config_list_free(maps);
    mailbox_addr_release(&a);
    str_release(&value);
    str_release(&err);
}

void trace_verdict(const MESSAGE *msg, size_t i, TRACE_VERDICT *v)
{
    const RCPT *r = &msg->rcpt[i];
    const MASTERCF *mcf = config_mastercf(config_current());
    const MASTERCF_SERVICE *svc = NULL;
    const char *transport = r->transport ? r->transport : "";
    const char *nexthop = r->nexthop ? r->nexthop : "";

    memset(v, 0, sizeof(*v));
    str_init(&v->reason);
    if (mcf && *transport)
	svc = mastercf_find(mcf, transport, "unix");
    if (svc == NULL) {
	trace_set(v, false, "4.3.0", "qmgr");
	str_puts(&v->reason, "mail transport unavailable");
    } else if (strcmp(svc->command, "error") == 0) {
	bool    retry = strcmp(svc->name, "retry") == 0;

	trace_set(v, false, "", retry ? "retry" : "error");
	trace_error_text(v, nexthop, retry ? '4' : '5');
    } else if (strcmp(svc->command, "discard") == 0) {
	trace_set(v, true, "2.0.0", "discard");
	str_printf(&v->reason, "discards mail: %s", *nexthop ? nexthop : "discarded");
    } else if (strcmp(svc->command, "local") == 0) {
	trace_local(svc->name, r, v);
    } else {
	trace_set(v, true, "2.0.0", strcmp(svc->command, "lmtp") == 0 ? "lmtp"
		  : strcmp(svc->command, "smtp") == 0 ? "smtp" : svc->name);
	str_printf(&v->reason, "delivers via %s to %s", transport, *nexthop ? nexthop : "none");
    }
}

void trace_verdict_release(TRACE_VERDICT *v)
{
    str_release(&v->reason);
}

/* ---- the report ------------------------------------------------------- */

typedef struct TRACE_JOB {
    char    probe_id[QUEUE_ID_MAX];
    smtpd_done_fn done;
    void   *ctx;
} TRACE_JOB;

static void trace_log(const MESSAGE *msg, size_t i, const TRACE_VERDICT *v)
{
    const RCPT *r = &msg->rcpt[i];
    STR     line = STR_INIT;
    int64_t age = time_real_us() - msg->arrival_us;
    const char *service = msg_service();

    if (age < 0)
	age = 0;
    str_printf(&line, "%s: to=<%s>", msg->queue_id, r->address);
    if (r->orig_rcpt && *r->orig_rcpt && strcasecmp(r->orig_rcpt, r->address) != 0)
	str_printf(&line, ", orig_to=<%s>", r->orig_rcpt);
    str_printf(&line, ", relay=%s, delay=",
	       strcmp(v->service, "local") == 0 || strcmp(v->service, "discard") == 0
	       ? v->service : "none");
    delivery_log_delay(&line, age * 1000);
    str_puts(&line, ", delays=");
    delivery_log_delay(&line, age * 1000);
    str_printf(&line, "/0/0/0, dsn=%s, status=%s (%s)", v->dsn,
	       v->deliverable ? "deliverable" : "undeliverable", STR_DATA(&v->reason));
    msg_service_set(v->service);
    msg_info("%s", STR_DATA(&line));
    msg_service_set(service);
    str_release(&line);
}

static void trace_submitted(void *ctx, int code, const char *text)
{
    TRACE_JOB *job = ctx;
    const char *service = msg_service();

    if (code == 250) {
	msg_service_set("bounce");
	msg_info("%s: sender delivery status notification: %s", job->probe_id, text);
	msg_service_set("qmgr");
	msg_info("%s: removed", job->probe_id);
	msg_service_set(service);
	job->done(job->ctx, 250, job->probe_id);
    } else {
	msg_warn("%s: sender delivery status notification not sent: %d %s", job->probe_id,
		 code, text ? text : "");
	job->done(job->ctx, code, text);
    }
    mem_free(job);
}

void trace_verify(MESSAGE *msg, bounce_submit_fn submit, smtpd_done_fn done, void *ctx)
{
    BOUNCE_CONFIG cfg;
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    BOUNCE_RCPT *br = mem_calloc(msg->nrcpt ? msg->nrcpt : 1, sizeof(*br));
    TRACE_VERDICT *v = mem_calloc(msg->nrcpt ? msg->nrcpt : 1, sizeof(*v));
    TRACE_JOB *job = MEM_NEW(TRACE_JOB);
    size_t  count;

    memcpy(job->probe_id, msg->queue_id, QUEUE_ID_MAX);
    job->done = done;
    job->ctx = ctx;
    for (size_t i = 0; i < msg->nrcpt; i++) {
	trace_verdict(msg, i, &v[i]);
	trace_log(msg, i, &v[i]);
	br[i].index = i;
	br[i].dsn = v[i].dsn;
	br[i].reason = STR_DATA(&v[i].reason);
	br[i].action = v[i].deliverable ? "deliverable" : "undeliverable";
    }
    bounce_config_from_params(&cfg);
    count = bounce_build(&cfg, msg, BOUNCE_KIND_VERIFY, br, msg->nrcpt, time_real_us(), out);
    for (size_t i = 0; i < msg->nrcpt; i++)
	trace_verdict_release(&v[i]);
    mem_free(v);
    mem_free(br);
    /* VERIFY gives one notice for a real sender, none for the null sender. */
    for (size_t i = 1; i < count; i++)
	message_free(out[i].msg);
    if (count == 0) {
	msg_warn("%s: null sender: no delivery status report", msg->queue_id);
	message_free(msg);
	done(ctx, 250, job->probe_id);
	mem_free(job);
	return;
    }
    message_free(msg);
    if (submit(out[0].msg, CLEANUP_FLAG_NO_CHECKS, trace_submitted, job) < 0) {
	message_free(out[0].msg);
	mem_free(job);
	done(ctx, 451, "4.3.0 the cleanup service is not running");
    }
}
