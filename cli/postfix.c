/*
 * postfix.c - the postfix(1) command: start, stop and check the mail system.
 *
 * Usage: postfix [-c config_dir] [-v] command
 *   start | start-fg | stop | abort | reload | status | check | flush |
 *   set-permissions
 * `check` and `set-permissions` go on in postfix_check.c once main.cf and
 * master.cf are known to be valid.
 * Messages and exit codes follow Postfix's postfix-script, e.g.
 *   postfix/postfix-script: the Postfix mail system is running: PID: 1234
 * The master runs from daemon_directory; stop and abort wait (up to 30 s)
 * until its pid file lock is released.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "engine/ctl.h"
#include "engine/engine.h"
#include "engine/master.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "engine/config.h"
#include "cli/postfix_check.h"

#define SCRIPT "postfix/postfix-script"

static void postfix_usage(void)
{
    fprintf(stderr, "%s: fatal: usage: postfix [-c config_dir] [-Dv] command\n", "postfix");
    exit(1);
}

static void postfix_say(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", SCRIPT);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
}

/* Waits until the master is gone (its lock released). */
static int postfix_wait_stopped(const char *queue_dir, int seconds)
{
    int64_t deadline = time_mono_ns() + (int64_t) seconds * TIME_NS_PER_SEC;

    while (master_running(queue_dir)) {
	if (time_mono_ns() > deadline)
	    return -1;
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
    }
    return 0;
}

static int postfix_exec_master(const char *config_dir, int foreground)
{
    STR path = STR_INIT;
    char *argv[6];
    int argc = 0;

    str_printf(&path, "%s/master", param_str(P_DAEMON_DIRECTORY));
    argv[argc++] = "master";
    argv[argc++] = "-c";
    argv[argc++] = (char *) config_dir;
    if (foreground)
	argv[argc++] = "-d";
    argv[argc] = NULL;
    if (foreground) {
	execv(STR_DATA(&path), argv);
	msg_fatal("execute %s: %m", STR_DATA(&path));
    }
    pid_t pid = fork();

    if (pid < 0)
	msg_fatal("fork: %m");
    if (pid == 0) {
	execv(STR_DATA(&path), argv);
	fprintf(stderr, "postfix: fatal: execute %s: %s\n", STR_DATA(&path), strerror(errno));
	_exit(1);
    }
    int status;

    /* The master forks once to detach, then the parent exits 0. */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
	 /* wait */ ;
    str_release(&path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int postfix_check(const char *config_dir)
{
    STR why = STR_INIT;
    int rc = 0;

    if (engine_config_load(config_dir, &why) < 0) {
	fprintf(stderr, "postfix: fatal: %s\n", STR_DATA(&why));
	rc = 1;
    } else if (access(param_str(P_QUEUE_DIRECTORY), W_OK) < 0 && errno != ENOENT) {
	fprintf(stderr, "%s: warning: queue_directory %s: %s\n", SCRIPT,
		param_str(P_QUEUE_DIRECTORY), strerror(errno));
	rc = 1;
    }
    str_release(&why);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    const char *queue_dir;
    const char *cmd;
    pid_t pid;
    int ch;

    msg_progname_set("postfix");
    while ((ch = getopt(argc, argv, "c:Dv")) > 0) {
	switch (ch) {
	case 'c':
	    config_dir = optarg;
	    break;
	case 'D':
	    break;
	case 'v':
	    msg_verbose++;
	    break;
	default:
	    postfix_usage();
	}
    }
    if (optind != argc - 1)
	postfix_usage();
    cmd = argv[optind];
    config_dir = config_dir_select(config_dir);
    if (postfix_check(config_dir) != 0)
	return 1;
    if (strcmp(cmd, "check") == 0)
	return postfix_check_run(config_dir, false);
    if (strcmp(cmd, "set-permissions") == 0)
	return postfix_check_run(config_dir, true);
    queue_dir = param_str(P_QUEUE_DIRECTORY);
    pid = master_running(queue_dir);

    if (strcmp(cmd, "start") == 0 || strcmp(cmd, "start-fg") == 0) {
	if (pid) {
	    postfix_say("fatal: the Postfix mail system is already running", NULL);
	    return 1;
	}
	postfix_say("starting the Postfix mail system", NULL);
	if (strcmp(cmd, "start-fg") == 0)
	    return postfix_exec_master(config_dir, 1);
	if (postfix_exec_master(config_dir, 0) != 0)
	    return 1;
	/* Return once the master holds its lock, as Postfix's start does. */
	int64_t deadline = time_mono_ns() + 10 * TIME_NS_PER_SEC;
	while (!master_running(queue_dir) && time_mono_ns() < deadline) {
	    struct timespec ts = {0, 10 * 1000 * 1000};
	    nanosleep(&ts, NULL);
	}
	if (!master_running(queue_dir)) {
	    postfix_say("fatal: mail system startup failed", NULL);
	    return 1;
	}
	return 0;
    }
    if (strcmp(cmd, "status") == 0) {
	if (pid == 0) {
	    postfix_say("the Postfix mail system is not running", NULL);
	    return 1;
	}
	fprintf(stderr, "%s: the Postfix mail system is running: PID: %ld\n", SCRIPT, (long) pid);
	if (msg_verbose) {
	    STR out = STR_INIT;
	    char *req[] = {"stats", NULL};

	    char   *qreq[] = {"queue-stats", NULL};

	    if (ctl_call(queue_dir, 1, req, &out) == 0)
		fputs(STR_DATA(&out), stdout);
	    if (ctl_call(queue_dir, 1, qreq, &out) == 0)
		fputs(STR_DATA(&out), stdout);
	    str_release(&out);
	}
	return 0;
    }
    if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "abort") == 0 || strcmp(cmd, "reload") == 0) {
	if (pid == 0) {
	    postfix_say("fatal: the Postfix mail system is not running", NULL);
	    return 1;
	}
	if (strcmp(cmd, "reload") == 0) {
	    postfix_say("refreshing the Postfix mail system", NULL);
	    return kill(pid, SIGHUP) < 0;
	}
	postfix_say(strcmp(cmd, "stop") == 0 ? "stopping the Postfix mail system"
		    : "aborting the Postfix mail system", NULL);
	if (strcmp(cmd, "abort") == 0) {
	    /* The detached master leads its process group: the engine dies too. */
	    if (kill(-pid, SIGKILL) < 0 && kill(pid, SIGKILL) < 0)
		return 1;
	    return 0;
	}
	if (kill(pid, SIGTERM) < 0)
	    return 1;
	if (postfix_wait_stopped(queue_dir, 30) < 0) {
	    postfix_say("warning: the Postfix mail system did not stop within 30 seconds", NULL);
	    return 1;
	}
	return 0;
    }
    if (strcmp(cmd, "flush") == 0) {
	STR out = STR_INIT;
	char *req[] = {"flush", NULL};
	int rc;

	if (pid == 0) {
	    postfix_say("fatal: the Postfix mail system is not running", NULL);
	    return 1;
	}
	if ((rc = ctl_call(queue_dir, 1, req, &out)) != 0)
	    fprintf(stderr, "postfix: fatal: flush: %s\n", STR_DATA(&out));
	str_release(&out);
	return rc != 0;
    }
    fprintf(stderr, "%s: fatal: unknown command: '%s'. Usage: postfix start (or stop, reload, "
	    "abort, flush, check, status, start-fg, set-permissions)\n", SCRIPT, cmd);
    return 1;
}
