/*
 * rewrite_maps.c - ordered lists of lookup tables (rewrite_maps.h).
 *
 * Threading: immutable after rewrite_maps_open(); the tables themselves
 * are thread safe (engine/dict.h). Diagnostics: see rewrite_maps.h.
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "stages/addr_parse.h"
#include "stages/rewrite_maps.h"

struct REWRITE_MAPS {
    char   *title;
    DICT  **dict;
    int    *fixed;			/* 1: fixed-string keys */
    size_t  n;
};

/* rewrite_maps_split - next item of a list, "{ ... }" groups kept whole */

static const char *rewrite_maps_split(const char *p, size_t *len)
{
    const char *start;
    int     depth = 0;

    while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
	p++;
    if (*p == 0)
	return NULL;
    for (start = p; *p; p++) {
	if (*p == '{')
	    depth++;
	else if (*p == '}' && depth > 0)
	    depth--;
	else if (depth == 0 && (*p == ',' || *p == ' ' || *p == '\t'
				|| *p == '\r' || *p == '\n'))
	    break;
    }
    *len = (size_t) (p - start);
    return start;
}

static int rewrite_maps_is_pattern(const char *name)
{
    static const char *const pattern_types[] = {"regexp:", "pcre:", "cidr:"};

    for (size_t i = 0; i < sizeof(pattern_types) / sizeof(pattern_types[0]); i++)
	if (strncmp(name, pattern_types[i], strlen(pattern_types[i])) == 0)
	    return 1;
    return 0;
}

REWRITE_MAPS *rewrite_maps_open(const char *param_name, const char *spec, STR *err)
{
    REWRITE_MAPS *maps = MEM_NEW(REWRITE_MAPS);
    const char *item, *p = spec ? spec : "";
    size_t  len, cap = 0;

    maps->title = mem_strdup(param_name ? param_name : "maps");
    while ((item = rewrite_maps_split(p, &len)) != NULL) {
	char   *name = mem_strndup(item, len);
	STR     why = STR_INIT;
	DICT   *dict = dict_open(name, DICT_FLAG_NONE, &why);

	p = item + len;
	if (dict == NULL) {
	    str_printf(err, "%s: %s", maps->title, STR_DATA(&why));
	    str_release(&why);
	    mem_free(name);
	    rewrite_maps_free(maps);
	    return NULL;
	}
	str_release(&why);
	if (maps->n == cap) {
	    cap = cap ? 2 * cap : 4;
	    maps->dict = mem_realloc(maps->dict, cap * sizeof(*maps->dict));
	    maps->fixed = mem_realloc(maps->fixed, cap * sizeof(*maps->fixed));
	}
	maps->fixed[maps->n] = !rewrite_maps_is_pattern(name);
	maps->dict[maps->n++] = dict;
	mem_free(name);
    }
    return maps;
}

void    rewrite_maps_free(REWRITE_MAPS *maps)
{
    if (maps == NULL)
	return;
    for (size_t i = 0; i < maps->n; i++)
	dict_close(maps->dict[i]);
    mem_free(maps->dict);
    mem_free(maps->fixed);
    mem_free(maps->title);
    mem_free(maps);
}

int     rewrite_maps_empty(const REWRITE_MAPS *maps)
{
    return maps == NULL || maps->n == 0;
}

const char *rewrite_maps_title(const REWRITE_MAPS *maps)
{
    return maps ? maps->title : "";
}

unsigned long rewrite_maps_serial(REWRITE_MAPS *maps)
{
    unsigned long sum = 0;

    if (maps == NULL)
	return 0;
    for (size_t i = 0; i < maps->n; i++)
	sum += dict_serial(maps->dict[i]) * (i + 1);
    return sum;
}

void    rewrite_maps_refresh(REWRITE_MAPS *maps)
{
    if (maps == NULL)
	return;
    for (size_t i = 0; i < maps->n; i++)
	(void) dict_refresh(maps->dict[i]);
}

int     rewrite_maps_find(REWRITE_MAPS *maps, const char *key, int fixed_only,
			          STR *result)
{
    if (maps == NULL)
	return DICT_NOTFOUND;
    for (size_t i = 0; i < maps->n; i++) {
	int     rc;

	if (fixed_only && !maps->fixed[i])
	    continue;
	if ((rc = dict_lookup(maps->dict[i], key, result)) != DICT_NOTFOUND) {
	    if (rc == DICT_ERR)
		msg_warn("%s: %s lookup error for \"%.100s\"",
			 maps->title, dict_name(maps->dict[i]), key);
	    return rc;
	}
    }
    return DICT_NOTFOUND;
}

/* rewrite_maps_propagate - put the extension back into every address */

static void rewrite_maps_propagate(STR *result, const char *ext, size_t ext_len)
{
    ADDR_LIST list;
    STR     out = STR_INIT;
    char  **repl;

    addr_list_init(&list);
    addr_parse_list(STR_DATA(result), STR_LEN(result), &list);
    repl = mem_calloc(list.n + 1, sizeof(*repl));
    for (size_t i = 0; i < list.n; i++) {
	const char *a = list.v[i].addr;
	const char *at = strrchr(a, '@');
	size_t  llen = at ? (size_t) (at - a) : strlen(a);
	STR     buf = STR_INIT;

	if (*a == 0)
	    continue;
	str_append(&buf, a, llen);
	str_append(&buf, ext, ext_len);
	if (at)
	    str_puts(&buf, at);
	repl[i] = str_steal(&buf, NULL);
    }
    addr_list_splice(STR_DATA(result), STR_LEN(result), &list, repl, &out);
    str_reset(result);
    str_append(result, STR_DATA(&out), STR_LEN(&out));
    for (size_t i = 0; i < list.n; i++)
	mem_free(repl[i]);
    mem_free(repl);
    str_release(&out);
    addr_list_free(&list);
}

int     rewrite_maps_find_addr(REWRITE_MAPS *maps, const char *addr,
			               const char *delim, int local_domain,
			               int propagate, STR *result)
{
    const char *at = strrchr(addr, '@');
    size_t  llen = at ? (size_t) (at - addr) : strlen(addr);
    size_t  base_len = llen;
    STR     key = STR_INIT;
    int     rc, stripped = 0;

    if (maps == NULL || maps->n == 0)
	return DICT_NOTFOUND;

    /* The extension starts at the first delimiter character, not at the
     * start of the local part (Postfix: "+foo" is not an extension). */
    if (delim && *delim && llen > 0) {
	for (size_t i = 1; i < llen; i++) {
	    if (strchr(delim, addr[i]) != NULL) {
		base_len = i;
		break;
	    }
	}
    }

    /* 1. the full address, in every table */
    if ((rc = rewrite_maps_find(maps, addr, 0, result)) != DICT_NOTFOUND)
	goto done;
    /* 2. without the extension */
    if (at && base_len < llen) {
	str_append(&key, addr, base_len);
	str_puts(&key, at);
	if ((rc = rewrite_maps_find(maps, STR_DATA(&key), 1, result)) != DICT_NOTFOUND) {
	    stripped = 1;
	    goto done;
	}
    }
    /* 3. the local part alone, for local domains */
    if (at && local_domain) {
	str_reset(&key);
	str_append(&key, addr, llen);
	if ((rc = rewrite_maps_find(maps, STR_DATA(&key), 1, result)) != DICT_NOTFOUND)
	    goto done;
	if (base_len < llen) {
	    str_reset(&key);
	    str_append(&key, addr, base_len);
	    if ((rc = rewrite_maps_find(maps, STR_DATA(&key), 1, result)) != DICT_NOTFOUND) {
		stripped = 1;
		goto done;
	    }
	}
    }
    /* 4. the domain as "@domain" */
    if (at) {
	rc = rewrite_maps_find(maps, at, 1, result);
	if (rc == DICT_FOUND && base_len < llen)
	    stripped = 1;
    }

done:
    if (rc == DICT_FOUND && stripped && propagate)
	rewrite_maps_propagate(result, addr + base_len, llen - base_len);
    str_release(&key);
    return rc;
}
