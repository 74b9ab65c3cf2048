/*
 * str.h - growable byte strings (Postfix's VSTRING, Redis's sds).
 *
 * The data is always NUL-terminated, may hold NUL bytes, and grows
 * geometrically. A STR belongs to one thread at a time.
 */
#ifndef SLUICE_STR_H
#define SLUICE_STR_H

#include <stddef.h>
#include <stdarg.h>

typedef struct STR {
    char   *data;
    size_t  len;
    size_t  cap;
} STR;

#define STR_INIT	{ NULL, 0, 0 }
#define STR_DATA(s)	((s)->data ? (s)->data : "")
#define STR_LEN(s)	((s)->len)

STR  *str_alloc(size_t initial);
void  str_free(STR *s);
void  str_init(STR *s);			/* for embedded STR */
void  str_release(STR *s);		/* frees the buffer of an embedded STR */
void  str_reserve(STR *s, size_t extra);
void  str_reset(STR *s);
void  str_truncate(STR *s, size_t len);
void  str_append(STR *s, const void *data, size_t len);
void  str_puts(STR *s, const char *text);
void  str_putc(STR *s, int ch);
void  str_set(STR *s, const char *text);
void  str_printf(STR *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  str_vprintf(STR *s, const char *fmt, va_list ap);
char *str_steal(STR *s, size_t *len);	/* takes the buffer; s becomes empty */

#endif
