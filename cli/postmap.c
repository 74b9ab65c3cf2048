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
#include "engine/dict_text.h"
#include "engine/mem.h"
#include "engine/msg.h"

static void postmap_usage(void)
{
    msg_fatal("usage: postmap [-fimnNoprsvw] [-c config_dir] [-q key] [map_type:]file...");
}

static int postmap_add(char *key, char *value, int lineno, void *ctx)
{
    (void) lineno;
    dict_cmd_build_add((DICT_CMD_BUILD *) ctx, key, value);
    return 0;
}

static void postmap_build(const char *arg, const DICT_CMD_OPTS *o)
{
    DICT_CMD_BUILD b;

    dict_cmd_build_begin(&b, arg, o);
    if (dict_text_table(b.fp, b.source, "", postmap_add, &b) < 0)
	dict_cmd_build_read_error(&b);
    dict_cmd_build_finish(&b);
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
	postmap_build(argv[n], &o);
    return 0;
}
