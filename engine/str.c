/*
 * str.c - growable byte strings (see str.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <stdint.h>

#include "engine/str.h"
#include "engine/mem.h"
#include "engine/msg.h"

STR *str_alloc(size_t initial)
{
    STR *s = MEM_NEW(STR);

    str_reserve(s, initial);
    return s;
}

void str_free(STR *s)
{
    if (s) {
	mem_free(s->data);
	mem_free(s);
    }
}

void str_init(STR *s)
{
    s->data = NULL;
    s->len = s->cap = 0;
}

void str_release(STR *s)
{
    mem_free(s->data);
    str_init(s);
}

void str_reserve(STR *s, size_t extra)
{
    size_t need;

    if (extra > SIZE_MAX / 2 - s->len)
	msg_panic("str_reserve: length overflow");
    need = s->len + extra + 1;
    if (need > s->cap) {
	size_t cap = s->cap ? s->cap : 64;

	while (cap < need)
	    cap *= 2;
	s->data = mem_realloc(s->data, cap);
	s->cap = cap;
	s->data[s->len] = 0;
    }
}

void str_reset(STR *s)
{
    s->len = 0;
    if (s->data)
	s->data[0] = 0;
}

void str_truncate(STR *s, size_t len)
{
    if (len < s->len) {
	s->len = len;
	s->data[len] = 0;
    }
}

void str_append(STR *s, const void *data, size_t len)
{
    str_reserve(s, len);
    if (len)
	memcpy(s->data + s->len, data, len);
    s->len += len;
    s->data[s->len] = 0;
}

void str_puts(STR *s, const char *text)
{
    str_append(s, text, strlen(text));
}

void str_putc(STR *s, int ch)
{
    str_reserve(s, 1);
    s->data[s->len++] = (char) ch;
    s->data[s->len] = 0;
}

void str_set(STR *s, const char *text)
{
    str_reset(s);
    str_puts(s, text);
}

void str_vprintf(STR *s, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    str_reserve(s, 64);
    va_copy(ap2, ap);
    n = vsnprintf(s->data + s->len, s->cap - s->len, fmt, ap2);
    va_end(ap2);
    if (n < 0)
	msg_panic("str_vprintf: bad format \"%s\"", fmt);
    if ((size_t) n >= s->cap - s->len) {
	str_reserve(s, (size_t) n);
	vsnprintf(s->data + s->len, s->cap - s->len, fmt, ap);
    }
    s->len += (size_t) n;
}

void str_printf(STR *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    str_vprintf(s, fmt, ap);
    va_end(ap);
}

char *str_steal(STR *s, size_t *len)
{
    char *p;

    str_reserve(s, 0);
    p = s->data;
    if (len)
	*len = s->len;
    str_init(s);
    return p;
}
