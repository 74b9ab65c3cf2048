/*
 * config.c - load main.cf + master.cf into an immutable snapshot, install
 * it atomically (see engine/config.h).
 *
 * A snapshot holds one "view" per set of values: the global one, and one per
 * master.cf service with -o overrides. Building a view expands every
 * parameter once, depth first, memoized, with an in-progress mark per name:
 * meeting a name that is still in progress is recursion (reported with the
 * chain), never a stack overflow; a nesting limit bounds the rest.
 * Threading: building is single-threaded on private data; installed
 * snapshots are only read. Old snapshots are kept on a list until
 * config_shutdown() so pointers handed out by param_str() never dangle.
 * Diagnostics: errors into the caller's STR, one line each; warnings through
 * msg_warn().
 */
#include "engine/config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "engine/mem.h"
#include "engine/msg.h"

#ifndef SLUICE_SYSCONFDIR
#define SLUICE_SYSCONFDIR "/etc/sluice"
#endif

#define CONFIG_MAX_DEPTH	100	/* Postfix's mac_expand limit */
#define CONFIG_SHOW_MAX		60	/* value bytes quoted in a message */

enum { ST_NONE, ST_BUSY, ST_DONE };

/* A name set in main.cf or in a -o that is not in the table. */
struct config_user {
    char   *name;
    const char *raw;		/* main.cf text, or NULL (-o only) */
    int     line;
    param_id base;		/* per-transport form: the parameter; else P_COUNT */
    bool    used;		/* referenced as $name somewhere */
};

struct config_view {
    const MASTERCF_SERVICE *svc;	/* NULL: the global view */
    char   *str[P_COUNT];
    long long ival[P_COUNT];
    bool    bval[P_COUNT];
    unsigned char state[P_COUNT];
    char  **ustr;			/* per user name */
    long long *uival;
    bool   *ubval;
    unsigned char *ustate;
};

struct CONFIG {
    char   *dir;
    char   *maincf_path;
    char   *mastercf_path;
    MAINCF *maincf;
    MASTERCF *mastercf;
    const MAINCF_ENTRY *set[P_COUNT];
    char   *computed[P_COUNT];		/* computed defaults, global view */
    struct config_user *user;		/* sorted by name */
    size_t  nuser;
    struct config_view global;
    struct config_view **svc_view;	/* per mastercf->svc; NULL = global */
    char  **arena;			/* strings owned by the snapshot */
    size_t  narena, carena;
    CONFIG *retired;			/* the list freed at shutdown */
};

/* Expansion context: one view being built. */
struct config_ctx {
    CONFIG *cfg;
    struct config_view *view;
    int     flags;
    STR    *err;
    int     errors;
    /* The chain of names being expanded, for recursion messages. */
    const char *chain[CONFIG_MAX_DEPTH + 2];
    int     depth;
    /* Errors, reported in file and line order once the view is built. */
    struct config_problem {
	long    key;
	size_t  seq;
	char   *text;
    }      *problems;
    size_t  nproblems;
    bool    readonly;		/* an installed snapshot: no memo writes */
};

static const char *config_builtin_services[] = {
    "smtp", "relay", "lmtp", "local", "virtual", "error", "retry", "discard",
    "pipe", NULL,
};

/* ---------- small helpers ---------- */

static char *config_keep(CONFIG *cfg, char *s)
{
    if (cfg->narena == cfg->carena) {
	cfg->carena = cfg->carena ? cfg->carena * 2 : 64;
	cfg->arena = mem_realloc(cfg->arena, cfg->carena * sizeof(char *));
    }
    cfg->arena[cfg->narena++] = s;
    return s;
}

static bool config_name_char(int c)
{
    return isalnum((unsigned char) c) || c == '_';
}

const char *config_dir_select(const char *opt_c)
{
    const char *env;

    if (opt_c && *opt_c)
	return opt_c;
    if ((env = getenv("MAIL_CONFIG")) != NULL && *env)
	return env;
    return SLUICE_SYSCONFDIR;
}

static int config_user_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_user *) a)->name,
		  ((const struct config_user *) b)->name);
}

static ssize_t config_user_find(const CONFIG *cfg, const char *name, size_t len)
{
    size_t  lo = 0, hi = cfg->nuser;

    while (lo < hi) {
	size_t  mid = (lo + hi) / 2;
	int     cmp = strncmp(cfg->user[mid].name, name, len);

	if (cmp == 0 && cfg->user[mid].name[len] != 0)
	    cmp = 1;
	if (cmp == 0)
	    return (ssize_t) mid;
	if (cmp < 0)
	    lo = mid + 1;
	else
	    hi = mid;
    }
    return -1;
}

static param_id config_table_find(const char *name, size_t len)
{
    char    buf[256];

    if (len >= sizeof(buf))
	return P_COUNT;
    memcpy(buf, name, len);
    buf[len] = 0;
    return param_lookup(buf);
}

/* Where a value of the view comes from, for messages; returns a sort key
 * (main.cf lines, then master.cf lines, then defaults). */
static long config_where(struct config_ctx *ctx, const char *name, param_id id,
			 ssize_t uidx, STR *out)
{
    CONFIG *cfg = ctx->cfg;
    const MASTERCF_SERVICE *svc = ctx->view->svc;

    if (svc && mastercf_opt(svc, name)) {
	str_printf(out, "%s, line %d: service %s/%s: parameter %s", cfg->mastercf_path,
		   svc->line, svc->name, svc->type, name);
	return (1L << 40) + svc->line;
    } else if (id != P_COUNT && cfg->set[id]) {
	str_printf(out, "%s, line %d: parameter %s", cfg->maincf_path,
		   cfg->set[id]->line, name);
	return cfg->set[id]->line;
    } else if (uidx >= 0 && cfg->user[uidx].raw) {
	str_printf(out, "%s, line %d: parameter %s", cfg->maincf_path,
		   cfg->user[uidx].line, name);
	return cfg->user[uidx].line;
    }
    str_printf(out, "%s: default value of parameter %s", cfg->maincf_path, name);
    return 2L << 40;
}

static void config_problem(struct config_ctx *ctx, const char *name, param_id id,
			   ssize_t uidx, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void config_problem(struct config_ctx *ctx, const char *name, param_id id,
			   ssize_t uidx, const char *fmt, ...)
{
    STR     line = STR_INIT;
    va_list ap;
    long    key = config_where(ctx, name, id, uidx, &line);

    str_puts(&line, ": ");
    va_start(ap, fmt);
    str_vprintf(&line, fmt, ap);
    va_end(ap);
    if (ctx->flags & CONFIG_LENIENT) {
	msg_warn("%s", STR_DATA(&line));
    } else {
	ctx->problems = mem_realloc(ctx->problems,
				    (ctx->nproblems + 1) * sizeof(*ctx->problems));
	ctx->problems[ctx->nproblems].key = key;
	ctx->problems[ctx->nproblems].seq = ctx->nproblems;
	ctx->problems[ctx->nproblems].text = str_steal(&line, NULL);
	ctx->nproblems++;
	ctx->errors++;
    }
    str_release(&line);
}

/* A value shortened for a message, with control bytes made visible. */
static void config_show(STR *out, const char *value)
{
    size_t  n = 0;

    str_putc(out, '"');
    for (const unsigned char *cp = (const unsigned char *) value; *cp; cp++, n++) {
	if (n >= CONFIG_SHOW_MAX) {
	    str_puts(out, "...");
	    break;
	}
	if (*cp < 0x20 || *cp == 0x7f || *cp >= 0x80)
	    str_printf(out, "\\x%02x", *cp);
	else
	    str_putc(out, *cp);
    }
    str_putc(out, '"');
}

static int config_problem_cmp(const void *a, const void *b)
{
    const struct config_problem *pa = a, *pb = b;

    if (pa->key != pb->key)
	return pa->key < pb->key ? -1 : 1;
    return pa->seq < pb->seq ? -1 : pa->seq > pb->seq;
}

/* Report the errors of a view in file order, without duplicates. */
static void config_flush_problems(struct config_ctx *ctx)
{
    if (ctx->nproblems == 0)
	return;
    qsort(ctx->problems, ctx->nproblems, sizeof(*ctx->problems), config_problem_cmp);
    for (size_t i = 0; i < ctx->nproblems; i++) {
	if (i == 0 || strcmp(ctx->problems[i].text, ctx->problems[i - 1].text) != 0)
	    str_printf(ctx->err, "%s\n", ctx->problems[i].text);
    }
    for (size_t i = 0; i < ctx->nproblems; i++)
	mem_free(ctx->problems[i].text);
    mem_free(ctx->problems);
    ctx->problems = NULL;
    ctx->nproblems = 0;
}

/* ---------- expansion ---------- */

static const char *config_value_of(struct config_ctx *ctx, const char *name, size_t len);
static void config_expand_text(struct config_ctx *ctx, const char *text, STR *out);

/* The raw text of a table parameter in this view, or NULL for "computed". */
static const char *config_raw_in_view(struct config_ctx *ctx, param_id id)
{
    const MASTERCF_SERVICE *svc = ctx->view->svc;
    const char *ov;

    if (id == P_SERVICE_NAME)		/* read-only, per service */
	return svc ? svc->name : "";
    if (svc && (ov = mastercf_opt(svc, param_name(id))) != NULL)
	return ov;
    if (ctx->cfg->set[id])
	return ctx->cfg->set[id]->value;
    switch (id) {
    case P_MYHOSTNAME:
    case P_MYDOMAIN:
    case P_MYNETWORKS:
    case P_CONFIG_DIRECTORY:
	return NULL;
    default:
	return param_default(id);
    }
}

static char *config_compute(struct config_ctx *ctx, param_id id)
{
    CONFIG *cfg = ctx->cfg;
    const MAINCF_ENTRY *dom;

    switch (id) {
    case P_MYHOSTNAME:
	/* Postfix appends $mydomain as set in main.cf, if it is plain text. */
	dom = cfg->set[P_MYDOMAIN];
	return param_compute_myhostname(dom && !strchr(dom->value, '$') ? dom->value : NULL);
    case P_MYDOMAIN:
	return param_compute_mydomain(config_value_of(ctx, "myhostname", 10));
    case P_MYNETWORKS:{
	    char   *style = mem_strdup(config_value_of(ctx, "mynetworks_style", 16));
	    char   *res = param_compute_mynetworks(style,
				      config_value_of(ctx, "inet_protocols", 14));

	    mem_free(style);
	    return res;
	}
    case P_CONFIG_DIRECTORY:
	return mem_strdup(cfg->dir);
    default:
	return mem_strdup("");
    }
}

static void config_recursion(struct config_ctx *ctx, const char *name, size_t len)
{
    STR     chain = STR_INIT;
    int     start = 0;
    char   *nm = mem_strndup(name, len);

    for (int i = 0; i < ctx->depth; i++)
	if (strcmp(ctx->chain[i], nm) == 0)
	    start = i;
    for (int i = start; i < ctx->depth; i++)
	str_printf(&chain, "$%s -> ", ctx->chain[i]);
    str_printf(&chain, "$%s", nm);
    {
	param_id id = param_lookup(ctx->chain[start]);
	ssize_t uidx = id == P_COUNT ? config_user_find(ctx->cfg, ctx->chain[start],
						strlen(ctx->chain[start])) : -1;

	config_problem(ctx, ctx->chain[start], id, uidx,
		       "macro expansion recursion: %s", STR_DATA(&chain));
    }
    str_release(&chain);
    mem_free(nm);
}

/* The expanded value of a name in this view ("" when undefined). */
static const char *config_value_of(struct config_ctx *ctx, const char *name, size_t len)
{
    struct config_view *v = ctx->view;
    param_id id = config_table_find(name, len);
    ssize_t uidx = -1;
    unsigned char *state;
    char  **slot;
    const char *raw;
    STR     out = STR_INIT;

    if (id != P_COUNT) {
	state = &v->state[id];
	slot = &v->str[id];
    } else if ((uidx = config_user_find(ctx->cfg, name, len)) >= 0) {
	state = &v->ustate[uidx];
	slot = &v->ustr[uidx];
    } else {
	return "";
    }
    if (*state == ST_DONE)
	return *slot;
    if (ctx->readonly)
	return "";
    if (*state == ST_BUSY) {
	config_recursion(ctx, name, len);
	return "";
    }
    if (ctx->depth >= CONFIG_MAX_DEPTH) {
	config_problem(ctx, ctx->chain[0], param_lookup(ctx->chain[0]), -1,
		       "unreasonable macro call nesting (more than %d levels)",
		       CONFIG_MAX_DEPTH);
	return "";
    }
    *state = ST_BUSY;
    ctx->chain[ctx->depth++] = id != P_COUNT ? param_name(id) : ctx->cfg->user[uidx].name;
    if (id != P_COUNT) {
	raw = config_raw_in_view(ctx, id);
	if (raw == NULL) {
	    char   *c = config_compute(ctx, id);

	    str_puts(&out, c);
	    if (v->svc == NULL)
		ctx->cfg->computed[id] = config_keep(ctx->cfg, mem_strdup(c));
	    mem_free(c);
	} else if (param_is_raw(id)) {
	    str_puts(&out, raw);
	} else {
	    config_expand_text(ctx, raw, &out);
	}
    } else {
	const MASTERCF_SERVICE *svc = v->svc;

	raw = svc ? mastercf_opt(svc, ctx->cfg->user[uidx].name) : NULL;
	if (raw == NULL)
	    raw = ctx->cfg->user[uidx].raw;
	config_expand_text(ctx, raw ? raw : "", &out);
    }
    ctx->depth--;
    str_reserve(&out, 1);
    *slot = config_keep(ctx->cfg, str_steal(&out, NULL));
    *state = ST_DONE;
    return *slot;
}

/* Find the end of a {...} or (...) group starting after open; returns a
 * pointer to the closing character or NULL. */
static const char *config_match(const char *s, char open, char close)
{
    int     depth = 1;

    for (; *s; s++) {
	if (*s == open)
	    depth++;
	else if (*s == close && --depth == 0)
	    return s;
    }
    return NULL;
}

static void config_expand_sub(struct config_ctx *ctx, const char *start,
			      const char *end, STR *out)
{
    char   *sub = mem_strndup(start, (size_t) (end - start));

    if (ctx->depth >= CONFIG_MAX_DEPTH) {
	config_problem(ctx, ctx->chain[0], param_lookup(ctx->chain[0]), -1,
		       "unreasonable macro call nesting (more than %d levels)",
		       CONFIG_MAX_DEPTH);
    } else {
	const char *inner = ctx->depth > 0 ? ctx->chain[ctx->depth - 1] : "(text)";

	ctx->chain[ctx->depth] = inner;
	ctx->depth++;
	config_expand_text(ctx, sub, out);
	ctx->depth--;
    }
    mem_free(sub);
}

/* Report a syntax error against the outermost name being expanded. */
static void config_syntax(struct config_ctx *ctx, const char *what, const char *text)
{
    STR     shown = STR_INIT;
    const char *name = ctx->depth > 0 ? ctx->chain[ctx->depth - 1] : "(text)";
    param_id id = param_lookup(name);
    ssize_t uidx = id == P_COUNT ? config_user_find(ctx->cfg, name, strlen(name)) : -1;

    config_show(&shown, text);
    config_problem(ctx, name, id, uidx, "%s in %s", what, STR_DATA(&shown));
    str_release(&shown);
}

static void config_expand_text(struct config_ctx *ctx, const char *text, STR *out)
{
    const char *s = text;

    while (*s) {
	const char *dollar = strchr(s, '$');

	if (dollar == NULL) {
	    str_puts(out, s);
	    return;
	}
	str_append(out, s, (size_t) (dollar - s));
	s = dollar + 1;
	if (*s == '$') {			/* $$ is a literal $ */
	    str_putc(out, '$');
	    s++;
	} else if (*s == '{' || *s == '(') {
	    char    open = *s, close = open == '{' ? '}' : ')';
	    const char *name = s + 1, *np = name, *end;
	    int     op;

	    while (config_name_char(*np))
		np++;
	    if ((end = config_match(s + 1, open, close)) == NULL) {
		config_syntax(ctx, open == '{' ? "unterminated ${" : "unterminated $(", dollar);
		return;
	    }
	    if (np == name) {
		config_syntax(ctx, "missing parameter name after $", dollar);
		s = end + 1;
		continue;
	    }
	    op = *np;
	    if (op == close) {
		str_puts(out, config_value_of(ctx, name, (size_t) (np - name)));
	    } else if (op == '?' || op == ':') {
		/* Copy: expanding may not change the name, but be safe. */
		bool    set = *config_value_of(ctx, name, (size_t) (np - name)) != 0;
		const char *t = np + 1, *a_end, *b = NULL, *b_end = NULL;

		while (*t == ' ' || *t == '\t')
		    t++;
		if (*t == '{' && (a_end = config_match(t + 1, '{', '}')) != NULL && a_end < end) {
		    const char *u = a_end + 1;

		    while (*u == ' ' || *u == '\t')
			u++;
		    if (op == '?' && *u == ':') {
			u++;
			while (*u == ' ' || *u == '\t')
			    u++;
			if (*u == '{' && (b_end = config_match(u + 1, '{', '}')) != NULL
			    && b_end < end)
			    b = u + 1;
			else
			    b_end = NULL;
		    }
		    if (op == '?' ? set : !set)
			config_expand_sub(ctx, t + 1, a_end, out);
		    else if (b)
			config_expand_sub(ctx, b, b_end, out);
		} else if (op == '?' ? set : !set) {
		    config_expand_sub(ctx, np + 1, end, out);
		}
	    } else {
		config_syntax(ctx, "bad character after parameter name", dollar);
	    }
	    s = end + 1;
	} else if (config_name_char(*s)) {
	    const char *name = s;

	    while (config_name_char(*s))
		s++;
	    str_puts(out, config_value_of(ctx, name, (size_t) (s - name)));
	} else {
	    str_putc(out, '$');		/* a lone $ stands for itself */
	}
    }
}

/* ---------- building ---------- */

/* Record every $name / ${name...} / $(name...) referenced in text. */
static void config_mark_refs(CONFIG *cfg, const char *text)
{
    for (const char *s = text; (s = strchr(s, '$')) != NULL;) {
	const char *name;
	ssize_t idx;

	s++;
	if (*s == '$') {
	    s++;
	    continue;
	}
	if (*s == '{' || *s == '(')
	    s++;
	name = s;
	while (config_name_char(*s))
	    s++;
	if (s > name && (idx = config_user_find(cfg, name, (size_t) (s - name))) >= 0)
	    cfg->user[idx].used = true;
    }
}

/* relay_destination_concurrency_limit -> P_DEFAULT_DESTINATION_CONCURRENCY_LIMIT */
static param_id config_transport_base(const CONFIG *cfg, const char *name)
{
    const MASTERCF *mcf = cfg->mastercf;
    size_t  n = mcf ? mcf->count : 0;

    for (size_t i = 0; mcf ? i < n : config_builtin_services[i] != NULL; i++) {
	const char *svc = mcf ? mcf->svc[i].name : config_builtin_services[i];
	const char *cmd = mcf ? mcf->svc[i].command : svc;
	size_t  len = strlen(svc);
	const char *rest;
	char    buf[256];
	param_id id;

	if (strncmp(name, svc, len) != 0 || name[len] != '_' || name[len + 1] == 0)
	    continue;
	rest = name + len + 1;
	snprintf(buf, sizeof(buf), "default_%s", rest);
	if ((id = param_lookup(buf)) != P_COUNT)
	    return id;
	if (strcmp(rest, "initial_destination_concurrency") == 0)
	    return P_INITIAL_DESTINATION_CONCURRENCY;
	snprintf(buf, sizeof(buf), "%s_%s", cmd, rest);
	if (strcmp(cmd, svc) != 0 && (id = param_lookup(buf)) != P_COUNT)
	    return id;
    }
    return P_COUNT;
}

static void config_view_init(CONFIG *cfg, struct config_view *v, const MASTERCF_SERVICE *svc)
{
    v->svc = svc;
    v->ustr = mem_calloc(cfg->nuser + 1, sizeof(char *));
    v->uival = mem_calloc(cfg->nuser + 1, sizeof(long long));
    v->ubval = mem_calloc(cfg->nuser + 1, sizeof(bool));
    v->ustate = mem_calloc(cfg->nuser + 1, 1);
}

static void config_view_release(struct config_view *v)
{
    mem_free(v->ustr);
    mem_free(v->uival);
    mem_free(v->ubval);
    mem_free(v->ustate);
}

static void config_check(struct config_ctx *ctx, const char *name, param_id type_id,
			 param_id where_id, ssize_t uidx, const char *value,
			 long long *ival, bool *bval)
{
    const char *why;
    STR     shown = STR_INIT;

    if (param_check_value(type_id, value, &why) != 0) {
	config_show(&shown, value);
	config_problem(ctx, name, where_id, uidx, "bad value %s: %s", STR_DATA(&shown), why);
	str_release(&shown);
	return;
    }
    switch (param_type(type_id)) {
    case PARAM_INT:
	(void) param_parse_int(value, ival, &why);
	break;
    case PARAM_TIME:
	(void) param_parse_time(value, param_unit(type_id), ival, &why);
	break;
    case PARAM_BOOL:
	(void) param_parse_bool(value, bval, &why);
	break;
    default:
	break;
    }
}

/* Expand and check every value of a view. In a service view, only values
 * that differ from the global view are checked (no duplicate messages). */
static void config_view_build(struct config_ctx *ctx)
{
    CONFIG *cfg = ctx->cfg;
    struct config_view *v = ctx->view;

    for (int id = 0; id < P_COUNT; id++) {
	const char *name = param_name((param_id) id);

	(void) config_value_of(ctx, name, strlen(name));
    }
    for (size_t i = 0; i < cfg->nuser; i++)
	if (cfg->user[i].used || cfg->user[i].base != P_COUNT)
	    (void) config_value_of(ctx, cfg->user[i].name, strlen(cfg->user[i].name));
    for (int id = 0; id < P_COUNT; id++) {
	if (v->svc && strcmp(v->str[id], cfg->global.str[id]) == 0) {
	    v->ival[id] = cfg->global.ival[id];
	    v->bval[id] = cfg->global.bval[id];
	    continue;
	}
	if (param_is_raw((param_id) id))
	    continue;
	config_check(ctx, param_name((param_id) id), (param_id) id, (param_id) id, -1,
		     v->str[id], &v->ival[id], &v->bval[id]);
    }
    for (size_t i = 0; i < cfg->nuser; i++) {
	struct config_user *u = &cfg->user[i];

	if (u->base == P_COUNT || v->ustr[i] == NULL)
	    continue;
	if (v->svc && strcmp(v->ustr[i], cfg->global.ustr[i]) == 0) {
	    v->uival[i] = cfg->global.uival[i];
	    v->ubval[i] = cfg->global.ubval[i];
	    continue;
	}
	config_check(ctx, u->name, u->base, P_COUNT, (ssize_t) i, v->ustr[i],
		     &v->uival[i], &v->ubval[i]);
    }
}

static void config_add_user(CONFIG *cfg, size_t *cap, const char *name,
			    const char *raw, int line)
{
    for (size_t i = 0; i < cfg->nuser; i++) {
	if (strcmp(cfg->user[i].name, name) == 0) {
	    if (raw) {
		cfg->user[i].raw = raw;
		cfg->user[i].line = line;
	    }
	    return;
	}
    }
    if (cfg->nuser == *cap) {
	*cap = *cap ? *cap * 2 : 16;
	cfg->user = mem_realloc(cfg->user, *cap * sizeof(*cfg->user));
    }
    cfg->user[cfg->nuser].name = mem_strdup(name);
    cfg->user[cfg->nuser].raw = raw;
    cfg->user[cfg->nuser].line = line;
    cfg->user[cfg->nuser].base = P_COUNT;
    cfg->user[cfg->nuser].used = false;
    cfg->nuser++;
}

static CONFIG *config_build(const char *dir, MAINCF *maincf, MASTERCF *mastercf,
			    int flags, STR *err)
{
    CONFIG *cfg = MEM_NEW(CONFIG);
    struct config_ctx ctx = {.cfg = cfg, .flags = flags, .err = err};
    size_t  ucap = 0;
    STR     path = STR_INIT;

    cfg->dir = mem_strdup(dir);
    str_printf(&path, "%s/main.cf", dir);
    cfg->maincf_path = mem_strdup(maincf ? maincf->path : STR_DATA(&path));
    str_reset(&path);
    str_printf(&path, "%s/master.cf", dir);
    cfg->mastercf_path = mem_strdup(mastercf ? mastercf->path : STR_DATA(&path));
    str_release(&path);
    cfg->maincf = maincf;
    cfg->mastercf = mastercf;

    /* Who sets what: the last main.cf entry of a name wins. */
    for (size_t i = 0; maincf && i < maincf->count; i++) {
	const MAINCF_ENTRY *e = &maincf->entry[i];
	param_id id = param_lookup(e->name);

	if (id != P_COUNT)
	    cfg->set[id] = e;
	else
	    config_add_user(cfg, &ucap, e->name, e->value, e->line);
    }
    for (size_t i = 0; mastercf && i < mastercf->count; i++)
	for (size_t j = 0; j < mastercf->svc[i].nopt; j++)
	    if (param_lookup(mastercf->svc[i].opt[j].name) == P_COUNT)
		config_add_user(cfg, &ucap, mastercf->svc[i].opt[j].name, NULL, 0);
    if (cfg->nuser)
	qsort(cfg->user, cfg->nuser, sizeof(*cfg->user), config_user_cmp);

    /* Which user names are used: per-transport forms, or $referenced. */
    for (size_t i = 0; i < cfg->nuser; i++)
	cfg->user[i].base = config_transport_base(cfg, cfg->user[i].name);
    for (size_t i = 0; maincf && i < maincf->count; i++)
	config_mark_refs(cfg, maincf->entry[i].value);
    for (size_t i = 0; mastercf && i < mastercf->count; i++) {
	for (size_t j = 0; j < mastercf->svc[i].nopt; j++)
	    config_mark_refs(cfg, mastercf->svc[i].opt[j].value);
	for (size_t j = 0; j < mastercf->svc[i].argc; j++)
	    config_mark_refs(cfg, mastercf->svc[i].argv[j]);
    }
    for (int id = 0; id < P_COUNT; id++)
	config_mark_refs(cfg, param_default((param_id) id));
    if (!(flags & CONFIG_NO_WARN)) {
	for (size_t i = 0; maincf && i < maincf->count; i++) {
	    const MAINCF_ENTRY *e = &maincf->entry[i];
	    ssize_t u;

	    if (param_lookup(e->name) != P_COUNT)
		continue;
	    u = config_user_find(cfg, e->name, strlen(e->name));
	    if (u >= 0 && !cfg->user[u].used && cfg->user[u].base == P_COUNT)
		msg_warn("%s, line %d: unused parameter: %s=%s", cfg->maincf_path,
			 e->line, e->name, e->value);
	}
	for (size_t i = 0; mastercf && i < mastercf->count; i++) {
	    const MASTERCF_SERVICE *svc = &mastercf->svc[i];

	    for (size_t j = 0; j < svc->nopt; j++) {
		ssize_t u;

		if (param_lookup(svc->opt[j].name) != P_COUNT)
		    continue;
		u = config_user_find(cfg, svc->opt[j].name, strlen(svc->opt[j].name));
		if (u >= 0 && !cfg->user[u].used && cfg->user[u].base == P_COUNT)
		    msg_warn("%s, line %d: service %s/%s: unused parameter: %s=%s",
			     cfg->mastercf_path, svc->line, svc->name, svc->type,
			     svc->opt[j].name, svc->opt[j].value);
	    }
	}
    }

    /* The global view, then one view per service with overrides. */
    config_view_init(cfg, &cfg->global, NULL);
    ctx.view = &cfg->global;
    config_view_build(&ctx);
    if (mastercf) {
	cfg->svc_view = mem_calloc(mastercf->count + 1, sizeof(*cfg->svc_view));
	for (size_t i = 0; i < mastercf->count; i++) {
	    if (mastercf->svc[i].nopt == 0)
		continue;
	    cfg->svc_view[i] = MEM_NEW(struct config_view);
	    config_view_init(cfg, cfg->svc_view[i], &mastercf->svc[i]);
	    ctx.view = cfg->svc_view[i];
	    config_view_build(&ctx);
	}
    }
    config_flush_problems(&ctx);
    if (ctx.errors) {
	config_free(cfg);
	return NULL;
    }
    return cfg;
}

CONFIG *config_load_text(const char *dir, const char *maincf_text, size_t maincf_len,
			 const char *mastercf_text, size_t mastercf_len, int flags,
			 STR *err)
{
    STR     path = STR_INIT;
    MAINCF *maincf;
    MASTERCF *mastercf = NULL;

    str_printf(&path, "%s/main.cf", dir);
    maincf = maincf_parse(STR_DATA(&path), maincf_text ? maincf_text : "",
			  maincf_text ? maincf_len : 0, err);
    if (mastercf_text) {
	str_reset(&path);
	str_printf(&path, "%s/master.cf", dir);
	mastercf = mastercf_parse(STR_DATA(&path), mastercf_text, mastercf_len, err);
    }
    str_release(&path);
    if (maincf == NULL || (mastercf_text && mastercf == NULL)) {
	maincf_free(maincf);
	mastercf_free(mastercf);
	return NULL;
    }
    return config_build(dir, maincf, mastercf, flags, err);
}

CONFIG *config_load(const char *dir, int flags, STR *err)
{
    STR     path = STR_INIT;
    MAINCF *maincf;
    MASTERCF *mastercf = NULL;
    size_t  len;
    char   *text;

    str_printf(&path, "%s/main.cf", dir);
    maincf = maincf_read(STR_DATA(&path), err);
    str_reset(&path);
    str_printf(&path, "%s/master.cf", dir);
    if ((text = maincf_slurp(STR_DATA(&path), &len)) != NULL) {
	mastercf = mastercf_parse(STR_DATA(&path), text, len, err);
	mem_free(text);
	if (mastercf == NULL) {
	    maincf_free(maincf);
	    str_release(&path);
	    return NULL;
	}
    }
    str_release(&path);
    if (maincf == NULL) {
	mastercf_free(mastercf);
	return NULL;
    }
    return config_build(dir, maincf, mastercf, flags, err);
}

void    config_free(CONFIG *cfg)
{
    if (cfg == NULL)
	return;
    config_view_release(&cfg->global);
    if (cfg->svc_view) {
	for (size_t i = 0; i < cfg->mastercf->count; i++) {
	    if (cfg->svc_view[i]) {
		config_view_release(cfg->svc_view[i]);
		mem_free(cfg->svc_view[i]);
	    }
	}
	mem_free(cfg->svc_view);
    }
    for (size_t i = 0; i < cfg->nuser; i++)
	mem_free(cfg->user[i].name);
    mem_free(cfg->user);
    for (size_t i = 0; i < cfg->narena; i++)
	mem_free(cfg->arena[i]);
    mem_free(cfg->arena);
    maincf_free(cfg->maincf);
    mastercf_free(cfg->mastercf);
    mem_free(cfg->dir);
    mem_free(cfg->maincf_path);
    mem_free(cfg->mastercf_path);
    mem_free(cfg);
}

/* ---------- installing ---------- */

static CONFIG *config_installed;		/* atomic */
static CONFIG *config_retired;			/* every snapshot ever current */
static CONFIG *config_defaults;
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;

/* Called with config_lock held. */
static void config_defaults_init(void)
{
    STR     err = STR_INIT;
    CONFIG *cfg = config_load_text(config_dir_select(NULL), "", 0, NULL, 0,
				   CONFIG_LENIENT | CONFIG_NO_WARN, &err);

    if (cfg == NULL)
	msg_panic("config: the built-in defaults do not load: %s", STR_DATA(&err));
    str_release(&err);
    cfg->retired = config_retired;
    config_retired = cfg;
    __atomic_store_n(&config_defaults, cfg, __ATOMIC_RELEASE);
}

void    config_install(CONFIG *cfg)
{
    pthread_mutex_lock(&config_lock);
    cfg->retired = config_retired;
    config_retired = cfg;
    __atomic_store_n(&config_installed, cfg, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&config_lock);
}

const CONFIG *config_current(void)
{
    CONFIG *cfg = __atomic_load_n(&config_installed, __ATOMIC_ACQUIRE);

    if (cfg)
	return cfg;
    if ((cfg = __atomic_load_n(&config_defaults, __ATOMIC_ACQUIRE)) != NULL)
	return cfg;
    pthread_mutex_lock(&config_lock);
    if (__atomic_load_n(&config_defaults, __ATOMIC_ACQUIRE) == NULL)
	config_defaults_init();
    pthread_mutex_unlock(&config_lock);
    return __atomic_load_n(&config_defaults, __ATOMIC_ACQUIRE);
}

int     config_reload(const char *dir, STR *err)
{
    size_t  start = STR_LEN(err);
    CONFIG *cfg = config_load(dir, 0, err);

    if (cfg == NULL) {
	char   *copy = mem_strdup(STR_DATA(err) + start);

	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n"))
	    msg_error("%s", line);
	msg_error("configuration not reloaded: keeping the current one");
	mem_free(copy);
	return -1;
    }
    config_install(cfg);
    return 0;
}

void    config_shutdown(void)
{
    CONFIG *cfg, *next;

    pthread_mutex_lock(&config_lock);
    cfg = config_retired;
    config_retired = NULL;
    __atomic_store_n(&config_installed, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&config_defaults, NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&config_lock);
    for (; cfg; cfg = next) {
	next = cfg->retired;
	config_free(cfg);
    }
}

/* ---------- reading ---------- */

const char *config_dir(const CONFIG *cfg)
{
    return cfg->dir;
}

const char *config_maincf_path(const CONFIG *cfg)
{
    return cfg->maincf_path;
}

const MAINCF *config_maincf(const CONFIG *cfg)
{
    return cfg->maincf;
}

const MASTERCF *config_mastercf(const CONFIG *cfg)
{
    return cfg->mastercf;
}

const char *config_str(const CONFIG *cfg, param_id id)
{
    return cfg->global.str[id];
}

long long config_int(const CONFIG *cfg, param_id id)
{
    return cfg->global.ival[id];
}

bool    config_bool(const CONFIG *cfg, param_id id)
{
    return cfg->global.bval[id];
}

const char *config_raw(const CONFIG *cfg, param_id id)
{
    return cfg->set[id] ? cfg->set[id]->value : NULL;
}

int     config_line(const CONFIG *cfg, param_id id)
{
    return cfg->set[id] ? cfg->set[id]->line : 0;
}

const char *config_default(const CONFIG *cfg, param_id id)
{
    if (cfg->computed[id])
	return cfg->computed[id];
    return param_default(id);
}

static const struct config_view *config_service_view(const CONFIG *cfg, const char *service)
{
    const MASTERCF_SERVICE *svc = mastercf_find(cfg->mastercf, service, NULL);

    if (svc == NULL || cfg->svc_view == NULL)
	return &cfg->global;
    return cfg->svc_view[svc - cfg->mastercf->svc] ? cfg->svc_view[svc - cfg->mastercf->svc]
	: &cfg->global;
}

const char *config_service_str(const CONFIG *cfg, const char *service, param_id id)
{
    return config_service_view(cfg, service)->str[id];
}

long long config_service_int(const CONFIG *cfg, const char *service, param_id id)
{
    return config_service_view(cfg, service)->ival[id];
}

bool    config_service_bool(const CONFIG *cfg, const char *service, param_id id)
{
    return config_service_view(cfg, service)->bval[id];
}

int     config_service_maxproc(const CONFIG *cfg, const char *service)
{
    const MASTERCF_SERVICE *svc = mastercf_find(cfg->mastercf, service, NULL);

    if (svc == NULL || svc->maxproc < 0)
	return (int) config_service_int(cfg, service, P_DEFAULT_PROCESS_LIMIT);
    return svc->maxproc;
}

/* The user entry for <transport>_<suffix of id>, or -1. */
static ssize_t config_transport_index(const CONFIG *cfg, const char *transport, param_id id)
{
    const char *name = param_name(id);
    char    buf[256];
    ssize_t idx;

    if (strncmp(name, "default_", 8) == 0)
	name += 8;
    else if (strncmp(name, "smtp_", 5) == 0 || strncmp(name, "lmtp_", 5) == 0)
	name += 5;
    if ((size_t) snprintf(buf, sizeof(buf), "%s_%s", transport, name) >= sizeof(buf))
	return -1;
    idx = config_user_find(cfg, buf, strlen(buf));
    if (idx < 0 || cfg->user[idx].base == P_COUNT || cfg->global.ustr[idx] == NULL)
	return -1;
    return idx;
}

const char *config_transport_str(const CONFIG *cfg, const char *transport, param_id id)
{
    ssize_t idx = config_transport_index(cfg, transport, id);

    return idx < 0 ? cfg->global.str[id] : cfg->global.ustr[idx];
}

long long config_transport_int(const CONFIG *cfg, const char *transport, param_id id)
{
    ssize_t idx = config_transport_index(cfg, transport, id);

    return idx < 0 ? cfg->global.ival[id] : cfg->global.uival[idx];
}

bool    config_transport_bool(const CONFIG *cfg, const char *transport, param_id id)
{
    ssize_t idx = config_transport_index(cfg, transport, id);

    return idx < 0 ? cfg->global.bval[id] : cfg->global.ubval[idx];
}

enum config_name_kind config_name_kind(const CONFIG *cfg, const char *name, param_id *id)
{
    param_id pid = param_lookup(name);
    ssize_t idx;

    if (pid != P_COUNT) {
	if (id)
	    *id = pid;
	return CONFIG_NAME_TABLE;
    }
    if ((pid = config_transport_base(cfg, name)) != P_COUNT) {
	if (id)
	    *id = pid;
	return CONFIG_NAME_TRANSPORT;
    }
    if ((idx = config_user_find(cfg, name, strlen(name))) >= 0 && cfg->user[idx].raw)
	return CONFIG_NAME_USER;
    return CONFIG_NAME_UNKNOWN;
}

const char *config_user_raw(const CONFIG *cfg, const char *name)
{
    ssize_t idx = config_user_find(cfg, name, strlen(name));

    return idx >= 0 ? cfg->user[idx].raw : NULL;
}

int     config_expand(const CONFIG *cfg, const char *text, STR *out, STR *err)
{
    /* Every name is already expanded in the global view: no writes. */
    struct config_ctx ctx = {.cfg = (CONFIG *) cfg, .view = (struct config_view *) &cfg->global,
    .err = err, .readonly = true};
    STR     dummy = STR_INIT;

    if (err == NULL)
	ctx.err = &dummy;
    ctx.chain[ctx.depth++] = "(text)";
    config_expand_text(&ctx, text, out);
    config_flush_problems(&ctx);
    str_release(&dummy);
    return ctx.errors ? -1 : 0;
}

/* ---------- lists ---------- */

char  **config_list_split(const char *value, size_t *countp)
{
    char  **list = mem_calloc(1, sizeof(char *));
    size_t  count = 0;
    const char *s = value ? value : "";

    for (;;) {
	const char *start;
	int     depth = 0;

	while (*s == ',' || *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
	    s++;
	if (*s == 0)
	    break;
	start = s;
	for (; *s; s++) {
	    if (*s == '{')
		depth++;
	    else if (*s == '}' && depth > 0)
		depth--;
	    else if (depth == 0 && (*s == ',' || *s == ' ' || *s == '\t'
				    || *s == '\r' || *s == '\n'))
		break;
	}
	list = mem_realloc(list, (count + 2) * sizeof(char *));
	list[count++] = mem_strndup(start, (size_t) (s - start));
	list[count] = NULL;
    }
    if (countp)
	*countp = count;
    return list;
}

void    config_list_free(char **list)
{
    if (list == NULL)
	return;
    for (char **p = list; *p; p++)
	mem_free(*p);
    mem_free(list);
}

bool    config_list_has(const char *list, const char *word)
{
    size_t  wlen = strlen(word);

    for (const char *p = list; p && *p;) {
	size_t  len;

	p += strspn(p, ", \t\r\n");
	len = strcspn(p, ", \t\r\n");
	if (len == wlen && strncasecmp(p, word, len) == 0)
	    return true;
	p += len;
    }
    return false;
}

size_t  config_listen_addrs(const char *name, char ***out)
{
    char    port[32];
    char  **ifaces, **addrs;
    size_t  nif, n = 0;

    if (strrchr(name, ':')) {			/* "host:port" */
	addrs = mem_calloc(2, sizeof(char *));
	addrs[0] = mem_strdup(name);
	*out = addrs;
	return 1;
    }
    if (strspn(name, "0123456789") == strlen(name)) {
	snprintf(port, sizeof(port), "%s", name);
    } else {
	struct servent *se = getservbyname(name, "tcp");

	snprintf(port, sizeof(port), "%d", se ? ntohs(se->s_port) : 25);
    }
    ifaces = config_list_split(param_str(P_INET_INTERFACES), &nif);
    addrs = mem_calloc(nif + 2, sizeof(char *));
    for (size_t i = 0; i < nif; i++) {
	STR     a = STR_INIT;

	if (strcmp(ifaces[i], "all") == 0) {
	    for (size_t k = 0; k < n; k++)
		mem_free(addrs[k]);
	    n = 0;
	    addrs[n++] = mem_strdup(port);
	    break;
	}
	if (strcmp(ifaces[i], "loopback-only") == 0 || strcmp(ifaces[i], "localhost") == 0)
	    str_printf(&a, "127.0.0.1:%s", port);
	else if (strchr(ifaces[i], ':'))
	    str_printf(&a, "[%s]:%s", ifaces[i], port);
	else
	    str_printf(&a, "%s:%s", ifaces[i], port);
	addrs[n++] = str_steal(&a, NULL);
    }
    if (n == 0)
	addrs[n++] = mem_strdup(port);
    config_list_free(ifaces);
    *out = addrs;
    return n;
}
