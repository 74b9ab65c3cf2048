/*
 * msg.c - diagnostics (see msg.h).
 *
 * Lines longer than 4 KiB are cut: a log line must never allocate without
 * bound. The level prefix ("warning: ", "fatal: ", "panic: ") matches Postfix.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "engine/msg.h"

int msg_verbose;
int msg_error_count;

static msg_sink_fn msg_sink = msg_sink_stderr;
static const char *msg_progname = "sluice";
static _Thread_local const char *msg_thread_service;
static void (*msg_cleanup)(void);

void msg_sink_set(msg_sink_fn sink)
{
    __atomic_store_n(&msg_sink, sink ? sink : msg_sink_stderr, __ATOMIC_RELEASE);
}

void msg_progname_set(const char *progname)
{
    const char *slash = strrchr(progname, '/');

    msg_progname = slash ? slash + 1 : progname;
}

void msg_service_set(const char *service)
{
    msg_thread_service = service;
}

const char *msg_service(void)
{
    return msg_thread_service ? msg_thread_service : msg_progname;
}

void msg_cleanup_set(void (*fn)(void))
{
    msg_cleanup = fn;
}

void msg_sink_stderr(enum msg_level level, const char *service, const char *text)
{
    fprintf(stderr, "%s: %s\n", service, text);
}

static const char *msg_prefix[] = {"", "warning: ", "error: ", "fatal: ", "panic: "};

void msg_vprintf(enum msg_level level, const char *fmt, va_list ap)
{
    char buf[4096];
    size_t off;
    int saved_errno = errno;
    msg_sink_fn sink = __atomic_load_n(&msg_sink, __ATOMIC_ACQUIRE);

    off = strlen(msg_prefix[level]);
    memcpy(buf, msg_prefix[level], off);
    if (strcmp(fmt, "%s") == 0) {
	/* msg_info("%s", line) is common: a copy, not a printf round. */
	const char *text = va_arg(ap, const char *);
	size_t  len;

	if (text == NULL)
	    text = "(null)";			/* as glibc's printf shows it */
	len = strnlen(text, sizeof(buf) - off - 1);

	memcpy(buf + off, text, len);
	buf[off + len] = 0;
    } else {
	errno = saved_errno;			/* for %m */
	vsnprintf(buf + off, sizeof(buf) - off, fmt, ap);
    }
    sink(level, msg_service(), buf);
    errno = saved_errno;
}

#define MSG_BODY(level) do { va_list ap; va_start(ap, fmt); \
	msg_vprintf(level, fmt, ap); va_end(ap); } while (0)

void msg_info(const char *fmt, ...)
{
    MSG_BODY(MSG_INFO);
}

void msg_warn(const char *fmt, ...)
{
    MSG_BODY(MSG_WARN);
}

void msg_error(const char *fmt, ...)
{
    __atomic_add_fetch(&msg_error_count, 1, __ATOMIC_RELAXED);
    MSG_BODY(MSG_ERROR);
}

void msg_fatal(const char *fmt, ...)
{
    static int reentered;

    if (__atomic_exchange_n(&reentered, 1, __ATOMIC_ACQ_REL) == 0) {
	MSG_BODY(MSG_FATAL);
	if (msg_cleanup)
	    msg_cleanup();
    }
    exit(1);
}

void msg_panic(const char *fmt, ...)
{
    MSG_BODY(MSG_PANIC);
    if (msg_cleanup)
	msg_cleanup();
    abort();
}
