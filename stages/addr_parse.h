/*
 * addr_parse.h - RFC 5322 address lists in message headers, and the
 * internal/external (quoted) forms of one address.
 *
 * Used by cleanup (canonical mapping of From:, To:, Cc: ...), and by
 * `sendmail -t` (recipients from the headers).
 *
 * Two forms of an address, as in Postfix:
 *   external  what a header or SMTP command carries: "\"john doe\"@example.com"
 *   internal  the local part unquoted: "john doe@example.com"; the domain is
 *             whatever follows the LAST '@'. The null address is "".
 *
 * The parser is lenient (mail in the wild is not RFC-clean) and bounded:
 * display names, comments, groups ("team: a@x, b@y;"), quoted strings,
 * domain literals and obsolete source routes are understood; garbage never
 * makes it fail, it only yields fewer or odder addresses. At most
 * ADDR_PARSE_TOKEN_LIMIT tokens of one header are looked at (Postfix's
 * header_address_token_limit); the rest is left alone.
 *
 * Threading: no global state; every function is reentrant.
 * Diagnostics: none (the caller decides what to log).
 */
#ifndef SLUICE_ADDR_PARSE_H
#define SLUICE_ADDR_PARSE_H

#include <stddef.h>

#include "engine/str.h"

#define ADDR_PARSE_TOKEN_LIMIT	10240

#define ADDR_F_ANGLE	(1<<0)	/* written as <addr> (a route-addr) */
#define ADDR_F_GROUP	(1<<1)	/* member of a group */

typedef struct ADDR_ENTRY {
    char   *addr;		/* internal form; "" for <> */
    char   *display;		/* display name (quotes removed), or NULL */
    char   *group;		/* name of the enclosing group, or NULL */
    size_t  start;		/* byte span of the address text in the input */
    size_t  end;		/* (inside the <>, for a route-addr) */
    int     flags;		/* ADDR_F_* */
} ADDR_ENTRY;

typedef struct ADDR_LIST {
    ADDR_ENTRY *v;
    size_t  n;
    size_t  cap;
} ADDR_LIST;

/* Parses an address list (a header value, NUL bytes allowed). Appends to
 * list; returns the number of addresses found. */
size_t  addr_parse_list(const char *text, size_t len, ADDR_LIST *list);
void    addr_list_init(ADDR_LIST *list);
void    addr_list_free(ADDR_LIST *list);

/*
 * Rebuilds the text of a parsed list with some addresses replaced:
 * new_addr[i] (internal form, or NULL = keep) replaces the text of
 * list->v[i]. Everything else (display names, comments, folding) is kept.
 * The output is reset first.
 */
void    addr_list_splice(const char *text, size_t len, const ADDR_LIST *list,
			         char *const *new_addr, STR *out);

/* Internal -> external form: the local part is quoted when it is not a
 * dot-atom (RFC 5322 3.2.3; UTF-8 is atext, RFC 6532). Appends to out. */
void    addr_externalize(STR *out, const char *internal);
/* External -> internal: removes the quoting of the local part (and any
 * comments and white space). Appends to out. */
void    addr_internalize(STR *out, const char *external);

/* True when the local part (up to len bytes) needs quoting. */
int     addr_local_needs_quote(const char *local, size_t len);

#endif
