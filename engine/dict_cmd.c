/*
 * dict_cmd.c - the query, list and build set-up parts of postmap(1) and
 * postalias(1) (see dict_cmd.h).
 *
 * Threading: single-threaded commands. Diagnostics: fatal messages with
 * exit status 2 for table errors (dict_cmd_exit).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "engine/dict_cmd.h"
#include "engine/dict_gdbm.h"
#include "engine/dict_priv.h"
#include "engine/mem.h"
#include "engine/msg.h"

void    dict_cmd_exit(int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    msg_vprintf(MSG_FATAL, fmt, ap);
    va_end(ap);
    exit(status);
}

char   *dict_cmd_map_name(const char *arg)
{
    STR     name = STR_INIT;

    if (strchr(arg, ':') && arg[0] != '/')
	str_puts(&name, arg);
    else
	str_printf(&name, "%s:%s", DICT_CMD_DEFAULT_TYPE, arg);
    return str_steal(&name, NULL);
}

static DICT *dict_cmd_open(const char *map, int flags)
{
    STR     err = STR_INIT;
    char   *name = dict_cmd_map_name(map);
    DICT   *dict = dict_open(name, flags, &err);

    if (dict == NULL)
	dict_cmd_exit(DICT_CMD_EXIT_ERROR, "%s", STR_DATA(&err));
    str_release(&err);
    mem_free(name);
    return dict;
}

static void dict_cmd_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
	dict_cmd_exit(DICT_CMD_EXIT_ERROR, "write error on standard output: %m");
}

static void dict_cmd_empty_warning(DICT *dict, const char *key)
{
    msg_warn("table %s: key %s: empty string result is not allowed",
	     dict_name(dict), key);
    msg_warn("table %s should return NO RESULT in case of NOT FOUND",
	     dict_name(dict));
}

int     dict_cmd_query(char **maps, int count, const char *key, int flags)
{
    STR     value = STR_INIT;
    int     status = DICT_CMD_EXIT_NOTFOUND;

    for (int n = 0; n < count && status == DICT_CMD_EXIT_NOTFOUND; n++) {
	DICT   *dict = dict_cmd_open(maps[n], flags);

	switch (dict_lookup(dict, key, &value)) {
	case DICT_FOUND:
	    if (STR_LEN(&value) == 0)
		dict_cmd_empty_warning(dict, key);
	    printf("%s\n", STR_DATA(&value));
	    status = DICT_CMD_EXIT_FOUND;
	    break;
	case DICT_ERR:
	    dict_cmd_exit(DICT_CMD_EXIT_ERROR, "table %s: query error", dict_name(dict));
	}
	dict_close(dict);
    }
    dict_cmd_flush();
    str_release(&value);
    return status;
}

int     dict_cmd_queries(char **maps, int count, int flags, const char *sep)
{
    DICT  **dicts = mem_calloc((size_t) count, sizeof(*dicts));
    STR     value = STR_INIT;
    char   *line = NULL;
    size_t  cap = 0;
    ssize_t len;
    int     found = 0;

    while ((len = getline(&line, &cap, stdin)) >= 0) {
	if (len > 0 && line[len - 1] == '\n')
	    line[--len] = 0;
	for (int n = 0; n < count; n++) {
	    int     rc;

	    if (dicts[n] == NULL)		/* open lazily, as Postfix does */
		dicts[n] = dict_cmd_open(maps[n], flags);
	    rc = dict_lookup(dicts[n], line, &value);
	    if (rc == DICT_ERR)
		dict_cmd_exit(DICT_CMD_EXIT_ERROR, "table %s: query error",
			      dict_name(dicts[n]));
	    if (rc == DICT_FOUND) {
		if (STR_LEN(&value) == 0)
		    dict_cmd_empty_warning(dicts[n], line);
		printf("%s%s%s\n", line, sep, STR_DATA(&value));
		found = 1;
		break;
	    }
	}
    }
    dict_cmd_flush();
    for (int n = 0; n < count; n++)
	dict_close(dicts[n]);
    mem_free(dicts);
    free(line);
    str_release(&value);
    return found ? DICT_CMD_EXIT_FOUND : DICT_CMD_EXIT_NOTFOUND;
}

typedef struct DICT_CMD_LIST {
    DICT   *dict;
    const char *sep;
} DICT_CMD_LIST;

static int dict_cmd_list_one(const char *key, const char *value, void *ctx)
{
    DICT_CMD_LIST *list = ctx;

    if (*key == 0)
	msg_warn("table %s: empty lookup key value is not allowed",
		 dict_name(list->dict));
    else if (*value == 0)
	dict_cmd_empty_warning(list->dict, key);
    printf("%s%s%s\n", key, list->sep, value);
    return 0;
}

int     dict_cmd_list(const char *map, int flags, const char *sep)
{
    DICT_CMD_LIST list;

    list.dict = dict_cmd_open(map, flags);
    list.sep = sep;
    if (dict_walk(list.dict, dict_cmd_list_one, &list) == DICT_ERR)
	dict_cmd_exit(DICT_CMD_EXIT_ERROR, "table %s: sequence is not supported "
		      "for this table type", dict_name(list.dict));
    dict_cmd_flush();
    dict_close(list.dict);
    return DICT_CMD_EXIT_FOUND;
}

mode_t  dict_cmd_build_prepare(const struct stat *st, int keep_root, int keep_mode)
{
    if (!keep_root && geteuid() == 0 && S_ISREG(st->st_mode)
	&& (st->st_uid != 0 || st->st_gid != 0)) {
	/* Build as the source's owner: the result is theirs, and a bug here
	 * cannot be used to write as root. */
	if (setegid(st->st_gid) < 0 || seteuid(st->st_uid) < 0)
	    msg_fatal("set effective uid/gid to %ld/%ld: %m",
		      (long) st->st_uid, (long) st->st_gid);
    }
    if (keep_mode && S_ISREG(st->st_mode))
	return 0600 | (st->st_mode & 0044);
    return 0644;
}

void dict_cmd_options(int argc, char **argv, DICT_CMD_OPTS *o, void (*usage)(void))
{
    int     ch;

    memset(o, 0, sizeof(*o));
    o->fold = 1;
    o->keep_mode = 1;
    o->dup_mode = DICT_GDBM_DUP_WARN;
    while ((ch = getopt(argc, argv, "c:finNopq:rsvw")) != -1) {
	switch (ch) {
	case 'c':
	    o->config_dir = optarg;
	    if (setenv("MAIL_CONFIG", optarg, 1) < 0)
		msg_fatal("out of memory");
	    break;
	case 'f':
	    o->fold = 0;
	    break;
	case 'i':
	    o->incremental = 1;
	    break;
	case 'n':
	case 'N':
	    break;
	case 'o':
	    o->keep_root = 1;
	    break;
	case 'p':
	    o->keep_mode = 0;
	    break;
	case 'q':
	    if (o->list || o->query)
		msg_fatal("specify only one of -s or -q");
	    o->query = optarg;
	    break;
	case 'r':
	    o->dup_mode = DICT_GDBM_DUP_REPLACE;
	    break;
	case 's':
	    if (o->query)
		msg_fatal("specify only one of -s or -q");
	    o->list = 1;
	    break;
	case 'v':
	    msg_verbose++;
	    break;
	case 'w':
	    o->dup_mode = DICT_GDBM_DUP_IGNORE;
	    break;
	default:
	    usage();
	}
    }
}

int dict_cmd_lookups(const DICT_CMD_OPTS *o, char **maps, int count, const char *sep)
{
    int     flags = o->fold ? DICT_FLAG_FOLD_KEY : DICT_FLAG_NO_FOLD;

    if (o->query && strcmp(o->query, "-") == 0)
	return dict_cmd_queries(maps, count, flags, sep);
    if (o->query)
	return dict_cmd_query(maps, count, o->query, flags);
    if (o->list)
	return dict_cmd_list(maps[0], flags, sep);
    return -1;
}

void dict_cmd_build_begin(DICT_CMD_BUILD *b, const char *arg, const DICT_CMD_OPTS *o)
{
    char   *path;
    STR     db_path = STR_INIT, err = STR_INIT;
    struct stat st;

    b->type_name = dict_cmd_map_name(arg);
    path = strchr(b->type_name, ':') + 1;
    if (strncmp(b->type_name, "hash:", 5) != 0 && strncmp(b->type_name, "gdbm:", 5) != 0)
	msg_fatal("unsupported map type for this operation: %.*s",
		  (int) (path - b->type_name - 1), b->type_name);
    b->fold = o->fold;
    b->incremental = o->incremental;
    b->source = o->incremental ? "stdin" : path;
    if (o->incremental)
	b->fp = stdin;
    else if ((b->fp = fopen(path, "re")) == NULL)
	msg_fatal("open %s: %m", path);
    if (fstat(fileno(b->fp), &st) < 0)
	msg_fatal("fstat %s: %m", b->source);
    str_printf(&db_path, "%s.db", path);
    b->build = dict_gdbm_build_open(STR_DATA(&db_path),
			     dict_cmd_build_prepare(&st, o->keep_root, o->keep_mode),
				    o->dup_mode, &err);
    if (b->build == NULL)
	msg_fatal("%s", STR_DATA(&err));
    if (o->incremental && dict_gdbm_build_copy(b->build, &err) < 0) {
	dict_gdbm_build_abort(b->build);
	msg_fatal("%s", STR_DATA(&err));
    }
    str_release(&db_path);
    str_release(&err);
}

void dict_cmd_build_add(DICT_CMD_BUILD *b, const char *key, const char *value)
{
    STR     err = STR_INIT;
    char   *folded = NULL;

    if (b->fold) {
	folded = mem_strdup(key);
	dict_fold(folded);
	key = folded;
    }
    if (dict_gdbm_build_add(b->build, key, value, &err) < 0)
	msg_fatal("table %s: write error: %s", b->type_name, STR_DATA(&err));
    mem_free(folded);
    str_release(&err);
}

void dict_cmd_build_read_error(DICT_CMD_BUILD *b)
{
    dict_gdbm_build_abort(b->build);
    msg_fatal("read %s: %m", b->source);
}

void dict_cmd_build_finish(DICT_CMD_BUILD *b)
{
    STR     err = STR_INIT;

    if (dict_gdbm_build_commit(b->build, &err) < 0)
	msg_fatal("%s", STR_DATA(&err));
    if (!b->incremental)
	fclose(b->fp);
    str_release(&err);
    mem_free(b->type_name);
}
