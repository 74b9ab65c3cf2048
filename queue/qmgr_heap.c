/*
 * qmgr_heap.c - binary min-heap of timers for the queue manager.
 *
 * Each QMGR_TIMER is embedded in the object it times (a destination queue,
 * a deferred message) and remembers its position, so moving or cancelling a
 * timer is O(log n) without searching. Ties keep no particular order.
 *
 * Threading: the qmgr thread only. Diagnostics: none (mem_* never fails).
 */
#include "config.h"

#include "engine/mem.h"
#include "queue/qmgr_priv.h"

void qmgr_heap_init(QMGR_HEAP *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

void qmgr_heap_free(QMGR_HEAP *h)
{
    mem_free(h->v);
    qmgr_heap_init(h);
}

static inline void qmgr_heap_place(QMGR_HEAP *h, size_t i, QMGR_TIMER *t)
{
    h->v[i] = t;
    t->idx = (uint32_t) (i + 1);
}

static void qmgr_heap_up(QMGR_HEAP *h, size_t i)
{
    QMGR_TIMER *t = h->v[i];

    while (i > 0) {
	size_t  parent = (i - 1) / 2;

	if (h->v[parent]->when <= t->when)
	    break;
	qmgr_heap_place(h, i, h->v[parent]);
	i = parent;
    }
    qmgr_heap_place(h, i, t);
}

static void qmgr_heap_down(QMGR_HEAP *h, size_t i)
{
    QMGR_TIMER *t = h->v[i];

    for (;;) {
	size_t  c = 2 * i + 1;

	if (c >= h->n)
	    break;
	if (c + 1 < h->n && h->v[c + 1]->when < h->v[c]->when)
	    c++;
	if (h->v[c]->when >= t->when)
	    break;
	qmgr_heap_place(h, i, h->v[c]);
	i = c;
    }
    qmgr_heap_place(h, i, t);
}

void qmgr_heap_set(QMGR_HEAP *h, QMGR_TIMER *t, int64_t when)
{
    if (t->idx == 0) {
	if (h->n == h->cap) {
	    h->cap = h->cap ? 2 * h->cap : 64;
	    h->v = mem_realloc(h->v, h->cap * sizeof(*h->v));
	}
	t->when = when;
	qmgr_heap_place(h, h->n++, t);
	qmgr_heap_up(h, h->n - 1);
    } else {
	int64_t old = t->when;

	t->when = when;
	if (when < old)
	    qmgr_heap_up(h, t->idx - 1);
	else
	    qmgr_heap_down(h, t->idx - 1);
    }
}

void qmgr_heap_remove(QMGR_HEAP *h, QMGR_TIMER *t)
{
    size_t  i;
    QMGR_TIMER *last;

    if (t->idx == 0)
	return;
    i = t->idx - 1;
    t->idx = 0;
    last = h->v[--h->n];
    if (i == h->n)
	return;
    qmgr_heap_place(h, i, last);
    if (i > 0 && h->v[(i - 1) / 2]->when > last->when)
	qmgr_heap_up(h, i);
    else
	qmgr_heap_down(h, i);
}
