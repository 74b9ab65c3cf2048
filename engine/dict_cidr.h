/*
 * dict_cidr.h - IPv4/IPv6 network patterns, shared by cidr: tables and the
 * address match lists (mynetworks).
 *
 * Patterns: "192.0.2.0/24", "192.0.2.1" (= /32), "2001:db8::/32", "::1",
 * and the bracketed forms "[::1]/128", "[::1]". Host bits below the prefix
 * must be zero (Postfix's rule, with Postfix's message). Addresses to match
 * may be bracketed; IPv4-mapped IPv6 addresses ("::ffff:192.0.2.1") match
 * IPv4 networks.
 * Threading: pure functions. Diagnostics: reasons in err.
 */
#ifndef SLUICE_DICT_CIDR_H
#define SLUICE_DICT_CIDR_H

#include "engine/str.h"

typedef struct DICT_CIDR_NET {
    int     family;			/* AF_INET or AF_INET6 */
    int     prefix;			/* bits */
    unsigned char addr[16];
} DICT_CIDR_NET;

/* 0, or -1 with the reason in err. */
int     dict_cidr_parse_net(const char *text, DICT_CIDR_NET *net, STR *err);
/* 0, or -1 when text is not an IP address. */
int     dict_cidr_parse_addr(const char *text, DICT_CIDR_NET *addr);
int     dict_cidr_match(const DICT_CIDR_NET *net, const DICT_CIDR_NET *addr);

#endif
