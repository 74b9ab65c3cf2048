/*
 * dict_inline.c - inline:{ key=value, { key = value with spaces } }.
 *
 * Items are separated by commas and/or whitespace; an item in braces may
 * contain whitespace around '=' and in the value. Keys are folded unless
 * DICT_FLAG_NO_FOLD. A duplicate key keeps the first value, with a warning.
 * Threading: immutable after open; lookups from any thread.
 * Diagnostics: dict_open() fails on bad syntax (missing '}', an item that
 * is not key=value, an empty table) with the offending text in the reason.
 */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "engine/dict_ht.h"
#include "engine/dict_priv.h"
#include "engine/mem.h"
#include "engine/msg.h"

typedef struct DICT_INLINE_OPEN {
    DICT_HT *ht;
    const char *name;
    int     fold;
    STR    *err;
} DICT_INLINE_OPEN;

static char *dict_inline_trim(char *p)
{
    char   *end;

    while (isspace((unsigned char) *p))
	p++;
    end = p + strlen(p);
    while (end > p && isspace((unsigned char) end[-1]))
	*--end = 0;
    return p;
}

static int dict_inline_item(const char *item, size_t len, void *ctx)
{
    DICT_INLINE_OPEN *op = ctx;
    char   *copy = mem_strndup(item, len), *text = copy, *eq, *key, *value;
    STR     inner = STR_INIT;
    int     rc = 0;

    if (*text == '{') {
	if (dict_unbrace("inline", copy, &inner, op->err) < 0) {
	    mem_free(copy);
	    return -1;
	}
	text = inner.data ? inner.data : (char *) "";
    }
    if ((eq = strchr(text, '=')) == NULL) {
	str_printf(op->err, "inline:%s: syntax error: \"%s\" is not in "
		   "key=value format", op->name, copy);
	rc = -1;
    } else {
	*eq = 0;
	key = dict_inline_trim(text);
	value = dict_inline_trim(eq + 1);
	if (*key == 0 || *value == 0) {
	    str_printf(op->err, "inline:%s: syntax error: \"%s\" has an empty "
		       "key or value", op->name, copy);
	    rc = -1;
	} else {
	    if (op->fold)
		dict_fold(key);
	    if (dict_ht_add(op->ht, key, value, 0) == 0)
		msg_warn("inline:%s: duplicate entry: \"%s\"", op->name, key);
	}
    }
    str_release(&inner);
    mem_free(copy);
    return rc;
}

static void *dict_inline_open(const char *name, int flags, STR *err)
{
    DICT_INLINE_OPEN op;
    STR     body = STR_INIT;

    if (dict_unbrace("inline", name, &body, err) < 0)
	return NULL;
    op.ht = dict_ht_create();
    op.name = name;
    op.fold = !(flags & DICT_FLAG_NO_FOLD);
    op.err = err;
    if (dict_split_items("inline", STR_DATA(&body), dict_inline_item, &op, err) != 0) {
	dict_ht_free(op.ht);
	str_release(&body);
	return NULL;
    }
    str_release(&body);
    if (dict_ht_count(op.ht) == 0) {
	str_printf(err, "inline:%s: empty table", name);
	dict_ht_free(op.ht);
	return NULL;
    }
    return op.ht;
}

static int dict_inline_lookup(void *table, const char *key, STR *result)
{
    const char *value = dict_ht_get(table, key);

    if (value == NULL)
	return DICT_NOTFOUND;
    str_puts(result, value);
    return DICT_FOUND;
}

static int dict_inline_walk(void *table, dict_walk_fn fn, void *ctx)
{
    return dict_ht_walk(table, fn, ctx);
}

static void dict_inline_free(void *table)
{
    dict_ht_free(table);
}

const DICT_TYPE dict_type_inline = {
    "inline", DICT_TYPE_FIXED, "",
    NULL, dict_inline_open, dict_inline_lookup, dict_inline_walk, dict_inline_free,
};
