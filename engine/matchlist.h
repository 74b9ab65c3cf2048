/*
 * matchlist.h - Postfix's match lists: mydestination, relay_domains,
 * mynetworks and the like.
 *
 * A list is written as in main.cf: items separated by commas and/or
 * whitespace; "type:table" items are looked up; "!item" negates.
 *   domain lists: "example.com", ".example.com" (subdomains; a plain
 *     "example.com" also matches subdomains when parent_domain_matches_subdomains
 *     names the list, as in Postfix), "hash:/etc/postfix/relay".
 *   address lists: "127.0.0.0/8", "[::1]/128", "192.168.1.1", "cidr:/x".
 * Threading: a built list is immutable and may be shared by threads.
 */
#ifndef SLUICE_MATCHLIST_H
#define SLUICE_MATCHLIST_H

#include "engine/str.h"

typedef struct MATCH_LIST MATCH_LIST;

/* Returns NULL with the reason in err on a syntax error or a table that
 * cannot be opened. */
MATCH_LIST *match_list_domains(const char *param_name, const char *spec, STR *err);
MATCH_LIST *match_list_addrs(const char *param_name, const char *spec, STR *err);
/* 1 = matches, 0 = no match, -1 = a table could not be read. */
int  match_list_match(MATCH_LIST *list, const char *key);
void match_list_free(MATCH_LIST *list);

#endif
