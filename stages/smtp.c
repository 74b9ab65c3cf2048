/*
 * smtp.c - the SMTP/LMTP client delivery agent: threads, epoll loops,
 *	    sessions, MX fail-over, connection cache, Postfix's log lines.
 *
 * PURPOSE
 *   smtp_agent_deliver() takes a DELIVERY_REQUEST and gives it to one of a
 *   few I/O threads (the one that owns its nexthop, by hash). Each thread
 *   runs an epoll loop over many sessions: non-blocking connect with
 *   smtp_connect_timeout, STARTTLS, the protocol engine of smtp_proto.c, a
 *   timer heap for the per-phase timeouts (smtp_helo_timeout, ...).
 *   Address lookups run on the resolver threads of smtp_addr.c; their
 *   results come back through the thread's inbox.
 *
 *   One request: find an idle cached session for the nexthop (RSET probes
 *   it; a dead one is dropped silently and the request carries on), else
 *   look up the addresses and try them in order, at most
 *   smtp_mx_session_limit sessions and smtp_mx_address_limit addresses.
 *   2xx and 5xx results are final at once; recipients that got 4xx from
 *   one server are tried at the next one (as Postfix does). When every
 *   address fails at connection level, all recipients are deferred with
 *   the last reason ("connect to h[ip]:25: Connection refused") and
 *   req->site_failed is set for qmgr's failed-cohort accounting.
 *
 *   Connection cache: with smtp_connection_cache_on_demand = yes a session
 *   that ends a transaction in good shape stays open
 *   smtp_connection_cache_time_limit seconds for the next request to the
 *   same nexthop, while it is younger than smtp_connection_reuse_time_limit.
 *   (qmgr does not yet tell the agent about backlog, so "on demand" means:
 *   every healthy session is offered to the cache for that short time.)
 *   An idle session the server closes or talks on is discarded silently.
 *
 *   Each recipient gets Postfix's line (src/global/log_adhoc.c):
 *   ID: to=<r>, orig_to=<o>, relay=h[ip]:port, conn_use=N, delay=T,
 *   delays=a/b/c/d, dsn=X.Y.Z, status=sent|deferred|bounced (reason)
 *
 * THREADING
 *   smtp_agent_deliver() may be called from any thread: it locks the
 *   target thread's inbox and writes its eventfd (only when the inbox was
 *   empty). Everything else (jobs,
 *   sessions, the cache, the timer heap) belongs to one I/O thread. done()
 *   is called on the I/O thread that owns the request.
 *
 * DIAGNOSTICS
 *   The per-recipient lines at info level; resource trouble (socket(),
 *   epoll) as warnings, with the request deferred.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/stage.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "stages/smtp.h"
#include "stages/delivery_log.h"

#define SMTP_CACHE_BUCKETS	1024
#define SMTP_FILL_WANT		(64 * 1024)
#define SMTP_READ_CHUNK		16384

typedef struct SMTP_THREAD SMTP_THREAD;
typedef struct SMTP_SESS SMTP_SESS;
typedef struct SMTP_JOB SMTP_JOB;

struct SMTP_AGENT {
    SMTP_CONFIG cfg;
    int     nthreads;
    SMTP_THREAD *threads;
    SMTP_RESOLVER *resolver;
    SMTP_TLS_CTX *tls;
    STR     tls_error;
};

enum smtp_inbox_kind { INBOX_NEW, INBOX_LOOKUP };

struct SMTP_THREAD {
    SMTP_AGENT *agent;
    pthread_t tid;
    int     epfd;
    int     evfd;
    pthread_mutex_t lock;
    SMTP_JOB *inbox_head;
    SMTP_JOB *inbox_tail;
    bool    stop;
    /* Thread-local from here on. */
    int     active_jobs;
    SMTP_SESS **heap;
    size_t  nheap;
    size_t  heap_cap;
    SMTP_SESS *cache[SMTP_CACHE_BUCKETS];
    size_t  nsessions;
};

enum smtp_sess_state { SS_CONNECTING, SS_HANDSHAKE, SS_ACTIVE, SS_IDLE };

struct SMTP_SESS {
    SMTP_THREAD *th;
    int     fd;
    SMTP_TLS *tls;
    SMTP_PROTO *proto;
    enum smtp_sess_state state;
    SMTP_JOB *job;
    char   *key;			/* nexthop: the cache key */
    SMTP_ADDR addr;
    char    namaddr[600];
    char    relay[620];
    int64_t created_ns;
    int64_t deadline_ns;		/* 0 = none */
    size_t  heap_idx;
    int     uses;			/* transactions started */
    size_t  out_off;
    uint32_t ev_mask;
    bool    tls_disabled;
    SMTP_SESS *cache_next;
};

struct SMTP_JOB {
    SMTP_THREAD *th;
    DELIVERY_REQUEST *req;
    SMTP_JOB *inbox_next;
    enum smtp_inbox_kind inbox_kind;
    SMTP_NEXTHOP nh;
    char   *key;
    SMTP_LOOKUP lk;
    size_t  addr_next;
    int     sessions;
    SMTP_RESULT *res;			/* per req->rcpt[] */
    char  **res_relay;			/* relay that gave res[i] */
    bool   *final;
    /* Current transaction. */
    SMTP_TXN txn;
    size_t *txn_idx;			/* txn index -> req->rcpt index */
    size_t *txn_rcpt;			/* txn index -> msg->rcpt index */
    SMTP_RESULT *txn_res;
    /* Last connection-level failure. */
    STR     site_why;
    char    site_dsn[16];
    bool    site_error;
    bool    any_txn;
    bool    plain_retry;
    int64_t conn_done_ns;
    int     conn_use;
    char    relay[620];
};

static void smtp_job_next(SMTP_JOB *job);
static void smtp_job_start(SMTP_JOB *job);
static bool smtp_sess_event(SMTP_SESS *s, enum smtp_proto_event ev);
static void smtp_sess_close(SMTP_SESS *s, bool quit);
static bool smtp_sess_flush(SMTP_SESS *s);

/* -------------------------------------------------------------- config */

/* Copy with truncation (a relay name longer than the field is cut). */
static void smtp_copy(char *dst, size_t len, const char *src)
{
    size_t  n = strlen(src);

    if (n >= len)
	n = len - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void smtp_config_hostname(char *buf, size_t len)
{
    const char *p = param_str(P_MYHOSTNAME);

    if (p && *p && *p != '$') {
	snprintf(buf, len, "%s", p);
	return;
    }
    if (gethostname(buf, len) != 0 || buf[0] == 0)
	snprintf(buf, len, "localhost");
    buf[len - 1] = 0;
}

static void smtp_config_helo(SMTP_CONFIG *cfg, const char *value)
{
    /* The first-cut param.c does not expand $name yet. */
    if (strcmp(value, "$myhostname") == 0 || strcmp(value, "${myhostname}") == 0
	|| *value == 0)
	snprintf(cfg->helo_name, sizeof(cfg->helo_name), "%s", cfg->myhostname);
    else
	snprintf(cfg->helo_name, sizeof(cfg->helo_name), "%s", value);
}

static int smtp_config_level(const char *v, enum smtp_tls_level *lvl)
{
    if (*v == 0 || strcasecmp(v, "none") == 0)
	*lvl = SMTP_TLS_NONE;
    else if (strcasecmp(v, "may") == 0)
	*lvl = SMTP_TLS_MAY;
    else if (strcasecmp(v, "encrypt") == 0)
	*lvl = SMTP_TLS_ENCRYPT;
    else if (strcasecmp(v, "verify") == 0 || strcasecmp(v, "secure") == 0)
	*lvl = SMTP_TLS_VERIFY;
    else
	return -1;
    return 0;
}

static int smtp_config_lookup(SMTP_CONFIG *cfg, const char *v)
{
    bool    dns = false,
            native = false;
    char    buf[128];
    char   *save = NULL;

    snprintf(buf, sizeof(buf), "%s", v);
    for (char *w = strtok_r(buf, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
	if (strcasecmp(w, "dns") == 0)
	    dns = true;
	else if (strcasecmp(w, "native") == 0)
	    native = true;
	else
	    return -1;
    }
    if (!dns && !native)
	return -1;
    cfg->host_lookup_dns = dns;
    cfg->host_lookup_native = native;
    return 0;
}

static int smtp_config_dns_server(const char *v)
{
    char    ip[64];
    const char *colon = strchr(v, ':');
    struct in_addr a;

    if (*v == 0)
	return 0;
    snprintf(ip, sizeof(ip), "%.*s", (int) (colon ? (size_t) (colon - v) : strlen(v)), v);
    if (inet_pton(AF_INET, ip, &a) != 1)
	return -1;
    if (colon) {
	char   *end;
	long    port = strtol(colon + 1, &end, 10);

	if (*end || port <= 0 || port > 65535)
	    return -1;
    }
    return 0;
}

void    smtp_config_load(SMTP_CONFIG *cfg, bool lmtp)
{
#define SP(s, l) (lmtp ? P_LMTP_##l : P_SMTP_##s)
    memset(cfg, 0, sizeof(*cfg));
    cfg->lmtp = lmtp;
    cfg->service = lmtp ? "lmtp" : "smtp";
    cfg->timeout[SMTP_PH_CONNECT] = (int) param_int(SP(CONNECT_TIMEOUT, CONNECT_TIMEOUT));
    cfg->timeout[SMTP_PH_HELO] = (int) param_int(SP(HELO_TIMEOUT, LHLO_TIMEOUT));
    cfg->timeout[SMTP_PH_STARTTLS] = (int) param_int(SP(STARTTLS_TIMEOUT, STARTTLS_TIMEOUT));
    cfg->timeout[SMTP_PH_MAIL] = (int) param_int(SP(MAIL_TIMEOUT, MAIL_TIMEOUT));
    cfg->timeout[SMTP_PH_RCPT] = (int) param_int(SP(RCPT_TIMEOUT, RCPT_TIMEOUT));
    cfg->timeout[SMTP_PH_DATA_INIT] = (int) param_int(SP(DATA_INIT_TIMEOUT, DATA_INIT_TIMEOUT));
    cfg->timeout[SMTP_PH_DATA_XFER] = (int) param_int(SP(DATA_XFER_TIMEOUT, DATA_XFER_TIMEOUT));
    cfg->timeout[SMTP_PH_DATA_DONE] = (int) param_int(SP(DATA_DONE_TIMEOUT, DATA_DONE_TIMEOUT));
    cfg->timeout[SMTP_PH_RSET] = (int) param_int(SP(RSET_TIMEOUT, RSET_TIMEOUT));
    cfg->timeout[SMTP_PH_QUIT] = (int) param_int(SP(QUIT_TIMEOUT, QUIT_TIMEOUT));
    cfg->mx_address_limit = (int) param_int(P_SMTP_MX_ADDRESS_LIMIT);
    cfg->mx_session_limit = (int) param_int(P_SMTP_MX_SESSION_LIMIT);
    cfg->cache_on_demand = param_bool(SP(CONNECTION_CACHE_ON_DEMAND, CONNECTION_CACHE_ON_DEMAND));
    cfg->cache_time_limit = (int) param_int(SP(CONNECTION_CACHE_TIME_LIMIT, CONNECTION_CACHE_TIME_LIMIT));
    cfg->reuse_time_limit = (int) param_int(SP(CONNECTION_REUSE_TIME_LIMIT, CONNECTION_REUSE_TIME_LIMIT));
    cfg->skip_5xx_greeting = param_bool(SP(SKIP_5XX_GREETING, SKIP_5XX_GREETING));
    smtp_config_hostname(cfg->myhostname, sizeof(cfg->myhostname));
    smtp_config_helo(cfg, param_str(SP(HELO_NAME, LHLO_NAME)));
    snprintf(cfg->bind_address, sizeof(cfg->bind_address), "%s", param_str(SP(BIND_ADDRESS, BIND_ADDRESS)));
    if (smtp_config_lookup(cfg, param_str(SP(HOST_LOOKUP, HOST_LOOKUP))) < 0) {
	msg_warn("bad %s value \"%s\"; using dns", param_name(SP(HOST_LOOKUP, HOST_LOOKUP)),
		 param_str(SP(HOST_LOOKUP, HOST_LOOKUP)));
	cfg->host_lookup_dns = true;
    }
    if (smtp_config_level(param_str(SP(TLS_SECURITY_LEVEL, TLS_SECURITY_LEVEL)), &cfg->tls_level) < 0) {
	/* Fail safe: an unknown level must not mean "no TLS". */
	msg_warn("unsupported %s value \"%s\"; using encrypt",
		 param_name(SP(TLS_SECURITY_LEVEL, TLS_SECURITY_LEVEL)),
		 param_str(SP(TLS_SECURITY_LEVEL, TLS_SECURITY_LEVEL)));
	cfg->tls_level = SMTP_TLS_ENCRYPT;
    }
    snprintf(cfg->tls_cafile, sizeof(cfg->tls_cafile), "%s", param_str(SP(TLS_CAFILE, TLS_CAFILE)));
    snprintf(cfg->tls_servername, sizeof(cfg->tls_servername), "%s", param_str(SP(TLS_SERVERNAME, TLS_SERVERNAME)));
    snprintf(cfg->dns_server, sizeof(cfg->dns_server), "%s", param_str(SP(DNS_SERVER, DNS_SERVER)));
    if (smtp_config_dns_server(cfg->dns_server) < 0) {
	msg_warn("bad %s value \"%s\"; ignored", param_name(SP(DNS_SERVER, DNS_SERVER)), cfg->dns_server);
	cfg->dns_server[0] = 0;
    }
#undef SP
}

static int smtp_config_bool(const char *v, bool *out)
{
    if (strcasecmp(v, "yes") == 0)
	*out = true;
    else if (strcasecmp(v, "no") == 0)
	*out = false;
    else
	return -1;
    return 0;
}

int     smtp_config_set(SMTP_CONFIG *cfg, const char *name, const char *value, STR *why)
{
    static const struct {
	const char *name;
	int     phase;
    } timeouts[] = {
	{"connect_timeout", SMTP_PH_CONNECT}, {"helo_timeout", SMTP_PH_HELO},
	{"lhlo_timeout", SMTP_PH_HELO}, {"starttls_timeout", SMTP_PH_STARTTLS},
	{"mail_timeout", SMTP_PH_MAIL}, {"rcpt_timeout", SMTP_PH_RCPT},
	{"data_init_timeout", SMTP_PH_DATA_INIT}, {"data_xfer_timeout", SMTP_PH_DATA_XFER},
	{"data_done_timeout", SMTP_PH_DATA_DONE}, {"rset_timeout", SMTP_PH_RSET},
	{"quit_timeout", SMTP_PH_QUIT},
    };
    const char *n;
    long long t;

    if (strcmp(name, "myhostname") == 0) {
	if (*value == 0 || strlen(value) >= sizeof(cfg->myhostname))
	    goto bad;
	snprintf(cfg->myhostname, sizeof(cfg->myhostname), "%s", value);
	return 0;
    }
    if (strncmp(name, "smtp_", 5) == 0 || strncmp(name, "lmtp_", 5) == 0)
	n = name + 5;
    else {
	str_printf(why, "unknown parameter \"%s\"", name);
	return -1;
    }
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
	if (strcmp(n, timeouts[i].name) == 0) {
	    t = time_parse_duration(value, 's');
	    if (t < 0 || t > 86400 || (t == 0 && timeouts[i].phase != SMTP_PH_CONNECT))
		goto bad;
	    cfg->timeout[timeouts[i].phase] = (int) t;
	    return 0;
	}
    }
    if (strcmp(n, "connection_cache_time_limit") == 0 || strcmp(n, "connection_reuse_time_limit") == 0) {
	t = time_parse_duration(value, 's');
	if (t <= 0 || t > 86400)
	    goto bad;
	*(n[11] == 'c' ? &cfg->cache_time_limit : &cfg->reuse_time_limit) = (int) t;
	return 0;
    }
    if (strcmp(n, "mx_address_limit") == 0 || strcmp(n, "mx_session_limit") == 0) {
	char   *end;
	long    v = strtol(value, &end, 10);

	if (*value == 0 || *end || v < 0 || v > 1000)
	    goto bad;
	*(n[3] == 'a' ? &cfg->mx_address_limit : &cfg->mx_session_limit) = (int) v;
	return 0;
    }
    if (strcmp(n, "connection_cache_on_demand") == 0)
	return smtp_config_bool(value, &cfg->cache_on_demand) < 0 ? (str_printf(why, "bad boolean \"%s\" for %s", value, name), -1) : 0;
    if (strcmp(n, "skip_5xx_greeting") == 0)
	return smtp_config_bool(value, &cfg->skip_5xx_greeting) < 0 ? (str_printf(why, "bad boolean \"%s\" for %s", value, name), -1) : 0;
    if (strcmp(n, "helo_name") == 0 || strcmp(n, "lhlo_name") == 0) {
	if (strlen(value) >= sizeof(cfg->helo_name) || strpbrk(value, " \t\r\n"))
	    goto bad;
	smtp_config_helo(cfg, value);
	return 0;
    }
    if (strcmp(n, "bind_address") == 0) {
	struct in_addr a;

	if (*value && inet_pton(AF_INET, value, &a) != 1)
	    goto bad;
	snprintf(cfg->bind_address, sizeof(cfg->bind_address), "%s", value);
	return 0;
    }
    if (strcmp(n, "host_lookup") == 0)
	return smtp_config_lookup(cfg, value) < 0 ? (str_printf(why, "bad %s value \"%s\" (dns, native)", name, value), -1) : 0;
    if (strcmp(n, "tls_security_level") == 0)
	return smtp_config_level(value, &cfg->tls_level) < 0 ? (str_printf(why, "unsupported %s value \"%s\" (none, may, encrypt, verify)", name, value), -1) : 0;
    if (strcmp(n, "tls_CAfile") == 0) {
	if (strlen(value) >= sizeof(cfg->tls_cafile))
	    goto bad;
	snprintf(cfg->tls_cafile, sizeof(cfg->tls_cafile), "%s", value);
	return 0;
    }
    if (strcmp(n, "tls_servername") == 0) {
	if (strlen(value) >= sizeof(cfg->tls_servername))
	    goto bad;
	snprintf(cfg->tls_servername, sizeof(cfg->tls_servername), "%s", value);
	return 0;
    }
    if (strcmp(n, "dns_server") == 0) {
	if (strlen(value) >= sizeof(cfg->dns_server) || smtp_config_dns_server(value) < 0)
	    goto bad;
	snprintf(cfg->dns_server, sizeof(cfg->dns_server), "%s", value);
	return 0;
    }
    str_printf(why, "unknown parameter \"%s\"", name);
    return -1;
bad:
    str_printf(why, "bad value \"%s\" for %s", value, name);
    return -1;
}

/* ---------------------------------------------------------- delay text */


/* --------------------------------------------------------------- timers */

static bool smtp_heap_less(SMTP_SESS *a, SMTP_SESS *b)
{
    return a->deadline_ns < b->deadline_ns;
}

static void smtp_heap_swap(SMTP_THREAD *th, size_t i, size_t j)
{
    SMTP_SESS *t = th->heap[i];

    th->heap[i] = th->heap[j];
    th->heap[j] = t;
    th->heap[i]->heap_idx = i;
    th->heap[j]->heap_idx = j;
}

static void smtp_heap_up(SMTP_THREAD *th, size_t i)
{
    while (i > 0 && smtp_heap_less(th->heap[i], th->heap[(i - 1) / 2])) {
	smtp_heap_swap(th, i, (i - 1) / 2);
	i = (i - 1) / 2;
    }
}

static void smtp_heap_down(SMTP_THREAD *th, size_t i)
{
    for (;;) {
	size_t  l = 2 * i + 1,
	        r = l + 1,
	        m = i;

	if (l < th->nheap && smtp_heap_less(th->heap[l], th->heap[m]))
	    m = l;
	if (r < th->nheap && smtp_heap_less(th->heap[r], th->heap[m]))
	    m = r;
	if (m == i)
	    return;
	smtp_heap_swap(th, i, m);
	i = m;
    }
}

static void smtp_timer_clear(SMTP_SESS *s)
{
    SMTP_THREAD *th = s->th;
    size_t  i = s->heap_idx;

    if (s->deadline_ns == 0)
	return;
    s->deadline_ns = 0;
    th->nheap--;
    if (i != th->nheap) {
	th->heap[i] = th->heap[th->nheap];
	th->heap[i]->heap_idx = i;
	smtp_heap_down(th, i);
	smtp_heap_up(th, i);
    }
}

static void smtp_timer_set(SMTP_SESS *s, int secs)
{
    SMTP_THREAD *th = s->th;

    smtp_timer_clear(s);
    if (secs <= 0)
	return;
    if (th->nheap == th->heap_cap) {
	th->heap_cap = th->heap_cap ? th->heap_cap * 2 : 64;
	th->heap = mem_realloc(th->heap, th->heap_cap * sizeof(*th->heap));
    }
    s->deadline_ns = time_mono_ns() + (int64_t) secs * TIME_NS_PER_SEC;
    s->heap_idx = th->nheap;
    th->heap[th->nheap++] = s;
    smtp_heap_up(th, s->heap_idx);
}

/* ---------------------------------------------------------------- cache */

static unsigned smtp_hash(const char *key)
{
    unsigned h = 2166136261u;

    for (; *key; key++)
	h = (h ^ (unsigned char) *key) * 16777619u;
    return h;
}

static void smtp_cache_put(SMTP_SESS *s)
{
    unsigned b = smtp_hash(s->key) % SMTP_CACHE_BUCKETS;

    s->cache_next = s->th->cache[b];
    s->th->cache[b] = s;
}

static void smtp_cache_remove(SMTP_SESS *s)
{
    unsigned b = smtp_hash(s->key) % SMTP_CACHE_BUCKETS;

    for (SMTP_SESS **pp = &s->th->cache[b]; *pp; pp = &(*pp)->cache_next) {
	if (*pp == s) {
	    *pp = s->cache_next;
	    s->cache_next = NULL;
	    return;
	}
    }
}

static SMTP_SESS *smtp_cache_take(SMTP_THREAD *th, const char *key)
{
    unsigned b = smtp_hash(key) % SMTP_CACHE_BUCKETS;

    for (SMTP_SESS **pp = &th->cache[b]; *pp; pp = &(*pp)->cache_next) {
	if (strcmp((*pp)->key, key) == 0) {
	    SMTP_SESS *s = *pp;

	    *pp = s->cache_next;
	    s->cache_next = NULL;
	    return s;
	}
    }
    return NULL;
}

/* ------------------------------------------------------------ sessions */

static void smtp_sess_want(SMTP_SESS *s, uint32_t mask)
{
    struct epoll_event ev;

    if (s->ev_mask == mask)
	return;
    ev.events = mask;
    ev.data.ptr = s;
    if (epoll_ctl(s->th->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
	msg_warn("epoll_ctl: %m");
    s->ev_mask = mask;
}

static void smtp_sess_close(SMTP_SESS *s, bool quit)
{
    if (quit && s->proto && s->state == SS_ACTIVE) {
	/* Best effort, as Postfix: say QUIT, do not wait for the reply. */
	smtp_proto_quit(s->proto);
	(void) smtp_sess_flush(s);
    }
    if (s->state == SS_IDLE)
	smtp_cache_remove(s);
    smtp_timer_clear(s);
    smtp_tls_free(s->tls);
    smtp_proto_free(s->proto);
    /* Not close() alone: a child forked meanwhile (local/pipe delivery)
     * may hold the socket open, and epoll would keep reporting it. */
    if (s->fd >= 0)
	epoll_ctl(s->th->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->th->nsessions--;
    mem_free(s->key);
    mem_free(s);
}

/* Write what is pending; false on a broken connection (not yet handled). */
static bool smtp_sess_flush(SMTP_SESS *s)
{
    STR    *out = smtp_proto_out(s->proto);

    for (;;) {
	size_t  left;

	if (s->out_off == out->len) {
	    str_reset(out);
	    s->out_off = 0;
	    if (!smtp_proto_fill(s->proto, SMTP_FILL_WANT) && out->len == 0)
		break;
	    if (out->len == 0)
		continue;
	}
	left = out->len - s->out_off;
	if (s->tls) {
	    size_t  put = 0;
	    enum smtp_tls_io io = smtp_tls_write(s->tls, out->data + s->out_off, left, &put);

	    if (io == SMTP_TLS_OK) {
		s->out_off += put;
		continue;
	    }
	    if (io == SMTP_TLS_WANT_WRITE || io == SMTP_TLS_WANT_READ) {
		smtp_sess_want(s, EPOLLIN | EPOLLOUT);
		return true;
	    }
	    return false;
	} else {
	    ssize_t n = send(s->fd, out->data + s->out_off, left, MSG_NOSIGNAL);

	    if (n > 0) {
		s->out_off += (size_t) n;
		continue;
	    }
	    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		smtp_sess_want(s, EPOLLIN | EPOLLOUT);
		return true;
	    }
	    if (n < 0 && errno == EINTR)
		continue;
	    return false;
	}
    }
    smtp_sess_want(s, EPOLLIN);
    return true;
}

static SMTP_SESS *smtp_sess_connect(SMTP_JOB *job, const SMTP_ADDR *addr, bool tls_disabled)
{
    SMTP_THREAD *th = job->th;
    SMTP_CONFIG *cfg = &th->agent->cfg;
    SMTP_SESS *s;
    struct epoll_event ev;
    int     fd;
    int     family = addr->sa.ss_family;

    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
	str_reset(&job->site_why);
	str_printf(&job->site_why, "connect to %s[%s]: socket: %s", addr->host,
		   addr->ip[0] ? addr->ip : addr->host, strerror(errno));
	snprintf(job->site_dsn, sizeof(job->site_dsn), "4.4.1");
	job->site_error = true;
	return NULL;
    }
    if (family == AF_INET && cfg->bind_address[0]) {
	struct sockaddr_in sin = {.sin_family = AF_INET};

	inet_pton(AF_INET, cfg->bind_address, &sin.sin_addr);
	if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0)
	    msg_warn("%s: bind %s: %m", cfg->service, cfg->bind_address);
    }
    s = MEM_NEW(SMTP_SESS);
    s->th = th;
    s->fd = fd;
    s->key = mem_strdup(job->key);
    s->addr = *addr;
    s->tls_disabled = tls_disabled;
    s->created_ns = time_mono_ns();
    if (family == AF_UNIX) {
	snprintf(s->namaddr, sizeof(s->namaddr), "%s[%s]", cfg->myhostname, addr->host);
	snprintf(s->relay, sizeof(s->relay), "%s", s->namaddr);
    } else {
	snprintf(s->namaddr, sizeof(s->namaddr), "%s[%s]", addr->host, addr->ip);
	snprintf(s->relay, sizeof(s->relay), "%s:%u", s->namaddr, job->nh.port);
    }
    th->nsessions++;
    s->state = SS_CONNECTING;
    s->job = job;
    s->ev_mask = EPOLLOUT;
    ev.events = EPOLLOUT;
    ev.data.ptr = s;
    if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
	msg_fatal("epoll_ctl add: %m");
    if (connect(fd, (struct sockaddr *) &addr->sa, addr->salen) < 0 && errno != EINPROGRESS) {
	int     err = errno;

	str_reset(&job->site_why);
	str_printf(&job->site_why, "connect to %s: %s",
		   family == AF_UNIX ? s->namaddr : s->relay, strerror(err));
	snprintf(job->site_dsn, sizeof(job->site_dsn), "4.4.1");
	job->site_error = true;
	snprintf(job->relay, sizeof(job->relay), "%s", s->relay);
	s->job = NULL;
	smtp_sess_close(s, false);
	return NULL;
    }
    smtp_timer_set(s, cfg->timeout[SMTP_PH_CONNECT]);
    return s;
}

/* The connection is up: start the protocol. */
static void smtp_sess_connected(SMTP_SESS *s)
{
    SMTP_CONFIG *cfg = &s->th->agent->cfg;
    SMTP_PROTO_OPTS o;

    memset(&o, 0, sizeof(o));
    o.lmtp = cfg->lmtp;
    o.loop_detect = !cfg->lmtp;
    o.skip_5xx_greeting = cfg->skip_5xx_greeting;
    o.tls_level = cfg->tls_level;
    o.tls_disabled = s->tls_disabled;
    o.helo_name = cfg->helo_name;
    o.myhostname = cfg->myhostname;
    o.nexthop = s->job->nh.kind == SMTP_NH_UNIX ? s->job->nh.path : s->job->nh.host;
    o.namaddr = s->namaddr;
    o.timeout = cfg->timeout;
    s->proto = smtp_proto_create(&o);
    s->state = SS_ACTIVE;
    s->job->sessions++;
    snprintf(s->job->relay, sizeof(s->job->relay), "%s", s->relay);
    smtp_sess_want(s, EPOLLIN);
    smtp_timer_set(s, smtp_proto_timeout_secs(s->proto));
    if (s->addr.sa.ss_family != AF_UNIX) {
	int     one = 1;

	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

/* Drive the TLS handshake. False if the session is gone. */
static bool smtp_sess_handshake(SMTP_SESS *s)
{
    STR     why = STR_INIT;
    enum smtp_tls_io io = smtp_tls_handshake(s->tls, &why);
    bool    alive;

    switch (io) {
    case SMTP_TLS_WANT_READ:
	smtp_sess_want(s, EPOLLIN);
	str_release(&why);
	return true;
    case SMTP_TLS_WANT_WRITE:
	smtp_sess_want(s, EPOLLIN | EPOLLOUT);
	str_release(&why);
	return true;
    case SMTP_TLS_OK:
	s->state = SS_ACTIVE;
	alive = smtp_sess_event(s, smtp_proto_tls_done(s->proto, true, NULL));
	break;
    default:{
	    STR     text = STR_INIT;

	    str_printf(&text, "TLS handshake with %s failed: %s", s->namaddr, STR_DATA(&why));
	    if (strncmp(STR_DATA(&why), "Server certificate not verified", 31) == 0) {
		str_reset(&text);
		str_printf(&text, "%s: %s", s->namaddr, STR_DATA(&why));
	    }
	    s->state = SS_ACTIVE;
	    alive = smtp_sess_event(s, smtp_proto_tls_done(s->proto, false, STR_DATA(&text)));
	    str_release(&text);
	    break;
	}
    }
    str_release(&why);
    return alive;
}

static void smtp_sess_start_tls(SMTP_SESS *s)
{
    SMTP_AGENT *agent = s->th->agent;
    SMTP_CONFIG *cfg = &agent->cfg;
    const char *sni = NULL;
    const char *host = s->addr.host;

    if (agent->tls == NULL) {
	STR     text = STR_INIT;

	str_printf(&text, "TLS is not available: %s", STR_DATA(&agent->tls_error));
	(void) smtp_sess_event(s, smtp_proto_tls_done(s->proto, false, STR_DATA(&text)));
	str_release(&text);
	return;
    }
    if (strcmp(cfg->tls_servername, "hostname") == 0)
	sni = host;
    else if (strcmp(cfg->tls_servername, "nexthop") == 0)
	sni = s->job->nh.host;
    else if (cfg->tls_servername[0])
	sni = cfg->tls_servername;
    s->tls = smtp_tls_start(agent->tls, s->fd, cfg->tls_level, sni, host);
    s->state = SS_HANDSHAKE;
    smtp_timer_set(s, cfg->timeout[SMTP_PH_STARTTLS]);
    (void) smtp_sess_handshake(s);
}

/* ----------------------------------------------------------------- jobs */

static void smtp_job_log(SMTP_JOB *job, size_t i, int64_t now_ns)
{
    DELIVERY_LOG how = {
	.relay = job->res_relay[i],
	.conn_use = job->conn_use > 0 && job->res_relay[i] ? job->conn_use + 1 : 0,
	.conn_done_ns = job->res_relay[i] ? job->conn_done_ns : 0,
	.now_ns = now_ns,
    };

    delivery_log_rcpt(job->req, i, &how);
}

static void smtp_job_finish(SMTP_JOB *job)
{
    DELIVERY_REQUEST *req = job->req;
    SMTP_THREAD *th = job->th;
    int64_t now_ns = time_mono_ns();
    bool    all_site = true;

    for (size_t i = 0; i < req->nrcpt; i++) {
	SMTP_RESULT *res = job->res + i;

	if (!res->set) {
	    if (job->site_error)
		smtp_result_set(res, DELIVERY_DEFER, 0, job->site_dsn, "%s", STR_DATA(&job->site_why));
	    else
		smtp_result_set(res, DELIVERY_DEFER, 0, "4.4.1", "no server could be reached");
	    if (job->relay[0] && !job->res_relay[i])
		job->res_relay[i] = mem_strdup(job->relay);
	}
	if (res->code != 0 || res->status != DELIVERY_DEFER)
	    all_site = false;
	req->rcpt[i].status = res->status;
	snprintf(req->rcpt[i].dsn, sizeof(req->rcpt[i].dsn), "%s", res->dsn);
	mem_free(req->rcpt[i].reason);
	req->rcpt[i].reason = mem_strdup(res->reason ? res->reason : "");
	smtp_job_log(job, i, now_ns);
    }
    req->site_failed = all_site && !job->any_txn && req->nrcpt > 0;
    smtp_copy(req->relay, sizeof(req->relay), job->relay[0] ? job->relay : "none");
    for (size_t i = 0; i < req->nrcpt; i++) {
	smtp_result_clear(job->res + i);
	mem_free(job->res_relay[i]);
    }
    mem_free(job->res);
    mem_free(job->res_relay);
    mem_free(job->final);
    mem_free(job->txn_idx);
    mem_free(job->txn_rcpt);
    mem_free(job->txn_res);
    mem_free(job->key);
    str_release(&job->site_why);
    smtp_addr_lookup_free(&job->lk);
    mem_free(job);
    th->active_jobs--;
    req->done(req);
}

static size_t smtp_job_pending(SMTP_JOB *job)
{
    size_t  n = 0;

    for (size_t i = 0; i < job->req->nrcpt; i++)
	if (!job->final[i])
	    n++;
    return n;
}

/* Give every pending recipient the same final local result. */
static void smtp_job_fail_all(SMTP_JOB *job, enum delivery_status st, const char *dsn,
			      const char *reason)
{
    for (size_t i = 0; i < job->req->nrcpt; i++) {
	if (job->final[i])
	    continue;
	smtp_result_set(job->res + i, st, 0, dsn, "%s", reason);
	job->final[i] = true;
	if (job->relay[0] && !job->res_relay[i])
	    job->res_relay[i] = mem_strdup(job->relay);
    }
}

/* A session is READY: run a transaction for the pending recipients. */
static bool smtp_job_begin(SMTP_JOB *job, SMTP_SESS *s, bool reused)
{
    size_t  n = 0;

    for (size_t i = 0; i < job->req->nrcpt; i++) {
	if (job->final[i])
	    continue;
	job->txn_idx[n] = i;
	job->txn_rcpt[n] = job->req->rcpt[i].index;
	smtp_result_clear(job->txn_res + n);
	n++;
    }
    job->txn.msg = job->req->msg;
    job->txn.nrcpt = n;
    job->txn.rcpt = job->txn_rcpt;
    job->txn.result = job->txn_res;
    if (job->conn_done_ns == 0)
	job->conn_done_ns = time_mono_ns();
    job->conn_use = s->uses;
    s->uses++;
    snprintf(job->relay, sizeof(job->relay), "%s", s->relay);
    return smtp_sess_event(s, smtp_proto_begin(s->proto, &job->txn, reused));
}

/* Merge the results of a finished transaction. */
static void smtp_job_merge(SMTP_JOB *job, const char *relay)
{
    job->any_txn = true;
    for (size_t k = 0; k < job->txn.nrcpt; k++) {
	size_t  i = job->txn_idx[k];
	SMTP_RESULT *t = job->txn_res + k;

	smtp_result_clear(job->res + i);
	job->res[i] = *t;
	memset(t, 0, sizeof(*t));
	mem_free(job->res_relay[i]);
	job->res_relay[i] = mem_strdup(relay);
	if (job->res[i].status != DELIVERY_DEFER)
	    job->final[i] = true;
    }
    job->txn.nrcpt = 0;
}

/* Release a session after its transaction: cache it or close it. */
static void smtp_sess_release(SMTP_SESS *s)
{
    SMTP_CONFIG *cfg = &s->th->agent->cfg;
    int64_t now = time_mono_ns();
    bool    stopping;

    s->job = NULL;
    pthread_mutex_lock(&s->th->lock);
    stopping = s->th->stop;
    pthread_mutex_unlock(&s->th->lock);
    if (cfg->cache_on_demand && !stopping && smtp_proto_usable(s->proto)
	&& now - s->created_ns < (int64_t) cfg->reuse_time_limit * TIME_NS_PER_SEC) {
	s->state = SS_IDLE;
	smtp_cache_put(s);
	smtp_timer_set(s, cfg->cache_time_limit);
	smtp_sess_want(s, EPOLLIN);
	return;
    }
    smtp_sess_close(s, smtp_proto_usable(s->proto));
}

/* Handle a protocol event. False if the session is gone. */
static bool smtp_sess_event(SMTP_SESS *s, enum smtp_proto_event ev)
{
    SMTP_JOB *job = s->job;
    SMTP_CONFIG *cfg = &s->th->agent->cfg;

    switch (ev) {
    case SMTP_EV_WAIT:
	if (!smtp_sess_flush(s))
	    return smtp_sess_event(s, smtp_proto_lost(s->proto, NULL));
	smtp_timer_set(s, smtp_proto_timeout_secs(s->proto));
	return true;
    case SMTP_EV_STARTTLS:
	smtp_sess_start_tls(s);
	return false;			/* may be gone; caller stops reading */
    case SMTP_EV_READY:
	return smtp_job_begin(job, s, false);
    case SMTP_EV_TXN_DONE:
	smtp_job_merge(job, s->relay);
	smtp_sess_release(s);
	if (smtp_job_pending(job) == 0)
	    smtp_job_finish(job);
	else
	    smtp_job_next(job);
	return false;
    case SMTP_EV_SITE_FAIL:
	str_reset(&job->site_why);
	str_puts(&job->site_why, smtp_proto_site_reason(s->proto));
	snprintf(job->site_dsn, sizeof(job->site_dsn), "%s", smtp_proto_site_dsn(s->proto));
	job->site_error = true;
	snprintf(job->relay, sizeof(job->relay), "%s", s->relay);
	job->plain_retry = smtp_proto_site_retry_plain(s->proto) && cfg->tls_level == SMTP_TLS_MAY
	    && !s->tls_disabled;
	if (smtp_proto_site_final(s->proto)) {
	    smtp_job_fail_all(job, job->site_dsn[0] == '5' ? DELIVERY_BOUNCE : DELIVERY_DEFER,
			      job->site_dsn, STR_DATA(&job->site_why));
	    s->job = NULL;
	    smtp_sess_close(s, false);
	    smtp_job_finish(job);
	    return false;
	}
	(void) smtp_sess_flush(s);	/* the QUIT, best effort */
	s->job = NULL;
	smtp_sess_close(s, false);
	smtp_job_next(job);
	return false;
    case SMTP_EV_RESET_FAIL:
	/* A cached session went stale: drop it quietly, start over. */
	s->job = NULL;
	smtp_sess_close(s, false);
	smtp_job_start(job);
	return false;
    case SMTP_EV_CLOSED:
	if (job) {
	    s->job = NULL;
	    smtp_sess_close(s, false);
	    smtp_job_next(job);
	} else
	    smtp_sess_close(s, false);
	return false;
    }
    return true;
}

/* Readable: feed the protocol engine. */
static void smtp_sess_readable(SMTP_SESS *s)
{
    char    buf[SMTP_READ_CHUNK];

    for (;;) {
	size_t  got = 0;
	bool    drained = false;	/* a short plaintext read */
	enum smtp_proto_event ev;

	if (s->tls) {
	    enum smtp_tls_io io = smtp_tls_read(s->tls, buf, sizeof(buf), &got);

	    if (io == SMTP_TLS_WANT_READ || io == SMTP_TLS_WANT_WRITE)
		return;
	    if (io != SMTP_TLS_OK)
		got = 0;
	} else {
	    ssize_t n = recv(s->fd, buf, sizeof(buf), 0);

	    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	    if (n < 0 && errno == EINTR)
		continue;
	    got = n > 0 ? (size_t) n : 0;
	    drained = n > 0 && (size_t) n < sizeof(buf);
	}
	if (s->state == SS_IDLE) {
	    /* The server closed or spoke on an idle session: drop it. */
	    smtp_sess_close(s, false);
	    return;
	}
	if (got == 0) {
	    (void) smtp_sess_event(s, smtp_proto_lost(s->proto, NULL));
	    return;
	}
	ev = smtp_proto_input(s->proto, buf, got);
	for (;;) {
	    if (ev == SMTP_EV_WAIT) {
		if (!smtp_sess_event(s, ev))
		    return;
		/*
		 * The socket had no more: the interest always includes
		 * EPOLLIN (level-triggered), so epoll says when the next
		 * reply comes, and the recv() that would return EAGAIN is
		 * saved. Not with TLS, whose library may buffer input.
		 */
		if (drained)
		    return;
		break;
	    }
	    if (!smtp_sess_event(s, ev))
		return;
	    if (s->state != SS_ACTIVE)
		return;
	    ev = smtp_proto_input(s->proto, NULL, 0);
	}
    }
}

static void smtp_sess_io(SMTP_SESS *s, uint32_t events)
{
    if (s->state == SS_CONNECTING) {
	int     err = 0;
	socklen_t len = sizeof(err);
	SMTP_JOB *job = s->job;

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
	    err = errno;
	if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLOUT))
	    err = ECONNREFUSED;
	if (err) {
	    str_reset(&job->site_why);
	    str_printf(&job->site_why, "connect to %s: %s",
		       s->addr.sa.ss_family == AF_UNIX ? s->namaddr : s->relay, strerror(err));
	    snprintf(job->site_dsn, sizeof(job->site_dsn), "4.4.1");
	    job->site_error = true;
	    s->job = NULL;
	    smtp_sess_close(s, false);
	    smtp_job_next(job);
	    return;
	}
	smtp_sess_connected(s);
	return;
    }
    if (s->state == SS_HANDSHAKE) {
	(void) smtp_sess_handshake(s);
	return;
    }
    if (s->state == SS_IDLE) {
	smtp_sess_readable(s);
	return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
	smtp_sess_readable(s);
	return;				/* s may be gone */
    }
    if (events & EPOLLOUT)
	(void) smtp_sess_event(s, SMTP_EV_WAIT);
}

static void smtp_sess_expired(SMTP_SESS *s)
{
    SMTP_JOB *job = s->job;

    switch (s->state) {
    case SS_CONNECTING:
	str_reset(&job->site_why);
	str_printf(&job->site_why, "connect to %s: Connection timed out",
		   s->addr.sa.ss_family == AF_UNIX ? s->namaddr : s->relay);
	snprintf(job->site_dsn, sizeof(job->site_dsn), "4.4.1");
	job->site_error = true;
	s->job = NULL;
	smtp_sess_close(s, false);
	smtp_job_next(job);
	return;
    case SS_IDLE:
	smtp_cache_remove(s);
	s->state = SS_ACTIVE;
	smtp_sess_close(s, true);	/* QUIT, as Postfix does */
	return;
    case SS_HANDSHAKE:
    case SS_ACTIVE:
	s->state = SS_ACTIVE;
	(void) smtp_sess_event(s, smtp_proto_timeout(s->proto));
	return;
    }
}

/* Try the next address (or the same one in plaintext after a failed
 * opportunistic handshake). */
static void smtp_job_next(SMTP_JOB *job)
{
    SMTP_CONFIG *cfg = &job->th->agent->cfg;

    if (smtp_job_pending(job) == 0) {
	smtp_job_finish(job);
	return;
    }
    if (job->plain_retry && job->addr_next > 0) {
	job->plain_retry = false;
	if (smtp_sess_connect(job, job->lk.addr + job->addr_next - 1, true))
	    return;
    }
    while (job->addr_next < job->lk.naddr
	   && (cfg->mx_session_limit <= 0 || job->sessions < cfg->mx_session_limit)) {
	const SMTP_ADDR *a = job->lk.addr + job->addr_next++;

	if (smtp_sess_connect(job, a, false))
	    return;
    }
    smtp_job_finish(job);
}

static void smtp_job_addrs(SMTP_JOB *job)
{
    if (job->lk.status != SMTP_LOOKUP_OK) {
	smtp_job_fail_all(job, job->lk.status == SMTP_LOOKUP_PERM ? DELIVERY_BOUNCE : DELIVERY_DEFER,
			  job->lk.dsn, STR_DATA(&job->lk.why));
	job->site_error = job->lk.status == SMTP_LOOKUP_TEMP;
	smtp_job_finish(job);
	return;
    }
    smtp_job_next(job);
}

/*
 * Any thread. The eventfd is written only when the inbox was empty: the
 * I/O thread reads the eventfd before it takes the inbox, so an inbox that
 * is not empty already has a wake-up pending or a take still to come.
 */
static void smtp_inbox_put(SMTP_THREAD *th, SMTP_JOB *job)
{
    uint64_t one = 1;
    bool    was_empty;

    job->inbox_next = NULL;
    pthread_mutex_lock(&th->lock);
    was_empty = th->inbox_head == NULL;
    if (th->inbox_tail)
	th->inbox_tail->inbox_next = job;
    else
	th->inbox_head = job;
    th->inbox_tail = job;
    pthread_mutex_unlock(&th->lock);
    if (was_empty && write(th->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	msg_warn("eventfd write: %m");
}

static void smtp_lookup_done(SMTP_LOOKUP *lk)
{
    SMTP_JOB *job = lk->ctx;

    job->inbox_kind = INBOX_LOOKUP;
    smtp_inbox_put(job->th, job);
}

static void smtp_job_start(SMTP_JOB *job)
{
    SMTP_THREAD *th = job->th;
    SMTP_CONFIG *cfg = &th->agent->cfg;
    SMTP_SESS *s;

    if ((s = smtp_cache_take(th, job->key)) != NULL) {
	smtp_timer_clear(s);
	s->state = SS_ACTIVE;
	s->job = job;
	(void) smtp_job_begin(job, s, true);
	return;
    }
    if (job->lk.addr != NULL || job->lk.status != SMTP_LOOKUP_OK) {
	smtp_job_next(job);		/* a restart after a stale session */
	return;
    }
    job->lk.address_limit = cfg->mx_address_limit;
    job->lk.use_dns = cfg->host_lookup_dns;
    job->lk.use_native = cfg->host_lookup_native;
    snprintf(job->lk.dns_server, sizeof(job->lk.dns_server), "%s", cfg->dns_server);
    job->lk.done = smtp_lookup_done;
    job->lk.ctx = job;
    if (job->nh.kind == SMTP_NH_UNIX || job->nh.literal) {
	smtp_addr_lookup(&job->lk);	/* no DNS: cannot block */
	smtp_job_addrs(job);
    } else
	smtp_resolver_submit(th->agent->resolver, &job->lk);
}

static void smtp_job_new(SMTP_JOB *job)
{
    SMTP_THREAD *th = job->th;
    SMTP_CONFIG *cfg = &th->agent->cfg;
    DELIVERY_REQUEST *req = job->req;
    size_t  n = req->nrcpt ? req->nrcpt : 1;
    STR     why = STR_INIT;

    th->active_jobs++;
    job->res = mem_calloc(n, sizeof(*job->res));
    job->res_relay = mem_calloc(n, sizeof(*job->res_relay));
    job->final = mem_calloc(n, sizeof(*job->final));
    job->txn_idx = mem_calloc(n, sizeof(*job->txn_idx));
    job->txn_rcpt = mem_calloc(n, sizeof(*job->txn_rcpt));
    job->txn_res = mem_calloc(n, sizeof(*job->txn_res));
    req->site_failed = false;
    if (smtp_addr_parse_nexthop(req->nexthop, cfg->lmtp, &job->nh, &why) < 0) {
	STR     text = STR_INIT;

	str_printf(&text, "bad nexthop \"%s\": %s", req->nexthop ? req->nexthop : "", STR_DATA(&why));
	smtp_job_fail_all(job, DELIVERY_DEFER, "4.3.5", STR_DATA(&text));
	str_release(&text);
	str_release(&why);
	smtp_job_finish(job);
	return;
    }
    str_release(&why);
    job->lk.nh = job->nh;
    job->key = mem_strdup(req->nexthop);
    for (char *cp = job->key; *cp; cp++)
	if (*cp >= 'A' && *cp <= 'Z')
	    *cp = (char) (*cp - 'A' + 'a');
    if (req->nrcpt == 0) {
	smtp_job_finish(job);
	return;
    }
    smtp_job_start(job);
}

/* -------------------------------------------------------------- threads */

static void smtp_thread_inbox(SMTP_THREAD *th)
{
    SMTP_JOB *job;
    uint64_t cnt;

    if (read(th->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
	msg_warn("eventfd read: %m");
    pthread_mutex_lock(&th->lock);
    job = th->inbox_head;
    th->inbox_head = th->inbox_tail = NULL;
    pthread_mutex_unlock(&th->lock);
    while (job) {
	SMTP_JOB *next = job->inbox_next;

	if (job->inbox_kind == INBOX_NEW)
	    smtp_job_new(job);
	else
	    smtp_job_addrs(job);
	job = next;
    }
}

static void smtp_thread_expire(SMTP_THREAD *th)
{
    int64_t now = time_mono_ns();

    while (th->nheap > 0 && th->heap[0]->deadline_ns <= now) {
	SMTP_SESS *s = th->heap[0];

	smtp_timer_clear(s);
	smtp_sess_expired(s);
    }
}

static void smtp_thread_drop_cache(SMTP_THREAD *th)
{
    for (size_t b = 0; b < SMTP_CACHE_BUCKETS; b++) {
	while (th->cache[b]) {
	    SMTP_SESS *s = th->cache[b];

	    smtp_cache_remove(s);
	    s->state = SS_ACTIVE;
	    smtp_sess_close(s, true);
	}
    }
}

static void *smtp_thread_main(void *arg)
{
    SMTP_THREAD *th = arg;
    struct epoll_event evs[64];
    char    name[16];

    msg_service_set(th->agent->cfg.service);
    /* "smtp", "relay", "lmtp": roles for top -H, perf and /proc. */
    snprintf(name, sizeof(name), "%s", th->agent->cfg.service);
    (void) pthread_setname_np(pthread_self(), name);
    stage_thread_sched(false);
    for (;;) {
	int     timeout = -1;
	int     n;
	bool    stop;

	pthread_mutex_lock(&th->lock);
	stop = th->stop && th->inbox_head == NULL;
	pthread_mutex_unlock(&th->lock);
	if (stop && th->active_jobs == 0) {
	    smtp_thread_drop_cache(th);
	    break;
	}
	if (th->nheap > 0) {
	    int64_t ms = (th->heap[0]->deadline_ns - time_mono_ns() + 999999) / 1000000;

	    timeout = ms < 0 ? 0 : ms > 60000 ? 60000 : (int) ms;
	}
	n = epoll_wait(th->epfd, evs, 64, timeout);
	if (n < 0) {
	    if (errno == EINTR)
		continue;
	    msg_fatal("epoll_wait: %m");
	}
	for (int i = 0; i < n; i++) {
	    if (evs[i].data.ptr == NULL)
		smtp_thread_inbox(th);
	}
	/* A handler closes only its own session, so the other entries of
	 * this batch stay valid. */
	for (int i = 0; i < n; i++)
	    if (evs[i].data.ptr != NULL)
		smtp_sess_io(evs[i].data.ptr, evs[i].events);
	smtp_thread_expire(th);
    }
    return NULL;
}

SMTP_AGENT *smtp_agent_create(const SMTP_CONFIG *cfg, int nthreads)
{
    SMTP_AGENT *agent = MEM_NEW(SMTP_AGENT);

    agent->cfg = *cfg;
    agent->nthreads = nthreads > 0 ? nthreads : 1;
    if (cfg->tls_level != SMTP_TLS_NONE)
	agent->tls = smtp_tls_ctx_create(cfg, &agent->tls_error);
    if (cfg->tls_level != SMTP_TLS_NONE && agent->tls == NULL)
	msg_warn("%s: TLS disabled: %s", cfg->service, STR_DATA(&agent->tls_error));
    agent->resolver = smtp_resolver_create(2);
    agent->threads = mem_calloc((size_t) agent->nthreads, sizeof(SMTP_THREAD));
    for (int i = 0; i < agent->nthreads; i++) {
	SMTP_THREAD *th = agent->threads + i;
	struct epoll_event ev = {.events = EPOLLIN,.data.ptr = NULL};

	th->agent = agent;
	pthread_mutex_init(&th->lock, NULL);
	if ((th->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
	    msg_fatal("epoll_create1: %m");
	if ((th->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
	    msg_fatal("eventfd: %m");
	if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, th->evfd, &ev) < 0)
	    msg_fatal("epoll_ctl: %m");
	if (pthread_create(&th->tid, NULL, smtp_thread_main, th) != 0)
	    msg_fatal("pthread_create: %m");
    }
    return agent;
}

void    smtp_agent_deliver(SMTP_AGENT *agent, DELIVERY_REQUEST *req)
{
    SMTP_JOB *job = MEM_NEW(SMTP_JOB);
    SMTP_THREAD *th;
    char    key[512];

    /* Same nexthop, same thread: the connection cache needs no lock. */
    snprintf(key, sizeof(key), "%s", req->nexthop ? req->nexthop : "");
    for (char *cp = key; *cp; cp++)
	if (*cp >= 'A' && *cp <= 'Z')
	    *cp = (char) (*cp - 'A' + 'a');
    th = agent->threads + smtp_hash(key) % (unsigned) agent->nthreads;
    job->th = th;
    job->req = req;
    job->inbox_kind = INBOX_NEW;
    smtp_inbox_put(th, job);
}

void    smtp_agent_destroy(SMTP_AGENT *agent)
{
    uint64_t one = 1;

    for (int i = 0; i < agent->nthreads; i++) {
	SMTP_THREAD *th = agent->threads + i;

	pthread_mutex_lock(&th->lock);
	th->stop = true;
	pthread_mutex_unlock(&th->lock);
	if (write(th->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	    msg_warn("eventfd write: %m");
    }
    for (int i = 0; i < agent->nthreads; i++) {
	SMTP_THREAD *th = agent->threads + i;

	pthread_join(th->tid, NULL);
	close(th->epfd);
	close(th->evfd);
	pthread_mutex_destroy(&th->lock);
	mem_free(th->heap);
    }
    smtp_resolver_destroy(agent->resolver);
    smtp_tls_ctx_free(agent->tls);
    str_release(&agent->tls_error);
    mem_free(agent->threads);
    mem_free(agent);
}
