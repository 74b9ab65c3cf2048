/*
 * blob.h - immutable, reference-counted byte buffers.
 *
 * A message's content is built once (by smtpd, qmqpd or pickup) and then
 * travels through cleanup, the journal and every delivery agent without a
 * copy: each holder takes a reference and drops it when done. The last
 * blob_unref() frees it. The bytes must not change once a second reference
 * exists. Reference counting is atomic; the bytes are read-only, so any
 * thread may read them.
 */
#ifndef SLUICE_BLOB_H
#define SLUICE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "engine/str.h"

typedef struct BLOB {
    uint32_t refs;
    size_t   len;
    char    *data;
    void   (*release)(struct BLOB *);	/* NULL: data is mem_alloc'd */
    void    *owner;			/* for release, e.g. a journal segment */
} BLOB;

BLOB *blob_new(const void *data, size_t len);	/* copies */
BLOB *blob_adopt(STR *s);			/* takes the buffer of s, no copy */
BLOB *blob_external(char *data, size_t len, void (*release)(BLOB *), void *owner);
BLOB *blob_ref(BLOB *b);
void  blob_unref(BLOB *b);

#endif
