/*
 * postscreen.c - the postscreen thread: listeners, the access list, the
 * temporary allowlist, the pregreet and DNSBL tests, the dummy SMTP engine
 * for enforced clients, and the hand-off to smtpd (see postscreen.h).
 *
 * A session sits in one of three FIFO timer lists, each ordered by
 * deadline because every entry gets the same delay: "tests" (the greet
 * wait), "dnswait" (DNSBL answers still due, up to postscreen_dnsbl_timeout
 * from the connection) and "dummy" (smtpd_timeout, moved to the tail on
 * progress). Replies are short and the dummy engine answers one command at
 * a time, so a session's output is a small buffer written as the socket
 * takes it.
 *
 * The temporary allowlist stores, per client address, the wall-clock time
 * (seconds) until which the client counts as passed: now +
 * postscreen_greet_ttl, or postscreen_dnsbl_max_ttl when DNSBL sites are
 * configured and that is shorter. Entries expired for longer than
 * postscreen_cache_retention_time are removed at start.
 *
 * Threading: everything runs on the postscreen thread; start/stop wake it
 * through an eventfd. Diagnostics: Postfix's postscreen log lines
 * (msg_service "postscreen"); configuration errors from postscreen_start().
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "engine/config.h"
#include "engine/dict.h"
#include "engine/matchlist.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/sockaddr.h"
#include "engine/param.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "stages/delivery_log.h"
#include "stages/postscreen.h"
#include "stages/screen_cache.h"
#include "stages/smtpd.h"

#define PSC_EVENTS	128
#define PSC_LINE_MAX	2048		/* dummy engine command line */
#define PSC_OUT_MAX	8192		/* a client that does not read */
#define PSC_PREGREET_LOG 100		/* characters of pregreet text logged */

enum psc_kind { PK_LISTEN = 1, PK_WAKE, PK_DNS, PK_SESS };

enum psc_action { PSC_IGNORE, PSC_ENFORCE, PSC_DROP };

enum psc_acl { ACL_DUNNO, ACL_PERMIT, ACL_REJECT };

enum psc_state { PS_TESTS, PS_DUMMY };

typedef struct PSC_ACL_ITEM {
    enum { AI_MYNETWORKS, AI_PERMIT, AI_REJECT, AI_DUNNO, AI_TABLE } type;
    DICT   *dict;
} PSC_ACL_ITEM;

typedef struct PSC_SESS PSC_SESS;

typedef struct PSC_LIST {
    PSC_SESS *head, *tail;
} PSC_LIST;

struct PSC_SESS {
    int     kind;			/* PK_SESS, first for epoll dispatch */
    int     fd;
    POSTSCREEN *ps;
    PSC_SESS *prev, *next;		/* in tests or dummy */
    PSC_LIST *list;
    PSC_SESS *dead_next;		/* freed at the end of the loop turn */
    bool    dead;
    enum psc_state state;
    char    addr[64];
    int     port;
    char    addrport[80];		/* "[ip]:port" */
    int64_t start_ns;
    int64_t deadline_ns;
    bool    greet_done;			/* the greet wait is over */
    bool    pregreet;			/* failed the pregreet test */
    bool    denylisted;
    bool    dnsbl_fail;
    bool    enforce;			/* a failed test says: dummy engine */
    char   *enforce_reply;		/* "550 5.7.1 ..." for RCPT */
    PSC_DNSBL_SCORE dnsbl;
    /* dummy engine */
    STR     line;
    bool    line_overflow;
    STR     out;
    size_t  out_off;
    bool    close_after;		/* QUIT answered / dropped */
    char   *helo;
    char   *sender;
    bool    esmtp;
};

struct POSTSCREEN {
    POSTSCREEN_OPTS opts;
    char   *service;
    int     epfd;
    int     evfd;
    int     kind_wake;			/* PK_WAKE */
    int     kind_dns;			/* PK_DNS */
    int    *listen_fds;
    int    *listen_kinds;		/* PK_LISTEN, one per listener */
    size_t  nlisten;
    int     port;
    pthread_t tid;
    bool    stop;			/* atomic */
    PSC_LIST tests, dnswait, dummy;
    PSC_SESS *dead;
    size_t  nsess;
    /* configuration */
    int64_t greet_wait_ns;
    int64_t dnsbl_timeout_ns;
    int64_t idle_ns;			/* dummy engine: smtpd_timeout */
    long    greet_ttl;
    long    dnsbl_ttl;
    enum psc_action greet_action, dnsbl_action, deny_action;
    int     dnsbl_threshold;
    char   *banner;
    char   *myhostname;
    PSC_ACL_ITEM *acl;
    size_t  nacl;
    MATCH_LIST *mynetworks;
    PSC_DNSBL *dnsbl;
    SCREEN_CACHE *cache;
};

/* ---- configuration ---- */

static const char *psc_param(POSTSCREEN *ps, param_id id)
{
    return param_service_str(ps->service, id);
}

static int psc_action(const char *name, const char *value, enum psc_action *out, STR *err)
{
    if (strcasecmp(value, "ignore") == 0)
	*out = PSC_IGNORE;
    else if (strcasecmp(value, "enforce") == 0)
	*out = PSC_ENFORCE;
    else if (strcasecmp(value, "drop") == 0)
	*out = PSC_DROP;
    else {
	str_printf(err, "%s = %s: expected ignore, enforce or drop", name, value);
	return -1;
    }
    return 0;
}

static int psc_build_acl(POSTSCREEN *ps, STR *err)
{
    char  **items = config_list_split(psc_param(ps, P_POSTSCREEN_ACCESS_LIST), NULL);
    int     rc = 0;

    for (size_t i = 0; items[i] && rc == 0; i++) {
	PSC_ACL_ITEM it = {0};
	const char *s = items[i];

	if (strcasecmp(s, "permit_mynetworks") == 0)
	    it.type = AI_MYNETWORKS;
	else if (strcasecmp(s, "permit") == 0)
	    it.type = AI_PERMIT;
	else if (strcasecmp(s, "reject") == 0)
	    it.type = AI_REJECT;
	else if (strcasecmp(s, "dunno") == 0)
	    it.type = AI_DUNNO;
	else if (strchr(s, ':')) {
	    STR     derr = STR_INIT;

	    it.type = AI_TABLE;
	    if (strncmp(s, "proxy:", 6) == 0)	/* one shared table service already */
		s += 6;
	    if ((it.dict = dict_open(s, DICT_FLAG_NONE, &derr)) == NULL) {
		str_printf(err, "postscreen_access_list: %s: %s", s, STR_DATA(&derr));
		rc = -1;
	    }
	    str_release(&derr);
	} else {
	    str_printf(err, "postscreen_access_list: unknown command \"%s\"", s);
	    rc = -1;
	}
	if (rc == 0) {
	    ps->acl = mem_realloc(ps->acl, (ps->nacl + 1) * sizeof(*ps->acl));
	    ps->acl[ps->nacl++] = it;
	}
    }
    config_list_free(items);
    return rc;
}

/* Only the words permit, reject and dunno may come out of a table. */
static enum psc_acl psc_acl_value(POSTSCREEN *ps, DICT *d, const char *value)
{
    char  **words = config_list_split(value, NULL);
    enum psc_acl r = ACL_DUNNO;

    for (size_t i = 0; words[i]; i++) {
	if (strcasecmp(words[i], "permit") == 0) {
	    r = ACL_PERMIT;
	    break;
	}
	if (strcasecmp(words[i], "reject") == 0) {
	    r = ACL_REJECT;
	    break;
	}
	if (strcasecmp(words[i], "dunno") == 0)
	    break;
	msg_warn("%s: unexpected access list result \"%s\" (expected permit, reject or "
		 "dunno); ignored", dict_name(d), words[i]);
	(void) ps;
    }
    config_list_free(words);
    return r;
}

static enum psc_acl psc_acl_check(POSTSCREEN *ps, const char *addr)
{
    STR     val = STR_INIT;
    enum psc_acl r = ACL_DUNNO;

    for (size_t i = 0; i < ps->nacl && r == ACL_DUNNO; i++) {
	const PSC_ACL_ITEM *it = &ps->acl[i];

	switch (it->type) {
	case AI_MYNETWORKS:
	    if (ps->mynetworks && match_list_match(ps->mynetworks, addr) > 0)
		r = ACL_PERMIT;
	    break;
	case AI_PERMIT:
	    r = ACL_PERMIT;
	    break;
	case AI_REJECT:
	    r = ACL_REJECT;
	    break;
	case AI_DUNNO:
	    /* Outside a table, dunno ends the search. */
	    str_release(&val);
	    return ACL_DUNNO;
	case AI_TABLE:{
		int     found = dict_lookup(it->dict, addr, &val);

		if (found == DICT_FOUND)
		    r = psc_acl_value(ps, it->dict, STR_DATA(&val));
		else if (found == DICT_ERR)
		    msg_warn("postscreen_access_list: %s lookup error for %s",
			     dict_name(it->dict), addr);
		break;
	    }
	}
    }
    str_release(&val);
    return r;
}

/* ---- timer lists ---- */

static void psc_list_remove(PSC_SESS *s)
{
    PSC_LIST *l = s->list;

    if (l == NULL)
	return;
    if (s->prev)
	s->prev->next = s->next;
    else
	l->head = s->next;
    if (s->next)
	s->next->prev = s->prev;
    else
	l->tail = s->prev;
    s->prev = s->next = NULL;
    s->list = NULL;
}

static void psc_list_append(PSC_LIST *l, PSC_SESS *s, int64_t deadline)
{
    psc_list_remove(s);
    s->deadline_ns = deadline;
    s->prev = l->tail;
    s->next = NULL;
    if (l->tail)
	l->tail->next = s;
    else
	l->head = s;
    l->tail = s;
    s->list = l;
}

/* ---- sessions ---- */

static void psc_interest(PSC_SESS *s, uint32_t events)
{
    struct epoll_event ev = {.events = events,.data.ptr = s};

    if (epoll_ctl(s->ps->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
	msg_warn("postscreen: epoll_ctl: %m");
}

/*
 * Ends the session; the socket is closed unless it was handed off. The
 * memory goes at the end of the loop turn, so that an event for it later
 * in the same epoll batch finds it marked dead.
 */
static void psc_free(PSC_SESS *s, bool close_fd)
{
    POSTSCREEN *ps = s->ps;

    if (s->dead)
	msg_panic("postscreen: session freed twice");
    s->dead = true;
    psc_list_remove(s);
    if (ps->dnsbl && s->dnsbl.nids)
	psc_dnsbl_cancel(ps->dnsbl, &s->dnsbl);
    epoll_ctl(ps->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    if (close_fd)
	close(s->fd);
    str_release(&s->line);
    str_release(&s->out);
    mem_free(s->enforce_reply);
    mem_free(s->helo);
    mem_free(s->sender);
    s->dead_next = ps->dead;
    ps->dead = s;
    ps->nsess--;
}

static void psc_free_dead(POSTSCREEN *ps)
{
    while (ps->dead) {
	PSC_SESS *s = ps->dead;

	ps->dead = s->dead_next;
	mem_free(s);
    }
}

static void psc_handoff(PSC_SESS *s)
{
    POSTSCREEN *ps = s->ps;
    int     fd = s->fd;

    /* Out of our epoll set before another thread owns the socket. */
    epoll_ctl(ps->epfd, EPOLL_CTL_DEL, fd, NULL);
    psc_free(s, false);
    if (ps->opts.handoff(ps->opts.handoff_ctx, fd) < 0) {
	static const char busy[] = "421 4.3.2 All server ports are busy\r\n";

	msg_warn("postscreen: cannot hand off the connection to service %s",
		 param_str(P_SMTPD_SERVICE_NAME));
	(void) send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
    }
}

/* Writes what it can; false when the client is gone. */
static bool psc_flush(PSC_SESS *s)
{
    while (s->out_off < STR_LEN(&s->out)) {
	ssize_t n = send(s->fd, STR_DATA(&s->out) + s->out_off,
			 STR_LEN(&s->out) - s->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n > 0) {
	    s->out_off += (size_t) n;
	    continue;
	}
	if (n < 0 && errno == EINTR)
	    continue;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
	    psc_interest(s, EPOLLOUT);
	    return true;
	}
	return false;
    }
    str_reset(&s->out);
    s->out_off = 0;
    return true;
}

static void psc_reply(PSC_SESS *s, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void psc_reply(PSC_SESS *s, const char *fmt,...)
{
    va_list ap;

    va_start(ap, fmt);
    str_vprintf(&s->out, fmt, ap);
    va_end(ap);
    str_append(&s->out, "\r\n", 2);
}

/* drop: one reply, then the end. */
static void psc_drop(PSC_SESS *s, const char *reply)
{
    psc_reply(s, "%s", reply);
    (void) psc_flush(s);
    psc_free(s, true);
}

/* Postfix's escape(): what the client sent, printable, C-style. */
static void psc_escape(STR *out, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && STR_LEN(out) < PSC_PREGREET_LOG; i++) {
	unsigned char c = (unsigned char) buf[i];

	switch (c) {
	case '\r':
	    str_puts(out, "\\r");
	    break;
	case '\n':
	    str_puts(out, "\\n");
	    break;
	case '\t':
	    str_puts(out, "\\t");
	    break;
	case '\\':
	    str_puts(out, "\\\\");
	    break;
	default:
	    if (c >= 0x20 && c < 0x7f)
		str_putc(out, (char) c);
	    else
		str_printf(out, "\\%03o", c);
	}
    }
    if (STR_LEN(out) > PSC_PREGREET_LOG)
	str_truncate(out, PSC_PREGREET_LOG);
}

static void psc_elapsed(STR *out, PSC_SESS *s)
{
    delivery_log_delay(out, time_mono_ns() - s->start_ns);
}

/* ---- the dummy SMTP engine (enforced clients) ---- */

static void psc_dummy_start(PSC_SESS *s)
{
    POSTSCREEN *ps = s->ps;

    s->state = PS_DUMMY;
    /* The rest of the multi-line greeting. */
    psc_reply(s, "220 %s", ps->banner);
    psc_list_append(&ps->dummy, s, time_mono_ns() + ps->idle_ns);
    if (!psc_flush(s)) {
	msg_info("DISCONNECT %s", s->addrport);
	psc_free(s, true);
	return;
    }
    if (STR_LEN(&s->out) == 0)
	psc_interest(s, EPOLLIN);
}

static char *psc_path(const char *arg)
{
    const char *lt = strchr(arg, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;

    if (lt && gt)
	return mem_strndup(lt + 1, (size_t) (gt - lt - 1));
    while (*arg == ' ')
	arg++;
    return mem_strndup(arg, strcspn(arg, " "));
}

static void psc_dummy_command(PSC_SESS *s, char *line)
{
    POSTSCREEN *ps = s->ps;
    char   *arg = line + strcspn(line, " ");

    if (*arg)
	*arg++ = 0;
    if (strcasecmp(line, "EHLO") == 0 || strcasecmp(line, "HELO") == 0) {
	mem_free(s->helo);
	s->helo = mem_strdup(arg);
	s->esmtp = toupper((unsigned char) line[0]) == 'E';
	if (s->esmtp)
	    psc_reply(s, "250-%s\r\n250-PIPELINING\r\n250-SIZE\r\n250-ENHANCEDSTATUSCODES\r\n"
		      "250 8BITMIME", ps->myhostname);
	else
	    psc_reply(s, "250 %s", ps->myhostname);
    } else if (strcasecmp(line, "MAIL") == 0) {
	if (strncasecmp(arg, "FROM:", 5) != 0) {
	    psc_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
	    return;
	}
	mem_free(s->sender);
	s->sender = psc_path(arg + 5);
	psc_reply(s, "250 2.1.0 Ok");
    } else if (strcasecmp(line, "RCPT") == 0) {
	if (s->sender == NULL) {
	    psc_reply(s, "503 5.5.1 Error: need MAIL command");
	    return;
	}
	if (strncasecmp(arg, "TO:", 3) != 0) {
	    psc_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
	    return;
	}
	char   *rcpt = psc_path(arg + 3);

	msg_info("NOQUEUE: reject: RCPT from %s: %s; from=<%s>, to=<%s>, proto=%s, helo=<%s>",
		 s->addrport, s->enforce_reply, s->sender, rcpt,
		 s->esmtp ? "ESMTP" : "SMTP", s->helo ? s->helo : "");
	psc_reply(s, "%s", s->enforce_reply);
	mem_free(rcpt);
    } else if (strcasecmp(line, "DATA") == 0 || strcasecmp(line, "BDAT") == 0) {
	psc_reply(s, "554 5.5.1 Error: no valid recipients");
    } else if (strcasecmp(line, "RSET") == 0) {
	mem_free(s->sender);
	s->sender = NULL;
	psc_reply(s, "250 2.0.0 Ok");
    } else if (strcasecmp(line, "NOOP") == 0) {
	psc_reply(s, "250 2.0.0 Ok");
    } else if (strcasecmp(line, "QUIT") == 0) {
	psc_reply(s, "221 2.0.0 Bye");
	s->close_after = true;
    } else {
	psc_reply(s, "502 5.5.2 Error: command not recognized");
    }
}

static void psc_dummy_input(PSC_SESS *s, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && !s->close_after; i++) {
	if (buf[i] != '\n') {
	    if (STR_LEN(&s->line) < PSC_LINE_MAX)
		str_putc(&s->line, buf[i]);
	    else
		s->line_overflow = true;
	    continue;
	}
	if (STR_LEN(&s->line) && s->line.data[STR_LEN(&s->line) - 1] == '\r')
	    str_truncate(&s->line, STR_LEN(&s->line) - 1);
	if (s->line_overflow)
	    psc_reply(s, "500 5.5.0 Error: line too long");
	else
	    psc_dummy_command(s, s->line.data ? s->line.data : (char *) "");
	str_reset(&s->line);
	s->line_overflow = false;
    }
}

static void psc_dummy_event(PSC_SESS *s, uint32_t events)
{
    POSTSCREEN *ps = s->ps;
    char    buf[4096];

    if (STR_LEN(&s->out) > 0) {
	if (!psc_flush(s))
	    goto gone;
	if (STR_LEN(&s->out) > 0)
	    return;
	if (s->close_after)
	    goto gone;
	psc_interest(s, EPOLLIN);
	return;
    }
    (void) events;
    ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
	return;
    if (n <= 0)
	goto gone;
    psc_list_append(&ps->dummy, s, time_mono_ns() + ps->idle_ns);
    psc_dummy_input(s, buf, (size_t) n);
    if (STR_LEN(&s->out) > PSC_OUT_MAX || !psc_flush(s))
	goto gone;
    if (STR_LEN(&s->out) == 0 && s->close_after)
	goto gone;
    return;

gone:
    msg_info("DISCONNECT %s", s->addrport);
    psc_free(s, true);
}

/* ---- the tests ---- */

static void psc_cache_pass(PSC_SESS *s)
{
    POSTSCREEN *ps = s->ps;
    long    ttl = ps->greet_ttl;
    char    val[32];

    if (ps->dnsbl && psc_dnsbl_nsites(ps->dnsbl) > 0 && ps->dnsbl_ttl < ttl)
	ttl = ps->dnsbl_ttl;
    snprintf(val, sizeof(val), "%lld", (long long) time(NULL) + ttl);
    screen_cache_put(ps->cache, s->addr, val);
}

/* The greet wait is over and the DNSBL answers are in (or too late). */
static void psc_conclude(PSC_SESS *s)
{
    POSTSCREEN *ps = s->ps;

    if (ps->dnsbl && s->dnsbl.nids)
	psc_dnsbl_cancel(ps->dnsbl, &s->dnsbl);
    if (s->dnsbl.score >= ps->dnsbl_threshold && s->dnsbl.site) {
	STR     reply = STR_INIT;

	s->dnsbl_fail = true;
	msg_info("DNSBL rank %d for %s", s->dnsbl.score, s->addrport);
	str_printf(&reply, "5%s 5.7.1 Service unavailable; client [%s] blocked using %s",
		   ps->dnsbl_action == PSC_DROP ? "21" : "50", s->addr, s->dnsbl.site);
	if (ps->dnsbl_action == PSC_DROP) {
	    psc_drop(s, STR_DATA(&reply));
	    str_release(&reply);
	    return;
	}
	if (ps->dnsbl_action == PSC_ENFORCE && !s->enforce) {
	    s->enforce = true;
	    mem_free(s->enforce_reply);
	    s->enforce_reply = str_steal(&reply, NULL);
	}
	str_release(&reply);
    }
    if (s->enforce) {
	psc_dummy_start(s);
	return;
    }
    if (!s->pregreet && !s->dnsbl_fail && !s->denylisted) {
	msg_info("PASS NEW %s", s->addrport);
	psc_cache_pass(s);
    }
    psc_handoff(s);
}

static void psc_dnsbl_done(PSC_DNSBL_SCORE *sc)
{
    PSC_SESS *s = sc->owner;

    if (s->greet_done)
	psc_conclude(s);
}

static void psc_greet_expired(PSC_SESS *s)
{
    POSTSCREEN *ps = s->ps;
    int64_t limit = s->start_ns + ps->dnsbl_timeout_ns;

    s->greet_done = true;
    if (s->dnsbl.pending > 0 && time_mono_ns() < limit) {
	/* Keep waiting for the DNSBL answers, up to postscreen_dnsbl_timeout. */
	psc_list_append(&ps->dnswait, s, limit);
	return;
    }
    psc_conclude(s);
}

/* Input while the client should be listening. */
static void psc_tests_event(PSC_SESS *s)
{
    POSTSCREEN *ps = s->ps;
    char    buf[4096];
    ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
	return;
    if (n <= 0) {
	STR     t = STR_INIT;

	psc_elapsed(&t, s);
	msg_info("HANGUP after %s from %s in tests before SMTP handshake",
		 STR_DATA(&t), s->addrport);
	str_release(&t);
	psc_free(s, true);
	return;
    }
    if (s->pregreet || s->greet_done)
	return;				/* already judged: discard the rest */
    STR     t = STR_INIT, text = STR_INIT;

    s->pregreet = true;
    psc_elapsed(&t, s);
    psc_escape(&text, buf, (size_t) n);
    msg_info("PREGREET %zd after %s from %s: %s", n, STR_DATA(&t), s->addrport,
	     STR_DATA(&text));
    str_release(&t);
    str_release(&text);
    if (ps->greet_action == PSC_DROP) {
	psc_drop(s, "521 5.5.1 Protocol error");
	return;
    }
    if (ps->greet_action == PSC_ENFORCE && !s->enforce) {
	s->enforce = true;
	s->enforce_reply = mem_strdup("550 5.5.1 Protocol error");
    }
}

static bool psc_cached(POSTSCREEN *ps, const char *addr)
{
    STR     val = STR_INIT;
    bool    ok = false;

    if (screen_cache_get(ps->cache, addr, &val))
	ok = strtoll(STR_DATA(&val), NULL, 10) > (long long) time(NULL);
    str_release(&val);
    return ok;
}

static void psc_new(POSTSCREEN *ps, int fd, const struct sockaddr_storage *ss)
{
    PSC_SESS *s = MEM_NEW(PSC_SESS);
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    char    laddr[64] = "unknown";
    int     lport = 0;
    struct epoll_event ev = {.events = EPOLLIN,.data.ptr = s};

    s->kind = PK_SESS;
    s->fd = fd;
    s->ps = ps;
    s->start_ns = time_mono_ns();
    s->dnsbl.owner = s;
    sockaddr_text(ss, s->addr, sizeof(s->addr), &s->port);
    snprintf(s->addrport, sizeof(s->addrport), "[%s]:%d", s->addr, s->port);
    if (getsockname(fd, (struct sockaddr *) &local, &llen) == 0)
	sockaddr_text(&local, laddr, sizeof(laddr), &lport);
    ps->nsess++;
    if (epoll_ctl(ps->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
	msg_warn("postscreen: epoll_ctl: %m");
	psc_free(s, true);
	return;
    }
    msg_info("CONNECT from %s to [%s]:%d", s->addrport, laddr, lport);

    switch (psc_acl_check(ps, s->addr)) {
    case ACL_PERMIT:
	msg_info("ALLOWLISTED %s", s->addrport);
	psc_handoff(s);
	return;
    case ACL_REJECT:
	msg_info("DENYLISTED %s", s->addrport);
	s->denylisted = true;
	if (ps->deny_action == PSC_DROP) {
	    psc_drop(s, "521 5.3.2 Service currently unavailable");
	    return;
	}
	if (ps->deny_action == PSC_ENFORCE) {
	    s->enforce = true;
	    s->enforce_reply = mem_strdup("550 5.3.2 Service currently unavailable");
	}
	break;
    case ACL_DUNNO:
	break;
    }
    if (!s->denylisted && psc_cached(ps, s->addr)) {
	msg_info("PASS OLD %s", s->addrport);
	psc_handoff(s);
	return;
    }
    /* The tests: "220-" and silence expected; DNSBL meanwhile. */
    s->state = PS_TESTS;
    psc_reply(s, "220-%s", ps->banner);
    if (!psc_flush(s)) {
	psc_free(s, true);
	return;
    }
    str_reset(&s->out);			/* a tiny write never blocks; if it did, drop it */
    s->out_off = 0;
    psc_interest(s, EPOLLIN);
    if (ps->dnsbl && psc_dnsbl_nsites(ps->dnsbl) > 0)
	psc_dnsbl_start(ps->dnsbl, &s->dnsbl, s->addr);
    psc_list_append(&ps->tests, s, s->start_ns + ps->greet_wait_ns);
}

static void psc_accept(POSTSCREEN *ps, int lfd)
{
    for (int k = 0; k < 64; k++) {
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int     fd = accept4(lfd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
	    if (errno == EINTR || errno == ECONNABORTED)
		continue;
	    if (errno != EAGAIN && errno != EWOULDBLOCK)
		msg_warn("postscreen: accept: %m");
	    return;
	}
	psc_new(ps, fd, &ss);
    }
}

/* ---- the thread ---- */

static void psc_timers(POSTSCREEN *ps)
{
    int64_t now = time_mono_ns();

    while (ps->tests.head && ps->tests.head->deadline_ns <= now) {
	PSC_SESS *s = ps->tests.head;

	psc_list_remove(s);
	psc_greet_expired(s);
    }
    while (ps->dnswait.head && ps->dnswait.head->deadline_ns <= now) {
	PSC_SESS *s = ps->dnswait.head;

	psc_list_remove(s);
	psc_conclude(s);		/* DNSBL answers too late: they do not count */
    }
    while (ps->dummy.head && ps->dummy.head->deadline_ns <= now) {
	PSC_SESS *s = ps->dummy.head;

	psc_reply(s, "421 4.4.2 %s Error: timeout exceeded", ps->myhostname);
	(void) psc_flush(s);
	msg_info("DISCONNECT %s", s->addrport);
	psc_free(s, true);
    }
}

static int psc_timeout_ms(POSTSCREEN *ps)
{
    int64_t next = INT64_MAX, now = time_mono_ns();

    if (ps->tests.head)
	next = ps->tests.head->deadline_ns;
    if (ps->dnswait.head && ps->dnswait.head->deadline_ns < next)
	next = ps->dnswait.head->deadline_ns;
    if (ps->dummy.head && ps->dummy.head->deadline_ns < next)
	next = ps->dummy.head->deadline_ns;
    if (next == INT64_MAX)
	return -1;
    if (next <= now)
	return 0;
    int64_t ms = (next - now + 999999) / 1000000;

    return ms > 60000 ? 60000 : (int) ms;
}

static void *psc_thread(void *arg)
{
    POSTSCREEN *ps = arg;
    struct epoll_event evs[PSC_EVENTS];

    msg_service_set("postscreen");
    while (!__atomic_load_n(&ps->stop, __ATOMIC_ACQUIRE)) {
	int     n = epoll_wait(ps->epfd, evs, PSC_EVENTS, psc_timeout_ms(ps));

	if (n < 0 && errno != EINTR)
	    msg_fatal("postscreen: epoll_wait: %m");
	for (int i = 0; i < n; i++) {
	    int     kind = *(int *) evs[i].data.ptr;

	    if (kind == PK_LISTEN) {
		int    *kp = evs[i].data.ptr;

		psc_accept(ps, ps->listen_fds[kp - ps->listen_kinds]);
	    } else if (kind == PK_WAKE) {
		uint64_t v;

		if (read(ps->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		    msg_warn("postscreen: eventfd read: %m");
	    } else if (kind == PK_DNS) {
		psc_dnsbl_input(ps->dnsbl, psc_dnsbl_done);
	    }
	}
	/* Sessions after the rest: a DNS reply may have ended one. */
	for (int i = 0; i < n; i++) {
	    if (*(int *) evs[i].data.ptr != PK_SESS)
		continue;
	    PSC_SESS *s = evs[i].data.ptr;

	    if (s->dead)
		continue;
	    if (s->state == PS_TESTS)
		psc_tests_event(s);
	    else
		psc_dummy_event(s, evs[i].events);
	}
	psc_timers(ps);
	psc_free_dead(ps);
    }
    /* Stopping: everyone still here goes. */
    while (ps->tests.head)
	psc_free(ps->tests.head, true);
    while (ps->dnswait.head)
	psc_free(ps->dnswait.head, true);
    while (ps->dummy.head)
	psc_free(ps->dummy.head, true);
    psc_free_dead(ps);
    return NULL;
}

/* ---- start and stop ---- */

static void psc_free_all(POSTSCREEN *ps)
{
    for (size_t i = 0; i < ps->nlisten; i++)
	if (ps->listen_fds[i] >= 0)
	    close(ps->listen_fds[i]);
    mem_free(ps->listen_fds);
    mem_free(ps->listen_kinds);
    for (size_t i = 0; i < ps->nacl; i++)
	if (ps->acl[i].dict)
	    dict_close(ps->acl[i].dict);
    mem_free(ps->acl);
    if (ps->mynetworks)
	match_list_free(ps->mynetworks);
    psc_dnsbl_free(ps->dnsbl);
    screen_cache_close(ps->cache);
    if (ps->epfd >= 0)
	close(ps->epfd);
    if (ps->evfd >= 0)
	close(ps->evfd);
    mem_free(ps->banner);
    mem_free(ps->myhostname);
    mem_free(ps->service);
    mem_free(ps);
}

static bool psc_cache_keep(const char *key, const char *value, void *ctx)
{
    long long until = strtoll(value, NULL, 10);

    (void) key;
    return until + *(long long *) ctx > (long long) time(NULL);
}

POSTSCREEN *postscreen_start(const POSTSCREEN_OPTS *opts, STR *err)
{
    POSTSCREEN *ps = MEM_NEW(POSTSCREEN);
    STR     merr = STR_INIT;
    struct epoll_event ev;

    ps->opts = *opts;
    ps->service = mem_strdup(opts->service ? opts->service : "smtp/inet");
    ps->epfd = ps->evfd = -1;
    ps->kind_wake = PK_WAKE;
    ps->kind_dns = PK_DNS;
    if (opts->handoff == NULL) {
	str_puts(err, "postscreen: no hand-off function");
	goto fail;
    }
    ps->greet_wait_ns = param_service_int(ps->service, P_POSTSCREEN_GREET_WAIT) * TIME_NS_PER_SEC;
    ps->dnsbl_timeout_ns = param_service_int(ps->service, P_POSTSCREEN_DNSBL_TIMEOUT)
	* TIME_NS_PER_SEC;
    if (ps->dnsbl_timeout_ns < ps->greet_wait_ns)
	ps->dnsbl_timeout_ns = ps->greet_wait_ns;
    ps->idle_ns = param_service_int(ps->service, P_SMTPD_TIMEOUT) * TIME_NS_PER_SEC;
    ps->greet_ttl = (long) param_service_int(ps->service, P_POSTSCREEN_GREET_TTL);
    ps->dnsbl_ttl = (long) param_service_int(ps->service, P_POSTSCREEN_DNSBL_TTL);
    ps->dnsbl_threshold = (int) param_service_int(ps->service, P_POSTSCREEN_DNSBL_THRESHOLD);
    if (psc_action("postscreen_greet_action", psc_param(ps, P_POSTSCREEN_GREET_ACTION),
		   &ps->greet_action, err) < 0
	|| psc_action("postscreen_dnsbl_action", psc_param(ps, P_POSTSCREEN_DNSBL_ACTION),
		      &ps->dnsbl_action, err) < 0
	|| psc_action("postscreen_denylist_action", psc_param(ps, P_POSTSCREEN_DENYLIST_ACTION),
		      &ps->deny_action, err) < 0)
	goto fail;
    ps->banner = mem_strdup(psc_param(ps, P_POSTSCREEN_GREET_BANNER));
    ps->myhostname = mem_strdup(psc_param(ps, P_MYHOSTNAME));
    ps->mynetworks = match_list_addrs("mynetworks", psc_param(ps, P_MYNETWORKS), &merr);
    if (ps->mynetworks == NULL) {
	str_printf(err, "mynetworks: %s", STR_DATA(&merr));
	goto fail;
    }
    if (psc_build_acl(ps, err) < 0)
	goto fail;
    if ((ps->dnsbl = psc_dnsbl_create(psc_param(ps, P_POSTSCREEN_DNSBL_SITES),
				      psc_param(ps, P_POSTSCREEN_DNS_SERVER), err)) == NULL)
	goto fail;
    str_reset(&merr);
    if ((ps->cache = screen_cache_open(psc_param(ps, P_POSTSCREEN_CACHE_MAP), &merr)) == NULL) {
	/* A cache that cannot persist still saves repeated tests. */
	msg_warn("postscreen_cache_map: %s; using an in-memory cache", STR_DATA(&merr));
	ps->cache = screen_cache_open("internal:", &merr);
    } else {
	long long keep = param_service_int(ps->service, P_POSTSCREEN_CACHE_RETENTION_TIME);
	size_t  gone = screen_cache_clean(ps->cache, psc_cache_keep, &keep);

	if (gone)
	    msg_info("cache %s full cleanup: dropped=%zu entries",
		     screen_cache_name(ps->cache), gone);
    }
    if ((ps->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0
	|| (ps->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
	str_printf(err, "postscreen: %s", strerror(errno));
	goto fail;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &ps->kind_wake;
    epoll_ctl(ps->epfd, EPOLL_CTL_ADD, ps->evfd, &ev);
    if (psc_dnsbl_fd(ps->dnsbl) >= 0) {
	ev.data.ptr = &ps->kind_dns;
	epoll_ctl(ps->epfd, EPOLL_CTL_ADD, psc_dnsbl_fd(ps->dnsbl), &ev);
    }
    ps->listen_fds = mem_calloc(opts->n_listen ? opts->n_listen : 1, sizeof(int));
    ps->listen_kinds = mem_calloc(opts->n_listen ? opts->n_listen : 1, sizeof(int));
    for (size_t i = 0; i < opts->n_listen; i++) {
	int     fd = smtpd_listen_socket(opts->listen[i], err);

	if (fd < 0)
	    goto fail;
	ps->listen_fds[ps->nlisten] = fd;
	ps->listen_kinds[ps->nlisten] = PK_LISTEN;
	ev.data.ptr = &ps->listen_kinds[ps->nlisten];
	ps->nlisten++;
	if (epoll_ctl(ps->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
	    str_printf(err, "postscreen: epoll_ctl: %s", strerror(errno));
	    goto fail;
	}
    }
    if (ps->nlisten > 0) {
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char    a[64];

	if (getsockname(ps->listen_fds[0], (struct sockaddr *) &ss, &len) == 0)
	    sockaddr_text(&ss, a, sizeof(a), &ps->port);
    }
    if (pthread_create(&ps->tid, NULL, psc_thread, ps) != 0) {
	str_printf(err, "postscreen: pthread_create: %s", strerror(errno));
	goto fail;
    }
    str_release(&merr);
    return ps;

fail:
    str_release(&merr);
    psc_free_all(ps);
    return NULL;
}

void    postscreen_stop(POSTSCREEN *ps)
{
    uint64_t one = 1;

    if (ps == NULL)
	return;
    __atomic_store_n(&ps->stop, true, __ATOMIC_RELEASE);
    if (write(ps->evfd, &one, sizeof(one)) < 0)
	msg_warn("postscreen: eventfd write: %m");
    pthread_join(ps->tid, NULL);
    psc_free_all(ps);
}

int     postscreen_port(POSTSCREEN *ps)
{
    return ps->port;
}
