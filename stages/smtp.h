/*
 * smtp.h - the SMTP/LMTP client delivery agent (Postfix's smtp(8), lmtp(8)).
 *
 * PUBLIC API (qmgr, the engine, t/smtp_harness):
 *   smtp_config_load()   fills an SMTP_CONFIG from the smtp_* or lmtp_*
 *                        parameters; smtp_config_set() overrides one value
 *                        by its parameter name (harness -o name=value).
 *   smtp_agent_create()  starts `nthreads` I/O threads (each an epoll loop
 *                        running many sessions) and a small resolver pool.
 *   smtp_agent_deliver() hands over one DELIVERY_REQUEST (stages/delivery.h).
 *                        Callable from any thread, never blocks. The agent
 *                        fills req->rcpt[i].status/dsn/reason, req->relay and
 *                        req->site_failed, logs Postfix's "to=<...>" line per
 *                        recipient with msg_service "smtp" (or "lmtp"), and
 *                        calls req->done(req) exactly once, from one of its
 *                        I/O threads.
 *   smtp_agent_destroy() waits until every request handed over is done,
 *                        closes cached sessions (QUIT), joins the threads.
 *
 * Requests for one nexthop always go to the same I/O thread, so the
 * connection cache is thread-local and lock-free; the thread count is fixed
 * at creation (maxproc is qmgr's concurrency cap, not a thread count).
 *
 * INTERNAL API (stages/smtp*.c only; exposed for the unit tests): the
 * protocol state machine (smtp_proto_*: no sockets, it consumes server bytes
 * and produces client bytes), nexthop parsing and address lookup
 * (smtp_addr_*), and client TLS (smtp_tls_*).
 */
#ifndef SLUICE_SMTP_H
#define SLUICE_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/str.h"
#include "stages/delivery.h"
#include "stages/delivery_log.h"

/* ---------------------------------------------------------------- config */

enum smtp_tls_level {
    SMTP_TLS_NONE = 0,
    SMTP_TLS_MAY,		/* opportunistic: STARTTLS when offered */
    SMTP_TLS_ENCRYPT,		/* mandatory, no certificate check */
    SMTP_TLS_VERIFY,		/* mandatory, certificate chain + name */
};

/* Timeouts in seconds, indexed by the phase the client waits in. */
enum smtp_phase {
    SMTP_PH_CONNECT = 0,
    SMTP_PH_HELO,		/* greeting, EHLO/HELO/LHLO */
    SMTP_PH_STARTTLS,
    SMTP_PH_MAIL,
    SMTP_PH_RCPT,
    SMTP_PH_DATA_INIT,
    SMTP_PH_DATA_XFER,
    SMTP_PH_DATA_DONE,
    SMTP_PH_RSET,
    SMTP_PH_QUIT,
    SMTP_PH_COUNT
};

typedef struct SMTP_CONFIG {
    const char *service;	/* "smtp" or "lmtp" (static storage) */
    bool    lmtp;
    int     timeout[SMTP_PH_COUNT];	/* seconds; connect 0 = kernel's */
    int     mx_address_limit;	/* 0 = no limit */
    int     mx_session_limit;	/* 0 = no limit */
    bool    cache_on_demand;
    int     cache_time_limit;	/* seconds an idle session is kept */
    int     reuse_time_limit;	/* seconds a session may be reused */
    bool    skip_5xx_greeting;
    bool    host_lookup_dns;
    bool    host_lookup_native;
    enum smtp_tls_level tls_level;
    char    helo_name[256];
    char    myhostname[256];	/* for "loops back to myself" */
    char    bind_address[64];
    char    tls_cafile[1024];
    char    tls_servername[256];	/* "", "hostname", "nexthop", literal */
    char    dns_server[64];	/* "" or "ip" or "ip:port" (Sluice) */
} SMTP_CONFIG;

void    smtp_config_load(SMTP_CONFIG *cfg, bool lmtp);
/* Returns 0, or -1 with a reason in why (unknown name, bad value). Accepts
 * the smtp_ and lmtp_ names of a parameter, and "myhostname". */
int     smtp_config_set(SMTP_CONFIG *cfg, const char *name, const char *value, STR *why);

/* ----------------------------------------------------------------- agent */

typedef struct SMTP_AGENT SMTP_AGENT;

SMTP_AGENT *smtp_agent_create(const SMTP_CONFIG *cfg, int nthreads);
void    smtp_agent_deliver(SMTP_AGENT *agent, DELIVERY_REQUEST *req);
void    smtp_agent_destroy(SMTP_AGENT *agent);


/* ------------------------------------------------ nexthop and addresses */

enum smtp_nexthop_kind {
    SMTP_NH_DOMAIN,		/* "example.com[:port]": MX lookup (smtp) */
    SMTP_NH_HOST,		/* "[host][:port]", lmtp "inet:host:port": no MX */
    SMTP_NH_UNIX,		/* lmtp "unix:/path" */
};

typedef struct SMTP_NEXTHOP {
    enum smtp_nexthop_kind kind;
    char    host[256];		/* domain, host name or address literal */
    char    path[108];		/* SMTP_NH_UNIX */
    unsigned port;
    bool    literal;		/* host is a numeric address */
} SMTP_NEXTHOP;

/* Parse a nexthop; lmtp selects the LMTP forms and default port 24.
 * Returns 0, or -1 with the reason in why. */
int     smtp_addr_parse_nexthop(const char *text, bool lmtp, SMTP_NEXTHOP *nh, STR *why);

typedef struct SMTP_ADDR {
    char    host[256];		/* MX host name (or the literal) */
    char    ip[64];		/* printable address, "" for unix */
    int     pref;		/* MX preference */
    struct sockaddr_storage sa;
    socklen_t salen;
} SMTP_ADDR;

enum smtp_lookup_status {
    SMTP_LOOKUP_OK = 0,
    SMTP_LOOKUP_TEMP,		/* defer: try again later */
    SMTP_LOOKUP_PERM,		/* bounce: the domain does not exist */
};

typedef struct SMTP_LOOKUP {
    /* in */
    SMTP_NEXTHOP nh;
    int     address_limit;	/* smtp_mx_address_limit, 0 = none */
    bool    use_dns;
    bool    use_native;
    char    dns_server[64];
    void  (*done)(struct SMTP_LOOKUP *lk);	/* called on a resolver thread */
    void   *ctx;
    /* out */
    enum smtp_lookup_status status;
    char    dsn[16];
    STR     why;
    SMTP_ADDR *addr;
    size_t  naddr;
    struct SMTP_LOOKUP *next;	/* resolver queue link */
} SMTP_LOOKUP;

/* Blocking lookup: MX (domains), then A/AAAA; sorted by preference and
 * cut at address_limit. Literals and unix paths need no DNS. */
void    smtp_addr_lookup(SMTP_LOOKUP *lk);
void    smtp_addr_lookup_free(SMTP_LOOKUP *lk);	/* the results, not lk */

/* A small pool of resolver threads so lookups never block an epoll loop. */
typedef struct SMTP_RESOLVER SMTP_RESOLVER;

SMTP_RESOLVER *smtp_resolver_create(int nthreads);
void    smtp_resolver_submit(SMTP_RESOLVER *res, SMTP_LOOKUP *lk);
void    smtp_resolver_destroy(SMTP_RESOLVER *res);	/* after all done() */

/* ------------------------------------------------------ protocol engine */

typedef struct SMTP_RESULT {
    bool    set;
    enum delivery_status status;
    int     code;		/* reply code, 0 for local reasons */
    char    dsn[16];
    char   *reason;		/* mem_alloc'd, Postfix wording */
} SMTP_RESULT;

/* One transaction: some recipients of one message. */
typedef struct SMTP_TXN {
    const MESSAGE *msg;
    size_t  nrcpt;
    const size_t *rcpt;		/* indexes into msg->rcpt[] */
    SMTP_RESULT *result;	/* nrcpt entries, filled in by the engine */
} SMTP_TXN;

typedef struct SMTP_PROTO_OPTS {
    bool    lmtp;
    bool    loop_detect;	/* smtp: yes; lmtp: no (as Postfix) */
    bool    skip_5xx_greeting;
    enum smtp_tls_level tls_level;
    bool    tls_disabled;	/* "may" retry in plaintext after a failure */
    const char *helo_name;
    const char *myhostname;
    const char *nexthop;	/* for "mail for %s loops back to myself" */
    const char *namaddr;	/* "host[ip]" in reasons */
    const int *timeout;		/* SMTP_PH_COUNT seconds */
} SMTP_PROTO_OPTS;

enum smtp_proto_event {
    SMTP_EV_WAIT = 0,		/* send out(), read more */
    SMTP_EV_STARTTLS,		/* do the TLS handshake, then _tls_done() */
    SMTP_EV_READY,		/* session set up; call _begin() */
    SMTP_EV_TXN_DONE,		/* results filled; see _usable() */
    SMTP_EV_SITE_FAIL,		/* before READY: see site_* below */
    SMTP_EV_RESET_FAIL,		/* RSET on a reused session failed */
    SMTP_EV_CLOSED,		/* QUIT answered */
};

typedef struct SMTP_PROTO SMTP_PROTO;

SMTP_PROTO *smtp_proto_create(const SMTP_PROTO_OPTS *opts);
void    smtp_proto_free(SMTP_PROTO *p);
/* Feed server bytes (NULL,0 to continue after an event). Processing stops at
 * the first event; unprocessed bytes stay buffered. */
enum smtp_proto_event smtp_proto_input(SMTP_PROTO *p, const char *data, size_t len);
/* Start a transaction on a READY session; reset=true sends RSET first (a
 * reused session). May return TXN_DONE at once (e.g. SIZE too big). */
enum smtp_proto_event smtp_proto_begin(SMTP_PROTO *p, SMTP_TXN *txn, bool reset);
enum smtp_proto_event smtp_proto_tls_done(SMTP_PROTO *p, bool ok, const char *why);
/* The connection broke (EOF, error) or a timer ran out: fills the results
 * of an active transaction (lost connection / timed out while ...) and
 * returns TXN_DONE, or SITE_FAIL before READY. */
enum smtp_proto_event smtp_proto_lost(SMTP_PROTO *p, const char *detail);
enum smtp_proto_event smtp_proto_timeout(SMTP_PROTO *p);
void    smtp_proto_quit(SMTP_PROTO *p);	/* queue QUIT */
/* Output: bytes to send. fill() appends message content (dot-stuffed, with
 * the final ".") while out is below `want` bytes; it returns true while
 * more content is due. */
STR    *smtp_proto_out(SMTP_PROTO *p);
bool    smtp_proto_fill(SMTP_PROTO *p, size_t want);
int     smtp_proto_timeout_secs(const SMTP_PROTO *p);	/* current phase */
bool    smtp_proto_usable(const SMTP_PROTO *p);	/* READY and healthy */
bool    smtp_proto_tls_active(const SMTP_PROTO *p);
const char *smtp_proto_helo_reply_name(const SMTP_PROTO *p);
/* After SITE_FAIL: */
const char *smtp_proto_site_reason(const SMTP_PROTO *p);
const char *smtp_proto_site_dsn(const SMTP_PROTO *p);
bool    smtp_proto_site_final(const SMTP_PROTO *p);	/* do not try next MX */
bool    smtp_proto_site_retry_plain(const SMTP_PROTO *p);	/* may: TLS failed */
/* Features learned from EHLO (for tests and logs). */
#define SMTP_FEATURE_ESMTP	(1<<0)
#define SMTP_FEATURE_PIPELINING	(1<<1)
#define SMTP_FEATURE_SIZE	(1<<2)
#define SMTP_FEATURE_8BITMIME	(1<<3)
#define SMTP_FEATURE_DSN	(1<<4)
#define SMTP_FEATURE_SMTPUTF8	(1<<5)
#define SMTP_FEATURE_STARTTLS	(1<<6)
#define SMTP_FEATURE_ENHSC	(1<<7)
unsigned smtp_proto_features(const SMTP_PROTO *p);

/* Result helpers (also used by smtp.c for local reasons). */
void    smtp_result_set(SMTP_RESULT *r, enum delivery_status st, int code,
			const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void    smtp_result_clear(SMTP_RESULT *r);

/* ------------------------------------------------------------------ TLS */

typedef struct SMTP_TLS_CTX SMTP_TLS_CTX;
typedef struct SMTP_TLS SMTP_TLS;

enum smtp_tls_io { SMTP_TLS_OK = 0, SMTP_TLS_WANT_READ, SMTP_TLS_WANT_WRITE,
		   SMTP_TLS_EOF, SMTP_TLS_ERROR };

/* NULL with why on a bad CAfile. */
SMTP_TLS_CTX *smtp_tls_ctx_create(const SMTP_CONFIG *cfg, STR *why);
void    smtp_tls_ctx_free(SMTP_TLS_CTX *ctx);
/* sni may be NULL; match_name is checked at level verify. */
SMTP_TLS *smtp_tls_start(SMTP_TLS_CTX *ctx, int fd, enum smtp_tls_level level,
			 const char *sni, const char *match_name);
/* Drives the handshake; on SMTP_TLS_ERROR why says what failed (including
 * "Server certificate not verified" at level verify). */
enum smtp_tls_io smtp_tls_handshake(SMTP_TLS *tls, STR *why);
enum smtp_tls_io smtp_tls_read(SMTP_TLS *tls, char *buf, size_t len, size_t *got);
enum smtp_tls_io smtp_tls_write(SMTP_TLS *tls, const char *buf, size_t len, size_t *put);
bool    smtp_tls_pending(SMTP_TLS *tls);
void    smtp_tls_free(SMTP_TLS *tls);	/* no close_notify wait */

#endif
