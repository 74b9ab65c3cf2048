/*
 * journal_ram.c - the in-memory journal backend (journal.h, BACKENDS).
 *
 * Same semantics as journal_fs.c without a disk: a "directory" is a name
 * in a process-wide registry, a segment an anonymous mapping of its full
 * size (pages appear as they are written), sync returns at once. The
 * registry outlives journal_close(), so a test can close, reopen and
 * recover; journal_ram_purge() forgets a directory. The lock is emulated
 * (one exclusive or many shared opens). Removed segments stay mapped until
 * the last map reference goes, like an unlinked file.
 *
 * Threading: every function takes one process-wide mutex (cheap: the
 * journal writer is the only caller in the hot path). Diagnostics: errno
 * values; a failed mapping is reported as ENOSPC.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/mem.h"
#include "queue/journal.h"

typedef struct RAMSEG {
    uint64_t segno;
    char   *data;
    size_t  cap;			/* mapping size */
    size_t  len;			/* "file" size */
    unsigned refs;			/* directory + maps */
    struct RAMSEG *next;
} RAMSEG;

typedef struct RAMDIR {
    char   *name;
    RAMSEG *segs;			/* ascending */
    bool    excl;
    int     shared;
    struct RAMDIR *next;
} RAMDIR;

typedef struct RAMH {
    RAMDIR *dir;
    bool    rdonly;
    int   (*fault) (void *, const char *);
    void   *fault_arg;
} RAMH;

static pthread_mutex_t journal_ram_lock = PTHREAD_MUTEX_INITIALIZER;
static RAMDIR *journal_ram_dirs;

static void journal_ram_unref(RAMSEG *s)
{
    if (--s->refs == 0) {
	munmap(s->data, s->cap);
	mem_free(s);
    }
}

static RAMSEG *journal_ram_find(RAMDIR *d, uint64_t segno)
{
    RAMSEG *s;

    for (s = d->segs; s && s->segno != segno; s = s->next)
	 /* void */ ;
    return s;
}

static void *journal_ram_open(const char *dir, const JOURNAL_OPTIONS *o, int *err)
{
    RAMDIR *d;
    RAMH   *h = NULL;
    bool    rdonly = (o->flags & JOURNAL_RDONLY) != 0;

    pthread_mutex_lock(&journal_ram_lock);
    for (d = journal_ram_dirs; d && strcmp(d->name, dir) != 0; d = d->next)
	 /* void */ ;
    if (d == NULL && rdonly) {
	*err = ENOENT;
	goto out;
    }
    if (d == NULL) {
	d = MEM_NEW(RAMDIR);
	d->name = mem_strdup(dir);
	d->next = journal_ram_dirs;
	journal_ram_dirs = d;
    }
    if (d->excl || (!rdonly && d->shared)) {
	*err = EWOULDBLOCK;
	goto out;
    }
    if (rdonly)
	d->shared++;
    else
	d->excl = true;
    h = MEM_NEW(RAMH);
    h->dir = d;
    h->rdonly = rdonly;
    h->fault = o->fault;
    h->fault_arg = o->fault_arg;
out:
    pthread_mutex_unlock(&journal_ram_lock);
    return h;
}

static void journal_ram_close(void *bh)
{
    RAMH   *h = bh;

    pthread_mutex_lock(&journal_ram_lock);
    if (h->rdonly)
	h->dir->shared--;
    else
	h->dir->excl = false;
    pthread_mutex_unlock(&journal_ram_lock);
    mem_free(h);
}

void    journal_ram_purge(const char *dir)
{
    RAMDIR **pp, *d;

    pthread_mutex_lock(&journal_ram_lock);
    for (pp = &journal_ram_dirs; (d = *pp) != NULL; pp = &d->next)
	if (strcmp(d->name, dir) == 0)
	    break;
    if (d != NULL && !d->excl && !d->shared) {
	*pp = d->next;
	while (d->segs) {
	    RAMSEG *s = d->segs;

	    d->segs = s->next;
	    journal_ram_unref(s);
	}
	mem_free(d->name);
	mem_free(d);
    }
    pthread_mutex_unlock(&journal_ram_lock);
}

static int journal_ram_list(void *bh, uint64_t **segnos, size_t *count)
{
    RAMH   *h = bh;
    size_t  n = 0;

    pthread_mutex_lock(&journal_ram_lock);
    for (RAMSEG *s = h->dir->segs; s; s = s->next)
	n++;
    *segnos = mem_alloc((n ? n : 1) * sizeof(uint64_t));
    n = 0;
    for (RAMSEG *s = h->dir->segs; s; s = s->next)
	(*segnos)[n++] = s->segno;
    *count = n;
    pthread_mutex_unlock(&journal_ram_lock);
    return 0;
}

static int journal_ram_fault(RAMH *h, const char *op)
{
    return h->fault ? h->fault(h->fault_arg, op) : 0;
}

static int journal_ram_create(void *bh, uint64_t segno, size_t size)
{
    RAMH   *h = bh;
    RAMSEG *s, **pp;
    int     err;

    if ((err = journal_ram_fault(h, "create")) != 0)
	return err;
    void   *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (p == MAP_FAILED)
	return ENOSPC;
    s = MEM_NEW(RAMSEG);
    s->segno = segno;
    s->data = p;
    s->cap = size ? size : 1;
    s->len = size;
    s->refs = 1;
    pthread_mutex_lock(&journal_ram_lock);
    if (journal_ram_find(h->dir, segno)) {
	pthread_mutex_unlock(&journal_ram_lock);
	journal_ram_unref(s);
	return EEXIST;
    }
    for (pp = &h->dir->segs; *pp && (*pp)->segno < segno; pp = &(*pp)->next)
	 /* void */ ;
    s->next = *pp;
    *pp = s;
    pthread_mutex_unlock(&journal_ram_lock);
    return 0;
}

static int journal_ram_write(void *bh, uint64_t segno, uint64_t off,
			     const struct iovec *iov, int iovcnt)
{
    RAMH   *h = bh;
    RAMSEG *s;
    int     err = 0;

    if ((err = journal_ram_fault(h, "write")) != 0)
	return err;
    pthread_mutex_lock(&journal_ram_lock);
    if ((s = journal_ram_find(h->dir, segno)) == NULL) {
	err = ENOENT;
	goto out;
    }
    for (int i = 0; i < iovcnt; i++) {
	if (off + iov[i].iov_len > s->cap) {
	    err = ENOSPC;
	    goto out;
	}
	memcpy(s->data + off, iov[i].iov_base, iov[i].iov_len);
	off += iov[i].iov_len;
    }
    if (off > s->len)
	s->len = (size_t) off;
out:
    pthread_mutex_unlock(&journal_ram_lock);
    return err;
}

static int journal_ram_sync(void *bh, uint64_t segno)
{
    return journal_ram_fault(bh, "sync");
}

static int journal_ram_truncate(void *bh, uint64_t segno, uint64_t len)
{
    RAMH   *h = bh;
    RAMSEG *s;
    int     err = 0;

    pthread_mutex_lock(&journal_ram_lock);
    if ((s = journal_ram_find(h->dir, segno)) == NULL)
	err = ENOENT;
    else if (len > s->cap)
	err = EFBIG;
    else {
	if (len < s->len)
	    memset(s->data + len, 0, s->len - len);
	s->len = (size_t) len;
    }
    pthread_mutex_unlock(&journal_ram_lock);
    return err;
}

static int journal_ram_remove(void *bh, uint64_t segno)
{
    RAMH   *h = bh;
    RAMSEG **pp, *s;

    pthread_mutex_lock(&journal_ram_lock);
    for (pp = &h->dir->segs; (s = *pp) != NULL; pp = &s->next)
	if (s->segno == segno) {
	    *pp = s->next;
	    journal_ram_unref(s);
	    break;
	}
    pthread_mutex_unlock(&journal_ram_lock);
    return 0;
}

static int journal_ram_map(void *bh, uint64_t segno, const char **data, size_t *len,
			   void **cookie)
{
    RAMH   *h = bh;
    RAMSEG *s;
    int     err = 0;

    pthread_mutex_lock(&journal_ram_lock);
    if ((s = journal_ram_find(h->dir, segno)) == NULL) {
	err = ENOENT;
    } else {
	s->refs++;
	*data = s->data;
	*len = s->len;
	*cookie = s;
    }
    pthread_mutex_unlock(&journal_ram_lock);
    return err;
}

static void journal_ram_unmap(const char *data, size_t len, void *cookie)
{
    pthread_mutex_lock(&journal_ram_lock);
    journal_ram_unref(cookie);
    pthread_mutex_unlock(&journal_ram_lock);
}

const JOURNAL_BACKEND journal_backend_ram = {
    .name = "ram",
    .open = journal_ram_open,
    .close = journal_ram_close,
    .list = journal_ram_list,
    .create = journal_ram_create,
    .write = journal_ram_write,
    .sync = journal_ram_sync,
    .truncate = journal_ram_truncate,
    .remove = journal_ram_remove,
    .map = journal_ram_map,
    .unmap = journal_ram_unmap,
};
