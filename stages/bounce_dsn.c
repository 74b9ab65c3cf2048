/*
 * bounce_dsn.c - the machine-readable parts of a notice: the RFC 3464
 * message/delivery-status part, and the returned original (message/rfc822
 * or text/rfc822-headers; message/global* for SMTPUTF8 mail).
 *
 * Per-recipient fields come from what the delivery agent said: a reason of
 * the form "host NAME[ADDR] said: REPLY (in reply to X command)" (smtp,
 * lmtp) gives Remote-MTA: dns; NAME and Diagnostic-Code: smtp; REPLY; any
 * other reason is a local one: Diagnostic-Code: X-Postfix; REASON, as
 * Postfix writes it.
 *
 * Threading: pure functions. Diagnostics: none.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/timeutil.h"
#include "stages/addr_parse.h"
#include "stages/bounce_priv.h"

/* ---- small helpers shared by the bounce files ---------------------------- */

void bounce_put_clean(STR *out, const char *text, size_t len)
{
    for (size_t i = 0; i < len && text[i]; i++) {
	unsigned char c = (unsigned char) text[i];

	str_putc(out, c < 0x20 || c == 0x7f ? ' ' : c);
    }
}

void bounce_put_addr(STR *out, const char *addr)
{
    STR     ext = STR_INIT;

    addr_externalize(&ext, addr ? addr : "");
    bounce_put_clean(out, STR_DATA(&ext), STR_LEN(&ext));
    str_release(&ext);
}

bool bounce_remote_reply(const char *reason, const char **host, size_t *host_len,
			 const char **text, size_t *text_len)
{
    const char *said, *bra, *end;

    if (reason == NULL || strncmp(reason, "host ", 5) != 0
	|| (said = strstr(reason, " said: ")) == NULL)
	return false;
    *host = reason + 5;
    bra = memchr(*host, '[', (size_t) (said - *host));
    *host_len = (size_t) ((bra ? bra : said) - *host);
    *text = said + 7;
    end = strstr(*text, " (in reply to ");
    *text_len = end ? (size_t) (end - *text) : strlen(*text);
    return *host_len > 0;
}

/* "X.Y.Z" with X in 2,4,5 and 1-3 digits after each dot. */
static size_t bounce_dsn_len(const char *s)
{
    const char *p = s;

    if (s == NULL || (*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
	return 0;
    p += 2;
    for (int part = 0; part < 2; part++) {
	size_t  d = strspn(p, "0123456789");

	if (d < 1 || d > 3)
	    return 0;
	p += d;
	if (part == 0) {
	    if (*p != '.')
		return 0;
	    p++;
	}
    }
    return (size_t) (p - s);
}

const char *bounce_status(enum bounce_kind kind, const char *dsn, const char *reason,
			  char *buf)
{
    const char *host, *text;
    size_t  hl, tl, n;

    if ((n = bounce_dsn_len(dsn)) > 0 && dsn[n] == 0)
	return dsn;
    /* "550 5.1.1 ..." in a remote reply (a recovered recipient has no dsn). */
    if (bounce_remote_reply(reason, &host, &hl, &text, &tl) && tl > 4
	&& (n = bounce_dsn_len(text + 4)) > 0) {
	memcpy(buf, text + 4, n);
	buf[n] = 0;
	return buf;
    }
    switch (kind) {
    case BOUNCE_KIND_FAILURE:
	return "5.0.0";
    case BOUNCE_KIND_DELAY:
	return "4.0.0";
    default:
	return "2.0.0";
    }
}

const char *bounce_action(enum bounce_kind kind, const MESSAGE *orig, const BOUNCE_RCPT *r)
{
    const char *transport;

    if (r->action && *r->action)
	return r->action;
    switch (kind) {
    case BOUNCE_KIND_FAILURE:
	return "failed";
    case BOUNCE_KIND_DELAY:
	return "delayed";
    case BOUNCE_KIND_VERIFY:
	return "deliverable";
    case BOUNCE_KIND_SUCCESS:
    default:
	/* Final delivery is "delivered"; handing it on to an SMTP server
	 * that may not do DSN is "relayed" (RFC 3464 2.3.3). */
	transport = orig->rcpt[r->index].transport;
	if (transport && (strcmp(transport, "local") == 0 || strcmp(transport, "virtual") == 0
			  || strcmp(transport, "lmtp") == 0 || strcmp(transport, "pipe") == 0))
	    return "delivered";
	return "relayed";
    }
}

const char *bounce_reason(enum bounce_kind kind, const BOUNCE_RCPT *r)
{
    if (r->reason && *r->reason)
	return r->reason;
    switch (kind) {
    case BOUNCE_KIND_FAILURE:
	return "delivery failed";
    case BOUNCE_KIND_DELAY:
	return "delivery temporarily suspended";
    default:
	return "delivered";
    }
}

/* ---- message/delivery-status ------------------------------------------- */

static void bounce_dsn_date(STR *out, const char *name, int64_t when_s)
{
    char    date[64];

    time_fmt_rfc2822(date, sizeof(date), (time_t) when_s);
    str_printf(out, "%s: %s\r\n", name, date);
}

static bool bounce_ascii(const char *s)
{
    for (; s && *s; s++)
	if ((unsigned char) *s >= 0x80)
	    return false;
    return true;
}

/* "rfc822; addr", or "utf-8; addr" for a non-ASCII one (RFC 6533). */
static void bounce_dsn_addr(STR *out, const char *name, const char *addr)
{
    str_printf(out, "%s: %s; ", name, bounce_ascii(addr) ? "rfc822" : "utf-8");
    bounce_put_addr(out, addr);
    str_puts(out, "\r\n");
}

/* ORCPT as given: "rfc822;a@b" with xtext (+XX) decoded for display. */
static void bounce_dsn_orcpt(STR *out, const char *orcpt)
{
    const char *semi = strchr(orcpt, ';');
    STR     dec = STR_INIT;

    if (semi == NULL)
	return;
    for (const char *p = semi + 1; *p; p++) {
	if (*p == '+' && isxdigit((unsigned char) p[1]) && isxdigit((unsigned char) p[2])) {
	    char    hex[3] = {p[1], p[2], 0};

	    str_putc(&dec, (int) strtol(hex, NULL, 16));
	    p += 2;
	} else
	    str_putc(&dec, *p);
    }
    str_puts(out, "Original-Recipient: ");
    bounce_put_clean(out, orcpt, (size_t) (semi - orcpt));
    str_puts(out, ";");
    bounce_put_clean(out, STR_DATA(&dec), STR_LEN(&dec));
    str_puts(out, "\r\n");
    str_release(&dec);
}

void bounce_dsn_part(STR *out, const BOUNCE_CONFIG *cfg, const MESSAGE *orig,
		     enum bounce_kind kind, const BOUNCE_RCPT *rcpt, size_t n, int64_t now_us)
{
    int64_t now_s = now_us / 1000000;

    /* Per-message fields. */
    if (orig->dsn_envid && *orig->dsn_envid) {
	str_puts(out, "Original-Envelope-Id: ");
	bounce_put_clean(out, orig->dsn_envid, strlen(orig->dsn_envid));
	str_puts(out, "\r\n");
    }
    str_puts(out, "Reporting-MTA: dns; ");
    bounce_put_clean(out, cfg->myhostname, strlen(cfg->myhostname));
    str_puts(out, "\r\n");
    str_printf(out, "X-Postfix-Queue-ID: %s\r\n", orig->queue_id);
    if (orig->sender && *orig->sender)
	bounce_dsn_addr(out, "X-Postfix-Sender", orig->sender);
    if (orig->arrival_us > 0)
	bounce_dsn_date(out, "Arrival-Date", orig->arrival_us / 1000000);

    /* Per-recipient fields, each group after an empty line. */
    for (size_t k = 0; k < n; k++) {
	const BOUNCE_RCPT *r = rcpt + k;
	const RCPT *or = &orig->rcpt[r->index];
	const char *reason = bounce_reason(kind, r);
	const char *host, *text;
	size_t  hl, tl;
	char    buf[16];

	str_puts(out, "\r\n");
	bounce_dsn_addr(out, "Final-Recipient", or->address);
	if (or->dsn_orcpt && *or->dsn_orcpt)
	    bounce_dsn_orcpt(out, or->dsn_orcpt);
	else if (or->orig_rcpt && *or->orig_rcpt)
	    bounce_dsn_addr(out, "Original-Recipient", or->orig_rcpt);
	str_printf(out, "Action: %s\r\n", bounce_action(kind, orig, r));
	str_printf(out, "Status: %s\r\n", bounce_status(kind, r->dsn, r->reason, buf));
	if (bounce_remote_reply(r->reason, &host, &hl, &text, &tl)) {
	    str_puts(out, "Remote-MTA: dns; ");
	    bounce_put_clean(out, host, hl);
	    str_puts(out, "\r\nDiagnostic-Code: smtp; ");
	    bounce_put_clean(out, text, tl);
	    str_puts(out, "\r\n");
	} else if (r->reason && isdigit((unsigned char) r->reason[0])
		   && strspn(r->reason, "0123456789") == 3 && r->reason[3] == ' ') {
	    /* A bare reply: what an SMTP/LMTP server said on success. */
	    str_puts(out, "Diagnostic-Code: smtp; ");
	    bounce_put_clean(out, reason, strlen(reason));
	    str_puts(out, "\r\n");
	} else if (r->reason && *r->reason) {
	    str_puts(out, "Diagnostic-Code: X-Postfix; ");
	    bounce_put_clean(out, reason, strlen(reason));
	    str_puts(out, "\r\n");
	}
	if (kind == BOUNCE_KIND_FAILURE || kind == BOUNCE_KIND_DELAY)
	    bounce_dsn_date(out, "Last-Attempt-Date", now_s);
	if (kind == BOUNCE_KIND_DELAY && orig->arrival_us > 0)
	    bounce_dsn_date(out, "Will-Retry-Until",
			    orig->arrival_us / 1000000 + cfg->maximal_queue_lifetime_s);
    }
}

/* ---- the original ------------------------------------------------------ */

/* Length of the header section, up to and including its empty line. */
static size_t bounce_header_len(const char *data, size_t len)
{
    if (len >= 2 && data[0] == '\r' && data[1] == '\n')
	return 2;				/* no header at all */
    for (size_t i = 0; i + 3 < len; i++)
	if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n')
	    return i + 4;
    return len;					/* all header */
}

bool bounce_dsn_full(const BOUNCE_CONFIG *cfg, const MESSAGE *orig, enum bounce_kind kind,
		     bool postmaster)
{
    /* Only failures return the message; a delay warning or a success
     * report, or a copy for the postmaster, carries the header only. */
    if (kind != BOUNCE_KIND_FAILURE || postmaster || orig->dsn_ret == DSN_RET_HDRS)
	return false;
    /* Too large: cut at a line would break MIME; send the header (Postfix). */
    return orig->content && (cfg->size_limit == 0 || orig->content->len <= cfg->size_limit);
}

void bounce_dsn_original(STR *out, const MESSAGE *orig, bool full)
{
    const char *data = orig->content ? orig->content->data : "";
    size_t  len = orig->content ? orig->content->len : 0;
    bool    eightbit = false;

    if (!full)
	len = bounce_header_len(data, len);
    for (size_t i = 0; i < len && !eightbit; i++)
	eightbit = (unsigned char) data[i] >= 0x80;
    if (full) {
	str_printf(out, "Content-Description: Undelivered Message\r\n"
		   "Content-Type: %s\r\n", orig->smtputf8 ? "message/global" : "message/rfc822");
	if (eightbit || orig->body_type == BODY_TYPE_8BITMIME)
	    str_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
    } else {
	str_printf(out, "Content-Description: Message Headers\r\n"
		   "Content-Type: %s\r\n",
		   orig->smtputf8 ? "message/global-headers" : "text/rfc822-headers");
	if (eightbit)
	    str_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
    }
    str_puts(out, "\r\n");
    str_append(out, data, len);
    if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n')
	str_puts(out, "\r\n");
}
