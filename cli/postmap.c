/*
 * postmap.c - postmap(1): build, query and list lookup tables, as
 * Postfix's postmap does.
 *
 * Usage: postmap [-fimnNoprsvw] [-c config_dir] [-q key] [type:]file...
 *   postmap [type:]file	build file.db from file (type hash: or gdbm:;
 *				default hash): into a temporary file, synced and
 *				renamed into place, so readers never see half a
 *				table
 *   postmap -i [type:]file	add entries from stdin to the existing table
 *   postmap -q key maps...	print the first value found
 *   postmap -q - maps...	keys from stdin; print "key<TAB>value"
 *   postmap -s map		print every entry, "key<TAB>value"
 *   -f  do not fold keys to lower case    -r  replace duplicates silently
 *   -w  ignore duplicates silently        -p  new files get mode 0644
 *   -o  do not drop root privileges       -n, -N  accepted, no effect (Sluice
 *       stores keys and values with their NUL and reads both forms)
 *   -c dir  configuration directory (sets MAIL_CONFIG; postmap reads no
 *       parameter today: the default table type is hash)
 * Exit: 0 success or found, 1 not found or usage error, 2 table error
 * (Postfix says only "non-zero"). Bad input lines are skipped with
 * "postmap: warning: FILE, line N: expected format: key whitespace value";
 * duplicate keys keep the first value with
 * "postmap: warning: FILE.db: duplicate entry: "key"".
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/dict.h"
#include "engine/dict_cmd.h"
#include "engine/dict_gdbm.h"
#include "engine/dict_priv.h"
#include "engine/dict_text.h"
#include "engine/mem.h"
#include "engine/msg.h"

typedef struct POSTMAP_BUILD {
    DICT_GDBM_BUILD *build;
    int     fold;
    const char *type_name;
} POSTMAP_BUILD;

static void postmap_usage(void)
{
    msg_fatal("usage: postmap [-fimnNoprsvw] [-c config_dir] [-q key] [map_type:]file...");
}

static int postmap_add(char *key, char *value, int lineno, void *ctx)
{
    POSTMAP_BUILD *pb = ctx;
    STR     err = STR_INIT;

    (void) lineno;
    if (pb->fold)
	dict_fold(key);
    if (dict_gdbm_build_add(pb->build, key, value, &err) < 0)
	msg_fatal("table %s: write error: %s", pb->type_name, STR_DATA(&err));
    str_release(&err);
    return 0;
}

static void postmap_build(const char *arg, int incremental, int fold, int dup_mode,
			          int keep_root, int keep_mode)
{
    char   *type_name = dict_cmd_map_name(arg);
    char   *path = strchr(type_name, ':') + 1;
    STR     db_path = STR_INIT, err = STR_INIT;
    POSTMAP_BUILD pb;
    struct stat st;
    FILE   *fp;

    if (strncmp(type_name, "hash:", 5) != 0 && strncmp(type_name, "gdbm:", 5) != 0)
	msg_fatal("unsupported map type for this operation: %.*s",
		  (int) (path - type_name - 1), type_name);
    if (incremental) {
	fp = stdin;
    } else if ((fp = fopen(path, "re")) == NULL) {
	msg_fatal("open %s: %m", path);
    }
    if (fstat(fileno(fp), &st) < 0)
	msg_fatal("fstat %s: %m", incremental ? "stdin" : path);
    str_printf(&db_path, "%s.db", path);
    pb.fold = fold;
    pb.type_name = type_name;
    pb.build = dict_gdbm_build_open(STR_DATA(&db_path),
				    dict_cmd_build_prepare(&st, keep_root, keep_mode),
				    dup_mode, &err);
    if (pb.build == NULL)
	msg_fatal("%s", STR_DATA(&err));
    if (incremental && dict_gdbm_build_copy(pb.build, &err) < 0) {
	dict_gdbm_build_abort(pb.build);
	msg_fatal("%s", STR_DATA(&err));
    }
    if (dict_text_table(fp, incremental ? "stdin" : path, "", postmap_add, &pb) < 0) {
	dict_gdbm_build_abort(pb.build);
	msg_fatal("read %s: %m", incremental ? "stdin" : path);
    }
    if (dict_gdbm_build_commit(pb.build, &err) < 0)
	msg_fatal("%s", STR_DATA(&err));
    if (!incremental)
	fclose(fp);
    str_release(&db_path);
    str_release(&err);
    mem_free(type_name);
}

int     main(int argc, char **argv)
{
    DICT_CMD_OPTS o;
    int     status;

    msg_progname_set("postmap");
    umask(022);
    dict_cmd_options(argc, argv, &o, postmap_usage);
    if (optind >= argc)
	postmap_usage();
    if ((status = dict_cmd_lookups(&o, argv + optind, argc - optind, "\t")) >= 0)
	return status;
    for (int n = optind; n < argc; n++)
	postmap_build(argv[n], o.incremental, o.fold, o.dup_mode, o.keep_root, o.keep_mode);
    return 0;
}
