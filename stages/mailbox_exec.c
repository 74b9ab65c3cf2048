/*
 * mailbox_exec.c - delivery steps with other users' privileges: forked
 * children, or requests to the privileged helper; delivery commands (see
 * mailbox_exec.h).
 *
 * Between fork() and exec() (or _exit()) the child calls only
 * async-signal-safe functions, plus the allocation-free delivery functions
 * of mailbox_util.c for file work: other threads of the engine may hold
 * locks that the child would never see released. The helper's workers are
 * single-threaded (engine/privsep.h), so the job handlers at the end of
 * this file may allocate; they trust nothing in the request.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/privsep.h"
#include "engine/timeutil.h"
#include "stages/mailbox_exec.h"

/* Job types of the privileged helper (engine/privsep.h). */
#define MAILBOX_EXEC_JOB_FILE	2
#define MAILBOX_EXEC_JOB_CMD	3
#define MAILBOX_EXEC_JOB_READ	4

#define MAILBOX_EXEC_MAX_ARGS	1024	/* argv and envp entries, each */

#define MAILBOX_EXEC_OUTPUT_MAX	4096	/* output bytes kept for the reason */

void    mailbox_exec_self(MAILBOX_CREDS *c)
{
    if (privsep_active()) {
	c->uid = 0;
	c->gid = 0;
	return;
    }
    c->uid = geteuid();
    c->gid = getegid();
}

bool    mailbox_exec_need_child(const MAILBOX_CREDS *c)
{
    if (privsep_active())
	return c->uid != geteuid() || c->gid != getegid();
    return geteuid() == 0 && (c->uid != 0 || c->gid != getegid());
}

bool    mailbox_exec_privileged(void)
{
    return geteuid() == 0 || privsep_active();
}

/* In the child: become c. Async-signal-safe. */
static int mailbox_exec_drop(const MAILBOX_CREDS *c)
{
    if (geteuid() != 0)
	return 0;
    if (setgroups(1, &c->gid) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
	return -1;
    /* Paranoia: a setuid that did not stick must not run as root. */
    if (c->uid != 0 && (geteuid() == 0 || getuid() == 0))
	return -1;
    return 0;
}

static ssize_t mailbox_exec_read_full(int fd, void *buf, size_t len)
{
    size_t  got = 0;

    while (got < len) {
	ssize_t n = read(fd, (char *) buf + got, len - got);

	if (n < 0 && errno == EINTR)
	    continue;
	if (n <= 0)
	    break;
	got += (size_t) n;
    }
    return (ssize_t) got;
}

void    mailbox_exec_as(const MAILBOX_CREDS *c, mailbox_exec_fn fn, void *ctx,
			        MAILBOX_RESULT *res)
{
    int     fds[2], status;
    pid_t   pid;

    if (!mailbox_exec_need_child(c)) {
	fn(ctx, res);
	return;
    }
    if (privsep_active()) {
	msg_warn("mailbox_exec_as: a delivery step as uid %ld cannot go through the "
		 "privileged helper", (long) c->uid);
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0",
			   "mail system configuration error: delivery step not supported "
			   "with privilege separation");
	return;
    }
    if (pipe2(fds, O_CLOEXEC) < 0) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "pipe: %s", strerror(errno));
	return;
    }
    if ((pid = fork()) < 0) {
	close(fds[0]);
	close(fds[1]);
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "fork: %s", strerror(errno));
	return;
    }
    if (pid == 0) {
	MAILBOX_RESULT cres;
	ssize_t w;

	close(fds[0]);
	if (mailbox_exec_drop(c) < 0)
	    mailbox_result_set(&cres, DELIVERY_DEFER, "4.3.0",
			       "cannot set privileges to uid %ld gid %ld", (long) c->uid,
			       (long) c->gid);
	else
	    fn(ctx, &cres);
	w = write(fds[1], &cres, sizeof(cres));
	_exit(w == (ssize_t) sizeof(cres) ? 0 : 1);
    }
    close(fds[1]);
    if (mailbox_exec_read_full(fds[0], res, sizeof(*res)) != (ssize_t) sizeof(*res))
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0",
			   "delivery helper process died without a result");
    res->text[sizeof(res->text) - 1] = 0;
    res->dsn[sizeof(res->dsn) - 1] = 0;
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
	 /* void */ ;
}

/* ---- file deliveries ---- */

static void mailbox_exec_file_run(void *ctx, MAILBOX_RESULT *res)
{
    const MAILBOX_FILE_JOB *j = ctx;

    if (j->maildir)
	mailbox_maildir_deliver(j->path, j->data, j->len, res);
    else
	mailbox_mbox_append(j->path, j->data, j->len, j->lock, j->chown_uid, j->chown_gid,
			    j->size_limit, res);
}

/* The request for MAILBOX_EXEC_JOB_FILE: this, then the path's bytes. */
typedef struct MAILBOX_FILE_REQ {
    uint32_t uid, gid;
    uint32_t chown_uid, chown_gid;
    int64_t size_limit;
    uint32_t maildir;
    uint32_t lock_methods;
    int32_t lock_attempts, lock_delay_ms, lock_stale_s;
    uint32_t path_len;
} MAILBOX_FILE_REQ;

/* A helper's answer must be a MAILBOX_RESULT that makes sense. */
static void mailbox_exec_take_result(const STR *reply, MAILBOX_RESULT *res)
{
    if (STR_LEN(reply) != sizeof(*res)) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "privileged helper: bad reply");
	return;
    }
    memcpy(res, reply->data, sizeof(*res));	/* non-NULL: len checked */
    res->text[sizeof(res->text) - 1] = 0;
    res->dsn[sizeof(res->dsn) - 1] = 0;
    if (res->status != DELIVERY_SENT && res->status != DELIVERY_DEFER
	&& res->status != DELIVERY_BOUNCE)
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "privileged helper: bad reply");
}

static void mailbox_exec_file_helper(const MAILBOX_CREDS *c, const MAILBOX_FILE_JOB *job,
				             MAILBOX_RESULT *res)
{
    MAILBOX_FILE_REQ rq;
    size_t  plen = strlen(job->path);
    STR     req = STR_INIT, reply = STR_INIT, why = STR_INIT;
    int     fd;

    memset(&rq, 0, sizeof(rq));
    rq.uid = (uint32_t) c->uid;
    rq.gid = (uint32_t) c->gid;
    rq.chown_uid = (uint32_t) job->chown_uid;
    rq.chown_gid = (uint32_t) job->chown_gid;
    rq.size_limit = job->size_limit;
    rq.maildir = job->maildir;
    if (job->lock) {
	rq.lock_methods = (uint32_t) job->lock->methods;
	rq.lock_attempts = job->lock->attempts;
	rq.lock_delay_ms = job->lock->delay_ms;
	rq.lock_stale_s = job->lock->stale_s;
    }
    rq.path_len = (uint32_t) plen;
    str_append(&req, &rq, sizeof(rq));
    str_append(&req, job->path, plen);
    if ((fd = privsep_data_fd(job->data, job->len)) < 0) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "memfd: %s", strerror(errno));
    } else if (privsep_call(MAILBOX_EXEC_JOB_FILE, STR_DATA(&req), STR_LEN(&req), fd, &reply,
			    &why) < 0) {
	msg_warn("privileged helper: delivery to %s as uid %ld: %s", job->path, (long) c->uid,
		 STR_DATA(&why));
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "privileged helper: %s",
			   STR_DATA(&why));
    } else {
	mailbox_exec_take_result(&reply, res);
    }
    if (fd >= 0)
	close(fd);
    str_release(&req);
    str_release(&reply);
    str_release(&why);
}

void    mailbox_exec_file(const MAILBOX_CREDS *c, const MAILBOX_FILE_JOB *job,
			          MAILBOX_RESULT *res)
{
    if (privsep_active() && mailbox_exec_need_child(c))
	mailbox_exec_file_helper(c, job, res);
    else
	mailbox_exec_as(c, mailbox_exec_file_run, (void *) job, res);
}

/* ---- reading small files as a user ---- */

/* The request for MAILBOX_EXEC_JOB_READ: this, then the path's bytes. */
typedef struct MAILBOX_READ_REQ {
    uint32_t uid, gid;
    uint32_t nofollow;
    uint32_t max;
    uint32_t path_len;
} MAILBOX_READ_REQ;

/* The reply: this, then the text. */
typedef struct MAILBOX_READ_REPLY {
    int32_t err;			/* errno, 0 when read */
    uint32_t uid;
    uint32_t mode;
} MAILBOX_READ_REPLY;

/* open + fstat + read; 0, or an errno. */
static int mailbox_exec_read_direct(const char *path, bool nofollow, size_t max, STR *out,
				            struct stat *st)
{
    char    buf[8192];
    ssize_t n;
    int     fd, err = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0)
	return errno;
    if (fstat(fd, st) < 0) {
	err = errno;
    } else if (!S_ISREG(st->st_mode)) {
	err = EINVAL;
    } else {
	while (STR_LEN(out) < max && (n = read(fd, buf, sizeof(buf))) != 0) {
	    if (n < 0) {
		if (errno == EINTR)
		    continue;
		err = errno;
		break;
	    }
	    str_append(out, buf, STR_LEN(out) + (size_t) n > max ? max - STR_LEN(out)
		       : (size_t) n);
	}
    }
    close(fd);
    return err;
}

int     mailbox_exec_read(const MAILBOX_CREDS *c, const char *path, bool nofollow,
			          size_t max, STR *out, struct stat *st)
{
    MAILBOX_READ_REQ rq;
    MAILBOX_READ_REPLY r;
    STR     req = STR_INIT, reply = STR_INIT, why = STR_INIT;
    int     err;

    str_reset(out);
    memset(st, 0, sizeof(*st));
    if (!privsep_active() || !mailbox_exec_need_child(c)) {
	if ((err = mailbox_exec_read_direct(path, nofollow, max, out, st)) != 0) {
	    errno = err;
	    return -1;
	}
	return 0;
    }
    memset(&rq, 0, sizeof(rq));
    rq.uid = (uint32_t) c->uid;
    rq.gid = (uint32_t) c->gid;
    rq.nofollow = nofollow;
    rq.max = (uint32_t) (max < MAILBOX_EXEC_READ_MAX ? max : MAILBOX_EXEC_READ_MAX);
    rq.path_len = (uint32_t) strlen(path);
    str_append(&req, &rq, sizeof(rq));
    str_append(&req, path, rq.path_len);
    if (privsep_call(MAILBOX_EXEC_JOB_READ, STR_DATA(&req), STR_LEN(&req), -1, &reply,
		     &why) < 0) {
	msg_warn("privileged helper: read %s as uid %ld: %s", path, (long) c->uid,
		 STR_DATA(&why));
	err = EPERM;
    } else if (STR_LEN(&reply) < sizeof(r) || STR_LEN(&reply) - sizeof(r) > rq.max) {
	err = EIO;
    } else {
	memcpy(&r, reply.data, sizeof(r));	/* non-NULL: len checked */
	err = r.err;
	if (err == 0) {
	    st->st_uid = (uid_t) r.uid;
	    st->st_mode = (mode_t) r.mode;
	    str_append(out, reply.data + sizeof(r), STR_LEN(&reply) - sizeof(r));
	}
    }
    str_release(&req);
    str_release(&reply);
    str_release(&why);
    if (err != 0) {
	errno = err;
	return -1;
    }
    return 0;
}

/* ---- commands ---- */

static void mailbox_exec_child(const MAILBOX_CREDS *c, const MAILBOX_CMD *cmd,
			               int in_fd, int out_fd)
{
    /* Own process group, so the time limit kills the whole pipeline. */
    (void) setsid();
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
	_exit(75);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
#endif
	for (int fd = 3; fd < 1024; fd++)
	    (void) close(fd);
    if (mailbox_exec_drop(c) < 0) {
	static const char m[] = "cannot set privileges\n";

	(void) write(2, m, sizeof(m) - 1);
	_exit(75);
    }
    if (cmd->cwd == NULL || chdir(cmd->cwd) < 0)
	(void) chdir("/");
    {
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	(void) sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);
    }
    execve(cmd->path, cmd->argv, cmd->envp);
    {
	static const char m[] = "cannot execute command\n";

	(void) write(2, m, sizeof(m) - 1);
    }
    _exit(errno == ENOENT ? 69 : 126);
}

static void mailbox_exec_command_direct(const MAILBOX_CREDS *c, const MAILBOX_CMD *cmd,
					        MAILBOX_CMD_STATUS *st)
{
    int     in[2], out[2], status = 0;
    pid_t   pid;
    size_t  sent = 0;
    int64_t deadline = cmd->time_limit > 0
	? time_mono_ns() + (int64_t) cmd->time_limit * 1000000000LL : 0;
    bool    out_open = true;

    memset(st, 0, sizeof(*st));
    str_init(&st->output);
    if (pipe2(in, O_CLOEXEC) < 0) {
	str_printf(&st->output, "pipe: %s", strerror(errno));
	return;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
	str_printf(&st->output, "pipe: %s", strerror(errno));
	close(in[0]);
	close(in[1]);
	return;
    }
    if ((pid = fork()) < 0) {
	str_printf(&st->output, "fork: %s", strerror(errno));
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
	return;
    }
    if (pid == 0)
	mailbox_exec_child(c, cmd, in[0], out[1]);
    st->started = true;
    close(in[0]);
    close(out[1]);
    (void) fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (cmd->input_len == 0) {
	close(in[1]);
	in[1] = -1;
    }
    /* Feed stdin and drain stdout+stderr together, so neither side blocks. */
    while (in[1] >= 0 || out_open) {
	struct pollfd pfd[2];
	nfds_t  n = 0;
	int     timeout = -1;

	if (out_open) {
	    pfd[n].fd = out[0];
	    pfd[n].events = POLLIN;
	    n++;
	}
	if (in[1] >= 0) {
	    pfd[n].fd = in[1];
	    pfd[n].events = POLLOUT;
	    n++;
	}
	if (deadline) {
	    int64_t left = deadline - time_mono_ns();

	    if (left <= 0) {
		st->timed_out = true;
		break;
	    }
	    timeout = (int) (left / 1000000 + 1);
	}
	if (poll(pfd, n, timeout) < 0) {
	    if (errno == EINTR)
		continue;
	    break;
	}
	for (nfds_t i = 0; i < n; i++) {
	    if (pfd[i].revents == 0)
		continue;
	    if (pfd[i].fd == out[0]) {
		char    buf[4096];
		ssize_t r = read(out[0], buf, sizeof(buf));

		if (r > 0) {
		    size_t  keep = STR_LEN(&st->output) < MAILBOX_EXEC_OUTPUT_MAX
			? MAILBOX_EXEC_OUTPUT_MAX - STR_LEN(&st->output) : 0;

		    str_append(&st->output, buf, (size_t) r < keep ? (size_t) r : keep);
		} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
		    out_open = false;
		}
	    } else {
		ssize_t w = (pfd[i].revents & (POLLERR | POLLHUP)) ? -1
		    : write(in[1], cmd->input + sent, cmd->input_len - sent);

		if (w > 0)
		    sent += (size_t) w;
		/* EPIPE: the command did not want all of it; not an error. */
		if (w < 0 && errno != EAGAIN && errno != EINTR)
		    sent = cmd->input_len;
		if (sent >= cmd->input_len) {
		    close(in[1]);
		    in[1] = -1;
		}
	    }
	}
    }
    if (in[1] >= 0)
	close(in[1]);
    close(out[0]);
    if (st->timed_out) {
	(void) kill(-pid, SIGKILL);
	(void) kill(pid, SIGKILL);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
	 /* void */ ;
    if (WIFEXITED(status))
	st->exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
	st->signal = WTERMSIG(status);
}

/* The request for MAILBOX_EXEC_JOB_CMD: this, then NUL-terminated strings:
 * path, cwd ("" = none), argv[0..argc-1], envp[0..envc-1]. */
typedef struct MAILBOX_CMD_REQ {
    uint32_t uid, gid;
    int32_t time_limit;
    uint32_t argc, envc;
} MAILBOX_CMD_REQ;

/* The reply: this, then the output bytes. */
typedef struct MAILBOX_CMD_REPLY {
    uint8_t started, timed_out;
    int32_t exit_status, signal;
} MAILBOX_CMD_REPLY;

static void mailbox_exec_command_helper(const MAILBOX_CREDS *c, const MAILBOX_CMD *cmd,
					        MAILBOX_CMD_STATUS *st)
{
    MAILBOX_CMD_REQ rq;
    STR     req = STR_INIT, reply = STR_INIT, why = STR_INIT;
    int     fd = -1;

    memset(&rq, 0, sizeof(rq));
    rq.uid = (uint32_t) c->uid;
    rq.gid = (uint32_t) c->gid;
    rq.time_limit = cmd->time_limit;
    for (rq.argc = 0; cmd->argv[rq.argc]; rq.argc++)
	 /* count */ ;
    for (rq.envc = 0; cmd->envp && cmd->envp[rq.envc]; rq.envc++)
	 /* count */ ;
    str_append(&req, &rq, sizeof(rq));
    str_append(&req, cmd->path, strlen(cmd->path) + 1);
    str_append(&req, cmd->cwd ? cmd->cwd : "", strlen(cmd->cwd ? cmd->cwd : "") + 1);
    for (uint32_t i = 0; i < rq.argc; i++)
	str_append(&req, cmd->argv[i], strlen(cmd->argv[i]) + 1);
    for (uint32_t i = 0; i < rq.envc; i++)
	str_append(&req, cmd->envp[i], strlen(cmd->envp[i]) + 1);
    if (cmd->input_len > 0 && (fd = privsep_data_fd(cmd->input, cmd->input_len)) < 0) {
	str_printf(&st->output, "memfd: %s", strerror(errno));
    } else if (privsep_call(MAILBOX_EXEC_JOB_CMD, STR_DATA(&req), STR_LEN(&req), fd, &reply,
			    &why) < 0) {
	msg_warn("privileged helper: command %s as uid %ld: %s", cmd->path, (long) c->uid,
		 STR_DATA(&why));
	str_printf(&st->output, "privileged helper: %s", STR_DATA(&why));
    } else if (STR_LEN(&reply) < sizeof(MAILBOX_CMD_REPLY)) {
	str_puts(&st->output, "privileged helper: bad reply");
    } else {
	MAILBOX_CMD_REPLY r;
	size_t  olen = STR_LEN(&reply) - sizeof(r);

	memcpy(&r, reply.data, sizeof(r));	/* non-NULL: len checked */
	st->started = r.started != 0;
	st->timed_out = r.timed_out != 0;
	st->exit_status = r.exit_status;
	st->signal = r.signal;
	str_append(&st->output, reply.data + sizeof(r),
		   olen < MAILBOX_EXEC_OUTPUT_MAX ? olen : MAILBOX_EXEC_OUTPUT_MAX);
    }
    if (fd >= 0)
	close(fd);
    str_release(&req);
    str_release(&reply);
    str_release(&why);
}

void    mailbox_exec_command(const MAILBOX_CREDS *c, const MAILBOX_CMD *cmd,
			             MAILBOX_CMD_STATUS *st)
{
    if (privsep_active() && mailbox_exec_need_child(c)) {
	memset(st, 0, sizeof(*st));
	str_init(&st->output);
	mailbox_exec_command_helper(c, cmd, st);
	return;
    }
    mailbox_exec_command_direct(c, cmd, st);
}

void    mailbox_exec_status_release(MAILBOX_CMD_STATUS *st)
{
    str_release(&st->output);
}

/* Postfix's sys_exits table (src/global/sys_exits.c), EX__BASE = 64. */
static const struct {
    const char *dsn;
    const char *text;
} mailbox_exec_sysexits[] = {
    {"5.3.0", "command line usage error"},	/* 64 EX_USAGE */
    {"5.6.0", "data format error"},		/* 65 EX_DATAERR */
    {"5.3.0", "cannot open input"},		/* 66 EX_NOINPUT */
    {"5.1.1", "user unknown"},			/* 67 EX_NOUSER */
    {"5.1.2", "host name unknown"},		/* 68 EX_NOHOST */
    {"5.3.0", "service unavailable"},		/* 69 EX_UNAVAILABLE */
    {"5.3.0", "internal software error"},	/* 70 EX_SOFTWARE */
    {"4.3.0", "system resource problem"},	/* 71 EX_OSERR */
    {"5.3.0", "critical OS file missing"},	/* 72 EX_OSFILE */
    {"5.2.0", "can't create user output file"},	/* 73 EX_CANTCREAT */
    {"5.3.0", "input/output error"},		/* 74 EX_IOERR */
    {"4.3.0", "temporary failure"},		/* 75 EX_TEMPFAIL */
    {"5.5.0", "remote error in protocol"},	/* 76 EX_PROTOCOL */
    {"5.7.0", "permission denied"},		/* 77 EX_NOPERM */
    {"5.3.5", "local configuration error"},	/* 78 EX_CONFIG */
};

const char *mailbox_exec_sysexit(int code, const char **dsn)
{
    if (code < 64 || code > 78)
	return NULL;
    *dsn = mailbox_exec_sysexits[code - 64].dsn;
    return mailbox_exec_sysexits[code - 64].text;
}

/* The first line of the output, printable, at most 200 bytes. */
static void mailbox_exec_first_line(const STR *output, char *buf, size_t size)
{
    const char *p = STR_DATA(output);
    size_t  n = 0;

    while (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')
	p++;
    for (; *p && *p != '\n' && *p != '\r' && n + 1 < size && n < 200; p++)
	buf[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    while (n > 0 && buf[n - 1] == ' ')
	n--;
    buf[n] = 0;
}

void    mailbox_exec_result(const MAILBOX_CMD_STATUS *st, const char *what,
			            const char *sent_text, MAILBOX_RESULT *res)
{
    char    line[256], out[300];
    const char *dsn, *text;

    mailbox_exec_first_line(&st->output, line, sizeof(line));
    if (*line)
	snprintf(out, sizeof(out), ". Command output: %s", line);
    else
	out[0] = 0;
    if (!st->started) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "cannot run command: %s",
			   STR_DATA(&st->output));
    } else if (st->timed_out) {
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.3.0",
			   "Command time limit exceeded: \"%s\"%s", what, out);
    } else if (st->signal) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.0", "Command died with signal %d: \"%s\"%s",
			   st->signal, what, out);
    } else if (st->exit_status == 0) {
	mailbox_result_set(res, DELIVERY_SENT, "2.0.0", "%s", sent_text);
    } else if ((text = mailbox_exec_sysexit(st->exit_status, &dsn)) != NULL) {
	mailbox_result_set(res, dsn[0] == '4' ? DELIVERY_DEFER : DELIVERY_BOUNCE, dsn, "%s%s",
			   text, out);
    } else {
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.3.0", "Command died with status %d: \"%s\"%s",
			   st->exit_status, what, out);
    }
}

/* ---- the privileged helper's side (engine/privsep.h) ---- */

/* Runs in a worker of the helper: root, single-threaded, trusting nothing. */

static int mailbox_exec_refuse(STR *reply, const char *fmt,...)
	__attribute__((format(printf, 2, 3)));

static int mailbox_exec_refuse(STR *reply, const char *fmt,...)
{
    va_list ap;

    str_reset(reply);
    va_start(ap, fmt);
    str_vprintf(reply, fmt, ap);
    va_end(ap);
    return -1;
}

/* The most data a delivery may carry: the message as a mailbox sees it. */
static size_t mailbox_exec_data_max(void)
{
    long long lim = param_int(P_MESSAGE_SIZE_LIMIT);

    return lim > 0 ? (size_t) lim * 2 + 1024 * 1024 : (size_t) 1 << 40;
}

/* An mbox file directly in mail_spool_directory: SPOOL/NAME. */
static bool mailbox_exec_in_spool(const char *path)
{
    const char *spool = param_str(P_MAIL_SPOOL_DIRECTORY);
    size_t  n = strlen(spool);
    const char *name;

    while (n > 1 && spool[n - 1] == '/')
	n--;
    if (n == 0 || spool[0] != '/' || strncmp(path, spool, n) != 0 || path[n] != '/')
	return false;
    name = path + n + 1;
    return *name && strchr(name, '/') == NULL && strcmp(name, ".") != 0
	&& strcmp(name, "..") != 0;
}

static int mailbox_exec_file_job(const void *req, size_t len, int data_fd, STR *reply)
{
    MAILBOX_FILE_REQ rq;
    MAILBOX_LOCK lk;
    MAILBOX_FILE_JOB job;
    MAILBOX_RESULT res;
    STR     why = STR_INIT;
    const char *data;
    char   *path;
    size_t  dlen;
    int     rc = 0;

    if (len < sizeof(rq))
	return mailbox_exec_refuse(reply, "malformed file delivery request");
    memcpy(&rq, req, sizeof(rq));
    if (rq.path_len != len - sizeof(rq) || rq.path_len < 2 || rq.path_len >= PATH_MAX
	|| memchr((const char *) req + sizeof(rq), 0, rq.path_len) != NULL
	|| ((const char *) req)[sizeof(rq)] != '/')
	return mailbox_exec_refuse(reply, "file delivery: bad path");
    if ((rq.lock_methods & ~(uint32_t) (MAILBOX_LOCK_FCNTL | MAILBOX_LOCK_DOTLOCK)) != 0
	|| rq.lock_attempts < 1 || rq.lock_attempts > 1000 || rq.lock_delay_ms < 0
	|| rq.lock_delay_ms > 60000 || rq.lock_stale_s < 0 || rq.maildir > 1)
	return mailbox_exec_refuse(reply, "file delivery: bad lock settings");
    path = mem_alloc(rq.path_len + 1);
    memcpy(path, (const char *) req + sizeof(rq), rq.path_len);
    path[rq.path_len] = 0;
    if (rq.uid == 0) {
	/* Root only creates a user's mailbox in a spool the user cannot write. */
	if (rq.gid != 0 || rq.maildir || rq.chown_uid == 0 || rq.chown_uid == (uint32_t) -1
	    || rq.chown_gid == (uint32_t) -1 || !mailbox_exec_in_spool(path)) {
	    rc = mailbox_exec_refuse(reply, "refusing to deliver to %s as root", path);
	    goto out;
	}
    } else if (rq.gid == 0 || rq.chown_uid != (uint32_t) -1) {
	rc = mailbox_exec_refuse(reply, "refusing to deliver to %s as uid %lu gid %lu%s", path,
				 (unsigned long) rq.uid, (unsigned long) rq.gid,
				 rq.gid == 0 ? "" : " with a change of owner");
	goto out;
    } else if (privsep_become((uid_t) rq.uid, (gid_t) rq.gid, &why) < 0) {
	rc = mailbox_exec_refuse(reply, "%s", STR_DATA(&why));
	goto out;
    }
    if ((data = privsep_data_map(data_fd, mailbox_exec_data_max(), &dlen, &why)) == NULL) {
	rc = mailbox_exec_refuse(reply, "%s", STR_DATA(&why));
	goto out;
    }
    lk.methods = (int) rq.lock_methods;
    lk.attempts = rq.lock_attempts;
    lk.delay_ms = rq.lock_delay_ms;
    lk.stale_s = rq.lock_stale_s;
    memset(&job, 0, sizeof(job));
    job.path = path;
    job.data = data;
    job.len = dlen;
    job.maildir = rq.maildir != 0;
    job.lock = &lk;
    job.chown_uid = (uid_t) rq.chown_uid;
    job.chown_gid = (gid_t) rq.chown_gid;
    job.size_limit = rq.size_limit;
    mailbox_exec_file_run(&job, &res);
    privsep_data_unmap(data, dlen);
    str_append(reply, &res, sizeof(res));
out:
    mem_free(path);
    str_release(&why);
    return rc;
}

/* The next NUL-terminated string of [*p, end), or NULL. */
static char *mailbox_exec_next(char **p, const char *end)
{
    char   *s = *p, *nul;

    if (s >= end || (nul = memchr(s, 0, (size_t) (end - s))) == NULL)
	return NULL;
    *p = nul + 1;
    return s;
}

static int mailbox_exec_cmd_job(const void *req, size_t len, int data_fd, STR *reply)
{
    MAILBOX_CMD_REQ rq;
    MAILBOX_CMD cmd;
    MAILBOX_CMD_STATUS st;
    MAILBOX_CMD_REPLY r;
    MAILBOX_CREDS c;
    STR     why = STR_INIT;
    char   *copy = NULL, *p, *end, *path, *cwd;
    char  **argv = NULL, **envp = NULL;
    const char *input = "";
    size_t  ilen = 0;
    int     rc = -1;

    if (len < sizeof(rq))
	return mailbox_exec_refuse(reply, "malformed command request");
    memcpy(&rq, req, sizeof(rq));
    if (rq.argc < 1 || rq.argc > MAILBOX_EXEC_MAX_ARGS || rq.envc > MAILBOX_EXEC_MAX_ARGS
	|| rq.time_limit < 0)
	return mailbox_exec_refuse(reply, "command: bad argument counts or time limit");
    if (rq.uid == 0 || rq.gid == 0)
	return mailbox_exec_refuse(reply, "refusing to run a command with root privileges");
    if (getpwuid((uid_t) rq.uid) == NULL)
	return mailbox_exec_refuse(reply, "refusing to run a command as uid %lu: no such user",
				   (unsigned long) rq.uid);
    copy = mem_alloc(len - sizeof(rq) + 1);
    memcpy(copy, (const char *) req + sizeof(rq), len - sizeof(rq));
    p = copy;
    end = copy + (len - sizeof(rq));
    argv = mem_calloc(rq.argc + 1, sizeof(char *));
    envp = mem_calloc(rq.envc + 1, sizeof(char *));
    if ((path = mailbox_exec_next(&p, end)) == NULL || (cwd = mailbox_exec_next(&p, end)) == NULL)
	goto malformed;
    for (uint32_t i = 0; i < rq.argc; i++)
	if ((argv[i] = mailbox_exec_next(&p, end)) == NULL)
	    goto malformed;
    for (uint32_t i = 0; i < rq.envc; i++)
	if ((envp[i] = mailbox_exec_next(&p, end)) == NULL)
	    goto malformed;
    if (p != end || path[0] != '/' || (*cwd && cwd[0] != '/'))
	goto malformed;
    if (data_fd >= 0
	&& (input = privsep_data_map(data_fd, mailbox_exec_data_max(), &ilen, &why)) == NULL) {
	rc = mailbox_exec_refuse(reply, "%s", STR_DATA(&why));
	goto out;
    }
    c.uid = (uid_t) rq.uid;
    c.gid = (gid_t) rq.gid;
    memset(&cmd, 0, sizeof(cmd));
    cmd.path = path;
    cmd.argv = argv;
    cmd.envp = envp;
    cmd.cwd = *cwd ? cwd : NULL;
    cmd.input = input;
    cmd.input_len = ilen;
    cmd.time_limit = rq.time_limit;
    /* Still root: the command's own child drops to c (mailbox_exec_drop). */
    mailbox_exec_command_direct(&c, &cmd, &st);
    if (ilen > 0)
	privsep_data_unmap(input, ilen);
    memset(&r, 0, sizeof(r));
    r.started = st.started;
    r.timed_out = st.timed_out;
    r.exit_status = st.exit_status;
    r.signal = st.signal;
    str_append(reply, &r, sizeof(r));
    str_append(reply, STR_DATA(&st.output), STR_LEN(&st.output));
    mailbox_exec_status_release(&st);
    rc = 0;
    goto out;

malformed:
    rc = mailbox_exec_refuse(reply, "malformed command request");
out:
    mem_free(argv);
    mem_free(envp);
    mem_free(copy);
    str_release(&why);
    return rc;
}

static int mailbox_exec_read_job(const void *req, size_t len, int data_fd, STR *reply)
{
    MAILBOX_READ_REQ rq;
    MAILBOX_READ_REPLY r;
    STR     why = STR_INIT, text = STR_INIT;
    struct stat st;
    char   *path;
    int     rc = 0;

    (void) data_fd;
    if (len < sizeof(rq))
	return mailbox_exec_refuse(reply, "malformed read request");
    memcpy(&rq, req, sizeof(rq));
    if (rq.path_len != len - sizeof(rq) || rq.path_len < 2 || rq.path_len >= PATH_MAX
	|| memchr((const char *) req + sizeof(rq), 0, rq.path_len) != NULL
	|| ((const char *) req)[sizeof(rq)] != '/' || rq.max > MAILBOX_EXEC_READ_MAX
	|| rq.nofollow > 1)
	return mailbox_exec_refuse(reply, "read: bad request");
    if (rq.uid == 0 || rq.gid == 0)
	return mailbox_exec_refuse(reply, "refusing to read a file with root privileges");
    path = mem_alloc(rq.path_len + 1);
    memcpy(path, (const char *) req + sizeof(rq), rq.path_len);
    path[rq.path_len] = 0;
    if (privsep_become((uid_t) rq.uid, (gid_t) rq.gid, &why) < 0) {
	rc = mailbox_exec_refuse(reply, "%s", STR_DATA(&why));
    } else {
	memset(&r, 0, sizeof(r));
	memset(&st, 0, sizeof(st));
	r.err = mailbox_exec_read_direct(path, rq.nofollow != 0, rq.max, &text, &st);
	r.uid = (uint32_t) st.st_uid;
	r.mode = (uint32_t) st.st_mode;
	str_append(reply, &r, sizeof(r));
	if (r.err == 0)
	    str_append(reply, STR_DATA(&text), STR_LEN(&text));
    }
    mem_free(path);
    str_release(&why);
    str_release(&text);
    return rc;
}

void    mailbox_exec_register(void)
{
    privsep_job_register(MAILBOX_EXEC_JOB_FILE, mailbox_exec_file_job);
    privsep_job_register(MAILBOX_EXEC_JOB_CMD, mailbox_exec_cmd_job);
    privsep_job_register(MAILBOX_EXEC_JOB_READ, mailbox_exec_read_job);
}
