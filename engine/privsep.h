/*
 * privsep.h - privilege separation: the engine drops root for mail_owner,
 * and a small privileged helper keeps root for a few narrow jobs.
 *
 * When the engine starts as root (and mail_owner is not root):
 *   privsep_start() puts the queue directory in order (as root, see
 *   privsep_dirs_fix), makes maillog_file writable by mail_owner, forks
 *   the HELPER (which stays root), then drops the engine process for good:
 *   initgroups, setgid, setuid to mail_owner, and checks that setuid(0)
 *   fails. Everything the engine does afterwards runs as mail_owner.
 * Not root (an ordinary user's instance, `make run`, tests), or mail_owner
 * is root: nothing happens, privsep_active() stays false and callers do
 * their work directly as before.
 *
 * The helper serves requests over a SOCK_SEQPACKET socketpair. Each
 * request is one datagram, PRIVSEP_HDR + payload (at most
 * PRIVSEP_PAYLOAD_MAX bytes), carrying with SCM_RIGHTS a reply socket (the
 * far end of a fresh per-request socketpair) and at most one more fd:
 *   PRIVSEP_JOB_BIND  the fd is an AF_INET/AF_INET6 stream socket, the
 *        payload a sockaddr of the same family whose port is one of the
 *        ports named in the configuration when the helper started (master.cf
 *        inet services, metrics_listen). The helper bind()s the engine's
 *        socket (same open file) and answers an errno (0 = bound).
 *   other types: handlers registered with privsep_job_register() before
 *        privsep_start() (the delivery steps of stages/mailbox_exec.c).
 *        The helper forks a worker per request, which runs the handler as
 *        root, single-threaded; the handler validates everything, drops to
 *        the requested user itself, and its reply goes back as one datagram
 *        (at most PRIVSEP_REPLY_MAX bytes). The optional fd is data (a sealed
 *        memfd; privsep_data_map() checks the seals and maps it).
 * Anything malformed (bad magic, size, fds, unknown type) is answered with
 * an error and never acted on. The helper exits when the engine goes away
 * (end of file on the socketpair, or PR_SET_PDEATHSIG).
 *
 * Threading: privsep_start() in the engine's main thread before any other
 * thread exists; privsep_call(), privsep_bind() from any thread, at once.
 * Diagnostics: privsep_start() returns -1 with the reason; the helper never
 * logs (it answers errors instead), privsep_call() returns them in why.
 */
#ifndef SLUICE_PRIVSEP_H
#define SLUICE_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "engine/str.h"

#define PRIVSEP_MAGIC		0x53505331u	/* "SPS1" */
#define PRIVSEP_PAYLOAD_MAX	(64 * 1024)
#define PRIVSEP_REPLY_MAX	(128 * 1024)
#define PRIVSEP_JOB_BIND	1
#define PRIVSEP_JOB_MAX		16		/* registered types: 2 .. 15 */

typedef struct PRIVSEP_HDR {
    uint32_t magic;
    uint32_t type;
    uint32_t len;			/* payload bytes after the header */
} PRIVSEP_HDR;

/*
 * A job handler, run in a forked worker of the helper (root, one thread):
 * req/len the payload, data_fd the passed fd or -1. It appends its reply
 * to reply (or an error text, see privsep_call) and returns 0, or -1 when
 * the request is refused (reply then holds the reason).
 */
typedef int (*privsep_job_fn)(const void *req, size_t len, int data_fd, STR *reply);
void    privsep_job_register(unsigned type, privsep_job_fn fn);

/* Engine side: see above. 0, or -1 with the reason in why. */
int     privsep_start(STR *why);
bool    privsep_active(void);
/* True in the helper and its workers (never ask the helper from there). */
bool    privsep_in_helper(void);
/* mail_owner's uid and gid after privsep_start() dropped to it. */
uid_t   privsep_uid(void);

/*
 * One request: 0 with the handler's reply in reply, -1 with why (refused:
 * the handler's reason; or the helper is gone).
 */
int     privsep_call(unsigned type, const void *req, size_t len, int data_fd,
		             STR *reply, STR *why);

/*
 * bind(2), except that a privileged port refused with EACCES is bound by
 * the helper when privilege separation is active. Same return and errno.
 */
int     privsep_bind(int fd, const struct sockaddr *sa, socklen_t len);

/*
 * Data for a job: a sealed memfd holding len bytes (-1 with errno);
 * privsep_data_map() maps one read-only after checking it is a sealed
 * regular file of at most max bytes (NULL with the reason; *len set).
 */
int     privsep_data_fd(const char *data, size_t len);
const char *privsep_data_map(int fd, size_t max, size_t *len, STR *why);
void    privsep_data_unmap(const char *data, size_t len);

/* In a worker: become uid/gid (initgroups when uid has a passwd entry,
 * else only gid); refuses uid 0 and checks root cannot be regained. */
int     privsep_become(uid_t uid, gid_t gid, STR *why);

/* ---- the queue directory layout (privsep_dirs.c) ---- */

/*
 * Postfix's postfix-files for the directories Sluice uses:
 *   $queue_directory            root        0755
 *   $queue_directory/pid        root        0755  (the master's pid file)
 *   $queue_directory/journal    mail_owner  0700
 *   $queue_directory/private    mail_owner  0700  (the control socket)
 *   $queue_directory/corrupt    mail_owner  0700
 *   $queue_directory/maildrop   mail_owner  1730 group setgid_group
 *                               (1733 when postdrop is not set-gid)
 * "root" is mail_owner itself for an instance run by its mail_owner (no
 * root involved). Entries inside journal/, private/ and corrupt/ must
 * belong to mail_owner too (maildrop/ is never descended into).
 */
typedef void (*privsep_dirs_report_fn)(void *ctx, bool problem, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

typedef struct PRIVSEP_OWNERS {
    uid_t   root_uid;			/* owner of the root-owned dirs */
    uid_t   owner_uid;			/* mail_owner */
    gid_t   owner_gid;
    gid_t   setgid_gid;			/* setgid_group, or (gid_t) -1 */
    bool    postdrop_setgid;		/* postdrop is set-gid setgid_group */
    char    owner_name[64];
    char    setgid_name[64];
} PRIVSEP_OWNERS;

/* Looks up mail_owner and setgid_group of the current configuration; -1
 * with the reason when mail_owner is unknown. */
int     privsep_owners(PRIVSEP_OWNERS *o, uid_t root_uid, STR *why);
/*
 * Checks (fix false) or creates, chowns and chmods (fix true) the layout
 * under qdir; report() gets each finding in postfix-script's words
 * ("not owned by postfix: /var/spool/postfix/private"). Returns the number
 * of problems left (found and not fixed).
 */
int     privsep_dirs(const char *qdir, const PRIVSEP_OWNERS *o, bool fix,
		             privsep_dirs_report_fn report, void *ctx);

/*
 * The master, as root, before it starts the engine (postfix-script's
 * create-missing): the layout above fixed, and maillog_file (a file, not
 * /dev/...) created if missing and given to mail_owner, so that the engine
 * can write and reopen it after the drop. Each change is logged when log
 * is true. Nothing happens unless root with a mail_owner other than root.
 * 0, or -1 with the reason (unknown mail_owner).
 */
int     privsep_prepare(bool log, STR *why);

#endif
