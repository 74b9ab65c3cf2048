/*
 * dict_ht.h - the in-memory string table behind hash:, gdbm:, texthash: and
 * inline: (build once, then read-only).
 *
 * Entries keep their insertion order (dict_ht_walk lists them in that order,
 * which is what postmap -s prints for texthash: and the GDBM order for hash:).
 * Threading: building is single-threaded; once published, any number of
 * threads may call dict_ht_get()/dict_ht_walk() at once.
 */
#ifndef SLUICE_DICT_HT_H
#define SLUICE_DICT_HT_H

#include <stddef.h>
#include "engine/dict.h"

typedef struct DICT_HT DICT_HT;

DICT_HT *dict_ht_create(void);
/* 1 = added; 0 = key already present (kept the old value unless replace). */
int     dict_ht_add(DICT_HT *ht, const char *key, const char *value, int replace);
const char *dict_ht_get(const DICT_HT *ht, const char *key);
size_t  dict_ht_count(const DICT_HT *ht);
int     dict_ht_walk(const DICT_HT *ht, dict_walk_fn fn, void *ctx);
void    dict_ht_free(DICT_HT *ht);

#endif
