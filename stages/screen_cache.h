/*
 * screen_cache.h - a small persistent key/value cache for the services
 * that remember decisions: postscreen's temporary allowlist
 * (postscreen_cache_map) and address verification results
 * (address_verify_map).
 *
 * A cache is a GDBM file ("btree:/path", "hash:/path" or "gdbm:/path":
 * the file is /path.db, as Postfix names its hash and btree files) or,
 * with "internal:" or an empty spec, a table in memory that is lost at
 * exit. Values are short text records whose meaning belongs to the caller;
 * expiry is the caller's too (screen_cache_clean walks every entry).
 *
 * Threading: every function may be called from any thread (one mutex per
 * cache; GDBM handles are not shareable, so the mutex also guards it).
 * Diagnostics: screen_cache_open() returns NULL with the reason in err;
 * write errors are logged with msg_warn() and otherwise ignored (a cache
 * that cannot remember only costs another test or probe).
 */
#ifndef SLUICE_SCREEN_CACHE_H
#define SLUICE_SCREEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/str.h"

typedef struct SCREEN_CACHE SCREEN_CACHE;

SCREEN_CACHE *screen_cache_open(const char *spec, STR *err);
/* 1 and the value in out (reset first), or 0 when there is none. */
int     screen_cache_get(SCREEN_CACHE *c, const char *key, STR *out);
void    screen_cache_put(SCREEN_CACHE *c, const char *key, const char *value);
void    screen_cache_del(SCREEN_CACHE *c, const char *key);
/* Removes every entry for which keep() returns false; returns how many. */
typedef bool (*screen_cache_keep_fn)(const char *key, const char *value, void *ctx);
size_t  screen_cache_clean(SCREEN_CACHE *c, screen_cache_keep_fn keep, void *ctx);
/* "gdbm:/path.db" or "internal:" (for logs). */
const char *screen_cache_name(const SCREEN_CACHE *c);
void    screen_cache_close(SCREEN_CACHE *c);

#endif
