/*
 * anvil.c - in-process client limits (see anvil.h).
 *
 * An open hash table keyed by the client address string, protected by one
 * mutex: the work per call is tiny compared with a TCP accept, so contention
 * does not matter at the connection rates a 2-core box sees. Expired
 * entries are swept when the table would grow.
 *
 * Diagnostics: none; callers log the limit violations.
 */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <stdint.h>

#include "engine/mem.h"
#include "engine/timeutil.h"
#include "stages/anvil.h"

typedef struct ANVIL_ENTRY {
    struct ANVIL_ENTRY *next;
    int     count;		/* open connections */
    int     conn_rate;
    int64_t conn_start;		/* window start, monotonic ns */
    int     mail_rate;
    int64_t mail_start;
    int64_t last_ns;		/* last event, for expiry */
    char    addr[];
} ANVIL_ENTRY;

static pthread_mutex_t anvil_lock = PTHREAD_MUTEX_INITIALIZER;
static ANVIL_ENTRY **anvil_table;
static size_t anvil_size;		/* buckets, power of two */
static size_t anvil_used;
static int64_t anvil_max_unit_ns = 60 * TIME_NS_PER_SEC;

static uint64_t anvil_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

    while (*s)
	h = (h ^ (unsigned char) *s++) * 1099511628211ULL;
    return h;
}

/* Drops entries without connections that have been quiet for a unit. */
static void anvil_sweep(int64_t now)
{
    for (size_t i = 0; i < anvil_size; i++) {
	ANVIL_ENTRY **pp = &anvil_table[i];

	while (*pp) {
	    ANVIL_ENTRY *e = *pp;

	    if (e->count == 0 && now - e->last_ns > anvil_max_unit_ns) {
		*pp = e->next;
		mem_free(e);
		anvil_used--;
	    } else
		pp = &e->next;
	}
    }
}

static void anvil_grow(void)
{
    size_t nsize = anvil_size ? anvil_size * 2 : 256;
    ANVIL_ENTRY **nt = mem_calloc(nsize, sizeof(*nt));

    for (size_t i = 0; i < anvil_size; i++) {
	ANVIL_ENTRY *e = anvil_table[i], *next;

	for (; e; e = next) {
	    next = e->next;
	    size_t b = anvil_hash(e->addr) & (nsize - 1);

	    e->next = nt[b];
	    nt[b] = e;
	}
    }
    mem_free(anvil_table);
    anvil_table = nt;
    anvil_size = nsize;
}

static ANVIL_ENTRY *anvil_find(const char *addr, int64_t now, bool create)
{
    ANVIL_ENTRY *e;
    size_t b;

    if (anvil_size == 0) {
	if (!create)
	    return NULL;
	anvil_grow();
    }
    b = anvil_hash(addr) & (anvil_size - 1);
    for (e = anvil_table[b]; e; e = e->next)
	if (strcmp(e->addr, addr) == 0)
	    return e;
    if (!create)
	return NULL;
    if (anvil_used >= anvil_size) {
	anvil_sweep(now);
	if (anvil_used >= anvil_size)
	    anvil_grow();
	b = anvil_hash(addr) & (anvil_size - 1);
    }
    size_t len = strlen(addr);

    e = mem_calloc(1, sizeof(*e) + len + 1);
    memcpy(e->addr, addr, len + 1);
    e->next = anvil_table[b];
    anvil_table[b] = e;
    anvil_used++;
    return e;
}

static int anvil_tick(int *rate, int64_t *start, int64_t now, int unit_s)
{
    int64_t unit = (int64_t) (unit_s > 0 ? unit_s : 60) * TIME_NS_PER_SEC;

    if (unit > anvil_max_unit_ns)
	anvil_max_unit_ns = unit;
    if (*rate == 0 || now - *start >= unit) {
	*start = now;
	*rate = 0;
    }
    return ++*rate;
}

void anvil_connect(const char *addr, int unit_s, int *count, int *rate)
{
    int64_t now = time_mono_ns();
    ANVIL_ENTRY *e;

    pthread_mutex_lock(&anvil_lock);
    e = anvil_find(addr, now, true);
    e->count++;
    e->last_ns = now;
    *rate = anvil_tick(&e->conn_rate, &e->conn_start, now, unit_s);
    *count = e->count;
    pthread_mutex_unlock(&anvil_lock);
}

void anvil_disconnect(const char *addr)
{
    ANVIL_ENTRY *e;
    int64_t now = time_mono_ns();

    pthread_mutex_lock(&anvil_lock);
    if ((e = anvil_find(addr, now, false)) != NULL && e->count > 0) {
	e->count--;
	e->last_ns = now;
    }
    pthread_mutex_unlock(&anvil_lock);
}

int anvil_mail(const char *addr, int unit_s)
{
    int64_t now = time_mono_ns();
    ANVIL_ENTRY *e;
    int rate;

    pthread_mutex_lock(&anvil_lock);
    e = anvil_find(addr, now, true);
    e->last_ns = now;
    rate = anvil_tick(&e->mail_rate, &e->mail_start, now, unit_s);
    pthread_mutex_unlock(&anvil_lock);
    return rate;
}

void anvil_reset(void)
{
    pthread_mutex_lock(&anvil_lock);
    for (size_t i = 0; i < anvil_size; i++) {
	ANVIL_ENTRY *e = anvil_table[i], *next;

	for (; e; e = next) {
	    next = e->next;
	    mem_free(e);
	}
    }
    mem_free(anvil_table);
    anvil_table = NULL;
    anvil_size = anvil_used = 0;
    pthread_mutex_unlock(&anvil_lock);
}
