/*
 * rewrite_maps.h - an ordered list of lookup tables, as a main.cf
 * parameter names them ("hash:/etc/postfix/virtual, regexp:/etc/x"), with
 * Postfix's lookup orders for addresses (canonical(5), virtual(5)).
 *
 * Fixed-string tables (hash:, texthash:, inline: ...) are asked every key
 * form; pattern tables (regexp:, pcre:, cidr:) only the full key, as
 * Postfix does (a regexp table sees "user+ext@domain" and nothing else).
 *
 * Threading: opened by one thread, then used by any number of threads.
 * Diagnostics: rewrite_maps_open() returns NULL with the reason in err;
 * lookups return DICT_ERR when a table cannot be read (callers defer).
 */
#ifndef SLUICE_REWRITE_MAPS_H
#define SLUICE_REWRITE_MAPS_H

#include "engine/dict.h"
#include "engine/str.h"

typedef struct REWRITE_MAPS REWRITE_MAPS;

/* spec may be NULL or empty: an empty list (every lookup: not found). */
REWRITE_MAPS *rewrite_maps_open(const char *param_name, const char *spec, STR *err);
void    rewrite_maps_free(REWRITE_MAPS *maps);
int     rewrite_maps_empty(const REWRITE_MAPS *maps);
const char *rewrite_maps_title(const REWRITE_MAPS *maps);	/* the parameter name */

/* One key in every table, in order; fixed_only skips pattern tables.
 * DICT_FOUND (result set), DICT_NOTFOUND or DICT_ERR. */
int     rewrite_maps_find(REWRITE_MAPS *maps, const char *key, int fixed_only,
			          STR *result);

/*
 * Address lookup, canonical(5)/virtual(5) order, for an internal-form
 * address: "user+ext@domain", "user@domain", then (local_domain only)
 * "user+ext" and "user", then "@domain". delim: recipient_delimiter
 * characters ("" = no extensions). When a key without the extension
 * matched and propagate is set, the extension is put back into each
 * address of the result ("x@y" becomes "x+ext@y").
 */
int     rewrite_maps_find_addr(REWRITE_MAPS *maps, const char *addr,
			               const char *delim, int local_domain,
			               int propagate, STR *result);

/* Changes whenever one of the tables is reloaded (for caches). */
unsigned long rewrite_maps_serial(REWRITE_MAPS *maps);
/* Checks the files of the tables now (a cache that answers without
 * looking up would otherwise never notice a change). */
void    rewrite_maps_refresh(REWRITE_MAPS *maps);

#endif
