/*
 * qmqpd.c - the QMQP server (see qmqpd.h).
 *
 * QMQP sessions are short (one message, then close) and rare next to SMTP,
 * so a blocking thread per connection, bounded in number, keeps the code
 * plain; socket timeouts (SO_RCVTIMEO/SO_SNDTIMEO) implement qmqpd_timeout.
 * Netstrings are read through a small buffered reader that counts the
 * bytes consumed, so the recipients can be checked against the length the
 * outer netstring declared.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "engine/config.h"
#include "engine/matchlist.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/sockaddr.h"
#include "engine/param.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "engine/privsep.h"
#include "queue/message.h"
#include "queue/queue_id.h"
#include "stages/qmqpd.h"
#include "stages/receive_service.h"

#define QMQPD_MAX_SERVICES	8
#define QMQPD_ENVELOPE_MAX	(16LL << 20)	/* sender + recipients, bytes */
#define QMQPD_MAX_DIGITS	12		/* netstring length digits */

/* Reader results. */
#define QM_OK		0
#define QM_EOF		1
#define QM_TIMEOUT	2
#define QM_FORMAT	3
#define QM_SIZE		4

typedef struct QMQPD_SERVER QMQPD_SERVER;

typedef struct QMQPD_CONN {
    struct QMQPD_CONN *next;
    QMQPD_SERVER *srv;
    int     fd;
    pthread_t thread;
    bool    finished;			/* thread done: may be joined */
    char    namaddr[INET6_ADDRSTRLEN + 32];
    char    addr[INET6_ADDRSTRLEN + 1];
    /* Buffered input. */
    char    buf[8192];
    size_t  pos, len;
    unsigned long long consumed;
    /* The cleanup stage's answer. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool    answered;
    int     code;
    char   *text;
} QMQPD_CONN;

struct QMQPD_SERVER {
    char   *service;			/* "628/inet", for param_service_* */
    int     lfd;
    int     wake[2];			/* pipe: wakes the acceptor at stop */
    pthread_t acceptor;
    MATCH_LIST *clients;
    int     timeout_s;
    int     error_delay_s;
    long long size_limit;
    int     line_limit;
    int     max_conns;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    QMQPD_CONN *conns;
    int     nconns;
    bool    stopping;
};

static QMQPD_SERVER *qmqpd_servers[QMQPD_MAX_SERVICES];
static size_t qmqpd_nservers;

/* ---- buffered netstring input ---- */

static int qm_fill(QMQPD_CONN *c)
{
    ssize_t n;

    do
	n = read(c->fd, c->buf, sizeof(c->buf));
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
	return QM_TIMEOUT;
    if (n <= 0)
	return QM_EOF;
    c->pos = 0;
    c->len = (size_t) n;
    return QM_OK;
}

static int qm_getc(QMQPD_CONN *c, int *ch)
{
    int     rc;

    if (c->pos == c->len && (rc = qm_fill(c)) != QM_OK)
	return rc;
    *ch = (unsigned char) c->buf[c->pos++];
    c->consumed++;
    return QM_OK;
}

/* "123:" -> 123, at most max; the digits are bounded before any use. */
static int qm_ns_length(QMQPD_CONN *c, unsigned long long max, unsigned long long *len)
{
    unsigned long long v = 0;
    int     ch, rc, ndigits = 0;

    for (;;) {
	if ((rc = qm_getc(c, &ch)) != QM_OK)
	    return rc;
	if (ch == ':' && ndigits > 0)
	    break;
	if (ch < '0' || ch > '9')
	    return QM_FORMAT;
	if (++ndigits > QMQPD_MAX_DIGITS)
	    return QM_SIZE;
	v = v * 10 + (unsigned long long) (ch - '0');
    }
    if (v > max)
	return QM_SIZE;
    *len = v;
    return QM_OK;
}

/* The payload and the ','; out grows with what really arrives. */
static int qm_ns_body(QMQPD_CONN *c, unsigned long long len, STR *out)
{
    int     ch, rc;

    str_reset(out);
    while (len > 0) {
	size_t  take;

	if (c->pos == c->len && (rc = qm_fill(c)) != QM_OK)
	    return rc;
	take = c->len - c->pos;
	if (take > len)
	    take = (size_t) len;
	str_append(out, c->buf + c->pos, take);
	c->pos += take;
	c->consumed += take;
	len -= take;
    }
    if ((rc = qm_getc(c, &ch)) != QM_OK)
	return rc;
    return ch == ',' ? QM_OK : QM_FORMAT;
}

static int qm_netstring(QMQPD_CONN *c, unsigned long long max, STR *out)
{
    unsigned long long len;
    int     rc;

    if ((rc = qm_ns_length(c, max, &len)) != QM_OK)
	return rc;
    return qm_ns_body(c, len, out);
}

/* ---- replies ---- */

static void qm_reply(QMQPD_CONN *c, int status, const char *text)
{
    STR     out = STR_INIT;
    size_t  off = 0;

    if (status != 'K' && c->srv->error_delay_s > 0) {
	struct timespec ts = {.tv_sec = c->srv->error_delay_s};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
	     /* void */ ;
    }
    str_printf(&out, "%zu:%c%s,", strlen(text) + 1, status, text);
    while (off < STR_LEN(&out)) {
	ssize_t n = write(c->fd, out.data + off, STR_LEN(&out) - off);

	if (n < 0 && errno == EINTR)
	    continue;
	if (n <= 0)
	    break;
	off += (size_t) n;
    }
    str_release(&out);
}

/* ---- one message ---- */

static void qm_done(void *ctx, int code, const char *text)
{
    QMQPD_CONN *c = ctx;

    pthread_mutex_lock(&c->lock);
    c->code = code;
    c->text = mem_strdup(text ? text : "");
    c->answered = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* LF (or CRLF) lines -> canonical CRLF; a leading "From " line is kept as
 * a header, as Postfix does. */
static BLOB *qm_content(const STR *raw)
{
    STR     out = STR_INIT;
    const char *p = STR_DATA(raw), *end = p + STR_LEN(raw);
    bool    first = true;

    str_reserve(&out, STR_LEN(raw) + STR_LEN(raw) / 32 + 16);
    while (p < end) {
	const char *nl = memchr(p, '\n', (size_t) (end - p));
	const char *eol = nl ? nl : end;
	size_t  len = (size_t) (eol - p);

	if (len > 0 && p[len - 1] == '\r')
	    len--;
	if (first) {
	    size_t  skip = strspn(p, ">");

	    first = false;
	    if (skip < len && len - skip >= 5 && memcmp(p + skip, "From ", 5) == 0)
		str_puts(&out, "X-Mailbox-Line: ");
	}
	str_append(&out, p, len);
	str_puts(&out, "\r\n");
	p = nl ? nl + 1 : end;
    }
    return blob_adopt(&out);
}

static const char *qm_where[] = {
    "receiving QMQP packet header", "receiving message content",
    "receiving sender address", "receiving recipient address",
};

/* No NUL, CR or LF in an envelope address (they would forge log lines). */
static bool qm_addr_ok(const STR *f)
{
    for (size_t i = 0; i < STR_LEN(f); i++)
	if (f->data[i] == 0 || f->data[i] == '\r' || f->data[i] == '\n')
	    return false;
    return true;
}

static void qm_receive(QMQPD_CONN *c)
{
    QMQPD_SERVER *s = c->srv;
    MESSAGE *m = message_new();
    STR     body = STR_INIT, field = STR_INIT;
    unsigned long long total, start, content_max;
    char    qid[QUEUE_ID_MAX];
    const char *bad = NULL;
    int     rc, where = 0;

    queue_id_next(m->queue_id);
    memcpy(qid, m->queue_id, QUEUE_ID_MAX);
    m->arrival_us = time_real_us();
    msg_info("%s: client=%s", qid, c->namaddr);

    /* Lengths are checked as they are read, before anything is kept. */
    content_max = s->size_limit > 0 ? (unsigned long long) s->size_limit : ~0ULL >> 2;
    if ((rc = qm_ns_length(c, content_max + QMQPD_ENVELOPE_MAX, &total)) != QM_OK)
	goto fail;
    start = c->consumed;
    where = 1;
    if ((rc = qm_netstring(c, content_max, &body)) != QM_OK)
	goto fail;
    where = 2;
    if ((rc = qm_netstring(c, (unsigned long long) s->line_limit, &field)) != QM_OK)
	goto fail;
    if (!qm_addr_ok(&field))
	bad = "Error: malformed sender address";
    mem_free(m->sender);
    m->sender = mem_strndup(STR_DATA(&field), STR_LEN(&field));
    where = 3;
    for (;;) {
	int     ch;

	if (c->consumed - start > total) {
	    rc = QM_FORMAT;
	    goto fail;
	}
	if (c->consumed - start == total) {
	    if ((rc = qm_getc(c, &ch)) != QM_OK)
		goto fail;
	    if (ch != ',') {
		rc = QM_FORMAT;
		goto fail;
	    }
	    break;
	}
	if ((rc = qm_netstring(c, (unsigned long long) s->line_limit, &field)) != QM_OK)
	    goto fail;
	if (!qm_addr_ok(&field))
	    bad = "Error: malformed recipient address";
	else
	    message_add_rcpt(m, STR_DATA(&field), STR_DATA(&field));
    }
    str_release(&field);
    if (bad == NULL && m->nrcpt == 0)
	bad = "Error: no recipients specified";
    if (bad) {
	msg_warn("%s: %s: %s", qid, c->namaddr, bad);
	qm_reply(c, 'D', bad);
	message_free(m);
	str_release(&body);
	return;
    }
    m->content = qm_content(&body);
    str_release(&body);
    mem_free(m->protocol);
    m->protocol = mem_strdup("QMQP");
    m->client_name = mem_strdup(strcmp(c->addr, "127.0.0.1") == 0
				|| strcmp(c->addr, "::1") == 0 ? "localhost" : "unknown");
    m->client_addr = mem_strdup(c->addr);

    receive_submit(m, qm_done, c);
    pthread_mutex_lock(&c->lock);
    while (!c->answered)
	pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
    if (c->code / 100 == 2) {
	STR     ok = STR_INIT;

	str_printf(&ok, "Ok: queued as %s", qid);
	qm_reply(c, 'K', STR_DATA(&ok));
	str_release(&ok);
    } else {
	msg_warn("%s: %s: %d %s", qid, c->namaddr, c->code, c->text);
	qm_reply(c, c->code / 100 == 4 ? 'Z' : 'D', c->text);
    }
    mem_free(c->text);
    c->text = NULL;
    return;

fail:
    message_free(m);
    str_release(&body);
    str_release(&field);
    {
	STR     why = STR_INIT;
	const char *reason = rc == QM_EOF ? "lost connection"
	    : rc == QM_TIMEOUT ? "read/write timeout"
	    : rc == QM_SIZE ? "netstring length exceeds storage limit"
	    : "netstring format error";

	str_printf(&why, "%s while %s", reason, qm_where[where]);
	msg_info("%s: %s: %s", qid, c->namaddr, STR_DATA(&why));
	if (rc == QM_FORMAT || rc == QM_SIZE)
	    qm_reply(c, 'D', STR_DATA(&why));
	str_release(&why);
    }
}

/* ---- connections ---- */

static void *qm_conn_main(void *arg)
{
    QMQPD_CONN *c = arg;
    QMQPD_SERVER *s = c->srv;
    struct timeval tv = {.tv_sec = s->timeout_s};
    int     ok;

    msg_service_set("qmqpd");
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    msg_info("connect from %s", c->namaddr);
    ok = s->clients ? match_list_match(s->clients, c->addr) : 0;
    if (ok > 0) {
	qm_receive(c);
    } else {
	STR     why = STR_INIT;

	if (ok < 0)
	    msg_warn("%s: qmqpd_authorized_clients: table lookup error", c->namaddr);
	str_printf(&why, "Error: %s is not authorized to use this service", c->namaddr);
	qm_reply(c, ok < 0 ? 'Z' : 'D', STR_DATA(&why));
	str_release(&why);
    }
    msg_info("disconnect from %s", c->namaddr);
    shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_lock(&s->lock);
    c->finished = true;
    s->nconns--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void qm_conn_free(QMQPD_CONN *c)
{
    close(c->fd);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    mem_free(c);
}

/* Joins finished connection threads; the server lock is held. */
static void qm_reap(QMQPD_SERVER *s)
{
    for (QMQPD_CONN **pp = &s->conns; *pp;) {
	QMQPD_CONN *c = *pp;

	if (c->finished) {
	    *pp = c->next;
	    pthread_join(c->thread, NULL);
	    qm_conn_free(c);
	} else {
	    pp = &c->next;
	}
    }
}

static void qm_accept_one(QMQPD_SERVER *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int     fd = accept4(s->lfd, (struct sockaddr *) &ss, &sl, SOCK_CLOEXEC);
    QMQPD_CONN *c;
    int     err;

    if (fd < 0) {
	if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
	    msg_warn("qmqpd: accept: %m");
	return;
    }
    c = MEM_NEW(QMQPD_CONN);
    c->srv = s;
    c->fd = fd;
    sockaddr_text(&ss, c->addr, sizeof(c->addr), NULL);
    snprintf(c->namaddr, sizeof(c->namaddr), "%s[%s]",
	     strcmp(c->addr, "127.0.0.1") == 0 || strcmp(c->addr, "::1") == 0
	     ? "localhost" : "unknown", c->addr);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_mutex_lock(&s->lock);
    s->nconns++;
    if ((err = pthread_create(&c->thread, NULL, qm_conn_main, c)) != 0) {
	s->nconns--;
	pthread_mutex_unlock(&s->lock);
	msg_warn("qmqpd: pthread_create: %s", strerror(err));
	qm_conn_free(c);
	return;
    }
    c->next = s->conns;
    s->conns = c;
    pthread_mutex_unlock(&s->lock);
}

static void *qm_acceptor(void *arg)
{
    QMQPD_SERVER *s = arg;

    msg_service_set("qmqpd");
    for (;;) {
	struct pollfd pfd[2] = {{.fd = s->lfd,.events = POLLIN}, {.fd = s->wake[0],.events = POLLIN}};

	/* At the connection limit, clients wait in the listen backlog. */
	pthread_mutex_lock(&s->lock);
	qm_reap(s);
	while (s->nconns >= s->max_conns && !s->stopping) {
	    pthread_cond_wait(&s->cond, &s->lock);
	    qm_reap(s);
	}
	bool    stop = s->stopping;

	pthread_mutex_unlock(&s->lock);
	if (stop)
	    break;
	if (poll(pfd, 2, 1000) < 0 && errno != EINTR)
	    msg_fatal("qmqpd: poll: %m");
	if (pfd[1].revents)
	    break;
	if (pfd[0].revents & POLLIN)
	    qm_accept_one(s);
    }
    return NULL;
}

/* ---- listeners ---- */

/* "host:port", "[v6]:port", "port" -> a bound, listening socket, or -1. */
static int qm_listen(const char *spec, STR *why)
{
    char    host[256] = "", port[64];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,.ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    int     fd = -1, one = 1, err;

    if (colon && (spec[0] != '[' || colon[-1] == ']')) {
	size_t  hl = (size_t) (colon - spec);

	if (spec[0] == '[' && hl >= 2) {
	    spec++;
	    hl -= 2;
	}
	if (hl >= sizeof(host))
	    hl = sizeof(host) - 1;
	memcpy(host, spec, hl);
	host[hl] = 0;
	snprintf(port, sizeof(port), "%s", colon + 1);
    } else {
	snprintf(port, sizeof(port), "%s", spec);
    }
    if (strspn(port, "0123456789") != strlen(port) || !*port) {
	struct servent *se = getservbyname(port, "tcp");

	snprintf(port, sizeof(port), "%d", se ? ntohs(se->s_port) : 628);
    }
    if (*host == 0)
	hints.ai_family = AF_INET;
    if ((err = getaddrinfo(*host ? host : NULL, port, &hints, &res)) != 0) {
	str_printf(why, "%s: %s", spec, gai_strerror(err));
	return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0
	|| privsep_bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
	str_printf(why, "bind %s: %s", spec, strerror(errno));
	if (fd >= 0)
	    close(fd);
	fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void qm_server_free(QMQPD_SERVER *s)
{
    if (s->lfd >= 0)
	close(s->lfd);
    if (s->wake[0] >= 0)
	close(s->wake[0]);
    if (s->wake[1] >= 0)
	close(s->wake[1]);
    match_list_free(s->clients);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    mem_free(s->service);
    mem_free(s);
}

static int qm_start_one(const MASTERCF_SERVICE *svc, const char *spec, STR *why)
{
    QMQPD_SERVER *s;
    STR     view = STR_INIT, err = STR_INIT;
    int     rc;

    if (qmqpd_nservers == QMQPD_MAX_SERVICES) {
	str_printf(why, "too many qmqpd listeners in master.cf");
	return -1;
    }
    s = MEM_NEW(QMQPD_SERVER);
    s->lfd = s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    str_printf(&view, "%s/inet", svc->name);
    s->service = str_steal(&view, NULL);
    s->timeout_s = (int) param_service_int(s->service, P_QMQPD_TIMEOUT);
    s->error_delay_s = (int) param_service_int(s->service, P_QMQPD_ERROR_DELAY);
    s->size_limit = param_service_int(s->service, P_MESSAGE_SIZE_LIMIT);
    s->line_limit = (int) param_service_int(s->service, P_LINE_LENGTH_LIMIT);
    s->max_conns = svc->maxproc > 0 ? svc->maxproc : (int) param_int(P_DEFAULT_PROCESS_LIMIT);
    s->clients = match_list_addrs("qmqpd_authorized_clients",
			 param_service_str(s->service, P_QMQPD_AUTHORIZED_CLIENTS), &err);
    if (s->clients == NULL) {
	str_printf(why, "qmqpd service %s: qmqpd_authorized_clients: %s", svc->name,
		   STR_DATA(&err));
	goto fail;
    }
    if ((s->lfd = qm_listen(spec, &err)) < 0) {
	str_printf(why, "qmqpd service %s: %s", svc->name, STR_DATA(&err));
	goto fail;
    }
    if (pipe2(s->wake, O_CLOEXEC) < 0) {
	str_printf(why, "pipe: %s", strerror(errno));
	goto fail;
    }
    if ((rc = pthread_create(&s->acceptor, NULL, qm_acceptor, s)) != 0) {
	str_printf(why, "pthread_create: %s", strerror(rc));
	goto fail;
    }
    qmqpd_servers[qmqpd_nservers++] = s;
    str_release(&err);
    return 0;

fail:
    str_release(&err);
    qm_server_free(s);
    return -1;
}

static void qm_stop_one(QMQPD_SERVER *s)
{
    char    x = 1;

    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (write(s->wake[1], &x, 1) < 0)
	msg_warn("qmqpd: wake-up pipe: %m");
    pthread_join(s->acceptor, NULL);
    /* Stop reading from clients; a reply still being waited for is sent. */
    pthread_mutex_lock(&s->lock);
    for (QMQPD_CONN *c = s->conns; c; c = c->next)
	if (!c->finished)
	    shutdown(c->fd, SHUT_RD);
    pthread_mutex_unlock(&s->lock);
    for (QMQPD_CONN *c = s->conns, *next; c; c = next) {
	next = c->next;
	pthread_join(c->thread, NULL);
	qm_conn_free(c);
    }
    s->conns = NULL;
    qm_server_free(s);
}

/* ---- the component ---- */

static void qmqpd_stop(void)
{
    while (qmqpd_nservers > 0)
	qm_stop_one(qmqpd_servers[--qmqpd_nservers]);
}

static int qmqpd_start(STR *why)
{
    const MASTERCF *mcf = config_mastercf(config_current());

    for (size_t i = 0; mcf && i < mcf->count; i++) {
	const MASTERCF_SERVICE *svc = &mcf->svc[i];

	if (strcmp(svc->type, "inet") != 0 || strcmp(svc->command, "qmqpd") != 0)
	    continue;
	if (strchr(svc->name, ':')) {		/* "host:port": that address only */
	    if (qm_start_one(svc, svc->name, why) < 0)
		goto fail;
	    continue;
	}
	/* A port: one listener per inet_interfaces address. */
	size_t  nif;
	char  **ifaces = config_list_split(param_str(P_INET_INTERFACES), &nif);
	int     rc = 0;

	for (size_t k = 0; k < nif && rc == 0; k++) {
	    STR     spec = STR_INIT;

	    if (strcmp(ifaces[k], "all") == 0)
		str_printf(&spec, "%s", svc->name);
	    else if (strcmp(ifaces[k], "loopback-only") == 0 || strcmp(ifaces[k], "localhost") == 0)
		str_printf(&spec, "127.0.0.1:%s", svc->name);
	    else if (strchr(ifaces[k], ':'))
		str_printf(&spec, "[%s]:%s", ifaces[k], svc->name);
	    else
		str_printf(&spec, "%s:%s", ifaces[k], svc->name);
	    rc = qm_start_one(svc, STR_DATA(&spec), why);
	    str_release(&spec);
	    if (strcmp(ifaces[k], "all") == 0)
		break;
	}
	if (nif == 0)
	    rc = qm_start_one(svc, svc->name, why);
	config_list_free(ifaces);
	if (rc < 0)
	    goto fail;
    }
    return 0;

fail:
    qmqpd_stop();
    return -1;
}

const ENGINE_COMPONENT qmqpd_component = {"qmqpd", qmqpd_start, qmqpd_stop, NULL};
