/*
 * maillog.c - the logging thread (see maillog.h).
 *
 * Each line is formatted by the caller into one allocation and pushed on an
 * squeue; the writer takes everything waiting and writes it with writev.
 * A fatal or panic line is written synchronously too (maillog_flush), so it
 * is not lost when the process exits right after. The pid is taken at
 * maillog_open(); the prefix (time stamp, host, name/service[pid]) is
 * formatted once per second per thread and copied in front of each line.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "engine/maillog.h"
#include "engine/mem.h"
#include "engine/squeue.h"
#include "engine/timeutil.h"

#define MAILLOG_MAX_PENDING	(8u << 20)	/* bytes waiting before we drop */
#define MAILLOG_IOV		64
#define MAILLOG_GATHER_NS	(5 * 1000 * 1000)	/* log lines wait at most this */

typedef struct MAILLOG_LINE {
    SQUEUE_NODE node;
    size_t  len;
    int     priority;
    char    text[];
} MAILLOG_LINE;

static SQUEUE maillog_queue;
static pthread_t maillog_tid;
static int maillog_running;
static int maillog_stop_flag;
static int maillog_reopen_flag;
static int maillog_fd = -1;
static int maillog_syslog;
static char *maillog_path;
static char *maillog_name;
static char maillog_host[256];
static uint64_t maillog_pending;
static uint64_t maillog_drop_count;
static uint64_t maillog_written;	/* lines, for flush */
static uint64_t maillog_queued;
static long maillog_pid;		/* getpid() is a system call per line otherwise */

/* Per thread: the syslog stamp of the last second formatted (localtime_r
 * and strftime cost more than the rest of a line). */
static _Thread_local time_t maillog_stamp_when = -1;
static _Thread_local char maillog_stamp[32];

static void maillog_open_target(void)
{
    if (maillog_syslog) {
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	strcpy(sun.sun_path, "/dev/log");
	maillog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (maillog_fd >= 0 && connect(maillog_fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
	    close(maillog_fd);
	    maillog_fd = -1;
	}
    } else if (strcmp(maillog_path, "/dev/stdout") == 0) {
	maillog_fd = dup(1);
    } else if (strcmp(maillog_path, "/dev/stderr") == 0) {
	maillog_fd = dup(2);
    } else {
	maillog_fd = open(maillog_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (maillog_fd < 0)
	    fprintf(stderr, "%s: warning: open %s: %s\n", maillog_name, maillog_path, strerror(errno));
    }
}

static void maillog_write_batch(MAILLOG_LINE **lines, size_t n)
{
    struct iovec iov[MAILLOG_IOV];

    if (maillog_fd < 0)
	return;
    if (maillog_syslog) {
	/* One datagram per line. */
	for (size_t i = 0; i < n; i++) {
	    char buf[8192];
	    int len = snprintf(buf, sizeof(buf), "<%d>%.*s", LOG_MAIL | lines[i]->priority,
			       (int) lines[i]->len - 1, lines[i]->text);

	    if (send(maillog_fd, buf, len < (int) sizeof(buf) ? (size_t) len : sizeof(buf) - 1,
		     MSG_NOSIGNAL) < 0) {
		/* syslogd restarted: reconnect once. */
		close(maillog_fd);
		maillog_open_target();
	    }
	}
	return;
    }
    for (size_t i = 0; i < n; i++) {
	iov[i].iov_base = lines[i]->text;
	iov[i].iov_len = lines[i]->len;
    }
    /* Short writes to a regular file mean a full disk: nothing better to do. */
    (void) !writev(maillog_fd, iov, (int) n);	/* not logged: that would loop */
}

static void *maillog_thread(void *arg)
{
    MAILLOG_LINE *lines[MAILLOG_IOV];
    SQUEUE_BATCH batch;
    SQUEUE_NODE *node;

    (void) pthread_setname_np(pthread_self(), "maillog");
    for (;;) {
	if (__atomic_exchange_n(&maillog_reopen_flag, 0, __ATOMIC_ACQ_REL)) {
	    if (maillog_fd >= 0)
		close(maillog_fd);
	    maillog_open_target();
	}
	if (!squeue_take(&maillog_queue, &batch)) {
	    if (__atomic_load_n(&maillog_stop_flag, __ATOMIC_ACQUIRE))
		break;
	    squeue_wait(&maillog_queue, -1);
	    continue;
	}
	size_t n = 0, bytes = 0, count = 0;

	while ((node = squeue_batch_next(&batch)) != NULL) {
	    lines[n] = SQUEUE_CONTAINER(node, MAILLOG_LINE, node);
	    bytes += lines[n]->len;
	    if (++n == MAILLOG_IOV) {
		maillog_write_batch(lines, n);
		for (size_t i = 0; i < n; i++)
		    mem_free(lines[i]);
		count += n;
		n = 0;
	    }
	}
	maillog_write_batch(lines, n);
	for (size_t i = 0; i < n; i++)
	    mem_free(lines[i]);
	count += n;
	__atomic_sub_fetch(&maillog_pending, bytes, __ATOMIC_RELAXED);
	__atomic_add_fetch(&maillog_written, count, __ATOMIC_RELEASE);

	/*
	 * While lines keep coming, let them gather for a moment without
	 * announcing a sleeper: producers then never pay for a wake-up, and
	 * one writev carries many lines. An idle writer sleeps on the queue.
	 */
	struct timespec gather = {0, MAILLOG_GATHER_NS};
	nanosleep(&gather, NULL);
    }
    return NULL;
}

/*
 * The line's prefix ("Mon dd hh:mm:ss host name/service[pid]: "), kept per
 * thread and rebuilt when the second or the service changes: the text is
 * then copied, not formatted (about seven lines per message).
 */
static _Thread_local char maillog_prefix[512];
static _Thread_local size_t maillog_prefix_len;
static _Thread_local time_t maillog_prefix_when = -1;
static _Thread_local char maillog_prefix_service[64];
static _Thread_local unsigned maillog_prefix_gen;
static unsigned maillog_gen = 1;	/* maillog_open(): names may change */

static void maillog_prefix_build(time_t now, const char *service)
{
    int     n;

    if (now != maillog_stamp_when) {
	time_fmt_syslog(maillog_stamp, sizeof(maillog_stamp), now);
	maillog_stamp_when = now;
    }
    if (maillog_syslog)				/* syslogd adds the host */
	n = snprintf(maillog_prefix, sizeof(maillog_prefix), "%s %s/%s[%ld]: ",
		     maillog_stamp, maillog_name, service, maillog_pid);
    else
	n = snprintf(maillog_prefix, sizeof(maillog_prefix), "%s %s %s/%s[%ld]: ",
		     maillog_stamp, maillog_host, maillog_name, service, maillog_pid);
    maillog_prefix_len = n < 0 ? 0 : (size_t) n < sizeof(maillog_prefix)
	? (size_t) n : sizeof(maillog_prefix) - 1;
    /* A service name too long to remember is never taken as cached. */
    if (strlen(service) < sizeof(maillog_prefix_service)) {
	strcpy(maillog_prefix_service, service);
	maillog_prefix_when = now;
	maillog_prefix_gen = __atomic_load_n(&maillog_gen, __ATOMIC_RELAXED);
    } else {
	maillog_prefix_when = -1;
    }
}

static void maillog_enqueue(int priority, const char *service, const char *text)
{
    size_t  tlen = strlen(text);
    MAILLOG_LINE *line;
    uint64_t dropped;

    if (__atomic_load_n(&maillog_pending, __ATOMIC_RELAXED) > MAILLOG_MAX_PENDING) {
	__atomic_add_fetch(&maillog_drop_count, 1, __ATOMIC_RELAXED);
	return;
    }
    time_t  now = time(NULL);

    if (now != maillog_prefix_when || strcmp(service, maillog_prefix_service) != 0
	|| maillog_prefix_gen != __atomic_load_n(&maillog_gen, __ATOMIC_RELAXED))
	maillog_prefix_build(now, service);
    line = mem_alloc(sizeof(*line) + maillog_prefix_len + tlen + 2);
    memcpy(line->text, maillog_prefix, maillog_prefix_len);
    memcpy(line->text + maillog_prefix_len, text, tlen);
    line->len = maillog_prefix_len + tlen;
    line->text[line->len++] = '\n';
    line->text[line->len] = 0;
    line->priority = priority;
    __atomic_add_fetch(&maillog_pending, line->len, __ATOMIC_RELAXED);
    __atomic_add_fetch(&maillog_queued, 1, __ATOMIC_RELAXED);
    squeue_push(&maillog_queue, &line->node);
    if ((dropped = __atomic_exchange_n(&maillog_drop_count, 0, __ATOMIC_RELAXED)) != 0) {
	char note[96];

	snprintf(note, sizeof(note), "warning: maillog: dropped %llu lines (logging overloaded)",
		 (unsigned long long) dropped);
	maillog_enqueue(LOG_WARNING, service, note);
    }
}

void maillog_sink(enum msg_level level, const char *service, const char *text)
{
    static const int prio[] = {LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT, LOG_CRIT};

    if (!__atomic_load_n(&maillog_running, __ATOMIC_ACQUIRE)) {
	msg_sink_stderr(level, service, text);
	return;
    }
    maillog_enqueue(prio[level], service, text);
    if (level >= MSG_FATAL)
	maillog_flush();
}

void maillog_open(const char *syslog_name, const char *path)
{
    int err;
    char *dot;

    maillog_name = mem_strdup(syslog_name && *syslog_name ? syslog_name : "postfix");
    maillog_syslog = (path == NULL || *path == 0);
    maillog_path = mem_strdup(path ? path : "");
    if (gethostname(maillog_host, sizeof(maillog_host) - 1) < 0)
	strcpy(maillog_host, "localhost");
    if ((dot = strchr(maillog_host, '.')) != NULL)
	*dot = 0;
    squeue_init(&maillog_queue, SQUEUE_WAKE_FUTEX);
    maillog_pid = (long) getpid();
    __atomic_add_fetch(&maillog_gen, 1, __ATOMIC_RELAXED);
    maillog_open_target();
    maillog_stop_flag = 0;
    if ((err = pthread_create(&maillog_tid, NULL, maillog_thread, NULL)) != 0)
	msg_fatal("maillog: pthread_create: %s", strerror(err));
    __atomic_store_n(&maillog_running, 1, __ATOMIC_RELEASE);
    msg_sink_set(maillog_sink);
}

void maillog_reopen(void)
{
    __atomic_store_n(&maillog_reopen_flag, 1, __ATOMIC_RELEASE);
    squeue_kick(&maillog_queue);
}

void maillog_flush(void)
{
    uint64_t target = __atomic_load_n(&maillog_queued, __ATOMIC_ACQUIRE);
    int64_t deadline = time_mono_ns() + 2 * TIME_NS_PER_SEC;

    if (!__atomic_load_n(&maillog_running, __ATOMIC_ACQUIRE)
	|| pthread_equal(pthread_self(), maillog_tid))
	return;
    while (__atomic_load_n(&maillog_written, __ATOMIC_ACQUIRE) < target
	   && time_mono_ns() < deadline) {
	squeue_kick(&maillog_queue);
	struct timespec ts = {0, 1000000};
	nanosleep(&ts, NULL);
    }
}

void maillog_close(void)
{
    if (!__atomic_load_n(&maillog_running, __ATOMIC_ACQUIRE))
	return;
    msg_sink_set(msg_sink_stderr);
    __atomic_store_n(&maillog_running, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&maillog_stop_flag, 1, __ATOMIC_RELEASE);
    squeue_close(&maillog_queue);
    pthread_join(maillog_tid, NULL);
    if (maillog_fd >= 0)
	close(maillog_fd);
    maillog_fd = -1;
    squeue_destroy(&maillog_queue);
    mem_free(maillog_path);
    mem_free(maillog_name);
}

uint64_t maillog_dropped(void)
{
    return __atomic_load_n(&maillog_drop_count, __ATOMIC_RELAXED);
}
