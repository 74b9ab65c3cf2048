/*
 * matchlist.c - Postfix's match lists (see matchlist.h): mydestination,
 * relay_domains, mynetworks and the like.
 *
 * A list is items separated by commas and/or whitespace. Items are tried in
 * order and the first one that matches decides: a plain item means "match",
 * a "!item" means "no match". Item forms:
 *   type:table	the key is looked up (the value does not matter); in a
 *		domain list, fixed-string tables are also asked for the
 *		parent domains, as "example.com" when the list is named in
 *		parent_domain_matches_subdomains, else as ".example.com"
 *   /file/name	more items, read from the file (# comments allowed)
 *   domain lists: "example.com" (also its subdomains when the list is
 *		named in parent_domain_matches_subdomains, e.g. relay_domains,
 *		but not mydestination), ".example.com" (subdomains only)
 *   address lists: "192.0.2.0/24", "192.0.2.1", "[2001:db8::]/32", "[::1]",
 *		unbracketed IPv6 also accepted when it parses as an address
 * Domain comparison ignores case.
 * Threading: a built list is immutable; its tables may be looked up from
 * any thread. Diagnostics: building fails with the reason in err (bad
 * network pattern, table that cannot be opened, unreadable file).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/dict.h"
#include "engine/dict_cidr.h"
#include "engine/dict_priv.h"
#include "engine/matchlist.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"

#define MATCH_ITEM_DOMAIN	0
#define MATCH_ITEM_TABLE	1
#define MATCH_ITEM_NET		2

typedef struct MATCH_ITEM {
    int     kind;
    int     negate;
    char   *text;			/* DOMAIN: lower-cased pattern */
    DICT   *dict;			/* TABLE */
    DICT_CIDR_NET net;			/* NET */
} MATCH_ITEM;

struct MATCH_LIST {
    char   *name;
    int     addrs;			/* address list, else domain list */
    int     parent;			/* parent_domain_matches_subdomains */
    MATCH_ITEM *items;
    size_t  count;
    size_t  cap;
};

typedef struct MATCH_BUILD {
    MATCH_LIST *list;
    STR    *err;
    int     depth;			/* /file nesting */
} MATCH_BUILD;

static int match_list_item(const char *item, size_t len, void *ctx);

/* match_list_parent - is name in parent_domain_matches_subdomains? */

static int match_list_parent(const char *name)
{
    const char *list = param_str(P_PARENT_DOMAIN_MATCHES_SUBDOMAINS);
    size_t  nlen = strlen(name), len;

    for (const char *p = list; *p; p += len) {
	p += strspn(p, ", \t\r\n");
	len = strcspn(p, ", \t\r\n");
	if (len == nlen && strncmp(p, name, len) == 0)
	    return 1;
    }
    return 0;
}

/* match_list_file - items from a file */

static int match_list_file(MATCH_BUILD *b, const char *path)
{
    FILE   *fp;
    char   *line = NULL;
    size_t  cap = 0;
    ssize_t len;
    int     rc = 0;

    if (b->depth >= 5) {
	str_printf(b->err, "%s: %s: files nested too deeply", b->list->name, path);
	return -1;
    }
    if ((fp = fopen(path, "re")) == NULL) {
	str_printf(b->err, "%s: open %s: %s", b->list->name, path, strerror(errno));
	return -1;
    }
    b->depth++;
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
	char   *hash = memchr(line, '#', (size_t) len);

	if (hash)
	    *hash = 0;
	else if (len > 0 && line[len - 1] == '\n')
	    line[len - 1] = 0;
	rc = dict_split_items(b->list->name, line, match_list_item, b, b->err);
    }
    if (rc == 0 && ferror(fp)) {
	str_printf(b->err, "%s: read %s: %s", b->list->name, path, strerror(errno));
	rc = -1;
    }
    b->depth--;
    free(line);
    fclose(fp);
    return rc;
}

static int match_list_is_table(const char *text)
{
    const char *colon = strchr(text, ':');

    if (colon == NULL || colon == text || *text == '[')
	return 0;
    for (const char *p = text; p < colon; p++)
	if (!isalnum((unsigned char) *p) && *p != '_' && *p != '-')
	    return 0;
    return 1;
}

static int match_list_item(const char *item, size_t len, void *ctx)
{
    MATCH_BUILD *b = ctx;
    MATCH_LIST *list = b->list;
    MATCH_ITEM it;
    char   *text = mem_strndup(item, len), *p = text;
    int     rc = 0;

    memset(&it, 0, sizeof(it));
    while (*p == '!') {
	it.negate = !it.negate;
	p++;
    }
    if (*p == 0) {
	str_printf(b->err, "%s: \"%s\": missing pattern after '!'", list->name, text);
	rc = -1;
    } else if (*p == '/') {
	if (it.negate) {
	    str_printf(b->err, "%s: \"%s\": '!' before a file name is not supported",
		       list->name, text);
	    rc = -1;
	} else {
	    rc = match_list_file(b, p);
	}
	mem_free(text);
	return rc;
    } else if (list->addrs && dict_cidr_parse_net(p, &it.net, b->err) == 0) {
	it.kind = MATCH_ITEM_NET;
    } else if (match_list_is_table(p)) {
	str_reset(b->err);
	it.kind = MATCH_ITEM_TABLE;
	if ((it.dict = dict_open(p, DICT_FLAG_FOLD_KEY, b->err)) == NULL)
	    rc = -1;
    } else if (list->addrs) {
	/* err holds dict_cidr_parse_net()'s reason */
	STR     why = STR_INIT;

	str_append(&why, STR_DATA(b->err), STR_LEN(b->err));
	str_reset(b->err);
	str_printf(b->err, "%s: %s", list->name, STR_DATA(&why));
	str_release(&why);
	rc = -1;
    } else {
	it.kind = MATCH_ITEM_DOMAIN;
	it.text = mem_strdup(p);
	dict_fold(it.text);
    }
    mem_free(text);
    if (rc < 0)
	return -1;
    if (list->count == list->cap) {
	list->cap = list->cap ? list->cap * 2 : 8;
	list->items = mem_realloc(list->items, list->cap * sizeof(*list->items));
    }
    list->items[list->count++] = it;
    return 0;
}

static MATCH_LIST *match_list_build(const char *param_name, const char *spec,
				            int addrs, STR *err)
{
    MATCH_BUILD b;
    MATCH_LIST *list = MEM_NEW(MATCH_LIST);

    list->name = mem_strdup(param_name ? param_name : "match list");
    list->addrs = addrs;
    list->parent = param_name && match_list_parent(param_name);
    b.list = list;
    b.err = err;
    b.depth = 0;
    if (dict_split_items(list->name, spec ? spec : "", match_list_item, &b, err) != 0) {
	match_list_free(list);
	return NULL;
    }
    return list;
}

MATCH_LIST *match_list_domains(const char *param_name, const char *spec, STR *err)
{
    return match_list_build(param_name, spec, 0, err);
}

MATCH_LIST *match_list_addrs(const char *param_name, const char *spec, STR *err)
{
    return match_list_build(param_name, spec, 1, err);
}

void    match_list_free(MATCH_LIST *list)
{
    if (list == NULL)
	return;
    for (size_t n = 0; n < list->count; n++) {
	mem_free(list->items[n].text);
	dict_close(list->items[n].dict);
    }
    mem_free(list->items);
    mem_free(list->name);
    mem_free(list);
}

/* match_list_domain_pattern - literal domain pattern against a name */

static int match_list_domain_pattern(const MATCH_LIST *list, const char *name,
				             const char *pattern)
{
    size_t  nlen = strlen(name), plen = strlen(pattern);

    if (strcmp(name, pattern) == 0)
	return 1;
    if (pattern[0] == '.')			/* ".example.com": subdomains */
	return nlen > plen && strcmp(name + nlen - plen, pattern) == 0;
    if (list->parent)				/* "example.com" in relay_domains */
	return nlen > plen + 1 && name[nlen - plen - 1] == '.'
	    && strcmp(name + nlen - plen, pattern) == 0;
    return 0;
}

/* match_list_domain_table - name, then its parents, in a table */

static int match_list_domain_table(const MATCH_LIST *list, DICT *dict,
				           const char *name, STR *value)
{
    int     rc;

    if ((rc = dict_lookup(dict, name, value)) != DICT_NOTFOUND)
	return rc;
    if (!dict_is_fixed(dict))
	return DICT_NOTFOUND;
    for (const char *dot = strchr(name, '.'); dot && dot[1]; dot = strchr(dot + 1, '.'))
	if ((rc = dict_lookup(dict, list->parent ? dot + 1 : dot, value)) != DICT_NOTFOUND)
	    return rc;
    return DICT_NOTFOUND;
}

int     match_list_match(MATCH_LIST *list, const char *key)
{
    char    small[256], *name;
    size_t  len = strlen(key);
    DICT_CIDR_NET addr;
    int     is_addr = 0, hit = 0, rc = 0;
    STR     value = STR_INIT;

    name = len < sizeof(small) ? small : mem_alloc(len + 1);
    memcpy(name, key, len + 1);
    dict_fold(name);
    if (list->addrs)
	is_addr = (dict_cidr_parse_addr(key, &addr) == 0);

    for (size_t n = 0; n < list->count; n++) {
	MATCH_ITEM *it = list->items + n;

	switch (it->kind) {
	case MATCH_ITEM_NET:
	    hit = is_addr && dict_cidr_match(&it->net, &addr);
	    break;
	case MATCH_ITEM_DOMAIN:
	    hit = match_list_domain_pattern(list, name, it->text);
	    break;
	default:
	    rc = list->addrs ? dict_lookup(it->dict, key, &value)
		: match_list_domain_table(list, it->dict, name, &value);
	    if (rc == DICT_ERR) {
		msg_warn("%s: %s: table lookup problem", list->name,
			 dict_name(it->dict));
		rc = -1;
		goto done;
	    }
	    hit = (rc == DICT_FOUND);
	    break;
	}
	if (hit) {
	    rc = !it->negate;
	    goto done;
	}
    }
    rc = 0;

done:
    str_release(&value);
    if (name != small)
	mem_free(name);
    return rc;
}
