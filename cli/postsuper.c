/*
 * postsuper.c - postsuper(1): delete, hold, release and requeue queued mail.
 *
 * Usage (Postfix's): postsuper [-c config_dir] [-psv] [-d ID] [-h ID]
 *	[-H ID] [-r ID] [queue...]
 * ID is a queue ID, ALL (every message in the named queues, default all
 * queues), or "-" (IDs read from standard input, one per line; empty lines
 * ignored). Operations run in the order given. Sluice's addition:
 *   -D domain	restrict ALL to mail with a live recipient in that domain
 *		(or a subdomain), or routed to a nexthop of that name; e.g.
 *		"postsuper -d ALL deferred -D example.com"
 * Reports as Postfix's: "postsuper: ID: removed" (placed on hold, released
 * from hold, requeued) per message, then "postsuper: Deleted: N messages"
 * (Placed on hold, Released from hold, Requeued) when N > 0. A malformed
 * ID, a queue ID not in the queue or an unknown queue name is an error
 * (exit status 1); requeue skips mail being delivered right now (warning).
 *
 * -s: the journal is checked and repaired by recovery (torn tails cut,
 *     damage skipped and reported). With the engine stopped postsuper runs
 *     that recovery and reports what it found; with the engine running
 *     there is nothing to do (the engine did it when it started).
 * -p: Postfix purges temporary files left by crashes; the journal has none,
 *     so this does nothing (say -v to be told so).
 * Without any operation, postsuper does -s, as Postfix's does.
 *
 * Running engine: requests over the control socket (queue-op); the engine
 * journals every change before qmgr acts. Stopped engine: the journal is
 * opened under its exclusive lock and the same records are appended.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/queue_cli.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "queue/queue_ctl.h"
#include "queue/queue_id.h"
#include "stages/rewrite.h"

enum { PS_DELETE, PS_HOLD, PS_RELEASE, PS_REQUEUE, PS_NOPS };

static const char *const ps_req[PS_NOPS] = {"delete", "hold", "release", "requeue"};
static const char *const ps_each[PS_NOPS] = {"removed", "placed on hold", "released from hold",
"requeued"};
static const char *const ps_sum[PS_NOPS] = {"Deleted", "Placed on hold", "Released from hold",
"Requeued"};

#define PS_BATCH	200			/* IDs per control request */

typedef struct PS_ACTION {
    int     op;
    const char *arg;
} PS_ACTION;

static int ps_status;
static QUEUE_VIEW_FILTER ps_filter;
static STR ps_queues = STR_INIT;

static void ps_usage(void)
{
    msg_fatal("usage: postsuper [-c config_dir] [-p] [-s] [-v] [-d queue_id|ALL|-] "
	      "[-h queue_id|ALL|-] [-H queue_id|ALL|-] [-r queue_id|ALL|-] [-D domain] [queue...]");
}

static void ps_summary(int op, size_t n)
{
    if (n > 0)
	fprintf(stderr, "postsuper: %s: %zu message%s\n", ps_sum[op], n, n == 1 ? "" : "s");
}

/* IDs from stdin; malformed lines are reported and skipped. */
static char **ps_read_ids(size_t *count)
{
    char  **v = NULL;
    size_t  n = 0, cap = 0;
    char    line[1024];
    unsigned long lineno = 0;

    while (fgets(line, sizeof(line), stdin)) {
	size_t  len = strlen(line);

	lineno++;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
	    line[--len] = 0;
	if (len == 0)
	    continue;
	if (!queue_id_valid(line)) {
	    fprintf(stderr, "postsuper: warning: line %lu of standard input: invalid queue ID: "
		    "\"%.100s\"\n", lineno, line);
	    ps_status = 1;
	    continue;
	}
	if (n == cap) {
	    cap = cap ? 2 * cap : 64;
	    v = mem_realloc(v, cap * sizeof(*v));
	}
	v[n++] = mem_strdup(line);
    }
    *count = n;
    return v;
}

static void ps_missing(const char *id)
{
    fprintf(stderr, "postsuper: error: %s: no such message in the queue\n", id);
    ps_status = 1;
}

static void ps_busy(const char *id)
{
    fprintf(stderr, "postsuper: warning: %s: being delivered right now; not requeued "
	    "(try again when this delivery attempt is over)\n", id);
}

/* ---- the running engine --------------------------------------------------- */

/* Parses a queue-op reply; returns "more" for ALL (and sets after). */
static int ps_reply(int op, const char *text, size_t *done, char *after)
{
    const char *line = text;
    int     more = 0;

    while (line && *line) {
	const char *nl = strchr(line, '\n');
	char    word[16], id[QUEUE_ID_MAX];

	if (sscanf(line, "%15s %31s", word, id) == 2) {
	    if (strcmp(word, "done") == 0) {
		fprintf(stderr, "postsuper: %s: %s\n", id, ps_each[op]);
		(*done)++;
	    } else if (strcmp(word, "missing") == 0) {
		ps_missing(id);
	    } else if (strcmp(word, "invalid") == 0) {
		msg_fatal("invalid queue ID: %s", id);
	    } else if (strcmp(word, "busy") == 0) {
		ps_busy(id);
	    } else if (strcmp(word, "more") == 0) {
		more = atoi(id);
		if (sscanf(line, "more %*d %31s", after) != 1)
		    more = 0;
	    }
	}
	line = nl ? nl + 1 : NULL;
    }
    fflush(stdout);
    return more;
}

static void ps_online(int op, const char *arg)
{
    STR     out = STR_INIT, a_after = STR_INIT, a_dom = STR_INIT, a_q = STR_INIT;
    size_t  done = 0;
    char   *argv[PS_BATCH + 8];
    int     argc;

    if (ps_filter.domain)
	str_printf(&a_dom, "domain=%s", ps_filter.domain);
    if (STR_LEN(&ps_queues))
	str_printf(&a_q, "queues=%s", STR_DATA(&ps_queues));
    if (strcmp(arg, "ALL") == 0) {
	char    after[QUEUE_ID_MAX] = "";
	int     more = 1;

	while (more) {
	    argc = 0;
	    argv[argc++] = "queue-op";
	    argv[argc++] = (char *) ps_req[op];
	    argv[argc++] = "all";
	    if (ps_filter.domain)
		argv[argc++] = a_dom.data;
	    if (STR_LEN(&ps_queues))
		argv[argc++] = a_q.data;
	    if (*after) {
		str_reset(&a_after);
		str_printf(&a_after, "after=%s", after);
		argv[argc++] = a_after.data;
	    }
	    argv[argc] = NULL;
	    if (queue_cli_call(argc, argv, &out) != 0)
		msg_fatal("%s", STR_DATA(&out));
	    more = ps_reply(op, STR_DATA(&out), &done, after);
	}
    } else {
	char  **ids, *one[1] = {(char *) arg};
	size_t  n;

	if (strcmp(arg, "-") == 0)
	    ids = ps_read_ids(&n);
	else {
	    ids = one;
	    n = 1;
	}
	for (size_t k = 0; k < n; k += PS_BATCH) {
	    argc = 0;
	    argv[argc++] = "queue-op";
	    argv[argc++] = (char *) ps_req[op];
	    if (STR_LEN(&ps_queues))
		argv[argc++] = a_q.data;
	    for (size_t i = k; i < n && i < k + PS_BATCH; i++)
		argv[argc++] = ids[i];
	    argv[argc] = NULL;
	    if (queue_cli_call(argc, argv, &out) != 0)
		msg_fatal("%s", STR_DATA(&out));
	    (void) ps_reply(op, STR_DATA(&out), &done, NULL);
	}
	if (ids != one) {
	    for (size_t i = 0; i < n; i++)
		mem_free(ids[i]);
	    mem_free(ids);
	}
    }
    ps_summary(op, done);
    str_release(&out);
    str_release(&a_after);
    str_release(&a_dom);
    str_release(&a_q);
}

/* ---- the stopped engine: the journal itself ------------------------------------ */

typedef struct PS_MSG {
    char    id[QUEUE_ID_MAX];
    enum queue_view_queue queue;
    bool    gone;
    bool    match;			/* ps_filter */
    size_t  n;
    size_t *idx;			/* live recipients */
    char  **addr;
} PS_MSG;

typedef struct PS_QUEUE {
    PS_MSG *v;
    size_t  n, cap;
} PS_QUEUE;

static void ps_collect(void *ctx, const QUEUE_VIEW_MSG *m)
{
    PS_QUEUE *q = ctx;
    PS_MSG *p;

    if (q->n == q->cap) {
	q->cap = q->cap ? 2 * q->cap : 64;
	q->v = mem_realloc(q->v, q->cap * sizeof(*q->v));
    }
    p = &q->v[q->n++];
    memset(p, 0, sizeof(*p));
    memcpy(p->id, m->msg->queue_id, QUEUE_ID_MAX);
    p->queue = m->queue;
    p->match = queue_view_match(&ps_filter, m);
    p->idx = mem_calloc(m->msg->nrcpt + 1, sizeof(*p->idx));
    p->addr = mem_calloc(m->msg->nrcpt + 1, sizeof(*p->addr));
    for (size_t i = 0; i < m->msg->nrcpt; i++) {
	if (!queue_view_rcpt_live(&m->msg->rcpt[i]))
	    continue;
	p->idx[p->n] = i;
	p->addr[p->n++] = mem_strdup(m->msg->rcpt[i].address);
    }
}

static int ps_msg_cmp(const void *a, const void *b)
{
    return queue_cli_id_cmp(((const PS_MSG *) a)->id, ((const PS_MSG *) b)->id);
}

static PS_MSG *ps_find(PS_QUEUE *q, const char *id)
{
    PS_MSG  key;

    snprintf(key.id, sizeof(key.id), "%s", id);
    return q->n ? bsearch(&key, q->v, q->n, sizeof(*q->v), ps_msg_cmp) : NULL;
}

/* Completions of this run's records (journal writer thread). */
typedef struct PS_WAIT {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t  pending;
    int     err;
} PS_WAIT;

static void ps_journal_done(void *ctx, int status)
{
    PS_WAIT *w = ctx;

    pthread_mutex_lock(&w->lock);
    if (status && w->err == 0)
	w->err = status;
    if (--w->pending == 0)
	pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static REWRITE *ps_rewrite;

/* Appends the record for p; false when p is not eligible. */
static bool ps_append(JOURNAL *j, int op, PS_MSG *p, PS_WAIT *err)
{
    static const enum journal_op jop[] = {JOURNAL_OP_DELETE, JOURNAL_OP_HOLD,
    JOURNAL_OP_RELEASE};

    if ((op == PS_HOLD && p->queue == QUEUE_VIEW_HOLD)
	|| (op == PS_RELEASE && p->queue != QUEUE_VIEW_HOLD))
	return false;
    pthread_mutex_lock(&err->lock);
    err->pending++;
    pthread_mutex_unlock(&err->lock);
    if (op != PS_REQUEUE) {
	journal_append_control(j, p->id, jop[op], ps_journal_done, err);
	return true;
    }
    if (ps_rewrite == NULL) {
	REWRITE_CONFIG cfg;
	STR     why = STR_INIT;

	rewrite_config_from_params(&cfg);
	if ((ps_rewrite = rewrite_create(&cfg, &why)) == NULL)
	    msg_fatal("requeue: trivial-rewrite: %s", STR_DATA(&why));
    }
    JOURNAL_ROUTE *r = mem_calloc(p->n + 1, sizeof(*r));
    RESOLVED *res = mem_calloc(p->n + 1, sizeof(*res));
    bool    ok = true;

    for (size_t k = 0; k < p->n && ok; k++) {
	resolved_init(&res[k]);
	if (rewrite_resolve(ps_rewrite, p->addr[k], &res[k]) < 0) {
	    fprintf(stderr, "postsuper: warning: %s: address resolution failed (table lookup "
		    "error); not requeued\n", p->id);
	    ps_status = 1;
	    ok = false;
	}
	r[k].rcpt_index = p->idx[k];
	r[k].transport = STR_DATA(&res[k].transport);
	r[k].nexthop = STR_DATA(&res[k].nexthop);
    }
    if (ok)
	journal_append_requeue(j, p->id, p->n, r, ps_journal_done, err);
    else
	ps_journal_done(err, 0);
    for (size_t k = 0; k < p->n; k++)
	resolved_release(&res[k]);
    mem_free(res);
    mem_free(r);
    return ok;
}

static void ps_offline(JOURNAL *j, PS_QUEUE *q, int op, const char *arg)
{
    PS_MSG **hit = mem_calloc(q->n + 1, sizeof(*hit));
    size_t  nhit = 0;
    PS_WAIT w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0};

    if (strcmp(arg, "ALL") == 0) {
	for (size_t k = 0; k < q->n; k++)
	    if (!q->v[k].gone && q->v[k].match)
		hit[nhit++] = &q->v[k];
    } else {
	char  **ids, *one[1] = {(char *) arg};
	size_t  n;

	if (strcmp(arg, "-") == 0)
	    ids = ps_read_ids(&n);
	else {
	    ids = one;
	    n = 1;
	}
	for (size_t i = 0; i < n; i++) {
	    PS_MSG *p = ps_find(q, ids[i]);

	    /* A named queue restricts explicit IDs too, as in Postfix. */
	    if (p == NULL || p->gone
		|| (ps_filter.queues && !(ps_filter.queues & (1u << p->queue))))
		ps_missing(ids[i]);
	    else if (nhit < q->n)
		hit[nhit++] = p;
	}
	if (ids != one) {
	    for (size_t i = 0; i < n; i++)
		mem_free(ids[i]);
	    mem_free(ids);
	}
    }
    for (size_t k = 0; k < nhit; k++)
	if (!ps_append(j, op, hit[k], &w))
	    hit[k] = NULL;
    ps_journal_done(&w, 0);		/* our own count */
    pthread_mutex_lock(&w.lock);
    while (w.pending)
	pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    if (w.err)
	msg_fatal("write the queue journal: %s; the last operation may be incomplete",
		  strerror(w.err));
    size_t  done = 0;

    for (size_t k = 0; k < nhit; k++) {
	PS_MSG *p = hit[k];

	if (p == NULL)
	    continue;
	fprintf(stderr, "postsuper: %s: %s\n", p->id, ps_each[op]);
	done++;
	if (op == PS_DELETE)
	    p->gone = true;
	else if (op == PS_HOLD)
	    p->queue = QUEUE_VIEW_HOLD;
	else if (op == PS_RELEASE)
	    p->queue = QUEUE_VIEW_INCOMING;
    }
    ps_summary(op, done);
    mem_free(hit);
}

static void ps_check_one(void *ctx, JOURNAL_RECOVERED *item)
{
    message_free(item->msg);
}

static void ps_check_offline(void)
{
    JOURNAL *j = queue_cli_journal_open(true);
    JOURNAL_RECOVERY_STATS rs;

    memset(&rs, 0, sizeof(rs));
    if (journal_recover(j, ps_check_one, NULL, &rs) < 0)
	msg_fatal("check the queue journal: %m");
    if (rs.torn || rs.damaged || rs.corrupt || rs.lost_records)
	fprintf(stderr, "postsuper: warning: journal: %zu torn tails cut (%zu bytes), %zu "
		"damaged regions skipped (%zu bytes), %zu corrupt messages, %zu lost records\n",
		rs.torn, rs.torn_bytes, rs.damaged, rs.damaged_bytes, rs.corrupt,
		rs.lost_records);
    else if (msg_verbose)
	fprintf(stderr, "postsuper: journal: %zu segments, %zu records, %zu live messages: "
		"no damage\n", rs.segments, rs.records, rs.messages);
    journal_close(j);
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    PS_ACTION act[64];
    size_t  nact = 0;
    bool    check = false, purge = false;
    int     ch;
    unsigned mask = 0;

    msg_progname_set("postsuper");
    while ((ch = getopt(argc, argv, "c:d:D:h:H:pr:sv")) > 0) {
	int     op = -1;

	switch (ch) {
	case 'c':
	    config_dir = optarg;
	    break;
	case 'd':
	    op = PS_DELETE;
	    break;
	case 'h':
	    op = PS_HOLD;
	    break;
	case 'H':
	    op = PS_RELEASE;
	    break;
	case 'r':
	    op = PS_REQUEUE;
	    break;
	case 'D':
	    if (*optarg == 0)
		msg_fatal("-D needs a domain name");
	    ps_filter.domain = optarg;
	    break;
	case 'p':
	    purge = true;
	    break;
	case 's':
	    check = true;
	    break;
	case 'v':
	    msg_verbose++;
	    break;
	default:
	    ps_usage();
	}
	if (op >= 0) {
	    if (nact == sizeof(act) / sizeof(act[0]))
		msg_fatal("too many operations");
	    if (strcmp(optarg, "ALL") != 0 && strcmp(optarg, "-") != 0
		&& !queue_id_valid(optarg))
		msg_fatal("invalid queue ID: \"%s\"", optarg);
	    act[nact].op = op;
	    act[nact++].arg = optarg;
	}
    }
    for (int i = optind; i < argc; i++) {
	long    m = queue_view_queue_mask(argv[i]);

	if (m < 0)
	    msg_fatal("unknown queue name: \"%s\" (expected incoming, active, deferred, hold, "
		      "corrupt, or maildrop)", argv[i]);
	mask |= (unsigned) m;
	if (m == 0)
	    mask |= 1u << QUEUE_VIEW_NQUEUES;	/* a queue Sluice keeps empty */
    }
    ps_filter.queues = mask;
    if (mask)
	queue_view_mask_format(mask & QUEUE_VIEW_ALL_QUEUES, &ps_queues);
    if (ps_filter.domain && nact == 0)
	msg_fatal("-D applies to -d, -h, -H or -r ALL");
    if (nact == 0 && !purge)
	check = true;
    queue_cli_config(config_dir);

    if (queue_cli_online()) {
	if (check && msg_verbose)
	    fprintf(stderr, "postsuper: the running engine checked its journal when it "
		    "started; nothing to do\n");
	for (size_t i = 0; i < nact; i++)
	    ps_online(act[i].op, act[i].arg);
    } else if (nact) {
	JOURNAL *j = queue_cli_journal_open(true);
	PS_QUEUE q;

	memset(&q, 0, sizeof(q));
	queue_cli_recover(j, ps_collect, &q);
	if (q.n)
	    qsort(q.v, q.n, sizeof(*q.v), ps_msg_cmp);
	for (size_t i = 0; i < nact; i++)
	    ps_offline(j, &q, act[i].op, act[i].arg);
	journal_close(j);
	for (size_t k = 0; k < q.n; k++) {
	    for (size_t r = 0; r < q.v[k].n; r++)
		mem_free(q.v[k].addr[r]);
	    mem_free(q.v[k].addr);
	    mem_free(q.v[k].idx);
	}
	mem_free(q.v);
	if (ps_rewrite)
	    rewrite_free(ps_rewrite);
    } else if (check) {
	ps_check_offline();
    }
    if (purge && msg_verbose)
	fprintf(stderr, "postsuper: -p: the journal leaves no temporary files; nothing to purge\n");
    str_release(&ps_queues);
    fflush(stdout);
    return ps_status;
}
