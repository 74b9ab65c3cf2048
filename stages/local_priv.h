/*
 * local_priv.h - internals shared by the files of the local(8) agent:
 * local.c (agent, requests, recipients, mailbox), local_expand.c (alias,
 * .forward and :include: members: commands, files, forwarding).
 *
 * Threading: a LOCAL_AGENT is read-only after creation; a LOCAL_STATE
 * belongs to the worker thread delivering one recipient.
 */
#ifndef SLUICE_LOCAL_PRIV_H
#define SLUICE_LOCAL_PRIV_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/dict.h"
#include "engine/str.h"
#include "stages/agent_pool.h"
#include "stages/local.h"
#include "stages/mailbox_exec.h"
#include "stages/mailbox_util.h"

/* Delivery contexts, for allow_mail_to_commands/files. */
#define LOCAL_CLASS_ALIAS	(1<<0)
#define LOCAL_CLASS_FORWARD	(1<<1)
#define LOCAL_CLASS_INCLUDE	(1<<2)

/* prepend_delivered_header. */
#define LOCAL_PREPEND_COMMAND	(1<<0)
#define LOCAL_PREPEND_FILE	(1<<1)
#define LOCAL_PREPEND_FORWARD	(1<<2)

#define LOCAL_DEPTH_MAX		20	/* nested :include: and self references */

struct LOCAL_AGENT {
    char   *service;
    AGENT_POOL *pool;
    local_submit_fn submit;
    DICT  **alias;
    size_t  nalias;
    char   *home_mailbox;
    char   *spool;
    char   *forward_path;
    char   *mailbox_command;
    char   *delims;
    char   *default_privs;
    int     allow_commands;		/* LOCAL_CLASS_* */
    int     allow_files;
    int     prepend;			/* LOCAL_PREPEND_* */
    MAILBOX_LOCK lock;
    int     time_limit;
    long long size_limit;
};

/* Whose rights a step runs with, and the user it is for. */
typedef struct LOCAL_PRIVS {
    MAILBOX_CREDS creds;
    char   *user;
    char   *home;
    char   *shell;
} LOCAL_PRIVS;

typedef struct LOCAL_STATE {
    LOCAL_AGENT *agent;
    DELIVERY_REQUEST *req;
    size_t  i;				/* into req->rcpt */
    const char *address;		/* the recipient */
    MAILBOX_ADDR addr;
    char  **fwd;			/* addresses to forward to */
    size_t  nfwd, fwd_cap;
    int     steps;			/* delivery steps logged */
    enum delivery_status worst;
    char    dsn[8];
    char   *reason;
    bool    fatal;			/* stop expanding (deferred) */
} LOCAL_STATE;

/* local.c */
void    local_outcome(LOCAL_STATE *st, const MAILBOX_RESULT *res);
void    local_outcome_set(LOCAL_STATE *st, enum delivery_status status, const char *dsn,
			          const char *fmt,...) __attribute__((format(printf, 4, 5)));
/* Deliver to a local name: alias, user, .forward, mailbox (flags below). */
#define LOCAL_NO_ALIAS		(1<<0)
#define LOCAL_NO_FORWARD	(1<<1)
void    local_name(LOCAL_STATE *st, const char *name, int flags, int depth);
int     local_getpw(const char *name, uid_t uid, bool by_uid, LOCAL_PRIVS *p);
void    local_privs_release(LOCAL_PRIVS *p);
int     local_default_privs(LOCAL_STATE *st, LOCAL_PRIVS *p);
void    local_format(LOCAL_STATE *st, STR *out, int fmt_flags, bool delivered_to);

/* local_expand.c */
/* Members of an alias value or of .forward / :include: text (one or more
 * lines, '#' comments). */
void    local_expand(LOCAL_STATE *st, const char *text, bool multi_line, int klass,
		             const LOCAL_PRIVS *privs, int depth);
void    local_command(LOCAL_STATE *st, const char *command, const LOCAL_PRIVS *privs,
		              const char *sent_text);
void    local_file(LOCAL_STATE *st, const char *path, const LOCAL_PRIVS *privs, int fmt_extra);
void    local_forward_flush(LOCAL_STATE *st);

#endif
