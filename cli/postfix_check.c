/*
 * postfix_check.c - the checks of `postfix check` and the repairs of
 * `postfix set-permissions` (see postfix_check.h).
 *
 * Threading: a command, one thread. Diagnostics: one line per finding on
 * stderr; the exit status says whether any finding is a problem.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli/postfix_check.h"
#include "engine/config.h"
#include "engine/dict.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/privsep.h"
#include "engine/str.h"

#define POSTFIX_CHECK_SCRIPT "postfix/postfix-script"

typedef struct POSTFIX_CHECK {
    int     problems;
    char  **seen;			/* tables already opened */
    size_t  nseen;
} POSTFIX_CHECK;

static void postfix_check_say(POSTFIX_CHECK *pc, bool problem, const char *who,
			              const char *level, const char *fmt,...)
	__attribute__((format(printf, 5, 6)));

static void postfix_check_say(POSTFIX_CHECK *pc, bool problem, const char *who,
			              const char *level, const char *fmt,...)
{
    va_list ap;

    fprintf(stderr, "%s: %s: ", who, level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (problem)
	pc->problems++;
}

/* privsep_dirs() findings, in postfix-script's voice. */
static void postfix_check_dir_report(void *ctx, bool problem, const char *fmt,...)
{
    POSTFIX_CHECK *pc = ctx;
    STR     text = STR_INIT;
    va_list ap;

    va_start(ap, fmt);
    str_vprintf(&text, fmt, ap);
    va_end(ap);
    postfix_check_say(pc, problem, POSTFIX_CHECK_SCRIPT, problem ? "warning" : "info", "%s",
		      STR_DATA(&text));
    str_release(&text);
}

/* ---- directories and programs ---- */

static void postfix_check_directory(POSTFIX_CHECK *pc, param_id id)
{
    const char *path = param_str(id);
    struct stat st;

    if (stat(path, &st) < 0)
	postfix_check_say(pc, true, POSTFIX_CHECK_SCRIPT, "warning", "%s %s: %s",
			  param_name(id), path, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
	postfix_check_say(pc, true, POSTFIX_CHECK_SCRIPT, "warning", "%s %s: not a directory",
			  param_name(id), path);
}

/* postfix-script's check-warn on the configuration: root's, not writable
 * by others. "root" is the invoking user for an instance it owns. */
static void postfix_check_config_files(POSTFIX_CHECK *pc, const char *config_dir, uid_t root)
{
    static const char *const names[] = {"", "main.cf", "master.cf", NULL};

    for (int i = 0; names[i]; i++) {
	STR     path = STR_INIT;
	struct stat st;

	if (*names[i])
	    str_printf(&path, "%s/%s", config_dir, names[i]);
	else
	    str_puts(&path, config_dir);
	if (stat(STR_DATA(&path), &st) == 0) {
	    if (st.st_uid != root && st.st_uid != 0)
		postfix_check_say(pc, true, POSTFIX_CHECK_SCRIPT, "warning",
				  "not owned by root: %s", STR_DATA(&path));
	    if (st.st_mode & 022)
		postfix_check_say(pc, true, POSTFIX_CHECK_SCRIPT, "warning",
				  "group or other writable: %s", STR_DATA(&path));
	} else if (*names[i] == 0 || strcmp(names[i], "main.cf") == 0) {
	    postfix_check_say(pc, true, POSTFIX_CHECK_SCRIPT, "fatal", "%s: %s",
			      STR_DATA(&path), strerror(errno));
	}
	str_release(&path);
    }
}

/* ---- lookup tables ---- */

/* Dictionary types Postfix knows: an item "TYPE:name" names a table. */
static const char *const postfix_check_dict_types[] = {
    "hash", "gdbm", "btree", "dbm", "sdbm", "lmdb", "cdb", "texthash", "inline", "static",
    "cidr", "regexp", "pcre", "unionmap", "pipemap", "randmap", "unix", "proxy", "ldap",
    "mysql", "pgsql", "sqlite", "memcache", "nis", "nisplus", "netinfo", "socketmap",
    "tcp", "fail", "environ", "internal", NULL
};

/*
 * Parameters whose tables the mail system does not open for lookups:
 * newaliases' output, caches the engine creates itself, proxymap's lists.
 */
static bool postfix_check_skip_param(const char *name)
{
    static const char *const skip[] = {"alias_database", "address_verify_map",
	"proxy_read_maps", "proxy_write_maps", NULL};
    static const char *const suffix[] = {"_cache_map", "_cache_database", "_cache_name",
    NULL};
    size_t  len = strlen(name);

    for (int i = 0; skip[i]; i++)
	if (strcmp(name, skip[i]) == 0)
	    return true;
    for (int i = 0; suffix[i]; i++)
	if (len > strlen(suffix[i]) && strcmp(name + len - strlen(suffix[i]), suffix[i]) == 0)
	    return true;
    return false;
}

static bool postfix_check_is_table(const char *item)
{
    const char *colon = strchr(item, ':');

    if (colon == NULL || colon == item || colon[1] == 0)
	return false;
    for (int i = 0; postfix_check_dict_types[i]; i++)
	if (strlen(postfix_check_dict_types[i]) == (size_t) (colon - item)
	    && strncmp(postfix_check_dict_types[i], item, (size_t) (colon - item)) == 0)
	    return true;
    return false;
}

/* hash: and gdbm: tables: NAME.db older than NAME (postmap not rerun). */
static void postfix_check_stale(POSTFIX_CHECK *pc, const char *item)
{
    const char *name = strchr(item, ':') + 1;
    STR     db = STR_INIT;
    struct stat src, dbst;

    if (strncmp(item, "hash:", 5) != 0 && strncmp(item, "gdbm:", 5) != 0)
	return;
    str_printf(&db, "%s.db", name);
    if (stat(name, &src) == 0 && stat(STR_DATA(&db), &dbst) == 0
	&& (src.st_mtim.tv_sec > dbst.st_mtim.tv_sec
	    || (src.st_mtim.tv_sec == dbst.st_mtim.tv_sec
		&& src.st_mtim.tv_nsec > dbst.st_mtim.tv_nsec)))
	postfix_check_say(pc, true, "postfix", "warning",
			  "database %s is older than source file %s", STR_DATA(&db), name);
    str_release(&db);
}

static void postfix_check_table(POSTFIX_CHECK *pc, const char *item)
{
    STR     err = STR_INIT;
    DICT   *dict;

    /* proxy: only changes who opens the table. */
    while (strncmp(item, "proxy:", 6) == 0)
	item += 6;
    for (size_t i = 0; i < pc->nseen; i++)
	if (strcmp(pc->seen[i], item) == 0)
	    return;
    pc->seen = mem_realloc(pc->seen, (pc->nseen + 1) * sizeof(char *));
    pc->seen[pc->nseen++] = mem_strdup(item);
    if ((dict = dict_open(item, 0, &err)) == NULL) {
	postfix_check_say(pc, true, "postfix", "fatal", "%s", STR_DATA(&err));
    } else {
	dict_close(dict);
	postfix_check_stale(pc, item);
    }
    str_release(&err);
}

/* Warnings of the table code itself ("regexp map X, line N: ...") count. */
static int postfix_check_table_warnings;

static void postfix_check_sink(enum msg_level level, const char *service, const char *text)
{
    if (level >= MSG_WARN)
	postfix_check_table_warnings++;
    msg_sink_stderr(level, service, text);
}

/* Every "type:name" item of a value ("check_client_access hash:/x"). */
static void postfix_check_value(POSTFIX_CHECK *pc, const char *value)
{
    char  **items = config_list_split(value, NULL);

    for (size_t i = 0; items[i]; i++)
	if (postfix_check_is_table(items[i]))
	    postfix_check_table(pc, items[i]);
    config_list_free(items);
}

static void postfix_check_tables(POSTFIX_CHECK *pc, const CONFIG *cfg)
{
    const MAINCF *mcf = config_maincf(cfg);
    const MASTERCF *mscf = config_mastercf(cfg);

    postfix_check_table_warnings = 0;
    msg_sink_set(postfix_check_sink);
    for (param_id id = 0; id < P_COUNT; id++)
	if (!param_is_raw(id) && (param_type(id) == PARAM_STR || param_type(id) == PARAM_LIST)
	    && !postfix_check_skip_param(param_name(id)))
	    postfix_check_value(pc, config_str(cfg, id));
    /* User-defined parameters (smtpd_restriction_classes and the like). */
    for (size_t i = 0; mcf && i < mcf->count; i++) {
	param_id id;
	STR     out = STR_INIT, err = STR_INIT;

	if (config_name_kind(cfg, mcf->entry[i].name, &id) == CONFIG_NAME_TABLE
	    || postfix_check_skip_param(mcf->entry[i].name))
	    continue;
	if (config_expand(cfg, mcf->entry[i].value, &out, &err) == 0)
	    postfix_check_value(pc, STR_DATA(&out));
	str_release(&out);
	str_release(&err);
    }
    for (size_t i = 0; mscf && i < mscf->count; i++)
	for (size_t k = 0; k < mscf->svc[i].nopt; k++) {
	    STR     out = STR_INIT, err = STR_INIT;

	    if (postfix_check_skip_param(mscf->svc[i].opt[k].name))
		continue;
	    if (config_expand(cfg, mscf->svc[i].opt[k].value, &out, &err) == 0)
		postfix_check_value(pc, STR_DATA(&out));
	    str_release(&out);
	    str_release(&err);
	}
    msg_sink_set(NULL);
    pc->problems += postfix_check_table_warnings;
}

/* ---- all of it ---- */

int     postfix_check_run(const char *config_dir, bool fix)
{
    const CONFIG *cfg = config_current();
    POSTFIX_CHECK pc = {0};
    PRIVSEP_OWNERS o;
    STR     why = STR_INIT, master = STR_INIT;

    postfix_check_directory(&pc, P_COMMAND_DIRECTORY);
    postfix_check_directory(&pc, P_DAEMON_DIRECTORY);
    str_printf(&master, "%s/master", param_str(P_DAEMON_DIRECTORY));
    if (access(STR_DATA(&master), X_OK) < 0)
	postfix_check_say(&pc, true, POSTFIX_CHECK_SCRIPT, "warning", "%s: %s",
			  STR_DATA(&master), strerror(errno));
    str_release(&master);

    if (privsep_owners(&o, 0, &why) < 0) {
	postfix_check_say(&pc, true, POSTFIX_CHECK_SCRIPT, "fatal", "%s", STR_DATA(&why));
	postfix_check_config_files(&pc, config_dir, getuid());
    } else {
	/* An instance run by its own mail_owner has no root-owned parts. */
	if (o.owner_uid == getuid())
	    o.root_uid = o.owner_uid;
	postfix_check_config_files(&pc, config_dir, o.root_uid);
	/* Each problem is counted as it is reported. */
	(void) privsep_dirs(param_str(P_QUEUE_DIRECTORY), &o, fix, postfix_check_dir_report,
			    &pc);
    }
    postfix_check_tables(&pc, cfg);

    for (size_t i = 0; i < pc.nseen; i++)
	mem_free(pc.seen[i]);
    mem_free(pc.seen);
    str_release(&why);
    return pc.problems ? 1 : 0;
}
