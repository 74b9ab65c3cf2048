/*
 * pipe.c - the pipe(8) delivery agent (see pipe.h).
 *
 * Threading: requests run on the agent pool's threads; each command is a
 * child process (mailbox_exec.h) that the worker waits for.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "stages/agent_pool.h"
#include "stages/delivery_log.h"
#include "stages/mailbox_exec.h"
#include "stages/mailbox_util.h"
#include "stages/pipe.h"

struct PIPE_AGENT {
    char   *service;
    PIPE_CONFIG cfg;
    MAILBOX_CREDS creds;
    char   *path;			/* argv[0] resolved */
    char   *delims;
    int     time_limit;
    size_t  batch;			/* recipients per command; 0: all */
    AGENT_POOL *pool;
};

/* ---- attributes ---- */

static const struct {
    char    ch;
    int     flag;
} pipe_flag_table[] = {
    {'D', PIPE_FLAG_DELIVERED}, {'O', PIPE_FLAG_ORIGINAL}, {'R', PIPE_FLAG_RETURN_PATH},
    {'F', PIPE_FLAG_FROM}, {'B', PIPE_FLAG_BLANK}, {'q', PIPE_FLAG_QUOTE},
    {'h', PIPE_FLAG_FOLD_HOST}, {'u', PIPE_FLAG_FOLD_USER}, {'.', PIPE_FLAG_DOT},
    {'>', PIPE_FLAG_QUOTE_FROM}, {'X', PIPE_FLAG_FINAL},
};

int     pipe_config_parse(PIPE_CONFIG *cfg, char *const *args, size_t nargs, STR *why)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->null_sender = mem_strdup("MAILER-DAEMON");
    for (size_t i = 0; i < nargs; i++) {
	const char *a = args[i];
	const char *eq = strchr(a, '=');
	size_t  nl = eq ? (size_t) (eq - a) : strlen(a);
	const char *v = eq ? eq + 1 : "";

#define PIPE_IS(name) (nl == sizeof(name) - 1 && strncmp(a, name, nl) == 0)
	if (eq == NULL) {
	    str_printf(why, "pipe: bad attribute \"%s\" (expected name=value before argv=)", a);
	    return -1;
	} else if (PIPE_IS("argv")) {
	    if (*v == 0) {
		str_printf(why, "pipe: argv= needs a command");
		return -1;
	    }
	    cfg->argc = nargs - i;
	    cfg->argv = mem_calloc(cfg->argc + 1, sizeof(char *));
	    cfg->argv[0] = mem_strdup(v);
	    for (size_t k = 1; k < cfg->argc; k++)
		cfg->argv[k] = mem_strdup(args[i + k]);
	    break;
	} else if (PIPE_IS("flags")) {
	    for (const char *f = v; *f; f++) {
		size_t  k;

		for (k = 0; k < sizeof(pipe_flag_table) / sizeof(pipe_flag_table[0]); k++)
		    if (pipe_flag_table[k].ch == *f)
			break;
		if (k == sizeof(pipe_flag_table) / sizeof(pipe_flag_table[0])) {
		    str_printf(why, "pipe: unknown flag '%c' in flags=%s", *f, v);
		    return -1;
		}
		cfg->flags |= pipe_flag_table[k].flag;
	    }
	} else if (PIPE_IS("user")) {
	    const char *colon = strchr(v, ':');

	    mem_free(cfg->user);
	    mem_free(cfg->group);
	    cfg->user = colon ? mem_strndup(v, (size_t) (colon - v)) : mem_strdup(v);
	    cfg->group = colon ? mem_strdup(colon + 1) : NULL;
	    if (*cfg->user == 0 || (cfg->group && *cfg->group == 0)) {
		str_printf(why, "pipe: bad user= attribute \"%s\"", v);
		return -1;
	    }
	} else if (PIPE_IS("eol")) {
	    if (strcmp(v, "\\n") == 0 || strcmp(v, "\n") == 0)
		cfg->crlf = false;
	    else if (strcmp(v, "\\r\\n") == 0 || strcmp(v, "\r\n") == 0)
		cfg->crlf = true;
	    else {
		str_printf(why, "pipe: eol=%s: only \\n and \\r\\n are supported", v);
		return -1;
	    }
	} else if (PIPE_IS("size")) {
	    char   *end;

	    errno = 0;
	    cfg->size_limit = strtoll(v, &end, 10);
	    if (errno || end == v || *end || cfg->size_limit < 0) {
		str_printf(why, "pipe: bad size= attribute \"%s\"", v);
		return -1;
	    }
	} else if (PIPE_IS("null_sender")) {
	    mem_free(cfg->null_sender);
	    cfg->null_sender = mem_strdup(v);
	} else if (PIPE_IS("directory")) {
	    mem_free(cfg->directory);
	    cfg->directory = mem_strdup(v);
	} else {
	    str_printf(why, "pipe: unknown attribute name \"%.*s\"", (int) nl, a);
	    return -1;
	}
#undef PIPE_IS
    }
    if (cfg->argv == NULL) {
	str_printf(why, "pipe: missing argv= attribute");
	return -1;
    }
    if (cfg->user == NULL) {
	str_printf(why, "pipe: missing user= attribute");
	return -1;
    }
    return 0;
}

void    pipe_config_free(PIPE_CONFIG *cfg)
{
    pipe_argv_free(cfg->argv);
    mem_free(cfg->user);
    mem_free(cfg->group);
    mem_free(cfg->null_sender);
    mem_free(cfg->directory);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- macros ---- */

typedef struct PIPE_EXPAND {
    const PIPE_CONFIG *cfg;
    const PIPE_VARS *vars;
    ssize_t rcpt;			/* -1: only note per-recipient use */
    bool    per_rcpt;
    STR     buf;
} PIPE_EXPAND;

static bool pipe_is_per_rcpt(const char *name)
{
    static const char *const names[] = {"recipient", "original_recipient", "user",
    "extension", "mailbox", "domain", NULL};

    for (int i = 0; names[i]; i++)
	if (strcmp(name, names[i]) == 0)
	    return true;
    return false;
}

/* Postfix's quote_822_local: a local part with specials goes in quotes. */
static void pipe_put_local(STR *out, const char *s, size_t n, int flags)
{
    bool    quote = false;

    if (flags & PIPE_FLAG_QUOTE)
	for (size_t i = 0; i < n; i++)
	    if (strchr(" \t\"(),:;<>@[\\]", s[i]) || (unsigned char) s[i] < 0x20)
		quote = true;
    if (quote)
	str_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
	int     c = (unsigned char) s[i];

	if (quote && (c == '"' || c == '\\'))
	    str_putc(out, '\\');
	str_putc(out, (flags & PIPE_FLAG_FOLD_USER) ? tolower(c) : c);
    }
    if (quote)
	str_putc(out, '"');
}

static void pipe_put_domain(STR *out, const char *s, int flags)
{
    for (; *s; s++)
	str_putc(out, (flags & PIPE_FLAG_FOLD_HOST) ? tolower((unsigned char) *s) : *s);
}

static void pipe_put_address(STR *out, const char *addr, int flags)
{
    const char *at = strrchr(addr, '@');

    pipe_put_local(out, addr, at ? (size_t) (at - addr) : strlen(addr), flags);
    if (at) {
	str_putc(out, '@');
	pipe_put_domain(out, at + 1, flags);
    }
}

static const char *pipe_lookup(void *ctx, const char *name)
{
    PIPE_EXPAND *x = ctx;
    const PIPE_VARS *v = x->vars;
    int     flags = x->cfg->flags;

    str_reset(&x->buf);
    if (pipe_is_per_rcpt(name)) {
	MAILBOX_ADDR a;
	const char *addr;

	x->per_rcpt = true;
	if (x->rcpt < 0)
	    return "";
	addr = strcmp(name, "original_recipient") == 0 && v->orig && v->orig[x->rcpt]
	    ? v->orig[x->rcpt] : v->rcpt[x->rcpt];
	if (strcmp(name, "recipient") == 0 || strcmp(name, "original_recipient") == 0) {
	    pipe_put_address(&x->buf, addr, flags);
	    return STR_DATA(&x->buf);
	}
	mailbox_addr_split(&a, addr, v->delims);
	if (strcmp(name, "user") == 0)
	    pipe_put_local(&x->buf, STR_DATA(&a.user), STR_LEN(&a.user), flags);
	else if (strcmp(name, "mailbox") == 0)
	    pipe_put_local(&x->buf, STR_DATA(&a.local), STR_LEN(&a.local), flags);
	else if (strcmp(name, "extension") == 0)
	    pipe_put_local(&x->buf, STR_DATA(&a.extension), STR_LEN(&a.extension),
			   flags & ~PIPE_FLAG_QUOTE);
	else
	    pipe_put_domain(&x->buf, STR_DATA(&a.domain), flags);
	mailbox_addr_release(&a);
	return STR_DATA(&x->buf);
    }
    if (strcmp(name, "sender") == 0) {
	if (v->sender == NULL || *v->sender == 0)
	    return x->cfg->null_sender;
	pipe_put_address(&x->buf, v->sender, flags & ~(PIPE_FLAG_FOLD_USER | PIPE_FLAG_FOLD_HOST));
	return STR_DATA(&x->buf);
    }
    if (strcmp(name, "nexthop") == 0) {
	pipe_put_domain(&x->buf, v->nexthop ? v->nexthop : "", flags);
	return STR_DATA(&x->buf);
    }
    if (strcmp(name, "queue_id") == 0)
	return v->queue_id ? v->queue_id : "";
    if (strcmp(name, "size") == 0) {
	str_printf(&x->buf, "%lld", v->size);
	return STR_DATA(&x->buf);
    }
    if (strcmp(name, "client_address") == 0)
	return v->client_address ? v->client_address : "";
    if (strcmp(name, "client_hostname") == 0)
	return v->client_hostname ? v->client_hostname : "";
    if (strcmp(name, "client_helo") == 0)
	return v->client_helo ? v->client_helo : "";
    if (strcmp(name, "client_protocol") == 0)
	return v->client_protocol ? v->client_protocol : "";
    return NULL;
}

static int pipe_word(PIPE_EXPAND *x, const char *word, ssize_t rcpt, STR *out, STR *why)
{
    x->rcpt = rcpt;
    str_reset(out);
    return mailbox_expand(word, pipe_lookup, x, out, why);
}

bool    pipe_config_per_rcpt(const PIPE_CONFIG *cfg)
{
    PIPE_VARS vars = {0};
    PIPE_EXPAND x = {.cfg = cfg, .vars = &vars};
    STR     out = STR_INIT, why = STR_INIT;

    for (size_t i = 0; i < cfg->argc; i++)
	(void) pipe_word(&x, cfg->argv[i], -1, &out, &why);
    str_release(&out);
    str_release(&why);
    str_release(&x.buf);
    return x.per_rcpt;
}

char  **pipe_argv_expand(const PIPE_CONFIG *cfg, const PIPE_VARS *vars, STR *why)
{
    PIPE_EXPAND x = {.cfg = cfg, .vars = vars};
    STR     out = STR_INIT;
    char  **argv = NULL;
    size_t  n = 0, cap = 0;

    for (size_t i = 0; i < cfg->argc; i++) {
	size_t  copies = 1;

	/* A word with a per-recipient macro is repeated for each recipient. */
	x.per_rcpt = false;
	if (pipe_word(&x, cfg->argv[i], -1, &out, why) < 0)
	    goto bad;
	if (x.per_rcpt)
	    copies = vars->nrcpt;
	for (size_t r = 0; r < copies; r++) {
	    if (x.per_rcpt && pipe_word(&x, cfg->argv[i], (ssize_t) r, &out, why) < 0)
		goto bad;
	    if (n + 2 > cap) {
		cap = cap ? 2 * cap : 16;
		argv = mem_realloc(argv, cap * sizeof(char *));
	    }
	    argv[n++] = mem_strdup(STR_DATA(&out));
	    argv[n] = NULL;
	}
    }
    if (n == 0) {
	str_printf(why, "pipe: the command expands to nothing");
	goto bad;
    }
    str_release(&out);
    str_release(&x.buf);
    return argv;

bad:
    if (argv) {
	argv[n] = NULL;
	pipe_argv_free(argv);
    }
    str_release(&out);
    str_release(&x.buf);
    return NULL;
}

void    pipe_argv_free(char **argv)
{
    if (argv == NULL)
	return;
    for (size_t i = 0; argv[i]; i++)
	mem_free(argv[i]);
    mem_free(argv);
}

/* ---- delivery ---- */

static void pipe_set(DELIVERY_REQUEST *req, size_t i, const MAILBOX_RESULT *res,
		             const char *relay)
{
    DELIVERY_RCPT *dr = req->rcpt + i;
    DELIVERY_LOG how = {.relay = relay};

    dr->status = res->status;
    snprintf(dr->dsn, sizeof(dr->dsn), "%s", res->dsn);
    mem_free(dr->reason);
    dr->reason = mem_strdup(res->text);
    delivery_log_rcpt(req, i, &how);
}

/* One command for recipients [first, first + n) of the request. */
static void pipe_batch(PIPE_AGENT *a, DELIVERY_REQUEST *req, size_t first, size_t n)
{
    const MESSAGE *m = req->msg;
    const char **rcpt = mem_calloc(n + 1, sizeof(char *));
    const char **orig = mem_calloc(n + 1, sizeof(char *));
    static const char *const keep[] = {"TZ", "LANG", "MAIL_CONFIG", NULL};
    char   *envp[8];
    size_t  ne = 0;
    STR     why = STR_INIT, data = STR_INIT, sent = STR_INIT, envs[8];
    MAILBOX_RESULT res;
    char  **argv;

    for (size_t k = 0; k < n; k++) {
	const RCPT *r = m->rcpt + req->rcpt[first + k].index;

	rcpt[k] = r->address;
	orig[k] = r->orig_rcpt && *r->orig_rcpt ? r->orig_rcpt : r->address;
    }
    PIPE_VARS vars = {
	.sender = m->sender, .nexthop = req->nexthop, .queue_id = m->queue_id,
	.client_address = m->client_addr, .client_hostname = m->client_name,
	.client_helo = m->helo, .client_protocol = m->protocol,
	.size = m->content ? (long long) m->content->len : 0,
	.rcpt = rcpt, .orig = orig, .nrcpt = n, .delims = a->delims,
    };

    if (a->cfg.size_limit > 0 && vars.size > a->cfg.size_limit) {
	mailbox_result_set(&res, DELIVERY_BOUNCE, "5.2.3", "message too large");
	goto done;
    }
    if ((argv = pipe_argv_expand(&a->cfg, &vars, &why)) == NULL) {
	mailbox_result_set(&res, DELIVERY_DEFER, "4.3.5", "mail system configuration error: %s",
			   STR_DATA(&why));
	goto done;
    }
    {
	int     fl = a->cfg.flags;
	MAILBOX_ENVELOPE env = {
	    .sender = *m->sender ? m->sender : a->cfg.null_sender,
	    .time_s = time_real_us() / 1000000,
	    .return_path = (fl & PIPE_FLAG_RETURN_PATH) ? m->sender : NULL,
	    .x_original_to = (fl & PIPE_FLAG_ORIGINAL) ? orig[0] : NULL,
	    .delivered_to = (fl & PIPE_FLAG_DELIVERED) ? rcpt[0] : NULL,
	};
	MAILBOX_CMD cmd;
	MAILBOX_CMD_STATUS cst;

	mailbox_format(&data, &env, ((fl & PIPE_FLAG_FROM) ? MAILBOX_FMT_FROM_LINE : 0)
		       | ((fl & PIPE_FLAG_QUOTE_FROM) ? MAILBOX_FMT_QUOTE_FROM : 0)
		       | ((fl & PIPE_FLAG_DOT) ? MAILBOX_FMT_DOT : 0)
		       | ((fl & PIPE_FLAG_BLANK) ? MAILBOX_FMT_BLANK_END : 0)
		       | (a->cfg.crlf ? MAILBOX_FMT_CRLF : 0),
		       m->content ? m->content->data : "", m->content ? m->content->len : 0);
	envs[ne] = (STR) STR_INIT;
	str_puts(&envs[ne], "PATH=/usr/bin:/bin");
	envp[ne] = envs[ne].data;
	ne++;
	for (int k = 0; keep[k]; k++)
	    if (getenv(keep[k])) {
		envs[ne] = (STR) STR_INIT;
		str_printf(&envs[ne], "%s=%s", keep[k], getenv(keep[k]));
		envp[ne] = envs[ne].data;
		ne++;
	    }
	envp[ne] = NULL;
	memset(&cmd, 0, sizeof(cmd));
	cmd.path = a->path;
	cmd.argv = argv;
	cmd.envp = envp;
	cmd.cwd = a->cfg.directory;
	cmd.input = STR_DATA(&data);
	cmd.input_len = STR_LEN(&data);
	cmd.time_limit = a->time_limit;
	str_printf(&sent, "delivered via %s service", a->service);
	mailbox_exec_command(&a->creds, &cmd, &cst);
	mailbox_exec_result(&cst, a->cfg.argv[0], STR_DATA(&sent), &res);
	mailbox_exec_status_release(&cst);
	for (size_t k = 0; k < ne; k++)
	    str_release(&envs[k]);
	pipe_argv_free(argv);
    }

done:
    for (size_t k = 0; k < n; k++)
	pipe_set(req, first + k, &res, a->service);
    mem_free(rcpt);
    mem_free(orig);
    str_release(&why);
    str_release(&data);
    str_release(&sent);
}

static void pipe_job(void *ctx, void *job)
{
    PIPE_AGENT *a = ctx;
    DELIVERY_REQUEST *req = job;
    size_t  step = a->batch ? a->batch : req->nrcpt;

    msg_service_set("pipe");
    for (size_t i = 0; i < req->nrcpt; i += step)
	pipe_batch(a, req, i, req->nrcpt - i < step ? req->nrcpt - i : step);
    snprintf(req->relay, sizeof(req->relay), "%s", a->service);
    msg_service_set("qmgr");
    req->done(req);
}

/* ---- the agent ---- */

/* The user= rights: as root someone else than root; otherwise ourselves. */
static int pipe_creds(PIPE_AGENT *a, STR *why)
{
    struct passwd pw, *pwr = NULL;
    struct group gr, *grr = NULL;
    char    buf[16384];

    if (getpwnam_r(a->cfg.user, &pw, buf, sizeof(buf), &pwr) != 0 || pwr == NULL) {
	str_printf(why, "pipe: user=%s: unknown user", a->cfg.user);
	return -1;
    }
    a->creds.uid = pw.pw_uid;
    a->creds.gid = pw.pw_gid;
    if (a->cfg.group) {
	if (getgrnam_r(a->cfg.group, &gr, buf, sizeof(buf), &grr) != 0 || grr == NULL) {
	    str_printf(why, "pipe: user=%s:%s: unknown group", a->cfg.user, a->cfg.group);
	    return -1;
	}
	a->creds.gid = gr.gr_gid;
    }
    if (mailbox_exec_privileged()) {
	if (a->creds.uid == 0 || a->creds.gid == 0) {
	    str_printf(why, "pipe: user= attribute specifies root privileges");
	    return -1;
	}
    } else if (a->creds.uid != geteuid()) {
	str_printf(why, "pipe: user=%s: not running as root, commands can only run as the "
		   "invoking user", a->cfg.user);
	return -1;
    } else {
	mailbox_exec_self(&a->creds);
    }
    return 0;
}

/* argv[0] as execvp would find it. */
static char *pipe_resolve(const char *cmd)
{
    static const char *const dirs[] = {"/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin",
    "/sbin", NULL};

    if (strchr(cmd, '/'))
	return mem_strdup(cmd);
    for (int i = 0; dirs[i]; i++) {
	STR     p = STR_INIT;

	str_printf(&p, "%s/%s", dirs[i], cmd);
	if (access(STR_DATA(&p), X_OK) == 0)
	    return str_steal(&p, NULL);
	str_release(&p);
    }
    return mem_strdup(cmd);
}

PIPE_AGENT *pipe_agent_create(const char *service, STR *why)
{
    const CONFIG *cfg = config_current();
    const MASTERCF *mcf = config_mastercf(cfg);
    const MASTERCF_SERVICE *svc = mcf ? mastercf_find(mcf, service, "unix") : NULL;
    const MAINCF *main = config_maincf(cfg);
    const MAINCF_ENTRY *e;
    PIPE_AGENT *a;
    STR     name = STR_INIT;

    if (svc == NULL) {
	str_printf(why, "pipe: no master.cf service %s/unix", service);
	return NULL;
    }
    a = MEM_NEW(PIPE_AGENT);
    a->service = mem_strdup(service);
    if (pipe_config_parse(&a->cfg, svc->argv, svc->argc, why) < 0 || pipe_creds(a, why) < 0)
	goto bad;
    a->path = pipe_resolve(a->cfg.argv[0]);
    a->delims = mem_strdup(param_service_str(service, P_RECIPIENT_DELIMITER));
    /* <service>_time_limit, as Postfix's pipe(8); else command_time_limit. */
    a->time_limit = (int) param_service_int(service, P_COMMAND_TIME_LIMIT);
    str_printf(&name, "%s_time_limit", service);
    if (main && (e = maincf_find(main, STR_DATA(&name))) != NULL) {
	long long secs;
	const char *err;

	if (param_parse_time(e->value, 's', &secs, &err) < 0) {
	    str_printf(why, "pipe: %s = %s: %s", STR_DATA(&name), e->value, err);
	    str_release(&name);
	    goto bad;
	}
	a->time_limit = (int) secs;
    }
    /*
     * Postfix's convention: a command with ${recipient} gets one recipient
     * (<service>_destination_recipient_limit = 1); an explicit limit in
     * main.cf wins. D and O headers name one recipient, so they need one.
     */
    str_reset(&name);
    str_printf(&name, "%s_destination_recipient_limit", service);
    if (main && maincf_find(main, STR_DATA(&name)) != NULL)
	a->batch = (size_t) param_transport_int(service, P_DEFAULT_DESTINATION_RECIPIENT_LIMIT);
    else if (pipe_config_per_rcpt(&a->cfg))
	a->batch = 1;
    if (a->cfg.flags & (PIPE_FLAG_DELIVERED | PIPE_FLAG_ORIGINAL))
	a->batch = 1;
    str_release(&name);
    a->pool = agent_pool_create("pipe", param_service_maxproc(service), pipe_job, a);
    return a;

bad:
    pipe_agent_destroy(a);
    return NULL;
}

void    pipe_agent_deliver(PIPE_AGENT *a, DELIVERY_REQUEST *req)
{
    agent_pool_submit(a->pool, req);
}

void    pipe_agent_destroy(PIPE_AGENT *a)
{
    if (a == NULL)
	return;
    agent_pool_destroy(a->pool);
    pipe_config_free(&a->cfg);
    mem_free(a->path);
    mem_free(a->delims);
    mem_free(a->service);
    mem_free(a);
}
