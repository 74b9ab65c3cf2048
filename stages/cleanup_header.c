/*
 * cleanup_header.c - the header section: our Received: header, hop
 * counting, header_checks and their actions, address headers, dropped
 * headers, and the headers added when missing.
 *
 * Log lines follow Postfix's cleanup(8):
 *   ID: message-id=<...>
 *   ID: warning: header Subject: foo from host[addr]; from=<s> to=<r>
 *       proto=ESMTP helo=<h>: text
 *   ID: reject: header ...: 5.7.1 text
 *   ID: message rejected: hopcount exceeded
 *
 * Threading: per-message state only. Diagnostics: bad actions in a check
 * table are msg_warn()ed and ignored, as Postfix does.
 */
#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/timeutil.h"
#include "stages/addr_parse.h"
#include "stages/cleanup_priv.h"

/* cleanup_is_header - "name:" or obsolete "name :" at the start of line */

int     cleanup_is_header(const char *line, size_t len, size_t *name_len)
{
    size_t  i = 0, n;

    while (i < len && line[i] > 32 && line[i] < 127 && line[i] != ':')
	i++;
    if ((n = i) == 0)
	return 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
	i++;
    if (i >= len || line[i] != ':')
	return 0;
    if (name_len)
	*name_len = n;
    return 1;
}

static int cleanup_name_is(const char *hdr, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(hdr, name, name_len) == 0;
}

static int cleanup_name_in(const char *hdr, size_t name_len,
			           const char *const *names)
{
    for (; *names; names++)
	if (cleanup_name_is(hdr, name_len, *names))
	    return 1;
    return 0;
}

static const char *const cleanup_sender_hdrs[] = {
    "From", "Sender", "Reply-To", "Errors-To", "Return-Receipt-To",
    "Resent-From", "Resent-Sender", "Resent-Reply-To", NULL,
};
static const char *const cleanup_rcpt_hdrs[] = {
    "To", "Cc", "Apparently-To", "Resent-To", "Resent-Cc", NULL,
};
static const char *const cleanup_drop_hdrs[] = {
    "Return-Path", "Bcc", "Resent-Bcc", "Content-Length", NULL,
};

/* cleanup_log_text - header text on one line, for logs */

static void cleanup_log_text(STR *out, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
	char    ch = text[i];

	if (ch == '\r')
	    continue;
	str_putc(out, ch == 0 || ch == '\n' ? ' ' : ch);
    }
}

/* cleanup_act_log - "ID: action: class text from origin; from=<> ...: why" */

static void cleanup_act_log(CLEANUP_STATE *st, const char *action,
			            const char *class, const char *content,
			            const char *text)
{
    MESSAGE *m = st->m;
    STR     buf = STR_INIT, body = STR_INIT;
    size_t  clen = strlen(content);

    cleanup_log_text(&body, content, clen > 200 ? 200 : clen);
    str_printf(&buf, "%s: %s: %s %s from %s;", m->queue_id, action, class,
	       STR_DATA(&body), st->origin);
    str_printf(&buf, " from=<%s>", m->sender ? m->sender : "");
    if (st->log_rcpt)
	str_printf(&buf, " to=<%s>", st->log_rcpt);
    if (m->protocol && strcasecmp(m->protocol, "LOCAL") != 0)
	str_printf(&buf, " proto=%s", m->protocol);
    if (m->helo && *m->helo)
	str_printf(&buf, " helo=<%s>", m->helo);
    if (text && *text)
	str_printf(&buf, ": %s", text);
    msg_info("%s", STR_DATA(&buf));
    str_release(&buf);
    str_release(&body);
}

/* cleanup_dsn_prepend - "5.7.1 text" unless text starts with a status */

static void cleanup_dsn_prepend(STR *out, const char *dflt, const char *text)
{
    const char *p = text;

    if ((p[0] == '4' || p[0] == '5') && p[1] == '.' && isdigit((unsigned char) p[2])) {
	p += 2;
	while (isdigit((unsigned char) *p))
	    p++;
	if (*p == '.' && isdigit((unsigned char) p[1])) {
	    p++;
	    while (isdigit((unsigned char) *p))
		p++;
	    if (*p == ' ' || *p == '\t' || *p == 0) {
		str_puts(out, text);
		return;
	    }
	}
    }
    str_printf(out, "%s %s", dflt, text);
}

int     cleanup_act(CLEANUP_STATE *st, const char *context, const char *text,
		            const char *value, const char *map_class,
		            STR *repl, STR *prepend)
{
    size_t  cmd_len = strcspn(value, " \t");
    const char *opt = value + cmd_len;
    int     is_hdr_ctx = strcmp(context, "header") == 0;

    while (*opt == ' ' || *opt == '\t')
	opt++;
#define CLEANUP_CMD(name) (cmd_len == strlen(name) && strncasecmp(value, name, cmd_len) == 0)

    if (CLEANUP_CMD("REJECT")) {
	STR     reason = STR_INIT, reply = STR_INIT;

	if (*opt)
	    cleanup_dsn_prepend(&reason, "5.7.1", opt);
	else
	    str_puts(&reason, "5.7.1 message content rejected");
	if (reason.data[0] != '4' && reason.data[0] != '5') {
	    msg_warn("bad DSN action in %s -- need 4.x.x or 5.x.x", opt);
	    reason.data[0] = '4';
	}
	str_printf(&reply, "%d %s", reason.data[0] == '4' ? 451 : 550, STR_DATA(&reason));
	cleanup_act_log(st, "reject", context, text, STR_DATA(&reason));
	cleanup_set_error(st, reason.data[0] == '4' ? CLEANUP_DEFER : CLEANUP_REJECT,
			  STR_DATA(&reply));
	st->info.flags |= CLEANUP_FLAG_NO_CHECKS;
	str_release(&reason);
	str_release(&reply);
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("WARN")) {
	cleanup_act_log(st, "warning", context, text, opt);
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("INFO")) {
	cleanup_act_log(st, "info", context, text, opt);
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("HOLD")) {
	if (!st->hold && !st->discard) {
	    cleanup_act_log(st, "hold", context, text, opt);
	    st->hold = 1;
	}
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("DISCARD")) {
	cleanup_act_log(st, "discard", context, text, opt);
	st->discard = 1;
	st->info.flags |= CLEANUP_FLAG_NO_CHECKS;
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("PASS")) {
	cleanup_act_log(st, "pass", context, text, opt);
	st->info.flags |= CLEANUP_FLAG_NO_CHECKS;
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("FILTER")) {
	msg_warn("FILTER action in %s map is not supported -- ignored: %s",
		 map_class, value);
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("PREPEND")) {
	if (*opt == 0) {
	    msg_warn("PREPEND action without text in %s map", map_class);
	} else if (is_hdr_ctx && !cleanup_is_header(opt, strlen(opt), NULL)) {
	    msg_warn("bad PREPEND header text \"%s\" in %s map -- "
		     "need \"headername: headervalue\"", opt, map_class);
	} else {
	    cleanup_act_log(st, "prepend", context, text, opt);
	    str_puts(prepend, opt);
	}
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("REPLACE")) {
	if (*opt == 0) {
	    msg_warn("REPLACE action without text in %s map", map_class);
	    return CLEANUP_ACT_KEEP;
	}
	if (is_hdr_ctx && !cleanup_is_header(opt, strlen(opt), NULL)) {
	    msg_warn("bad REPLACE header text \"%s\" in %s map -- "
		     "need \"headername: headervalue\"", opt, map_class);
	    return CLEANUP_ACT_KEEP;
	}
	cleanup_act_log(st, "replace", context, text, opt);
	str_set(repl, opt);
	return CLEANUP_ACT_REPLACE;
    }
    if (CLEANUP_CMD("REDIRECT")) {
	if (strchr(opt, '@') == NULL) {
	    msg_warn("bad REDIRECT target \"%s\" in %s map -- need user@domain",
		     opt, map_class);
	} else {
	    mem_free(st->redirect);
	    st->redirect = mem_strdup(opt);
	    cleanup_act_log(st, "redirect", context, text, opt);
	    st->info.flags |= CLEANUP_FLAG_NO_CHECKS;
	}
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("BCC")) {
	if (strchr(opt, '@') == NULL) {
	    msg_warn("bad BCC address \"%s\" in %s map -- need user@domain",
		     opt, map_class);
	} else {
	    cleanup_list_add(&st->bcc, opt);
	    cleanup_act_log(st, "bcc", context, text, opt);
	}
	return CLEANUP_ACT_KEEP;
    }
    if (CLEANUP_CMD("STRIP")) {
	cleanup_act_log(st, "strip", context, text, opt);
	return CLEANUP_ACT_DROP;
    }
    if (CLEANUP_CMD("IGNORE"))
	return CLEANUP_ACT_DROP;
    if (CLEANUP_CMD("DUNNO") || CLEANUP_CMD("OK"))
	return CLEANUP_ACT_KEEP;
    msg_warn("unknown command in %s map: %s", map_class, value);
    return CLEANUP_ACT_KEEP;
}

/* cleanup_header_received - our Received: header (Postfix's layout) */

void    cleanup_header_received(CLEANUP_STATE *st, STR *hdr)
{
    const CLEANUP_CONFIG *cfg = &st->ctx->cfg;
    const MESSAGE *m = st->m;
    time_t  when = m->arrival_us > 0 ? (time_t) (m->arrival_us / 1000000) : time(NULL);
    char    date[64];
    const char *proto = m->protocol && *m->protocol ? m->protocol : "ESMTP";

    time_fmt_rfc2822(date, sizeof(date), when);
    str_reset(hdr);
    if (strcasecmp(proto, "LOCAL") == 0) {
	/* Local submission (pickup): no client. */
	if (st->info.uid >= 0)
	    str_printf(hdr, "Received: by %s (%s, from userid %ld)\r\n\tid %s; %s",
		       cfg->myhostname, cfg->mail_name, st->info.uid,
		       m->queue_id, date);
	else
	    str_printf(hdr, "Received: by %s (%s)\r\n\tid %s; %s",
		       cfg->myhostname, cfg->mail_name, m->queue_id, date);
	return;
    }
    {
	const char *name = m->client_name && *m->client_name ? m->client_name : "unknown";
	const char *addr = m->client_addr && *m->client_addr ? m->client_addr : "unknown";
	const char *helo = m->helo && *m->helo ? m->helo : name;

	str_printf(hdr, "Received: from %s (%s [%s%s])", helo, name,
		   strchr(addr, ':') ? "IPv6:" : "", addr);
    }
    if (st->info.tls_protocol && *st->info.tls_protocol) {
	str_printf(hdr, "\r\n\t(using %s with cipher %s (%d/%d bits))",
		   st->info.tls_protocol,
		   st->info.tls_cipher ? st->info.tls_cipher : "unknown",
		   st->info.tls_usebits, st->info.tls_algbits);
	str_puts(hdr, "\r\n\t(No client certificate requested)");
    }
    if (st->first_rcpt && *st->first_rcpt) {
	str_printf(hdr, "\r\n\tby %s (%s) with %s id %s\r\n\tfor <",
		   cfg->myhostname, cfg->mail_name, proto, m->queue_id);
	addr_externalize(hdr, st->first_rcpt);
	str_printf(hdr, ">; %s", date);
    } else {
	str_printf(hdr, "\r\n\tby %s (%s) with %s id %s;\r\n\t%s",
		   cfg->myhostname, cfg->mail_name, proto, m->queue_id, date);
    }
}

/* cleanup_header_value - the value after "name:", leading blanks skipped */

static const char *cleanup_header_value(const char *hdr, size_t len, size_t *vlen)
{
    const char *colon = memchr(hdr, ':', len);
    const char *v = colon ? colon + 1 : hdr + len;

    while (v < hdr + len && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'))
	v++;
    *vlen = (size_t) (hdr + len - v);
    return v;
}

void    cleanup_header_one(CLEANUP_STATE *st, STR *hdr)
{
    CLEANUP_CTX *ctx = st->ctx;
    const char *h = STR_DATA(hdr);
    size_t  len = STR_LEN(hdr), name_len = 0, vlen;
    STR     value = STR_INIT, repl = STR_INIT, prepend = STR_INIT, key = STR_INIT;

    if (st->status != CLEANUP_OK)
	return;
    if (!cleanup_is_header(h, len, &name_len))
	name_len = 0;

    /* Count hops before a check may drop the header (as Postfix). */
    if (cleanup_name_is(h, name_len, "Received"))
	st->hop_count++;

    if (!(st->info.flags & CLEANUP_FLAG_NO_CHECKS)
	&& !rewrite_maps_empty(ctx->header_checks)) {
	int     rc, act;

	/* The table sees the logical header with "\n" between lines, and
	 * no NUL bytes (they would hide the rest from the pattern). */
	for (size_t i = 0; i < len; i++) {
	    if (h[i] == '\r' && i + 1 < len && h[i + 1] == '\n')
		continue;
	    str_putc(&key, h[i] == 0 ? ' ' : h[i]);
	}
	rc = rewrite_maps_find(ctx->header_checks, STR_DATA(&key), 0, &value);
	if (rc == DICT_FOUND) {
	    act = cleanup_act(st, "header", STR_DATA(&key), STR_DATA(&value),
			      "header_checks", &repl, &prepend);
	    if (STR_LEN(&prepend) > 0) {
		str_append(&st->out, STR_DATA(&prepend), STR_LEN(&prepend));
		str_puts(&st->out, "\r\n");
	    }
	    if (act == CLEANUP_ACT_DROP || st->status != CLEANUP_OK)
		goto out;
	    if (act == CLEANUP_ACT_REPLACE) {
		str_set(hdr, STR_DATA(&repl));
		h = STR_DATA(hdr);
		len = STR_LEN(hdr);
		if (!cleanup_is_header(h, len, &name_len))
		    name_len = 0;
	    }
	} else if (rc == DICT_ERR) {
	    msg_warn("%s: %s map lookup problem -- "
		     "message not accepted, try again later",
		     st->m->queue_id, rewrite_maps_title(ctx->header_checks));
	    cleanup_set_error(st, CLEANUP_DEFER, "451 4.3.0 Error: queue file write error");
	    goto out;
	}
    }

    if (cleanup_name_is(h, name_len, "Received")) {
	if (st->hop_count >= ctx->cfg.hopcount_limit) {
	    msg_warn("%s: message rejected: hopcount exceeded", st->m->queue_id);
	    cleanup_set_error(st, CLEANUP_REJECT, "554 5.4.0 Error: too many hops");
	    goto out;
	}
    } else if (cleanup_name_is(h, name_len, "Message-Id")
	       || cleanup_name_is(h, name_len, "Resent-Message-Id")) {
	const char *v = cleanup_header_value(h, len, &vlen);
	STR     logv = STR_INIT;
	int     resent = cleanup_name_is(h, name_len, "Resent-Message-Id");

	cleanup_log_text(&logv, v, vlen);
	msg_info("%s: %smessage-id=%s", st->m->queue_id, resent ? "resent-" : "",
		 STR_DATA(&logv));
	str_release(&logv);
	st->headers_seen |= 1u << (resent ? CLEANUP_HDR_RESENT_MESSAGE_ID
				   : CLEANUP_HDR_MESSAGE_ID);
    } else if (cleanup_name_is(h, name_len, "Date")) {
	st->headers_seen |= 1u << CLEANUP_HDR_DATE;
    } else if (cleanup_name_is(h, name_len, "Resent-Date")) {
	st->headers_seen |= 1u << CLEANUP_HDR_RESENT_DATE;
    } else if (cleanup_name_is(h, name_len, "From")) {
	st->headers_seen |= 1u << CLEANUP_HDR_FROM;
    } else if (cleanup_name_is(h, name_len, "Resent-From")) {
	st->headers_seen |= 1u << CLEANUP_HDR_RESENT_FROM;
    }
    if (name_len > 7 && strncasecmp(h, "Resent-", 7) == 0)
	st->resent = 1;

    /* sendmail -t: recipients from To:, Cc:, Bcc: (or their Resent-). */
    if (st->info.flags & CLEANUP_FLAG_EXTRACT) {
	static const char *const plain[] = {"To", "Cc", "Bcc", NULL};
	static const char *const resent[] = {"Resent-To", "Resent-Cc", "Resent-Bcc", NULL};
	const char *v = cleanup_header_value(h, len, &vlen);

	if (cleanup_name_in(h, name_len, plain))
	    cleanup_addr_extract(v, vlen, &st->extracted);
	else if (cleanup_name_in(h, name_len, resent))
	    cleanup_addr_extract(v, vlen, &st->extracted_resent);
    }
    if (cleanup_name_in(h, name_len, cleanup_drop_hdrs))
	goto out;

    /* Address headers, for local clients only (as Postfix). */
    if (st->info.flags & CLEANUP_FLAG_LOCAL_HEADERS) {
	int     sender = cleanup_name_in(h, name_len, cleanup_sender_hdrs);

	if (sender || cleanup_name_in(h, name_len, cleanup_rcpt_hdrs)) {
	    const char *colon = memchr(h, ':', len);
	    size_t  off = (size_t) (colon + 1 - h);
	    int     rc;

	    rc = cleanup_addr_header(st, sender, h + off, len - off, &value);
	    if (rc < 0)
		goto out;
	    if (rc > 0) {
		str_append(&st->out, h, off);
		str_append(&st->out, STR_DATA(&value), STR_LEN(&value));
		str_puts(&st->out, "\r\n");
		goto out;
	    }
	}
    }
    str_append(&st->out, h, len);
    str_puts(&st->out, "\r\n");

out:
    str_release(&value);
    str_release(&repl);
    str_release(&prepend);
    str_release(&key);
}

/* cleanup_header_from - "From: addr" or "From: Full Name <addr>" */

static void cleanup_header_from(CLEANUP_STATE *st, const char *prefix)
{
    const char *sender = st->m->sender && *st->m->sender ? st->m->sender : "MAILER-DAEMON";
    const char *full = st->info.fullname;

    str_printf(&st->out, "%sFrom: ", prefix);
    if (st->m->sender && *st->m->sender && full && *full) {
	STR     name = STR_INIT;

	/* No line breaks in a full name. */
	for (const char *p = full; *p; p++)
	    str_putc(&name, *p == '\r' || *p == '\n' ? ' ' : *p);
	if (STR_DATA(&name)[strcspn(STR_DATA(&name), "%!()<>@,;:\\\".[]")] == 0) {
	    str_append(&st->out, STR_DATA(&name), STR_LEN(&name));
	} else {
	    str_putc(&st->out, '"');
	    for (const char *p = STR_DATA(&name); *p; p++) {
		if (*p == '"' || *p == '\\')
		    str_putc(&st->out, '\\');
		str_putc(&st->out, *p);
	    }
	    str_putc(&st->out, '"');
	}
	str_puts(&st->out, " <");
	addr_externalize(&st->out, sender);
	str_putc(&st->out, '>');
	str_release(&name);
    } else {
	addr_externalize(&st->out, sender);
    }
    str_puts(&st->out, "\r\n");
}

void    cleanup_header_done(CLEANUP_STATE *st)
{
    const CLEANUP_CONFIG *cfg = &st->ctx->cfg;
    const MESSAGE *m = st->m;
    const char *prefix = st->resent ? "Resent-" : "";
    unsigned idbit = 1u << (st->resent ? CLEANUP_HDR_RESENT_MESSAGE_ID : CLEANUP_HDR_MESSAGE_ID);
    unsigned datebit = 1u << (st->resent ? CLEANUP_HDR_RESENT_DATE : CLEANUP_HDR_DATE);
    unsigned frombit = 1u << (st->resent ? CLEANUP_HDR_RESENT_FROM : CLEANUP_HDR_FROM);
    time_t  when = m->arrival_us > 0 ? (time_t) (m->arrival_us / 1000000) : time(NULL);

    if (st->status != CLEANUP_OK)
	return;
    if ((st->info.flags & CLEANUP_FLAG_LOCAL_HEADERS) || cfg->always_add_missing_headers) {
	if ((st->headers_seen & idbit) == 0) {
	    STR     id = STR_INIT;

	    if (cfg->long_queue_ids) {
		str_printf(&id, "%s@%s", m->queue_id, cfg->myhostname);
	    } else {
		struct tm tm;
		char    stamp[32];

		gmtime_r(&when, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		str_printf(&id, "%s.%s@%s", stamp, m->queue_id, cfg->myhostname);
	    }
	    str_printf(&st->out, "%sMessage-Id: <%s>\r\n", prefix, STR_DATA(&id));
	    msg_info("%s: %smessage-id=<%s>", m->queue_id,
		     st->resent ? "resent-" : "", STR_DATA(&id));
	    st->headers_seen |= idbit;
	    str_release(&id);
	}
	if ((st->headers_seen & datebit) == 0) {
	    char    date[64];

	    time_fmt_rfc2822(date, sizeof(date), when);
	    str_printf(&st->out, "%sDate: %s\r\n", prefix, date);
	    st->headers_seen |= datebit;
	}
	if ((st->headers_seen & frombit) == 0) {
	    cleanup_header_from(st, prefix);
	    st->headers_seen |= frombit;
	}
    }
    if ((st->headers_seen & (1u << CLEANUP_HDR_MESSAGE_ID)) == 0)
	msg_info("%s: message-id=<>", m->queue_id);
}
