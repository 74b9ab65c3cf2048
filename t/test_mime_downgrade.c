/*
 * test_mime_downgrade.c - 8-bit to 7-bit MIME conversion (stages/
 * mime_downgrade.c): quoted-printable rules, multipart walking, what stays
 * byte for byte, and hostile structure.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "stages/mime_downgrade.h"

typedef struct T {
    STR     out;
    STR     why;
    enum mime_downgrade_status st;
} T;

static void t_run(T *t, const char *in, size_t len)
{
    str_init(&t->out);
    str_init(&t->why);
    t->st = mime_downgrade(in, len, &t->out, &t->why);
}

static void t_free(T *t)
{
    str_release(&t->out);
    str_release(&t->why);
}

/* Every output line ends in CRLF, is at most 76 characters, and 7-bit. */
static void t_check_7bit_lines(const char *s, size_t len, size_t max)
{
    size_t  col = 0;

    for (size_t i = 0; i < len; i++) {
	cr_assert(((unsigned char) s[i] & 0x80) == 0, "8-bit byte at %zu", i);
	if (s[i] == '\n') {
	    cr_assert(i > 0 && s[i - 1] == '\r', "bare LF at %zu", i);
	    cr_assert(col - 1 <= max, "line of %zu characters", col - 1);
	    col = 0;
	} else
	    col++;
    }
    cr_assert_eq(col, 0, "last line without CRLF");
}

Test(mime_downgrade, plain_8bit_text_to_qp)
{
    const char *in =
	"From: a@example.org\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"Subject: hi\r\n"
	"\r\n"
	"caf\xc3\xa9 = 1 \r\n"
	"tab\t\r\n"
	"plain line\r\n";
    T       t;

    t_run(&t, in, strlen(in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE);
    cr_assert_str_eq(STR_DATA(&t.out),
		     "From: a@example.org\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=utf-8\r\n"
		     "Subject: hi\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n"
		     "caf=C3=A9 =3D 1=20\r\n"
		     "tab=09\r\n"
		     "plain line\r\n");
    t_check_7bit_lines(STR_DATA(&t.out), STR_LEN(&t.out), 76);
    t_free(&t);
}

Test(mime_downgrade, soft_line_breaks_at_76_columns)
{
    STR     in = STR_INIT;
    STR     dec = STR_INIT;
    T       t;

    str_puts(&in, "Content-Transfer-Encoding: binary\r\n\r\n");
    /* 3000 characters in one line, 8-bit bytes and '=' mixed in. */
    for (int i = 0; i < 1000; i++)
	str_puts(&in, i % 7 ? "ab\xe9" : "x=y");
    str_puts(&in, "\r\nshort\r\n");
    t_run(&t, STR_DATA(&in), STR_LEN(&in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE);
    t_check_7bit_lines(STR_DATA(&t.out), STR_LEN(&t.out), 76);

    /* Decoding the body gives back the input body. */
    const char *b = strstr(STR_DATA(&t.out), "\r\n\r\n") + 4;

    for (const char *cp = b; *cp; cp++) {
	if (cp[0] == '=' && cp[1] == '\r' && cp[2] == '\n')
	    cp += 2;
	else if (cp[0] == '=') {
	    unsigned v;

	    cr_assert(sscanf(cp + 1, "%2X", &v) == 1);
	    str_putc(&dec, (int) v);
	    cp += 2;
	} else
	    str_putc(&dec, *cp);
    }
    cr_assert_str_eq(STR_DATA(&dec), strstr(STR_DATA(&in), "\r\n\r\n") + 4);
    str_release(&in);
    str_release(&dec);
    t_free(&t);
}

Test(mime_downgrade, multipart_8bit_and_base64_parts)
{
    const char *in =
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed;\r\n"
	"\tboundary=\"=_b1\"\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"prologue\r\n"
	"--=_b1\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"Content-Transfer-Encoding: 8BIT\r\n"
	"\r\n"
	"gr\xfc\xdf\r\n"
	"--=_b1\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAECAwQ=\r\n"
	"--=_b1--\r\n"
	"epilogue\r\n";
    T       t;

    t_run(&t, in, strlen(in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE, "%s", STR_DATA(&t.why));
    cr_assert_str_eq(STR_DATA(&t.out),
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: multipart/mixed;\r\n"
		     "\tboundary=\"=_b1\"\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n"
		     "\r\n"
		     "prologue\r\n"
		     "--=_b1\r\n"
		     "Content-Type: text/plain; charset=iso-8859-1\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n"
		     "gr=FC=DF\r\n"
		     "--=_b1\r\n"
		     "Content-Type: application/octet-stream\r\n"
		     "Content-Transfer-Encoding: base64\r\n"
		     "\r\n"
		     "AAECAwQ=\r\n"
		     "--=_b1--\r\n"
		     "epilogue\r\n");
    t_free(&t);
}

Test(mime_downgrade, nested_multipart_and_rfc822)
{
    const char *in =
	"Content-Type: multipart/mixed; boundary=outer\r\n"
	"\r\n"
	"--outer\r\n"
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
	"\r\n"
	"--inner\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"\xe9t\xe9\r\n"
	"--inner\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<p>7bit \xe9 stays</p>\r\n"
	"--inner--\r\n"
	"--outer\r\n"
	"Content-Type: message/rfc822\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"Subject: inner\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"na\xefve\r\n"
	"--outer--\r\n";
    T       t;

    t_run(&t, in, strlen(in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE, "%s", STR_DATA(&t.why));
    cr_assert_str_eq(STR_DATA(&t.out),
		     "Content-Type: multipart/mixed; boundary=outer\r\n"
		     "\r\n"
		     "--outer\r\n"
		     "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
		     "\r\n"
		     "--inner\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n"
		     "=E9t=E9\r\n"
		     "--inner\r\n"
		     "Content-Type: text/html\r\n"
		     "\r\n"
		     "<p>7bit \xe9 stays</p>\r\n"
		     "--inner--\r\n"
		     "--outer\r\n"
		     "Content-Type: message/rfc822\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n"
		     "\r\n"
		     "Subject: inner\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n"
		     "na=EFve\r\n"
		     "--outer--\r\n");
    t_free(&t);
}

Test(mime_downgrade, no_8bit_untouched)
{
    const char *in =
	"Content-Transfer-Encoding: 8bit\r\n\r\nonly ascii = here \r\n";
    const char *undeclared = "Subject: x\r\n\r\nundeclared \xe9 is left alone\r\n";
    T       t;

    t_run(&t, in, strlen(in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_UNCHANGED);
    cr_assert_eq(STR_LEN(&t.out), 0);
    t_free(&t);
    /* Postfix converts only what declares 8bit or binary. */
    t_run(&t, undeclared, strlen(undeclared));
    cr_assert_eq(t.st, MIME_DOWNGRADE_UNCHANGED);
    cr_assert_eq(STR_LEN(&t.out), 0);
    t_free(&t);
}

Test(mime_downgrade, malformed_boundaries)
{
    /* The inner multipart never closes; the outer boundary ends it, and
     * the part after it is still converted. A boundary with trailing text
     * counts; one that is only a prefix of another line does not. */
    const char *in =
	"Content-Type: multipart/mixed; boundary=\"a\"\r\n"
	"\r\n"
	"--a\r\n"
	"Content-Type: multipart/mixed; boundary=bb\r\n"
	"\r\n"
	"--bb\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"x\xff\r\n"
	"--a   trailing cruft\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"-not a boundary \xff\r\n";
    T       t;

    t_run(&t, in, strlen(in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE, "%s", STR_DATA(&t.why));
    cr_assert_str_eq(STR_DATA(&t.out),
		     "Content-Type: multipart/mixed; boundary=\"a\"\r\n"
		     "\r\n"
		     "--a\r\n"
		     "Content-Type: multipart/mixed; boundary=bb\r\n"
		     "\r\n"
		     "--bb\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n"
		     "x=FF\r\n"
		     "--a   trailing cruft\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n"
		     "-not a boundary =FF\r\n");
    t_free(&t);

    /* Multipart without a boundary: cannot be walked, send as-is. */
    const char *nob = "Content-Type: multipart/mixed\r\n"
	"Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n";

    t_run(&t, nob, strlen(nob));
    cr_assert_eq(t.st, MIME_DOWNGRADE_ERROR);
    cr_assert_eq(STR_LEN(&t.out), 0);
    cr_assert(strstr(STR_DATA(&t.why), "boundary"));
    t_free(&t);

    /* Unterminated quotes and comments, no final CRLF, bare LF. */
    const char *odd = "Content-Type: multipart/mixed; boundary=\"x (y\r\n"
	"Content-Transfer-Encoding: (comment 8bit\r\n"
	"\r\n--x (y\n\xe9";

    t_run(&t, odd, strlen(odd));
    cr_assert_neq(t.st, MIME_DOWNGRADE_DONE);
    t_free(&t);
}

Test(mime_downgrade, header_ends_without_empty_line)
{
    const char *in = "Content-Transfer-Encoding: 8bit\r\nbody \xe9\r\n";
    T       t;

    t_run(&t, in, strlen(in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE);
    cr_assert_str_eq(STR_DATA(&t.out),
		     "Content-Transfer-Encoding: quoted-printable\r\n\r\nbody =E9\r\n");
    t_free(&t);
}

Test(mime_downgrade, very_long_lines)
{
    size_t  n = 4 * 1024 * 1024;
    char   *in = mem_alloc(n + 64);
    size_t  len;
    T       t;

    len = (size_t) snprintf(in, 64, "Content-Transfer-Encoding: 8bit\r\n\r\n");
    memset(in + len, '\xe9', n);
    memcpy(in + len + n, "\r\n", 2);
    len += n + 2;
    t_run(&t, in, len);
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE);
    t_check_7bit_lines(STR_DATA(&t.out), STR_LEN(&t.out), 76);
    mem_free(in);
    t_free(&t);

    /* A boundary longer than the limit is matched by its prefix. */
    STR     b = STR_INIT;
    STR     msg = STR_INIT;

    for (int i = 0; i < MIME_DOWNGRADE_BOUNDARY_MAX + 500; i++)
	str_putc(&b, 'a' + i % 26);
    str_printf(&msg, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n--%s\r\n"
	       "Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n--%s--\r\n",
	       STR_DATA(&b), STR_DATA(&b), STR_DATA(&b));
    t_run(&t, STR_DATA(&msg), STR_LEN(&msg));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE);
    cr_assert(strstr(STR_DATA(&t.out), "\r\n=E9\r\n--"));
    str_release(&b);
    str_release(&msg);
    t_free(&t);
}

Test(mime_downgrade, hostile_deep_nesting)
{
    STR     in = STR_INIT;
    T       t;

    for (int i = 0; i < 100000; i++)
	str_printf(&in, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n",
		   i, i);
    str_puts(&in, "Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n");
    t_run(&t, STR_DATA(&in), STR_LEN(&in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_ERROR);
    cr_assert(strstr(STR_DATA(&t.why), "nesting"));
    cr_assert_eq(STR_LEN(&t.out), 0);
    t_free(&t);
    str_release(&in);

    /* Within the limit it is fine. */
    for (int i = 0; i < MIME_DOWNGRADE_MAX_DEPTH; i++)
	str_printf(&in, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n",
		   i, i);
    str_puts(&in, "Content-Transfer-Encoding: 8bit\r\n\r\n\xe9\r\n");
    t_run(&t, STR_DATA(&in), STR_LEN(&in));
    cr_assert_eq(t.st, MIME_DOWNGRADE_DONE, "%s", STR_DATA(&t.why));
    t_free(&t);
    str_release(&in);
}

Test(mime_downgrade, out_keeps_prior_text)
{
    const char *in = "Content-Type: multipart/mixed\r\n\r\n\xe9\r\n";
    T       t;

    str_init(&t.out);
    str_init(&t.why);
    str_puts(&t.out, "keep");
    t.st = mime_downgrade(in, strlen(in), &t.out, &t.why);
    cr_assert_eq(t.st, MIME_DOWNGRADE_ERROR);
    cr_assert_str_eq(STR_DATA(&t.out), "keep");
    t_free(&t);
}
