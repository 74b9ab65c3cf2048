/*
 * dict_gdbm.h - building GDBM tables (postmap, postalias).
 *
 * The table NAME is built as NAME.db: entries go into a temporary file in
 * the same directory, which is synced and renamed over NAME.db, and the
 * directory is synced. A reader therefore sees either the old or the new
 * table, never half of one, and never meets a GDBM lock.
 * Keys and values are stored WITH their terminating NUL (as Postfix's hash:
 * tables on Linux); readers accept both forms.
 * Threading: a builder belongs to one thread.
 * Diagnostics: functions return -1 / NULL with the reason in err; duplicate
 * keys are warned as Postfix does ("NAME.db: duplicate entry: "key"").
 */
#ifndef SLUICE_DICT_GDBM_H
#define SLUICE_DICT_GDBM_H

#include <sys/types.h>
#include "engine/str.h"

typedef struct DICT_GDBM_BUILD DICT_GDBM_BUILD;

#define DICT_GDBM_DUP_WARN	0	/* keep the first, warn (default) */
#define DICT_GDBM_DUP_IGNORE	1	/* keep the first silently (-w) */
#define DICT_GDBM_DUP_REPLACE	2	/* keep the last silently (-r) */

DICT_GDBM_BUILD *dict_gdbm_build_open(const char *db_path, mode_t mode,
				              int dup_mode, STR *err);
/* Copies the entries of an existing db_path (incremental mode); a missing
 * file is an empty table. */
int     dict_gdbm_build_copy(DICT_GDBM_BUILD *build, STR *err);
/* Changes how later duplicates are handled. */
void    dict_gdbm_build_dup_mode(DICT_GDBM_BUILD *build, int dup_mode);
/* 1 = stored, 0 = duplicate (handled per dup_mode), -1 = write error. */
int     dict_gdbm_build_add(DICT_GDBM_BUILD *build, const char *key,
			            const char *value, STR *err);
/* Sync, rename into place, sync the directory; frees build. */
int     dict_gdbm_build_commit(DICT_GDBM_BUILD *build, STR *err);
/* Removes the temporary file; frees build. */
void    dict_gdbm_build_abort(DICT_GDBM_BUILD *build);

#endif
