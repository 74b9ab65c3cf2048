/*
 * blob.c - immutable, reference-counted byte buffers (see blob.h).
 */
#include "config.h"

#include <string.h>

#include "engine/blob.h"
#include "engine/mem.h"
#include "engine/msg.h"

BLOB *blob_new(const void *data, size_t len)
{
    BLOB *b = MEM_NEW(BLOB);

    b->refs = 1;
    b->len = len;
    b->data = mem_alloc(len + 1);
    if (len)
	memcpy(b->data, data, len);
    b->data[len] = 0;
    return b;
}

BLOB *blob_adopt(STR *s)
{
    BLOB *b = MEM_NEW(BLOB);

    b->refs = 1;
    b->data = str_steal(s, &b->len);
    return b;
}

BLOB *blob_external(char *data, size_t len, void (*release)(BLOB *), void *owner)
{
    BLOB *b = MEM_NEW(BLOB);

    b->refs = 1;
    b->data = data;
    b->len = len;
    b->release = release;
    b->owner = owner;
    return b;
}

BLOB *blob_ref(BLOB *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void blob_unref(BLOB *b)
{
    if (b == NULL)
	return;
    uint32_t left = __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);

    if (left == UINT32_MAX)
	msg_panic("blob_unref: reference count underflow");
    if (left)
	return;
    if (b->release)
	b->release(b);
    else
	mem_free(b->data);
    mem_free(b);
}
