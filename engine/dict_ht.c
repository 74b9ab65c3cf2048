/*
 * dict_ht.c - the in-memory string table (see dict_ht.h).
 *
 * Open addressing with linear probing over an index of entry numbers; the
 * entries themselves live in an array in insertion order. Each entry is one
 * allocation "key\0value\0". The index is kept at most half full.
 * Threading: see dict_ht.h. Diagnostics: none (allocation never fails).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "engine/dict_ht.h"
#include "engine/mem.h"

typedef struct DICT_HT_ENTRY {
    uint64_t hash;
    char   *key;			/* "key\0value\0" */
    char   *value;			/* points into the same allocation */
} DICT_HT_ENTRY;

struct DICT_HT {
    DICT_HT_ENTRY *entries;
    size_t  count;
    size_t  cap;			/* of entries */
    uint32_t *index;			/* 0 = empty, else entry number + 1 */
    size_t  mask;			/* index size - 1 */
};

/* FNV-1a, 64 bits: short keys, no adversary (the operator writes them). */
static uint64_t dict_ht_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL;

    for (const unsigned char *p = (const unsigned char *) key; *p; p++) {
	h ^= *p;
	h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

DICT_HT *dict_ht_create(void)
{
    DICT_HT *ht = MEM_NEW(DICT_HT);

    ht->mask = 15;
    ht->index = mem_calloc(ht->mask + 1, sizeof(*ht->index));
    return ht;
}

static void dict_ht_grow(DICT_HT *ht)
{
    size_t  size = (ht->mask + 1) * 2;

    mem_free(ht->index);
    ht->index = mem_calloc(size, sizeof(*ht->index));
    ht->mask = size - 1;
    for (size_t n = 0; n < ht->count; n++) {
	size_t  i = ht->entries[n].hash & ht->mask;

	while (ht->index[i])
	    i = (i + 1) & ht->mask;
	ht->index[i] = (uint32_t) (n + 1);
    }
}

static uint32_t *dict_ht_slot(const DICT_HT *ht, const char *key, uint64_t hash)
{
    size_t  i = hash & ht->mask;

    while (ht->index[i]) {
	const DICT_HT_ENTRY *e = ht->entries + ht->index[i] - 1;

	if (e->hash == hash && strcmp(e->key, key) == 0)
	    break;
	i = (i + 1) & ht->mask;
    }
    return ht->index + i;
}

int     dict_ht_add(DICT_HT *ht, const char *key, const char *value, int replace)
{
    uint64_t hash = dict_ht_hash(key);
    uint32_t *slot = dict_ht_slot(ht, key, hash);
    size_t  klen = strlen(key), vlen = strlen(value);
    DICT_HT_ENTRY *e;
    char   *buf;

    if (*slot) {
	if (!replace)
	    return 0;
	e = ht->entries + *slot - 1;
    } else {
	if (ht->count >= UINT32_MAX - 1)
	    return 0;				/* 4G entries: not a mail table */
	if (ht->count == ht->cap) {
	    ht->cap = ht->cap ? ht->cap * 2 : 16;
	    ht->entries = mem_realloc(ht->entries, ht->cap * sizeof(*ht->entries));
	}
	e = ht->entries + ht->count++;
	*slot = (uint32_t) ht->count;
	e->hash = hash;
	e->key = NULL;
    }
    buf = mem_alloc(klen + vlen + 2);
    memcpy(buf, key, klen + 1);
    memcpy(buf + klen + 1, value, vlen + 1);
    mem_free(e->key);
    e->key = buf;
    e->value = buf + klen + 1;
    if (ht->count * 2 > ht->mask + 1)
	dict_ht_grow(ht);
    return 1;
}

const char *dict_ht_get(const DICT_HT *ht, const char *key)
{
    uint32_t *slot = dict_ht_slot(ht, key, dict_ht_hash(key));

    return *slot ? ht->entries[*slot - 1].value : NULL;
}

size_t  dict_ht_count(const DICT_HT *ht)
{
    return ht->count;
}

int     dict_ht_walk(const DICT_HT *ht, dict_walk_fn fn, void *ctx)
{
    int     rc;

    for (size_t n = 0; n < ht->count; n++)
	if ((rc = fn(ht->entries[n].key, ht->entries[n].value, ctx)) != 0)
	    return rc;
    return 0;
}

void    dict_ht_free(DICT_HT *ht)
{
    if (ht == NULL)
	return;
    for (size_t n = 0; n < ht->count; n++)
	mem_free(ht->entries[n].key);
    mem_free(ht->entries);
    mem_free(ht->index);
    mem_free(ht);
}
