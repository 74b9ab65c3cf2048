/*
 * maildrop.c - the maildrop file format (see maildrop.h).
 *
 * One validating parser serves both readers: maildrop_read() collects the
 * records into a MAILDROP, maildrop_copy() writes them through to another
 * descriptor. Each record's length is checked against the bound for its
 * type before a byte of payload is read, so a hostile length never turns
 * into an allocation.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/mem.h"
#include "stages/maildrop.h"

#define MD_IN_BUF	65536

typedef struct MD_IN {
    int     fd;
    size_t  pos;
    size_t  len;
    int     read_errno;		/* 0, or the read() failure */
    char    buf[MD_IN_BUF];
} MD_IN;

/* Up to n bytes into dst; fewer only at end of input or on error. */
static size_t md_in_get(MD_IN *in, void *dst, size_t n)
{
    size_t  got = 0;

    while (got < n) {
	if (in->pos == in->len) {
	    ssize_t r;

	    if (in->read_errno)
		break;
	    do
		r = read(in->fd, in->buf, sizeof(in->buf));
	    while (r < 0 && errno == EINTR);
	    if (r < 0)
		in->read_errno = errno;
	    if (r <= 0)
		break;
	    in->pos = 0;
	    in->len = (size_t) r;
	}
	size_t  take = in->len - in->pos;

	if (take > n - got)
	    take = n - got;
	memcpy((char *) dst + got, in->buf + in->pos, take);
	in->pos += take;
	got += take;
    }
    return got;
}

void    maildrop_start(STR *out)
{
    str_append(out, MAILDROP_MAGIC, MAILDROP_MAGIC_LEN);
}

void    maildrop_put(STR *out, int type, const void *data, size_t len)
{
    unsigned char hdr[5];

    hdr[0] = (unsigned char) type;
    hdr[1] = (unsigned char) (len >> 24);
    hdr[2] = (unsigned char) (len >> 16);
    hdr[3] = (unsigned char) (len >> 8);
    hdr[4] = (unsigned char) len;
    str_append(out, hdr, sizeof(hdr));
    if (len)
	str_append(out, data, len);
}

/* The record sink of the parser: 0 to go on, -1 to stop (err set). */
typedef int (*md_record_fn)(void *ctx, int type, const char *data, size_t len);

static int md_field_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
	if (p[i] == 0 || p[i] == '\r' || p[i] == '\n')
	    return 0;
    return 1;
}

static int md_number(const char *p, size_t len, long long *val)
{
    long long v = 0;

    if (len == 0 || len > 18)
	return -1;
    for (size_t i = 0; i < len; i++) {
	if (p[i] < '0' || p[i] > '9')
	    return -1;
	v = v * 10 + (p[i] - '0');
    }
    *val = v;
    return 0;
}

/*
 * Reads and checks the whole stream. Returns 0, -1 (malformed, err), -2
 * (read error, errno set), or what the sink returned.
 */
static int md_parse(MD_IN *in, long long limit, md_record_fn sink, void *ctx, STR *err)
{
    char    magic[MAILDROP_MAGIC_LEN];
    STR     payload = STR_INIT;
    int     seen_sender = 0, seen_time = 0, seen_name = 0, seen_flags = 0;
    int     in_content = 0, rc = -1;
    size_t  nrcpt = 0;
    long long content = 0;

#define MD_BAD(...) do { str_reset(err); str_printf(err, __VA_ARGS__); goto out; } while (0)

    if (md_in_get(in, magic, sizeof(magic)) != sizeof(magic)
	|| memcmp(magic, MAILDROP_MAGIC, sizeof(magic)) != 0) {
	if (in->read_errno)
	    goto io_error;
	MD_BAD("not a maildrop file (bad magic or unsupported version)");
    }
    for (;;) {
	unsigned char hdr[5];
	size_t  len, max;
	int     type;

	if (md_in_get(in, hdr, sizeof(hdr)) != sizeof(hdr)) {
	    if (in->read_errno)
		goto io_error;
	    MD_BAD("file ends without an end record");
	}
	type = hdr[0];
	len = ((size_t) hdr[1] << 24) | ((size_t) hdr[2] << 16) | ((size_t) hdr[3] << 8) | hdr[4];
	switch (type) {
	case MAILDROP_REC_TIME:
	case MAILDROP_REC_FLAGS:
	    max = 20;
	    break;
	case MAILDROP_REC_SENDER:
	case MAILDROP_REC_FULLNAME:
	case MAILDROP_REC_RCPT:
	    max = MAILDROP_MAX_FIELD;
	    break;
	case MAILDROP_REC_CONTENT:
	    max = MAILDROP_MAX_CHUNK;
	    break;
	case MAILDROP_REC_END:
	    max = 0;
	    break;
	default:
	    MD_BAD("unexpected record type %d", type);
	}
	if (len > max)
	    MD_BAD("record type '%c': length %zu exceeds the limit %zu", type, len, max);
	if (type == MAILDROP_REC_CONTENT) {
	    if (limit > 0 && content + (long long) len > limit)
		MD_BAD("message content exceeds the size limit of %lld bytes", limit);
	    content += (long long) len;
	    in_content = 1;
	} else if (in_content && type != MAILDROP_REC_END) {
	    MD_BAD("envelope record type '%c' after the content", type);
	}
	str_reset(&payload);
	str_reserve(&payload, len + 1);
	if (md_in_get(in, payload.data, len) != len) {
	    if (in->read_errno)
		goto io_error;
	    MD_BAD("record type '%c' cut short", type);
	}
	payload.len = len;
	payload.data[len] = 0;

	switch (type) {
	case MAILDROP_REC_TIME:{
		long long v;

		if (seen_time++ || md_number(payload.data, len, &v) < 0)
		    MD_BAD("bad or repeated arrival time record");
		break;
	    }
	case MAILDROP_REC_FLAGS:{
		long long v;

		if (seen_flags++ || md_number(payload.data, len, &v) < 0
		    || (v & ~(long long) MAILDROP_FLAG_MASK) != 0)
		    MD_BAD("bad or repeated flags record");
		break;
	    }
	case MAILDROP_REC_SENDER:
	    if (seen_sender++)
		MD_BAD("more than one sender record");
	    /* FALLTHROUGH */
	case MAILDROP_REC_FULLNAME:
	    if (type == MAILDROP_REC_FULLNAME && seen_name++)
		MD_BAD("more than one full name record");
	    /* FALLTHROUGH */
	case MAILDROP_REC_RCPT:
	    if (type == MAILDROP_REC_RCPT && ++nrcpt > MAILDROP_MAX_RCPTS)
		MD_BAD("more than %d recipients", MAILDROP_MAX_RCPTS);
	    if (!md_field_ok(payload.data, len))
		MD_BAD("record type '%c' holds a NUL, CR or LF", type);
	    break;
	case MAILDROP_REC_END:
	    if (!seen_sender)
		MD_BAD("no sender record");
	    break;
	}
	if ((rc = sink(ctx, type, payload.data, len)) != 0)
	    goto out;
	rc = -1;
	if (type == MAILDROP_REC_END) {
	    char    extra;

	    if (md_in_get(in, &extra, 1) != 0)
		MD_BAD("data after the end record");
	    if (in->read_errno)
		goto io_error;
	    rc = 0;
	    goto out;
	}
    }

io_error:
    rc = -2;
    errno = in->read_errno;
out:
    str_release(&payload);
    return rc;
#undef MD_BAD
}

/* ---- maildrop_read ---- */

typedef struct MD_READ {
    MAILDROP *md;
    size_t  rcpt_cap;
} MD_READ;

static int md_read_record(void *ctx, int type, const char *data, size_t len)
{
    MD_READ *r = ctx;
    MAILDROP *md = r->md;

    switch (type) {
    case MAILDROP_REC_TIME:
	md->arrival_us = strtoll(data, NULL, 10);
	break;
    case MAILDROP_REC_FLAGS:
	md->flags = (int) strtol(data, NULL, 10);
	break;
    case MAILDROP_REC_SENDER:
	md->sender = mem_strndup(data, len);
	break;
    case MAILDROP_REC_FULLNAME:
	md->fullname = mem_strndup(data, len);
	break;
    case MAILDROP_REC_RCPT:
	if (md->nrcpt == r->rcpt_cap) {
	    r->rcpt_cap = r->rcpt_cap ? 2 * r->rcpt_cap : 8;
	    md->rcpt = mem_realloc(md->rcpt, r->rcpt_cap * sizeof(char *));
	}
	md->rcpt[md->nrcpt++] = mem_strndup(data, len);
	break;
    case MAILDROP_REC_CONTENT:
	str_append(&md->content, data, len);
	break;
    }
    return 0;
}

int     maildrop_read(int fd, long long content_limit, MAILDROP *md, STR *err)
{
    MD_IN  *in = mem_alloc(sizeof(MD_IN));
    MD_READ r = {.md = md};
    int     rc;

    memset(md, 0, sizeof(*md));
    str_init(&md->content);
    in->fd = fd;
    in->pos = in->len = 0;
    in->read_errno = 0;
    rc = md_parse(in, content_limit, md_read_record, &r, err);
    mem_free(in);
    if (rc != 0) {
	int     saved = errno;

	maildrop_free(md);
	errno = saved;
    }
    return rc;
}

void    maildrop_free(MAILDROP *md)
{
    for (size_t i = 0; i < md->nrcpt; i++)
	mem_free(md->rcpt[i]);
    mem_free(md->rcpt);
    mem_free(md->sender);
    mem_free(md->fullname);
    str_release(&md->content);
    memset(md, 0, sizeof(*md));
}

/* ---- maildrop_copy ---- */

typedef struct MD_COPY {
    int     fd;
    STR     out;
    size_t  nrcpt;
    int     write_errno;
} MD_COPY;

static int md_copy_flush(MD_COPY *c)
{
    size_t  off = 0;

    while (off < STR_LEN(&c->out)) {
	ssize_t w = write(c->fd, c->out.data + off, STR_LEN(&c->out) - off);

	if (w < 0 && errno == EINTR)
	    continue;
	if (w <= 0) {
	    c->write_errno = w < 0 ? errno : EIO;
	    return -3;
	}
	off += (size_t) w;
    }
    str_reset(&c->out);
    return 0;
}

static int md_copy_record(void *ctx, int type, const char *data, size_t len)
{
    MD_COPY *c = ctx;

    if (type == MAILDROP_REC_RCPT)
	c->nrcpt++;
    maildrop_put(&c->out, type, data, len);
    if (STR_LEN(&c->out) >= MD_IN_BUF || type == MAILDROP_REC_END)
	return md_copy_flush(c);
    return 0;
}

int     maildrop_copy(int in_fd, int out_fd, long long content_limit, size_t *nrcpt,
		              STR *err)
{
    MD_IN  *in = mem_alloc(sizeof(MD_IN));
    MD_COPY c = {.fd = out_fd};
    int     rc;

    in->fd = in_fd;
    in->pos = in->len = 0;
    in->read_errno = 0;
    str_init(&c.out);
    maildrop_start(&c.out);
    rc = md_parse(in, content_limit, md_copy_record, &c, err);
    if (rc == -3) {
	str_reset(err);
	str_printf(err, "write: %s", strerror(c.write_errno));
	errno = c.write_errno;
    } else if (rc == -2) {
	int     saved = errno;

	str_reset(err);
	str_printf(err, "read: %s", strerror(saved));
	errno = saved;
    }
    if (nrcpt)
	*nrcpt = c.nrcpt;
    str_release(&c.out);
    mem_free(in);
    return rc;
}
