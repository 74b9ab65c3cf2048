/*
 * dict_texthash.c - texthash: tables, a postmap source file read straight
 * into memory (no NAME.db); reloaded by dict.c when the file changes.
 *
 * Same format as postmap's input (dict_text.c). Keys are folded unless the
 * table was opened with DICT_FLAG_NO_FOLD. Duplicate keys: the first wins,
 * with Postfix's warning.
 * Threading: lookups in the immutable table from any thread.
 * Diagnostics: per-line warnings; a read error fails the load.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/dict_ht.h"
#include "engine/dict_priv.h"
#include "engine/dict_text.h"
#include "engine/msg.h"

typedef struct DICT_TEXTHASH_LOAD {
    DICT_HT *ht;
    const char *path;
    int     fold;
} DICT_TEXTHASH_LOAD;

static int dict_texthash_add(char *key, char *value, int lineno, void *ctx)
{
    DICT_TEXTHASH_LOAD *load = ctx;

    if (load->fold)
	dict_fold(key);
    if (dict_ht_add(load->ht, key, value, 0) == 0)
	msg_warn("%s, line %d: duplicate entry: \"%s\"", load->path, lineno, key);
    return 0;
}

static void *dict_texthash_load(const char *path, int fd, int flags, STR *err)
{
    DICT_TEXTHASH_LOAD load;
    FILE   *fp;

    if ((fp = dict_text_fdopen(fd, path, err)) == NULL)
	return NULL;
    load.ht = dict_ht_create();
    load.path = path;
    load.fold = !(flags & DICT_FLAG_NO_FOLD);
    if (dict_text_table(fp, path, " -- ignoring this line", dict_texthash_add,
			&load) < 0) {
	str_printf(err, "read %s: %s", path, strerror(errno));
	fclose(fp);
	dict_ht_free(load.ht);
	return NULL;
    }
    fclose(fp);
    return load.ht;
}

static int dict_texthash_lookup(void *table, const char *key, STR *result)
{
    const char *value = dict_ht_get(table, key);

    if (value == NULL)
	return DICT_NOTFOUND;
    str_puts(result, value);
    return DICT_FOUND;
}

static int dict_texthash_walk(void *table, dict_walk_fn fn, void *ctx)
{
    return dict_ht_walk(table, fn, ctx);
}

static void dict_texthash_free(void *table)
{
    dict_ht_free(table);
}

const DICT_TYPE dict_type_texthash = {
    "texthash", DICT_TYPE_FILE | DICT_TYPE_FIXED, "",
    dict_texthash_load, NULL, dict_texthash_lookup, dict_texthash_walk,
    dict_texthash_free,
};
