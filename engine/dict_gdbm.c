/*
 * dict_gdbm.c - hash: and gdbm: tables (GDBM files NAME.db), and building
 * them (see dict_gdbm.h).
 *
 * Reading: the whole file is loaded into an in-memory table (dict_ht.c),
 * because one GDBM handle cannot be shared by threads and opening one per
 * lookup is far too slow; the table is swapped by dict.c when the file is
 * replaced. Files are opened without GDBM locking: postmap never writes a
 * live file (it renames a finished one into place).
 * Threading: lookups from any thread (immutable table); one builder per
 * thread. Diagnostics: errors carry gdbm_strerror() text.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/dict_gdbm.h"
#include "engine/dict_ht.h"
#include "engine/dict_priv.h"
#include "engine/mem.h"
#include "engine/msg.h"

/* dict_gdbm_datum - datum to C string (drops one trailing NUL); NULL if
 * there is a NUL inside */

static char *dict_gdbm_datum(datum d)
{
    size_t  len = (size_t) d.dsize;

    if (len > 0 && d.dptr[len - 1] == 0)
	len--;
    if (memchr(d.dptr, 0, len) != NULL)
	return NULL;
    return mem_strndup(d.dptr, len);
}

/* dict_gdbm_each - call fn for every entry of an open file */

typedef int (*dict_gdbm_fn) (const char *key, const char *value, void *ctx);

static int dict_gdbm_each(GDBM_FILE db, const char *path, dict_gdbm_fn fn,
			          void *ctx, STR *err)
{
    datum   key, next, val;
    int     rc = 0;

    for (key = gdbm_firstkey(db); key.dptr != NULL; key = next) {
	val = gdbm_fetch(db, key);
	if (val.dptr != NULL) {
	    char   *k = dict_gdbm_datum(key), *v = dict_gdbm_datum(val);

	    if (k && v)
		rc = fn(k, v, ctx);
	    mem_free(k);
	    mem_free(v);
	    free(val.dptr);
	}
	next = gdbm_nextkey(db, key);
	free(key.dptr);
	if (rc != 0) {
	    free(next.dptr);
	    str_printf(err, "%s: write error", path);
	    return -1;
	}
    }
    if (gdbm_errno != GDBM_ITEM_NOT_FOUND && gdbm_errno != GDBM_NO_ERROR) {
	str_printf(err, "read database %s: %s", path, gdbm_strerror(gdbm_errno));
	return -1;
    }
    return 0;
}

static int dict_gdbm_add_ht(const char *key, const char *value, void *ctx)
{
    dict_ht_add((DICT_HT *) ctx, key, value, 0);
    return 0;
}

static void *dict_gdbm_load(const char *path, int fd, int flags, STR *err)
{
    GDBM_FILE db;
    DICT_HT *ht;

    (void) flags;
    db = gdbm_fd_open(fd, path, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOERROR, NULL);
    if (db == NULL) {
	str_printf(err, "open database %s: %s", path, gdbm_strerror(gdbm_errno));
	return NULL;
    }
    ht = dict_ht_create();
    gdbm_errno = GDBM_NO_ERROR;
    if (dict_gdbm_each(db, path, dict_gdbm_add_ht, ht, err) < 0) {
	gdbm_close(db);
	dict_ht_free(ht);
	return NULL;
    }
    gdbm_close(db);
    return ht;
}

static int dict_gdbm_lookup(void *table, const char *key, STR *result)
{
    const char *value = dict_ht_get(table, key);

    if (value == NULL)
	return DICT_NOTFOUND;
    str_puts(result, value);
    return DICT_FOUND;
}

static int dict_gdbm_walk(void *table, dict_walk_fn fn, void *ctx)
{
    return dict_ht_walk(table, fn, ctx);
}

static void dict_gdbm_free(void *table)
{
    dict_ht_free(table);
}

const DICT_TYPE dict_type_hash = {
    "hash", DICT_TYPE_FILE | DICT_TYPE_FIXED, ".db",
    dict_gdbm_load, NULL, dict_gdbm_lookup, dict_gdbm_walk, dict_gdbm_free,
};

const DICT_TYPE dict_type_gdbm = {
    "gdbm", DICT_TYPE_FILE | DICT_TYPE_FIXED, ".db",
    dict_gdbm_load, NULL, dict_gdbm_lookup, dict_gdbm_walk, dict_gdbm_free,
};

/* Building. */

struct DICT_GDBM_BUILD {
    char   *db_path;
    char   *tmp_path;
    GDBM_FILE db;
    int     dup_mode;
};

DICT_GDBM_BUILD *dict_gdbm_build_open(const char *db_path, mode_t mode,
				              int dup_mode, STR *err)
{
    DICT_GDBM_BUILD *build;
    size_t  len = strlen(db_path);
    int     fd;

    build = MEM_NEW(DICT_GDBM_BUILD);
    build->db_path = mem_strdup(db_path);
    build->tmp_path = mem_alloc(len + sizeof(".XXXXXX"));
    memcpy(build->tmp_path, db_path, len);
    memcpy(build->tmp_path + len, ".XXXXXX", sizeof(".XXXXXX"));
    build->dup_mode = dup_mode;
    if ((fd = mkostemp(build->tmp_path, O_CLOEXEC)) < 0) {
	str_printf(err, "create %s: %s", build->tmp_path, strerror(errno));
	goto fail;
    }
    if (fchmod(fd, mode) < 0) {
	str_printf(err, "chmod %s: %s", build->tmp_path, strerror(errno));
	close(fd);
	unlink(build->tmp_path);
	goto fail;
    }
    build->db = gdbm_fd_open(fd, build->tmp_path, 0,
			     GDBM_NEWDB | GDBM_NOLOCK | GDBM_CLOERROR, NULL);
    if (build->db == NULL) {
	str_printf(err, "open database %s: %s", build->tmp_path,
		   gdbm_strerror(gdbm_errno));
	unlink(build->tmp_path);
	goto fail;
    }
    return build;

fail:
    mem_free(build->tmp_path);
    mem_free(build->db_path);
    mem_free(build);
    return NULL;
}

static int dict_gdbm_copy_one(const char *key, const char *value, void *ctx)
{
    STR     err = STR_INIT;
    int     rc = dict_gdbm_build_add(ctx, key, value, &err);

    str_release(&err);
    return rc < 0;
}

int     dict_gdbm_build_copy(DICT_GDBM_BUILD *build, STR *err)
{
    GDBM_FILE src;
    int     fd, rc;

    if ((fd = open(build->db_path, O_RDONLY | O_CLOEXEC)) < 0) {
	if (errno == ENOENT)
	    return 0;
	str_printf(err, "open database %s: %s", build->db_path, strerror(errno));
	return -1;
    }
    src = gdbm_fd_open(fd, build->db_path, 0,
		       GDBM_READER | GDBM_NOLOCK | GDBM_CLOERROR, NULL);
    if (src == NULL) {
	str_printf(err, "open database %s: %s", build->db_path,
		   gdbm_strerror(gdbm_errno));
	return -1;
    }
    gdbm_errno = GDBM_NO_ERROR;
    rc = dict_gdbm_each(src, build->db_path, dict_gdbm_copy_one, build, err);
    gdbm_close(src);
    return rc;
}

void    dict_gdbm_build_dup_mode(DICT_GDBM_BUILD *build, int dup_mode)
{
    build->dup_mode = dup_mode;
}

int     dict_gdbm_build_add(DICT_GDBM_BUILD *build, const char *key,
			            const char *value, STR *err)
{
    datum   k = {(char *) key, (int) strlen(key) + 1};
    datum   v = {(char *) value, (int) strlen(value) + 1};
    int     rc;

    rc = gdbm_store(build->db, k, v, build->dup_mode == DICT_GDBM_DUP_REPLACE ?
		    GDBM_REPLACE : GDBM_INSERT);
    if (rc < 0) {
	str_printf(err, "error writing %s: %s", build->tmp_path,
		   gdbm_db_strerror(build->db));
	return -1;
    }
    if (rc == 1) {
	if (build->dup_mode == DICT_GDBM_DUP_WARN)
	    msg_warn("%s: duplicate entry: \"%s\"", build->db_path, key);
	return 0;
    }
    return 1;
}

static void dict_gdbm_build_free(DICT_GDBM_BUILD *build)
{
    mem_free(build->tmp_path);
    mem_free(build->db_path);
    mem_free(build);
}

int     dict_gdbm_build_commit(DICT_GDBM_BUILD *build, STR *err)
{
    char   *dir_copy;
    int     dfd, rc = -1;

    if (gdbm_sync(build->db) != 0) {
	str_printf(err, "sync %s: %s", build->tmp_path, gdbm_db_strerror(build->db));
	goto fail;
    }
    if (fsync(gdbm_fdesc(build->db)) < 0) {
	str_printf(err, "fsync %s: %s", build->tmp_path, strerror(errno));
	goto fail;
    }
    if (gdbm_close(build->db) != 0) {
	build->db = NULL;
	str_printf(err, "close %s: %s", build->tmp_path, gdbm_strerror(gdbm_errno));
	goto fail;
    }
    build->db = NULL;
    if (rename(build->tmp_path, build->db_path) < 0) {
	str_printf(err, "rename %s to %s: %s", build->tmp_path, build->db_path,
		   strerror(errno));
	goto fail;
    }
    /* Make the rename itself durable. */
    dir_copy = mem_strdup(build->db_path);
    if ((dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
	if (fsync(dfd) < 0 && errno != EINVAL)
	    msg_warn("fsync directory of %s: %m", build->db_path);
	close(dfd);
    }
    mem_free(dir_copy);
    dict_gdbm_build_free(build);
    return 0;

fail:
    if (build->db)
	gdbm_close(build->db);
    unlink(build->tmp_path);
    dict_gdbm_build_free(build);
    return rc;
}

void    dict_gdbm_build_abort(DICT_GDBM_BUILD *build)
{
    if (build->db)
	gdbm_close(build->db);
    unlink(build->tmp_path);
    dict_gdbm_build_free(build);
}
