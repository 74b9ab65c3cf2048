/*
 * dict_union.c - unionmap:{ type:name, type:name, ... }: the results of
 * every table that finds the key, joined with commas, in the listed order.
 *
 * The member tables are opened with the union's flags and reload on their
 * own (each is a DICT). Any member error makes the lookup DICT_ERR.
 * Threading: the member list is immutable; lookups from any thread.
 * Diagnostics: dict_open() fails when a member cannot be opened or the
 * braces do not balance.
 */
#include "config.h"

#include <string.h>

#include "engine/dict_priv.h"
#include "engine/mem.h"

typedef struct DICT_UNION {
    DICT  **members;
    size_t  count;
} DICT_UNION;

typedef struct DICT_UNION_OPEN {
    DICT_UNION *u;
    size_t  cap;
    int     flags;
    STR    *err;
} DICT_UNION_OPEN;

static void dict_union_free(void *table)
{
    DICT_UNION *u = table;

    for (size_t n = 0; n < u->count; n++)
	dict_close(u->members[n]);
    mem_free(u->members);
    mem_free(u);
}

static int dict_union_item(const char *item, size_t len, void *ctx)
{
    DICT_UNION_OPEN *op = ctx;
    char   *name = mem_strndup(item, len);
    DICT   *member = dict_open(name, op->flags, op->err);

    mem_free(name);
    if (member == NULL)
	return -1;
    if (op->u->count == op->cap) {
	op->cap = op->cap ? op->cap * 2 : 4;
	op->u->members = mem_realloc(op->u->members, op->cap * sizeof(DICT *));
    }
    op->u->members[op->u->count++] = member;
    return 0;
}

static void *dict_union_open(const char *name, int flags, STR *err)
{
    DICT_UNION_OPEN op;
    STR     body = STR_INIT;

    if (dict_unbrace("unionmap", name, &body, err) < 0)
	return NULL;
    op.u = MEM_NEW(DICT_UNION);
    op.cap = 0;
    op.flags = flags;
    op.err = err;
    if (dict_split_items("unionmap", STR_DATA(&body), dict_union_item, &op, err) != 0
	|| op.u->count == 0) {
	if (op.u->count == 0 && STR_LEN(err) == 0)
	    str_printf(err, "unionmap:%s: no member tables", name);
	dict_union_free(op.u);
	str_release(&body);
	return NULL;
    }
    str_release(&body);
    return op.u;
}

static int dict_union_lookup(void *table, const char *key, STR *result)
{
    DICT_UNION *u = table;
    STR     one = STR_INIT;
    int     found = 0, rc;

    for (size_t n = 0; n < u->count; n++) {
	rc = dict_lookup(u->members[n], key, &one);
	if (rc == DICT_ERR) {
	    str_release(&one);
	    return DICT_ERR;
	}
	if (rc == DICT_FOUND) {
	    if (found++)
		str_putc(result, ',');
	    str_append(result, STR_DATA(&one), STR_LEN(&one));
	}
    }
    str_release(&one);
    return found ? DICT_FOUND : DICT_NOTFOUND;
}

const DICT_TYPE dict_type_unionmap = {
    "unionmap", 0, "",
    NULL, dict_union_open, dict_union_lookup, NULL, dict_union_free,
};
