/*
 * rewrite.h - trivial-rewrite: addresses to canonical form, and recipients
 * to (transport, nexthop).
 *
 * Canonical form is user@fully.qualified.domain, reached as Postfix's
 * trivial-rewrite(8) does: strip a source route (@a,@b:user@c), turn
 * site!user into user@site (swap_bangpath), user%domain into user@domain
 * (allow_percent_hack), append @$myorigin (append_at_myorigin) and
 * .$mydomain (append_dot_mydomain), drop one trailing dot.
 *
 * Resolution, in this order: the domains of mydestination (and our own
 * address literals) go to local_transport, virtual_alias_domains to
 * error:"User unknown in virtual alias table" (cleanup's virtual alias
 * expansion has already replaced every address it knows),
 * virtual_mailbox_domains to virtual_transport, relay_domains to
 * relay_transport, everything else to default_transport; off-host nexthop
 * is relayhost when set, else the domain; a "transport:nexthop" value of
 * a *_transport parameter sets the nexthop. transport_maps then override
 * with transport(5) semantics.
 *
 * Addresses are in internal form (addr_parse.h): local part unquoted.
 *
 * Threading: a REWRITE is built by one thread and is then used by any
 * number of threads at once (the resolve cache has its own locks).
 * Diagnostics: rewrite_create() fails with the reason in err; table
 * errors are logged with msg_warn() and returned as RESOLVE_FLAG_FAIL.
 */
#ifndef SLUICE_REWRITE_H
#define SLUICE_REWRITE_H

#include <stdbool.h>

#include "engine/str.h"
#include "queue/message.h"

/*
 * Settings. Strings are borrowed (not copied, not freed): from the
 * parameter snapshot, which stays valid until exit, or from a test.
 */
typedef struct REWRITE_CONFIG {
    const char *myhostname;
    const char *mydomain;
    const char *myorigin;
    const char *mydestination;		/* domain list */
    const char *local_literals;		/* our addresses, for user@[ip] */
    const char *relayhost;
    const char *relay_domains;		/* domain list */
    const char *virtual_alias_domains;	/* domain list */
    const char *virtual_mailbox_domains;/* domain list */
    const char *transport_maps;		/* table list */
    const char *local_transport;	/* "local:$myhostname" */
    const char *virtual_transport;	/* "virtual" */
    const char *relay_transport;	/* "relay" */
    const char *default_transport;	/* "smtp" */
    const char *empty_address_recipient;/* "MAILER-DAEMON" */
    const char *recipient_delimiter;	/* "" */
    bool    append_at_myorigin;
    bool    append_dot_mydomain;
    bool    swap_bangpath;
    bool    allow_percent_hack;
    bool    transport_parent_match;	/* transport_maps listed in
					 * parent_domain_matches_subdomains */
    int     cache_size;			/* resolve cache entries; 0 = none */
} REWRITE_CONFIG;

/* Postfix's defaults for a host "localhost.localdomain" (no param access). */
void    rewrite_config_defaults(REWRITE_CONFIG *cfg);
/* From the current parameter snapshot (engine/param.h). */
void    rewrite_config_from_params(REWRITE_CONFIG *cfg);

typedef struct REWRITE REWRITE;

REWRITE *rewrite_create(const REWRITE_CONFIG *cfg, STR *err);
void    rewrite_free(REWRITE *rw);
const REWRITE_CONFIG *rewrite_config(const REWRITE *rw);

/* Canonical form of addr (internal form in, internal form out; out is
 * reset first). The null address stays null. */
void    rewrite_address(const REWRITE *rw, const char *addr, STR *out);

/* 1 when domain is one of ours (mydestination, local address literal),
 * 0 when not, -1 when a table could not be read. */
int     rewrite_domain_is_local(const REWRITE *rw, const char *domain);

#define RESOLVE_CLASS_LOCAL	(1<<0)
#define RESOLVE_CLASS_ALIAS	(1<<1)
#define RESOLVE_CLASS_VIRTUAL	(1<<2)
#define RESOLVE_CLASS_RELAY	(1<<3)
#define RESOLVE_CLASS_DEFAULT	(1<<4)
#define RESOLVE_FLAG_ROUTED	(1<<8)	/* routing operators (@%!) remain in
					 * the local part */
#define RESOLVE_FLAG_ERROR	(1<<9)	/* bad domain syntax: bounce */
#define RESOLVE_FLAG_FAIL	(1<<10)	/* a table failed: try again later */

typedef struct RESOLVED {
    STR     transport;			/* "smtp", "local", "error", ... */
    STR     nexthop;			/* "example.com", "[h]:25", reason */
    STR     recipient;			/* the address to deliver to */
    int     flags;			/* RESOLVE_* */
} RESOLVED;

void    resolved_init(RESOLVED *res);
void    resolved_release(RESOLVED *res);

/*
 * Resolves one (canonical) recipient. Returns 0, or -1 when a table could
 * not be read (RESOLVE_FLAG_FAIL set; the message must be deferred).
 * Results are cached; the cache is dropped by rewrite_invalidate() and
 * whenever transport_maps are reloaded.
 */
int     rewrite_resolve(REWRITE *rw, const char *addr, RESOLVED *out);
/* Forget cached resolutions (configuration reload). */
void    rewrite_invalidate(REWRITE *rw);

/*
 * The rewrite stage's job for one message: resolve every recipient, set
 * its transport and nexthop, replace its address by the resolved one.
 * A syntactically bad domain resolves to error:"5.1.3 bad address syntax".
 * Returns 0, or -1 with "451 4.3.0 ..." in reply when a table failed.
 */
int     rewrite_message(REWRITE *rw, MESSAGE *m, STR *reply);

#endif
