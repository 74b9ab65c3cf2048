/*
 * test_smtpd_data.c - the DATA/BDAT content decoder (stages/smtpd_data.c):
 * canonical CRLF content, dot-unstuffing, the SMTP smuggling sequences,
 * bare <LF>/<CR> handling, the size limit, BDAT content. Every input is
 * also fed one byte at a time, which must give the same result.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/str.h"
#include "stages/smtpd_proto.h"

typedef struct RESULT {
    char    content[4096];
    size_t  content_len;
    size_t  consumed;
    bool    done;
    bool    bare_lf;
    bool    too_big;
} RESULT;

static void decode(int mode, bool bdat, long long limit, const char *in, size_t len,
		           size_t step, RESULT *r)
{
    SMTPD_DATA d;
    size_t  off = 0;

    smtpd_data_init(&d, mode, bdat, limit);
    while (off < len && !d.done) {
	size_t  n = len - off < step ? len - off : step;
	size_t  used = smtpd_data_feed(&d, in + off, n);

	cr_assert(used <= n);
	off += used;
	if (used < n)
	    cr_assert(d.done, "stopped early without the end of DATA");
    }
    if (bdat)
	smtpd_data_finish(&d);
    memset(r, 0, sizeof(*r));
    cr_assert(STR_LEN(&d.content) < sizeof(r->content));
    memcpy(r->content, STR_DATA(&d.content), STR_LEN(&d.content));
    r->content_len = STR_LEN(&d.content);
    r->consumed = off;
    r->done = d.done;
    r->bare_lf = d.bare_lf;
    r->too_big = d.too_big;
    smtpd_data_release(&d);
}

/* Decodes whole and byte by byte; both must agree. */
static void check(int mode, bool bdat, const char *in, const char *want, bool want_done,
		          size_t want_consumed)
{
    RESULT  whole, bytes;

    decode(mode, bdat, 0, in, strlen(in), strlen(in) + 1, &whole);
    decode(mode, bdat, 0, in, strlen(in), 1, &bytes);
    cr_assert_eq(whole.content_len, strlen(want), "content length %zu, want %zu: [%s]",
		 whole.content_len, strlen(want), whole.content);
    cr_assert(memcmp(whole.content, want, strlen(want)) == 0, "content [%s] want [%s]",
	      whole.content, want);
    cr_assert_eq(whole.done, want_done);
    cr_assert_eq(whole.consumed, want_consumed);
    cr_assert_eq(bytes.content_len, whole.content_len);
    cr_assert(memcmp(bytes.content, whole.content, whole.content_len) == 0);
    cr_assert_eq(bytes.done, whole.done);
    cr_assert_eq(bytes.consumed, whole.consumed);
}

Test(smtpd_data, plain_message_ends_at_crlf_dot_crlf)
{
    const char *in = "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";

    check(SMTPD_BARE_LF_NORMALIZE, false, in, "Subject: x\r\n\r\nbody\r\n", true,
	  strlen("Subject: x\r\n\r\nbody\r\n.\r\n"));
}

Test(smtpd_data, empty_message)
{
    check(SMTPD_BARE_LF_NORMALIZE, false, ".\r\n", "", true, 3);
}

Test(smtpd_data, dot_unstuffing)
{
    check(SMTPD_BARE_LF_NORMALIZE, false, "..line\r\n.x\r\n...\r\n.\r\n",
	  ".line\r\nx\r\n..\r\n", true, strlen("..line\r\n.x\r\n...\r\n.\r\n"));
}

Test(smtpd_data, incomplete_message_is_not_done)
{
    check(SMTPD_BARE_LF_NORMALIZE, false, "a\r\nb\r\n.", "a\r\nb\r\n", false, 7);
}

/*
 * The smuggling sequences: none of them may end DATA. What follows them
 * ("MAIL FROM:...") stays content of the one message, which ends only at
 * the real <CR><LF>.<CR><LF>.
 */
static void smuggle(const char *seq, const char *seq_as_content)
{
    char    in[512], want[512];

    snprintf(in, sizeof(in), "Subject: a\r\n\r\nfirst%sMAIL FROM:<evil@x.y>\r\n.\r\n", seq);
    snprintf(want, sizeof(want), "Subject: a\r\n\r\nfirst%sMAIL FROM:<evil@x.y>\r\n",
	     seq_as_content);
    check(SMTPD_BARE_LF_NORMALIZE, false, in, want, true, strlen(in));
    check(SMTPD_BARE_LF_REJECT, false, in, want, true, strlen(in));
}

Test(smtpd_data, smuggling_lf_dot_lf)
{
    smuggle("\n.\n", "\r\n.\r\n");
}

Test(smtpd_data, smuggling_lf_dot_crlf)
{
    smuggle("\n.\r\n", "\r\n.\r\n");
}

Test(smtpd_data, smuggling_cr_dot_cr)
{
    smuggle("\r.\r", "\r.\r");
}

Test(smtpd_data, smuggling_crlf_dot_lf)
{
    smuggle("\r\n.\n", "\r\n.\r\n");
}

Test(smtpd_data, smuggling_cr_dot_crlf)
{
    smuggle("\r.\r\n", "\r.\r\n");
}

Test(smtpd_data, smuggling_crlf_dot_cr)
{
    smuggle("\r\n.\r", "\r\n\r");
}

Test(smtpd_data, bare_lf_lines_become_crlf_and_are_flagged)
{
    RESULT  r;
    const char *in = "a\nb\n\r\n.\r\n";

    check(SMTPD_BARE_LF_NORMALIZE, false, in, "a\r\nb\r\n\r\n", true, strlen(in));
    decode(SMTPD_BARE_LF_NORMALIZE, false, 0, in, strlen(in), 100, &r);
    cr_assert(r.bare_lf);
    decode(SMTPD_BARE_LF_NORMALIZE, false, 0, "a\r\n.\r\n", 6, 100, &r);
    cr_assert_not(r.bare_lf);
}

Test(smtpd_data, mode_no_lets_lf_dot_lf_end_data)
{
    check(SMTPD_BARE_LF_ALLOW, false, "a\n.\nMAIL", "a\r\n", true, 4);
}

Test(smtpd_data, bare_cr_stays_inside_its_line)
{
    check(SMTPD_BARE_LF_NORMALIZE, false, "a\rb\r\r\n.\r\n", "a\rb\r\r\n", true, 9);
}

Test(smtpd_data, size_limit_drops_content_but_still_finds_the_end)
{
    RESULT  r;
    char    in[300];

    memset(in, 'x', 200);
    strcpy(in + 200, "\r\n.\r\n");
    decode(SMTPD_BARE_LF_NORMALIZE, false, 100, in, strlen(in), 7, &r);
    cr_assert(r.too_big);
    cr_assert(r.done);
    cr_assert_eq(r.content_len, 0);
    cr_assert_eq(r.consumed, strlen(in));
}

Test(smtpd_data, bdat_content_is_binary_safe_and_not_unstuffed)
{
    RESULT  r;
    const char in[] = "..x\r\n.\r\nbin\0ary\nlast";

    decode(SMTPD_BARE_LF_NORMALIZE, true, 0, in, sizeof(in) - 1, 3, &r);
    cr_assert_not(r.done);
    const char want[] = "..x\r\n.\r\nbin\0ary\r\nlast\r\n";

    cr_assert_eq(r.content_len, sizeof(want) - 1);
    cr_assert(memcmp(r.content, want, sizeof(want) - 1) == 0);
}

Test(smtpd_data, bdat_trailing_crlf_not_doubled)
{
    RESULT  r;

    decode(SMTPD_BARE_LF_NORMALIZE, true, 0, "a\r\n", 3, 1, &r);
    cr_assert_eq(r.content_len, 3);
    cr_assert(memcmp(r.content, "a\r\n", 3) == 0);
}
