/*
 * bounce.c - which notices an event calls for, the envelope of each, and
 * handing them to the cleanup stage (see bounce.h for the rules).
 *
 * A notice is an ordinary MESSAGE: null sender (or $double_bounce_sender
 * for the postmaster's copies, so that a failing copy is recognised and
 * dropped instead of bouncing again), one recipient, protocol "LOCAL" (so
 * cleanup writes "Received: by $myhostname"), and content built by
 * bounce_content(). It goes through cleanup with CLEANUP_FLAG_NO_CHECKS
 * (header/body checks are for mail from outside, as Postfix's
 * internal_mail_filter_classes default) and trivial-rewrite like any mail,
 * so virtual aliases and transport_maps apply to the sender's address.
 *
 * Threading: bounce_build/bounce_content: any thread. bounce_notify: the
 * caller's thread (qmgr); the completion logs on whatever thread the cleanup
 * stage and the journal call it. Diagnostics: see bounce.h.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "queue/queue_id.h"
#include "stages/bounce_priv.h"
#include "stages/cleanup.h"

/* ---- configuration ----------------------------------------------------- */

void bounce_config_defaults(BOUNCE_CONFIG *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->myhostname = "localhost";
    cfg->myorigin = "localhost";
    cfg->double_bounce_sender = "double-bounce";
    cfg->bounce_notice_recipient = "postmaster";
    cfg->double_bounce_notice_recipient = "postmaster";
    cfg->delay_notice_recipient = "postmaster";
    cfg->notify_classes = 0;			/* "resource, software" */
    cfg->size_limit = 50000;
    cfg->delay_warning_time_s = 0;
    cfg->maximal_queue_lifetime_s = 5 * 86400;
}

unsigned bounce_classes_parse(const char *list)
{
    unsigned bits = 0;
    const char *p = list ? list : "";

    while (*p) {
	size_t  len;

	p += strspn(p, ", \t\r\n");
	len = strcspn(p, ", \t\r\n");
	if (len == 6 && strncasecmp(p, "bounce", 6) == 0)
	    bits |= BOUNCE_CLASS_BOUNCE;
	else if (len == 7 && strncasecmp(p, "2bounce", 7) == 0)
	    bits |= BOUNCE_CLASS_2BOUNCE;
	else if (len == 5 && strncasecmp(p, "delay", 5) == 0)
	    bits |= BOUNCE_CLASS_DELAY;
	p += len;
    }
    return bits;
}

void bounce_config_from_params(BOUNCE_CONFIG *cfg)
{
    bounce_config_defaults(cfg);
    cfg->myhostname = param_str(P_MYHOSTNAME);
    cfg->myorigin = param_str(P_MYORIGIN);
    cfg->double_bounce_sender = param_str(P_DOUBLE_BOUNCE_SENDER);
    cfg->bounce_notice_recipient = param_str(P_BOUNCE_NOTICE_RECIPIENT);
    cfg->double_bounce_notice_recipient = param_str(P_DOUBLE_BOUNCE_NOTICE_RECIPIENT);
    cfg->delay_notice_recipient = param_str(P_DELAY_NOTICE_RECIPIENT);
    cfg->notify_classes = bounce_classes_parse(param_str(P_NOTIFY_CLASSES));
    cfg->size_limit = (size_t) param_int(P_BOUNCE_SIZE_LIMIT);
    cfg->delay_warning_time_s = param_int(P_DELAY_WARNING_TIME);
    cfg->maximal_queue_lifetime_s = param_int(P_MAXIMAL_QUEUE_LIFETIME);
}

/* ---- content ------------------------------------------------------------ */

static bool bounce_has_8bit(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
	if ((unsigned char) data[i] >= 0x80)
	    return true;
    return false;
}

void bounce_content(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
		    bool postmaster, const char *to, const BOUNCE_RCPT *rcpt, size_t n,
		    int64_t now_us, const char *notice_id, STR *out)
{
    STR     body = STR_INIT;
    STR     boundary = STR_INIT;
    bool    full = bounce_dsn_full(cfg, orig, kind, postmaster);
    const char *cdata = orig->content ? orig->content->data : NULL;
    size_t  clen = orig->content ? orig->content->len : 0;

    /* Postfix's boundary form; made longer in the unlikely case that the
     * returned text contains it. */
    str_printf(&boundary, "%s.%lld/%s", notice_id, (long long) (now_us / 1000000),
	       cfg->myhostname);
    for (int tries = 0; cdata && tries < 8; tries++) {
	if (memmem(cdata, clen, STR_DATA(&boundary), STR_LEN(&boundary)) == NULL)
	    break;
	str_printf(&boundary, "/%d", tries);
    }
    for (size_t i = 0; i < STR_LEN(&boundary); i++)
	if ((unsigned char) boundary.data[i] < 0x21 || boundary.data[i] == '"')
	    boundary.data[i] = '_';

    str_puts(&body, "This is a MIME-encapsulated message.\r\n\r\n");
    str_printf(&body, "--%s\r\n", STR_DATA(&boundary));
    str_puts(&body, "Content-Description: Notification\r\n");
    str_printf(&body, "Content-Type: text/plain; charset=%s\r\n\r\n",
	       orig->smtputf8 ? "utf-8" : "us-ascii");
    bounce_text_part(&body, cfg, orig, kind, postmaster, rcpt, n);
    str_printf(&body, "\r\n--%s\r\n", STR_DATA(&boundary));
    str_puts(&body, "Content-Description: Delivery report\r\n");
    str_printf(&body, "Content-Type: %s\r\n\r\n",
	       orig->smtputf8 ? "message/global-delivery-status" : "message/delivery-status");
    bounce_dsn_part(&body, cfg, orig, kind, rcpt, n, now_us);
    if (orig->content) {
	str_printf(&body, "\r\n--%s\r\n", STR_DATA(&boundary));
	bounce_dsn_original(&body, orig, full);
    }
    str_printf(&body, "\r\n--%s--\r\n", STR_DATA(&boundary));

    bounce_text_header(out, cfg, kind, postmaster, to, STR_DATA(&boundary),
		       bounce_has_8bit(STR_DATA(&body), STR_LEN(&body)), now_us);
    str_append(out, STR_DATA(&body), STR_LEN(&body));
    str_release(&body);
    str_release(&boundary);
}

/* ---- policy ------------------------------------------------------------- */

/* "postmaster" -> "postmaster@$myorigin"; full addresses unchanged. */
static char *bounce_qualify(const BOUNCE_CONFIG *cfg, const char *addr)
{
    STR     s = STR_INIT;

    str_puts(&s, addr);
    if (strchr(addr, '@') == NULL && cfg->myorigin && *cfg->myorigin)
	str_printf(&s, "@%s", cfg->myorigin);
    return str_steal(&s, NULL);
}

/* Is this the sender of our own postmaster notices? */
static bool bounce_is_double_bounce(const BOUNCE_CONFIG *cfg, const char *sender)
{
    const char *dbs = cfg->double_bounce_sender;
    const char *at;
    size_t  len;

    if (sender == NULL || *sender == 0 || dbs == NULL || *dbs == 0)
	return false;
    if (strcasecmp(sender, dbs) == 0)
	return true;
    at = strrchr(sender, '@');
    len = at ? (size_t) (at - sender) : strlen(sender);
    if (strlen(dbs) != len || strncasecmp(sender, dbs, len) != 0 || at == NULL)
	return false;
    return (cfg->myorigin && strcasecmp(at + 1, cfg->myorigin) == 0)
	|| (cfg->myhostname && strcasecmp(at + 1, cfg->myhostname) == 0);
}

/* The recipients whose DSN NOTIFY asks for this kind of notice. */
static size_t bounce_select(const MESSAGE *orig, enum bounce_kind kind,
			    const BOUNCE_RCPT *rcpt, size_t n, BOUNCE_RCPT *sel)
{
    size_t  m = 0;

    for (size_t k = 0; k < n; k++) {
	int     notify;

	if (rcpt[k].index >= orig->nrcpt)
	    continue;
	notify = orig->rcpt[rcpt[k].index].dsn_notify;
	switch (kind) {
	case BOUNCE_KIND_FAILURE:
	    if (notify != 0 && !(notify & DSN_NOTIFY_FAILURE))
		continue;
	    break;
	case BOUNCE_KIND_DELAY:
	    if (notify != 0 && !(notify & DSN_NOTIFY_DELAY))
		continue;
	    break;
	case BOUNCE_KIND_SUCCESS:
	    if (!(notify & DSN_NOTIFY_SUCCESS))
		continue;
	    break;
	case BOUNCE_KIND_VERIFY:
	    break;
	}
	sel[m++] = rcpt[k];
    }
    return m;
}

static MESSAGE *bounce_message(const BOUNCE_CONFIG *cfg, const MESSAGE *orig,
			       enum bounce_kind kind, bool postmaster, const char *to,
			       const BOUNCE_RCPT *rcpt, size_t n, int64_t now_us)
{
    MESSAGE *m = message_new();
    STR     content = STR_INIT;

    queue_id_next(m->queue_id);
    m->arrival_us = now_us;
    if (postmaster) {
	mem_free(m->sender);
	m->sender = bounce_qualify(cfg, cfg->double_bounce_sender);
    }
    m->protocol = mem_strdup("LOCAL");
    m->client_name = mem_strdup("localhost");
    m->client_addr = mem_strdup("127.0.0.1");
    m->smtputf8 = orig->smtputf8;
    bounce_content(cfg, orig, kind, postmaster, to, rcpt, n, now_us, m->queue_id, &content);
    m->body_type = bounce_has_8bit(STR_DATA(&content), STR_LEN(&content)) ?
	BODY_TYPE_8BITMIME : BODY_TYPE_7BIT;
    m->content = blob_adopt(&content);
    message_add_rcpt(m, to, to);
    return m;
}

size_t bounce_build(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
		    const BOUNCE_RCPT *rcpt, size_t n, int64_t now_us,
		    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES])
{
    const char *sender = orig->sender ? orig->sender : "";
    BOUNCE_RCPT *sel;
    size_t  nsel, count = 0;
    char   *to;

    if (n == 0)
	return 0;
    sel = mem_alloc(n * sizeof(*sel));
    if (bounce_is_double_bounce(cfg, sender)) {
	/* A postmaster notice of ours failed: never a third notice. */
	if (kind == BOUNCE_KIND_FAILURE)
	    msg_warn("%s: undeliverable postmaster notification discarded", orig->queue_id);
    } else if (*sender == 0) {
	/* A bounce failed: the postmaster may want it, never the sender. */
	if (kind == BOUNCE_KIND_FAILURE && (cfg->notify_classes & BOUNCE_CLASS_2BOUNCE)) {
	    to = bounce_qualify(cfg, cfg->double_bounce_notice_recipient);
	    out[count].msg = bounce_message(cfg, orig, kind, true, to, rcpt, n, now_us);
	    out[count++].what = "postmaster non-delivery notification";
	    mem_free(to);
	}
    } else if ((nsel = bounce_select(orig, kind, rcpt, n, sel)) > 0) {
	out[count].msg = bounce_message(cfg, orig, kind, false, sender, sel, nsel, now_us);
	out[count++].what = kind == BOUNCE_KIND_FAILURE ? "sender non-delivery notification"
	    : kind == BOUNCE_KIND_DELAY ? "sender delay notification"
	    : "sender delivery status notification";
    }
    /* The postmaster's copies (notify_classes), for mail from a real sender. */
    if (*sender && !bounce_is_double_bounce(cfg, sender)) {
	if (kind == BOUNCE_KIND_FAILURE && (cfg->notify_classes & BOUNCE_CLASS_BOUNCE)) {
	    to = bounce_qualify(cfg, cfg->bounce_notice_recipient);
	    out[count].msg = bounce_message(cfg, orig, kind, true, to, rcpt, n, now_us);
	    out[count++].what = "postmaster non-delivery notification";
	    mem_free(to);
	} else if (kind == BOUNCE_KIND_DELAY && (cfg->notify_classes & BOUNCE_CLASS_DELAY)) {
	    to = bounce_qualify(cfg, cfg->delay_notice_recipient);
	    out[count].msg = bounce_message(cfg, orig, kind, true, to, rcpt, n, now_us);
	    out[count++].what = "postmaster delay notification";
	    mem_free(to);
	}
    }
    mem_free(sel);
    return count;
}

/* ---- submission ---------------------------------------------------------- */

/* One event's notices on their way; freed by the last completion. */
typedef struct BOUNCE_EVENT {
    char    orig_id[QUEUE_ID_MAX];
    int     outstanding;		/* notices not completed, atomic */
    int     failed;			/* one was not queued, atomic */
    bounce_done_fn done;
    void   *ctx;
} BOUNCE_EVENT;

typedef struct BOUNCE_PENDING {
    BOUNCE_EVENT *ev;
    const char *what;			/* static */
} BOUNCE_PENDING;

static void bounce_event_release(BOUNCE_EVENT *ev, bool queued)
{
    if (!queued)
	__atomic_store_n(&ev->failed, 1, __ATOMIC_RELAXED);
    if (__atomic_sub_fetch(&ev->outstanding, 1, __ATOMIC_ACQ_REL) != 0)
	return;
    if (ev->done)
	ev->done(ev->ctx, __atomic_load_n(&ev->failed, __ATOMIC_RELAXED) == 0);
    mem_free(ev);
}

static void bounce_submitted(void *ctx, int code, const char *text)
{
    BOUNCE_PENDING *p = ctx;
    const char *service = msg_service();

    msg_service_set("bounce");
    if (code == 250)
	msg_info("%s: %s: %s", p->ev->orig_id, p->what, text);
    else
	msg_warn("%s: %s not sent: %d %s", p->ev->orig_id, p->what, code, text ? text : "");
    msg_service_set(service);
    bounce_event_release(p->ev, code == 250);
    mem_free(p);
}

void bounce_notify(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
		   const BOUNCE_RCPT *rcpt, size_t n, bounce_submit_fn submit,
		   bounce_done_fn done, void *ctx)
{
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    size_t  count = bounce_build(cfg, orig, kind, rcpt, n, time_real_us(), out);
    BOUNCE_EVENT *ev = MEM_NEW(BOUNCE_EVENT);

    memcpy(ev->orig_id, orig->queue_id, QUEUE_ID_MAX);
    ev->done = done;
    ev->ctx = ctx;
    /* One reference for this loop, so done() comes after the last submit. */
    ev->outstanding = (int) count + 1;
    for (size_t i = 0; i < count; i++) {
	BOUNCE_PENDING *p = MEM_NEW(BOUNCE_PENDING);

	p->ev = ev;
	p->what = out[i].what;
	if (submit(out[i].msg, CLEANUP_FLAG_NO_CHECKS, bounce_submitted, p) < 0) {
	    msg_warn("%s: %s not sent: the cleanup service is not running",
		     orig->queue_id, out[i].what);
	    message_free(out[i].msg);
	    mem_free(p);
	    bounce_event_release(ev, false);
	}
    }
    bounce_event_release(ev, true);
}

void bounce_qmgr_notify(const MESSAGE *orig, enum qmgr_notify kind,
			const QMGR_NOTIFY_RCPT *rcpt, size_t n, bounce_submit_fn submit,
			bounce_done_fn done, void *ctx)
{
    BOUNCE_CONFIG cfg;
    BOUNCE_RCPT *v;
    enum bounce_kind bk;

    switch (kind) {
    case QMGR_NOTIFY_BOUNCE:
    case QMGR_NOTIFY_EXPIRED:
	bk = BOUNCE_KIND_FAILURE;
	break;
    case QMGR_NOTIFY_DELAY:
	bk = BOUNCE_KIND_DELAY;
	break;
    case QMGR_NOTIFY_SUCCESS:
	bk = BOUNCE_KIND_SUCCESS;
	break;
    default:
	msg_panic("bounce_qmgr_notify: notice kind %d", (int) kind);
    }
    bounce_config_from_params(&cfg);
    v = mem_calloc(n ? n : 1, sizeof(*v));
    for (size_t k = 0; k < n; k++) {
	v[k].index = rcpt[k].index;
	v[k].dsn = rcpt[k].dsn;
	v[k].reason = rcpt[k].reason;
    }
    bounce_notify(&cfg, orig, bk, v, n, submit, done, ctx);
    mem_free(v);
}
