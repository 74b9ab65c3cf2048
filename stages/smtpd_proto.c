/*
 * smtpd_proto.c - the RFC 5321 server state machine, as pure logic.
 *
 * Bytes go in with smtpd_proto_input(); replies collect in an output
 * string; smtpd_proto_event() says what the I/O layer must do next. Nothing
 * here touches a socket or blocks, so tests and the fuzzer drive it
 * directly (t/test_smtpd_proto.c, t/fuzz_smtpd_proto.c).
 *
 * Replies and log lines are Postfix's, word for word where Postfix has one
 * (smtpd.c in Postfix 3.x): "250 2.1.0 Ok", "503 5.5.1 Error: need MAIL
 * command", "NOQUEUE: reject: RCPT from host[ip]: 554 5.7.1 <r>: Relay
 * access denied; from=<s> to=<r> proto=ESMTP helo=<h>", "disconnect from
 * host[ip] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5".
 *
 * Defences:
 *  - a command line longer than line_length_limit is dropped while it
 *    arrives (memory never grows) and answered "500 5.5.0 Error: line too
 *    long"; NUL bytes and bad UTF-8 in commands are refused;
 *  - smtpd_forbid_unauth_pipelining: input before the greeting, input
 *    after a command RFC 2920 says must end a group (EHLO, HELO, DATA,
 *    NOOP, VRFY, ETRN), or any pipelining by a HELO client, gets "554 5.5.0
 *    Error: SMTP protocol synchronization", the log line "improper command
 *    pipelining after CMD from host[ip]: next input" and the end;
 *  - STARTTLS: whatever follows the command in the same input is thrown
 *    away (CVE-2011-0411) and the session restarts after the handshake;
 *  - smtpd_forbid_bare_newline: see smtpd_data.c;
 *  - error counts: smtpd_soft_error_limit makes each reply wait
 *    smtpd_error_sleep_time (the SLEEP event: a timer, not a sleep),
 *    smtpd_hard_error_limit ends the session with 421.
 *
 * Threading: a session belongs to one thread at a time.
 * Diagnostics: msg_info() lines as Postfix's smtpd writes them.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "queue/message.h"
#include "queue/queue_id.h"
#include "stages/anvil.h"
#include "stages/smtpd_proto.h"

#define PROTO_OUT_MAX	(64 * 1024)	/* replies buffered before FLUSH */
#define PROTO_ADDR_MAX	256		/* RFC 5321 path limit */
#define PROTO_HELO_MAX	255
#define PROTO_ENVID_MAX	100		/* RFC 3461 */

enum proto_mode {
    M_CMD,			/* reading command lines */
    M_DATA,			/* reading DATA content */
    M_BDAT,			/* reading a BDAT chunk (p->data NULL: skipping) */
    M_WAIT,			/* message submitted, waiting for done */
    M_TLS,			/* handshake in progress */
    M_CLOSED,			/* nothing more is read */
};

/* Commands in Postfix's order (that is also the disconnect line's order). */
enum proto_cmd {
    C_HELO, C_EHLO, C_STARTTLS, C_MAIL, C_RCPT, C_DATA, C_BDAT, C_RSET,
    C_NOOP, C_VRFY, C_ETRN, C_QUIT, C_UNKNOWN, C_COUNT,
};

#define F_LAST	(1<<0)		/* must end a pipelined group (RFC 2920) */

struct SMTPD_PROTO {
    const SMTPD_CONFIG *cfg;
    SMTPD_HOOKS hooks;
    char   *name;
    char   *addr;
    char   *namaddr;		/* "host[ip]" or "host[ip]:port" */
    char   *tls_info;		/* "TLSv1.3 with cipher X (256/256 bits)" */
    char   *local_addr;
    enum smtpd_proto_event ev;
    enum proto_mode mode;
    STR     out;
    STR     line;		/* partial command line */
    bool    line_overflow;	/* dropping a too long line */
    STR     stash;		/* input that came while blocked */
    size_t  stash_off;
    /* session */
    char   *helo;
    bool    esmtp;
    bool    tls;
    bool    greeted;
    bool    anvil_counted;
    bool    slept;
    int     error_count;
    int     sleep_ms;
    const char *where;
    int     cmd_total[C_COUNT];
    int     cmd_ok[C_COUNT];
    /* transaction */
    MESSAGE *msg;
    size_t  rcpt_count;
    int     rcpt_overshoot;
    SMTPD_DATA data;
    bool    data_active;
    bool    bdat_active;	/* between the first BDAT and BDAT LAST */
    bool    bdat_last;
    long long bdat_left;
    long long bdat_chunk;
    char   *bdat_error;		/* reply for a skipped chunk */
    enum proto_cmd pending_cmd;	/* DATA or BDAT, for the counters */
    MESSAGE *ready;
};

static const struct {
    const char *name;		/* as the client writes it, and in "after X" */
    const char *counter;	/* in the disconnect line */
    int     flags;
} proto_cmds[C_COUNT] = {
    [C_HELO] = {"HELO", "helo", F_LAST}, [C_EHLO] = {"EHLO", "ehlo", F_LAST},
    [C_STARTTLS] = {"STARTTLS", "starttls", 0}, [C_MAIL] = {"MAIL", "mail", 0},
    [C_RCPT] = {"RCPT", "rcpt", 0}, [C_DATA] = {"DATA", "data", F_LAST},
    [C_BDAT] = {"BDAT", "bdat", 0}, [C_RSET] = {"RSET", "rset", 0},
    [C_NOOP] = {"NOOP", "noop", F_LAST}, [C_VRFY] = {"VRFY", "vrfy", F_LAST},
    [C_ETRN] = {"ETRN", "etrn", F_LAST}, [C_QUIT] = {"QUIT", "quit", 0},
    [C_UNKNOWN] = {"UNKNOWN", "unknown", 0},
};

/* ---- small helpers ---- */

static void proto_reply(SMTPD_PROTO *p, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void proto_reply(SMTPD_PROTO *p, const char *fmt,...)
{
    va_list ap;

    /* Most replies are fixed text: no printf round for those. */
    if (strchr(fmt, '%') == NULL) {
	str_append(&p->out, fmt, strlen(fmt));
    } else {
	va_start(ap, fmt);
	str_vprintf(&p->out, fmt, ap);
	va_end(ap);
    }
    str_append(&p->out, "\r\n", 2);
}

static const char *proto_queue_id(SMTPD_PROTO *p)
{
    return p->msg && p->msg->queue_id[0] ? p->msg->queue_id : "NOQUEUE";
}

/* Client input for a log line: printable, at most 100 bytes. */
static void proto_printable(STR *out, const char *s, size_t len)
{
    if (len > 100)
	len = 100;
    for (size_t i = 0; i < len; i++) {
	unsigned char c = (unsigned char) s[i];

	str_putc(out, (c >= 0x20 && c < 0x7f) ? (char) c : '?');
    }
}

static void proto_close(SMTPD_PROTO *p)
{
    p->ev = SMTPD_EV_CLOSE;
    p->mode = M_CLOSED;
}

static void proto_reset_transaction(SMTPD_PROTO *p)
{
    message_free(p->msg);
    p->msg = NULL;
    p->rcpt_count = 0;
    p->rcpt_overshoot = 0;
    if (p->data_active) {
	smtpd_data_release(&p->data);
	p->data_active = false;
    }
    p->bdat_active = false;
    p->bdat_last = false;
    mem_free(p->bdat_error);
    p->bdat_error = NULL;
}

static bool proto_valid_utf8(const unsigned char *s, size_t len)
{
    size_t  i = 0;

    while (i < len) {
	unsigned char c = s[i];
	size_t  n;
	uint32_t cp;

	if (c < 0x80) {
	    i++;
	    continue;
	}
	if ((c & 0xe0) == 0xc0)
	    n = 1, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
	    n = 2, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
	    n = 3, cp = c & 0x07;
	else
	    return false;
	if (i + n >= len)
	    return false;
	for (size_t k = 1; k <= n; k++) {
	    if ((s[i + k] & 0xc0) != 0x80)
		return false;
	    cp = (cp << 6) | (s[i + k] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
	    || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
	    return false;
	i += n + 1;
    }
    return true;
}

/* ---- session life ---- */

SMTPD_PROTO *smtpd_proto_new(const SMTPD_CONFIG *cfg, const SMTPD_PEER *peer,
			             const SMTPD_HOOKS *hooks)
{
    SMTPD_PROTO *p = MEM_NEW(SMTPD_PROTO);
    STR     na = STR_INIT;

    p->cfg = cfg;
    if (hooks)
	p->hooks = *hooks;
    p->name = mem_strdup(peer->name);
    p->addr = mem_strdup(peer->addr);
    p->local_addr = peer->local_addr ? mem_strdup(peer->local_addr) : NULL;
    str_printf(&na, "%s[%s]", peer->name, peer->addr);
    if (cfg->client_port_logging)
	str_printf(&na, ":%d", peer->port);
    p->namaddr = str_steal(&na, NULL);
    p->where = "CONNECT";
    p->mode = M_CMD;
    msg_info("connect from %s", p->namaddr);
    return p;
}

void smtpd_proto_greet(SMTPD_PROTO *p, const char *early, size_t len)
{
    const SMTPD_CONFIG *cfg = p->cfg;
    int     count, rate;

    p->greeted = true;
    if (cfg->conn_count_limit > 0 || cfg->conn_rate_limit > 0) {
	anvil_connect(p->addr, cfg->rate_unit_s, &count, &rate);
	p->anvil_counted = true;
	if (cfg->conn_count_limit > 0 && count > cfg->conn_count_limit) {
	    proto_reply(p, "421 4.7.0 %s Error: too many connections from %s",
			cfg->myhostname, p->addr);
	    msg_warn("Connection concurrency limit exceeded: %d from %s for service smtp",
		     count, p->namaddr);
	    proto_close(p);
	    return;
	}
	if (cfg->conn_rate_limit > 0 && rate > cfg->conn_rate_limit) {
	    proto_reply(p, "421 4.7.0 %s Error: too many connections from %s",
			cfg->myhostname, p->addr);
	    msg_warn("Connection rate limit exceeded: %d from %s for service smtp",
		     rate, p->namaddr);
	    proto_close(p);
	    return;
	}
    }
    if (len > 0 && cfg->forbid_unauth_pipelining) {
	STR     shown = STR_INIT;

	proto_printable(&shown, early, len);
	msg_info("improper command pipelining after CONNECT from %s: %s",
		 p->namaddr, STR_DATA(&shown));
	str_release(&shown);
	proto_reply(p, "554 5.5.0 Error: SMTP protocol synchronization");
	proto_close(p);
	return;
    }
    proto_reply(p, "220 %s", cfg->banner);
    if (len > 0)
	smtpd_proto_input(p, early, len);
}

void smtpd_proto_free(SMTPD_PROTO *p)
{
    STR     line = STR_INIT;
    int     total = 0, ok = 0;

    if (p == NULL)
	return;
    str_printf(&line, "disconnect from %s", p->namaddr);
    for (int c = 0; c < C_COUNT; c++) {
	if (p->cmd_total[c] == 0)
	    continue;
	total += p->cmd_total[c];
	ok += p->cmd_ok[c];
	if (p->cmd_ok[c] == p->cmd_total[c])
	    str_printf(&line, " %s=%d", proto_cmds[c].counter, p->cmd_total[c]);
	else
	    str_printf(&line, " %s=%d/%d", proto_cmds[c].counter, p->cmd_ok[c], p->cmd_total[c]);
    }
    if (ok == total)
	str_printf(&line, " commands=%d", total);
    else
	str_printf(&line, " commands=%d/%d", ok, total);
    msg_info("%s", STR_DATA(&line));
    str_release(&line);
    if (p->anvil_counted)
	anvil_disconnect(p->addr);
    proto_reset_transaction(p);
    message_free(p->ready);
    str_release(&p->out);
    str_release(&p->line);
    str_release(&p->stash);
    mem_free(p->helo);
    mem_free(p->tls_info);
    mem_free(p->name);
    mem_free(p->addr);
    mem_free(p->namaddr);
    mem_free(p->local_addr);
    mem_free(p);
}

const char *smtpd_proto_namaddr(SMTPD_PROTO *p)
{
    return p->namaddr;
}

enum smtpd_proto_event smtpd_proto_event(SMTPD_PROTO *p)
{
    return p->ev;
}

STR    *smtpd_proto_output(SMTPD_PROTO *p)
{
    return &p->out;
}

int     smtpd_proto_sleep_ms(SMTPD_PROTO *p)
{
    return p->sleep_ms;
}

bool    smtpd_proto_wants_content(SMTPD_PROTO *p)
{
    return p->ev == SMTPD_EV_INPUT && (p->mode == M_DATA || p->mode == M_BDAT);
}

bool    smtpd_proto_has_input(SMTPD_PROTO *p)
{
    return p->stash_off < STR_LEN(&p->stash);
}

MESSAGE *smtpd_proto_take_message(SMTPD_PROTO *p)
{
    MESSAGE *m = p->ready;

    p->ready = NULL;
    return m;
}

void    smtpd_proto_timeout(SMTPD_PROTO *p)
{
    if (p->mode == M_CLOSED)
	return;
    proto_reply(p, "421 4.4.2 %s Error: timeout exceeded", p->cfg->myhostname);
    msg_info("timeout after %s from %s", p->where, p->namaddr);
    proto_close(p);
}

void    smtpd_proto_eof(SMTPD_PROTO *p)
{
    if (p->mode != M_CLOSED && strcmp(p->where, "END-OF-MESSAGE") != 0)
	msg_info("lost connection after %s from %s", p->where, p->namaddr);
    proto_close(p);
}

/* ---- addresses and ESMTP parameters ---- */

static bool proto_atext(unsigned char c)
{
    if (c >= 0x80)
	return true;			/* UTF-8, checked for SMTPUTF8 later */
    if (isalnum(c))
	return true;
    return c && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

static bool proto_domain_ok(const char *d, size_t len)
{
    if (len == 0 || len > 255)
	return false;
    if (d[0] == '[') {
	char    lit[64];
	unsigned char bin[16];
	const char *s = d + 1;
	size_t  n = len - 2;

	if (len < 3 || d[len - 1] != ']')
	    return false;
	if (n > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
	    if (n - 5 >= sizeof(lit))
		return false;
	    memcpy(lit, s + 5, n - 5);
	    lit[n - 5] = 0;
	    return inet_pton(AF_INET6, lit, bin) == 1;
	}
	if (n >= sizeof(lit))
	    return false;
	memcpy(lit, s, n);
	lit[n] = 0;
	return inet_pton(AF_INET, lit, bin) == 1;
    }
    size_t  label = 0;

    for (size_t i = 0; i < len; i++) {
	unsigned char c = (unsigned char) d[i];

	if (c == '.') {
	    if (label == 0 && !(i == len - 1 && i > 0))
		return false;		/* empty label; one trailing dot is fine */
	    label = 0;
	    continue;
	}
	if (!(isalnum(c) || c == '-' || c == '_' || c >= 0x80))
	    return false;
	if (++label > 63)
	    return false;
    }
    return true;
}

/* Checks a mailbox (no brackets, route already gone): local@domain,
 * "quoted"@domain, or an unqualified local part. */
static bool proto_mailbox_ok(const char *a, size_t len)
{
    size_t  i = 0;

    if (len == 0)
	return false;
    if (a[0] == '"') {
	for (i = 1; i < len && a[i] != '"'; i++) {
	    unsigned char c = (unsigned char) a[i];

	    if (c == '\\') {
		if (++i >= len || a[i] == '\r' || a[i] == '\n' || a[i] == 0)
		    return false;
		continue;
	    }
	    if (c < 0x20 || c == 0x7f)
		return false;
	}
	if (i >= len)
	    return false;
	i++;
    } else {
	while (i < len && a[i] != '@') {
	    if (!proto_atext((unsigned char) a[i]))
		return false;
	    i++;
	}
	if (i == 0)
	    return false;
    }
    if (i == len)
	return true;			/* unqualified */
    if (a[i] != '@')
	return false;
    i++;
    return proto_domain_ok(a + i, len - i);
}

/*
 * Parses what follows "FROM:" / "TO:": "<path>" or a bare path, then
 * parameters. Returns 0 with *addr set (malloc'd, source route removed),
 * -1 for bad command syntax, -2 for a bad address.
 */
static int proto_parse_path(const char *arg, bool null_ok, char **addr,
			            const char **params)
{
    const char *s = arg, *start, *end;

    *addr = NULL;
    while (*s == ' ')
	s++;
    if (*s == '<') {
	bool    quoted = false;

	start = ++s;
	for (; *s; s++) {
	    if (quoted && *s == '\\' && s[1]) {
		s++;
		continue;
	    }
	    if (*s == '"')
		quoted = !quoted;
	    else if (*s == '>' && !quoted)
		break;
	}
	if (*s != '>')
	    return -2;
	end = s++;
	if (*s && *s != ' ')
	    return -2;
    } else {
	start = s;
	while (*s && *s != ' ')
	    s++;
	end = s;
	if (start == end)
	    return -1;
    }
    while (*s == ' ')
	s++;
    *params = s;

    /* Source route: "@a,@b:user@c" -> "user@c". */
    if (start < end && *start == '@') {
	const char *colon = memchr(start, ':', (size_t) (end - start));

	if (colon == NULL)
	    return -2;
	start = colon + 1;
    }
    if ((size_t) (end - start) > PROTO_ADDR_MAX)
	return -2;
    if (start == end) {
	if (!null_ok)
	    return -2;
    } else if (!proto_mailbox_ok(start, (size_t) (end - start)))
	return -2;
    *addr = mem_strndup(start, (size_t) (end - start));
    return 0;
}

static bool proto_has_8bit(const char *s)
{
    for (; *s; s++)
	if ((unsigned char) *s >= 0x80)
	    return true;
    return false;
}

/* RFC 3461 xtext: "+HH" escapes, printable ASCII otherwise. */
static bool proto_xtext_decode(const char *s, size_t len, STR *out, bool utf8)
{
    str_reset(out);
    for (size_t i = 0; i < len; i++) {
	unsigned char c = (unsigned char) s[i];

	if (c == '+') {
	    char    hex[3];

	    if (i + 2 >= len)
		return false;
	    if (!isxdigit((unsigned char) s[i + 1]) || !isxdigit((unsigned char) s[i + 2]))
		return false;
	    hex[0] = s[i + 1];
	    hex[1] = s[i + 2];
	    hex[2] = 0;
	    str_putc(out, (char) strtol(hex, NULL, 16));
	    i += 2;
	} else if ((c > 32 && c < 127 && c != '=') || (utf8 && c >= 0x80)) {
	    str_putc(out, (char) c);
	} else
	    return false;
    }
    return true;
}

/* Next "KEY[=VALUE]" word of the parameters; NULL at the end. */
static const char *proto_next_param(const char **cp, size_t *len)
{
    const char *s = *cp, *start;

    while (*s == ' ')
	s++;
    if (*s == 0)
	return NULL;
    start = s;
    while (*s && *s != ' ')
	s++;
    *len = (size_t) (s - start);
    *cp = s;
    return start;
}

static bool proto_param_is(const char *w, size_t len, const char *key, const char **val)
{
    size_t  kl = strlen(key);

    if (len > kl && w[kl] == '=' && strncasecmp(w, key, kl) == 0) {
	*val = w + kl + 1;
	return true;
    }
    return false;
}

/* ---- commands ---- */

static bool proto_reject_log(SMTPD_PROTO *p, const char *stage, int code,
			             const char *text, const char *rcpt)
{
    STR     line = STR_INIT;

    str_printf(&line, "%s: reject: %s from %s: %d %s; from=<%s>",
	       proto_queue_id(p), stage, p->namaddr, code, text,
	       p->msg ? p->msg->sender : "");
    if (rcpt)
	str_printf(&line, " to=<%s>", rcpt);
    str_printf(&line, " proto=%s", p->esmtp ? "ESMTP" : "SMTP");
    if (p->helo)
	str_printf(&line, " helo=<%s>", p->helo);
    msg_info("%s", STR_DATA(&line));
    str_release(&line);
    return false;
}

static bool proto_helo(SMTPD_PROTO *p, const char *args, bool ehlo)
{
    const SMTPD_CONFIG *cfg = p->cfg;

    if (*args == 0) {
	proto_reply(p, "501 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
	return false;
    }
    /* RFC 5321 4.1.4: a new HELO/EHLO resets the transaction. */
    proto_reset_transaction(p);
    mem_free(p->helo);
    p->helo = mem_strndup(args, strnlen(args, PROTO_HELO_MAX));
    p->esmtp = ehlo;
    if (!ehlo) {
	proto_reply(p, "250 %s", cfg->myhostname);
	return true;
    }
    str_printf(&p->out, "250-%s\r\n", cfg->myhostname);
    str_puts(&p->out, "250-PIPELINING\r\n");
    if (cfg->message_size_limit > 0)
	str_printf(&p->out, "250-SIZE %lld\r\n", cfg->message_size_limit);
    else
	str_puts(&p->out, "250-SIZE\r\n");
    if (!cfg->disable_vrfy)
	str_puts(&p->out, "250-VRFY\r\n");
    str_puts(&p->out, "250-ETRN\r\n");
    if (cfg->tls_ctx && !p->tls && cfg->tls_level != SMTPD_TLS_NONE)
	str_puts(&p->out, "250-STARTTLS\r\n");
    str_puts(&p->out, "250-ENHANCEDSTATUSCODES\r\n");
    str_puts(&p->out, "250-8BITMIME\r\n");
    str_puts(&p->out, "250-DSN\r\n");
    if (cfg->smtputf8_enable)
	str_puts(&p->out, "250-SMTPUTF8\r\n");
    str_puts(&p->out, "250 CHUNKING\r\n");
    return true;
}

static bool proto_mail(SMTPD_PROTO *p, const char *args)
{
    const SMTPD_CONFIG *cfg = p->cfg;
    const char *params, *w, *val;
    char   *sender;
    size_t  wl;
    long long size = 0;
    int     body = BODY_TYPE_NONE, ret = DSN_RET_NONE;
    bool    smtputf8 = false;
    STR     envid = STR_INIT;
    bool    have_envid = false;

    if (cfg->helo_required && p->helo == NULL) {
	proto_reply(p, "503 5.5.1 Error: send HELO/EHLO first");
	return false;
    }
    if (p->msg) {
	proto_reply(p, "503 5.5.1 Error: nested MAIL command");
	return false;
    }
    if (cfg->tls_level == SMTPD_TLS_ENCRYPT && !p->tls) {
	proto_reply(p, "530 5.7.0 Must issue a STARTTLS command first");
	return false;
    }
    if (strncasecmp(args, "FROM:", 5) != 0) {
	proto_reply(p, "501 5.5.4 Syntax: MAIL FROM:<address>");
	return false;
    }
    switch (proto_parse_path(args + 5, true, &sender, &params)) {
    case -1:
	proto_reply(p, "501 5.5.4 Syntax: MAIL FROM:<address>");
	return false;
    case -2:
	proto_reply(p, "501 5.1.7 Bad sender address syntax");
	return false;
    }
    while ((w = proto_next_param(&params, &wl)) != NULL) {
	if (proto_param_is(w, wl, "SIZE", &val)) {
	    size_t  n = wl - 5;

	    if (n == 0 || n > 18 || strspn(val, "0123456789") < n) {
		proto_reply(p, "501 5.5.4 Bad message size syntax");
		goto fail;
	    }
	    size = strtoll(val, NULL, 10);
	} else if (proto_param_is(w, wl, "BODY", &val)) {
	    if (wl - 5 == 4 && strncasecmp(val, "7BIT", 4) == 0)
		body = BODY_TYPE_7BIT;
	    else if (wl - 5 == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
		body = BODY_TYPE_8BITMIME;
	    else {
		proto_reply(p, "501 5.5.4 Unsupported BODY parameter value");
		goto fail;
	    }
	} else if (proto_param_is(w, wl, "RET", &val)) {
	    if (ret != DSN_RET_NONE) {
		proto_reply(p, "501 5.5.4 Bad RET parameter syntax");
		goto fail;
	    }
	    if (wl - 4 == 4 && strncasecmp(val, "FULL", 4) == 0)
		ret = DSN_RET_FULL;
	    else if (wl - 4 == 4 && strncasecmp(val, "HDRS", 4) == 0)
		ret = DSN_RET_HDRS;
	    else {
		proto_reply(p, "501 5.5.4 Bad RET parameter syntax");
		goto fail;
	    }
	} else if (proto_param_is(w, wl, "ENVID", &val)) {
	    if (have_envid || !proto_xtext_decode(val, wl - 6, &envid, false)
		|| STR_LEN(&envid) == 0 || STR_LEN(&envid) > PROTO_ENVID_MAX) {
		proto_reply(p, "501 5.5.4 Bad ENVID parameter syntax");
		goto fail;
	    }
	    have_envid = true;
	} else if (wl == 8 && strncasecmp(w, "SMTPUTF8", 8) == 0 && cfg->smtputf8_enable) {
	    smtputf8 = true;
	} else if (wl > 5 && strncasecmp(w, "AUTH=", 5) == 0) {
	    /* RFC 4954: ignored without authentication, as Postfix does. */
	} else {
	    proto_reply(p, "555 5.5.4 Unsupported option: %.*s", (int) wl, w);
	    goto fail;
	}
    }
    if (!smtputf8 && proto_has_8bit(sender)) {
	proto_reply(p, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
	goto fail;
    }
    if (cfg->message_size_limit > 0 && size > cfg->message_size_limit) {
	proto_reply(p, "552 5.3.4 Message size exceeds fixed limit");
	goto fail;
    }
    if (cfg->msg_rate_limit > 0) {
	int     rate = anvil_mail(p->addr, cfg->rate_unit_s);

	if (rate > cfg->msg_rate_limit) {
	    proto_reply(p, "450 4.7.1 Error: too much mail from %s", p->addr);
	    msg_warn("Message delivery request rate limit exceeded: %d from %s for service smtp",
		     rate, p->namaddr);
	    goto fail;
	}
    }
    if (p->hooks.pressure
	&& p->hooks.pressure(p->hooks.pressure_ctx) >= SMTPD_PRESSURE_FULL) {
	proto_reply(p, "451 4.3.0 Error: queue busy, try again later");
	goto fail;
    }
    MESSAGE *m = message_new();

    mem_free(m->sender);
    m->sender = sender;
    m->client_name = mem_strdup(p->name);
    m->client_addr = mem_strdup(p->addr);
    m->helo = p->helo ? mem_strdup(p->helo) : NULL;
    m->protocol = mem_strdup(!p->esmtp ? "SMTP" : p->tls ? "ESMTPS" : "ESMTP");
    if (p->tls_info)
	m->tls_info = mem_strdup(p->tls_info);
    m->dsn_envid = have_envid ? str_steal(&envid, NULL) : NULL;
    m->dsn_ret = ret;
    m->body_type = body;
    m->smtputf8 = smtputf8;
    p->msg = m;
    p->rcpt_count = 0;
    p->rcpt_overshoot = 0;
    str_release(&envid);
    proto_reply(p, "250 2.1.0 Ok");
    return true;

fail:
    mem_free(sender);
    str_release(&envid);
    return false;
}

static bool proto_rcpt(SMTPD_PROTO *p, const char *args)
{
    const SMTPD_CONFIG *cfg = p->cfg;
    const char *params, *w, *val;
    char   *rcpt;
    size_t  wl;
    int     notify = 0;
    STR     orcpt = STR_INIT;
    bool    have_orcpt = false;

    if (p->msg == NULL) {
	proto_reply(p, "503 5.5.1 Error: need MAIL command");
	return false;
    }
    if (strncasecmp(args, "TO:", 3) != 0) {
	proto_reply(p, "501 5.5.4 Syntax: RCPT TO:<address>");
	return false;
    }
    switch (proto_parse_path(args + 3, false, &rcpt, &params)) {
    case -1:
	proto_reply(p, "501 5.5.4 Syntax: RCPT TO:<address>");
	return false;
    case -2:
	proto_reply(p, "501 5.1.3 Bad recipient address syntax");
	return false;
    }
    if (cfg->recipient_limit > 0 && p->rcpt_count >= (size_t) cfg->recipient_limit) {
	mem_free(rcpt);
	proto_reply(p, "452 4.5.3 Error: too many recipients");
	/* Not an error until the client overshoots by a lot. */
	return p->rcpt_overshoot++ < cfg->recipient_overshoot_limit;
    }
    while ((w = proto_next_param(&params, &wl)) != NULL) {
	if (proto_param_is(w, wl, "NOTIFY", &val)) {
	    size_t  vl = wl - 7, i = 0;

	    if (notify != 0 || vl == 0)
		goto bad_notify;
	    while (i < vl) {
		size_t  n = 0;

		while (i + n < vl && val[i + n] != ',')
		    n++;
		if (n == 5 && strncasecmp(val + i, "NEVER", 5) == 0)
		    notify |= DSN_NOTIFY_NEVER;
		else if (n == 7 && strncasecmp(val + i, "SUCCESS", 7) == 0)
		    notify |= DSN_NOTIFY_SUCCESS;
		else if (n == 7 && strncasecmp(val + i, "FAILURE", 7) == 0)
		    notify |= DSN_NOTIFY_FAILURE;
		else if (n == 5 && strncasecmp(val + i, "DELAY", 5) == 0)
		    notify |= DSN_NOTIFY_DELAY;
		else
		    goto bad_notify;
		i += n + 1;
		if (i == vl && val[vl - 1] == ',')
		    goto bad_notify;
	    }
	    if ((notify & DSN_NOTIFY_NEVER) && notify != DSN_NOTIFY_NEVER)
		goto bad_notify;
	} else if (proto_param_is(w, wl, "ORCPT", &val)) {
	    const char *semi = memchr(val, ';', wl - 6);

	    if (have_orcpt || semi == NULL || semi == val
		|| !proto_xtext_decode(semi + 1, (size_t) (w + wl - semi - 1), &orcpt,
				       p->msg->smtputf8)
		|| STR_LEN(&orcpt) == 0 || STR_LEN(&orcpt) > PROTO_ADDR_MAX) {
		proto_reply(p, "501 5.5.4 Bad ORCPT parameter syntax");
		goto fail;
	    }
	    for (const char *t = val; t < semi; t++)
		if (!isalnum((unsigned char) *t) && *t != '-') {
		    proto_reply(p, "501 5.5.4 Bad ORCPT parameter syntax");
		    goto fail;
		}
	    /* Keep "type;address" with the xtext decoded. */
	    STR     full = STR_INIT;

	    str_append(&full, val, (size_t) (semi - val + 1));
	    str_append(&full, STR_DATA(&orcpt), STR_LEN(&orcpt));
	    str_reset(&orcpt);
	    str_append(&orcpt, STR_DATA(&full), STR_LEN(&full));
	    str_release(&full);
	    have_orcpt = true;
	} else {
	    proto_reply(p, "555 5.5.4 Unsupported option: %.*s", (int) wl, w);
	    goto fail;
	}
    }
    if (!p->msg->smtputf8 && proto_has_8bit(rcpt)) {
	proto_reply(p, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
	goto fail;
    }

    /* Relay control and access restrictions. */
    if (cfg->checks) {
	SMTPD_CHECK_STATE st = {
	    .client_name = p->name, .client_addr = p->addr,
	    .local_addr = p->local_addr, .helo = p->helo,
	    .sender = p->msg->sender, .recipient = rcpt,
	};
	STR     reply = STR_INIT;
	int     code = smtpd_check_rcpt(cfg->checks, &st, &reply);

	if (code != 0) {
	    proto_reply(p, "%d %s", code, STR_DATA(&reply));
	    proto_reject_log(p, "RCPT", code, STR_DATA(&reply), rcpt);
	    str_release(&reply);
	    goto fail;
	}
	str_release(&reply);
    }

    /* The first recipient opens the "queue file": ID and client= line. */
    if (p->msg->queue_id[0] == 0) {
	queue_id_next(p->msg->queue_id);
	p->msg->arrival_us = time_real_us();
	msg_info("%s: client=%s", p->msg->queue_id, p->namaddr);
    }
    RCPT   *r = message_add_rcpt(p->msg, rcpt, rcpt);

    r->dsn_notify = notify;
    if (have_orcpt)
	r->dsn_orcpt = str_steal(&orcpt, NULL);
    p->rcpt_count++;
    mem_free(rcpt);
    str_release(&orcpt);
    proto_reply(p, "250 2.1.5 Ok");
    return true;

bad_notify:
    proto_reply(p, "501 5.5.4 Bad NOTIFY parameter syntax");
fail:
    mem_free(rcpt);
    str_release(&orcpt);
    return false;
}

/* Shared by DATA and BDAT: is there a transaction to put content in? */
static bool proto_need_rcpt(SMTPD_PROTO *p, STR *why)
{
    if (p->msg == NULL) {
	str_puts(why, "503 5.5.1 Error: need RCPT command");
	return false;
    }
    if (p->rcpt_count == 0) {
	str_puts(why, "554 5.5.1 Error: no valid recipients");
	return false;
    }
    return true;
}

static bool proto_data(SMTPD_PROTO *p, const char *args)
{
    STR     why = STR_INIT;

    if (*args) {
	proto_reply(p, "501 5.5.4 Syntax: DATA");
	return false;
    }
    if (p->bdat_active) {
	proto_reply(p, "503 5.5.1 Error: DATA after BDAT");
	return false;
    }
    if (!proto_need_rcpt(p, &why)) {
	proto_reply(p, "%s", STR_DATA(&why));
	str_release(&why);
	return false;
    }
    smtpd_data_init(&p->data, p->cfg->bare_newline, false, p->cfg->message_size_limit);
    p->data_active = true;
    p->mode = M_DATA;
    p->pending_cmd = C_DATA;
    proto_reply(p, "354 End data with <CR><LF>.<CR><LF>");
    return true;
}

/* The message is complete (DATA end or BDAT LAST): check and submit. */
static void proto_end_message(SMTPD_PROTO *p)
{
    enum proto_cmd cmd = p->pending_cmd;

    p->where = "END-OF-MESSAGE";
    if (p->data.too_big) {
	proto_reply(p, "552 5.3.4 Message size exceeds fixed limit");
	p->cmd_total[cmd]++;
	p->error_count++;
	proto_reset_transaction(p);
	p->mode = M_CMD;
	return;
    }
    if (!p->data.bdat && p->data.bare_lf && p->cfg->bare_newline == SMTPD_BARE_LF_REJECT) {
	proto_reply(p, "%d %c.5.2 Error: bare <LF> received",
		    p->cfg->bare_newline_reject_code,
		    p->cfg->bare_newline_reject_code >= 500 ? '5' : '4');
	msg_info("%s: reject: bare <LF> received from %s", proto_queue_id(p), p->namaddr);
	p->cmd_total[cmd]++;
	p->error_count++;
	proto_reset_transaction(p);
	p->mode = M_CMD;
	return;
    }
    p->msg->content = smtpd_data_take(&p->data);
    smtpd_data_release(&p->data);
    p->data_active = false;
    p->bdat_active = false;
    p->ready = p->msg;
    p->msg = NULL;
    p->mode = M_WAIT;
    p->ev = SMTPD_EV_SUBMIT;
}

void smtpd_proto_submit_done(SMTPD_PROTO *p, int code, const char *text)
{
    enum proto_cmd cmd = p->pending_cmd;

    if (p->mode != M_WAIT)
	msg_panic("smtpd_proto_submit_done: no submission outstanding");
    if (code == 250) {
	proto_reply(p, "250 2.0.0 Ok: queued as %s", text);
	p->cmd_ok[cmd]++;
	p->error_count = 0;		/* "without delivering mail" */
    } else {
	if (code < 400 || code > 599)
	    code = 451;
	proto_reply(p, "%d %s", code, text);
	p->error_count++;
    }
    p->cmd_total[cmd]++;
    proto_reset_transaction(p);
    p->mode = M_CMD;
    p->ev = SMTPD_EV_INPUT;
    smtpd_proto_resume(p);
}

/* BDAT n [LAST]. Returns -1 when the chunk size cannot be known. */
static int proto_bdat(SMTPD_PROTO *p, const char *args)
{
    const char *s = args;
    long long n = 0;
    size_t  digits = 0;
    bool    last = false;
    STR     why = STR_INIT;

    while (isdigit((unsigned char) *s) && digits < 19) {
	n = n * 10 + (*s++ - '0');
	digits++;
    }
    if (digits == 0 || isdigit((unsigned char) *s) || (*s && *s != ' ')) {
	proto_reply(p, "501 5.5.4 Syntax: BDAT count [LAST]");
	return -1;
    }
    while (*s == ' ')
	s++;
    if (strncasecmp(s, "LAST", 4) == 0 && (s[4] == 0 || s[4] == ' ')) {
	last = true;
	s += 4;
	while (*s == ' ')
	    s++;
    }
    p->bdat_left = n;
    p->bdat_chunk = n;
    p->bdat_last = last;
    p->mode = M_BDAT;
    p->pending_cmd = C_BDAT;
    if (*s) {
	mem_free(p->bdat_error);
	p->bdat_error = mem_strdup("501 5.5.4 Syntax: BDAT count [LAST]");
    } else if (p->bdat_error == NULL && !proto_need_rcpt(p, &why)) {
	p->bdat_error = str_steal(&why, NULL);
    } else if (p->bdat_error == NULL && !p->bdat_active) {
	smtpd_data_init(&p->data, p->cfg->bare_newline, true, p->cfg->message_size_limit);
	p->data_active = true;
	p->bdat_active = true;
    }
    str_release(&why);
    return 0;
}

/* A BDAT chunk has been read (or skipped). */
static void proto_bdat_chunk_done(SMTPD_PROTO *p)
{
    p->mode = M_CMD;
    if (p->bdat_error) {
	proto_reply(p, "%s", p->bdat_error);
	p->cmd_total[C_BDAT]++;
	p->error_count++;
	if (p->bdat_last || !p->bdat_active) {
	    /* The error ends the BDAT sequence (or there was none). */
	    if (p->bdat_active)
		proto_reset_transaction(p);
	    mem_free(p->bdat_error);
	    p->bdat_error = NULL;
	}
	return;
    }
    if (p->data.too_big) {
	/* Answer now; later chunks of this message get the same answer. */
	p->bdat_error = mem_strdup("552 5.3.4 Message size exceeds fixed limit");
	if (p->data_active) {
	    smtpd_data_release(&p->data);
	    p->data_active = false;
	}
	proto_bdat_chunk_done(p);
	return;
    }
    if (!p->bdat_last) {
	proto_reply(p, "250 2.0.0 Ok: %lld bytes", p->bdat_chunk);
	p->cmd_total[C_BDAT]++;
	p->cmd_ok[C_BDAT]++;
	return;
    }
    smtpd_data_finish(&p->data);
    proto_end_message(p);
}

static bool proto_rset(SMTPD_PROTO *p, const char *args)
{
    if (*args) {
	proto_reply(p, "501 5.5.4 Syntax: RSET");
	return false;
    }
    proto_reset_transaction(p);
    proto_reply(p, "250 2.0.0 Ok");
    return true;
}

static bool proto_vrfy(SMTPD_PROTO *p, const char *args)
{
    if (p->cfg->disable_vrfy) {
	proto_reply(p, "502 5.5.1 VRFY command is disabled");
	return false;
    }
    if (*args == 0) {
	proto_reply(p, "501 5.5.4 Syntax: VRFY address");
	return false;
    }
    proto_reply(p, "252 2.0.0 %s", args);
    return true;
}

static bool proto_etrn(SMTPD_PROTO *p, const char *args)
{
    if (p->cfg->helo_required && p->helo == NULL) {
	proto_reply(p, "503 5.5.1 Error: send HELO/EHLO first");
	return false;
    }
    if (p->msg) {
	proto_reply(p, "503 5.5.1 Error: MAIL transaction in progress");
	return false;
    }
    if (*args == 0 || strchr(args, ' ')) {
	proto_reply(p, "500 5.5.2 Syntax: ETRN domain");
	return false;
    }
    if (!proto_domain_ok(args[0] == '@' || args[0] == '#' ? args + 1 : args,
			 strlen(args) - (args[0] == '@' || args[0] == '#'))
	&& args[0] != '#') {
	proto_reply(p, "501 5.1.2 Error: invalid parameter syntax");
	return false;
    }
    int     r = p->hooks.etrn ? p->hooks.etrn(p->hooks.etrn_ctx, args) : -1;

    if (r == 0) {
	proto_reply(p, "250 Queuing started");
	return true;
    }
    if (r > 0)
	proto_reply(p, "459 4.7.1 <%s>: service unavailable", args);
    else
	proto_reply(p, "458 4.3.0 Unable to queue messages");
    return false;
}

static bool proto_starttls(SMTPD_PROTO *p, const char *args)
{
    if (*args) {
	proto_reply(p, "501 5.5.4 Syntax: STARTTLS");
	return false;
    }
    if (p->tls) {
	proto_reply(p, "554 5.5.1 Error: TLS already active");
	return false;
    }
    if (p->cfg->tls_ctx == NULL || p->cfg->tls_level == SMTPD_TLS_NONE) {
	proto_reply(p, "502 5.5.1 Error: command not implemented");
	return false;
    }
    proto_reply(p, "220 2.0.0 Ready to start TLS");
    p->mode = M_TLS;
    p->ev = SMTPD_EV_STARTTLS;
    return true;
}

void smtpd_proto_tls_done(SMTPD_PROTO *p, const char *tls_info)
{
    /* RFC 3207: forget everything learned before the handshake. */
    proto_reset_transaction(p);
    mem_free(p->helo);
    p->helo = NULL;
    p->esmtp = false;
    p->tls = true;
    p->mode = M_CMD;
    p->ev = SMTPD_EV_INPUT;
    mem_free(p->tls_info);
    p->tls_info = mem_strdup(tls_info);	/* for cleanup's Received: header */
}

void smtpd_proto_tls_failed(SMTPD_PROTO *p, const char *reason)
{
    if (strcmp(reason, "timeout") == 0) {
	msg_info("timeout after STARTTLS from %s", p->namaddr);
    } else {
	msg_info("SSL_accept error from %s: %s", p->namaddr, reason);
	msg_info("lost connection after STARTTLS from %s", p->namaddr);
    }
    proto_close(p);
}

/* ---- the command loop ---- */

static const char *proto_forbidden[] = {"GET", "POST", "CONNECT", "HEAD", "PUT", NULL};

/*
 * One command line (without its line end). rest/rest_len: input that
 * followed it, for the pipelining rule.
 */
static void proto_command(SMTPD_PROTO *p, const char *line, size_t len, bool crlf,
			          const char *rest, size_t rest_len)
{
    const SMTPD_CONFIG *cfg = p->cfg;
    char   *copy;
    char   *args;
    size_t  vl;
    int     c;
    bool    ok;

    if (p->error_count >= cfg->hard_error_limit) {
	proto_reply(p, "421 4.7.0 %s Error: too many errors", cfg->myhostname);
	msg_info("too many errors after %s from %s", p->where, p->namaddr);
	proto_close(p);
	return;
    }
    p->slept = false;
    if (!crlf && cfg->bare_newline == SMTPD_BARE_LF_REJECT) {
	proto_reply(p, "%d %c.5.2 Error: bare <LF> received",
		    cfg->bare_newline_reject_code,
		    cfg->bare_newline_reject_code >= 500 ? '5' : '4');
	p->error_count++;
	return;
    }
    if (memchr(line, 0, len) != NULL) {
	proto_reply(p, "500 5.5.2 Error: bad syntax");
	p->cmd_total[C_UNKNOWN]++;
	p->error_count++;
	return;
    }
    if (cfg->smtputf8_enable && !proto_valid_utf8((const unsigned char *) line, len)) {
	proto_reply(p, "500 5.5.2 Error: bad UTF-8 syntax");
	p->error_count++;
	return;
    }
    while (len > 0 && (line[0] == ' ' || line[0] == '\t'))
	line++, len--;
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
	len--;
    if (len == 0) {
	proto_reply(p, "500 5.5.2 Error: bad syntax");
	p->error_count++;
	return;
    }
    copy = mem_strndup(line, len);
    for (vl = 0; copy[vl] && copy[vl] != ' ' && copy[vl] != '\t'; vl++)
	 /* verb */ ;
    args = copy + vl;
    if (*args)
	*args++ = 0;
    while (*args == ' ' || *args == '\t')
	args++;

    for (int i = 0; proto_forbidden[i]; i++)
	if (strcasecmp(copy, proto_forbidden[i]) == 0) {
	    STR     shown = STR_INIT;

	    proto_printable(&shown, line, len);
	    msg_warn("non-SMTP command from %s: %s", p->namaddr, STR_DATA(&shown));
	    str_release(&shown);
	    proto_reply(p, "221 2.7.0 Error: I can break rules, too. Goodbye.");
	    proto_close(p);
	    mem_free(copy);
	    return;
	}
    for (c = 0; c < C_UNKNOWN; c++)
	if (strcasecmp(copy, proto_cmds[c].name) == 0)
	    break;
    if (c == C_UNKNOWN) {
	p->where = "UNKNOWN";
	proto_reply(p, "502 5.5.2 Error: command not recognized");
	p->cmd_total[C_UNKNOWN]++;
	p->error_count++;
	mem_free(copy);
	return;
    }
    p->where = proto_cmds[c].name;
    switch (c) {
    case C_HELO:
	ok = proto_helo(p, args, false);
	break;
    case C_EHLO:
	ok = proto_helo(p, args, true);
	break;
    case C_STARTTLS:
	ok = proto_starttls(p, args);
	break;
    case C_MAIL:
	ok = proto_mail(p, args);
	break;
    case C_RCPT:
	ok = proto_rcpt(p, args);
	break;
    case C_DATA:
	ok = proto_data(p, args);
	if (ok) {
	    mem_free(copy);
	    goto pipelining;		/* counted when the message ends */
	}
	break;
    case C_BDAT:
	if (proto_bdat(p, args) < 0) {
	    p->cmd_total[C_BDAT]++;
	    p->error_count++;
	    proto_close(p);		/* the chunk cannot be skipped */
	} else if (p->bdat_left == 0)
	    proto_bdat_chunk_done(p);	/* BDAT 0 [LAST] */
	mem_free(copy);
	return;				/* counted when the chunk is read */
    case C_RSET:
	ok = proto_rset(p, args);
	break;
    case C_NOOP:
	proto_reply(p, "250 2.0.0 Ok");
	ok = true;
	break;
    case C_VRFY:
	ok = proto_vrfy(p, args);
	break;
    case C_ETRN:
	ok = proto_etrn(p, args);
	break;
    case C_QUIT:
    default:
	proto_reply(p, "221 2.0.0 Bye");
	p->cmd_total[C_QUIT]++;
	p->cmd_ok[C_QUIT]++;
	proto_close(p);
	mem_free(copy);
	return;
    }
    mem_free(copy);
    p->cmd_total[c]++;
    if (ok)
	p->cmd_ok[c]++;
    else
	p->error_count++;

pipelining:
    if (c == C_STARTTLS || p->mode == M_CLOSED)
	return;
    if (rest_len > 0 && cfg->forbid_unauth_pipelining
	&& ((proto_cmds[c].flags & F_LAST) || !p->esmtp)) {
	STR     shown = STR_INIT;

	proto_printable(&shown, rest, rest_len);
	msg_info("improper command pipelining after %s from %s: %s",
		 proto_cmds[c].name, p->namaddr, STR_DATA(&shown));
	str_release(&shown);
	proto_reply(p, "554 5.5.0 Error: SMTP protocol synchronization");
	proto_close(p);
    }
}

/* Handles input until blocked; returns the bytes consumed. */
static size_t proto_run(SMTPD_PROTO *p, const char *buf, size_t len)
{
    const SMTPD_CONFIG *cfg = p->cfg;
    size_t  i = 0;

    while (i < len && p->ev == SMTPD_EV_INPUT) {
	switch (p->mode) {
	case M_DATA:{
		size_t  n = smtpd_data_feed(&p->data, buf + i, len - i);

		i += n;
		if (p->data.done)
		    proto_end_message(p);
		break;
	    }
	case M_BDAT:{
		size_t  n = len - i;

		if ((long long) n > p->bdat_left)
		    n = (size_t) p->bdat_left;
		if (p->bdat_error == NULL && p->data_active)
		    smtpd_data_feed(&p->data, buf + i, n);
		i += n;
		p->bdat_left -= (long long) n;
		if (p->bdat_left == 0)
		    proto_bdat_chunk_done(p);
		break;
	    }
	case M_CMD:{
		const char *nl = memchr(buf + i, '\n', len - i);

		if (p->error_count >= cfg->soft_error_limit && !p->slept
		    && cfg->error_sleep_ms > 0) {
		    p->slept = true;
		    p->sleep_ms = cfg->error_sleep_ms;
		    p->ev = SMTPD_EV_SLEEP;
		    break;
		}
		if (nl == NULL) {
		    size_t  n = len - i;

		    if (!p->line_overflow
			&& STR_LEN(&p->line) + n > (size_t) cfg->line_length_limit) {
			p->line_overflow = true;
			str_release(&p->line);
		    }
		    if (!p->line_overflow)
			str_append(&p->line, buf + i, n);
		    i = len;
		    break;
		}
		size_t  seg = (size_t) (nl - (buf + i));
		const char *line = buf + i;
		size_t  llen = seg;

		i += seg + 1;
		if (p->line_overflow
		    || STR_LEN(&p->line) + seg > (size_t) cfg->line_length_limit + 1) {
		    p->line_overflow = false;
		    str_release(&p->line);
		    proto_reply(p, "500 5.5.0 Error: line too long");
		    p->error_count++;
		    break;
		}
		if (STR_LEN(&p->line) > 0) {
		    str_append(&p->line, line, seg);
		    line = STR_DATA(&p->line);
		    llen = STR_LEN(&p->line);
		}
		bool    crlf = llen > 0 && line[llen - 1] == '\r';

		if (crlf)
		    llen--;
		proto_command(p, line, llen, crlf, buf + i, len - i);
		str_reset(&p->line);
		if (STR_LEN(&p->line) == 0 && p->line.cap > 4096)
		    str_release(&p->line);
		if (p->mode == M_TLS) {
		    /* CVE-2011-0411: nothing sent before the handshake counts. */
		    i = len;
		    str_release(&p->line);
		}
		break;
	    }
	default:
	    i = len;			/* closed: ignore */
	    break;
	}
	if (p->ev == SMTPD_EV_INPUT && STR_LEN(&p->out) > PROTO_OUT_MAX)
	    p->ev = SMTPD_EV_FLUSH;
    }
    return i;
}

void smtpd_proto_input(SMTPD_PROTO *p, const char *buf, size_t len)
{
    size_t  n = 0;

    if (p->mode == M_CLOSED || p->mode == M_TLS)
	return;
    if (p->ev == SMTPD_EV_INPUT && !smtpd_proto_has_input(p))
	n = proto_run(p, buf, len);
    if (n < len && p->mode != M_CLOSED && p->mode != M_TLS) {
	if (p->stash_off > 0 && p->stash_off == STR_LEN(&p->stash)) {
	    str_reset(&p->stash);
	    p->stash_off = 0;
	}
	str_append(&p->stash, buf + n, len - n);
    }
}

void smtpd_proto_resume(SMTPD_PROTO *p)
{
    if (p->ev == SMTPD_EV_FLUSH || p->ev == SMTPD_EV_SLEEP)
	p->ev = SMTPD_EV_INPUT;
    if (p->ev != SMTPD_EV_INPUT || !smtpd_proto_has_input(p))
	return;
    /* Run from a private copy: proto_run may stash again. */
    STR     kept = p->stash;
    size_t  off = p->stash_off;

    str_init(&p->stash);
    p->stash_off = 0;
    size_t  n = proto_run(p, kept.data + off, kept.len - off);

    if (off + n < kept.len && p->mode != M_CLOSED && p->mode != M_TLS)
	str_append(&p->stash, kept.data + off + n, kept.len - off - n);
    str_release(&kept);
}
