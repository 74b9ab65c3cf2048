/*
 * local.c - the local(8) delivery agent: requests, recipients, alias and
 * user lookup, .forward, mailbox delivery (see local.h; members of
 * aliases and .forward files are handled in local_expand.c).
 *
 * Threading: requests run on the agent pool's threads, one request per
 * thread at a time; all lookups (alias tables, getpwnam_r) happen in that
 * thread, and only the final file or command step runs in a helper child.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "engine/aliasfile.h"
#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "stages/delivery_log.h"
#include "stages/local_priv.h"
#include "stages/receive_service.h"

/* ---- outcomes ---- */

static int local_rank(enum delivery_status s)
{
    return s == DELIVERY_DEFER ? 2 : s == DELIVERY_BOUNCE ? 1 : 0;
}

/* Logs one delivery step and folds it into the recipient's outcome: any
 * deferral makes the whole recipient retry (as Postfix), else any bounce. */
void    local_outcome(LOCAL_STATE *st, const MAILBOX_RESULT *res)
{
    DELIVERY_RCPT *dr = st->req->rcpt + st->i;
    DELIVERY_LOG how = {.relay = "local"};

    dr->status = res->status;
    snprintf(dr->dsn, sizeof(dr->dsn), "%s", res->dsn);
    mem_free(dr->reason);
    dr->reason = mem_strdup(res->text);
    delivery_log_rcpt(st->req, st->i, &how);
    if (st->steps++ == 0 || local_rank(res->status) > local_rank(st->worst)) {
	st->worst = res->status;
	snprintf(st->dsn, sizeof(st->dsn), "%s", res->dsn);
	mem_free(st->reason);
	st->reason = mem_strdup(res->text);
    }
    if (res->status == DELIVERY_DEFER)
	st->fatal = true;
}

void    local_outcome_set(LOCAL_STATE *st, enum delivery_status status, const char *dsn,
			          const char *fmt,...)
{
    MAILBOX_RESULT res;
    va_list ap;

    res.status = status;
    snprintf(res.dsn, sizeof(res.dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(res.text, sizeof(res.text), fmt, ap);
    va_end(ap);
    local_outcome(st, &res);
}

/* ---- users ---- */

int     local_getpw(const char *name, uid_t uid, bool by_uid, LOCAL_PRIVS *p)
{
    struct passwd pw, *res = NULL;
    char    buf[16384];
    int     err;

    memset(p, 0, sizeof(*p));
    err = by_uid ? getpwuid_r(uid, &pw, buf, sizeof(buf), &res)
	: getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    if (res == NULL)
	return err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM ? 0 : -1;
    p->creds.uid = pw.pw_uid;
    p->creds.gid = pw.pw_gid;
    p->user = mem_strdup(pw.pw_name);
    p->home = mem_strdup(pw.pw_dir ? pw.pw_dir : "/");
    p->shell = mem_strdup(pw.pw_shell && *pw.pw_shell ? pw.pw_shell : "/bin/sh");
    return 1;
}

void    local_privs_release(LOCAL_PRIVS *p)
{
    mem_free(p->user);
    mem_free(p->home);
    mem_free(p->shell);
    memset(p, 0, sizeof(*p));
}

/* default_privs: the rights for root-owned aliases. Not root: ourselves. */
int     local_default_privs(LOCAL_STATE *st, LOCAL_PRIVS *p)
{
    int     rc;

    if (!mailbox_exec_privileged())
	rc = local_getpw(NULL, geteuid(), true, p);
    else
	rc = local_getpw(st->agent->default_privs, 0, false, p);
    if (rc <= 0) {
	local_outcome_set(st, DELIVERY_DEFER, "4.3.0",
			  "mail system configuration error: default_privs user %s: %s",
			  st->agent->default_privs, rc < 0 ? "lookup error" : "no such user");
	return -1;
    }
    if (mailbox_exec_privileged() && p->creds.uid == 0) {
	local_privs_release(p);
	local_outcome_set(st, DELIVERY_DEFER, "4.3.0",
			  "mail system configuration error: default_privs is root");
	return -1;
    }
    return 0;
}

/* ---- formatting ---- */

void    local_format(LOCAL_STATE *st, STR *out, int fmt_flags, bool delivered_to)
{
    const MESSAGE *m = st->req->msg;
    const RCPT *r = m->rcpt + st->req->rcpt[st->i].index;
    MAILBOX_ENVELOPE env = {
	.sender = m->sender,
	.time_s = time_real_us() / 1000000,
	.return_path = m->sender,
	.x_original_to = r->orig_rcpt && *r->orig_rcpt ? r->orig_rcpt : r->address,
	.delivered_to = delivered_to ? r->address : NULL,
    };

    mailbox_format(out, &env, fmt_flags, m->content ? m->content->data : "",
		   m->content ? m->content->len : 0);
}

/* ---- the mailbox ---- */

typedef struct LOCAL_VARS {
    LOCAL_STATE *st;
    const LOCAL_PRIVS *pw;
} LOCAL_VARS;

/* forward_path and mailbox_command attributes (Postfix's local(8) names). */
static const char *local_var(void *ctx, const char *name)
{
    LOCAL_VARS *v = ctx;
    LOCAL_STATE *st = v->st;
    static __thread char ext[1024];

    if (strcmp(name, "home") == 0)
	return v->pw->home;
    if (strcmp(name, "user") == 0)
	return v->pw->user;
    if (strcmp(name, "shell") == 0)
	return v->pw->shell;
    if (strcmp(name, "extension") == 0)
	return STR_DATA(&st->addr.extension);
    if (strcmp(name, "recipient_delimiter") == 0)
	return st->addr.delim;
    /* Sluice's short form of ${recipient_delimiter}${extension}. */
    if (strcmp(name, "recipient_extension") == 0) {
	snprintf(ext, sizeof(ext), "%s%s", st->addr.delim, STR_DATA(&st->addr.extension));
	return ext;
    }
    if (strcmp(name, "domain") == 0)
	return STR_DATA(&st->addr.domain);
    if (strcmp(name, "local") == 0)
	return STR_DATA(&st->addr.local);
    if (strcmp(name, "mailbox") == 0)
	return STR_DATA(&st->addr.local);
    if (strcmp(name, "recipient") == 0)
	return st->address;
    if (strcmp(name, "sender") == 0)
	return st->req->msg->sender;
    return NULL;
}

static void local_mailbox(LOCAL_STATE *st, const LOCAL_PRIVS *pw)
{
    LOCAL_AGENT *a = st->agent;
    MAILBOX_FILE_JOB job = {.lock = &a->lock, .chown_uid = (uid_t) -1,
    .chown_gid = (gid_t) -1, .size_limit = a->size_limit};
    MAILBOX_CREDS creds = pw->creds;
    MAILBOX_RESULT res;
    STR     path = STR_INIT, data = STR_INIT, err = STR_INIT;

    if (*a->mailbox_command) {
	LOCAL_VARS v = {st, pw};

	if (mailbox_expand(a->mailbox_command, local_var, &v, &path, &err) < 0) {
	    local_outcome_set(st, DELIVERY_DEFER, "4.3.5",
			      "mail system configuration error: mailbox_command: %s",
			      STR_DATA(&err));
	} else {
	    STR     text = STR_INIT;

	    str_printf(&text, "delivered to command: %s", STR_DATA(&path));
	    local_command(st, STR_DATA(&path), pw, STR_DATA(&text));
	    str_release(&text);
	}
	goto done;
    }
    if (*a->home_mailbox) {
	str_printf(&path, "%s/%s", pw->home, a->home_mailbox);
	job.maildir = a->home_mailbox[strlen(a->home_mailbox) - 1] == '/';
    } else {
	struct stat sst;

	str_printf(&path, "%s/%s", a->spool, pw->user);
	/*
	 * A spool directory the user may not write to (not world-writable,
	 * not the user's): create the mailbox and its lock with our rights,
	 * the file owned by the user, as Postfix does.
	 */
	if (stat(a->spool, &sst) == 0 && !(sst.st_mode & S_IWOTH) && sst.st_uid != creds.uid) {
	    mailbox_exec_self(&creds);
	    job.chown_uid = pw->creds.uid;
	    job.chown_gid = pw->creds.gid;
	}
    }
    local_format(st, &data, job.maildir ? 0 : MAILBOX_FMT_FROM_LINE | MAILBOX_FMT_QUOTE_FROM
		 | MAILBOX_FMT_BLANK_END, true);
    if (job.maildir && a->size_limit > 0 && (long long) STR_LEN(&data) > a->size_limit) {
	local_outcome_set(st, DELIVERY_BOUNCE, "5.2.2", "cannot update maildir %s: %s",
			  STR_DATA(&path), strerror(EFBIG));
	goto done;
    }
    job.path = STR_DATA(&path);
    job.data = STR_DATA(&data);
    job.len = STR_LEN(&data);
    mailbox_exec_file(&creds, &job, &res);
    local_outcome(st, &res);

done:
    str_release(&path);
    str_release(&data);
    str_release(&err);
}

/* ---- .forward ---- */

/* Reads the first forward_path file that exists; 1 found (text set), 0
 * none, -1 trouble (outcome logged). */
static int local_read_forward(LOCAL_STATE *st, const LOCAL_PRIVS *pw, STR *text)
{
    LOCAL_VARS v = {st, pw};
    char  **list = config_list_split(st->agent->forward_path, NULL);
    int     found = 0;

    for (size_t i = 0; list[i] && found == 0; i++) {
	STR     path = STR_INIT, err = STR_INIT;
	struct stat fst;

	if (mailbox_expand(list[i], local_var, &v, &path, &err) < 0) {
	    msg_warn("forward_path: %s", STR_DATA(&err));
	} else if (mailbox_exec_read(&pw->creds, STR_DATA(&path), true, 1024 * 1024, text,
				     &fst) == 0 || errno == EINVAL) {
	    /* Read as the user (or as root); trust only the user's (or root's)
	     * own regular file. */
	    if (S_ISREG(fst.st_mode)
		&& (fst.st_uid == pw->creds.uid || fst.st_uid == 0 || fst.st_uid == geteuid())
		&& !(fst.st_mode & S_IWOTH)) {
		found = 1;
	    } else {
		str_reset(text);
		msg_warn("%s: not a regular file owned by %s, or writable by others: ignored",
			 STR_DATA(&path), pw->user);
	    }
	} else if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) {
	    local_outcome_set(st, DELIVERY_DEFER, "4.3.0", "cannot open %s: %s",
			      STR_DATA(&path), strerror(errno));
	    found = -1;
	}
	str_release(&path);
	str_release(&err);
    }
    config_list_free(list);
    return found;
}

/* ---- a local name ---- */

/* The owner of an alias table's file decides the rights of its commands
 * and files; root-owned tables (and tables without a file) use default_privs. */
static int local_alias_privs(LOCAL_STATE *st, DICT *dict, LOCAL_PRIVS *p)
{
    const char *name = dict_name(dict);
    const char *colon = strchr(name, ':');
    struct stat fst;
    char    db[4096];
    int     ok = -1;

    if (colon && colon[1] == '/') {
	snprintf(db, sizeof(db), "%s.db", colon + 1);
	ok = stat(db, &fst);
	if (ok < 0)
	    ok = stat(colon + 1, &fst);
    }
    if (ok == 0 && fst.st_uid != 0 && local_getpw(NULL, fst.st_uid, true, p) > 0)
	return 0;
    return local_default_privs(st, p);
}

static int local_alias_lookup(LOCAL_STATE *st, const char *key, STR *value, DICT **which)
{
    for (size_t t = 0; t < st->agent->nalias; t++) {
	int     rc = dict_lookup(st->agent->alias[t], key, value);

	if (rc != DICT_NOTFOUND) {
	    *which = st->agent->alias[t];
	    return rc;
	}
    }
    return DICT_NOTFOUND;
}

void    local_name(LOCAL_STATE *st, const char *name, int flags, int depth)
{
    LOCAL_AGENT *a = st->agent;
    MAILBOX_ADDR na;
    LOCAL_PRIVS pw;
    STR     key = STR_INIT, value = STR_INIT, fwd = STR_INIT;
    DICT   *which = NULL;
    int     rc = DICT_NOTFOUND;

    if (depth > LOCAL_DEPTH_MAX) {
	local_outcome_set(st, DELIVERY_BOUNCE, "5.4.6", "mail forwarding loop for %s",
			  st->address);
	return;
    }
    mailbox_addr_split(&na, name, a->delims);
    for (char *s = na.local.data; s && *s; s++)
	*s = (char) tolower((unsigned char) *s);
    for (char *s = na.user.data; s && *s; s++)
	*s = (char) tolower((unsigned char) *s);

    /* Aliases: the full local part, then without the extension. */
    if (!(flags & LOCAL_NO_ALIAS)) {
	rc = local_alias_lookup(st, STR_DATA(&na.local), &value, &which);
	if (rc == DICT_NOTFOUND && STR_LEN(&na.extension))
	    rc = local_alias_lookup(st, STR_DATA(&na.user), &value, &which);
	if (rc == DICT_ERR) {
	    local_outcome_set(st, DELIVERY_DEFER, "4.3.0", "alias database unavailable: %s",
			      dict_name(which));
	    goto done;
	}
	if (rc == DICT_FOUND) {
	    LOCAL_PRIVS ap;

	    if (local_alias_privs(st, which, &ap) == 0) {
		local_expand(st, STR_DATA(&value), false, LOCAL_CLASS_ALIAS, &ap, depth + 1);
		local_privs_release(&ap);
	    }
	    goto done;
	}
    }

    /* A user of this system. */
    switch (local_getpw(STR_DATA(&na.user), 0, false, &pw)) {
    case -1:
	local_outcome_set(st, DELIVERY_DEFER, "4.3.0", "user lookup error for \"%s\"",
			  STR_DATA(&na.user));
	goto done;
    case 0:
	local_outcome_set(st, DELIVERY_BOUNCE, "5.1.1", "unknown user: \"%s\"",
			  STR_DATA(&na.user));
	goto done;
    }
    if (!(flags & LOCAL_NO_FORWARD)) {
	int     f = local_read_forward(st, &pw, &fwd);
	bool    any = false;

	/* An empty .forward (only blanks and comments) means the mailbox. */
	for (const char *p = STR_DATA(&fwd); f > 0 && *p && !any;) {
	    p += strspn(p, " \t\r\n,");
	    if (*p == '#')
		p += strcspn(p, "\n");
	    else if (*p)
		any = true;
	}
	if (f < 0) {
	    local_privs_release(&pw);
	    goto done;
	}
	if (any) {
	    local_expand(st, STR_DATA(&fwd), true, LOCAL_CLASS_FORWARD, &pw, depth + 1);
	    local_privs_release(&pw);
	    goto done;
	}
    }
    local_mailbox(st, &pw);
    local_privs_release(&pw);

done:
    mailbox_addr_release(&na);
    str_release(&key);
    str_release(&value);
    str_release(&fwd);
}

/* ---- requests ---- */

static void local_rcpt(LOCAL_AGENT *a, DELIVERY_REQUEST *req, size_t i)
{
    const MESSAGE *m = req->msg;
    const RCPT *r = m->rcpt + req->rcpt[i].index;
    LOCAL_STATE st;
    DELIVERY_RCPT *dr = req->rcpt + i;

    memset(&st, 0, sizeof(st));
    st.agent = a;
    st.req = req;
    st.i = i;
    st.address = r->address;
    mailbox_addr_split(&st.addr, r->address, a->delims);
    if (m->content && mailbox_delivered_to(m->content->data, m->content->len, r->address)) {
	local_outcome_set(&st, DELIVERY_BOUNCE, "5.4.6", "mail forwarding loop for %s",
			  r->address);
    } else {
	local_name(&st, STR_DATA(&st.addr.local), 0, 0);
	local_forward_flush(&st);
    }
    if (st.steps == 0)				/* an alias with nothing to do */
	local_outcome_set(&st, DELIVERY_SENT, "2.0.0", "discarded");
    /* The recipient's outcome: the worst step. */
    dr->status = st.worst;
    snprintf(dr->dsn, sizeof(dr->dsn), "%s", st.dsn);
    mem_free(dr->reason);
    dr->reason = st.reason;
    for (size_t f = 0; f < st.nfwd; f++)
	mem_free(st.fwd[f]);
    mem_free(st.fwd);
    mailbox_addr_release(&st.addr);
}

static void local_job(void *ctx, void *job)
{
    LOCAL_AGENT *a = ctx;
    DELIVERY_REQUEST *req = job;

    msg_service_set("local");
    for (size_t i = 0; i < req->nrcpt; i++)
	local_rcpt(a, req, i);
    snprintf(req->relay, sizeof(req->relay), "local");
    msg_service_set("qmgr");
    req->done(req);
}

void    local_agent_deliver(LOCAL_AGENT *a, DELIVERY_REQUEST *req)
{
    agent_pool_submit(a->pool, req);
}

void    local_agent_set_submit(LOCAL_AGENT *a, local_submit_fn submit)
{
    a->submit = submit;
}

/* "alias, forward, include" -> LOCAL_CLASS_* */
static int local_classes(const char *what, const char *list, STR *why)
{
    char  **items = config_list_split(list, NULL);
    int     mask = 0;

    for (size_t i = 0; items[i]; i++) {
	if (strcasecmp(items[i], "alias") == 0)
	    mask |= LOCAL_CLASS_ALIAS;
	else if (strcasecmp(items[i], "forward") == 0)
	    mask |= LOCAL_CLASS_FORWARD;
	else if (strcasecmp(items[i], "include") == 0)
	    mask |= LOCAL_CLASS_INCLUDE;
	else {
	    str_printf(why, "%s: unknown value \"%s\"", what, items[i]);
	    mask = -1;
	    break;
	}
    }
    config_list_free(items);
    return mask;
}

LOCAL_AGENT *local_agent_create(const char *service, STR *why)
{
    LOCAL_AGENT *a = MEM_NEW(LOCAL_AGENT);
    char  **maps;
    int     m;

    a->service = mem_strdup(service);
    a->submit = receive_submit_internal;
    a->home_mailbox = mem_strdup(param_service_str(service, P_HOME_MAILBOX));
    a->spool = mem_strdup(param_service_str(service, P_MAIL_SPOOL_DIRECTORY));
    a->forward_path = mem_strdup(param_service_str(service, P_FORWARD_PATH));
    a->mailbox_command = mem_strdup(param_service_str(service, P_MAILBOX_COMMAND));
    a->delims = mem_strdup(param_service_str(service, P_RECIPIENT_DELIMITER));
    a->default_privs = mem_strdup(param_service_str(service, P_DEFAULT_PRIVS));
    a->time_limit = (int) param_service_int(service, P_COMMAND_TIME_LIMIT);
    a->size_limit = param_service_int(service, P_MAILBOX_SIZE_LIMIT);
    a->lock.attempts = (int) param_service_int(service, P_DELIVER_LOCK_ATTEMPTS);
    a->lock.delay_ms = (int) param_service_int(service, P_DELIVER_LOCK_DELAY) * 1000;
    a->lock.stale_s = (int) param_service_int(service, P_STALE_LOCK_TIME);
    if ((m = mailbox_lock_methods(param_service_str(service, P_MAILBOX_DELIVERY_LOCK), why)) < 0)
	goto bad;
    a->lock.methods = m;
    if ((a->allow_commands = local_classes("allow_mail_to_commands",
			  param_service_str(service, P_ALLOW_MAIL_TO_COMMANDS), why)) < 0
	|| (a->allow_files = local_classes("allow_mail_to_files",
			  param_service_str(service, P_ALLOW_MAIL_TO_FILES), why)) < 0)
	goto bad;
    {
	char  **items = config_list_split(param_service_str(service, P_PREPEND_DELIVERED_HEADER),
					  NULL);

	for (size_t i = 0; items[i]; i++) {
	    if (strcasecmp(items[i], "command") == 0)
		a->prepend |= LOCAL_PREPEND_COMMAND;
	    else if (strcasecmp(items[i], "file") == 0)
		a->prepend |= LOCAL_PREPEND_FILE;
	    else if (strcasecmp(items[i], "forward") == 0)
		a->prepend |= LOCAL_PREPEND_FORWARD;
	    else {
		str_printf(why, "prepend_delivered_header: unknown value \"%s\"", items[i]);
		config_list_free(items);
		goto bad;
	    }
	}
	config_list_free(items);
    }
    maps = config_list_split(param_service_str(service, P_ALIAS_MAPS), &a->nalias);
    a->alias = mem_calloc(a->nalias + 1, sizeof(DICT *));
    for (size_t i = 0; i < a->nalias; i++) {
	STR     err = STR_INIT;

	if ((a->alias[i] = dict_open(maps[i], DICT_FLAG_NONE, &err)) == NULL) {
	    str_printf(why, "alias_maps: %s: %s", maps[i], STR_DATA(&err));
	    str_release(&err);
	    a->nalias = i;
	    config_list_free(maps);
	    goto bad;
	}
	str_release(&err);
    }
    config_list_free(maps);
    a->pool = agent_pool_create("local", param_service_maxproc(service), local_job, a);
    return a;

bad:
    local_agent_destroy(a);
    return NULL;
}

void    local_agent_destroy(LOCAL_AGENT *a)
{
    if (a == NULL)
	return;
    agent_pool_destroy(a->pool);
    for (size_t i = 0; i < a->nalias; i++)
	dict_close(a->alias[i]);
    mem_free(a->alias);
    mem_free(a->service);
    mem_free(a->home_mailbox);
    mem_free(a->spool);
    mem_free(a->forward_path);
    mem_free(a->mailbox_command);
    mem_free(a->delims);
    mem_free(a->default_privs);
    mem_free(a);
}
