/*
 * mem.h - allocation that never returns NULL.
 *
 * Every allocation in Sluice goes through these. Out of memory is logged with
 * msg_fatal() and the process exits: no caller checks for NULL.
 * Thread safe (the underlying allocator is).
 */
#ifndef SLUICE_MEM_H
#define SLUICE_MEM_H

#include <stddef.h>

void *mem_alloc(size_t len);
void *mem_calloc(size_t n, size_t len);
void *mem_realloc(void *ptr, size_t len);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t len);
void *mem_memdup(const void *p, size_t len);
void  mem_free(void *ptr);

/* Bytes the allocator has handed out and not got back (jemalloc's
 * stats.allocated, else the C library's mallinfo2). */
size_t mem_heap_allocated(void);

#define MEM_NEW(type)     ((type *) mem_calloc(1, sizeof(type)))

#endif
