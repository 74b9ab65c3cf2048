/*
 * mailbox_exec.h - running delivery work with a recipient's privileges,
 * and running delivery commands, for local(8), virtual(8) and pipe(8).
 *
 * When the engine runs as root, work for another user runs in a forked
 * child that drops to that uid/gid (setgroups, setgid, setuid) and reports
 * its MAILBOX_RESULT back through a pipe; the worker thread that asked
 * waits for it. A thread of the engine never changes its own credentials.
 * When the engine is not root, everything runs as the invoking user, in
 * the calling thread (file work) or a plain child (commands).
 *
 * Commands get the message on stdin, their stdout and stderr are read
 * together (the first line is kept for the bounce reason), they run in
 * their own process group, and the whole group is killed at the time
 * limit. The child does only async-signal-safe work between fork and exec.
 *
 * Threading: any thread; each call owns its child.
 * Diagnostics: outcomes as MAILBOX_RESULT with Postfix's texts
 * ("Command died with status 1: \"cmd\". Command output: ...").
 */
#ifndef SLUICE_MAILBOX_EXEC_H
#define SLUICE_MAILBOX_EXEC_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/str.h"
#include "stages/mailbox_util.h"

typedef struct MAILBOX_CREDS {
    uid_t   uid;
    gid_t   gid;
} MAILBOX_CREDS;

/* Credentials of the engine itself (no change). */
void    mailbox_exec_self(MAILBOX_CREDS *c);
/* Would work for c need a child that changes credentials? */
bool    mailbox_exec_need_child(const MAILBOX_CREDS *c);

/* fn(ctx, res) with c's privileges; fn must not allocate or log when a
 * child is used (see mailbox_util.h). */
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
