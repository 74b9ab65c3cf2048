/*
 * queue_ctl.c - control requests for the queue commands (see queue_ctl.h).
 *
 * Every listing walks qmgr's messages on the qmgr thread (QMGR_CTL_LIST)
 * and formats them there with queue_view, so the text is the same as the
 * commands print from the journal when the engine is stopped. Replies are
 * paged (the control socket carries at most 1 MiB per reply): a listing
 * keeps the QUEUE_CTL_LIST_PAGE smallest IDs after the cursor in a max-heap
 * during one walk, so a page costs one pass over the queue.
 *
 * Changes (hold, release, delete, requeue) go to the journal first, all
 * records of one request in one group commit, and reach qmgr only once
 * they are durable (DESIGN.md invariant 2).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctl.h"
#include "engine/mem.h"
#include "engine/metrics.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/stage.h"
#include "engine/timeutil.h"
#include "queue/journal.h"
#include "queue/qmgr.h"
#include "queue/queue_ctl.h"
#include "queue/queue_id.h"
#include "queue/queue_service.h"
#include "queue/queue_view.h"
#include "stages/rewrite.h"

static uint64_t qc_outcomes[RCPT_DROPPED + 1];

void queue_ctl_count_outcome(enum rcpt_state state)
{
    if ((unsigned) state <= RCPT_DROPPED)
	__atomic_fetch_add(&qc_outcomes[state], 1, __ATOMIC_RELAXED);
}

/* ---- helpers ------------------------------------------------------------ */

static const char *qc_opt(int argc, char **argv, const char *key)
{
    size_t  len = strlen(key);

    for (int i = 1; i < argc; i++)
	if (strncmp(argv[i], key, len) == 0 && argv[i][len] == '=')
	    return argv[i] + len + 1;
    return NULL;
}

static int qc_is_opt(const char *arg)
{
    return strchr(arg, '=') != NULL;
}

/* Compare queue IDs as numbers (uppercase hex, no leading zeros). */
static int qc_id_cmp(const char *a, const char *b)
{
    size_t  la = strlen(a), lb = strlen(b);

    if (la != lb)
	return la < lb ? -1 : 1;
    return strcmp(a, b);
}

static enum queue_view_queue qc_queue_of(enum qmgr_msg_state st)
{
    switch (st) {
    case QMGR_MSG_INCOMING:
	return QUEUE_VIEW_INCOMING;
    case QMGR_MSG_ACTIVE:
	return QUEUE_VIEW_ACTIVE;
    case QMGR_MSG_DEFERRED:
	return QUEUE_VIEW_DEFERRED;
    default:
	return QUEUE_VIEW_HOLD;
    }
}

static void qc_view(const QMGR_MSG_INFO *info, QUEUE_VIEW_MSG *m)
{
    m->msg = info->msg;
    m->queue = qc_queue_of(info->state);
    m->size = info->size;
    m->reason = info->reason;
}

static int qc_filter(int argc, char **argv, QUEUE_VIEW_FILTER *f, STR *out)
{
    const char *q = qc_opt(argc, argv, "queues");
    long    mask = 0;

    if (q && (mask = queue_view_mask_parse(q)) < 0) {
	str_printf(out, "unknown queue name: %s", q);
	return -1;
    }
    f->queues = q ? (unsigned) mask : 0;
    /* Named queues that Sluice keeps empty (maildrop): match nothing. */
    if (q && mask == 0)
	f->queues = 1u << QUEUE_VIEW_NQUEUES;
    f->domain = qc_opt(argc, argv, "domain");
    return 0;
}

static void qc_list(const char *queue_id, qmgr_msg_fn fn, void *ctx, long *result)
{
    QMGR_CONTROL ctl;

    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_LIST;
    ctl.queue_id = queue_id;
    ctl.list_fn = fn;
    ctl.list_ctx = ctx;
    queue_service_control(&ctl);
    if (result)
	*result = ctl.result;
}

/* ---- flush ---------------------------------------------------------------- */

static int qc_flush(int argc, char **argv, STR *out, void *ctx)
{
    QMGR_CONTROL ctl;

    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_FLUSH_ALL;
    queue_service_control(&ctl);
    return 0;
}

static int qc_flush_site(int argc, char **argv, STR *out, void *ctx)
{
    QMGR_CONTROL ctl;

    if (argc != 2 || *argv[1] == 0) {
	str_puts(out, "usage: flush-site SITE");
	return 1;
    }
    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_FLUSH_SITE;
    ctl.site = argv[1];
    queue_service_control(&ctl);
    str_printf(out, "%ld\n", ctl.result);
    return 0;
}

/* ---- queue-list ------------------------------------------------------------ */

typedef struct QC_ENTRY {
    char    id[QUEUE_ID_MAX];
    size_t  size;
    STR     text;
} QC_ENTRY;

typedef struct QC_PAGE {
    QUEUE_VIEW_FILTER filter;
    const char *after;
    bool    json;
    bool    long_ids;
    QC_ENTRY *heap;			/* max-heap by ID */
    size_t  n, cap;
} QC_PAGE;

static void qc_heap_down(QC_ENTRY *h, size_t n, size_t i)
{
    for (;;) {
	size_t  l = 2 * i + 1, r = l + 1, m = i;
	QC_ENTRY t;

	if (l < n && qc_id_cmp(h[l].id, h[m].id) > 0)
	    m = l;
	if (r < n && qc_id_cmp(h[r].id, h[m].id) > 0)
	    m = r;
	if (m == i)
	    return;
	t = h[i];
	h[i] = h[m];
	h[m] = t;
	i = m;
    }
}

static void qc_heap_up(QC_ENTRY *h, size_t i)
{
    while (i > 0) {
	size_t  p = (i - 1) / 2;
	QC_ENTRY t;

	if (qc_id_cmp(h[i].id, h[p].id) <= 0)
	    return;
	t = h[i];
	h[i] = h[p];
	h[p] = t;
	i = p;
    }
}

static void qc_page_format(QC_PAGE *pg, QC_ENTRY *e, const QUEUE_VIEW_MSG *m)
{
    memcpy(e->id, m->msg->queue_id, QUEUE_ID_MAX);
    e->size = m->size;
    str_reset(&e->text);
    if (pg->json)
	queue_view_json(&e->text, m);
    else
	queue_view_mailq(&e->text, m, pg->long_ids);
}

static void qc_page_add(void *ctx, const QMGR_MSG_INFO *info)
{
    QC_PAGE *pg = ctx;
    QUEUE_VIEW_MSG m;

    if (pg->after && qc_id_cmp(info->msg->queue_id, pg->after) <= 0)
	return;
    qc_view(info, &m);
    if (!queue_view_match(&pg->filter, &m))
	return;
    if (pg->n < pg->cap) {
	str_init(&pg->heap[pg->n].text);
	qc_page_format(pg, &pg->heap[pg->n], &m);
	qc_heap_up(pg->heap, pg->n++);
    } else if (qc_id_cmp(info->msg->queue_id, pg->heap[0].id) < 0) {
	qc_page_format(pg, &pg->heap[0], &m);
	qc_heap_down(pg->heap, pg->n, 0);
    }
}

static int qc_entry_cmp(const void *a, const void *b)
{
    return qc_id_cmp(((const QC_ENTRY *) a)->id, ((const QC_ENTRY *) b)->id);
}

static int qc_queue_list(int argc, char **argv, STR *out, void *ctx)
{
    QC_PAGE pg;
    const char *fmt = qc_opt(argc, argv, "fmt");
    const char *lg = qc_opt(argc, argv, "long");

    memset(&pg, 0, sizeof(pg));
    if (qc_filter(argc, argv, &pg.filter, out) < 0)
	return 1;
    pg.after = qc_opt(argc, argv, "after");
    pg.json = fmt && strcmp(fmt, "j") == 0;
    pg.long_ids = lg && strcmp(lg, "1") == 0;
    pg.cap = QUEUE_CTL_LIST_PAGE;
    pg.heap = mem_alloc(pg.cap * sizeof(*pg.heap));
    qc_list(NULL, qc_page_add, &pg, NULL);
    qsort(pg.heap, pg.n, sizeof(*pg.heap), qc_entry_cmp);
    str_printf(out, "more %d\n", pg.n == pg.cap);
    for (size_t i = 0; i < pg.n; i++) {
	str_printf(out, "%s %zu %zu\n", pg.heap[i].id, pg.heap[i].size, STR_LEN(&pg.heap[i].text));
	str_append(out, STR_DATA(&pg.heap[i].text), STR_LEN(&pg.heap[i].text));
	str_release(&pg.heap[i].text);
    }
    mem_free(pg.heap);
    return 0;
}

/* ---- queue-cat ------------------------------------------------------------ */

typedef struct QC_CAT {
    bool    env;
    STR    *out;
    BLOB   *content;
    enum queue_view_queue queue;
    size_t  size;
} QC_CAT;

static void qc_cat_one(void *ctx, const QMGR_MSG_INFO *info)
{
    QC_CAT *c = ctx;
    QUEUE_VIEW_MSG m;

    qc_view(info, &m);
    c->queue = m.queue;
    c->size = m.size;
    if (c->env)
	queue_view_envelope(c->out, &m);
    else if (info->msg->content)
	c->content = blob_ref(info->msg->content);
}

static int qc_queue_cat(int argc, char **argv, STR *out, void *ctx)
{
    QC_CAT  c;
    STR     body = STR_INIT;
    long    result;
    unsigned long long off = 0;

    if (argc < 3 || (strcmp(argv[2], "env") != 0 && (strcmp(argv[2], "data") != 0 || argc != 4))) {
	str_puts(out, "usage: queue-cat ID env|data OFFSET");
	return 1;
    }
    if (!queue_id_valid(argv[1])) {
	str_printf(out, "bad mail queue ID: %s", argv[1]);
	return 1;
    }
    memset(&c, 0, sizeof(c));
    c.env = strcmp(argv[2], "env") == 0;
    c.out = &body;
    if (!c.env)
	off = strtoull(argv[3], NULL, 10);
    qc_list(argv[1], qc_cat_one, &c, &result);
    if (result < 0) {
	str_printf(out, "open queue file %s: No such file or directory", argv[1]);
	str_release(&body);
	return 1;
    }
    str_printf(out, "%s %zu\n", queue_view_queue_name(c.queue), c.size);
    if (c.env) {
	str_append(out, STR_DATA(&body), STR_LEN(&body));
    } else if (c.content && off < c.content->len) {
	size_t  n = c.content->len - (size_t) off;

	str_append(out, c.content->data + off, n > QUEUE_CTL_CAT_CHUNK ? QUEUE_CTL_CAT_CHUNK : n);
    }
    if (c.content)
	blob_unref(c.content);
    str_release(&body);
    return 0;
}

/* ---- queue-op ------------------------------------------------------------- */

enum qc_op { QC_HOLD, QC_RELEASE, QC_DELETE, QC_REQUEUE, QC_FLUSH };

typedef struct QC_ITEM {
    char    id[QUEUE_ID_MAX];
    enum queue_view_queue queue;
    int     status;			/* 0 act, 1 missing, 2 skip, 3 busy */
    size_t  nroutes;
    QMGR_ROUTE *routes;			/* requeue: live recipients */
    char  **addr;			/* their addresses, to resolve */
} QC_ITEM;

typedef struct QC_SET {
    QUEUE_VIEW_FILTER filter;
    const char *after;
    bool    want_rcpts;
    QC_ITEM *v;
    size_t  n, cap;
} QC_SET;

static void qc_set_fill(QC_ITEM *it, const QMGR_MSG_INFO *info, bool want_rcpts)
{
    it->queue = qc_queue_of(info->state);
    if (!want_rcpts || info->state == QMGR_MSG_ACTIVE)
	return;
    it->routes = mem_calloc(info->msg->nrcpt + 1, sizeof(*it->routes));
    it->addr = mem_calloc(info->msg->nrcpt + 1, sizeof(*it->addr));
    for (size_t i = 0; i < info->msg->nrcpt; i++) {
	if (!queue_view_rcpt_live(&info->msg->rcpt[i]))
	    continue;
	it->routes[it->nroutes].rcpt_index = i;
	it->addr[it->nroutes++] = mem_strdup(info->msg->rcpt[i].address);
    }
}

static void qc_set_add(void *ctx, const QMGR_MSG_INFO *info)
{
    QC_SET *s = ctx;
    QUEUE_VIEW_MSG m;

    if (s->after && qc_id_cmp(info->msg->queue_id, s->after) <= 0)
	return;
    qc_view(info, &m);
    if (!queue_view_match(&s->filter, &m))
	return;
    if (s->n == s->cap) {
	s->cap = s->cap ? 2 * s->cap : 64;
	s->v = mem_realloc(s->v, s->cap * sizeof(*s->v));
    }
    memset(&s->v[s->n], 0, sizeof(s->v[0]));
    memcpy(s->v[s->n].id, info->msg->queue_id, QUEUE_ID_MAX);
    s->v[s->n].queue = m.queue;
    s->n++;
}

static void qc_set_one(void *ctx, const QMGR_MSG_INFO *info)
{
    QC_SET *s = ctx;
    QC_ITEM *it = &s->v[s->n - 1];
    QUEUE_VIEW_MSG m;

    qc_view(info, &m);
    if (!queue_view_match(&s->filter, &m))
	it->status = 1;
    else
	qc_set_fill(it, info, s->want_rcpts);
}

static void qc_set_detail(void *ctx, const QMGR_MSG_INFO *info)
{
    qc_set_fill(ctx, info, true);
}

static int qc_item_cmp(const void *a, const void *b)
{
    return qc_id_cmp(((const QC_ITEM *) a)->id, ((const QC_ITEM *) b)->id);
}

/* Counts completions from the journal writer or the qmgr thread. */
typedef struct QC_COUNT {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t  pending;
    int     status;
} QC_COUNT;

static void qc_count_done(QC_COUNT *c, int status)
{
    pthread_mutex_lock(&c->lock);
    if (status && c->status == 0)
	c->status = status;
    if (--c->pending == 0)
	pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void qc_journal_done(void *ctx, int status)
{
    qc_count_done(ctx, status);
}

static void qc_qmgr_done(QMGR_CONTROL *ctl)
{
    qc_count_done(ctl->ctx, 0);
}

static void qc_count_wait(QC_COUNT *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->pending)
	pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

/* Resolves the live recipients of it with the current configuration. */
static int qc_requeue_routes(REWRITE *rw, QC_ITEM *it, STR *why)
{
    for (size_t k = 0; k < it->nroutes; k++) {
	RESOLVED res;

	resolved_init(&res);
	if (rewrite_resolve(rw, it->addr[k], &res) < 0) {
	    str_printf(why, "%s: address resolution failed (table lookup error)", it->id);
	    resolved_release(&res);
	    return -1;
	}
	it->routes[k].transport = mem_strdup(STR_DATA(&res.transport));
	it->routes[k].nexthop = mem_strdup(STR_DATA(&res.nexthop));
	resolved_release(&res);
    }
    return 0;
}

static void qc_item_free(QC_ITEM *it)
{
    for (size_t k = 0; k < it->nroutes; k++) {
	mem_free(it->addr[k]);
	mem_free((char *) it->routes[k].transport);
	mem_free((char *) it->routes[k].nexthop);
    }
    mem_free(it->addr);
    mem_free(it->routes);
}

static int qc_queue_op(int argc, char **argv, STR *out, void *ctx)
{
    static const char *const names[] = {"hold", "release", "delete", "requeue", "flush"};
    static const char *const logs[] = {"placed on hold", "released from hold", NULL,
	"requeued", NULL};
    static const enum qmgr_ctl_op qops[] = {QMGR_CTL_HOLD, QMGR_CTL_RELEASE, QMGR_CTL_DELETE,
	QMGR_CTL_REQUEUE, QMGR_CTL_FLUSH_MESSAGE};
    static const enum journal_op jops[] = {JOURNAL_OP_HOLD, JOURNAL_OP_RELEASE,
	JOURNAL_OP_DELETE, 0, 0};
    QC_SET  set;
    QC_COUNT cnt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    QMGR_CONTROL *ctl = NULL;
    REWRITE *rw = NULL;
    bool    all = false, more = false;
    int     op = -1, rc = 0;
    size_t  nact = 0;
    JOURNAL *j = queue_service_journal();
    const char *service = msg_service();

    for (int i = 0; argc > 1 && i < 5; i++)
	if (strcmp(argv[1], names[i]) == 0)
	    op = i;
    if (op < 0) {
	str_puts(out, "usage: queue-op hold|release|delete|requeue|flush [options] all|ID...");
	return 1;
    }
    memset(&set, 0, sizeof(set));
    if (qc_filter(argc, argv, &set.filter, out) < 0)
	return 1;
    set.want_rcpts = op == QC_REQUEUE;
    for (int i = 2; i < argc; i++)
	if (strcmp(argv[i], "all") == 0)
	    all = true;

    /* 1. Which messages: a walk for "all", a lookup per ID otherwise. */
    if (all) {
	set.after = qc_opt(argc, argv, "after");
	qc_list(NULL, qc_set_add, &set, NULL);
	qsort(set.v, set.n, sizeof(*set.v), qc_item_cmp);
	if (set.n > QUEUE_CTL_OP_PAGE) {
	    set.n = QUEUE_CTL_OP_PAGE;
	    more = true;
	}
	for (size_t k = 0; k < set.n; k++) {
	    long    result;

	    if (set.want_rcpts) {
		qc_list(set.v[k].id, qc_set_detail, &set.v[k], &result);
		if (result < 0)
		    set.v[k].status = 1;
	    }
	}
	/* The walk's state may be stale for a few; qmgr has the last word. */
    } else {
	for (int i = 2; i < argc; i++) {
	    long    result;

	    if (qc_is_opt(argv[i]))
		continue;
	    if (!queue_id_valid(argv[i])) {
		str_printf(out, "invalid %s\n", argv[i]);
		continue;
	    }
	    if (set.n == set.cap) {
		set.cap = set.cap ? 2 * set.cap : 64;
		set.v = mem_realloc(set.v, set.cap * sizeof(*set.v));
	    }
	    memset(&set.v[set.n], 0, sizeof(set.v[0]));
	    snprintf(set.v[set.n].id, QUEUE_ID_MAX, "%s", argv[i]);
	    set.n++;
	    qc_list(argv[i], qc_set_one, &set, &result);
	    if (result < 0)
		set.v[set.n - 1].status = 1;
	}
    }
    if (all && set.want_rcpts)
	for (size_t k = 0; k < set.n; k++)
	    if (set.v[k].status == 0 && set.v[k].queue == QUEUE_VIEW_ACTIVE)
		set.v[k].status = 3;

    /* 2. Which of them this operation changes. */
    for (size_t k = 0; k < set.n; k++) {
	QC_ITEM *it = &set.v[k];

	if (it->status)
	    continue;
	if ((op == QC_HOLD && it->queue == QUEUE_VIEW_HOLD)
	    || (op == QC_RELEASE && it->queue != QUEUE_VIEW_HOLD))
	    it->status = 2;
	else if (op == QC_REQUEUE && it->queue == QUEUE_VIEW_ACTIVE)
	    it->status = 3;
    }
    if (op == QC_REQUEUE) {
	REWRITE_CONFIG rcfg;
	STR     err = STR_INIT;

	rewrite_config_from_params(&rcfg);
	if ((rw = rewrite_create(&rcfg, &err)) == NULL) {
	    str_reset(out);
	    str_printf(out, "requeue: trivial-rewrite: %s", STR_DATA(&err));
	    str_release(&err);
	    rc = 1;
	    goto done;
	}
	for (size_t k = 0; k < set.n; k++)
	    if (set.v[k].status == 0 && qc_requeue_routes(rw, &set.v[k], &err) < 0) {
		msg_warn("requeue: %s", STR_DATA(&err));
		str_reset(&err);
		set.v[k].status = 3;
	    }
	str_release(&err);
    }

    /* 3. The journal first: all records, one wait. */
    if (op != QC_FLUSH) {
	for (size_t k = 0; k < set.n; k++)
	    if (set.v[k].status == 0)
		nact++;
	cnt.pending = nact + 1;
	for (size_t k = 0; k < set.n; k++) {
	    QC_ITEM *it = &set.v[k];

	    if (it->status)
		continue;
	    if (op == QC_REQUEUE) {
		JOURNAL_ROUTE *jr = mem_calloc(it->nroutes + 1, sizeof(*jr));

		for (size_t r = 0; r < it->nroutes; r++) {
		    jr[r].rcpt_index = it->routes[r].rcpt_index;
		    jr[r].transport = it->routes[r].transport;
		    jr[r].nexthop = it->routes[r].nexthop;
		}
		journal_append_requeue(j, it->id, it->nroutes, jr, qc_journal_done, &cnt);
		mem_free(jr);
	    } else {
		journal_append_control(j, it->id, jops[op], qc_journal_done, &cnt);
	    }
	}
	qc_count_done(&cnt, 0);
	qc_count_wait(&cnt);
	if (cnt.status) {
	    str_reset(out);
	    str_printf(out, "journal: %s; nothing changed", strerror(cnt.status));
	    rc = 1;
	    goto done;
	}
    }

    /* 4. Then qmgr, all operations queued at once. */
    ctl = mem_calloc(set.n + 1, sizeof(*ctl));
    cnt.pending = 1;
    for (size_t k = 0; k < set.n; k++) {
	if (set.v[k].status)
	    continue;
	ctl[k].op = qops[op];
	ctl[k].queue_id = set.v[k].id;
	ctl[k].routes = set.v[k].routes;
	ctl[k].nroutes = set.v[k].nroutes;
	ctl[k].done = qc_qmgr_done;
	ctl[k].ctx = &cnt;
	pthread_mutex_lock(&cnt.lock);
	cnt.pending++;
	pthread_mutex_unlock(&cnt.lock);
	queue_service_control_async(&ctl[k]);
    }
    qc_count_done(&cnt, 0);
    qc_count_wait(&cnt);

    msg_service_set("postsuper");
    for (size_t k = 0; k < set.n; k++) {
	QC_ITEM *it = &set.v[k];

	if (it->status == 0 && ctl[k].result < 0)
	    it->status = ctl[k].result == -2 ? 3 : 1;
	switch (it->status) {
	case 0:
	    if (logs[op])
		msg_info("%s: %s", it->id, logs[op]);
	    str_printf(out, "done %s\n", it->id);
	    break;
	case 1:
	    if (!all)
		str_printf(out, "missing %s\n", it->id);
	    break;
	case 3:
	    str_printf(out, "busy %s\n", it->id);
	    break;
	default:
	    break;
	}
    }
    msg_service_set(service);
    if (all)
	str_printf(out, "more %d %s\n", more, set.n ? set.v[set.n - 1].id : "0");
done:
    for (size_t k = 0; k < set.n; k++)
	qc_item_free(&set.v[k]);
    mem_free(set.v);
    mem_free(ctl);
    if (rw)
	rewrite_free(rw);
    return rc;
}

/* ---- qshape ---------------------------------------------------------------- */

typedef struct QC_SHAPE {
    QUEUE_VIEW_FILTER filter;
    QUEUE_VIEW_SHAPE shape;
} QC_SHAPE;

static void qc_shape_add(void *ctx, const QMGR_MSG_INFO *info)
{
    QC_SHAPE *s = ctx;
    QUEUE_VIEW_MSG m;

    qc_view(info, &m);
    if (queue_view_match(&s->filter, &m))
	queue_view_shape_add(&s->shape, &m);
}

static int qc_queue_shape(int argc, char **argv, STR *out, void *ctx)
{
    QC_SHAPE s;
    const char *by = qc_opt(argc, argv, "by");
    const char *mins = qc_opt(argc, argv, "minutes");
    const char *nb = qc_opt(argc, argv, "buckets");

    memset(&s, 0, sizeof(s));
    if (qc_filter(argc, argv, &s.filter, out) < 0)
	return 1;
    queue_view_shape_init(&s.shape, by && strcmp(by, "s") == 0, mins ? atoi(mins) : 5,
			  nb ? atoi(nb) : 10, time_real_us());
    qc_list(NULL, qc_shape_add, &s, NULL);
    queue_view_shape_sort(&s.shape);
    queue_view_shape_export(&s.shape, out);
    queue_view_shape_free(&s.shape);
    return 0;
}

/* ---- per destination ----------------------------------------------------- */

typedef struct QC_DEST {
    const char *domain;
    STR    *out;
} QC_DEST;

static void qc_dest_one(void *ctx, const QMGR_DEST_INFO *d)
{
    QC_DEST *c = ctx;
    char    rate[64] = "0";

    if (c->domain && *c->domain) {
	QUEUE_VIEW_FILTER f = {0, c->domain};
	RCPT    r = {.address = "", .nexthop = (char *) d->nexthop, .state = RCPT_PENDING};
	MESSAGE msg = {.rcpt = &r, .nrcpt = 1};
	QUEUE_VIEW_MSG m = {.msg = &msg};

	if (!queue_view_match(&f, &m))
	    return;
    }
    if (d->rate.count)
	snprintf(rate, sizeof(rate), "%u/%llds", d->rate.count,
		 (long long) (d->rate.period_ns / TIME_NS_PER_SEC));
    /* transport nexthop queued active window limit rate delay_s dead
     * dead_until delivered failed last_error */
    str_printf(c->out, "%s\t%s\t%zu\t%zu\t%d\t%d\t%s\t%lld\t%d\t%lld\t%llu\t%llu\t%s\n",
	       d->transport, d->nexthop, d->queued_rcpts, d->active_requests, d->window,
	       d->limit, rate, (long long) (d->rate_delay_ns / TIME_NS_PER_SEC), d->dead,
	       (long long) (d->dead_until_us / 1000000), (unsigned long long) d->delivered,
	       (unsigned long long) d->failed, d->last_error ? d->last_error : "");
}

static int qc_queue_dest(int argc, char **argv, STR *out, void *ctx)
{
    QC_DEST c = {argc > 1 ? argv[1] : NULL, out};
    QMGR_CONTROL ctl;

    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_LIST_DEST;
    ctl.dest_fn = qc_dest_one;
    ctl.list_ctx = &c;
    queue_service_control(&ctl);
    return 0;
}

/* ---- counters -------------------------------------------------------------- */

typedef struct QC_RCPTS {
    uint64_t pending, deferred;
    uint64_t bytes;
} QC_RCPTS;

static void qc_rcpts_add(void *ctx, const QMGR_MSG_INFO *info)
{
    QC_RCPTS *c = ctx;

    c->bytes += info->size;
    for (size_t i = 0; i < info->msg->nrcpt; i++) {
	if (info->msg->rcpt[i].state == RCPT_PENDING)
	    c->pending++;
	else if (info->msg->rcpt[i].state == RCPT_DEFERRED)
	    c->deferred++;
    }
}

static void qc_collect(QMGR_STATS *qs, JOURNAL_STATS *js, QC_RCPTS *rc)
{
    QMGR_CONTROL ctl;

    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_STATS;
    queue_service_control(&ctl);
    *qs = ctl.stats;
    memset(js, 0, sizeof(*js));
    if (queue_service_journal())
	journal_stats(queue_service_journal(), js);
    memset(rc, 0, sizeof(*rc));
    qc_list(NULL, qc_rcpts_add, rc, NULL);
}

static int qc_queue_stats(int argc, char **argv, STR *out, void *ctx)
{
    QMGR_STATS qs;
    JOURNAL_STATS js;
    QC_RCPTS rc;

    qc_collect(&qs, &js, &rc);
    str_printf(out, "queue messages %zu incoming %zu active %zu deferred %zu hold %zu "
	       "bytes %llu\n", qs.messages, qs.incoming, qs.active, qs.deferred, qs.hold,
	       (unsigned long long) rc.bytes);
    str_printf(out, "queue recipients pending %llu deferred %llu active %zu destinations %zu\n",
	       (unsigned long long) rc.pending, (unsigned long long) rc.deferred,
	       qs.active_rcpts, qs.destinations);
    str_printf(out, "queue requests out %zu dispatched %llu completed %llu\n", qs.requests_out,
	       (unsigned long long) qs.requests_dispatched,
	       (unsigned long long) qs.requests_completed);
    str_printf(out, "recipients sent %llu bounced %llu deferred %llu dropped %llu\n",
	       (unsigned long long) __atomic_load_n(&qc_outcomes[RCPT_SENT], __ATOMIC_RELAXED),
	       (unsigned long long) __atomic_load_n(&qc_outcomes[RCPT_BOUNCED], __ATOMIC_RELAXED),
	       (unsigned long long) __atomic_load_n(&qc_outcomes[RCPT_DEFERRED], __ATOMIC_RELAXED),
	       (unsigned long long) __atomic_load_n(&qc_outcomes[RCPT_DROPPED], __ATOMIC_RELAXED));
    str_printf(out, "journal records %llu batches %llu syncs %llu bytes %llu segments %llu "
	       "disk_bytes %llu live_messages %llu live_bytes %llu compacted %llu enospc %llu\n",
	       (unsigned long long) js.records, (unsigned long long) js.batches,
	       (unsigned long long) js.syncs, (unsigned long long) js.bytes,
	       (unsigned long long) js.segments, (unsigned long long) js.disk_bytes,
	       (unsigned long long) js.live_messages, (unsigned long long) js.live_bytes,
	       (unsigned long long) js.compacted, (unsigned long long) js.enospc);
    return 0;
}

static void qc_metric(STR *out, const char *name, const char *type, const char *help)
{
    str_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void qc_metric_dest(void *ctx, const QMGR_DEST_INFO *d)
{
    STR    *out = ctx;

    str_puts(out, "sluice_destination_queued_recipients{transport=\"");
    queue_view_json_quote(out, d->transport);
    str_puts(out, "\",nexthop=\"");
    queue_view_json_quote(out, d->nexthop);
    str_printf(out, "\"} %zu\n", d->queued_rcpts);
    str_puts(out, "sluice_destination_active_requests{transport=\"");
    queue_view_json_quote(out, d->transport);
    str_puts(out, "\",nexthop=\"");
    queue_view_json_quote(out, d->nexthop);
    str_printf(out, "\"} %zu\n", d->active_requests);
}

void queue_ctl_metrics(STR *out)
{
    static const char *const st_names[] = {"pending", "deferred", "sent", "bounced", "dropped"};
    QMGR_STATS qs;
    JOURNAL_STATS js;
    QC_RCPTS rc;
    QMGR_CONTROL ctl;
    STAGE  *stages[64];
    size_t  n;

    qc_collect(&qs, &js, &rc);
    qc_metric(out, "sluice_queue_messages", "gauge", "Messages in the queue, by queue");
    str_printf(out, "sluice_queue_messages{queue=\"incoming\"} %zu\n", qs.incoming);
    str_printf(out, "sluice_queue_messages{queue=\"active\"} %zu\n", qs.active);
    str_printf(out, "sluice_queue_messages{queue=\"deferred\"} %zu\n", qs.deferred);
    str_printf(out, "sluice_queue_messages{queue=\"hold\"} %zu\n", qs.hold);
    qc_metric(out, "sluice_queue_bytes", "gauge", "Content bytes of the queued messages");
    str_printf(out, "sluice_queue_bytes %llu\n", (unsigned long long) rc.bytes);
    qc_metric(out, "sluice_heap_allocated_bytes", "gauge",
	      "Heap bytes in use (queued content waits in the page cache instead)");
    str_printf(out, "sluice_heap_allocated_bytes %zu\n", mem_heap_allocated());
    qc_metric(out, "sluice_queue_recipients", "gauge", "Queued recipients, by state");
    str_printf(out, "sluice_queue_recipients{state=\"pending\"} %llu\n",
	       (unsigned long long) rc.pending);
    str_printf(out, "sluice_queue_recipients{state=\"deferred\"} %llu\n",
	       (unsigned long long) rc.deferred);
    qc_metric(out, "sluice_recipients_total", "counter",
	      "Recipient outcomes since the engine started");
    for (int s = RCPT_DEFERRED; s <= RCPT_DROPPED; s++)
	str_printf(out, "sluice_recipients_total{status=\"%s\"} %llu\n", st_names[s],
		   (unsigned long long) __atomic_load_n(&qc_outcomes[s], __ATOMIC_RELAXED));
    qc_metric(out, "sluice_delivery_requests_total", "counter",
	      "Delivery requests handed to agents and completed");
    str_printf(out, "sluice_delivery_requests_total{event=\"dispatched\"} %llu\n",
	       (unsigned long long) qs.requests_dispatched);
    str_printf(out, "sluice_delivery_requests_total{event=\"completed\"} %llu\n",
	       (unsigned long long) qs.requests_completed);
    qc_metric(out, "sluice_destination_queued_recipients", "gauge",
	      "Recipients waiting per destination");
    qc_metric(out, "sluice_destination_active_requests", "gauge",
	      "Delivery requests out per destination");
    memset(&ctl, 0, sizeof(ctl));
    ctl.op = QMGR_CTL_LIST_DEST;
    ctl.dest_fn = qc_metric_dest;
    ctl.list_ctx = out;
    queue_service_control(&ctl);
    n = stage_all(stages, 64);
    STAGE_STATS st[64];			/* one snapshot per stage, used thrice */

    for (size_t i = 0; i < n; i++)
	stage_stats(stages[i], &st[i]);
    qc_metric(out, "sluice_stage_events_total", "counter", "Events into and out of each stage");
    for (size_t i = 0; i < n; i++) {
	str_printf(out, "sluice_stage_events_total{stage=\"%s\",dir=\"in\"} %llu\n", st[i].name,
		   (unsigned long long) st[i].events_in);
	str_printf(out, "sluice_stage_events_total{stage=\"%s\",dir=\"out\"} %llu\n", st[i].name,
		   (unsigned long long) st[i].events_out);
    }
    qc_metric(out, "sluice_stage_queue_depth", "gauge", "Events in a stage not yet finished");
    for (size_t i = 0; i < n; i++)
	str_printf(out, "sluice_stage_queue_depth{stage=\"%s\"} %llu\n", st[i].name,
		   (unsigned long long) st[i].inflight);
    qc_metric(out, "sluice_stage_busy_seconds_total", "counter", "Time a stage's threads worked");
    for (size_t i = 0; i < n; i++)
	str_printf(out, "sluice_stage_busy_seconds_total{stage=\"%s\"} %.3f\n", st[i].name,
		   (double) st[i].busy_ns / 1e9);
    qc_metric(out, "sluice_journal_records_total", "counter", "Journal records committed");
    str_printf(out, "sluice_journal_records_total %llu\n", (unsigned long long) js.records);
    qc_metric(out, "sluice_journal_syncs_total", "counter", "Journal fdatasync calls");
    str_printf(out, "sluice_journal_syncs_total %llu\n", (unsigned long long) js.syncs);
    qc_metric(out, "sluice_journal_sync_seconds", "histogram", "Journal fdatasync latency");
    for (size_t b = 0, cum = 0; b < JOURNAL_SYNC_BUCKETS; b++) {
	cum += js.sync_hist[b];
	if (b < JOURNAL_SYNC_BUCKETS - 1)
	    str_printf(out, "sluice_journal_sync_seconds_bucket{le=\"%g\"} %zu\n",
		       (double) journal_sync_bucket_us[b] / 1e6, cum);
	else
	    str_printf(out, "sluice_journal_sync_seconds_bucket{le=\"+Inf\"} %zu\n"
		       "sluice_journal_sync_seconds_sum %.6f\n"
		       "sluice_journal_sync_seconds_count %zu\n",
		       cum, (double) js.sync_ns_total / 1e9, cum);
    }
    qc_metric(out, "sluice_journal_batches_total", "counter", "Journal group-commit writes");
    str_printf(out, "sluice_journal_batches_total %llu\n", (unsigned long long) js.batches);
    qc_metric(out, "sluice_journal_bytes_total", "counter", "Journal bytes written");
    str_printf(out, "sluice_journal_bytes_total %llu\n", (unsigned long long) js.bytes);
    qc_metric(out, "sluice_journal_disk_bytes", "gauge", "Size of the journal's segment files");
    str_printf(out, "sluice_journal_disk_bytes %llu\n", (unsigned long long) js.disk_bytes);
    qc_metric(out, "sluice_journal_segments", "gauge", "Journal segment files");
    str_printf(out, "sluice_journal_segments %llu\n", (unsigned long long) js.segments);
}

static int qc_queue_metrics(int argc, char **argv, STR *out, void *ctx)
{
    queue_ctl_metrics(out);
    return 0;
}

/* ---- registration ------------------------------------------------------- */

void queue_ctl_register(void)
{
    STR     why = STR_INIT;

    ctl_register("flush", qc_flush, NULL);
    ctl_register("flush-site", qc_flush_site, NULL);
    ctl_register("queue-list", qc_queue_list, NULL);
    ctl_register("queue-cat", qc_queue_cat, NULL);
    ctl_register("queue-op", qc_queue_op, NULL);
    ctl_register("queue-shape", qc_queue_shape, NULL);
    ctl_register("queue-dest", qc_queue_dest, NULL);
    ctl_register("queue-stats", qc_queue_stats, NULL);
    ctl_register("queue-metrics", qc_queue_metrics, NULL);
    if (*param_str(P_METRICS_LISTEN)
	&& metrics_start(param_str(P_METRICS_LISTEN), queue_ctl_metrics, &why) < 0)
	msg_warn("metrics_listen = %s: %s; no metrics endpoint",
		 param_str(P_METRICS_LISTEN), STR_DATA(&why));
    str_release(&why);
}

void queue_ctl_stop(void)
{
    metrics_stop();
}
