/*
 * maillog.h - Postfix's maillog, written by one logging thread.
 *
 * Lines look exactly like Postfix's, so pflogsumm and logwatch read them:
 *   Nov 25 19:02:39 host syslog_name/service[pid]: text
 * They go to maillog_file (a file, or /dev/stdout) or, when that is empty, to
 * syslog through /dev/log (facility mail). Stages never block on logging: a
 * line is queued, and when more than a bounded amount is waiting new lines
 * are dropped and counted (reported on the next line that gets through).
 *
 * Threading: maillog_sink() may be called from any thread. maillog_open()
 * and maillog_close() from the main thread only.
 */
#ifndef SLUICE_MAILLOG_H
#define SLUICE_MAILLOG_H

#include <stdint.h>

#include "engine/msg.h"

/* path NULL or "": syslog. Installs maillog_sink as the msg sink. */
void maillog_open(const char *syslog_name, const char *path);
void maillog_reopen(void);		/* after rotation (postfix reload) */
void maillog_flush(void);		/* wait until queued lines are written */
void maillog_close(void);		/* flushes; restores the stderr sink */
void maillog_sink(enum msg_level level, const char *service, const char *text);
uint64_t maillog_dropped(void);

#endif
