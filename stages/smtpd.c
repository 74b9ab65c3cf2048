/*
 * smtpd.c - the SMTP server stage: listeners, I/O threads, epoll (smtpd.h).
 *
 * Each I/O thread has its own epoll set, an eventfd for wake-ups, and the
 * listening sockets (EPOLLEXCLUSIVE, so one thread wakes per connection).
 * A session is a small CONN plus its SMTPD_PROTO; nothing big is allocated
 * until the client sends something big (replies, a partial line, content).
 * One read buffer per thread serves all its sessions.
 *
 * Timers without a timer wheel: every running session sits in a list
 * ordered by its last I/O (moved to the tail on progress), so the head is
 * the next smtpd_timeout to expire; error sleeps all last
 * smtpd_error_sleep_time, so their list is a FIFO too.
 *
 * A session moves between: running (in the timeout list, epoll interest as
 * its I/O needs), parked (message submitted: no timeout, waits for done()
 * through the eventfd; its interest is dropped only if the client talks),
 * sleeping (error delay), paused
 * (back-pressure: re-checked every 50 ms and on smtpd_wakeup()),
 * handshaking (TLS).
 *
 * Threading: a session is touched only by its own I/O thread; done() and
 * smtpd_adopt() (a socket postscreen accepted) are the entries from other
 * threads (mutex-protected lists + the thread's eventfd).
 * Diagnostics: session lines come from smtpd_proto.c; here: accept errors,
 * TLS handshakes ("Anonymous TLS connection established from ...").
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/config.h"
#include "engine/param.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "engine/privsep.h"
#include "engine/sockaddr.h"
#include "engine/stage.h"
#include "stages/smtpd.h"
#include "stages/smtpd_proto.h"

#define SMTPD_READ_BUF		(64 * 1024)
#define SMTPD_ROUNDS		32	/* reads per session per turn (fairness) */
#define SMTPD_PAUSE_POLL_MS	50
#define SMTPD_EVENTS		256

enum kind { K_LISTEN = 1, K_WAKE, K_CONN };

enum conn_state { S_RUN, S_PARKED, S_SLEEP, S_PAUSED, S_HANDSHAKE };

typedef struct SMTPD_THREAD SMTPD_THREAD;

typedef struct CONN {
    int     kind;			/* K_CONN, first for epoll dispatch */
    int     fd;
    struct CONN *prev, *next;		/* in one of the thread's lists */
    struct CONN *run_next;		/* in the run-again queue */
    struct CONN *dead_next;		/* in the list of sessions to free */
    int     list;			/* which list, L_* */
    const SMTPD_CONFIG *cfg;		/* as it was when the client came */
    bool    queued;			/* in the run-again queue */
    bool    dead;			/* client gone while parked */
    bool    held;			/* last reply sent with MSG_MORE */
    enum conn_state state;
    uint32_t events;			/* current epoll interest */
    int64_t deadline;			/* monotonic ns */
    size_t  out_off;
    SMTPD_PROTO *proto;
    SMTPD_TLS *tls;
    SMTPD_THREAD *thread;
} CONN;

enum { L_NONE, L_RUN, L_SLEEP, L_PAUSED };

typedef struct CONN_LIST {
    CONN    head;			/* sentinel */
} CONN_LIST;

typedef struct TICKET {
    struct TICKET *next;
    CONN   *conn;
    int     code;
    char   *text;
} TICKET;

/* A socket handed over by smtpd_adopt(), waiting for its thread. */
typedef struct ADOPTED {
    struct ADOPTED *next;
    int     fd;
} ADOPTED;

typedef struct LISTENER {
    int     kind;			/* K_LISTEN */
    int     fd;
    bool    owned;
    bool    nodelay;			/* accepted sockets inherit TCP_NODELAY */
    char    laddr[INET6_ADDRSTRLEN + 1];	/* bound to one address: it */
} LISTENER;

struct SMTPD_THREAD {
    int     kind;			/* K_WAKE: the eventfd */
    SMTPD  *smtpd;
    pthread_t tid;
    int     epfd;
    int     evfd;
    pthread_mutex_t lock;
    TICKET *done_head;
    TICKET *done_tail;
    ADOPTED *adopted;			/* under lock: smtpd_adopt() */
    bool    wake_pressure;		/* under lock: smtpd_wakeup() */
    bool    stop;			/* under lock */
    bool    stopping;			/* thread-local copy */
    CONN_LIST run, sleep, paused;
    CONN   *runq_head, *runq_tail;
    CONN   *dead;			/* closed, freed at the end of the turn */
    size_t  nconns;
    int64_t next_pause_check;
    char   *rbuf;
};

struct SMTPD {
    SMTPD_OPTS opts;
    SMTPD_CONFIG *own_config;
    const SMTPD_CONFIG *cfg;
    LISTENER *listeners;
    size_t  nlisteners;
    SMTPD_THREAD *threads;
    int     nthreads;
    size_t  sessions;			/* atomic */
    unsigned next_adopt;		/* atomic: round robin */
    int     port;
};

/* ---- configuration ---- */

const char *smtpd_param_default(void *unused, const char *name)
{
    param_id id = param_lookup(name);
    const char *raw;

    if (id == P_COUNT)
	return NULL;

    /*
     * A value with $name references is returned unexpanded, so that
     * smtpd_config_build() expands it through its own lookup function and
     * overrides (tests, per-service -o) reach the names it refers to. Other
     * values come expanded, with Postfix's computed defaults filled in.
     */
    raw = config_raw(config_current(), id);
    if (raw == NULL)
	raw = param_default(id);
    if (raw && strchr(raw, '$'))
	return raw;
    return param_str(id);
}

static int smtpd_cfg_int(smtpd_param_fn get, void *ctx, const char *name, STR *buf,
		              long long min, long long max, long long *out, STR *err)
{
    const char *v = smtpd_conf_value(get, ctx, name, buf);
    char   *end;
    long long n;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (*v == 0 || *end != 0 || errno || n < min || (max > min && n > max)) {
	str_printf(err, "bad numerical configuration: %s = %s", name, v);
	return -1;
    }
    *out = n;
    return 0;
}

static int smtpd_cfg_time(smtpd_param_fn get, void *ctx, const char *name, STR *buf,
		               long long *out, STR *err)
{
    const char *v = smtpd_conf_value(get, ctx, name, buf);
    long long n = time_parse_duration(v, 's');

    if (n < 0) {
	str_printf(err, "bad time configuration: %s = %s", name, v);
	return -1;
    }
    *out = n;
    return 0;
}

static int smtpd_cfg_bool(smtpd_param_fn get, void *ctx, const char *name, STR *buf,
		               bool *out, STR *err)
{
    const char *v = smtpd_conf_value(get, ctx, name, buf);

    if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0)
	*out = true;
    else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0)
	*out = false;
    else {
	str_printf(err, "bad boolean configuration: %s = %s", name, v);
	return -1;
    }
    return 0;
}

SMTPD_CONFIG *smtpd_config_build(smtpd_param_fn get, void *ctx, STR *err)
{
    SMTPD_CONFIG *c = MEM_NEW(SMTPD_CONFIG);
    STR     buf = STR_INIT;
    long long n;
    const char *v;

    c->myhostname = mem_strdup(smtpd_conf_value(get, ctx, "myhostname", &buf));
    c->banner = mem_strdup(smtpd_conf_value(get, ctx, "smtpd_banner", &buf));
#define INT(name, field, min, max) do { \
	if (smtpd_cfg_int(get, ctx, name, &buf, min, max, &n, err) < 0) goto fail; \
	c->field = n; } while (0)
#define TIME(name, field, scale) do { \
	if (smtpd_cfg_time(get, ctx, name, &buf, &n, err) < 0) goto fail; \
	c->field = (int) (n * (scale)); } while (0)
#define BOOL(name, field) do { \
	if (smtpd_cfg_bool(get, ctx, name, &buf, &c->field, err) < 0) goto fail; } while (0)
    INT("message_size_limit", message_size_limit, 0, 0);
    INT("smtpd_recipient_limit", recipient_limit, 1, 0);
    INT("smtpd_recipient_overshoot_limit", recipient_overshoot_limit, 1, 0);
    INT("line_length_limit", line_length_limit, 512, 1 << 24);
    INT("smtpd_hard_error_limit", hard_error_limit, 1, 0);
    INT("smtpd_soft_error_limit", soft_error_limit, 1, 0);
    INT("smtpd_client_connection_count_limit", conn_count_limit, 0, 0);
    INT("smtpd_client_connection_rate_limit", conn_rate_limit, 0, 0);
    INT("smtpd_client_message_rate_limit", msg_rate_limit, 0, 0);
    INT("smtpd_forbid_bare_newline_reject_code", bare_newline_reject_code, 400, 599);
    TIME("smtpd_timeout", timeout_s, 1);
    TIME("smtpd_error_sleep_time", error_sleep_ms, 1000);
    TIME("anvil_rate_time_unit", rate_unit_s, 1);
    BOOL("smtpd_forbid_unauth_pipelining", forbid_unauth_pipelining);
    BOOL("smtpd_helo_required", helo_required);
    BOOL("disable_vrfy_command", disable_vrfy);
    BOOL("smtputf8_enable", smtputf8_enable);
    BOOL("smtpd_client_port_logging", client_port_logging);
#undef INT
#undef TIME
#undef BOOL
    if (c->timeout_s < 1) {
	str_printf(err, "bad time configuration: smtpd_timeout must be at least 1s");
	goto fail;
    }
    v = smtpd_conf_value(get, ctx, "smtpd_forbid_bare_newline", &buf);
    if (strcasecmp(v, "normalize") == 0 || strcasecmp(v, "yes") == 0)
	c->bare_newline = SMTPD_BARE_LF_NORMALIZE;
    else if (strcasecmp(v, "reject") == 0)
	c->bare_newline = SMTPD_BARE_LF_REJECT;
    else if (strcasecmp(v, "no") == 0)
	c->bare_newline = SMTPD_BARE_LF_ALLOW;
    else {
	str_printf(err, "smtpd_forbid_bare_newline = %s: expected normalize, reject or no", v);
	goto fail;
    }
    c->tls_cert_file = mem_strdup(smtpd_conf_value(get, ctx, "smtpd_tls_cert_file", &buf));
    c->tls_key_file = mem_strdup(smtpd_conf_value(get, ctx, "smtpd_tls_key_file", &buf));
    v = smtpd_conf_value(get, ctx, "smtpd_tls_security_level", &buf);
    if (*v == 0 || strcasecmp(v, "none") == 0)
	c->tls_level = SMTPD_TLS_NONE;
    else if (strcasecmp(v, "may") == 0)
	c->tls_level = SMTPD_TLS_MAY;
    else if (strcasecmp(v, "encrypt") == 0)
	c->tls_level = SMTPD_TLS_ENCRYPT;
    else {
	str_printf(err, "smtpd_tls_security_level = %s: expected none, may or encrypt", v);
	goto fail;
    }
    if (c->tls_level != SMTPD_TLS_NONE) {
	if (*c->tls_cert_file == 0) {
	    if (c->tls_level == SMTPD_TLS_ENCRYPT) {
		str_printf(err, "smtpd_tls_security_level = encrypt needs smtpd_tls_cert_file");
		goto fail;
	    }
	    msg_warn("smtpd_tls_security_level = may without smtpd_tls_cert_file: STARTTLS is off");
	} else {
	    STR     terr = STR_INIT;

	    c->tls_ctx = smtpd_tls_ctx_new(c->tls_cert_file,
			       *c->tls_key_file ? c->tls_key_file : c->tls_cert_file, &terr);
	    if (c->tls_ctx == NULL) {
		str_printf(err, "TLS: %s", STR_DATA(&terr));
		str_release(&terr);
		goto fail;
	    }
	    str_release(&terr);
	}
    }
    if ((c->checks = smtpd_check_build(get, ctx, err)) == NULL)
	goto fail;
    str_release(&buf);
    return c;

fail:
    str_release(&buf);
    smtpd_config_free(c);
    return NULL;
}

void    smtpd_config_free(SMTPD_CONFIG *c)
{
    if (c == NULL)
	return;
    mem_free(c->myhostname);
    mem_free(c->banner);
    mem_free(c->tls_cert_file);
    mem_free(c->tls_key_file);
    if (c->tls_ctx)
	smtpd_tls_ctx_free(c->tls_ctx);
    smtpd_check_free(c->checks);
    mem_free(c);
}

/* ---- lists ---- */

static void list_init(CONN_LIST *l)
{
    l->head.next = l->head.prev = &l->head;
}

static bool list_empty(CONN_LIST *l)
{
    return l->head.next == &l->head;
}

static void list_remove(CONN *c)
{
    if (c->list == L_NONE)
	return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->list = L_NONE;
}

static void list_append(CONN_LIST *l, int which, CONN *c)
{
    list_remove(c);
    c->prev = l->head.prev;
    c->next = &l->head;
    l->head.prev->next = c;
    l->head.prev = c;
    c->list = which;
}

/* Progress: the timeout starts again. */
static void conn_touch(SMTPD_THREAD *t, CONN *c)
{
    c->deadline = time_mono_ns() + (int64_t) c->cfg->timeout_s * TIME_NS_PER_SEC;
    list_append(&t->run, L_RUN, c);
}

static void conn_interest(SMTPD_THREAD *t, CONN *c, uint32_t events)
{
    struct epoll_event ev = {.events = events,.data.ptr = c};

    if (events == c->events)
	return;
    if (epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
	msg_warn("epoll_ctl MOD fd %d: %m", c->fd);
    c->events = events;
}

static void conn_queue_run(SMTPD_THREAD *t, CONN *c)
{
    if (c->queued)
	return;
    c->queued = true;
    c->run_next = NULL;
    if (t->runq_tail)
	t->runq_tail->run_next = c;
    else
	t->runq_head = c;
    t->runq_tail = c;
}

/* ---- session I/O ---- */

static void conn_free(SMTPD_THREAD *t, CONN *c)
{
    list_remove(c);
    smtpd_proto_free(c->proto);
    smtpd_tls_free(c->tls);
    mem_free(c);
    t->nconns--;
    __atomic_sub_fetch(&t->smtpd->sessions, 1, __ATOMIC_RELAXED);
}

/* Closes now, frees at the end of the turn: a later event in the same
 * epoll batch may still name this session. */
static void conn_close(SMTPD_THREAD *t, CONN *c)
{
    if (c->dead)
	return;
    /*
     * EPOLL_CTL_DEL before close(): epoll tracks the open file, not the fd,
     * and a child forked meanwhile (local, pipe and virtual delivery fork)
     * keeps the file open, so close() alone would leave the registration
     * and a later event would name a freed session.
     */
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    list_remove(c);
    c->dead_next = t->dead;
    t->dead = c;
}

static void thread_free_dead(SMTPD_THREAD *t)
{
    CONN  **pp = &t->dead;

    while (*pp) {
	CONN   *c = *pp;

	if (c->queued) {		/* the run queue still names it */
	    pp = &c->dead_next;
	    continue;
	}
	*pp = c->dead_next;
	conn_free(t, c);
    }
}

static long conn_read(CONN *c, char *buf, size_t len)
{
    ssize_t n;

    if (c->tls)
	return smtpd_tls_read(c->tls, buf, len);
    for (;;) {
	n = recv(c->fd, buf, len, 0);
	if (n >= 0)
	    return (long) n;
	if (errno == EINTR)
	    continue;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
	    return SMTPD_TLS_WANT_READ;
	return SMTPD_TLS_ERROR;
    }
}

/* more: hold the bytes back (MSG_MORE) for what follows (the FIN). */
static long conn_write(CONN *c, const char *buf, size_t len, bool more)
{
    ssize_t n;

    if (c->tls)
	return smtpd_tls_write(c->tls, buf, len);
    for (;;) {
	n = send(c->fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
	if (n >= 0)
	    return (long) n;
	if (errno == EINTR)
	    continue;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
	    return SMTPD_TLS_WANT_WRITE;
	return SMTPD_TLS_ERROR;
    }
}

static void smtpd_done_cb(void *ctx, int code, const char *text);
static void conn_handshake(SMTPD_THREAD *t, CONN *c);

static int smtpd_pressure(SMTPD *s)
{
    return s->opts.pressure ? s->opts.pressure(s->opts.pressure_ctx) : SMTPD_PRESSURE_NONE;
}

/* Drives one session as far as it can go without waiting. */
static void conn_run(SMTPD_THREAD *t, CONN *c)
{
    SMTPD  *s = t->smtpd;
    SMTPD_PROTO *p = c->proto;
    bool    replied = false;

    for (int round = 0; round < SMTPD_ROUNDS; round++) {
	STR    *out = smtpd_proto_output(p);

	if (c->out_off < STR_LEN(out)) {
	    /*
	     * The last reply (221, 421) waits for the FIN that follows at
	     * once (shutdown below): one segment instead of two, for us and
	     * for the client.
	     */
	    bool    last = c->tls == NULL && smtpd_proto_event(p) == SMTPD_EV_CLOSE;
	    long    n = conn_write(c, STR_DATA(out) + c->out_off,
				   STR_LEN(out) - c->out_off, last);

	    c->held |= last;

	    if (n > 0) {
		c->out_off += (size_t) n;
		conn_touch(t, c);
		replied = true;
		continue;
	    }
	    if (n == SMTPD_TLS_WANT_WRITE || n == SMTPD_TLS_WANT_READ) {
		conn_interest(t, c, n == SMTPD_TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN);
		return;
	    }
	    /* The client went away while we answered. */
	    if (smtpd_proto_event(p) != SMTPD_EV_CLOSE)
		smtpd_proto_eof(p);
	    conn_close(t, c);
	    return;
	}
	if (STR_LEN(out) > 0) {
	    if (out->cap > 1024)
		str_release(out);
	    else
		str_reset(out);
	    c->out_off = 0;
	}
	switch (smtpd_proto_event(p)) {
	case SMTPD_EV_CLOSE:
	    /* Sends the held-back reply with the FIN (see above); a client
	     * that sent more still gets a reset from close(), as before. */
	    if (c->held)
		(void) shutdown(c->fd, SHUT_WR);
	    conn_close(t, c);
	    return;
	case SMTPD_EV_FLUSH:
	    smtpd_proto_resume(p);
	    continue;
	case SMTPD_EV_SLEEP:
	    c->state = S_SLEEP;
	    c->deadline = time_mono_ns() + (int64_t) smtpd_proto_sleep_ms(p) * 1000000;
	    list_append(&t->sleep, L_SLEEP, c);
	    conn_interest(t, c, 0);
	    return;
	case SMTPD_EV_STARTTLS:
	    c->tls = smtpd_tls_new(c->cfg->tls_ctx, c->fd);
	    c->state = S_HANDSHAKE;
	    conn_handshake(t, c);
	    return;
	case SMTPD_EV_SUBMIT:{
		TICKET *tk = MEM_NEW(TICKET);
		MESSAGE *m = smtpd_proto_take_message(p);

		tk->conn = c;
		c->state = S_PARKED;
		list_remove(c);
		/*
		 * The interest stays as it is: a client that waits for our
		 * reply sends nothing, and the 250 goes out without two
		 * epoll_ctl calls. One that talks while parked is muted
		 * when epoll reports it (smtpd_thread_main).
		 */
		s->opts.submit(m, smtpd_done_cb, tk);
		return;
	    }
	case SMTPD_EV_INPUT:
	    break;
	}
	if (smtpd_proto_has_input(p)) {
	    smtpd_proto_resume(p);
	    if (smtpd_proto_event(p) != SMTPD_EV_INPUT || STR_LEN(out) > 0
		|| !smtpd_proto_has_input(p))
		continue;
	}
	if (t->stopping) {
	    smtpd_proto_eof(p);
	    conn_close(t, c);
	    return;
	}
	if (smtpd_proto_wants_content(p) && smtpd_pressure(s) >= SMTPD_PRESSURE_SLOW) {
	    c->state = S_PAUSED;
	    list_append(&t->paused, L_PAUSED, c);
	    conn_interest(t, c, 0);
	    return;
	}
	/*
	 * Having just answered, a client that does not pipeline has nothing
	 * more to say yet: let epoll (level-triggered) tell us, rather than
	 * pay for a read that returns EAGAIN. Not with TLS, whose library may
	 * hold decrypted input that epoll cannot see.
	 */
	if (replied && c->tls == NULL) {
	    conn_interest(t, c, EPOLLIN);
	    return;
	}
	long    n = conn_read(c, t->rbuf, SMTPD_READ_BUF);

	if (n > 0) {
	    conn_touch(t, c);
	    smtpd_proto_input(p, t->rbuf, (size_t) n);
	    continue;
	}
	if (n == SMTPD_TLS_WANT_READ || n == SMTPD_TLS_WANT_WRITE) {
	    conn_interest(t, c, n == SMTPD_TLS_WANT_READ ? EPOLLIN : EPOLLOUT);
	    return;
	}
	smtpd_proto_eof(p);		/* EOF or error */
    }
    /* Used its turn: run again after the others. */
    conn_queue_run(t, c);
}

static void conn_handshake(SMTPD_THREAD *t, CONN *c)
{
    STR     err = STR_INIT;
    int     r = smtpd_tls_handshake(c->tls, &err);

    switch (r) {
    case SMTPD_TLS_OK:{
	    int     alg = 0, bits = smtpd_tls_bits(c->tls, &alg);
	    const char *ver = smtpd_tls_version(c->tls);
	    const char *cipher = smtpd_tls_cipher(c->tls);

	    STR     info = STR_INIT;

	    str_printf(&info, "%s with cipher %s (%d/%d bits)", ver, cipher, bits, alg);
	    msg_info("Anonymous TLS connection established from %s: %s",
		     smtpd_proto_namaddr(c->proto), STR_DATA(&info));
	    smtpd_proto_tls_done(c->proto, STR_DATA(&info));
	    str_release(&info);
	    c->state = S_RUN;
	    conn_touch(t, c);
	    conn_run(t, c);
	    break;
	}
    case SMTPD_TLS_WANT_READ:
	conn_touch(t, c);
	conn_interest(t, c, EPOLLIN);
	break;
    case SMTPD_TLS_WANT_WRITE:
	conn_touch(t, c);
	conn_interest(t, c, EPOLLOUT);
	break;
    default:
	smtpd_proto_tls_failed(c->proto, STR_DATA(&err));
	conn_close(t, c);
	break;
    }
    str_release(&err);
}

/* done() of the submit function: any thread. */
static void smtpd_done_cb(void *ctx, int code, const char *text)
{
    TICKET *tk = ctx;
    SMTPD_THREAD *t = tk->conn->thread;
    uint64_t one = 1;
    bool    was_empty;

    tk->code = code;
    tk->text = mem_strdup(text ? text : "");
    pthread_mutex_lock(&t->lock);
    was_empty = t->done_head == NULL;
    if (t->done_tail)
	t->done_tail->next = tk;
    else
	t->done_head = tk;
    t->done_tail = tk;
    pthread_mutex_unlock(&t->lock);
    /*
     * One wake-up per non-empty list: the thread reads the eventfd before
     * it takes the list, so a list that is not empty has a wake-up on its
     * way or a drain still to come.
     */
    if (was_empty && write(t->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	msg_warn("smtpd: eventfd write: %m");
}

/* ---- accepting ---- */

/* l: the listener that accepted fd, NULL for an adopted socket. */
static void conn_new(SMTPD_THREAD *t, int fd, const struct sockaddr_storage *ss,
		     const LISTENER *l)
{
    SMTPD  *s = t->smtpd;
    CONN   *c = MEM_NEW(CONN);
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    char    addr[INET6_ADDRSTRLEN + 1], laddr[INET6_ADDRSTRLEN + 1] = "";
    int     port = 0, lport, one = 1;
    SMTPD_HOOKS hooks = {
	.etrn = s->opts.etrn,.etrn_ctx = s->opts.etrn_ctx,
	.pressure = s->opts.pressure,.pressure_ctx = s->opts.pressure_ctx,
    };
    /* EPOLLIN from the start: after the greeting the session waits for
     * input anyway, and that saves an epoll_ctl per session. */
    struct epoll_event ev = {.events = EPOLLIN,.data.ptr = c};

    /* Two system calls per session saved when the listener tells. */
    if (l == NULL || !l->nodelay)
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_text(ss, addr, sizeof(addr), &port);
    if (l != NULL && l->laddr[0])
	snprintf(laddr, sizeof(laddr), "%s", l->laddr);
    else if (getsockname(fd, (struct sockaddr *) &local, &llen) == 0)
	sockaddr_text(&local, laddr, sizeof(laddr), &lport);
    bool    loopback = strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0;
    SMTPD_PEER peer = {
	.name = loopback ? "localhost" : "unknown",.addr = addr,.port = port,
	.local_addr = *laddr ? laddr : NULL,
    };

    c->kind = K_CONN;
    c->fd = fd;
    c->thread = t;
    c->state = S_RUN;
    c->events = EPOLLIN;
    /* A reload (smtpd_set_config) applies to the clients that come after. */
    c->cfg = __atomic_load_n(&s->cfg, __ATOMIC_ACQUIRE);
    c->proto = smtpd_proto_new(c->cfg, &peer, &hooks);
    t->nconns++;
    __atomic_add_fetch(&s->sessions, 1, __ATOMIC_RELAXED);
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
	msg_fatal("epoll_ctl ADD: %m");

    /* Anything already here was sent before the greeting. */
    long    n = recv(fd, t->rbuf, SMTPD_READ_BUF, MSG_DONTWAIT);

    smtpd_proto_greet(c->proto, t->rbuf, n > 0 ? (size_t) n : 0);
    if (n == 0)
	smtpd_proto_eof(c->proto);
    conn_touch(t, c);
    conn_run(t, c);
}

/*
 * One connection per listener event: the listener is level-triggered, so
 * the next epoll_wait reports it again while more wait, and the accept4()
 * that would return EAGAIN is saved (0.3 per message with 20 clients).
 */
static void smtpd_accept(SMTPD_THREAD *t, LISTENER *l)
{
    static int64_t last_warn;

    for (int k = 0; k < 8; k++) {
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int     fd = accept4(l->fd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
	    if (errno == EINTR || errno == ECONNABORTED)
		continue;
	    if (errno != EAGAIN && errno != EWOULDBLOCK) {
		int64_t now = time_mono_ns();

		if (now - __atomic_load_n(&last_warn, __ATOMIC_RELAXED) > TIME_NS_PER_SEC) {
		    __atomic_store_n(&last_warn, now, __ATOMIC_RELAXED);
		    msg_warn("accept: %m");
		}
	    }
	    return;
	}
	conn_new(t, fd, &ss, l);
	return;
    }
}

/* ---- the thread ---- */

static void thread_adopt(SMTPD_THREAD *t, ADOPTED *a)
{
    while (a) {
	ADOPTED *next = a->next;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (t->stopping || getpeername(a->fd, (struct sockaddr *) &ss, &len) < 0) {
	    close(a->fd);		/* stopping, or the client is gone */
	} else {
	    fcntl(a->fd, F_SETFL, fcntl(a->fd, F_GETFL) | O_NONBLOCK);
	    conn_new(t, a->fd, &ss, NULL);
	}
	mem_free(a);
	a = next;
    }
}

static void thread_drain_done(SMTPD_THREAD *t)
{
    TICKET *tk, *next;
    ADOPTED *adopted;
    uint64_t v;
    bool    pressure;

    if (read(t->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
	msg_warn("smtpd: eventfd read: %m");
    pthread_mutex_lock(&t->lock);
    tk = t->done_head;
    t->done_head = t->done_tail = NULL;
    adopted = t->adopted;
    t->adopted = NULL;
    pressure = t->wake_pressure;
    t->wake_pressure = false;
    t->stopping = t->stop;
    pthread_mutex_unlock(&t->lock);
    for (; tk; tk = next) {
	CONN   *c = tk->conn;

	next = tk->next;
	if (c->state != S_PARKED)
	    msg_panic("smtpd: submission done for a session that is not parked");
	c->state = S_RUN;
	smtpd_proto_submit_done(c->proto, tk->code, tk->text);
	mem_free(tk->text);
	mem_free(tk);
	conn_touch(t, c);
	conn_run(t, c);
    }
    if (pressure)
	t->next_pause_check = 0;
    thread_adopt(t, adopted);
}

static void thread_timers(SMTPD_THREAD *t)
{
    int64_t now = time_mono_ns();

    while (!list_empty(&t->run) && t->run.head.next->deadline <= now) {
	CONN   *c = t->run.head.next;

	if (c->state == S_HANDSHAKE) {
	    smtpd_proto_tls_failed(c->proto, "timeout");
	    conn_close(t, c);
	    continue;
	}
	smtpd_proto_timeout(c->proto);
	/* One try to write the 421; a client that does not read gets none. */
	STR    *out = smtpd_proto_output(c->proto);

	if (c->out_off < STR_LEN(out))
	    (void) conn_write(c, STR_DATA(out) + c->out_off, STR_LEN(out) - c->out_off, false);
	conn_close(t, c);
    }
    while (!list_empty(&t->sleep) && t->sleep.head.next->deadline <= now) {
	CONN   *c = t->sleep.head.next;

	c->state = S_RUN;
	smtpd_proto_resume(c->proto);
	conn_touch(t, c);
	conn_run(t, c);
    }
    if (!list_empty(&t->paused) && now >= t->next_pause_check) {
	t->next_pause_check = now + SMTPD_PAUSE_POLL_MS * 1000000LL;
	if (t->stopping || smtpd_pressure(t->smtpd) < SMTPD_PRESSURE_SLOW) {
	    /* Into the run queue: conn_run may pause them again. */
	    while (!list_empty(&t->paused)) {
		CONN   *c = t->paused.head.next;

		c->state = S_RUN;
		conn_touch(t, c);
		conn_queue_run(t, c);
	    }
	}
    }
}

static int thread_timeout_ms(SMTPD_THREAD *t)
{
    int64_t now = time_mono_ns(), next = INT64_MAX;

    if (t->runq_head)
	return 0;
    if (!list_empty(&t->run))
	next = t->run.head.next->deadline;
    if (!list_empty(&t->sleep) && t->sleep.head.next->deadline < next)
	next = t->sleep.head.next->deadline;
    if (!list_empty(&t->paused) && t->next_pause_check < next)
	next = t->next_pause_check;
    if (next == INT64_MAX)
	return -1;
    if (next <= now)
	return 0;
    int64_t ms = (next - now + 999999) / 1000000;

    return ms > 60000 ? 60000 : (int) ms;
}

static void thread_stop_sessions(SMTPD_THREAD *t)
{
    SMTPD  *s = t->smtpd;

    for (size_t i = 0; i < s->nlisteners; i++)
	epoll_ctl(t->epfd, EPOLL_CTL_DEL, s->listeners[i].fd, NULL);
    /* Parked sessions wait for their done(); everyone else goes now. */
    CONN_LIST *lists[] = {&t->run, &t->sleep, &t->paused};

    for (size_t k = 0; k < 3; k++)
	while (!list_empty(lists[k])) {
	    CONN   *c = lists[k]->head.next;

	    smtpd_proto_eof(c->proto);
	    conn_close(t, c);
	}
}

static void *smtpd_thread_main(void *arg)
{
    SMTPD_THREAD *t = arg;
    struct epoll_event evs[SMTPD_EVENTS];
    bool    stopped = false;

    msg_service_set("smtpd");
    (void) pthread_setname_np(pthread_self(), "smtpd");
    stage_thread_sched(false);
    for (;;) {
	int     n = epoll_wait(t->epfd, evs, SMTPD_EVENTS, thread_timeout_ms(t));

	if (n < 0 && errno != EINTR)
	    msg_fatal("epoll_wait: %m");
	/* The journal is woken once, after the whole batch (group commit). */
	stage_defer_begin();
	for (int i = 0; i < n; i++) {
	    int     kind = *(int *) evs[i].data.ptr;

	    if (kind == K_LISTEN) {
		if (!t->stopping)
		    smtpd_accept(t, evs[i].data.ptr);
	    } else if (kind == K_WAKE) {
		thread_drain_done(t);
	    } else {
		CONN   *c = evs[i].data.ptr;

		if (c->fd < 0 || c->queued)
		    continue;
		if (c->state == S_HANDSHAKE)
		    conn_handshake(t, c);
		else if (c->state == S_RUN)
		    conn_run(t, c);
		else
		    conn_interest(t, c, 0);	/* parked: input waits (level-triggered) */
	    }
	}
	/* Sessions that used up their turn. */
	CONN   *q = t->runq_head;

	t->runq_head = t->runq_tail = NULL;
	while (q) {
	    CONN   *next = q->run_next;

	    q->queued = false;
	    if (!q->dead && q->state == S_RUN)
		conn_run(t, q);
	    q = next;
	}
	thread_timers(t);
	thread_free_dead(t);
	stage_defer_end();
	if (t->stopping && !stopped) {
	    thread_stop_sessions(t);
	    stopped = true;
	    thread_free_dead(t);
	}
	if (stopped && t->nconns == 0)
	    break;
    }
    return NULL;
}

/* ---- start and stop ---- */

int     smtpd_listen_socket(const char *spec, STR *err)
{
    char    host[256] = "", port[32];
    const char *colon;
    struct addrinfo hints = {0}, *res, *ai;
    int     fd = -1, on = 1, r;

    if (spec[0] == '[') {
	const char *close = strchr(spec, ']');

	if (close == NULL || close[1] != ':' || (size_t) (close - spec - 1) >= sizeof(host)) {
	    str_printf(err, "bad listen address: %s", spec);
	    return -1;
	}
	memcpy(host, spec + 1, (size_t) (close - spec - 1));
	snprintf(port, sizeof(port), "%s", close + 2);
    } else if ((colon = strrchr(spec, ':')) != NULL) {
	if ((size_t) (colon - spec) >= sizeof(host)) {
	    str_printf(err, "bad listen address: %s", spec);
	    return -1;
	}
	memcpy(host, spec, (size_t) (colon - spec));
	snprintf(port, sizeof(port), "%s", colon + 1);
    } else
	snprintf(port, sizeof(port), "%s", spec);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if ((r = getaddrinfo(*host ? host : NULL, port, &hints, &res)) != 0) {
	str_printf(err, "listen address %s: %s", spec, gai_strerror(r));
	return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
	    continue;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (privsep_bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
	    break;
	close(fd);
	fd = -1;
    }
    if (fd < 0)
	str_printf(err, "cannot listen on %s: %m", spec);
    freeaddrinfo(res);
    return fd;
}

void    smtpd_set_config(SMTPD *s, const SMTPD_CONFIG *cfg)
{
    __atomic_store_n(&s->cfg, cfg, __ATOMIC_RELEASE);
}

/*
 * What every session of this listener would ask the kernel for: TCP_NODELAY
 * set here is inherited by accepted sockets (Linux), and a listener bound
 * to one address has that address as every session's local address.
 */
static void listener_prepare(LISTENER *l, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char    a[INET6_ADDRSTRLEN + 1];
    int     p, one = 1;

    l->nodelay = setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0;
    if (getsockname(l->fd, (struct sockaddr *) &ss, &len) != 0)
	return;
    sockaddr_text(&ss, a, sizeof(a), &p);
    if (port)
	*port = p;
    if ((ss.ss_family == AF_INET
	 && ((struct sockaddr_in *) &ss)->sin_addr.s_addr != htonl(INADDR_ANY))
	|| (ss.ss_family == AF_INET6
	    && !IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *) &ss)->sin6_addr)))
	snprintf(l->laddr, sizeof(l->laddr), "%s", a);
}

SMTPD  *smtpd_start(const SMTPD_OPTS *opts, STR *err)
{
    SMTPD  *s;

    if (opts->submit == NULL) {
	str_puts(err, "smtpd_start: no submit function");
	return NULL;
    }
    s = MEM_NEW(SMTPD);
    s->opts = *opts;
    if (opts->config)
	s->cfg = opts->config;
    else if ((s->own_config = smtpd_config_build(NULL, NULL, err)) == NULL) {
	mem_free(s);
	return NULL;
    } else
	s->cfg = s->own_config;
    s->nlisteners = opts->n_listen_fds + opts->n_listen;
    s->listeners = mem_calloc(s->nlisteners ? s->nlisteners : 1, sizeof(LISTENER));
    for (size_t i = 0; i < opts->n_listen_fds; i++) {
	s->listeners[i].kind = K_LISTEN;
	s->listeners[i].fd = opts->listen_fds[i];
	fcntl(opts->listen_fds[i], F_SETFL, fcntl(opts->listen_fds[i], F_GETFL) | O_NONBLOCK);
    }
    for (size_t i = 0; i < opts->n_listen; i++) {
	LISTENER *l = &s->listeners[opts->n_listen_fds + i];

	l->kind = K_LISTEN;
	l->owned = true;
	if ((l->fd = smtpd_listen_socket(opts->listen[i], err)) < 0) {
	    for (size_t k = 0; k < opts->n_listen_fds + i; k++)
		if (s->listeners[k].owned)
		    close(s->listeners[k].fd);
	    mem_free(s->listeners);
	    smtpd_config_free(s->own_config);
	    mem_free(s);
	    return NULL;
	}
    }
    for (size_t i = 0; i < s->nlisteners; i++)
	listener_prepare(&s->listeners[i], i == 0 ? &s->port : NULL);
    s->nthreads = opts->threads > 0 ? opts->threads : 1;
    s->threads = mem_calloc((size_t) s->nthreads, sizeof(SMTPD_THREAD));
    for (int i = 0; i < s->nthreads; i++) {
	SMTPD_THREAD *t = &s->threads[i];
	struct epoll_event ev;

	t->kind = K_WAKE;
	t->smtpd = s;
	pthread_mutex_init(&t->lock, NULL);
	list_init(&t->run);
	list_init(&t->sleep);
	list_init(&t->paused);
	t->rbuf = mem_alloc(SMTPD_READ_BUF);
	if ((t->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
	    msg_fatal("epoll_create1: %m");
	if ((t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
	    msg_fatal("eventfd: %m");
	ev.events = EPOLLIN;
	ev.data.ptr = t;
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->evfd, &ev) < 0)
	    msg_fatal("epoll_ctl: %m");
	for (size_t k = 0; k < s->nlisteners; k++) {
	    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	    ev.data.ptr = &s->listeners[k];
	    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->listeners[k].fd, &ev) < 0)
		msg_fatal("epoll_ctl listener: %m");
	}
    }
    for (int i = 0; i < s->nthreads; i++)
	if (pthread_create(&s->threads[i].tid, NULL, smtpd_thread_main, &s->threads[i]) != 0)
	    msg_fatal("pthread_create: %m");
    return s;
}

static void smtpd_kick(SMTPD *s, bool stop, bool pressure)
{
    uint64_t one = 1;

    for (int i = 0; i < s->nthreads; i++) {
	SMTPD_THREAD *t = &s->threads[i];

	pthread_mutex_lock(&t->lock);
	if (stop)
	    t->stop = true;
	if (pressure)
	    t->wake_pressure = true;
	pthread_mutex_unlock(&t->lock);
	if (write(t->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	    msg_warn("smtpd: eventfd write: %m");
    }
}

void    smtpd_wakeup(SMTPD *s)
{
    smtpd_kick(s, false, true);
}

void    smtpd_stop(SMTPD *s)
{
    if (s == NULL)
	return;
    smtpd_kick(s, true, false);
    for (int i = 0; i < s->nthreads; i++) {
	SMTPD_THREAD *t = &s->threads[i];

	pthread_join(t->tid, NULL);
	close(t->epfd);
	close(t->evfd);
	pthread_mutex_destroy(&t->lock);
	mem_free(t->rbuf);
    }
    for (size_t k = 0; k < s->nlisteners; k++)
	if (s->listeners[k].owned)
	    close(s->listeners[k].fd);
    mem_free(s->listeners);
    mem_free(s->threads);
    smtpd_config_free(s->own_config);
    mem_free(s);
}

size_t  smtpd_session_count(SMTPD *s)
{
    return __atomic_load_n(&s->sessions, __ATOMIC_RELAXED);
}

int     smtpd_port(SMTPD *s)
{
    return s->port;
}

int     smtpd_adopt(SMTPD *s, int fd)
{
    unsigned k = __atomic_fetch_add(&s->next_adopt, 1, __ATOMIC_RELAXED);
    SMTPD_THREAD *t = &s->threads[k % (unsigned) s->nthreads];
    ADOPTED *a;
    uint64_t one = 1;

    pthread_mutex_lock(&t->lock);
    if (t->stop) {
	pthread_mutex_unlock(&t->lock);
	return -1;
    }
    a = MEM_NEW(ADOPTED);
    a->fd = fd;
    a->next = t->adopted;
    t->adopted = a;
    pthread_mutex_unlock(&t->lock);
    if (write(t->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	msg_warn("smtpd: eventfd write: %m");
    return 0;
}
