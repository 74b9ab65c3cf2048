/*
 * screen_cache.c - persistent key/value cache on GDBM, or in memory (see
 * screen_cache.h).
 *
 * The memory table is a chained hash with a fixed bucket count; the
 * callers keep it small by cleaning out expired entries. GDBM writes are
 * not synced one by one: the file is synced on close, and a crash costs
 * at most the decisions made since the last sync (a new test or probe).
 *
 * Threading and diagnostics: see screen_cache.h.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gdbm.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "stages/screen_cache.h"

#define CACHE_BUCKETS	4096

typedef struct CACHE_ENT {
    struct CACHE_ENT *next;
    char   *key;
    char   *value;
} CACHE_ENT;

struct SCREEN_CACHE {
    pthread_mutex_t lock;
    char   *name;
    GDBM_FILE db;			/* NULL: memory */
    CACHE_ENT **buckets;
};

static unsigned cache_hash(const char *s)
{
    unsigned h = 2166136261u;

    while (*s)
	h = (h ^ (unsigned char) *s++) * 16777619u;
    return h % CACHE_BUCKETS;
}

SCREEN_CACHE *screen_cache_open(const char *spec, STR *err)
{
    SCREEN_CACHE *c;
    const char *colon = spec ? strchr(spec, ':') : NULL;
    STR     path = STR_INIT;

    if (spec == NULL || *spec == 0 || strncmp(spec, "internal:", 9) == 0) {
	c = MEM_NEW(SCREEN_CACHE);
	c->name = mem_strdup("internal:");
	c->buckets = mem_calloc(CACHE_BUCKETS, sizeof(CACHE_ENT *));
	pthread_mutex_init(&c->lock, NULL);
	return c;
    }
    if (colon == NULL || colon[1] != '/'
	|| !((colon - spec == 5 && strncmp(spec, "btree", 5) == 0)
	     || (colon - spec == 4 && strncmp(spec, "hash", 4) == 0)
	     || (colon - spec == 4 && strncmp(spec, "gdbm", 4) == 0))) {
	str_printf(err, "unsupported cache table \"%s\": expected btree:/path, hash:/path, "
		   "gdbm:/path or internal:", spec);
	return NULL;
    }
    str_printf(&path, "%s.db", colon + 1);
    GDBM_FILE db = gdbm_open(STR_DATA(&path), 0, GDBM_WRCREAT | GDBM_CLOEXEC, 0600, NULL);

    if (db == NULL) {
	str_printf(err, "cannot open %s: %s%s%s", STR_DATA(&path), gdbm_strerror(gdbm_errno),
		   errno ? ": " : "", errno ? strerror(errno) : "");
	str_release(&path);
	return NULL;
    }
    c = MEM_NEW(SCREEN_CACHE);
    c->db = db;
    c->name = mem_alloc(STR_LEN(&path) + 6);
    strcpy(c->name, "gdbm:");
    strcat(c->name, STR_DATA(&path));
    pthread_mutex_init(&c->lock, NULL);
    str_release(&path);
    return c;
}

const char *screen_cache_name(const SCREEN_CACHE *c)
{
    return c->name;
}

static CACHE_ENT **cache_find(SCREEN_CACHE *c, const char *key)
{
    CACHE_ENT **pp = &c->buckets[cache_hash(key)];

    while (*pp && strcmp((*pp)->key, key) != 0)
	pp = &(*pp)->next;
    return pp;
}

int     screen_cache_get(SCREEN_CACHE *c, const char *key, STR *out)
{
    int     found = 0;

    str_reset(out);
    pthread_mutex_lock(&c->lock);
    if (c->db) {
	datum   k = {(char *) key, (int) strlen(key)};
	datum   v = gdbm_fetch(c->db, k);

	if (v.dptr) {
	    str_append(out, v.dptr, (size_t) v.dsize);
	    free(v.dptr);
	    found = 1;
	}
    } else {
	CACHE_ENT *e = *cache_find(c, key);

	if (e) {
	    str_puts(out, e->value);
	    found = 1;
	}
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

void    screen_cache_put(SCREEN_CACHE *c, const char *key, const char *value)
{
    pthread_mutex_lock(&c->lock);
    if (c->db) {
	datum   k = {(char *) key, (int) strlen(key)};
	datum   v = {(char *) value, (int) strlen(value)};

	if (gdbm_store(c->db, k, v, GDBM_REPLACE) != 0)
	    msg_warn("%s: cannot store %s: %s", c->name, key, gdbm_db_strerror(c->db));
    } else {
	CACHE_ENT **pp = cache_find(c, key);

	if (*pp) {
	    mem_free((*pp)->value);
	} else {
	    *pp = MEM_NEW(CACHE_ENT);
	    (*pp)->key = mem_strdup(key);
	}
	(*pp)->value = mem_strdup(value);
    }
    pthread_mutex_unlock(&c->lock);
}

static void cache_ent_free(CACHE_ENT *e)
{
    mem_free(e->key);
    mem_free(e->value);
    mem_free(e);
}

void    screen_cache_del(SCREEN_CACHE *c, const char *key)
{
    pthread_mutex_lock(&c->lock);
    if (c->db) {
	datum   k = {(char *) key, (int) strlen(key)};

	(void) gdbm_delete(c->db, k);
    } else {
	CACHE_ENT **pp = cache_find(c, key);
	CACHE_ENT *e = *pp;

	if (e) {
	    *pp = e->next;
	    cache_ent_free(e);
	}
    }
    pthread_mutex_unlock(&c->lock);
}

size_t  screen_cache_clean(SCREEN_CACHE *c, screen_cache_keep_fn keep, void *ctx)
{
    size_t  n = 0;

    pthread_mutex_lock(&c->lock);
    if (c->db) {
	/* Deleting while walking reorders GDBM's buckets: collect first. */
	char  **doomed = NULL;
	size_t  ndoomed = 0;
	datum   k = gdbm_firstkey(c->db);

	while (k.dptr) {
	    datum   v = gdbm_fetch(c->db, k);
	    char   *key = mem_strndup(k.dptr, (size_t) k.dsize);
	    char   *val = v.dptr ? mem_strndup(v.dptr, (size_t) v.dsize) : mem_strdup("");

	    if (!keep(key, val, ctx)) {
		doomed = mem_realloc(doomed, (ndoomed + 1) * sizeof(char *));
		doomed[ndoomed++] = key;
	    } else
		mem_free(key);
	    mem_free(val);
	    free(v.dptr);
	    datum   next = gdbm_nextkey(c->db, k);

	    free(k.dptr);
	    k = next;
	}
	for (size_t i = 0; i < ndoomed; i++) {
	    datum   dk = {doomed[i], (int) strlen(doomed[i])};

	    if (gdbm_delete(c->db, dk) == 0)
		n++;
	    mem_free(doomed[i]);
	}
	mem_free(doomed);
    } else {
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
	    CACHE_ENT **pp = &c->buckets[b];

	    while (*pp) {
		CACHE_ENT *e = *pp;

		if (!keep(e->key, e->value, ctx)) {
		    *pp = e->next;
		    cache_ent_free(e);
		    n++;
		} else
		    pp = &e->next;
	    }
	}
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

void    screen_cache_close(SCREEN_CACHE *c)
{
    if (c == NULL)
	return;
    if (c->db) {
	gdbm_sync(c->db);
	gdbm_close(c->db);
    } else {
	for (size_t b = 0; b < CACHE_BUCKETS; b++)
	    while (c->buckets[b]) {
		CACHE_ENT *e = c->buckets[b];

		c->buckets[b] = e->next;
		cache_ent_free(e);
	    }
	mem_free(c->buckets);
    }
    pthread_mutex_destroy(&c->lock);
    mem_free(c->name);
    mem_free(c);
}
