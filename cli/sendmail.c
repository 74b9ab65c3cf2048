/*
 * sendmail.c - sendmail(1), mailq(1): the Sendmail-compatible interface,
 * as Postfix's sendmail command behaves in common use.
 *
 * Usage: sendmail [options] [recipient ...]
 *   (default, -bm)  read a message on stdin and queue it: the message goes
 *                   as a maildrop stream (stages/maildrop.h) to
 *                   $command_directory/postdrop, which puts it in the
 *                   maildrop; the engine's pickup feeds it to cleanup.
 *   -t              recipients from To:, Cc:, Bcc: (Resent-* when present)
 *                   as well; cleanup extracts them and removes Bcc:
 *   -f sender, -r sender   envelope sender (default: the login name)
 *   -F full_name    for a missing From: (default: $NAME, else the GECOS name)
 *   -i, -oi         a line with a single "." does not end the input
 *   -bs             SMTP on stdin/stdout: the smtpd protocol engine
 *                   (stages/smtpd_proto.h) in a stdin/stdout loop; each
 *                   message goes through postdrop as above
 *   -bp             = mailq: exec postqueue -p
 *   -bi, -I         = newaliases: exec newaliases
 *   -bd, -bl        exec postfix start
 *   -q              exec postqueue -f; -qRsite: postqueue -s site;
 *                   -qIid: postqueue -i id; -qINTERVAL: postqueue -f
 *   -C file_or_dir  configuration directory (main.cf's directory), as
 *                   -c for the other commands; MAIL_CONFIG is honoured
 *   Accepted and ignored, as Postfix ignores them or as Sluice does not
 *   carry them through the maildrop yet: -B type (8BITMIME|7BIT, checked),
 *   -N dsn, -R ret, -V envid, -X log, -L label, -O opt, -h hops, -A, -G,
 *   -U, -c, -e, -m, -n, -o* other than -oi, -p, -v, -x.
 *   -bv             address verification: no message is read; a probe
 *                   ("From: sender", "Subject: probe", "To: recipients")
 *                   goes to the maildrop flagged MAILDROP_FLAG_VERIFY; the
 *                   engine mails the sender a Mail Delivery Status Report
 *                   (deliverable / undeliverable per recipient, see
 *                   stages/trace.h) and delivers nothing. Not with -t.
 * Invoked as "mailq" it acts as -bp, as "newaliases" as -bi.
 *
 * Input: lines end in LF or CRLF (trailing CRs are removed, as Postfix's
 * sendmail_fix_line_endings = always), leading "From " lines are dropped,
 * then every line is stored as canonical CRLF. Recipient arguments are
 * address lists ("a@x, Name <b@y>"), as Postfix parses them.
 *
 * Exit status (sysexits.h, as Postfix): 0 queued; EX_USAGE bad options or
 * no recipients; EX_DATAERR message larger than message_size_limit;
 * EX_UNAVAILABLE postdrop or a helper cannot be run; EX_TEMPFAIL postdrop
 * failed (no maildrop yet, disk full); EX_OSERR no login name; EX_CONFIG
 * an unreadable main.cf. Diagnostics: "sendmail: fatal: user(uid): text".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "queue/message.h"
#include "stages/maildrop.h"
#include "stages/smtpd.h"
#include "stages/smtpd_proto.h"

enum sm_mode { SM_ENQUEUE, SM_SMTP, SM_MAILQ, SM_NEWALIASES, SM_DAEMON, SM_FLUSH };

#define SM_CHUNK	65536

static const char *sm_prog = "sendmail";
static const char *sm_config_dir;
static const char *sm_user = "";	/* login name, for messages */
static long sm_uid;

static void __attribute__((format(printf, 2, 3), noreturn)) sm_fatal(int status,
							        const char *fmt,...)
{
    va_list ap;

    fprintf(stderr, "%s: fatal: ", sm_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

static void sm_usage(void)
{
    sm_fatal(EX_USAGE, "usage: %s [-bdimpqsv] [-C config] [-f sender] [-F full_name] "
	     "[-it] [recipient ...]", sm_prog);
}

/* ---- addresses ---- */

/* "a@x, Name <b@y>, (comment) c@z" -> each address, as internal text. */
static size_t sm_parse_addrs(const char *text, char ***list, size_t *n)
{
    size_t  found = 0;
    const char *p = text;

    while (*p) {
	STR     item = STR_INIT, angle = STR_INIT;
	bool    in_angle = false, has_angle = false;
	int     depth = 0;

	for (; *p && !(*p == ',' && depth == 0 && !in_angle); p++) {
	    if (*p == '"') {			/* quoted string, kept */
		STR    *dst = in_angle ? &angle : &item;

		str_putc(dst, *p++);
		while (*p && *p != '"') {
		    if (*p == '\\' && p[1])
			str_putc(dst, *p++);
		    str_putc(dst, *p++);
		}
		if (*p)
		    str_putc(dst, '"');
		else
		    break;
		continue;
	    }
	    if (*p == '(' && !in_angle) {
		depth++;
		continue;
	    }
	    if (*p == ')' && depth > 0) {
		depth--;
		continue;
	    }
	    if (depth > 0)
		continue;
	    if (*p == '<') {
		in_angle = has_angle = true;
		str_reset(&angle);
		continue;
	    }
	    if (*p == '>' && in_angle) {
		in_angle = false;
		continue;
	    }
	    str_putc(in_angle ? &angle : &item, *p);
	}
	if (*p == ',')
	    p++;

	const char *a = has_angle ? STR_DATA(&angle) : STR_DATA(&item);
	size_t  len;

	while (*a == ' ' || *a == '\t')
	    a++;
	len = strlen(a);
	while (len > 0 && (a[len - 1] == ' ' || a[len - 1] == '\t'))
	    len--;
	if (len > 0 || has_angle) {
	    *list = mem_realloc(*list, (*n + 1) * sizeof(char *));
	    (*list)[(*n)++] = mem_strndup(a, len);
	    found++;
	}
	str_release(&item);
	str_release(&angle);
    }
    return found;
}

/* ---- postdrop ---- */

typedef struct SM_DROP {
    pid_t   pid;
    int     fd;
    STR     buf;
} SM_DROP;

static void sm_drop_flush(SM_DROP *d)
{
    size_t  off = 0;

    while (off < STR_LEN(&d->buf)) {
	ssize_t n = write(d->fd, d->buf.data + off, STR_LEN(&d->buf) - off);

	if (n < 0 && errno == EINTR)
	    continue;
	if (n <= 0) {
	    int     saved = errno;
	    int     status;

	    /* postdrop went away; its own message says why. */
	    close(d->fd);
	    waitpid(d->pid, &status, 0);
	    sm_fatal(EX_TEMPFAIL, "%s(%ld): error writing queue file: %s", sm_user, sm_uid,
		     strerror(saved));
	}
	off += (size_t) n;
    }
    str_reset(&d->buf);
}

static void sm_drop_put(SM_DROP *d, int type, const void *data, size_t len)
{
    maildrop_put(&d->buf, type, data, len);
    if (STR_LEN(&d->buf) >= SM_CHUNK)
	sm_drop_flush(d);
}

static void sm_drop_open(SM_DROP *d)
{
    STR     path = STR_INIT;
    int     pfd[2];
    char   *argv[5];
    int     argc = 0;

    str_printf(&path, "%s/postdrop", param_str(P_COMMAND_DIRECTORY));
    if (access(STR_DATA(&path), X_OK) < 0)
	sm_fatal(EX_UNAVAILABLE, "%s(%ld): unable to execute %s: %s", sm_user, sm_uid,
		 STR_DATA(&path), strerror(errno));
    if (pipe2(pfd, O_CLOEXEC) < 0)
	sm_fatal(EX_OSERR, "pipe: %s", strerror(errno));
    argv[argc++] = (char *) "postdrop";
    /* A setgid postdrop accepts only the compiled-in directory. */
    if (strcmp(sm_config_dir, SLUICE_SYSCONFDIR) != 0) {
	argv[argc++] = (char *) "-c";
	argv[argc++] = (char *) sm_config_dir;
    }
    argv[argc] = NULL;
    fflush(NULL);
    if ((d->pid = fork()) < 0)
	sm_fatal(EX_OSERR, "fork: %s", strerror(errno));
    if (d->pid == 0) {
	if (dup2(pfd[0], 0) < 0)
	    _exit(EX_OSERR);
	execv(STR_DATA(&path), argv);
	fprintf(stderr, "%s: fatal: %s(%ld): unable to execute %s: %s\n", sm_prog, sm_user,
		sm_uid, STR_DATA(&path), strerror(errno));
	_exit(EX_UNAVAILABLE);
    }
    close(pfd[0]);
    d->fd = pfd[1];
    str_init(&d->buf);
    maildrop_start(&d->buf);
    str_release(&path);
}

/* Gives up on the message: postdrop removes its temporary file. */
static void sm_drop_abort(SM_DROP *d)
{
    int     status;

    kill(d->pid, SIGTERM);
    close(d->fd);
    waitpid(d->pid, &status, 0);
    str_release(&d->buf);
}

/* 0 when postdrop queued the message, else its exit status (or 128+sig). */
static int sm_drop_close(SM_DROP *d)
{
    int     status;

    sm_drop_put(d, MAILDROP_REC_END, "", 0);
    sm_drop_flush(d);
    close(d->fd);
    str_release(&d->buf);
    while (waitpid(d->pid, &status, 0) < 0)
	if (errno != EINTR)
	    return EX_OSERR;
    if (WIFEXITED(status))
	return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void sm_drop_envelope(SM_DROP *d, const char *sender, const char *fullname,
			             int flags, char **rcpt, size_t nrcpt)
{
    char    num[32];

    snprintf(num, sizeof(num), "%lld", (long long) time_real_us());
    sm_drop_put(d, MAILDROP_REC_TIME, num, strlen(num));
    sm_drop_put(d, MAILDROP_REC_SENDER, sender, strlen(sender));
    if (fullname && *fullname)
	sm_drop_put(d, MAILDROP_REC_FULLNAME, fullname, strlen(fullname));
    if (flags) {
	snprintf(num, sizeof(num), "%d", flags);
	sm_drop_put(d, MAILDROP_REC_FLAGS, num, strlen(num));
    }
    for (size_t i = 0; i < nrcpt; i++)
	sm_drop_put(d, MAILDROP_REC_RCPT, rcpt[i], strlen(rcpt[i]));
}

/* Envelope fields must fit the maildrop format; say so plainly. */
static void sm_check_field(const char *what, const char *value)
{
    if (strlen(value) > MAILDROP_MAX_FIELD)
	sm_fatal(EX_USAGE, "%s(%ld): %s is longer than %d bytes", sm_user, sm_uid, what,
		 MAILDROP_MAX_FIELD);
    if (strpbrk(value, "\r\n"))
	sm_fatal(EX_USAGE, "%s(%ld): %s contains a line break", sm_user, sm_uid, what);
}

/* ---- enqueue (the default mode) ---- */

static bool sm_is_rcpt_header(const char *line, size_t len)
{
    static const char *const names[] = {"to", "cc", "bcc", "resent-to", "resent-cc",
    "resent-bcc", NULL};
    const char *colon = memchr(line, ':', len);

    if (colon == NULL)
	return false;
    size_t  nlen = (size_t) (colon - line);

    while (nlen > 0 && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
	nlen--;
    for (int i = 0; names[i]; i++)
	if (strlen(names[i]) == nlen && strncasecmp(line, names[i], nlen) == 0)
	    return true;
    return false;
}

static bool sm_has_text(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
	if (p[i] != ' ' && p[i] != '\t')
	    return true;
    return false;
}

static void sm_enqueue(const char *sender, const char *fullname, bool extract, bool dot_ends,
		               char **rcpt, size_t nrcpt)
{
    SM_DROP d;
    STR     chunk = STR_INIT;
    char   *line = NULL;
    size_t  cap = 0;
    ssize_t got;
    long long limit = param_int(P_MESSAGE_SIZE_LIMIT), total = 0;
    bool    skip_from = true, in_headers = true, rcpt_hdr = false, hdr_rcpt_found = false;
    int     status;

    if (!extract && nrcpt == 0)
	sm_fatal(EX_USAGE, "Recipient addresses must be specified on the command line or "
		 "via the -t option");
    sm_check_field("the sender address", sender);
    if (fullname)
	sm_check_field("the full name", fullname);
    for (size_t i = 0; i < nrcpt; i++)
	sm_check_field("a recipient address", rcpt[i]);
    if (nrcpt > MAILDROP_MAX_RCPTS)
	sm_fatal(EX_USAGE, "%s(%ld): more than %d recipients", sm_user, sm_uid,
		 MAILDROP_MAX_RCPTS);

    sm_drop_open(&d);
    sm_drop_envelope(&d, sender, fullname, extract ? MAILDROP_FLAG_EXTRACT : 0, rcpt, nrcpt);
    while ((got = getline(&line, &cap, stdin)) > 0) {
	size_t  len = (size_t) got;

	if (line[len - 1] == '\n')
	    len--;
	while (len > 0 && line[len - 1] == '\r')
	    len--;
	if (skip_from) {
	    size_t  gt = 0;

	    while (gt < len && line[gt] == '>')
		gt++;
	    if (len - gt >= 5 && memcmp(line + gt, "From ", 5) == 0)
		continue;
	    skip_from = false;
	}
	if (dot_ends && len == 1 && line[0] == '.')
	    break;
	if (in_headers) {
	    if (len == 0) {
		in_headers = false;
	    } else if (line[0] == ' ' || line[0] == '\t') {
		if (rcpt_hdr && sm_has_text(line, len))
		    hdr_rcpt_found = true;
	    } else {
		const char *colon = memchr(line, ':', len);

		rcpt_hdr = sm_is_rcpt_header(line, len);
		if (rcpt_hdr && sm_has_text(colon + 1, len - (size_t) (colon + 1 - line)))
		    hdr_rcpt_found = true;
	    }
	}
	total += (long long) len + 2;
	if (limit > 0 && total > limit) {
	    sm_drop_abort(&d);
	    sm_fatal(EX_DATAERR, "%s(%ld): message file too big", sm_user, sm_uid);
	}
	str_append(&chunk, line, len);
	str_puts(&chunk, "\r\n");
	if (STR_LEN(&chunk) >= SM_CHUNK) {
	    sm_drop_put(&d, MAILDROP_REC_CONTENT, chunk.data, STR_LEN(&chunk));
	    str_reset(&chunk);
	}
    }
    if (ferror(stdin)) {
	sm_drop_abort(&d);
	sm_fatal(EX_DATAERR, "%s(%ld): error reading input: %s", sm_user, sm_uid,
		 strerror(errno));
    }
    free(line);
    if (extract && nrcpt == 0 && !hdr_rcpt_found) {
	sm_drop_abort(&d);
	sm_fatal(EX_USAGE, "%s(%ld): No recipient addresses found in message header",
		 sm_user, sm_uid);
    }
    if (STR_LEN(&chunk))
	sm_drop_put(&d, MAILDROP_REC_CONTENT, chunk.data, STR_LEN(&chunk));
    str_release(&chunk);
    if ((status = sm_drop_close(&d)) != 0)
	sm_fatal(EX_TEMPFAIL, "%s(%ld): the message was not queued (postdrop exit status %d)",
		 sm_user, sm_uid, status);
}

/* ---- -bv: address verification ---- */

/*
 * As Postfix's sendmail -bv: stdin is not read; the probe's content names
 * the sender and the recipients, the envelope carries the verify flag, and
 * the report goes to the sender.
 */
static void sm_verify(const char *sender, const char *fullname, bool extract,
		              char **rcpt, size_t nrcpt)
{
    SM_DROP d;
    STR     content = STR_INIT;
    int     status;

    if (extract)
	sm_fatal(EX_USAGE, "%s(%ld): -t option cannot be used with -bv", sm_user, sm_uid);
    if (nrcpt == 0)
	sm_fatal(EX_USAGE, "Recipient addresses must be specified on the command line or "
		 "via the -t option");
    sm_check_field("the sender address", sender);
    if (fullname)
	sm_check_field("the full name", fullname);
    for (size_t i = 0; i < nrcpt; i++)
	sm_check_field("a recipient address", rcpt[i]);
    if (nrcpt > MAILDROP_MAX_RCPTS)
	sm_fatal(EX_USAGE, "%s(%ld): more than %d recipients", sm_user, sm_uid,
		 MAILDROP_MAX_RCPTS);
    if (*sender)
	str_printf(&content, "From: %s\r\n", sender);
    str_puts(&content, "Subject: probe\r\nTo:");
    for (size_t i = 0; i < nrcpt; i++)
	str_printf(&content, "%s%s%s\r\n", i ? "\t" : " ", rcpt[i], i + 1 < nrcpt ? "," : "");
    str_puts(&content, "\r\n");

    sm_drop_open(&d);
    sm_drop_envelope(&d, sender, fullname, MAILDROP_FLAG_VERIFY, rcpt, nrcpt);
    sm_drop_put(&d, MAILDROP_REC_CONTENT, content.data, STR_LEN(&content));
    str_release(&content);
    if ((status = sm_drop_close(&d)) != 0)
	sm_fatal(EX_TEMPFAIL, "%s(%ld): the message was not queued (postdrop exit status %d)",
		 sm_user, sm_uid, status);
    printf("Mail Delivery Status Report will be mailed to <%s>.\n", sender);
    fflush(stdout);
}

/* ---- -bs: SMTP on stdin/stdout ---- */

static void sm_quiet_sink(enum msg_level level, const char *service, const char *text)
{
    /* The session's log lines would mix with nothing useful on stderr. */
    if (level != MSG_INFO)
	msg_sink_stderr(level, service, text);
}

static int sm_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
	ssize_t n = write(fd, p, len);

	if (n < 0 && errno == EINTR)
	    continue;
	if (n <= 0)
	    return -1;
	p += n;
	len -= (size_t) n;
    }
    return 0;
}

static void sm_smtp_submit(SMTPD_PROTO *p, MESSAGE *m)
{
    SM_DROP d;
    char  **rcpt = mem_calloc(m->nrcpt + 1, sizeof(char *));
    int     status;

    for (size_t i = 0; i < m->nrcpt; i++)
	rcpt[i] = m->rcpt[i].address;
    sm_drop_open(&d);
    sm_drop_envelope(&d, m->sender ? m->sender : "", NULL, 0, rcpt, m->nrcpt);
    if (m->content) {
	const char *data = (const char *) m->content->data;
	size_t  len = m->content->len;

	for (size_t off = 0; off < len; off += SM_CHUNK)
	    sm_drop_put(&d, MAILDROP_REC_CONTENT, data + off,
			len - off > SM_CHUNK ? SM_CHUNK : len - off);
    }
    status = sm_drop_close(&d);
    if (status == 0)
	smtpd_proto_submit_done(p, 250, m->queue_id);
    else
	smtpd_proto_submit_done(p, 451, "4.3.0 Error: queue file write error");
    mem_free(rcpt);
    message_free(m);
}

static void sm_smtp(void)
{
    STR     err = STR_INIT;
    SMTPD_CONFIG *cfg;
    SMTPD_PROTO *p;
    SMTPD_PEER peer = {.name = "localhost",.addr = "127.0.0.1",.port = 0};
    char    buf[65536];
    bool    done = false;

    msg_sink_set(sm_quiet_sink);
    if ((cfg = smtpd_config_build(smtpd_param_default, NULL, &err)) == NULL)
	sm_fatal(EX_CONFIG, "%s", STR_DATA(&err));
    /* Scripts pipe a whole dialogue into sendmail -bs; stdin is a local
     * user, not a spam bot, so no synchronization check. */
    cfg->forbid_unauth_pipelining = false;
    p = smtpd_proto_new(cfg, &peer, NULL);
    smtpd_proto_greet(p, NULL, 0);
    while (!done) {
	enum smtpd_proto_event ev = smtpd_proto_event(p);
	STR    *out = smtpd_proto_output(p);

	if (STR_LEN(out)) {
	    if (sm_write_all(1, out->data, STR_LEN(out)) < 0)
		break;
	    str_reset(out);
	}
	switch (ev) {
	case SMTPD_EV_INPUT:{
		ssize_t n = read(0, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
		    break;
		if (n <= 0)
		    smtpd_proto_eof(p);
		else
		    smtpd_proto_input(p, buf, (size_t) n);
		break;
	    }
	case SMTPD_EV_FLUSH:
	    smtpd_proto_resume(p);
	    break;
	case SMTPD_EV_SUBMIT:
	    sm_smtp_submit(p, smtpd_proto_take_message(p));
	    break;
	case SMTPD_EV_STARTTLS:
	    smtpd_proto_tls_failed(p, "TLS is not available with sendmail -bs");
	    break;
	case SMTPD_EV_SLEEP:{
		int     ms = smtpd_proto_sleep_ms(p);

		if (ms > 0)
		    usleep((useconds_t) ms * 1000);
		smtpd_proto_resume(p);
		break;
	    }
	case SMTPD_EV_CLOSE:
	    done = true;
	    break;
	}
    }
    smtpd_proto_free(p);
    smtpd_config_free(cfg);
    str_release(&err);
}

/* ---- the other modes: other commands ---- */

static void __attribute__((noreturn)) sm_exec(const char *cmd, const char *a1, const char *a2)
{
    STR     path = STR_INIT;
    const char *argv[6];
    int     argc = 0;

    str_printf(&path, "%s/%s", param_str(P_COMMAND_DIRECTORY), cmd);
    argv[argc++] = cmd;
    argv[argc++] = "-c";
    argv[argc++] = sm_config_dir;
    if (a1)
	argv[argc++] = a1;
    if (a2)
	argv[argc++] = a2;
    argv[argc] = NULL;
    fflush(NULL);
    execv(STR_DATA(&path), (char *const *) argv);
    sm_fatal(EX_UNAVAILABLE, "execute %s: %s", STR_DATA(&path), strerror(errno));
}

/* ---- main ---- */

static char *sm_fullname(const struct passwd *pw)
{
    const char *name = getenv("NAME");
    STR     out = STR_INIT;

    if (name && *name)
	return mem_strdup(name);
    if (pw == NULL || pw->pw_gecos == NULL)
	return NULL;
    /* GECOS: the name ends at the first comma; "&" is the login name. */
    for (const char *p = pw->pw_gecos; *p && *p != ','; p++) {
	if (*p == '&') {
	    str_putc(&out, (pw->pw_name[0] >= 'a' && pw->pw_name[0] <= 'z')
		     ? pw->pw_name[0] - 'a' + 'A' : pw->pw_name[0]);
	    if (pw->pw_name[0])
		str_puts(&out, pw->pw_name + 1);
	} else {
	    str_putc(&out, *p);
	}
    }
    if (STR_LEN(&out) == 0) {
	str_release(&out);
	return NULL;
    }
    return str_steal(&out, NULL);
}

int     main(int argc, char **argv)
{
    enum sm_mode mode = SM_ENQUEUE;
    const char *opt_C = NULL, *sender = NULL, *fullname = NULL;
    const char *flush_site = NULL, *flush_id = NULL;
    bool    extract = false, dot_ends = true, verify = false;
    char  **rcpt = NULL, *login, *fullname_buf = NULL;
    size_t  nrcpt = 0;
    struct passwd *pw;
    STR     err = STR_INIT, cdir = STR_INIT;
    CONFIG *cfg;
    int     ch, fd;

    umask(022);
    for (fd = 0; fd < 3; fd++)
	if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
	    sm_fatal(EX_OSERR, "open /dev/null: %s", strerror(errno));
    if (argv[0]) {
	const char *slash = strrchr(argv[0], '/');

	sm_prog = slash ? slash + 1 : argv[0];
    }
    if (strcmp(sm_prog, "mailq") == 0)
	mode = SM_MAILQ;
    else if (strcmp(sm_prog, "newaliases") == 0)
	mode = SM_NEWALIASES;
    else
	sm_prog = "sendmail";
    msg_progname_set(sm_prog);
    signal(SIGPIPE, SIG_IGN);

    /* "+": options end at the first recipient, as with Sendmail. */
    for (;;) {
	if (optind < argc && strcmp(argv[optind], "-q") == 0) {	/* no argument */
	    mode = SM_FLUSH;
	    optind++;
	    continue;
	}
	if ((ch = getopt(argc, argv, "+A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx")) == -1)
	    break;
	switch (ch) {
	case 'B':
	    if (strcasecmp(optarg, "8BITMIME") != 0 && strcasecmp(optarg, "7BIT") != 0)
		sm_fatal(EX_USAGE, "-B option needs 8BITMIME or 7BIT");
	    break;
	case 'C':{
		struct stat st;

		/* Sendmail names a file; Postfix takes main.cf's directory. */
		if (stat(optarg, &st) == 0 && !S_ISDIR(st.st_mode)) {
		    const char *slash = strrchr(optarg, '/');

		    if (slash)
			str_append(&cdir, optarg, (size_t) (slash - optarg));
		    else
			str_puts(&cdir, ".");
		    opt_C = STR_DATA(&cdir);
		} else {
		    opt_C = optarg;
		}
		break;
	    }
	case 'F':
	    fullname = optarg;
	    break;
	case 'I':
	    mode = SM_NEWALIASES;
	    break;
	case 'N':				/* DSN NOTIFY: not carried yet */
	case 'R':				/* DSN RET: not carried yet */
	case 'V':				/* DSN ENVID: not carried yet */
	case 'A': case 'G': case 'L': case 'O': case 'U': case 'X':
	case 'c': case 'e': case 'h': case 'm': case 'n': case 'p':
	case 'v': case 'x':
	    break;
	case 'b':
	    switch (optarg[0]) {
	    case 'd':
	    case 'l':
		mode = SM_DAEMON;
		break;
	    case 'i':
		mode = SM_NEWALIASES;
		break;
	    case 'm':
		mode = SM_ENQUEUE;
		break;
	    case 'p':
		mode = SM_MAILQ;
		break;
	    case 's':
		mode = SM_SMTP;
		break;
	    case 'v':
		mode = SM_ENQUEUE;
		verify = true;
		break;
	    default:
		sm_fatal(EX_USAGE, "unsupported: -b%s", optarg);
	    }
	    break;
	case 'f':
	case 'r':
	    sender = optarg;
	    break;
	case 'i':
	    dot_ends = false;
	    break;
	case 'o':
	    if (optarg[0] == 'i')
		dot_ends = false;
	    break;
	case 'q':
	    if (optarg[0] == 'R')
		flush_site = optarg + 1;
	    else if (optarg[0] == 'I')
		flush_id = optarg + 1;
	    mode = SM_FLUSH;
	    break;
	case 't':
	    extract = true;
	    break;
	default:
	    sm_usage();
	}
    }

    sm_config_dir = config_dir_select(opt_C);
    if ((cfg = config_load(sm_config_dir, CONFIG_NO_WARN, &err)) == NULL) {
	while (STR_LEN(&err) && err.data[STR_LEN(&err) - 1] == '\n')
	    str_truncate(&err, STR_LEN(&err) - 1);
	sm_fatal(EX_CONFIG, "%s", STR_DATA(&err));
    }
    config_install(cfg);

    switch (mode) {
    case SM_MAILQ:
	sm_exec("postqueue", "-p", NULL);
    case SM_NEWALIASES:
	sm_exec("newaliases", NULL, NULL);
    case SM_DAEMON:
	sm_exec("postfix", "start", NULL);
    case SM_FLUSH:
	if (flush_site && *flush_site)
	    sm_exec("postqueue", "-s", flush_site);
	if (flush_id && *flush_id)
	    sm_exec("postqueue", "-i", flush_id);
	sm_exec("postqueue", "-f", NULL);
    case SM_SMTP:
    case SM_ENQUEUE:
	break;
    }

    sm_uid = (long) getuid();
    if ((pw = getpwuid(getuid())) == NULL)
	sm_fatal(EX_OSERR, "no login name found for user ID %lu", (unsigned long) getuid());
    login = mem_strdup(pw->pw_name);
    sm_user = login;
    if (mode == SM_SMTP) {
	if (optind < argc)
	    sm_usage();
	sm_smtp();
	mem_free(login);
	return 0;
    }

    /* -f: one address, as in a header ("<>" is the null sender). */
    char  **fl = NULL;
    size_t  nfl = 0;
    char   *sender_buf;

    if (sender) {
	sm_parse_addrs(sender, &fl, &nfl);
	if (nfl > 1)
	    fprintf(stderr, "%s: warning: -f option specified malformed sender: %s\n",
		    sm_prog, sender);
	sender_buf = mem_strdup(nfl ? fl[0] : "");
	for (size_t i = 0; i < nfl; i++)
	    mem_free(fl[i]);
	mem_free(fl);
    } else {
	sender_buf = mem_strdup(login);
    }
    if (fullname == NULL)
	fullname = fullname_buf = sm_fullname(pw);
    for (int i = optind; i < argc; i++) {
	/* An argument with no address at all is an empty recipient (Postfix). */
	if (sm_parse_addrs(argv[i], &rcpt, &nrcpt) == 0) {
	    rcpt = mem_realloc(rcpt, (nrcpt + 1) * sizeof(char *));
	    rcpt[nrcpt++] = mem_strdup("");
	}
    }
    if (verify)
	sm_verify(sender_buf, fullname, extract, rcpt, nrcpt);
    else
	sm_enqueue(sender_buf, fullname, extract, dot_ends, rcpt, nrcpt);
    for (size_t i = 0; i < nrcpt; i++)
	mem_free(rcpt[i]);
    mem_free(rcpt);
    mem_free(sender_buf);
    mem_free(fullname_buf);
    mem_free(login);
    str_release(&cdir);
    str_release(&err);
    return 0;
}
