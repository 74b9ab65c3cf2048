/*
 * postqueue.c - postqueue(1) and mailq(1): list and flush the queue.
 *
 * Usage (Postfix's):
 *   postqueue [-c config_dir] -p		mailq layout (also: mailq)
 *   postqueue [-c config_dir] -j		one JSON object per message
 *   postqueue [-c config_dir] -f		flush: every deferred message now
 *   postqueue [-c config_dir] -s site	flush mail for one destination
 *   postqueue [-c config_dir] -i queue_id	flush one message
 * Sluice's additions (no clash with Postfix's letters):
 *   -D domain	with -p / -j: only mail with a live recipient in domain (or
 *		a subdomain), or routed to a nexthop of that name
 *   -Q queue	with -p / -j: only that queue (incoming, active, deferred,
 *		hold, corrupt; repeatable)
 *   -S [domain]	per-destination status: recipients queued, requests out,
 *		concurrency now/window and limit, rate limit, dead until, last
 *		error; with -j as JSON lines
 *
 * With the engine running everything goes through the control socket; with
 * it stopped, -p / -j / -S read the journal (shared lock, no changes) and
 * the flush forms fail as Postfix's do ("mail system is down"). Stopped,
 * nothing is active: never-tried mail shows as incoming, see queue_view.h.
 *
 * Built twice: as postqueue, and with -DPOSTQUEUE_MAILQ (or called by a
 * name ending in "mailq") as mailq, which means postqueue -p.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/queue_cli.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/timeutil.h"
#include "queue/queue_ctl.h"
#include "queue/queue_id.h"

#define EX_UNAVAILABLE	69

static void postqueue_usage(void)
{
    msg_fatal("usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | "
	      "postqueue -s site | postqueue -S [domain] (options: -c config_dir, -D domain, "
	      "-Q queue, -v)");
}

static void postqueue_down(const char *what)
{
    fprintf(stderr, "postqueue: fatal: Cannot %s - mail system is down\n", what);
    exit(EX_UNAVAILABLE);
}

/* ---- listing ------------------------------------------------------------- */

typedef struct PQ_ENTRY {
    char    id[QUEUE_ID_MAX];
    size_t  size;
    STR     text;
} PQ_ENTRY;

typedef struct PQ_OFFLINE {
    QUEUE_VIEW_FILTER filter;
    bool    json;
    bool    long_ids;
    PQ_ENTRY *v;
    size_t  n, cap;
} PQ_OFFLINE;

static void postqueue_offline_one(void *ctx, const QUEUE_VIEW_MSG *m)
{
    PQ_OFFLINE *o = ctx;
    PQ_ENTRY *e;

    if (!queue_view_match(&o->filter, m))
	return;
    if (o->n == o->cap) {
	o->cap = o->cap ? 2 * o->cap : 64;
	o->v = mem_realloc(o->v, o->cap * sizeof(*o->v));
    }
    e = &o->v[o->n++];
    memcpy(e->id, m->msg->queue_id, QUEUE_ID_MAX);
    e->size = m->size;
    str_init(&e->text);
    if (o->json)
	queue_view_json(&e->text, m);
    else
	queue_view_mailq(&e->text, m, o->long_ids);
}

static int postqueue_entry_cmp(const void *a, const void *b)
{
    return queue_cli_id_cmp(((const PQ_ENTRY *) a)->id, ((const PQ_ENTRY *) b)->id);
}

static void postqueue_list_offline(QUEUE_VIEW_PRINTER *pr, const QUEUE_VIEW_FILTER *f)
{
    PQ_OFFLINE o;
    JOURNAL *j = queue_cli_journal_open(false);

    memset(&o, 0, sizeof(o));
    o.filter = *f;
    o.json = pr->json;
    o.long_ids = pr->long_ids;
    queue_cli_recover(j, postqueue_offline_one, &o);
    if (o.n)
	qsort(o.v, o.n, sizeof(*o.v), postqueue_entry_cmp);
    for (size_t i = 0; i < o.n; i++) {
	queue_view_print(pr, o.v[i].size, STR_DATA(&o.v[i].text), STR_LEN(&o.v[i].text));
	str_release(&o.v[i].text);
    }
    mem_free(o.v);
    if (j)
	journal_close(j);
}

static void postqueue_list_online(QUEUE_VIEW_PRINTER *pr, const char *queues, const char *domain)
{
    STR     out = STR_INIT, a_after = STR_INIT, a_q = STR_INIT, a_d = STR_INIT;
    char    after[QUEUE_ID_MAX] = "";
    int     more = 1;

    if (queues)
	str_printf(&a_q, "queues=%s", queues);
    if (domain)
	str_printf(&a_d, "domain=%s", domain);
    while (more) {
	char   *argv[8];
	int     argc = 0;
	const char *p, *end;

	argv[argc++] = "queue-list";
	argv[argc++] = pr->json ? "fmt=j" : "fmt=p";
	argv[argc++] = pr->long_ids ? "long=1" : "long=0";
	if (*after) {
	    str_reset(&a_after);
	    str_printf(&a_after, "after=%s", after);
	    argv[argc++] = a_after.data;
	}
	if (queues)
	    argv[argc++] = a_q.data;
	if (domain)
	    argv[argc++] = a_d.data;
	argv[argc] = NULL;
	if (queue_cli_call(argc, argv, &out) != 0)
	    msg_fatal("%s", STR_DATA(&out));
	p = STR_DATA(&out);
	end = p + STR_LEN(&out);
	if (sscanf(p, "more %d", &more) != 1 || (p = memchr(p, '\n', (size_t) (end - p))) == NULL)
	    msg_fatal("malformed reply from the mail system");
	for (p++; p < end;) {
	    char    id[QUEUE_ID_MAX];
	    size_t  size, len;
	    const char *nl = memchr(p, '\n', (size_t) (end - p));

	    if (nl == NULL || sscanf(p, "%31s %zu %zu", id, &size, &len) != 3
		|| len > (size_t) (end - nl - 1))
		msg_fatal("malformed reply from the mail system");
	    queue_view_print(pr, size, nl + 1, len);
	    memcpy(after, id, sizeof(after));
	    p = nl + 1 + len;
	}
	if (*after == 0)
	    more = 0;
    }
    str_release(&out);
    str_release(&a_after);
    str_release(&a_q);
    str_release(&a_d);
}

/* ---- per-destination status ------------------------------------------------ */

typedef struct PQ_DEST {
    char   *transport, *nexthop, *rate, *last_error;
    unsigned long long queued, active;
    int     window, limit, dead;
    long long delay_s, dead_until;
    unsigned long long delivered, failed;
} PQ_DEST;

typedef struct PQ_DESTS {
    const char *domain;
    PQ_DEST *v;
    size_t  n, cap;
} PQ_DESTS;

static PQ_DEST *postqueue_dest_add(PQ_DESTS *d)
{
    if (d->n == d->cap) {
	d->cap = d->cap ? 2 * d->cap : 16;
	d->v = mem_realloc(d->v, d->cap * sizeof(*d->v));
    }
    memset(&d->v[d->n], 0, sizeof(d->v[0]));
    return &d->v[d->n++];
}

static void postqueue_dest_offline(void *ctx, const QUEUE_VIEW_MSG *m)
{
    PQ_DESTS *d = ctx;

    if (m->queue == QUEUE_VIEW_HOLD || m->queue == QUEUE_VIEW_CORRUPT)
	return;
    for (size_t i = 0; i < m->msg->nrcpt; i++) {
	const RCPT *r = &m->msg->rcpt[i];
	QUEUE_VIEW_FILTER f = {0, d->domain};
	RCPT    one = *r;
	MESSAGE msg = {.rcpt = &one, .nrcpt = 1};
	QUEUE_VIEW_MSG vm = {.msg = &msg};
	PQ_DEST *e = NULL;

	if (!queue_view_rcpt_live(r) || !r->transport)
	    continue;
	if (d->domain && !queue_view_match(&f, &vm))
	    continue;
	for (size_t k = 0; k < d->n && !e; k++)
	    if (strcmp(d->v[k].transport, r->transport) == 0
		&& strcmp(d->v[k].nexthop, r->nexthop ? r->nexthop : "") == 0)
		e = &d->v[k];
	if (e == NULL) {
	    e = postqueue_dest_add(d);
	    e->transport = mem_strdup(r->transport);
	    e->nexthop = mem_strdup(r->nexthop ? r->nexthop : "");
	    e->rate = mem_strdup("-");
	    e->last_error = mem_strdup("");
	    e->window = -1;
	    e->limit = -1;
	}
	e->queued++;
    }
}

static void postqueue_dest_parse(PQ_DESTS *d, const char *text)
{
    const char *line = text;

    while (line && *line) {
	const char *nl = strchr(line, '\n');
	char   *copy = nl ? mem_strndup(line, (size_t) (nl - line)) : mem_strdup(line);
	char   *f[13], *p = copy;
	int     n = 0;

	for (; n < 13; n++) {
	    f[n] = p;
	    if ((p = strchr(p, '\t')) == NULL) {
		n++;
		break;
	    }
	    *p++ = 0;
	}
	if (n == 13) {
	    PQ_DEST *e = postqueue_dest_add(d);

	    e->transport = mem_strdup(f[0]);
	    e->nexthop = mem_strdup(f[1]);
	    e->queued = strtoull(f[2], NULL, 10);
	    e->active = strtoull(f[3], NULL, 10);
	    e->window = atoi(f[4]);
	    e->limit = atoi(f[5]);
	    e->rate = mem_strdup(f[6]);
	    e->delay_s = atoll(f[7]);
	    e->dead = atoi(f[8]);
	    e->dead_until = atoll(f[9]);
	    e->delivered = strtoull(f[10], NULL, 10);
	    e->failed = strtoull(f[11], NULL, 10);
	    e->last_error = mem_strdup(f[12]);
	}
	mem_free(copy);
	line = nl ? nl + 1 : NULL;
    }
}

static int postqueue_dest_cmp(const void *a, const void *b)
{
    const PQ_DEST *x = a, *y = b;
    int     c = strcmp(x->nexthop, y->nexthop);

    return c ? c : strcmp(x->transport, y->transport);
}

static void postqueue_dest_print(PQ_DESTS *d, bool json, bool online)
{
    STR     s = STR_INIT;

    if (d->n)
	qsort(d->v, d->n, sizeof(*d->v), postqueue_dest_cmp);
    if (!json)
	printf("%-10s %-28s %7s %6s %11s %-9s %-19s %s\n", "Transport", "Destination", "Queued",
	       "Active", "Concurrency", "Rate", "Dead until", "Last error");
    for (size_t i = 0; i < d->n; i++) {
	PQ_DEST *e = &d->v[i];
	char    conc[32], dead[32];

	if (e->window < 0)
	    snprintf(conc, sizeof(conc), "-");
	else if (e->limit > 0)
	    snprintf(conc, sizeof(conc), "%llu/%d/%d", e->active, e->window, e->limit);
	else
	    snprintf(conc, sizeof(conc), "%llu/%d/-", e->active, e->window);
	if (e->dead && e->dead_until > 0) {
	    time_t  t = (time_t) e->dead_until;
	    struct tm tm;

	    localtime_r(&t, &tm);
	    strftime(dead, sizeof(dead), "%b %e %H:%M:%S", &tm);
	} else {
	    snprintf(dead, sizeof(dead), e->dead ? "dead" : "-");
	}
	if (!json) {
	    printf("%-10s %-28s %7llu %6llu %11s %-9s %-19s %s\n", e->transport, e->nexthop,
		   e->queued, e->active, conc, e->rate, dead, e->last_error);
	    continue;
	}
	str_reset(&s);
	str_puts(&s, "{\"transport\": \"");
	queue_view_json_quote(&s, e->transport);
	str_puts(&s, "\", \"destination\": \"");
	queue_view_json_quote(&s, e->nexthop);
	str_printf(&s, "\", \"queued_recipients\": %llu", e->queued);
	if (online) {
	    str_printf(&s, ", \"active_requests\": %llu, \"concurrency\": %d, "
		       "\"concurrency_limit\": %d, \"rate_limit\": \"%s\", \"rate_delay\": %lld, "
		       "\"dead\": %s, \"dead_until\": %lld, \"delivered\": %llu, \"failed\": %llu, "
		       "\"last_error\": \"", e->active, e->window, e->limit, e->rate, e->delay_s,
		       e->dead ? "true" : "false", e->dead_until, e->delivered, e->failed);
	    queue_view_json_quote(&s, e->last_error);
	    str_putc(&s, '"');
	}
	str_puts(&s, "}\n");
	fputs(STR_DATA(&s), stdout);
    }
    if (!json && d->n == 0)
	printf("No destinations with queued mail\n");
    for (size_t i = 0; i < d->n; i++) {
	mem_free(d->v[i].transport);
	mem_free(d->v[i].nexthop);
	mem_free(d->v[i].rate);
	mem_free(d->v[i].last_error);
    }
    mem_free(d->v);
    str_release(&s);
}

static void postqueue_dest(const char *domain, bool json)
{
    PQ_DESTS d;
    bool    online = queue_cli_online();

    memset(&d, 0, sizeof(d));
    d.domain = domain;
    if (online) {
	STR     out = STR_INIT;
	char   *argv[3] = {"queue-dest", (char *) domain, NULL};

	if (queue_cli_call(domain ? 2 : 1, argv, &out) != 0)
	    msg_fatal("%s", STR_DATA(&out));
	postqueue_dest_parse(&d, STR_DATA(&out));
	str_release(&out);
    } else {
	JOURNAL *j = queue_cli_journal_open(false);

	queue_cli_recover(j, postqueue_dest_offline, &d);
	if (j)
	    journal_close(j);
    }
    postqueue_dest_print(&d, json, online);
}

/* ---- flushing ------------------------------------------------------------- */

static int postqueue_flush_id(const char *id)
{
    STR     out = STR_INIT;
    char   *argv[4] = {"queue-op", "flush", (char *) id, NULL};
    int     rc = 0;

    if (!queue_id_valid(id))
	msg_fatal("invalid queue ID: %s", id);
    if (!queue_cli_online())
	postqueue_down("flush mail queue");
    if (queue_cli_call(3, argv, &out) != 0)
	msg_fatal("%s", STR_DATA(&out));
    if (strncmp(STR_DATA(&out), "done ", 5) != 0) {
	fprintf(stderr, "postqueue: warning: %s: no such message in the queue\n", id);
	rc = 1;
    }
    str_release(&out);
    return rc;
}

static int postqueue_flush(const char *site)
{
    STR     out = STR_INIT;
    char   *argv[3] = {site ? "flush-site" : "flush", (char *) site, NULL};

    if (site) {
	if (*site == 0 || strpbrk(site, " \t\r\n/"))
	    msg_fatal("invalid site name: \"%s\"", site);
    }
    if (!queue_cli_online())
	postqueue_down(site ? "flush mail queue for site" : "flush mail queue");
    if (queue_cli_call(site ? 2 : 1, argv, &out) != 0)
	msg_fatal("%s", STR_DATA(&out));
    str_release(&out);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL, *site = NULL, *id = NULL, *domain = NULL;
    const char *base = strrchr(argv[0], '/');
    int     ch, mode = 0;
    bool    json = false, dest = false;
    unsigned queues = 0;
    STR     qtext = STR_INIT;

    base = base ? base + 1 : argv[0];
#ifdef POSTQUEUE_MAILQ
    mode = 'p';
#endif
    if (strlen(base) >= 5 && strcmp(base + strlen(base) - 5, "mailq") == 0)
	mode = 'p';
    msg_progname_set(mode == 'p' ? "mailq" : "postqueue");
    while ((ch = getopt(argc, argv, "c:D:fi:jpQ:s:Sv")) > 0) {
	switch (ch) {
	case 'c':
	    config_dir = optarg;
	    break;
	case 'D':
	    domain = optarg;
	    break;
	case 'f':
	case 'p':
	    mode = ch;
	    break;
	case 'i':
	    mode = 'i';
	    id = optarg;
	    break;
	case 'j':
	    json = true;
	    if (mode == 0)
		mode = 'p';
	    break;
	case 'Q':{
		long    m = queue_view_queue_mask(optarg);

		if (m < 0)
		    msg_fatal("unknown queue name: %s", optarg);
		queues |= (unsigned) m;
		if (m == 0)
		    queues |= 1u << QUEUE_VIEW_NQUEUES;
		break;
	    }
	case 's':
	    mode = 's';
	    site = optarg;
	    break;
	case 'S':
	    dest = true;
	    break;
	case 'v':
	    msg_verbose++;
	    break;
	default:
	    postqueue_usage();
	}
    }
    if (dest) {
	if (argc - optind > 1)
	    postqueue_usage();
	queue_cli_config(config_dir);
	postqueue_dest(optind < argc ? argv[optind] : NULL, json);
	return 0;
    }
    if (optind != argc || mode == 0)
	postqueue_usage();
    queue_cli_config(config_dir);
    switch (mode) {
    case 'f':
	return postqueue_flush(NULL);
    case 's':
	return postqueue_flush(site);
    case 'i':
	return postqueue_flush_id(id);
    default:
	break;
    }
    {
	QUEUE_VIEW_PRINTER pr = {stdout, json, param_bool(P_ENABLE_LONG_QUEUE_IDS), 0, 0};
	QUEUE_VIEW_FILTER f = {queues, domain};

	if (queue_cli_online()) {
	    if (queues)
		queue_view_mask_format(queues & QUEUE_VIEW_ALL_QUEUES, &qtext);
	    postqueue_list_online(&pr, queues ? STR_DATA(&qtext) : NULL, domain);
	} else {
	    postqueue_list_offline(&pr, &f);
	}
	queue_view_print_end(&pr);
    }
    str_release(&qtext);
    return fflush(stdout) != 0;
}
