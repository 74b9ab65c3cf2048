/*
 * postalias.c - postalias(1) and newaliases(1): build, query and list
 * alias databases, as Postfix's postalias does.
 *
 * Usage: postalias [-finNoprsvw] [-c config_dir] [-q key] [type:]file...
 *        newaliases [-c config_dir]
 * The source is in aliases(5) format (engine/aliasfile.c); names are folded
 * to lower case (unless -f) and stored with the value as written. As
 * Postfix does, the database also gets the entry "@" -> "@" (Sendmail's
 * "this database is complete" marker). The build goes into a temporary
 * file that is synced and renamed over FILE.db.
 * newaliases (the same source built with POSTALIAS_NEWALIASES) runs
 * postalias on every table named in alias_database (default
 * hash:/etc/aliases), read from main.cf in the configuration directory
 * (-c, MAIL_CONFIG, or the compiled-in one) when main.cf exists.
 * Options and exit statuses as postmap(1) (engine/dict_cmd.h); -q - prints
 * "key:<TAB>value", -s prints "key:<TAB>value".
 * Diagnostics: "postalias: warning: FILE, line N: need name:value pair",
 * "... name must be local", "FILE.db: duplicate entry: "name"".
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/aliasfile.h"
#include "engine/config.h"
#include "engine/dict.h"
#include "engine/dict_cmd.h"
#include "engine/dict_gdbm.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"

#ifdef POSTALIAS_NEWALIASES
#define POSTALIAS_NAME	"newaliases"
#else
#define POSTALIAS_NAME	"postalias"
#endif

static void postalias_usage(void)
{
#ifdef POSTALIAS_NEWALIASES
    msg_fatal("usage: newaliases [-c config_dir] [-v]");
#else
    msg_fatal("usage: postalias [-finNoprsvw] [-c config_dir] [-q key] [map_type:]file...");
#endif
}

static int postalias_add(const char *name, const char *value, int lineno, void *ctx)
{
    (void) lineno;
    dict_cmd_build_add((DICT_CMD_BUILD *) ctx, name, value);
    return 0;
}

static void postalias_build(const char *arg, const DICT_CMD_OPTS *o)
{
    DICT_CMD_BUILD b;

    dict_cmd_build_begin(&b, arg, o);
    if (aliasfile_read(b.fp, b.source, postalias_add, &b) < 0)
	dict_cmd_build_read_error(&b);
    /* Sendmail's completeness marker; an update replaces the old one. */
    dict_gdbm_build_dup_mode(b.build, DICT_GDBM_DUP_REPLACE);
    dict_cmd_build_add(&b, "@", "@");
    dict_cmd_build_finish(&b);
}

/* postalias_config - main.cf, when there is one (for alias_database) */

static void postalias_config(const char *opt_c)
{
    const char *dir = config_dir_select(opt_c);
    STR     path = STR_INIT, err = STR_INIT;
    CONFIG *cfg;

    str_printf(&path, "%s/main.cf", dir);
    if (access(STR_DATA(&path), F_OK) == 0) {
	if ((cfg = config_load(dir, CONFIG_NO_WARN, &err)) == NULL)
	    msg_fatal("%s", STR_DATA(&err));
	config_install(cfg);
    }
    str_release(&path);
    str_release(&err);
}

int     main(int argc, char **argv)
{
    DICT_CMD_OPTS o;

    msg_progname_set(POSTALIAS_NAME);
    umask(022);
    dict_cmd_options(argc, argv, &o, postalias_usage);
    postalias_config(o.config_dir);
#ifdef POSTALIAS_NEWALIASES
    if (optind != argc || o.query || o.list || o.incremental)
	postalias_usage();
    {
	char   *spec = mem_strdup(param_str(P_ALIAS_DATABASE)), *save = NULL;
	int     built = 0;

	for (char *item = strtok_r(spec, ", \t\r\n", &save); item;
	     item = strtok_r(NULL, ", \t\r\n", &save)) {
	    postalias_build(item, &o);
	    built++;
	}
	mem_free(spec);
	if (msg_verbose)
	    msg_info("%d alias database(s) built", built);
    }
    return 0;
#else
    if (optind >= argc)
	postalias_usage();
    int     status = dict_cmd_lookups(&o, argv + optind, argc - optind, ":\t");

    if (status >= 0)
	return status;
    for (int n = optind; n < argc; n++)
	postalias_build(argv[n], &o);
    return 0;
#endif
}
