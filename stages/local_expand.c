/*
 * local_expand.c - members of aliases, .forward and :include: files for
 * the local(8) agent: addresses (collected, then forwarded as one new
 * message through the cleanup stage), "|command", "/file", ":include:",
 * "\user" (see local.h).
 *
 * Threading: runs on the agent's worker thread that owns the LOCAL_STATE;
 * forwarding waits for the cleanup stage's answer on a condition variable.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "engine/aliasfile.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/timeutil.h"
#include "queue/queue_id.h"
#include "stages/local_priv.h"

typedef struct LOCAL_MEMBER_CTX {
    LOCAL_STATE *st;
    int     klass;
    const LOCAL_PRIVS *privs;
    int     depth;
} LOCAL_MEMBER_CTX;

static const char *local_class_name(int klass)
{
    return klass == LOCAL_CLASS_ALIAS ? "alias" : klass == LOCAL_CLASS_FORWARD ? "forward"
	: "include";
}

/* ---- forwarding ---- */

static void local_forward_add(LOCAL_STATE *st, const char *addr)
{
    for (size_t i = 0; i < st->nfwd; i++)
	if (strcasecmp(st->fwd[i], addr) == 0)
	    return;				/* duplicate filter */
    if (st->nfwd == st->fwd_cap) {
	st->fwd_cap = st->fwd_cap ? 2 * st->fwd_cap : 8;
	st->fwd = mem_realloc(st->fwd, st->fwd_cap * sizeof(char *));
    }
    st->fwd[st->nfwd++] = mem_strdup(addr);
}

typedef struct LOCAL_SUBMIT_WAIT {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int     done;
    int     code;
    char    text[512];
} LOCAL_SUBMIT_WAIT;

static void local_submit_done(void *ctx, int code, const char *text)
{
    LOCAL_SUBMIT_WAIT *w = ctx;

    pthread_mutex_lock(&w->lock);
    w->code = code;
    snprintf(w->text, sizeof(w->text), "%s", text ? text : "");
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* One new message to every collected address, as Postfix's local(8)
 * forwards through cleanup: same sender, envelope DSN attributes and
 * content, with our Delivered-To: on top (the loop detector). */
void    local_forward_flush(LOCAL_STATE *st)
{
    const MESSAGE *om = st->req->msg;
    const RCPT *orc = om->rcpt + st->req->rcpt[st->i].index;
    MESSAGE *m;
    STR     content = STR_INIT;
    LOCAL_SUBMIT_WAIT w;

    if (st->nfwd == 0)
	return;
    if (st->fatal) {
	/* The recipient is retried as a whole; forwarding now would duplicate. */
	return;
    }
    m = message_new();
    queue_id_next(m->queue_id);
    m->arrival_us = time_real_us();
    mem_free(m->sender);
    m->sender = mem_strdup(om->sender);
    m->client_name = mem_strdup("localhost");
    m->client_addr = mem_strdup("127.0.0.1");
    m->protocol = mem_strdup("LOCAL");
    m->dsn_envid = om->dsn_envid ? mem_strdup(om->dsn_envid) : NULL;
    m->dsn_ret = om->dsn_ret;
    m->body_type = om->body_type;
    m->smtputf8 = om->smtputf8;
    for (size_t i = 0; i < st->nfwd; i++) {
	RCPT   *r = message_add_rcpt(m, st->fwd[i], orc->orig_rcpt ? orc->orig_rcpt
				     : orc->address);

	r->dsn_notify = orc->dsn_notify;
	r->dsn_orcpt = orc->dsn_orcpt ? mem_strdup(orc->dsn_orcpt) : NULL;
    }
    if (st->agent->prepend & LOCAL_PREPEND_FORWARD)
	str_printf(&content, "Delivered-To: %s\r\n", st->address);
    if (om->content)
	str_append(&content, om->content->data, om->content->len);
    m->content = blob_adopt(&content);

    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    if (st->agent->submit(m, 0, local_submit_done, &w) < 0) {
	message_free(m);
	w.code = 451;
	snprintf(w.text, sizeof(w.text), "4.3.0 mail system is shutting down");
    } else {
	pthread_mutex_lock(&w.lock);
	while (!w.done)
	    pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);

    if (w.code >= 200 && w.code < 300)
	local_outcome_set(st, DELIVERY_SENT, "2.0.0", "forwarded as %s", w.text);
    else if (w.code >= 500)
	local_outcome_set(st, DELIVERY_BOUNCE, "5.3.0", "cannot forward: %d %s", w.code, w.text);
    else
	local_outcome_set(st, DELIVERY_DEFER, "4.3.0", "cannot forward: %d %s", w.code, w.text);
}

/* ---- commands ---- */

static void local_env_add(char ***env, size_t *n, const char *name, const char *value)
{
    STR     s = STR_INIT;

    str_printf(&s, "%s=%s", name, value ? value : "");
    *env = mem_realloc(*env, (*n + 2) * sizeof(char *));
    (*env)[(*n)++] = str_steal(&s, NULL);
    (*env)[*n] = NULL;
}

void    local_command(LOCAL_STATE *st, const char *command, const LOCAL_PRIVS *privs,
		              const char *sent_text)
{
    const MESSAGE *m = st->req->msg;
    const RCPT *r = m->rcpt + st->req->rcpt[st->i].index;
    static const char *const keep[] = {"TZ", "LANG", "MAIL_CONFIG", NULL};
    char   *argv[] = {"/bin/sh", "-c", (char *) command, NULL};
    char  **env = NULL;
    size_t  n = 0;
    STR     data = STR_INIT;
    MAILBOX_CMD cmd;
    MAILBOX_CMD_STATUS cst;
    MAILBOX_RESULT res;

    local_env_add(&env, &n, "HOME", privs->home);
    local_env_add(&env, &n, "LOGNAME", privs->user);
    local_env_add(&env, &n, "USER", privs->user);
    local_env_add(&env, &n, "SHELL", privs->shell);
    local_env_add(&env, &n, "PATH", "/usr/bin:/bin");
    local_env_add(&env, &n, "SENDER", m->sender);
    local_env_add(&env, &n, "RECIPIENT", st->address);
    local_env_add(&env, &n, "ORIGINAL_RECIPIENT", r->orig_rcpt && *r->orig_rcpt
		  ? r->orig_rcpt : r->address);
    local_env_add(&env, &n, "LOCAL", STR_DATA(&st->addr.local));
    local_env_add(&env, &n, "DOMAIN", STR_DATA(&st->addr.domain));
    local_env_add(&env, &n, "EXTENSION", STR_DATA(&st->addr.extension));
    local_env_add(&env, &n, "CLIENT_ADDRESS", m->client_addr);
    local_env_add(&env, &n, "CLIENT_HOSTNAME", m->client_name);
    local_env_add(&env, &n, "CLIENT_HELO", m->helo);
    local_env_add(&env, &n, "CLIENT_PROTOCOL", m->protocol);
    for (int i = 0; keep[i]; i++)
	if (getenv(keep[i]))
	    local_env_add(&env, &n, keep[i], getenv(keep[i]));

    local_format(st, &data, MAILBOX_FMT_FROM_LINE,
		 (st->agent->prepend & LOCAL_PREPEND_COMMAND) != 0);
    memset(&cmd, 0, sizeof(cmd));
    cmd.path = "/bin/sh";
    cmd.argv = argv;
    cmd.envp = env;
    cmd.cwd = privs->home;
    cmd.input = STR_DATA(&data);
    cmd.input_len = STR_LEN(&data);
    cmd.time_limit = st->agent->time_limit;
    mailbox_exec_command(&privs->creds, &cmd, &cst);
    mailbox_exec_result(&cst, command, sent_text, &res);
    local_outcome(st, &res);
    mailbox_exec_status_release(&cst);
    for (size_t i = 0; i < n; i++)
	mem_free(env[i]);
    mem_free(env);
    str_release(&data);
}

/* ---- files ---- */

void    local_file(LOCAL_STATE *st, const char *path, const LOCAL_PRIVS *privs, int fmt_extra)
{
    MAILBOX_FILE_JOB job = {.path = path, .lock = &st->agent->lock,
    .chown_uid = (uid_t) -1, .chown_gid = (gid_t) -1, .size_limit = st->agent->size_limit};
    MAILBOX_RESULT res;
    STR     data = STR_INIT;

    (void) fmt_extra;
    job.maildir = path[strlen(path) - 1] == '/';
    local_format(st, &data, job.maildir ? 0 : MAILBOX_FMT_FROM_LINE | MAILBOX_FMT_QUOTE_FROM
		 | MAILBOX_FMT_BLANK_END, (st->agent->prepend & LOCAL_PREPEND_FILE) != 0);
    job.data = STR_DATA(&data);
    job.len = STR_LEN(&data);
    mailbox_exec_file(&privs->creds, &job, &res);
    if (res.status == DELIVERY_SENT)
	snprintf(res.text, sizeof(res.text), "delivered to file: %s", path);
    local_outcome(st, &res);
    str_release(&data);
}

/* ---- :include: ---- */

static void local_include(LOCAL_STATE *st, const char *path, const LOCAL_PRIVS *privs,
			          int depth)
{
    LOCAL_PRIVS owner;
    struct stat fst;
    STR     text = STR_INIT;

    /* With the includer's rights once the engine is not root any more. */
    if (mailbox_exec_read(&privs->creds, path, false, 1024 * 1024, &text, &fst) < 0
	&& errno != EINVAL) {
	if (errno == ENOENT)
	    local_outcome_set(st, DELIVERY_BOUNCE, "5.3.5",
			      "mail system configuration error: cannot open include file %s: %s",
			      path, strerror(errno));
	else
	    local_outcome_set(st, DELIVERY_DEFER, "4.3.0", "cannot open include file %s: %s",
			      path, strerror(errno));
	str_release(&text);
	return;
    }
    if (!S_ISREG(fst.st_mode) || (fst.st_mode & S_IWOTH)) {
	str_release(&text);
	local_outcome_set(st, DELIVERY_BOUNCE, "5.3.5",
			  "mail system configuration error: include file %s is not a regular "
			  "file, or is writable by others", path);
	return;
    }
    /* The file's owner decides the rights of what it asks for; root's
     * file keeps the rights of whoever included it. */
    if (fst.st_uid != 0 && fst.st_uid != privs->creds.uid
	&& local_getpw(NULL, fst.st_uid, true, &owner) > 0) {
	local_expand(st, STR_DATA(&text), true, LOCAL_CLASS_INCLUDE, &owner, depth + 1);
	local_privs_release(&owner);
    } else {
	local_expand(st, STR_DATA(&text), true, LOCAL_CLASS_INCLUDE, privs, depth + 1);
    }
    str_release(&text);
}

/* ---- members ---- */

static bool local_is_self(LOCAL_STATE *st, const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t  ll = at ? (size_t) (at - addr) : strlen(addr);

    if (at && strcasecmp(at + 1, STR_DATA(&st->addr.domain)) != 0)
	return false;
    return ll == STR_LEN(&st->addr.local) && strncasecmp(addr, STR_DATA(&st->addr.local), ll) == 0;
}

static int local_member(ALIAS_KIND kind, const char *text, void *ctx)
{
    LOCAL_MEMBER_CTX *mc = ctx;
    LOCAL_STATE *st = mc->st;

    if (st->fatal)
	return 1;				/* deferred: the rest waits for the retry */
    switch (kind) {
    case ALIAS_ADDRESS:
	if (text[0] == '\\') {
	    /* "\user": that user's mailbox, no alias or .forward. */
	    const char *at = strrchr(text + 1, '@');
	    char   *name = mem_strndup(text + 1, at ? (size_t) (at - text - 1) : strlen(text + 1));

	    local_name(st, name, LOCAL_NO_ALIAS | LOCAL_NO_FORWARD, mc->depth);
	    mem_free(name);
	} else if (local_is_self(st, text)) {
	    /* An alias or .forward that names the recipient itself: its mailbox. */
	    local_name(st, STR_DATA(&st->addr.local), LOCAL_NO_ALIAS | LOCAL_NO_FORWARD,
		       mc->depth);
	} else {
	    local_forward_add(st, text);
	}
	break;
    case ALIAS_COMMAND:
	if (!(st->agent->allow_commands & mc->klass)) {
	    local_outcome_set(st, DELIVERY_BOUNCE, "5.7.1", "mail to command is restricted");
	} else {
	    STR     sent = STR_INIT;

	    str_printf(&sent, "delivered to command: %s", text);
	    local_command(st, text, mc->privs, STR_DATA(&sent));
	    str_release(&sent);
	}
	break;
    case ALIAS_FILE:
	if (!(st->agent->allow_files & mc->klass))
	    local_outcome_set(st, DELIVERY_BOUNCE, "5.7.1", "mail to file is restricted");
	else
	    local_file(st, text, mc->privs, 0);
	break;
    case ALIAS_INCLUDE:
	if (text[0] != '/')
	    local_outcome_set(st, DELIVERY_BOUNCE, "5.3.5",
			      "mail system configuration error: :include:%s: not an absolute path",
			      text);
	else if (mc->depth > LOCAL_DEPTH_MAX)
	    local_outcome_set(st, DELIVERY_BOUNCE, "5.4.6", "mail forwarding loop for %s",
			      st->address);
	else
	    local_include(st, text, mc->privs, mc->depth);
	break;
    }
    return 0;
}

void    local_expand(LOCAL_STATE *st, const char *text, bool multi_line, int klass,
		             const LOCAL_PRIVS *privs, int depth)
{
    LOCAL_MEMBER_CTX mc = {st, klass, privs, depth};
    const char *p = text;

    while (*p) {
	size_t  n = multi_line ? strcspn(p, "\n") : strlen(p);
	char   *line = mem_strndup(p, n);
	char   *s = line, *e;
	STR     err = STR_INIT;

	p += n;
	if (*p == '\n')
	    p++;
	/* Blanks, trailing commas and comment lines are not members. */
	s += strspn(s, " \t\r,");
	e = s + strlen(s);
	while (e > s && strchr(" \t\r,", e[-1]))
	    *--e = 0;
	if (*s && *s != '#' && aliasfile_split(s, local_member, &mc, &err) < 0) {
	    local_outcome_set(st, DELIVERY_BOUNCE, "5.3.5",
			      "mail system configuration error: %s: %s", local_class_name(klass),
			      STR_DATA(&err));
	}
	str_release(&err);
	mem_free(line);
	if (st->fatal)
	    break;
    }
}

/* ---- the plan, for tests ---- */

static int local_plan_member(ALIAS_KIND kind, const char *text, void *ctx)
{
    STR    *out = ctx;

    if (kind == ALIAS_ADDRESS && text[0] == '\\')
	str_printf(out, "mailbox %s\n", text + 1);
    else
	str_printf(out, "%s %s\n", kind == ALIAS_ADDRESS ? "address" : kind == ALIAS_COMMAND
		   ? "command" : kind == ALIAS_FILE ? "file" : "include", text);
    return 0;
}

int     local_alias_plan(const char *value, STR *out, STR *err)
{
    return aliasfile_split(value, local_plan_member, out, err) < 0 ? -1 : 0;
}
