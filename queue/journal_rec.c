/*
 * journal_rec.c - journal record framing and payloads (see journal_rec.h).
 *
 * Integers are LEB128 varints (signed ones zigzag encoded), strings a varint
 * of length+1 (0 = NULL) then the bytes. Fixed headers are little endian.
 * Decoders never read past the end they are given and never trust a count:
 * a recipient count larger than the bytes left is refused before anything
 * is allocated.
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "queue/crc32c.h"
#include "queue/journal_rec.h"

/* Fixed-width little-endian helpers. */

static void jrec_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
	p[i] = (unsigned char) (v >> (8 * i));
}

static void jrec_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
	p[i] = (unsigned char) (v >> (8 * i));
}

static uint32_t jrec_get32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t jrec_get64(const unsigned char *p)
{
    return (uint64_t) jrec_get32(p) | (uint64_t) jrec_get32(p + 4) << 32;
}

void    jrec_hdr_encode(unsigned char out[JREC_HDR_SIZE], const JREC_HDR *h)
{
    jrec_put32(out, h->len);
    jrec_put32(out + 4, h->pcrc);
    jrec_put64(out + 8, h->seq);
    jrec_put32(out + 16, h->segno);
    out[20] = (unsigned char) h->type;
    out[21] = (unsigned char) (h->type >> 8);
    out[22] = (unsigned char) h->flags;
    out[23] = (unsigned char) (h->flags >> 8);
    jrec_put32(out + 24, 0);
    jrec_put32(out + 28, crc32c(0, out, 28));
}

bool    jrec_hdr_decode(const unsigned char *in, JREC_HDR *h)
{
    if (jrec_get32(in + 28) != crc32c(0, in, 28))
	return false;
    h->len = jrec_get32(in);
    h->pcrc = jrec_get32(in + 4);
    h->seq = jrec_get64(in + 8);
    h->segno = jrec_get32(in + 16);
    h->type = (uint16_t) (in[20] | in[21] << 8);
    h->flags = (uint16_t) (in[22] | in[23] << 8);
    return jrec_get32(in + 24) == 0 && h->flags == 0
	&& JREC_TYPE_VALID(h->type) && h->len <= JREC_MAX_PAYLOAD;
}

void    jseg_hdr_encode(unsigned char out[JSEG_HDR_SIZE], uint64_t segno,
			uint64_t first_seq, int64_t created_us)
{
    memset(out, 0, JSEG_HDR_SIZE);
    memcpy(out, JSEG_MAGIC, 8);
    jrec_put32(out + 8, JSEG_VERSION);
    jrec_put32(out + 12, JSEG_HDR_SIZE);
    jrec_put64(out + 16, segno);
    jrec_put64(out + 24, first_seq);
    jrec_put64(out + 32, (uint64_t) created_us);
    jrec_put32(out + 60, crc32c(0, out, 60));
}

bool    jseg_hdr_decode(const unsigned char *in, size_t len, uint64_t *segno,
			uint64_t *first_seq)
{
    if (len < JSEG_HDR_SIZE || memcmp(in, JSEG_MAGIC, 8) != 0
	|| jrec_get32(in + 60) != crc32c(0, in, 60)
	|| jrec_get32(in + 8) != JSEG_VERSION || jrec_get32(in + 12) != JSEG_HDR_SIZE)
	return false;
    *segno = jrec_get64(in + 16);
    *first_seq = jrec_get64(in + 24);
    return true;
}

/* Payload encoding. */

static void jrec_put_varint(STR *out, uint64_t v)
{
    unsigned char buf[10];
    int     n = 0;

    do {
	buf[n] = v & 0x7f;
	v >>= 7;
	if (v)
	    buf[n] |= 0x80;
	n++;
    } while (v);
    str_append(out, buf, n);
}

static void jrec_put_svarint(STR *out, int64_t v)
{
    jrec_put_varint(out, ((uint64_t) v << 1) ^ (uint64_t) (v >> 63));
}

static void jrec_put_str(STR *out, const char *s)
{
    if (s == NULL) {
	jrec_put_varint(out, 0);
	return;
    }
    size_t  n = strlen(s);

    jrec_put_varint(out, (uint64_t) n + 1);
    str_append(out, s, n);
}

/* Payload decoding: a cursor that turns bad on the first overrun. */

typedef struct JRD {
    const unsigned char *p;
    const unsigned char *end;
    const unsigned char *start;
    bool    bad;
} JRD;

static void jrd_init(JRD *r, const char *p, size_t len)
{
    r->start = r->p = (const unsigned char *) p;
    r->end = r->p + len;
    r->bad = false;
}

static uint64_t jrd_varint(JRD *r)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
	if (r->p >= r->end) {
	    r->bad = true;
	    return 0;
	}
	unsigned char c = *r->p++;

	if (shift == 63 && (c & 0x7e)) {	/* more than 64 bits */
	    r->bad = true;
	    return 0;
	}
	v |= (uint64_t) (c & 0x7f) << shift;
	if (!(c & 0x80))
	    return v;
    }
    r->bad = true;
    return 0;
}

static int64_t jrd_svarint(JRD *r)
{
    uint64_t v = jrd_varint(r);

    return (int64_t) (v >> 1) ^ -(int64_t) (v & 1);
}

/* Bounds-checked string: NULL for absent (or on error, with r->bad). */
static const unsigned char *jrd_bytes(JRD *r, size_t *len, bool *present)
{
    uint64_t n = jrd_varint(r);

    *present = false;
    *len = 0;
    if (r->bad || n == 0)
	return NULL;
    n -= 1;
    if (n > (uint64_t) (r->end - r->p)) {
	r->bad = true;
	return NULL;
    }
    const unsigned char *s = r->p;

    if (memchr(s, 0, n) != NULL) {
	r->bad = true;
	return NULL;
    }
    r->p += n;
    *len = n;
    *present = true;
    return s;
}

static char *jrd_str(JRD *r)
{
    size_t  len;
    bool    present;
    const unsigned char *s = jrd_bytes(r, &len, &present);

    return present ? mem_strndup((const char *) s, len) : NULL;
}

static void jrd_qid(JRD *r, char qid[QUEUE_ID_MAX])
{
    size_t  len;
    bool    present;
    const unsigned char *s = jrd_bytes(r, &len, &present);

    if (!present || len == 0 || len >= QUEUE_ID_MAX) {
	r->bad = true;
	qid[0] = 0;
	return;
    }
    memcpy(qid, s, len);
    qid[len] = 0;
}

/* A recipient state, JREC_STATE_OWED allowed on final states only. */
static int jrd_state(JRD *r)
{
    uint64_t v = jrd_varint(r);
    uint64_t st = v & ~(uint64_t) JREC_STATE_OWED;

    if (st > RCPT_DROPPED
	|| ((v & JREC_STATE_OWED) && st != RCPT_SENT && st != RCPT_BOUNCED))
	r->bad = true;
    return (int) v;
}

int     jrec_peek_qid(const char *p, size_t len, char qid[QUEUE_ID_MAX])
{
    JRD     r;

    jrd_init(&r, p, len);
    jrd_qid(&r, qid);
    return r.bad ? -1 : 0;
}

/* MESSAGE */

void    jrec_encode_message(STR *out, const MESSAGE *m, unsigned flags, const JREC_RSTATE *rs)
{
    jrec_put_str(out, m->queue_id);
    jrec_put_varint(out, flags);
    jrec_put_svarint(out, m->arrival_us);
    jrec_put_str(out, m->sender ? m->sender : "");
    jrec_put_str(out, m->client_name);
    jrec_put_str(out, m->client_addr);
    jrec_put_str(out, m->helo);
    jrec_put_str(out, m->protocol);
    jrec_put_str(out, m->dsn_envid);
    jrec_put_varint(out, (uint64_t) m->dsn_ret);
    jrec_put_varint(out, (uint64_t) m->body_type);
    jrec_put_varint(out, m->smtputf8);
    jrec_put_varint(out, m->nrcpt);
    for (size_t i = 0; i < m->nrcpt; i++) {
	const RCPT *rc = &m->rcpt[i];

	jrec_put_str(out, rc->address);
	jrec_put_str(out, rc->orig_rcpt);
	jrec_put_str(out, rc->dsn_orcpt);
	jrec_put_varint(out, (uint64_t) rc->dsn_notify);
	jrec_put_str(out, rc->transport);
	jrec_put_str(out, rc->nexthop);
	jrec_put_varint(out, (uint64_t) rc->state | (rs && rs[i].owed ? JREC_STATE_OWED : 0));
	jrec_put_svarint(out, rs ? rs[i].next_retry : 0);
	jrec_put_str(out, rs ? rs[i].reason : NULL);
    }
    jrec_put_varint(out, m->content ? m->content->len : 0);
}

void    jrec_msg_free(JREC_MSG *d)
{
    if (d->reason && d->msg)
	for (size_t i = 0; i < d->msg->nrcpt; i++)
	    mem_free(d->reason[i]);
    mem_free(d->reason);
    mem_free(d->next_retry);
    mem_free(d->owed);
    message_free(d->msg);
    memset(d, 0, sizeof(*d));
}

int     jrec_decode_message(const char *p, size_t len, JREC_MSG *out)
{
    JRD     r;
    MESSAGE *m;
    uint64_t v, nrcpt;

    memset(out, 0, sizeof(*out));
    jrd_init(&r, p, len);
    m = out->msg = message_new();
    jrd_qid(&r, m->queue_id);
    v = jrd_varint(&r);
    if (v & ~(uint64_t) JREC_FLAGS_KNOWN)
	r.bad = true;
    out->flags = (unsigned) v;
    m->arrival_us = jrd_svarint(&r);
    mem_free(m->sender);
    m->sender = jrd_str(&r);
    if (m->sender == NULL)
	r.bad = true;
    m->client_name = jrd_str(&r);
    m->client_addr = jrd_str(&r);
    m->helo = jrd_str(&r);
    m->protocol = jrd_str(&r);
    m->dsn_envid = jrd_str(&r);
    v = jrd_varint(&r);
    if (v > DSN_RET_HDRS)
	r.bad = true;
    m->dsn_ret = (int) v;
    v = jrd_varint(&r);
    if (v > BODY_TYPE_8BITMIME)
	r.bad = true;
    m->body_type = (int) v;
    v = jrd_varint(&r);
    if (v > 1)
	r.bad = true;
    m->smtputf8 = v;
    nrcpt = jrd_varint(&r);
    /* Each recipient takes at least 9 bytes: refuse counts the rest
     * cannot hold before allocating anything for them. */
    if (r.bad || nrcpt > (uint64_t) (r.end - r.p) / 9)
	goto bad;
    out->next_retry = mem_calloc(nrcpt ? nrcpt : 1, sizeof(int64_t));
    out->reason = mem_calloc(nrcpt ? nrcpt : 1, sizeof(char *));
    out->owed = mem_calloc(nrcpt ? nrcpt : 1, sizeof(bool));
    m->rcpt_cap = nrcpt;
    m->rcpt = mem_calloc(nrcpt ? nrcpt : 1, sizeof(RCPT));
    for (size_t i = 0; i < nrcpt && !r.bad; i++) {
	RCPT   *rc = &m->rcpt[i];

	m->nrcpt = i + 1;
	rc->address = jrd_str(&r);
	if (rc->address == NULL)
	    r.bad = true;
	rc->orig_rcpt = jrd_str(&r);
	rc->dsn_orcpt = jrd_str(&r);
	v = jrd_varint(&r);
	if (v & ~(uint64_t) 0xf)
	    r.bad = true;
	rc->dsn_notify = (int) v;
	rc->transport = jrd_str(&r);
	rc->nexthop = jrd_str(&r);
	v = (uint64_t) jrd_state(&r);
	rc->state = (int) (v & ~(uint64_t) JREC_STATE_OWED);
	out->owed[i] = (v & JREC_STATE_OWED) != 0;
	out->next_retry[i] = jrd_svarint(&r);
	out->reason[i] = jrd_str(&r);
    }
    v = jrd_varint(&r);
    if (r.bad || v != (uint64_t) (r.end - r.p))
	goto bad;
    out->content_off = (size_t) (r.p - r.start);
    out->content_len = (size_t) v;
    return 0;

bad:
    jrec_msg_free(out);
    return -1;
}

/* OUTCOME */

void    jrec_encode_outcome(STR *out, const char *qid, uint32_t rcpt, int state,
			    int64_t next_retry, const char *reason)
{
    jrec_put_str(out, qid);
    jrec_put_varint(out, rcpt);
    jrec_put_varint(out, (uint64_t) state);
    jrec_put_svarint(out, next_retry);
    jrec_put_str(out, reason);
}

int     jrec_decode_outcome(const char *p, size_t len, char qid[QUEUE_ID_MAX], uint32_t *rcpt,
			    int *state, int64_t *next_retry, char **reason)
{
    JRD     r;
    uint64_t v;
    size_t  rlen;
    bool    present;
    const unsigned char *rs;

    jrd_init(&r, p, len);
    jrd_qid(&r, qid);
    v = jrd_varint(&r);
    if (v > UINT32_MAX)
	r.bad = true;
    *rcpt = (uint32_t) v;
    *state = jrd_state(&r);
    *next_retry = jrd_svarint(&r);
    rs = jrd_bytes(&r, &rlen, &present);
    if (r.bad || r.p != r.end)
	return -1;
    *reason = present ? mem_strndup((const char *) rs, rlen) : NULL;
    return 0;
}

/* HOLD, RELEASE, DELETE, DONE, WARNED */

void    jrec_encode_control(STR *out, const char *qid)
{
    jrec_put_str(out, qid);
}

int     jrec_decode_control(const char *p, size_t len, char qid[QUEUE_ID_MAX])
{
    JRD     r;

    jrd_init(&r, p, len);
    jrd_qid(&r, qid);
    return r.bad || r.p != r.end ? -1 : 0;
}

/* NOTICED */

void    jrec_encode_noticed(STR *out, const char *qid, size_t n, const uint32_t *rcpt)
{
    jrec_put_str(out, qid);
    jrec_put_varint(out, n);
    for (size_t i = 0; i < n; i++)
	jrec_put_varint(out, rcpt[i]);
}

int     jrec_decode_noticed(const char *p, size_t len, char qid[QUEUE_ID_MAX], size_t *np,
			    uint32_t **rcpt)
{
    JRD     r;
    uint64_t n;
    uint32_t *v;

    jrd_init(&r, p, len);
    jrd_qid(&r, qid);
    n = jrd_varint(&r);
    /* One byte at least per index: refuse counts the rest cannot hold. */
    if (r.bad || n > (uint64_t) (r.end - r.p))
	return -1;
    v = mem_calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n && !r.bad; i++) {
	uint64_t idx = jrd_varint(&r);

	if (idx > UINT32_MAX)
	    r.bad = true;
	v[i] = (uint32_t) idx;
    }
    if (r.bad || r.p != r.end) {
	mem_free(v);
	return -1;
    }
    *np = (size_t) n;
    *rcpt = v;
    return 0;
}

/* REQUEUE */

void    jrec_encode_requeue(STR *out, const char *qid, size_t n, const JOURNAL_ROUTE *rt)
{
    jrec_put_str(out, qid);
    jrec_put_varint(out, n);
    for (size_t i = 0; i < n; i++) {
	jrec_put_varint(out, rt[i].rcpt_index);
	jrec_put_str(out, rt[i].transport);
	jrec_put_str(out, rt[i].nexthop);
    }
}

void    jrec_routes_free(size_t n, JOURNAL_ROUTE *rt)
{
    if (rt == NULL)
	return;
    for (size_t i = 0; i < n; i++) {
	mem_free((char *) rt[i].transport);
	mem_free((char *) rt[i].nexthop);
    }
    mem_free(rt);
}

int     jrec_decode_requeue(const char *p, size_t len, char qid[QUEUE_ID_MAX], size_t *np,
			    JOURNAL_ROUTE **routes)
{
    JRD     r;
    uint64_t n;
    JOURNAL_ROUTE *rt;
    size_t  i;

    jrd_init(&r, p, len);
    jrd_qid(&r, qid);
    n = jrd_varint(&r);
    if (r.bad || n > (uint64_t) (r.end - r.p) / 3)
	return -1;
    rt = mem_calloc(n ? n : 1, sizeof(*rt));
    for (i = 0; i < n && !r.bad; i++) {
	uint64_t idx = jrd_varint(&r);

	if (idx > UINT32_MAX)
	    r.bad = true;
	rt[i].rcpt_index = (size_t) idx;
	rt[i].transport = jrd_str(&r);
	rt[i].nexthop = jrd_str(&r);
    }
    if (r.bad || r.p != r.end) {
	jrec_routes_free(i, rt);
	return -1;
    }
    *np = (size_t) n;
    *routes = rt;
    return 0;
}
