/*
 * mailbox_util.h - what the local(8), virtual(8) and pipe(8) delivery agents
 * share about writing a message out: the text as a mailbox or a command
 * sees it (From_ line, Return-Path:, X-Original-To:, Delivered-To:, >From
 * quoting, LF line ends), dotlock and fcntl locking, appending to an mbox
 * file, Maildir delivery with unique names, the Delivered-To: loop test and
 * $name expansion of forward_path/mailbox_command/pipe argv.
 *
 * Threading: every function is reentrant. mailbox_mbox_append() and
 * mailbox_maildir_deliver() allocate no memory and never log, so they may
 * run in a child process forked from the threaded engine (see
 * mailbox_exec.h): their outcome is a MAILBOX_RESULT.
 * Diagnostics: outcomes carry Postfix's DSN code and text
 * ("cannot update mailbox /var/mail/u for user u. ...").
 */
#ifndef SLUICE_MAILBOX_UTIL_H
#define SLUICE_MAILBOX_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "engine/str.h"
#include "stages/delivery.h"

/* The outcome of one delivery step (no allocation: fits a pipe write). */
typedef struct MAILBOX_RESULT {
    enum delivery_status status;
    char    dsn[8];
    char    text[512];
} MAILBOX_RESULT;

void    mailbox_result_set(MAILBOX_RESULT *res, enum delivery_status status,
			   const char *dsn, const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

/* ---- the message as a mailbox or a command sees it ---- */

#define MAILBOX_FMT_FROM_LINE	(1<<0)	/* "From sender  Mon Jan  1 00:00:00 2024" */
#define MAILBOX_FMT_QUOTE_FROM	(1<<1)	/* "From " at line start -> ">From " */
#define MAILBOX_FMT_DOT		(1<<2)	/* "." at line start -> ".." (pipe '.') */
#define MAILBOX_FMT_BLANK_END	(1<<3)	/* an empty line after the message */
#define MAILBOX_FMT_CRLF	(1<<4)	/* lines end in CRLF (pipe eol=\r\n) */

typedef struct MAILBOX_ENVELOPE {
    const char *sender;		/* "" = null sender ("MAILER-DAEMON" in From_) */
    int64_t time_s;		/* the From_ line date (local time) */
    const char *return_path;	/* Return-Path: <value>, or NULL */
    const char *x_original_to;	/* X-Original-To: value, or NULL */
    const char *delivered_to;	/* Delivered-To: value, or NULL */
} MAILBOX_ENVELOPE;

/*
 * Appends the message (canonical CRLF content, see queue/message.h) to out
 * as the flags say: LF line ends unless MAILBOX_FMT_CRLF; the last line is
 * terminated if it was not.
 */
void    mailbox_format(STR *out, const MAILBOX_ENVELOPE *env, int flags,
		               const char *content, size_t len);

/* Is there a "Delivered-To: addr" header (case-insensitive, <> ignored)? */
bool    mailbox_delivered_to(const char *content, size_t len, const char *addr);

/* ---- locking ---- */

#define MAILBOX_LOCK_FCNTL	(1<<0)
#define MAILBOX_LOCK_DOTLOCK	(1<<1)

typedef struct MAILBOX_LOCK {
    int     methods;		/* MAILBOX_LOCK_* */
    int     attempts;		/* deliver_lock_attempts (>= 1) */
    int     delay_ms;		/* deliver_lock_delay */
    int     stale_s;		/* stale_lock_time */
} MAILBOX_LOCK;

/* Parses "fcntl, dotlock" (mailbox_delivery_lock); -1 on an unknown name. */
int     mailbox_lock_methods(const char *list, STR *why);

/*
 * PATH.lock, created with O_EXCL; retried `attempts` times `delay_ms`
 * apart; a lock older than stale_s is removed. 0, or -1 with errno set
 * (EAGAIN: still held by someone else after every attempt).
 */
int     mailbox_dotlock(const char *path, const MAILBOX_LOCK *lk);
void    mailbox_dotunlock(const char *path);
/* An exclusive fcntl lock on fd, retried as above. 0, or -1 with errno. */
int     mailbox_fcntl_lock(int fd, const MAILBOX_LOCK *lk);

/* ---- delivery ---- */

/*
 * Appends data to the mbox file path under the locks; creates it 0600
 * (owned by uid/gid when uid != -1 and we may chown). A failed write is
 * undone (truncated back). Refuses a symlink or a non-regular file.
 * EDQUOT/EFBIG, or a file that would grow past size_limit (> 0), bounce
 * (5.2.2); other trouble defers.
 */
void    mailbox_mbox_append(const char *path, const char *data, size_t len,
			            const MAILBOX_LOCK *lk, uid_t uid, gid_t gid,
			            long long size_limit, MAILBOX_RESULT *res);

/*
 * Maildir delivery: DIR/{tmp,new,cur} are created when missing; the
 * message goes to tmp/NAME, is fsync'd, then linked to new/NAME (and the
 * directory fsync'd). res->text says "delivered to maildir".
 */
void    mailbox_maildir_deliver(const char *dir, const char *data, size_t len,
				        MAILBOX_RESULT *res);
/*
 * A unique Maildir file name: "SEC.MUSECPPIDQN.HOST" with '/' and ':' in
 * HOST written as \057 and \072. Returns the length, or -1 if it does not fit.
 */
int     mailbox_maildir_name(char *buf, size_t size, int64_t sec, long usec,
			             long pid, unsigned long n, const char *host);

/* ---- $name expansion ---- */

/*
 * Expands $name, ${name}, $(name), ${name?text}, ${name:text} and $$ with
 * lookup() (NULL: unknown name). An unknown name or an unterminated ${ is
 * an error (-1, reason in err). With `quote` (pipe flag q) nothing changes
 * here: values are what lookup() returns.
 */
typedef const char *(*mailbox_lookup_fn)(void *ctx, const char *name);
int     mailbox_expand(const char *text, mailbox_lookup_fn lookup, void *ctx,
		               STR *out, STR *err);

/* Address pieces: "user+ext@dom" -> local "user+ext", user "user",
 * extension "ext" (the first character of delims found), domain "dom". */
typedef struct MAILBOX_ADDR {
    STR     local;
    STR     user;
    STR     extension;
    STR     domain;
    char    delim[2];		/* the delimiter found, or "" */
} MAILBOX_ADDR;

void    mailbox_addr_split(MAILBOX_ADDR *a, const char *addr, const char *delims);
void    mailbox_addr_release(MAILBOX_ADDR *a);

#endif
