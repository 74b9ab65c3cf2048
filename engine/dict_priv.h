/*
 * dict_priv.h - what dict.c and the per-type files dict_*.c share.
 *
 * Every table type is one DICT_TYPE: a set of functions that turn the
 * table's name (or its open file) into an IMMUTABLE in-memory table, look
 * keys up in such a table, walk it, and free it. dict.c owns everything
 * else: "type:name" dispatch, key folding, and the reload of file-backed
 * tables (a new immutable table is built and swapped in with RCU).
 *
 * Threading: a built table is never modified, so lookup() and walk() may run
 * in any number of threads at once; load()/open() run in one thread.
 * Diagnostics: load()/open() return NULL with the reason in err; per-line
 * problems in a table file are msg_warn()ed and the line is skipped, as
 * Postfix does.
 */
#ifndef SLUICE_DICT_PRIV_H
#define SLUICE_DICT_PRIV_H

#include "engine/dict.h"
#include "engine/str.h"

typedef struct DICT_TYPE {
    const char *name;			/* "hash" */
    unsigned tflags;
#define DICT_TYPE_FILE	(1<<0)		/* name is a file, reloaded on change */
#define DICT_TYPE_FIXED	(1<<1)		/* fixed-string keys: folded */
    const char *suffix;			/* FILE: appended to name (".db") */
    /* FILE types: build from the open file (fd is closed by the callee). */
    void   *(*load) (const char *path, int fd, int flags, STR *err);
    /* other types: build from the name ("{ k=v }", "passwd.byname"). */
    void   *(*open) (const char *name, int flags, STR *err);
    int     (*lookup) (void *table, const char *key, STR *result);
    int     (*walk) (void *table, dict_walk_fn fn, void *ctx);	/* optional */
    void    (*free) (void *table);
} DICT_TYPE;

extern const DICT_TYPE dict_type_hash;
extern const DICT_TYPE dict_type_gdbm;
extern const DICT_TYPE dict_type_texthash;
extern const DICT_TYPE dict_type_inline;
extern const DICT_TYPE dict_type_static;
extern const DICT_TYPE dict_type_cidr;
extern const DICT_TYPE dict_type_regexp;
extern const DICT_TYPE dict_type_unionmap;
extern const DICT_TYPE dict_type_unix;

/* Helpers for the braced names of inline:, static: and unionmap:. */

/* "{ text }" -> "text" (trimmed). Returns 0, or -1 with the reason in err. */
int     dict_unbrace(const char *type, const char *name, STR *out, STR *err);

/*
 * Splits text into items separated by commas and/or whitespace, where an
 * item may contain (nested) "{ ... }" groups with whitespace in them.
 * Calls fn for each item; stops and returns fn's non-zero result. Returns
 * -1 with err set on unbalanced braces.
 */
typedef int (*dict_item_fn) (const char *item, size_t len, void *ctx);
int     dict_split_items(const char *type, const char *text, dict_item_fn fn,
			         void *ctx, STR *err);

/* 1 when the table matches fixed strings (hash:, texthash:, inline:, ...),
 * 0 for pattern tables (regexp:, cidr:) and static:/unionmap:. */
int     dict_is_fixed(DICT *dict);

/* Lower-cases ASCII in place. */
void    dict_fold(char *text);

#endif
