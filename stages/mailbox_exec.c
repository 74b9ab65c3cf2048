/*
 * mailbox_exec.c - privileged helper children and delivery commands (see
 * mailbox_exec.h).
 *
 * Between fork() and exec() (or _exit()) the child calls only
 * async-signal-safe functions, plus the allocation-free delivery functions
 * of mailbox_util.c for file work: other threads of the engine may hold
 * locks that the child would never see released.
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
#include <sys/syscall.h>
#include <sys/wait.h>

#include "engine/timeutil.h"
#include "stages/mailbox_exec.h"

#define MAILBOX_EXEC_OUTPUT_MAX	4096	/* output bytes kept for the reason */

void    mailbox_exec_self(MAILBOX_CREDS *c)
{
    c->uid = geteuid();
    c->gid = getegid();
}

bool    mailbox_exec_need_child(const MAILBOX_CREDS *c)
{
    return geteuid() == 0 && (c->uid != 0 || c->gid != getegid());
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

void    mailbox_exec_command(const MAILBOX_CREDS *c, const MAILBOX_CMD *cmd,
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
