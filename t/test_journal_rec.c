/*
 * test_journal_rec.c - journal record framing: round trips of every record
 * type, and hostile input to every decoder (truncation at every length,
 * flipped bits, absurd counts, NUL bytes, bad enums, trailing bytes).
 */
#include "config.h"

#include <criterion/criterion.h>

#include "queue/crc32c.h"
#include "queue/journal_rec.h"
#include "test_journal_util.h"

Test(journal_rec, header_round_trip)
{
    JREC_HDR h = {.len = 12345, .pcrc = 0xdeadbeef, .seq = 0x123456789abcULL,
    .segno = 77, .type = JREC_OUTCOME}, g;
    unsigned char buf[JREC_HDR_SIZE];

    jrec_hdr_encode(buf, &h);
    cr_assert(jrec_hdr_decode(buf, &g));
    cr_assert_eq(g.len, h.len);
    cr_assert_eq(g.pcrc, h.pcrc);
    cr_assert_eq(g.seq, h.seq);
    cr_assert_eq(g.segno, h.segno);
    cr_assert_eq(g.type, h.type);
    /* Any single bit flip is caught. */
    for (size_t bit = 0; bit < 8 * JREC_HDR_SIZE; bit++) {
	buf[bit / 8] ^= (unsigned char) (1 << (bit % 8));
	cr_assert(!jrec_hdr_decode(buf, &g), "bit %zu", bit);
	buf[bit / 8] ^= (unsigned char) (1 << (bit % 8));
    }
    /* All zeros (preallocated space) is not a record. */
    memset(buf, 0, sizeof(buf));
    cr_assert(!jrec_hdr_decode(buf, &g));
    /* Valid CRC but bad type or oversize length is refused. */
    h.type = 99;
    jrec_hdr_encode(buf, &h);
    cr_assert(!jrec_hdr_decode(buf, &g));
    h.type = JREC_DONE;
    h.len = JREC_MAX_PAYLOAD + 1;
    jrec_hdr_encode(buf, &h);
    cr_assert(!jrec_hdr_decode(buf, &g));
}

Test(journal_rec, segment_header)
{
    unsigned char buf[JSEG_HDR_SIZE];
    uint64_t segno, first;

    jseg_hdr_encode(buf, 42, 1000, 1);
    cr_assert(jseg_hdr_decode(buf, sizeof(buf), &segno, &first));
    cr_assert_eq(segno, 42);
    cr_assert_eq(first, 1000);
    cr_assert(!jseg_hdr_decode(buf, sizeof(buf) - 1, &segno, &first));
    buf[20] ^= 1;
    cr_assert(!jseg_hdr_decode(buf, sizeof(buf), &segno, &first));
}

static void roundtrip_message(size_t nrcpt, size_t clen, unsigned seed)
{
    MESSAGE *m = tj_message("ABCDEF0123", nrcpt, clen, seed);
    JREC_RSTATE *rs = mem_calloc(nrcpt + 1, sizeof(*rs));
    STR     out = STR_INIT;
    JREC_MSG d;

    for (size_t i = 0; i < nrcpt; i++) {
	m->rcpt[i].state = (enum rcpt_state) (i % 5);
	rs[i].next_retry = (int64_t) (i * 1000) - 5;
	rs[i].reason = i % 2 ? "451 4.7.1 try later" : NULL;
	rs[i].owed = m->rcpt[i].state == RCPT_BOUNCED;
    }
    jrec_encode_message(&out, m, JREC_FLAG_HOLD | JREC_FLAG_WARNED, rs);
    str_append(&out, m->content->data, m->content->len);
    cr_assert_eq(jrec_decode_message(STR_DATA(&out), STR_LEN(&out), &d), 0);
    cr_assert_eq(d.flags, JREC_FLAG_HOLD | JREC_FLAG_WARNED);
    cr_assert_eq(d.content_len, clen);
    d.msg->content = blob_new(STR_DATA(&out) + d.content_off, d.content_len);
    cr_assert(tj_message_same(m, d.msg));
    for (size_t i = 0; i < nrcpt; i++) {
	cr_assert_eq(d.msg->rcpt[i].state, m->rcpt[i].state);
	cr_assert(tj_streq(d.msg->rcpt[i].transport, m->rcpt[i].transport));
	cr_assert(tj_streq(d.msg->rcpt[i].nexthop, m->rcpt[i].nexthop));
	cr_assert_eq(d.next_retry[i], rs[i].next_retry);
	cr_assert(tj_streq(d.reason[i], rs[i].reason));
	cr_assert_eq(d.owed[i], rs[i].owed);
    }
    jrec_msg_free(&d);

    /* Every truncation fails cleanly; so does one extra byte. */
    for (size_t len = 0; len < STR_LEN(&out) - clen; len++)
	cr_assert_neq(jrec_decode_message(STR_DATA(&out), len, &d), 0, "len %zu", len);
    str_putc(&out, 'x');
    cr_assert_neq(jrec_decode_message(STR_DATA(&out), STR_LEN(&out), &d), 0);
    /* Flipped bytes never crash (they may still decode: CRC guards that). */
    for (size_t i = 0; i < STR_LEN(&out); i++) {
	STR     copy = STR_INIT;

	str_append(&copy, STR_DATA(&out), STR_LEN(&out));
	copy.data[i] ^= 0xA5;
	if (jrec_decode_message(STR_DATA(&copy), STR_LEN(&copy), &d) == 0)
	    jrec_msg_free(&d);
	str_release(&copy);
    }
    str_release(&out);
    mem_free(rs);
    message_free(m);
}

Test(journal_rec, message_round_trip)
{
    roundtrip_message(1, 1024, 1);
    roundtrip_message(7, 0, 2);
    roundtrip_message(0, 10, 3);
    roundtrip_message(3, 100 * 1024, 4);
}

Test(journal_rec, message_hostile)
{
    STR     s = STR_INIT;
    JREC_MSG d;

    /* A recipient count of 2^60 with 5 bytes behind it. */
    str_append(&s, "\x03" "AB" "\x00" "\x00" "\x01" "\x01\x01\x01\x01\x01" "\x00\x00\x00", 14);
    str_append(&s, "\x80\x80\x80\x80\x80\x80\x80\x80\x10", 9);
    str_append(&s, "\x01\x01\x01\x01\x01", 5);
    cr_assert_neq(jrec_decode_message(STR_DATA(&s), STR_LEN(&s), &d), 0);
    str_reset(&s);
    /* A NUL inside the queue ID. */
    str_append(&s, "\x04" "A\0B", 4);
    char    qid[QUEUE_ID_MAX];

    cr_assert_neq(jrec_decode_control(STR_DATA(&s), STR_LEN(&s), qid), 0);
    str_reset(&s);
    /* A string length beyond the end; an 11-byte varint. */
    str_append(&s, "\x7f" "AB", 3);
    cr_assert_neq(jrec_decode_control(STR_DATA(&s), STR_LEN(&s), qid), 0);
    str_reset(&s);
    str_append(&s, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    cr_assert_neq(jrec_decode_control(STR_DATA(&s), STR_LEN(&s), qid), 0);
    /* An empty or too long queue ID. */
    str_reset(&s);
    str_append(&s, "\x01", 1);
    cr_assert_neq(jrec_decode_control(STR_DATA(&s), STR_LEN(&s), qid), 0);
    str_reset(&s);
    str_putc(&s, QUEUE_ID_MAX + 1);
    for (int i = 0; i < QUEUE_ID_MAX; i++)
	str_putc(&s, 'A');
    cr_assert_neq(jrec_decode_control(STR_DATA(&s), STR_LEN(&s), qid), 0);
    str_release(&s);
}

Test(journal_rec, outcome_control_requeue)
{
    STR     s = STR_INIT;
    char    qid[QUEUE_ID_MAX];
    uint32_t idx;
    int     state;
    int64_t retry;
    char   *reason;

    jrec_encode_outcome(&s, "1A2B3C", 5, RCPT_DEFERRED, 1700000123, "host said 451");
    cr_assert_eq(jrec_decode_outcome(STR_DATA(&s), STR_LEN(&s), qid, &idx, &state, &retry,
				     &reason), 0);
    cr_assert_str_eq(qid, "1A2B3C");
    cr_assert_eq(idx, 5);
    cr_assert_eq(state, RCPT_DEFERRED);
    cr_assert_eq(retry, 1700000123);
    cr_assert_str_eq(reason, "host said 451");
    mem_free(reason);
    for (size_t len = 0; len < STR_LEN(&s); len++)
	cr_assert_neq(jrec_decode_outcome(STR_DATA(&s), len, qid, &idx, &state, &retry,
					  &reason), 0);
    /* A state out of range. */
    str_reset(&s);
    jrec_encode_outcome(&s, "1A", 0, 9, 0, NULL);
    cr_assert_neq(jrec_decode_outcome(STR_DATA(&s), STR_LEN(&s), qid, &idx, &state, &retry,
				      &reason), 0);

    str_reset(&s);
    jrec_encode_control(&s, "FFEE");
    cr_assert_eq(jrec_decode_control(STR_DATA(&s), STR_LEN(&s), qid), 0);
    cr_assert_str_eq(qid, "FFEE");
    str_putc(&s, 0);
    cr_assert_neq(jrec_decode_control(STR_DATA(&s), STR_LEN(&s), qid), 0);

    JOURNAL_ROUTE in[2] = {{0, "relay", "[10.0.0.1]:25"}, {3, "smtp", NULL}}, *out;
    size_t  n;

    str_reset(&s);
    jrec_encode_requeue(&s, "ABC", 2, in);
    cr_assert_eq(jrec_decode_requeue(STR_DATA(&s), STR_LEN(&s), qid, &n, &out), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[1].rcpt_index, 3);
    cr_assert_str_eq(out[0].nexthop, "[10.0.0.1]:25");
    cr_assert_null(out[1].nexthop);
    jrec_routes_free(n, out);
    for (size_t len = 0; len < STR_LEN(&s); len++)
	cr_assert_neq(jrec_decode_requeue(STR_DATA(&s), len, qid, &n, &out), 0);
    str_release(&s);
}

Test(journal_rec, owed_notice_and_noticed)
{
    STR     s = STR_INIT;
    char    qid[QUEUE_ID_MAX];
    uint32_t idx, in[3] = {0, 7, 70000}, *out;
    int     state;
    int64_t retry;
    char   *reason;
    size_t  n;

    /* "Notice owed" rides on a final state... */
    jrec_encode_outcome(&s, "1A", 2, RCPT_BOUNCED | JREC_STATE_OWED, 0, "550 5.1.1 no");
    cr_assert_eq(jrec_decode_outcome(STR_DATA(&s), STR_LEN(&s), qid, &idx, &state, &retry,
				     &reason), 0);
    cr_assert_eq(state, RCPT_BOUNCED | JREC_STATE_OWED);
    mem_free(reason);
    /* ...and is refused on any other. */
    str_reset(&s);
    jrec_encode_outcome(&s, "1A", 2, RCPT_DEFERRED | JREC_STATE_OWED, 0, NULL);
    cr_assert_neq(jrec_decode_outcome(STR_DATA(&s), STR_LEN(&s), qid, &idx, &state, &retry,
				      &reason), 0);

    str_reset(&s);
    jrec_encode_noticed(&s, "ABC", 3, in);
    cr_assert_eq(jrec_decode_noticed(STR_DATA(&s), STR_LEN(&s), qid, &n, &out), 0);
    cr_assert_str_eq(qid, "ABC");
    cr_assert_eq(n, 3);
    cr_assert(out[0] == 0 && out[1] == 7 && out[2] == 70000);
    mem_free(out);
    for (size_t len = 0; len < STR_LEN(&s); len++)
	cr_assert_neq(jrec_decode_noticed(STR_DATA(&s), len, qid, &n, &out), 0);
    /* A count the bytes cannot hold; an index beyond 32 bits. */
    str_reset(&s);
    str_append(&s, "\x01" "A" "\x80\x80\x80\x80\x10", 7);
    cr_assert_neq(jrec_decode_noticed(STR_DATA(&s), STR_LEN(&s), qid, &n, &out), 0);
    str_reset(&s);
    str_append(&s, "\x01" "A" "\x01" "\x80\x80\x80\x80\x10", 8);
    cr_assert_neq(jrec_decode_noticed(STR_DATA(&s), STR_LEN(&s), qid, &n, &out), 0);
    str_release(&s);
}
