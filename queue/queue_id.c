/*
 * queue_id.c - Postfix-style queue IDs (see queue_id.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <ctype.h>

#include "engine/timeutil.h"
#include "queue/queue_id.h"

static uint64_t queue_id_last;

static void queue_id_raise(uint64_t floor)
{
    uint64_t last = __atomic_load_n(&queue_id_last, __ATOMIC_RELAXED);

    while (last < floor
	   && !__atomic_compare_exchange_n(&queue_id_last, &last, floor, false,
					   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
	 /* retry with the new last */ ;
}

void queue_id_next(char buf[QUEUE_ID_MAX])
{
    uint64_t now = (uint64_t) time_real_us();
    uint64_t last = __atomic_load_n(&queue_id_last, __ATOMIC_RELAXED);
    uint64_t next;

    do {
	next = now > last ? now : last + 1;
    } while (!__atomic_compare_exchange_n(&queue_id_last, &last, next, false,
					  __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    snprintf(buf, QUEUE_ID_MAX, "%llX", (unsigned long long) next);
}

bool queue_id_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 16)
	return false;
    for (; *id; id++)
	if (!isxdigit((unsigned char) *id) || islower((unsigned char) *id))
	    return false;
    return true;
}

uint64_t queue_id_value(const char *id)
{
    unsigned long long v;

    if (!queue_id_valid(id) || sscanf(id, "%llx", &v) != 1)
	return 0;
    return v;
}

void queue_id_seen(const char *id)
{
    uint64_t v = queue_id_value(id);

    if (v)
	queue_id_raise(v);
}
