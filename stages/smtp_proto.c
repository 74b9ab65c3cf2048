/*
 * smtp_proto.c - the SMTP/LMTP client protocol state machine.
 *
 * PURPOSE
 *   Everything the client says and how it reads the answers, without a
 *   socket: the I/O layer (smtp.c) feeds server bytes to smtp_proto_input()
 *   and sends what smtp_proto_out() holds. The unit tests script a server
 *   the same way.
 *
 *   Session: greeting, EHLO (HELO fallback on a non-2xx EHLO reply; LHLO
 *   for LMTP), STARTTLS per smtp_tls_security_level, EHLO again after TLS.
 *   The first word of the EHLO reply equal to myhostname is Postfix's
 *   "mail for %s loops back to myself" (5.4.6, SMTP only).
 *   Transaction: [RSET] MAIL FROM (SIZE, BODY=8BITMIME, SMTPUTF8, RET,
 *   ENVID as the server offers them), RCPT TO (NOTIFY, ORCPT with DSN),
 *   DATA, content dot-stuffed, ".". With PIPELINING, [RSET,] MAIL, every
 *   RCPT and DATA go out in one write and the replies are matched in
 *   order. LMTP reads one reply per accepted recipient after ".".
 *   Address verification probes (msg->probe) stop after the RCPT replies:
 *   no DATA; a 2xx RCPT reply is the recipient's "sent" result, and the
 *   open transaction is cleared by the RSET that precedes the session's
 *   next use, or by QUIT (Postfix's smtp in verify mode does the same).
 *   8BITMIME: BODY=8BITMIME when the message is 8bit and the server offers
 *   it. When it does not and the message is 8bit (BODY=8BITMIME or 8-bit
 *   bytes in the content), the content is converted to 7bit as Postfix
 *   does (mime_downgrade.c: 8bit/binary MIME parts become quoted-printable)
 *   unless disable_mime_output_conversion = yes or the message is SMTPUTF8;
 *   the converted copy lives for the transaction and SIZE counts it. When
 *   the MIME structure cannot be walked, the content goes out unchanged.
 *
 * RESULTS
 *   2xx sent, 4xx deferred, 5xx bounced, with Postfix's reasons:
 *   "host h[ip] said: 550 5.1.1 ... (in reply to RCPT TO command)"; a
 *   MAIL FROM or DATA failure applies to every recipient; "lost connection
 *   with h[ip] while ..." and "conversation with h[ip] timed out while ..."
 *   defer. Multi-line replies are joined with spaces, codes kept, as
 *   Postfix logs them.
 *
 * THREADING
 *   An SMTP_PROTO belongs to one thread at a time.
 *
 * DIAGNOSTICS
 *   Everything ends in results or site_* fields, except a warning when
 *   8-bit content cannot be converted for a server without 8BITMIME.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"
#include "stages/mime_downgrade.h"
#include "stages/smtp.h"

#define SMTP_PROTO_LINE_MAX	(64 * 1024)	/* a reply line we accept */
#define SMTP_PROTO_REPLY_MAX	(4 * 1024)	/* reply text we keep */
#define SMTP_PROTO_LINES_MAX	1000		/* lines in one reply */

enum smtp_state {
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_TLS,			/* handshake in the I/O layer */
    ST_READY,
    ST_TXN,			/* replies expected in exp[] */
    ST_BODY,			/* content going out */
    ST_QUIT,
    ST_DEAD,
};

/* Commands whose replies are expected, in order. */
enum smtp_cmd { CMD_RSET, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_DOT, CMD_DOT_DISCARD };

typedef struct SMTP_EXP {
    enum smtp_cmd cmd;
    size_t  idx;		/* recipient (RCPT; LMTP DOT) */
} SMTP_EXP;

struct SMTP_PROTO {
    SMTP_PROTO_OPTS o;
    char   *helo_name;
    char   *myhostname;
    char   *nexthop;
    char   *namaddr;
    int     timeout[SMTP_PH_COUNT];
    enum smtp_state state;
    enum smtp_phase phase;
    unsigned features;
    unsigned long size_limit;
    bool    tls_active;
    bool    broken;		/* 421, protocol error: close after this */
    char    ehlo_name[256];

    /* input */
    STR     in;			/* unconsumed server bytes */
    size_t  in_off;
    STR     reply;		/* current reply, lines joined by spaces */
    int     reply_code;
    int     reply_lines;
    bool    reply_bad;

    /* output */
    STR     out;

    /* transaction */
    SMTP_TXN *txn;
    SMTP_EXP *exp;
    size_t  exp_cap;
    size_t  exp_head;
    size_t  exp_tail;
    bool    pipelining;
    bool    mail_failed;
    bool    data_sent;
    bool   *accepted;
    size_t  naccepted;
    size_t  next_rcpt;		/* non-pipelined: next RCPT to send */
    size_t  body_off;		/* content bytes already sent */
    bool    body_bol;		/* at the beginning of a line */
    bool    body_done;
    STR     body7;		/* 7bit copy of the content */
    bool    body7_used;		/* send body7, not msg->content */

    /* site failure */
    STR     site_reason;
    char    site_dsn[16];
    bool    site_final;
    bool    site_retry_plain;
};

/* ------------------------------------------------------------- results */

void    smtp_result_clear(SMTP_RESULT *r)
{
    mem_free(r->reason);
    memset(r, 0, sizeof(*r));
}

void    smtp_result_set(SMTP_RESULT *r, enum delivery_status st, int code,
			const char *dsn, const char *fmt,...)
{
    STR     s = STR_INIT;
    va_list ap;

    va_start(ap, fmt);
    str_vprintf(&s, fmt, ap);
    va_end(ap);
    mem_free(r->reason);
    r->reason = str_steal(&s, NULL);
    r->set = true;
    r->status = st;
    r->code = code;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
}

/* ------------------------------------------------------------- helpers */

static void smtp_proto_send(SMTP_PROTO *p, const char *fmt,...)
	__attribute__((format(printf, 2, 3)));

static void smtp_proto_send(SMTP_PROTO *p, const char *fmt,...)
{
    va_list ap;

    va_start(ap, fmt);
    str_vprintf(&p->out, fmt, ap);
    va_end(ap);
    str_append(&p->out, "\r\n", 2);
}

static void smtp_proto_expect(SMTP_PROTO *p, enum smtp_cmd cmd, size_t idx)
{
    if (p->exp_tail == p->exp_cap) {
	p->exp_cap = p->exp_cap ? p->exp_cap * 2 : 16;
	p->exp = mem_realloc(p->exp, p->exp_cap * sizeof(*p->exp));
    }
    p->exp[p->exp_tail].cmd = cmd;
    p->exp[p->exp_tail].idx = idx;
    p->exp_tail++;
}

/* The reply's enhanced status code if it has one of the right class,
 * else X.0.0 (Postfix's default). */
static void smtp_proto_reply_dsn(const char *text, int code, char *dsn, size_t len)
{
    const char *cp = text + 3;
    size_t  n;

    while (*cp == ' ' || *cp == '-')
	cp++;
    if (cp[0] == '0' + code / 100 && cp[1] == '.') {
	n = strspn(cp + 2, "0123456789");
	if (n >= 1 && n <= 3 && cp[2 + n] == '.') {
	    size_t  m = strspn(cp + 3 + n, "0123456789");

	    if (m >= 1 && m <= 3 && (cp[3 + n + m] == ' ' || cp[3 + n + m] == 0)) {
		snprintf(dsn, len, "%.*s", (int) (3 + n + m), cp);
		return;
	    }
	}
    }
    snprintf(dsn, len, "%d.0.0", code / 100 >= 2 && code / 100 <= 5 ? code / 100 : 4);
}

static enum delivery_status smtp_proto_status(int code)
{
    if (code / 100 == 2)
	return DELIVERY_SENT;
    if (code / 100 == 5)
	return DELIVERY_BOUNCE;
    return DELIVERY_DEFER;
}

/* Record the current reply as the result of recipient i. */
static void smtp_proto_rcpt_reply(SMTP_PROTO *p, size_t i, const char *command)
{
    SMTP_RESULT *r = p->txn->result + i;
    char    dsn[16];
    int     code = p->reply_code;

    smtp_proto_reply_dsn(STR_DATA(&p->reply), code, dsn, sizeof(dsn));
    if (code / 100 == 2)
	smtp_result_set(r, DELIVERY_SENT, code, dsn, "%s", STR_DATA(&p->reply));
    else {
	if (code / 100 != 4 && code / 100 != 5) {
	    /* An unexpected 1xx/3xx: neither sent nor refused. */
	    dsn[0] = '4';
	}
	smtp_result_set(r, smtp_proto_status(code), code, dsn,
			"host %s said: %s (in reply to %s command)",
			p->namaddr, STR_DATA(&p->reply), command);
    }
}

static void smtp_proto_all_reply(SMTP_PROTO *p, bool only_accepted, const char *command)
{
    for (size_t i = 0; i < p->txn->nrcpt; i++) {
	if (p->txn->result[i].set)
	    continue;
	if (only_accepted && !p->accepted[i])
	    continue;
	smtp_proto_rcpt_reply(p, i, command);
    }
}

static void smtp_proto_all_local(SMTP_PROTO *p, enum delivery_status st,
				 const char *dsn, const char *reason)
{
    for (size_t i = 0; i < p->txn->nrcpt; i++)
	if (!p->txn->result[i].set)
	    smtp_result_set(p->txn->result + i, st, 0, dsn, "%s", reason);
}

static enum smtp_proto_event smtp_proto_site_fail(SMTP_PROTO *p, const char *dsn,
						  bool final, const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

static enum smtp_proto_event smtp_proto_site_fail(SMTP_PROTO *p, const char *dsn,
						  bool final, const char *fmt,...)
{
    va_list ap;

    str_reset(&p->site_reason);
    va_start(ap, fmt);
    str_vprintf(&p->site_reason, fmt, ap);
    va_end(ap);
    snprintf(p->site_dsn, sizeof(p->site_dsn), "%s", dsn);
    p->site_final = final;
    if (p->state != ST_DEAD) {
	smtp_proto_send(p, "QUIT");
	p->state = ST_DEAD;
    }
    return SMTP_EV_SITE_FAIL;
}

/* ------------------------------------------------------------- session */

SMTP_PROTO *smtp_proto_create(const SMTP_PROTO_OPTS *opts)
{
    SMTP_PROTO *p = MEM_NEW(SMTP_PROTO);

    p->o = *opts;
    p->helo_name = mem_strdup(opts->helo_name ? opts->helo_name : "localhost");
    p->myhostname = mem_strdup(opts->myhostname ? opts->myhostname : "");
    p->nexthop = mem_strdup(opts->nexthop ? opts->nexthop : "");
    p->namaddr = mem_strdup(opts->namaddr ? opts->namaddr : "unknown[unknown]");
    for (int i = 0; i < SMTP_PH_COUNT; i++)
	p->timeout[i] = opts->timeout ? opts->timeout[i] : 300;
    p->o.helo_name = p->helo_name;
    p->o.myhostname = p->myhostname;
    p->o.nexthop = p->nexthop;
    p->o.namaddr = p->namaddr;
    p->o.timeout = p->timeout;
    p->state = ST_GREETING;
    p->phase = SMTP_PH_HELO;
    return p;
}

static void smtp_proto_txn_free(SMTP_PROTO *p)
{
    mem_free(p->accepted);
    p->accepted = NULL;
    p->txn = NULL;
    str_release(&p->body7);
    p->body7_used = false;
    p->exp_head = p->exp_tail = 0;
}

void    smtp_proto_free(SMTP_PROTO *p)
{
    if (!p)
	return;
    smtp_proto_txn_free(p);
    mem_free(p->exp);
    str_release(&p->in);
    str_release(&p->reply);
    str_release(&p->out);
    str_release(&p->site_reason);
    mem_free(p->helo_name);
    mem_free(p->myhostname);
    mem_free(p->nexthop);
    mem_free(p->namaddr);
    mem_free(p);
}

STR    *smtp_proto_out(SMTP_PROTO *p)
{
    return &p->out;
}

int     smtp_proto_timeout_secs(const SMTP_PROTO *p)
{
    return p->timeout[p->phase];
}

bool    smtp_proto_usable(const SMTP_PROTO *p)
{
    return p->state == ST_READY && !p->broken;
}

bool    smtp_proto_tls_active(const SMTP_PROTO *p)
{
    return p->tls_active;
}

unsigned smtp_proto_features(const SMTP_PROTO *p)
{
    return p->features;
}

const char *smtp_proto_helo_reply_name(const SMTP_PROTO *p)
{
    return p->ehlo_name;
}

const char *smtp_proto_site_reason(const SMTP_PROTO *p)
{
    return STR_DATA(&p->site_reason);
}

const char *smtp_proto_site_dsn(const SMTP_PROTO *p)
{
    return p->site_dsn;
}

bool    smtp_proto_site_final(const SMTP_PROTO *p)
{
    return p->site_final;
}

bool    smtp_proto_site_retry_plain(const SMTP_PROTO *p)
{
    return p->site_retry_plain;
}

void    smtp_proto_quit(SMTP_PROTO *p)
{
    if (p->state == ST_READY) {
	smtp_proto_send(p, "QUIT");
	p->state = ST_QUIT;
	p->phase = SMTP_PH_QUIT;
    }
}

static void smtp_proto_send_helo(SMTP_PROTO *p, const char *verb)
{
    smtp_proto_send(p, "%s %s", verb, p->helo_name);
    p->phase = SMTP_PH_HELO;
}

/* Parse the EHLO keywords; the first line names the server. */
static void smtp_proto_parse_ehlo(SMTP_PROTO *p, const char *lines)
{
    const char *cp = lines;
    int     n = 0;

    p->features = SMTP_FEATURE_ESMTP;
    p->size_limit = 0;
    p->ehlo_name[0] = 0;
    while (*cp) {
	const char *eol = strchr(cp, '\n');
	size_t  len = eol ? (size_t) (eol - cp) : strlen(cp);
	char    line[512];
	char   *kw;
	char   *arg;

	snprintf(line, sizeof(line), "%.*s", (int) (len < sizeof(line) ? len : sizeof(line) - 1), cp);
	cp += len + (eol ? 1 : 0);
	kw = line + (strlen(line) >= 4 ? 4 : strlen(line));
	kw += strspn(kw, " \t");
	arg = kw + strcspn(kw, " \t=");
	if (*arg) {
	    *arg++ = 0;
	    arg += strspn(arg, " \t=");
	}
	if (n++ == 0) {
	    snprintf(p->ehlo_name, sizeof(p->ehlo_name), "%s", kw);
	    continue;
	}
	if (strcasecmp(kw, "PIPELINING") == 0)
	    p->features |= SMTP_FEATURE_PIPELINING;
	else if (strcasecmp(kw, "SIZE") == 0) {
	    p->features |= SMTP_FEATURE_SIZE;
	    if (isdigit((unsigned char) *arg))
		p->size_limit = strtoul(arg, NULL, 10);
	} else if (strcasecmp(kw, "8BITMIME") == 0)
	    p->features |= SMTP_FEATURE_8BITMIME;
	else if (strcasecmp(kw, "DSN") == 0)
	    p->features |= SMTP_FEATURE_DSN;
	else if (strcasecmp(kw, "SMTPUTF8") == 0)
	    p->features |= SMTP_FEATURE_SMTPUTF8;
	else if (strcasecmp(kw, "STARTTLS") == 0)
	    p->features |= SMTP_FEATURE_STARTTLS;
	else if (strcasecmp(kw, "ENHANCEDSTATUSCODES") == 0)
	    p->features |= SMTP_FEATURE_ENHSC;
    }
}

/* After EHLO/HELO succeeded: STARTTLS or ready. */
static enum smtp_proto_event smtp_proto_after_helo(SMTP_PROTO *p)
{
    enum smtp_tls_level lvl = p->o.tls_disabled ? SMTP_TLS_NONE : p->o.tls_level;

    if (!p->tls_active && lvl >= SMTP_TLS_MAY && (p->features & SMTP_FEATURE_STARTTLS)) {
	smtp_proto_send(p, "STARTTLS");
	p->state = ST_STARTTLS;
	p->phase = SMTP_PH_STARTTLS;
	return SMTP_EV_WAIT;
    }
    if (!p->tls_active && p->o.tls_level >= SMTP_TLS_ENCRYPT)
	return smtp_proto_site_fail(p, "4.7.4", false,
				    "TLS is required, but was not offered by host %s",
				    p->namaddr);
    p->state = ST_READY;
    return SMTP_EV_READY;
}

static enum smtp_proto_event smtp_proto_session_reply(SMTP_PROTO *p, const char *lines)
{
    int     code = p->reply_code;
    char    dsn[16];

    smtp_proto_reply_dsn(STR_DATA(&p->reply), code, dsn, sizeof(dsn));
    switch (p->state) {
    case ST_GREETING:
	if (code / 100 != 2) {
	    bool    hard = code / 100 == 5 && !p->o.skip_5xx_greeting;

	    if (!hard)
		dsn[0] = '4';
	    return smtp_proto_site_fail(p, dsn, hard, "host %s refused to talk to me: %s",
					p->namaddr, STR_DATA(&p->reply));
	}
	smtp_proto_send_helo(p, p->o.lmtp ? "LHLO" : "EHLO");
	p->state = ST_EHLO;
	return SMTP_EV_WAIT;
    case ST_EHLO:
	if (code / 100 != 2) {
	    if (p->o.lmtp || code == 421)
		return smtp_proto_site_fail(p, dsn, code / 100 == 5,
					    "host %s said: %s (in reply to %s command)",
					    p->namaddr, STR_DATA(&p->reply),
					    p->o.lmtp ? "LHLO" : "EHLO");
	    smtp_proto_send_helo(p, "HELO");
	    p->state = ST_HELO;
	    return SMTP_EV_WAIT;
	}
	smtp_proto_parse_ehlo(p, lines);
	if (p->o.loop_detect && p->myhostname[0]
	    && strcasecmp(p->ehlo_name, p->myhostname) == 0)
	    return smtp_proto_site_fail(p, "5.4.6", true,
					"mail for %s loops back to myself", p->nexthop);
	return smtp_proto_after_helo(p);
    case ST_HELO:
	if (code / 100 != 2)
	    return smtp_proto_site_fail(p, dsn, code / 100 == 5,
					"host %s said: %s (in reply to HELO command)",
					p->namaddr, STR_DATA(&p->reply));
	p->features = 0;
	return smtp_proto_after_helo(p);
    case ST_STARTTLS:
	if (code == 220) {
	    /* Never read plaintext that arrived after the 220 as TLS-protected
	     * (the client side of CVE-2011-0411). */
	    str_reset(&p->in);
	    p->in_off = 0;
	    p->state = ST_TLS;
	    return SMTP_EV_STARTTLS;
	}
	if (p->o.tls_level >= SMTP_TLS_ENCRYPT)
	    return smtp_proto_site_fail(p, dsn, false,
					"host %s said: %s (in reply to STARTTLS command)",
					p->namaddr, STR_DATA(&p->reply));
	p->state = ST_READY;	/* "may": carry on in plaintext */
	return SMTP_EV_READY;
    case ST_QUIT:
	p->state = ST_DEAD;
	return SMTP_EV_CLOSED;
    default:
	p->broken = true;
	return SMTP_EV_WAIT;
    }
}

enum smtp_proto_event smtp_proto_tls_done(SMTP_PROTO *p, bool ok, const char *why)
{
    if (!ok) {
	enum smtp_proto_event ev;

	p->state = ST_DEAD;		/* no QUIT inside a broken handshake */
	ev = smtp_proto_site_fail(p, p->o.tls_level == SMTP_TLS_VERIFY ? "4.7.5" : "4.7.0",
				  false, "%s", why && *why ? why : "TLS handshake failed");
	p->site_retry_plain = p->o.tls_level == SMTP_TLS_MAY;
	return ev;
    }
    p->tls_active = true;
    p->features = 0;
    smtp_proto_send_helo(p, p->o.lmtp ? "LHLO" : "EHLO");
    p->state = ST_EHLO;
    return SMTP_EV_WAIT;
}

/* --------------------------------------------------------- transaction */

/* RFC 3461 xtext. */
static void smtp_proto_xtext(STR *s, const char *text)
{
    for (const unsigned char *cp = (const unsigned char *) text; *cp; cp++) {
	if (*cp < 33 || *cp > 126 || *cp == '+' || *cp == '=')
	    str_printf(s, "+%02X", *cp);
	else
	    str_putc(s, *cp);
    }
}

static bool smtp_proto_non_ascii(const char *s)
{
    for (; s && *s; s++)
	if ((unsigned char) *s & 0x80)
	    return true;
    return false;
}

/* The bytes that go out after DATA: the content or its 7bit copy. */
static void smtp_proto_body(const SMTP_PROTO *p, const char **data, size_t *len)
{
    const BLOB *c = p->txn->msg->content;

    if (p->body7_used) {
	*data = STR_DATA(&p->body7);
	*len = STR_LEN(&p->body7);
    } else {
	*data = c ? c->data : "";
	*len = c ? c->len : 0;
    }
}

/* A server without 8BITMIME gets 8-bit content as 7bit, as from Postfix. */
static void smtp_proto_downgrade(SMTP_PROTO *p)
{
    const MESSAGE *m = p->txn->msg;
    STR     why = STR_INIT;

    if ((p->features & SMTP_FEATURE_8BITMIME) || m->smtputf8 || m->probe
	|| m->content == NULL || m->content->len == 0
	|| param_bool(P_DISABLE_MIME_OUTPUT_CONVERSION))
	return;
    if (m->body_type != BODY_TYPE_8BITMIME
	&& !mime_downgrade_has_8bit(m->content->data, m->content->len))
	return;
    switch (mime_downgrade(m->content->data, m->content->len, &p->body7, &why)) {
    case MIME_DOWNGRADE_DONE:
	p->body7_used = true;
	break;
    case MIME_DOWNGRADE_ERROR:
	msg_warn("%s: cannot convert 8-bit content to 7bit for %s: %s; "
		 "sending it unchanged", m->queue_id, p->namaddr, STR_DATA(&why));
	break;
    case MIME_DOWNGRADE_UNCHANGED:
	break;
    }
    str_release(&why);
}

static void smtp_proto_send_mail(SMTP_PROTO *p)
{
    const MESSAGE *m = p->txn->msg;
    STR     cmd = STR_INIT;
    const char *data;
    size_t  len;

    str_printf(&cmd, "MAIL FROM:<%s>", m->sender ? m->sender : "");
    smtp_proto_body(p, &data, &len);
    if (p->features & SMTP_FEATURE_SIZE)
	str_printf(&cmd, " SIZE=%zu", len);
    if (m->body_type == BODY_TYPE_8BITMIME && (p->features & SMTP_FEATURE_8BITMIME))
	str_puts(&cmd, " BODY=8BITMIME");
    if (m->smtputf8 && (p->features & SMTP_FEATURE_SMTPUTF8))
	str_puts(&cmd, " SMTPUTF8");
    if (p->features & SMTP_FEATURE_DSN) {
	if (m->dsn_ret == DSN_RET_FULL)
	    str_puts(&cmd, " RET=FULL");
	else if (m->dsn_ret == DSN_RET_HDRS)
	    str_puts(&cmd, " RET=HDRS");
	if (m->dsn_envid && *m->dsn_envid) {
	    str_puts(&cmd, " ENVID=");
	    smtp_proto_xtext(&cmd, m->dsn_envid);
	}
    }
    smtp_proto_send(p, "%s", STR_DATA(&cmd));
    str_release(&cmd);
    smtp_proto_expect(p, CMD_MAIL, 0);
    p->phase = SMTP_PH_MAIL;
}

static void smtp_proto_send_rcpt(SMTP_PROTO *p, size_t i)
{
    const RCPT *r = p->txn->msg->rcpt + p->txn->rcpt[i];
    STR     cmd = STR_INIT;

    str_printf(&cmd, "RCPT TO:<%s>", r->address);
    if (p->features & SMTP_FEATURE_DSN) {
	if (r->dsn_notify & DSN_NOTIFY_NEVER)
	    str_puts(&cmd, " NOTIFY=NEVER");
	else if (r->dsn_notify) {
	    const char *sep = " NOTIFY=";

	    if (r->dsn_notify & DSN_NOTIFY_SUCCESS) {
		str_printf(&cmd, "%sSUCCESS", sep);
		sep = ",";
	    }
	    if (r->dsn_notify & DSN_NOTIFY_FAILURE) {
		str_printf(&cmd, "%sFAILURE", sep);
		sep = ",";
	    }
	    if (r->dsn_notify & DSN_NOTIFY_DELAY)
		str_printf(&cmd, "%sDELAY", sep);
	}
	if (r->dsn_orcpt && *r->dsn_orcpt) {
	    const char *semi = strchr(r->dsn_orcpt, ';');

	    if (semi && semi > r->dsn_orcpt) {
		str_printf(&cmd, " ORCPT=%.*s;", (int) (semi - r->dsn_orcpt), r->dsn_orcpt);
		smtp_proto_xtext(&cmd, semi + 1);
	    }
	}
    }
    smtp_proto_send(p, "%s", STR_DATA(&cmd));
    str_release(&cmd);
    smtp_proto_expect(p, CMD_RCPT, i);
    p->phase = SMTP_PH_RCPT;
}

static void smtp_proto_send_data(SMTP_PROTO *p)
{
    smtp_proto_send(p, "DATA");
    p->data_sent = true;
    smtp_proto_expect(p, CMD_DATA, 0);
    p->phase = SMTP_PH_DATA_INIT;
}

/* Send MAIL (and, pipelined, every RCPT and DATA). */
static void smtp_proto_start_mail(SMTP_PROTO *p)
{
    smtp_proto_send_mail(p);
    if (p->pipelining) {
	for (size_t i = 0; i < p->txn->nrcpt; i++)
	    smtp_proto_send_rcpt(p, i);
	p->next_rcpt = p->txn->nrcpt;
	if (!p->txn->msg->probe)
	    smtp_proto_send_data(p);
	p->phase = SMTP_PH_MAIL;
    }
}

static enum smtp_proto_event smtp_proto_txn_end(SMTP_PROTO *p)
{
    /* Any recipient still without a result: nothing definite was said. */
    smtp_proto_all_local(p, DELIVERY_DEFER, "4.4.2",
			 "lost connection: no server reply for this recipient");
    smtp_proto_txn_free(p);
    p->state = ST_READY;
    return SMTP_EV_TXN_DONE;
}

enum smtp_proto_event smtp_proto_begin(SMTP_PROTO *p, SMTP_TXN *txn, bool reset)
{
    const MESSAGE *m = txn->msg;
    size_t  size = m->content ? m->content->len : 0;

    if (p->state != ST_READY)
	msg_panic("smtp_proto_begin: session not ready");
    p->txn = txn;
    p->accepted = mem_calloc(txn->nrcpt ? txn->nrcpt : 1, sizeof(bool));
    p->naccepted = 0;
    p->mail_failed = false;
    p->data_sent = false;
    p->next_rcpt = 0;
    p->body_off = 0;
    p->body_bol = true;
    p->body_done = false;
    p->exp_head = p->exp_tail = 0;
    p->pipelining = (p->features & SMTP_FEATURE_PIPELINING) != 0;

    /* See if the server would take the message at all (Postfix's wording). */
    if (p->size_limit > 0 && size > p->size_limit) {
	for (size_t i = 0; i < txn->nrcpt; i++)
	    smtp_result_set(txn->result + i, DELIVERY_BOUNCE, 0, "5.3.4",
			    "message size %zu exceeds size limit %.0f of server %s",
			    size, (double) p->size_limit, p->namaddr);
	return smtp_proto_txn_end(p);
    }
    if (m->smtputf8 && !(p->features & SMTP_FEATURE_SMTPUTF8)) {
	bool    need = smtp_proto_non_ascii(m->sender);

	for (size_t i = 0; i < txn->nrcpt && !need; i++)
	    need = smtp_proto_non_ascii(m->rcpt[txn->rcpt[i]].address);
	if (need) {
	    for (size_t i = 0; i < txn->nrcpt; i++)
		smtp_result_set(txn->result + i, DELIVERY_BOUNCE, 0, "5.6.7",
				"SMTPUTF8 is required, but was not offered by host %s",
				p->namaddr);
	    return smtp_proto_txn_end(p);
	}
    }
    smtp_proto_downgrade(p);
    p->state = ST_TXN;
    if (reset) {
	smtp_proto_send(p, "RSET");
	smtp_proto_expect(p, CMD_RSET, 0);
	/*
	 * With PIPELINING, RSET may open the group (RFC 2920): one write and
	 * one round trip per message instead of two. A stale session still
	 * shows at the RSET reply (the RSET phase lasts until it comes), and
	 * the commands after it die with the session.
	 */
	if (p->pipelining)
	    smtp_proto_start_mail(p);
	p->phase = SMTP_PH_RSET;
    } else
	smtp_proto_start_mail(p);
    return SMTP_EV_WAIT;
}

bool    smtp_proto_fill(SMTP_PROTO *p, size_t want)
{
    const char *data;
    size_t  len;

    if (p->state != ST_BODY)
	return false;
    smtp_proto_body(p, &data, &len);
    while (p->out.len < want && p->body_off < len) {
	const char *start = data + p->body_off, *q = start, *end = data + len;

	/* Dot-stuff: a line that starts with "." gets one more. */
	if (p->body_bol && *start == '.')
	    str_putc(&p->out, '.');
	/* Then the lines up to the next such one, in one append. */
	do {
	    const char *nl = memchr(q, '\n', (size_t) (end - q));

	    q = nl ? nl + 1 : end;
	    p->body_bol = nl != NULL;
	} while (q < end && *q != '.' && p->out.len + (size_t) (q - start) < want);
	str_append(&p->out, start, (size_t) (q - start));
	p->body_off += (size_t) (q - start);
    }
    if (p->body_off < len)
	return true;
    /* Canonical content ends in CRLF; be safe when it does not. */
    if (!p->body_bol)
	str_append(&p->out, "\r\n", 2);
    str_append(&p->out, ".\r\n", 3);
    p->body_done = true;
    p->state = ST_TXN;
    p->phase = SMTP_PH_DATA_DONE;
    if (p->naccepted == 0)
	smtp_proto_expect(p, CMD_DOT_DISCARD, 0);
    else if (p->o.lmtp) {
	for (size_t i = 0; i < p->txn->nrcpt; i++)
	    if (p->accepted[i])
		smtp_proto_expect(p, CMD_DOT, i);
    } else
	smtp_proto_expect(p, CMD_DOT, 0);
    return false;
}

/* Non-pipelined: after a reply, send what comes next. */
static void smtp_proto_next_step(SMTP_PROTO *p)
{
    if (p->pipelining || p->mail_failed || p->data_sent || p->exp_head != p->exp_tail)
	return;
    if (p->next_rcpt < p->txn->nrcpt)
	smtp_proto_send_rcpt(p, p->next_rcpt++);
    else if (p->naccepted > 0 && !p->txn->msg->probe)
	smtp_proto_send_data(p);
}

static enum smtp_proto_event smtp_proto_txn_reply(SMTP_PROTO *p)
{
    SMTP_EXP e;
    int     code = p->reply_code;

    if (p->exp_head == p->exp_tail) {
	/* A reply nobody asked for (e.g. a 5xx during the content): it is
	 * the server's verdict on the message; then give up the session. */
	p->broken = true;
	for (size_t i = 0; i < p->txn->nrcpt; i++)
	    if (!p->txn->result[i].set && p->accepted[i])
		smtp_proto_rcpt_reply(p, i, "end of DATA");
	return smtp_proto_txn_end(p);
    }
    e = p->exp[p->exp_head++];
    switch (e.cmd) {
    case CMD_RSET:
	if (code / 100 != 2) {
	    p->broken = true;
	    smtp_proto_txn_free(p);
	    p->state = ST_DEAD;
	    return SMTP_EV_RESET_FAIL;
	}
	if (p->pipelining)
	    p->phase = SMTP_PH_MAIL;	/* the rest went out with the RSET */
	else
	    smtp_proto_start_mail(p);
	return SMTP_EV_WAIT;
    case CMD_MAIL:
	if (code / 100 != 2) {
	    p->mail_failed = true;
	    smtp_proto_all_reply(p, false, "MAIL FROM");
	    if (code == 421)
		p->broken = true;
	} else
	    p->phase = SMTP_PH_RCPT;
	break;
    case CMD_RCPT:
	if (!p->mail_failed) {
	    if (code / 100 == 2) {
		p->accepted[e.idx] = true;
		p->naccepted++;
		/* A probe ends here: the RCPT reply is the verdict. */
		if (p->txn->msg->probe)
		    smtp_proto_rcpt_reply(p, e.idx, "RCPT TO");
	    } else {
		smtp_proto_rcpt_reply(p, e.idx, "RCPT TO");
		if (code == 421)
		    p->broken = true;
	    }
	}
	break;
    case CMD_DATA:
	if (code == 354 && !p->mail_failed && p->naccepted > 0) {
	    p->state = ST_BODY;
	    p->phase = SMTP_PH_DATA_XFER;
	    return SMTP_EV_WAIT;
	}
	if (code == 354) {
	    /* Nobody to deliver to, yet the server wants content: end it. */
	    str_append(&p->out, ".\r\n", 3);
	    smtp_proto_expect(p, CMD_DOT_DISCARD, 0);
	    p->phase = SMTP_PH_DATA_DONE;
	    return SMTP_EV_WAIT;
	}
	if (!p->mail_failed)
	    smtp_proto_all_reply(p, true, "DATA");
	if (code == 421)
	    p->broken = true;
	break;
    case CMD_DOT:
	smtp_proto_all_reply(p, true, "end of DATA");
	break;
    case CMD_DOT_DISCARD:
	break;
    }
    if (p->exp_head == p->exp_tail) {
	smtp_proto_next_step(p);
	if (p->exp_head == p->exp_tail)
	    return smtp_proto_txn_end(p);
    }
    return SMTP_EV_WAIT;
}

/* Dispatch one complete reply. */
static enum smtp_proto_event smtp_proto_reply_done(SMTP_PROTO *p, const char *lines)
{
    if (p->state == ST_TXN || p->state == ST_BODY) {
	/* LMTP after ".": each reply is one recipient's. */
	if (p->o.lmtp && p->exp_head < p->exp_tail && p->exp[p->exp_head].cmd == CMD_DOT) {
	    size_t  idx = p->exp[p->exp_head++].idx;

	    smtp_proto_rcpt_reply(p, idx, "end of DATA");
	    if (p->exp_head == p->exp_tail)
		return smtp_proto_txn_end(p);
	    return SMTP_EV_WAIT;
	}
	return smtp_proto_txn_reply(p);
    }
    return smtp_proto_session_reply(p, lines);
}

enum smtp_proto_event smtp_proto_input(SMTP_PROTO *p, const char *data, size_t len)
{
    enum smtp_proto_event ev = SMTP_EV_WAIT;
    if (len)
	str_append(&p->in, data, len);
    while (ev == SMTP_EV_WAIT && p->state != ST_DEAD && p->state != ST_TLS) {
	char   *start = p->in.data ? p->in.data + p->in_off : NULL;
	size_t  avail = p->in.len - p->in_off;
	char   *nl = avail ? memchr(start, '\n', avail) : NULL;
	size_t  n;
	bool    last;
	int     code;

	if (nl == NULL) {
	    if (avail > SMTP_PROTO_LINE_MAX)
		return smtp_proto_lost(p, "malformed server reply");
	    break;
	}
	n = (size_t) (nl - start);
	if (n > 0 && start[n - 1] == '\r')
	    n--;
	p->in_off = (size_t) (nl - p->in.data) + 1;

	/* "ddd text", "ddd-text" or "ddd". */
	if (n < 3 || !isdigit((unsigned char) start[0]) || !isdigit((unsigned char) start[1])
	    || !isdigit((unsigned char) start[2]) || (n > 3 && start[3] != ' ' && start[3] != '-')) {
	    p->reply_bad = true;
	    last = true;
	    code = 0;
	} else {
	    code = (start[0] - '0') * 100 + (start[1] - '0') * 10 + (start[2] - '0');
	    last = n == 3 || start[3] == ' ';
	}
	if (p->reply_lines == 0) {
	    p->reply_code = code;
	    str_reset(&p->reply);
	} else if (code != p->reply_code)
	    p->reply_bad = true;
	if (p->reply_lines < SMTP_PROTO_LINES_MAX && p->reply.len < SMTP_PROTO_REPLY_MAX) {
	    if (p->reply_lines > 0)
		str_putc(&p->reply, '\n');
	    str_append(&p->reply, start, n < SMTP_PROTO_REPLY_MAX ? n : SMTP_PROTO_REPLY_MAX);
	}
	p->reply_lines++;
	if (!last)
	    continue;

	/* A complete reply: keep the lines for EHLO, log text joined. */
	{
	    char   *lines = mem_strndup(STR_DATA(&p->reply), p->reply.len);
	    bool    bad = p->reply_bad;

	    for (size_t i = 0; i < p->reply.len; i++)
		if (p->reply.data[i] == '\n')
		    p->reply.data[i] = ' ';
	    for (size_t i = 0; i < p->reply.len; i++)
		if ((unsigned char) p->reply.data[i] < 32 && p->reply.data[i] != '\t')
		    p->reply.data[i] = '?';
	    p->reply_lines = 0;
	    p->reply_bad = false;
	    if (bad) {
		mem_free(lines);
		return smtp_proto_lost(p, "malformed server reply");
	    }
	    ev = smtp_proto_reply_done(p, lines);
	    mem_free(lines);
	}
    }
    /* Compact the input buffer. */
    if (p->in_off > 0 && p->in_off == p->in.len) {
	str_reset(&p->in);
	p->in_off = 0;
    } else if (p->in_off > 4096) {
	memmove(p->in.data, p->in.data + p->in_off, p->in.len - p->in_off);
	str_truncate(&p->in, p->in.len - p->in_off);
	p->in_off = 0;
    }
    return ev;
}

/* What the client was doing, in Postfix's words. */
static const char *smtp_proto_doing(const SMTP_PROTO *p)
{
    switch (p->state) {
    case ST_GREETING:
	return "receiving the initial server greeting";
    case ST_EHLO:
	return p->o.lmtp ? "performing the LHLO handshake" : "performing the EHLO handshake";
    case ST_HELO:
	return "performing the HELO handshake";
    case ST_STARTTLS:
    case ST_TLS:
	return "performing the STARTTLS handshake";
    case ST_BODY:
	return "sending message body";
    case ST_QUIT:
	return "sending QUIT";
    case ST_TXN:
	if (p->exp_head < p->exp_tail) {
	    switch (p->exp[p->exp_head].cmd) {
	    case CMD_RSET:
		return "sending RSET";
	    case CMD_MAIL:
		return "sending MAIL FROM";
	    case CMD_RCPT:
		return "sending RCPT TO";
	    case CMD_DATA:
		return "sending DATA command";
	    case CMD_DOT:
	    case CMD_DOT_DISCARD:
		return "sending end of data -- message may be sent more than once";
	    }
	}
	return "sending message body";
    default:
	return "talking to the server";
    }
}

static enum smtp_proto_event smtp_proto_broke(SMTP_PROTO *p, const char *text)
{
    if (p->state == ST_TXN || p->state == ST_BODY) {
	bool    reset_phase = p->exp_head < p->exp_tail && p->exp[p->exp_head].cmd == CMD_RSET;

	p->broken = true;
	if (reset_phase) {
	    smtp_proto_txn_free(p);
	    p->state = ST_DEAD;
	    return SMTP_EV_RESET_FAIL;
	}
	smtp_proto_all_local(p, DELIVERY_DEFER, "4.4.2", text);
	smtp_proto_txn_free(p);
	p->state = ST_DEAD;
	return SMTP_EV_TXN_DONE;
    }
    if (p->state == ST_READY || p->state == ST_QUIT || p->state == ST_DEAD) {
	p->broken = true;
	p->state = ST_DEAD;
	return SMTP_EV_CLOSED;
    }
    p->state = ST_DEAD;
    str_set(&p->site_reason, text);
    snprintf(p->site_dsn, sizeof(p->site_dsn), "4.4.2");
    p->site_final = false;
    return SMTP_EV_SITE_FAIL;
}

enum smtp_proto_event smtp_proto_lost(SMTP_PROTO *p, const char *detail)
{
    char    buf[512];

    if (detail && strcmp(detail, "malformed server reply") == 0)
	snprintf(buf, sizeof(buf), "host %s sent a malformed reply while %s",
		 p->namaddr, smtp_proto_doing(p));
    else
	snprintf(buf, sizeof(buf), "lost connection with %s while %s",
		 p->namaddr, smtp_proto_doing(p));
    return smtp_proto_broke(p, buf);
}

enum smtp_proto_event smtp_proto_timeout(SMTP_PROTO *p)
{
    char    buf[512];

    snprintf(buf, sizeof(buf), "conversation with %s timed out while %s",
	     p->namaddr, smtp_proto_doing(p));
    return smtp_proto_broke(p, buf);
}
