/*
 * dict_static.c - static:value and static:{ value with spaces }: every key
 * finds the same value.
 *
 * Threading: immutable; lookups from any thread.
 * Diagnostics: dict_open() fails on an empty value or an unbalanced brace.
 */
#include "config.h"

#include <string.h>

#include "engine/dict_priv.h"
#include "engine/mem.h"

static void *dict_static_open(const char *name, int flags, STR *err)
{
    STR     value = STR_INIT;

    (void) flags;
    if (*name == '{') {
	if (dict_unbrace("static", name, &value, err) < 0)
	    return NULL;
    } else {
	str_puts(&value, name);
    }
    if (STR_LEN(&value) == 0) {
	str_printf(err, "static:%s: empty value", name);
	str_release(&value);
	return NULL;
    }
    return str_steal(&value, NULL);
}

static int dict_static_lookup(void *table, const char *key, STR *result)
{
    (void) key;
    str_puts(result, table);
    return DICT_FOUND;
}

static void dict_static_free(void *table)
{
    mem_free(table);
}

const DICT_TYPE dict_type_static = {
    "static", 0, "",
    NULL, dict_static_open, dict_static_lookup, NULL, dict_static_free,
};
