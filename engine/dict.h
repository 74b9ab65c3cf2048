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

/*
 * Added with the implementation (engine/dict.c).
 *
 * Keys of fixed-string tables (hash:, gdbm:, texthash:, inline:, unix:) are
 * folded to lower case by default, as Postfix's maps are; DICT_FLAG_FOLD_KEY
 * asks for that default explicitly, DICT_FLAG_NO_FOLD turns it off (postmap
 * -f). regexp: and cidr: never fold (regexp has its own "i" flag).
 */
#define DICT_FLAG_NO_FOLD	(1<<1)	/* match keys exactly as given */

/* Calls fn for every entry (postmap -s); a non-zero return stops the walk
 * and is returned. DICT_ERR if the type cannot be listed. */
typedef int (*dict_walk_fn)(const char *key, const char *value, void *ctx);
int   dict_walk(DICT *dict, dict_walk_fn fn, void *ctx);

/*
 * virtual(5)/access(5)-style address lookup for fixed-string tables:
 * "user@domain", then "@domain". (Postfix also tries the bare "user" when
 * the domain is local; that needs the caller's knowledge of mydestination,
 * so the caller does that step itself; address extensions likewise.)
 * An address without '@' is looked up as is. Result as dict_lookup().
 */
int   dict_lookup_address(DICT *dict, const char *addr, STR *result);
/*
 * transport(5)-style domain lookup: "a.b.example.com", then the parent
 * forms ".b.example.com", ".example.com", ".com". Stops at the first hit
 * or error.
 */
int   dict_lookup_domain(DICT *dict, const char *domain, STR *result);

/* A number that changes whenever the table is reloaded (for caches). */
unsigned long dict_serial(DICT *dict);
/* Checks the file now instead of waiting for the next once-a-second
 * check; returns 1 when a new version was swapped in, else 0. */
int   dict_refresh(DICT *dict);
/* How often lookups look at the file (default 1 s; tests use 0). */
void  dict_set_check_interval(long long ns);

#endif
