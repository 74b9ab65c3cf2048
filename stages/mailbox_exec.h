/*
 * mailbox_exec.h - running delivery work with a recipient's privileges,
 * and running delivery commands, for local(8), virtual(8) and pipe(8).
 *
 * Three ways, chosen per call:
 *   - the engine is root (privilege separation off: mail_owner is root):
 *     work for another user runs in a forked child that drops to that
 *     uid/gid (setgroups, setgid, setuid) and reports its MAILBOX_RESULT
 *     back through a pipe; the worker thread that asked waits for it;
 *   - the engine dropped to mail_owner (engine/privsep.h): the same work is
 *     a request to the privileged helper, whose worker validates it, drops
 *     to the user and does it; the message goes over as a sealed memfd;
 *   - the engine was never root: everything runs as the invoking user, in
 *     the calling thread (file work) or a plain child (commands).
 * A thread of the engine never changes its own credentials.
 *
 * What the helper accepts (mailbox_exec.c): a file delivery (mbox append or
 * Maildir) as a non-root uid and gid, or as root only for an mbox directly
 * in mail_spool_directory, created for (chowned to) a non-root user; a
 * command as a real (passwd) non-root user with a non-root group, an
 * absolute program path, at most 1024 arguments and 1024 environment
 * entries; reading a file as a non-root user and group (at most
 * MAILBOX_EXEC_READ_MAX bytes). Data is at most 2 * message_size_limit +
 * 1 MiB.
 *
 * Commands get the message on stdin, their stdout and stderr are read
 * together (the first line is kept for the bounce reason), they run in
 * their own process group, and the whole group is killed at the time
 * limit. The child does only async-signal-safe work between fork and exec.
 *
 * Threading: any thread; each call owns its child or helper request.
 * Diagnostics: outcomes as MAILBOX_RESULT with Postfix's texts
 * ("Command died with status 1: \"cmd\". Command output: ..."); a refused
 * or failed helper request defers (4.3.0) and is logged.
 */
#ifndef SLUICE_MAILBOX_EXEC_H
#define SLUICE_MAILBOX_EXEC_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/stat.h>

#include "engine/str.h"
#include "stages/mailbox_util.h"

typedef struct MAILBOX_CREDS {
    uid_t   uid;
    gid_t   gid;
} MAILBOX_CREDS;

/* Credentials of the engine itself (no change); root's (0, 0) when the
 * engine reaches root through the privileged helper. */
void    mailbox_exec_self(MAILBOX_CREDS *c);
/* Would work for c need a child (or the helper) that changes credentials? */
bool    mailbox_exec_need_child(const MAILBOX_CREDS *c);
/* May work run as other users: root, or the privileged helper is up.
 * (Where agents used to ask geteuid() == 0.) */
bool    mailbox_exec_privileged(void);
/* Registers the helper's job handlers; the engine calls it before
 * privsep_start() forks the helper. */
void    mailbox_exec_register(void);

/*
 * One file delivery with c's privileges: Maildir (maildir) or an mbox
 * append (lock, chown_uid/chown_gid for a file it creates, size_limit),
 * as mailbox_maildir_deliver()/mailbox_mbox_append() in mailbox_util.h.
 */
typedef struct MAILBOX_FILE_JOB {
    const char *path;
    const char *data;
    size_t  len;
    bool    maildir;
    const MAILBOX_LOCK *lock;
    uid_t   chown_uid;		/* (uid_t) -1: none */
    gid_t   chown_gid;
    long long size_limit;
} MAILBOX_FILE_JOB;

void    mailbox_exec_file(const MAILBOX_CREDS *c, const MAILBOX_FILE_JOB *job,
			          MAILBOX_RESULT *res);

/* fn(ctx, res) with c's privileges; fn must not allocate or log when a
 * child is used (see mailbox_util.h). Not possible through the privileged
 * helper (fn and ctx cannot cross): there it defers; use
 * mailbox_exec_file(). */
/*
 * Reads a small file (.forward, :include:) with c's privileges: through the
 * helper when the engine dropped root, else directly with the engine's own
 * rights. Opens with O_NOFOLLOW when nofollow; at most max bytes (and at
 * most MAILBOX_EXEC_READ_MAX through the helper) are kept. 0 with the text
 * and the file's fstat (st_uid, st_mode; a regular file only), or -1 with
 * errno (ENOENT, EACCES, EINVAL: not a regular file, EPERM: refused).
 */
#define MAILBOX_EXEC_READ_MAX	(120 * 1024)
int     mailbox_exec_read(const MAILBOX_CREDS *c, const char *path, bool nofollow,
			          size_t max, STR *out, struct stat *st);

typedef void (*mailbox_exec_fn)(void *ctx, MAILBOX_RESULT *res);
void    mailbox_exec_as(const MAILBOX_CREDS *c, mailbox_exec_fn fn, void *ctx,
			        MAILBOX_RESULT *res);

typedef struct MAILBOX_CMD {
    const char *path;		/* executable; "/bin/sh" for shell commands */
    char  *const *argv;
    char  *const *envp;
    const char *cwd;		/* NULL or unreachable: "/" */
    const char *input;		/* stdin */
    size_t  input_len;
    int     time_limit;		/* seconds; 0: none */
} MAILBOX_CMD;

typedef struct MAILBOX_CMD_STATUS {
    bool    started;		/* false: fork/pipe failed (errno text in output) */
    bool    timed_out;
    int     exit_status;	/* when exited normally */
    int     signal;		/* when killed, else 0 */
    STR     output;		/* first bytes of stdout+stderr */
} MAILBOX_CMD_STATUS;

/* Runs the command to completion (or the time limit) with c's privileges. */
void    mailbox_exec_command(const MAILBOX_CREDS *c, const MAILBOX_CMD *cmd,
			             MAILBOX_CMD_STATUS *st);
void    mailbox_exec_status_release(MAILBOX_CMD_STATUS *st);

/*
 * Postfix's sys_exits table: 0 sent; EX_TEMPFAIL (75) and EX_OSERR (71)
 * defer; other EX_* codes bounce with their DSN (EX_NOUSER 67 5.1.1,
 * EX_UNAVAILABLE 69 5.3.0, ...); other codes bounce 5.3.0 "Command died
 * with status N". A signal defers, the time limit bounces. `what` names
 * the command in the text; the first output line is appended.
 */
void    mailbox_exec_result(const MAILBOX_CMD_STATUS *st, const char *what,
			            const char *sent_text, MAILBOX_RESULT *res);
/* The sys_exits entry for a code: dsn and text, NULL when not an EX_ code. */
const char *mailbox_exec_sysexit(int code, const char **dsn);

#endif
