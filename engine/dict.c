/*
 * dict.c - "type:name" lookup tables: dispatch, key folding, and the reload
 * of file-backed tables (see dict.h).
 *
 * Every table type builds an immutable in-memory table (dict_priv.h). For
 * the file types (hash:, gdbm:, texthash:, cidr:, regexp:) the DICT holds a
 * pointer to the current table. At most once per check interval (1 s) a
 * lookup stat()s the file; when its identity (device, inode, size, mtime)
 * changed, that one lookup builds the new table, publishes it with an atomic
 * exchange, waits for a grace period (synchronize_rcu) and frees the old one.
 * Other threads go on looking up in the old table meanwhile: a lookup never
 * waits for a reload (the reload mutex is only ever try-locked). A table
 * that fails to load keeps the old version (warned once per file version).
 *
 * RCU flavour: liburcu-bp, because lookups happen in threads this module
 * does not create (stage threads, tests, commands) and the "bulletproof"
 * flavour registers reader threads by itself. The pointer is published and
 * read with C11-style atomics (release/acquire: what rcu_xchg_pointer and
 * rcu_dereference do), which ThreadSanitizer understands; the grace period
 * itself is invisible to TSan, so TSan builds annotate it.
 *
 * Threading: dict_lookup()/dict_walk()/dict_lookup_* from any number of
 * threads; dict_open()/dict_close() by one thread with no lookup running.
 * Diagnostics: dict_open() returns NULL with the reason in err; lookups of a
 * table that cannot be read return DICT_ERR; reload trouble is msg_warn()ed.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <urcu/urcu-bp.h>

#include "engine/dict.h"
#include "engine/dict_priv.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/timeutil.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define DICT_TSAN_RELEASE(p)	__tsan_release(p)
#define DICT_TSAN_ACQUIRE(p)	__tsan_acquire(p)
#else
#define DICT_TSAN_RELEASE(p)	((void) 0)
#define DICT_TSAN_ACQUIRE(p)	((void) 0)
#endif

typedef struct DICT_FILE_ID {
    dev_t   dev;
    ino_t   ino;
    off_t   size;
    struct timespec mtime;
    int     valid;
} DICT_FILE_ID;

struct DICT {
    char   *type_name;			/* "hash:/etc/postfix/access" */
    const DICT_TYPE *type;
    char   *path;			/* file types: the file read */
    int     flags;
    int     fold;			/* fold keys before lookup */
    void   *table;			/* RCU-protected: atomics only */
    unsigned long serial;		/* atomic: bumped per reload */
    /* Reload state. next_check is atomic; the rest under reload_lock. */
    int64_t next_check;
    pthread_mutex_t reload_lock;
    DICT_FILE_ID loaded;		/* version in table */
    DICT_FILE_ID failed;		/* version that did not load */
    int     stat_warned;
};

static const DICT_TYPE *dict_types[] = {
    &dict_type_hash, &dict_type_gdbm, &dict_type_texthash, &dict_type_inline,
    &dict_type_static, &dict_type_cidr, &dict_type_regexp,
    &dict_type_unionmap, &dict_type_unix,
};

static int64_t dict_check_interval = 1000000000LL;

void    dict_set_check_interval(long long ns)
{
    __atomic_store_n(&dict_check_interval, (int64_t) ns, __ATOMIC_RELAXED);
}

void    dict_fold(char *text)
{
    for (; *text; text++)
	if (*text >= 'A' && *text <= 'Z')
	    *text += 'a' - 'A';
}

/* dict_file_id - the identity of a file version */

static void dict_file_id(DICT_FILE_ID *id, const struct stat *st)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
    id->valid = 1;
}

static int dict_file_same(const DICT_FILE_ID *a, const DICT_FILE_ID *b)
{
    return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino
	&& a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec
	&& a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* dict_load - build a table from the file; the file's identity in id */

static void *dict_load(DICT *dict, DICT_FILE_ID *id, STR *err)
{
    struct stat st;
    int     fd;

    if ((fd = open(dict->path, O_RDONLY | O_CLOEXEC)) < 0) {
	str_printf(err, "open database %s: %s", dict->path, strerror(errno));
	return NULL;
    }
    if (fstat(fd, &st) < 0) {
	str_printf(err, "fstat %s: %s", dict->path, strerror(errno));
	close(fd);
	return NULL;
    }
    dict_file_id(id, &st);
    return dict->type->load(dict->path, fd, dict->flags, err);
}

/* dict_reload_locked - look at the file; swap in a new version */

static int dict_reload_locked(DICT *dict)
{
    struct stat st;
    DICT_FILE_ID now, got;
    STR     err = STR_INIT;
    void   *table, *old;

    if (stat(dict->path, &st) < 0) {
	/* Keep serving the old version; say so once. */
	if (!dict->stat_warned)
	    msg_warn("table %s: stat %s: %m -- keeping the loaded version",
		     dict->type_name, dict->path);
	dict->stat_warned = 1;
	return 0;
    }
    dict->stat_warned = 0;
    dict_file_id(&now, &st);
    if (dict_file_same(&now, &dict->loaded) || dict_file_same(&now, &dict->failed))
	return 0;
    if ((table = dict_load(dict, &got, &err)) == NULL) {
	msg_warn("table %s: %s -- keeping the loaded version",
		 dict->type_name, STR_DATA(&err));
	dict->failed = got;
	str_release(&err);
	return 0;
    }
    str_release(&err);
    if (msg_verbose)
	msg_info("table %s has changed -- reloaded", dict->type_name);
    DICT_TSAN_RELEASE(table);
    old = __atomic_exchange_n(&dict->table, table, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&dict->serial, 1, __ATOMIC_RELEASE);
    dict->loaded = got;
    urcu_bp_synchronize_rcu();			/* no reader holds old any more */
    DICT_TSAN_ACQUIRE(old);
    dict->type->free(old);
    return 1;
}

/* dict_maybe_reload - the once-a-second check, never blocking */

static void dict_maybe_reload(DICT *dict)
{
    int64_t now = time_mono_ns();

    if (now < __atomic_load_n(&dict->next_check, __ATOMIC_RELAXED))
	return;
    if (pthread_mutex_trylock(&dict->reload_lock) != 0)
	return;					/* another thread is at it */
    if (now >= __atomic_load_n(&dict->next_check, __ATOMIC_RELAXED)) {
	__atomic_store_n(&dict->next_check,
			 now + __atomic_load_n(&dict_check_interval, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	dict_reload_locked(dict);
    }
    pthread_mutex_unlock(&dict->reload_lock);
}

int     dict_refresh(DICT *dict)
{
    int     changed;

    if ((dict->type->tflags & DICT_TYPE_FILE) == 0)
	return 0;
    pthread_mutex_lock(&dict->reload_lock);
    changed = dict_reload_locked(dict);
    pthread_mutex_unlock(&dict->reload_lock);
    return changed;
}

unsigned long dict_serial(DICT *dict)
{
    return __atomic_load_n(&dict->serial, __ATOMIC_ACQUIRE);
}

/* dict_open - "type:name" to a table */

DICT   *dict_open(const char *type_name, int flags, STR *err)
{
    const char *colon = strchr(type_name, ':');
    const DICT_TYPE *type = NULL;
    DICT   *dict;
    STR     why = STR_INIT;
    size_t  tlen;

    if (colon == NULL || colon == type_name) {
	str_printf(err, "need dictionary type:name, not \"%s\"", type_name);
	return NULL;
    }
    tlen = (size_t) (colon - type_name);
    for (size_t n = 0; n < sizeof(dict_types) / sizeof(dict_types[0]); n++)
	if (strlen(dict_types[n]->name) == tlen
	    && strncmp(dict_types[n]->name, type_name, tlen) == 0)
	    type = dict_types[n];
    if (type == NULL) {
	str_printf(err, "unsupported dictionary type: %.*s", (int) tlen, type_name);
	return NULL;
    }
    if (colon[1] == 0) {
	str_printf(err, "%s: empty table name", type_name);
	return NULL;
    }
    dict = MEM_NEW(DICT);
    dict->type_name = mem_strdup(type_name);
    dict->type = type;
    dict->flags = flags;
    dict->fold = (type->tflags & DICT_TYPE_FIXED) && !(flags & DICT_FLAG_NO_FOLD);
    pthread_mutex_init(&dict->reload_lock, NULL);
    if (type->tflags & DICT_TYPE_FILE) {
	size_t  nlen = strlen(colon + 1), slen = strlen(type->suffix);

	dict->path = mem_alloc(nlen + slen + 1);
	memcpy(dict->path, colon + 1, nlen);
	memcpy(dict->path + nlen, type->suffix, slen + 1);
	dict->table = dict_load(dict, &dict->loaded, &why);
	dict->next_check = time_mono_ns() + dict_check_interval;
    } else {
	dict->table = type->open(colon + 1, flags, &why);
    }
    if (dict->table == NULL) {
	str_append(err, STR_DATA(&why), STR_LEN(&why));
	str_release(&why);
	dict->table = NULL;
	dict_close(dict);
	return NULL;
    }
    str_release(&why);
    return dict;
}

int     dict_is_fixed(DICT *dict)
{
    return (dict->type->tflags & DICT_TYPE_FIXED) != 0;
}

const char *dict_name(DICT *dict)
{
    return dict->type_name;
}

void    dict_close(DICT *dict)
{
    if (dict == NULL)
	return;
    if (dict->table)
	dict->type->free(dict->table);
    pthread_mutex_destroy(&dict->reload_lock);
    mem_free(dict->path);
    mem_free(dict->type_name);
    mem_free(dict);
}

/* dict_lookup - one key, folded as the table wants it */

int     dict_lookup(DICT *dict, const char *key, STR *result)
{
    char    small[256];
    char   *folded = NULL;
    const char *use = key;
    void   *table;
    int     rc;

    str_reset(result);
    if (dict->fold) {
	size_t  len = strlen(key);

	if (len == 0)
	    return DICT_NOTFOUND;
	folded = len < sizeof(small) ? small : mem_alloc(len + 1);
	memcpy(folded, key, len + 1);
	dict_fold(folded);
	use = folded;
    }
    if (dict->type->tflags & DICT_TYPE_FILE) {
	dict_maybe_reload(dict);
	urcu_bp_read_lock();
	table = __atomic_load_n(&dict->table, __ATOMIC_ACQUIRE);
	rc = dict->type->lookup(table, use, result);
	DICT_TSAN_RELEASE(table);
	urcu_bp_read_unlock();
    } else {
	rc = dict->type->lookup(dict->table, use, result);
    }
    if (rc != DICT_FOUND)
	str_reset(result);
    if (folded != small)
	mem_free(folded);
    return rc;
}

int     dict_walk(DICT *dict, dict_walk_fn fn, void *ctx)
{
    void   *table;
    int     rc;

    if (dict->type->walk == NULL)
	return DICT_ERR;
    if (dict->type->tflags & DICT_TYPE_FILE) {
	urcu_bp_read_lock();
	table = __atomic_load_n(&dict->table, __ATOMIC_ACQUIRE);
	rc = dict->type->walk(table, fn, ctx);
	DICT_TSAN_RELEASE(table);
	urcu_bp_read_unlock();
    } else {
	rc = dict->type->walk(dict->table, fn, ctx);
    }
    return rc;
}

/* dict_lookup_address - user@domain, then @domain */

int     dict_lookup_address(DICT *dict, const char *addr, STR *result)
{
    const char *at = strrchr(addr, '@');
    int     rc;

    if ((rc = dict_lookup(dict, addr, result)) != DICT_NOTFOUND)
	return rc;
    /* No domain, "@domain" already tried, or "user@" (never "@": that is
     * the alias database's completeness marker). */
    if (at == NULL || at == addr || at[1] == 0)
	return DICT_NOTFOUND;
    return dict_lookup(dict, at, result);
}

/* dict_lookup_domain - domain, then .parent forms */

int     dict_lookup_domain(DICT *dict, const char *domain, STR *result)
{
    const char *dot;
    int     rc;

    if ((rc = dict_lookup(dict, domain, result)) != DICT_NOTFOUND)
	return rc;
    for (dot = strchr(domain + (*domain == '.'), '.'); dot && dot[1];
	 dot = strchr(dot + 1, '.'))
	if ((rc = dict_lookup(dict, dot, result)) != DICT_NOTFOUND)
	    return rc;
    return DICT_NOTFOUND;
}

/* Helpers for braced names (dict_priv.h). */

int     dict_unbrace(const char *type, const char *name, STR *out, STR *err)
{
    const char *p = name, *end = name + strlen(name), *close = NULL;
    int     depth = 0;

    while (isspace((unsigned char) *p))
	p++;
    while (end > p && isspace((unsigned char) end[-1]))
	end--;
    if (*p != '{') {
	str_printf(err, "%s:%s: syntax error: expected \"{ ... }\"", type, name);
	return -1;
    }
    for (const char *q = p; q < end; q++) {
	if (*q == '{') {
	    depth++;
	} else if (*q == '}' && --depth == 0 && close == NULL) {
	    close = q;
	}
    }
    if (depth != 0) {
	str_printf(err, "%s:%s: syntax error: unbalanced '%c'", type, name,
		   depth > 0 ? '{' : '}');
	return -1;
    }
    if (close != end - 1) {
	str_printf(err, "%s:%s: syntax error: text after '}'", type, name);
	return -1;
    }
    p++, end--;
    while (p < end && isspace((unsigned char) *p))
	p++;
    while (end > p && isspace((unsigned char) end[-1]))
	end--;
    str_reset(out);
    str_append(out, p, (size_t) (end - p));
    return 0;
}

int     dict_split_items(const char *type, const char *text, dict_item_fn fn,
			         void *ctx, STR *err)
{
    const char *p = text, *start;
    int     depth, rc;

    for (;;) {
	while (*p == ',' || isspace((unsigned char) *p))
	    p++;
	if (*p == 0)
	    return 0;
	start = p;
	depth = 0;
	for (; *p; p++) {
	    if (*p == '{') {
		depth++;
	    } else if (*p == '}') {
		if (--depth < 0)
		    break;
	    } else if (depth == 0 && (*p == ',' || isspace((unsigned char) *p))) {
		break;
	    }
	}
	if (depth != 0) {
	    str_printf(err, "%s:{%s}: syntax error: unbalanced '%c'",
		       type, text, depth > 0 ? '{' : '}');
	    return -1;
	}
	if ((rc = fn(start, (size_t) (p - start), ctx)) != 0)
	    return rc;
    }
}
