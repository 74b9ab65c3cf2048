/*
 * msg.h - diagnostics: msg_info/warn/error/fatal/panic.
 *
 * Each thread names the service it works for (msg_service_set("smtpd")), so
 * log lines read "syslog_name/smtpd[pid]: text" exactly as Postfix's do.
 * Output goes through one sink function: stderr by default (commands print
 * "postconf: warning: text"), the maillog writer once the engine installs it.
 * Thread safe. msg_fatal exits(1) after the line is written; msg_panic aborts.
 */
#ifndef SLUICE_MSG_H
#define SLUICE_MSG_H

#include <stdarg.h>
#include <stdbool.h>

enum msg_level { MSG_INFO, MSG_WARN, MSG_ERROR, MSG_FATAL, MSG_PANIC };

/* The sink receives the level, the service name and the formatted text. */
typedef void (*msg_sink_fn)(enum msg_level level, const char *service, const char *text);

void msg_sink_set(msg_sink_fn sink);
void msg_sink_stderr(enum msg_level level, const char *service, const char *text);
void msg_service_set(const char *service);	/* this thread's name, static storage */
const char *msg_service(void);
void msg_progname_set(const char *progname);	/* default service of every thread */
void msg_cleanup_set(void (*fn)(void));		/* run by msg_fatal before exit */

extern int msg_verbose;
extern int msg_error_count;

void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_vprintf(enum msg_level level, const char *fmt, va_list ap);

#endif
