/*
 * dict_cmd.h - what postmap(1) and postalias(1) share: queries (-q, -q -),
 * listing (-s), and the set-up of a table build (permissions, owner).
 *
 * Exit statuses (Postfix's manual says 0 = found/success, non-zero
 * otherwise; Sluice tells the two failures apart): 0 found, 1 not found,
 * 2 a table could not be opened or read.
 * Threading: single-threaded commands.
 * Diagnostics: "postmap: fatal: ..." on stderr; exit 2 for table errors.
 */
#ifndef SLUICE_DICT_CMD_H
#define SLUICE_DICT_CMD_H

#include <sys/stat.h>
#include "engine/dict.h"
#include "engine/dict_gdbm.h"

#define DICT_CMD_EXIT_FOUND	0
#define DICT_CMD_EXIT_NOTFOUND	1
#define DICT_CMD_EXIT_ERROR	2

#define DICT_CMD_DEFAULT_TYPE	"hash"	/* default_database_type */

/* The options postmap and postalias share: -c -f -i -n -N -o -p -q -r -s -v -w. */
typedef struct DICT_CMD_OPTS {
    const char *config_dir;		/* -c (also exported as MAIL_CONFIG) */
    const char *query;			/* -q key, or "-" for keys on stdin */
    int     list;			/* -s */
    int     fold;			/* not -f */
    int     incremental;		/* -i */
    int     keep_root;			/* -o */
    int     keep_mode;			/* not -p */
    int     dup_mode;			/* DICT_GDBM_DUP_* (-r, -w) */
} DICT_CMD_OPTS;

/* Parses argv; calls usage() (which must not return) on a bad option. */
void    dict_cmd_options(int argc, char **argv, DICT_CMD_OPTS *opts, void (*usage)(void));
/* Runs -q, -q - or -s on maps when one was given: returns an exit status,
 * or -1 when the command is to build tables instead. */
int     dict_cmd_lookups(const DICT_CMD_OPTS *opts, char **maps, int count, const char *sep);

/*
 * Building NAME.db from a source file (or stdin with -i), shared by postmap
 * and postalias: begin opens the source and a new table the way the
 * options say (folding, duplicates, owner, mode; -i copies the old table
 * first); add stores one entry (keys folded here); finish commits and frees.
 * Every failure is fatal, and an unfinished table never replaces the old.
 */
typedef struct DICT_CMD_BUILD {
    DICT_GDBM_BUILD *build;
    char   *type_name;			/* "hash:/etc/postfix/access" */
    const char *source;			/* the source path, or "stdin" */
    FILE   *fp;
    int     fold;
    int     incremental;
} DICT_CMD_BUILD;

void    dict_cmd_build_begin(DICT_CMD_BUILD *b, const char *arg, const DICT_CMD_OPTS *opts);
void    dict_cmd_build_add(DICT_CMD_BUILD *b, const char *key, const char *value);
void    dict_cmd_build_read_error(DICT_CMD_BUILD *b) __attribute__((noreturn));
void    dict_cmd_build_finish(DICT_CMD_BUILD *b);

/* "file" -> "hash:file"; "type:file" unchanged. Result is allocated. */
char   *dict_cmd_map_name(const char *arg);

/* Prints the value of key in the first of maps that has it ("%s\n").
 * Returns an exit status. */
int     dict_cmd_query(char **maps, int count, const char *key, int flags);
/* Keys from stdin, one a line; prints "key<sep>value\n" per key found
 * (sep is "\t" for postmap, ":\t" for postalias). Returns an exit status. */
int     dict_cmd_queries(char **maps, int count, int flags, const char *sep);
/* Prints every entry of map as "key<sep>value\n". Returns an exit status. */
int     dict_cmd_list(const char *map, int flags, const char *sep);

/*
 * Before building from a source file with status st: when running as root
 * and not told otherwise (keep_root), become the file's owner, as Postfix
 * does; returns the mode for the new table: 0644 narrowed by the source's
 * group/other read bits unless keep_mode is 0 (-p).
 */
mode_t  dict_cmd_build_prepare(const struct stat *st, int keep_root, int keep_mode);

void    dict_cmd_exit(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
