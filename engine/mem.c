/*
 * mem.c - allocation that never returns NULL (see mem.h).
 *
 * Diagnostics: fatal "out of memory" naming the requested size.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>
#endif

#include "engine/mem.h"
#include "engine/msg.h"

static void mem_die(size_t len)
{
    msg_fatal("out of memory: could not allocate %zu bytes", len);
}

void *mem_alloc(size_t len)
{
    void *p = malloc(len ? len : 1);

    if (p == NULL)
	mem_die(len);
    return p;
}

void *mem_calloc(size_t n, size_t len)
{
    void *p;

    if (len && n > SIZE_MAX / len)
	msg_panic("mem_calloc: overflow %zu x %zu", n, len);
    p = calloc(n ? n : 1, len ? len : 1);
    if (p == NULL)
	mem_die(n * len);
    return p;
}

void *mem_realloc(void *ptr, size_t len)
{
    void *p = realloc(ptr, len ? len : 1);

    if (p == NULL)
	mem_die(len);
    return p;
}

char *mem_strdup(const char *s)
{
    return mem_memdup(s, strlen(s) + 1);
}

char *mem_strndup(const char *s, size_t len)
{
    size_t n = strnlen(s, len);
    char *p = mem_alloc(n + 1);

    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *mem_memdup(const void *src, size_t len)
{
    void *p = mem_alloc(len);

    memcpy(p, src, len);
    return p;
}

void mem_free(void *ptr)
{
    free(ptr);
}

size_t mem_heap_allocated(void)
{
#ifdef HAVE_JEMALLOC
    uint64_t epoch = 1;
    size_t  sz = sizeof(epoch);
    size_t  allocated = 0;

    /* The statistics are a snapshot refreshed by advancing the epoch. */
    (void) mallctl("epoch", &epoch, &sz, &epoch, sz);
    sz = sizeof(allocated);
    (void) mallctl("stats.allocated", &allocated, &sz, NULL, 0);
    return allocated;
#else
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
#endif
}
