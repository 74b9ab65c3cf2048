/*
 * dict.h - lookup tables ("type:name"), shared by every stage.
 *
 * Types: hash: and gdbm: (GDBM files built by postmap, NAME.db), texthash:,
 * inline:{ k=v, ... }, static:value, cidr:, regexp:, unionmap:{ t1, t2 },
 * unix:passwd.byname. Keys are matched as Postfix does (hash tables lower-case
 * keys unless told otherwise). A table whose file changes is reloaded in the
 * background and swapped in with RCU: lookups never block on a reload.
 *
 * Threading: a DICT may be used by any number of threads at once.
 * Diagnostics: dict_open() returns NULL with the reason in err; lookups of a
 * table that cannot be read return DICT_ERR (callers answer 451/4.3.0).
 */
#ifndef SLUICE_DICT_H
#define SLUICE_DICT_H

#include "engine/str.h"

typedef struct DICT DICT;

#define DICT_FOUND	1
#define DICT_NOTFOUND	0
#define DICT_ERR	(-1)

#define DICT_FLAG_NONE		0
#define DICT_FLAG_FOLD_KEY	(1<<0)	/* lower-case keys before lookup */

DICT *dict_open(const char *type_name, int flags, STR *err);
/* Copies the value into result (reset first). */
int   dict_lookup(DICT *dict, const char *key, STR *result);
const char *dict_name(DICT *dict);	/* "hash:/etc/postfix/access" */
void  dict_close(DICT *dict);

#endif
