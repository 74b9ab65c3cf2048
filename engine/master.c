/*
 * master.c - the supervisor (see master.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "engine/master.h"
#include "engine/engine.h"
#include "engine/fsutil.h"
#include "engine/maillog.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/privsep.h"
#include "engine/str.h"
#include "engine/timeutil.h"

#define MASTER_BACKOFF_MIN	1
#define MASTER_BACKOFF_MAX	60

/* One flag per signal: a SIGCHLD must not hide a SIGTERM that came with it. */
static volatile sig_atomic_t master_got_signal;	/* SIGTERM or SIGINT */
static volatile sig_atomic_t master_got_hup;

static void master_on_signal(int sig)
{
    if (sig == SIGHUP)
	master_got_hup = 1;
    else if (sig != SIGCHLD)
	master_got_signal = sig;
}

pid_t master_running(const char *queue_dir)
{
    STR path = STR_INIT;
    char buf[32] = "";
    pid_t pid = 0;
    int fd;

    str_printf(&path, "%s/%s", queue_dir, MASTER_PID_FILE);
    if ((fd = open(STR_DATA(&path), O_RDONLY | O_CLOEXEC)) >= 0) {
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
	    ssize_t n = read(fd, buf, sizeof(buf) - 1);

	    buf[n > 0 ? n : 0] = 0;
	    pid = (pid_t) atol(buf);
	    if (pid <= 0)
		pid = 1;			/* locked but unreadable: still running */
	}
	close(fd);
    }
    str_release(&path);
    return pid;
}

static int master_lock_pid_file(const char *queue_dir)
{
    STR path = STR_INIT;
    char buf[32];
    int fd;

    str_printf(&path, "%s/pid", queue_dir);
    if (mkdir(STR_DATA(&path), 0755) < 0 && errno != EEXIST)
	msg_fatal("mkdir %s: %m", STR_DATA(&path));
    str_reset(&path);
    str_printf(&path, "%s/%s", queue_dir, MASTER_PID_FILE);
    if ((fd = open(STR_DATA(&path), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
	msg_fatal("open lock file %s: %m", STR_DATA(&path));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
	if (errno == EWOULDBLOCK)
	    msg_fatal("the Postfix mail system is already running");
	msg_fatal("lock %s: %m", STR_DATA(&path));
    }
    snprintf(buf, sizeof(buf), "%*lu\n", 10, (unsigned long) getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, buf, strlen(buf)) != (ssize_t) strlen(buf))
	msg_fatal("write %s: %m", STR_DATA(&path));
    str_release(&path);
    return fd;					/* kept open: the lock is the pid file's meaning */
}

static pid_t master_spawn(const char *config_dir)
{
    pid_t pid = fork();

    if (pid < 0) {
	msg_warn("fork: %m");
	return -1;
    }
    if (pid == 0) {
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execl("/proc/self/exe", "sluice-engine", "-E", "-c", config_dir, (char *) NULL);
	_exit(127);
    }
    return pid;
}

int master_main(const char *config_dir, int detach)
{
    struct sigaction sa;
    sigset_t block, old;
    int backoff = MASTER_BACKOFF_MIN, lock_fd;
    pid_t child;
    int64_t started;

    if (detach) {
	pid_t pid = fork();

	if (pid < 0)
	    msg_fatal("fork: %m");
	if (pid > 0)
	    _exit(0);
	setsid();
	int nullfd = open("/dev/null", O_RDWR);

	if (nullfd >= 0) {
	    dup2(nullfd, 0);
	    if (strcmp(param_str(P_MAILLOG_FILE), "/dev/stdout") != 0)
		dup2(nullfd, 1);
	    dup2(nullfd, 2);
	    if (nullfd > 2)
		close(nullfd);
	}
    }
    maillog_open(param_str(P_SYSLOG_NAME), param_str(P_MAILLOG_FILE));
    msg_service_set("master");
    if (fs_mkdirs(param_str(P_QUEUE_DIRECTORY), 0755) < 0)
	msg_fatal("mkdir %s: %m", param_str(P_QUEUE_DIRECTORY));
    lock_fd = master_lock_pid_file(param_str(P_QUEUE_DIRECTORY));
    /* As root: queue directories and maillog_file for mail_owner. */
    {
	STR     why = STR_INIT;

	if (privsep_prepare(true, &why) < 0)
	    msg_fatal("%s", STR_DATA(&why));
	str_release(&why);
    }
    msg_info("daemon started -- version %s, configuration %s", PACKAGE_VERSION, config_dir);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = master_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);

    child = master_spawn(config_dir);
    started = time_mono_ns();
    for (;;) {
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
	    if (pid != child)
		continue;
	    child = 0;
	    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		msg_info("engine exited normally");
		goto out;
	    }
	    if (WIFSIGNALED(status))
		msg_warn("process sluice-engine pid %ld killed by signal %d",
			 (long) pid, WTERMSIG(status));
	    else
		msg_warn("process sluice-engine pid %ld exit status %d",
			 (long) pid, WEXITSTATUS(status));
	    /* A child that ran a while earns a fresh backoff. */
	    if (time_mono_ns() - started > 60 * TIME_NS_PER_SEC)
		backoff = MASTER_BACKOFF_MIN;
	    msg_warn("restarting the engine in %d seconds", backoff);
	    for (int i = 0; i < backoff * 10 && !master_got_signal; i++) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		sigprocmask(SIG_SETMASK, &old, NULL);
		nanosleep(&ts, NULL);
		sigprocmask(SIG_BLOCK, &block, NULL);
	    }
	    if (master_got_signal)
		goto out;
	    backoff = backoff * 2 > MASTER_BACKOFF_MAX ? MASTER_BACKOFF_MAX : backoff * 2;
	    child = master_spawn(config_dir);
	    started = time_mono_ns();
	}
	if (master_got_signal)
	    goto out;
	if (master_got_hup) {
	    master_got_hup = 0;
	    msg_info("reload -- version %s, configuration %s", PACKAGE_VERSION, config_dir);
	    if (engine_config_load(config_dir, NULL) == 0) {
		maillog_close();
		maillog_open(param_str(P_SYSLOG_NAME), param_str(P_MAILLOG_FILE));
	    }
	    if (child > 0)
		kill(child, SIGHUP);
	}
	sigsuspend(&old);
    }
out:
    if (child > 0) {
	int status;

	kill(child, SIGTERM);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
	     /* wait */ ;
    }
    msg_info("terminating on signal %d", master_got_signal ? (int) master_got_signal : 0);
    maillog_close();
    close(lock_fd);
    return 0;
}
