/*
 * test_maildrop.c - the maildrop file format (stages/maildrop.c): a round
 * trip through maildrop_read and maildrop_copy, and hostile files (bad
 * magic, unknown records, lengths over their bounds, truncation at every
 * byte, data after the end record, a content larger than the limit) that
 * must be refused with a reason, never crash or over-allocate.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/str.h"
#include "stages/maildrop.h"

/* A pipe-free way to feed bytes to a reader: a temp file. */
static int bytes_fd(const void *data, size_t len)
{
    FILE   *f = tmpfile();

    cr_assert(f);
    if (len)
	cr_assert_eq(fwrite(data, 1, len, f), len);
    fflush(f);
    int     fd = dup(fileno(f));

    fclose(f);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static int parse(const STR *s, long long limit, MAILDROP *md, STR *err)
{
    int     fd = bytes_fd(s->data, STR_LEN(s));
    int     rc = maildrop_read(fd, limit, md, err);

    close(fd);
    return rc;
}

static void good_file(STR *s)
{
    maildrop_start(s);
    maildrop_put(s, MAILDROP_REC_TIME, "1700000000000000", 16);
    maildrop_put(s, MAILDROP_REC_SENDER, "alice", 5);
    maildrop_put(s, MAILDROP_REC_FULLNAME, "Alice Liddell", 13);
    maildrop_put(s, MAILDROP_REC_FLAGS, "1", 1);
    maildrop_put(s, MAILDROP_REC_RCPT, "bob@example.com", 15);
    maildrop_put(s, MAILDROP_REC_RCPT, "carol@example.com", 17);
    maildrop_put(s, MAILDROP_REC_CONTENT, "Subject: hi\r\n\r\n", 15);
    maildrop_put(s, MAILDROP_REC_CONTENT, "body\r\n.\r\n", 9);
    maildrop_put(s, MAILDROP_REC_END, "", 0);
}

Test(maildrop, round_trip)
{
    STR     s = STR_INIT, err = STR_INIT;
    MAILDROP md;

    good_file(&s);
    cr_assert_eq(parse(&s, 0, &md, &err), 0, "%s", STR_DATA(&err));
    cr_assert_eq(md.arrival_us, 1700000000000000LL);
    cr_assert_str_eq(md.sender, "alice");
    cr_assert_str_eq(md.fullname, "Alice Liddell");
    cr_assert_eq(md.flags, MAILDROP_FLAG_EXTRACT);
    cr_assert_eq(md.nrcpt, 2);
    cr_assert_str_eq(md.rcpt[0], "bob@example.com");
    cr_assert_str_eq(md.rcpt[1], "carol@example.com");
    cr_assert_str_eq(STR_DATA(&md.content), "Subject: hi\r\n\r\nbody\r\n.\r\n");
    maildrop_free(&md);
    str_release(&s);
    str_release(&err);
}

Test(maildrop, null_sender_and_no_content)
{
    STR     s = STR_INIT, err = STR_INIT;
    MAILDROP md;

    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "", 0);
    maildrop_put(&s, MAILDROP_REC_END, "", 0);
    cr_assert_eq(parse(&s, 0, &md, &err), 0, "%s", STR_DATA(&err));
    cr_assert_str_eq(md.sender, "");
    cr_assert_null(md.fullname);
    cr_assert_eq(md.nrcpt, 0);
    cr_assert_eq(STR_LEN(&md.content), 0);
    maildrop_free(&md);
    str_release(&s);
    str_release(&err);
}

Test(maildrop, copy_validates_and_counts)
{
    STR     s = STR_INIT, err = STR_INIT;
    char    path[] = "/tmp/test_maildrop.XXXXXX";
    int     in, out = mkstemp(path);
    size_t  nrcpt = 0;
    MAILDROP md;

    cr_assert(out >= 0);
    unlink(path);
    good_file(&s);
    in = bytes_fd(s.data, STR_LEN(&s));
    cr_assert_eq(maildrop_copy(in, out, 0, &nrcpt, &err), 0, "%s", STR_DATA(&err));
    cr_assert_eq(nrcpt, 2);
    close(in);
    lseek(out, 0, SEEK_SET);
    cr_assert_eq(maildrop_read(out, 0, &md, &err), 0, "%s", STR_DATA(&err));
    cr_assert_str_eq(md.rcpt[1], "carol@example.com");
    maildrop_free(&md);
    close(out);

    /* A malformed stream is refused by the copy too. */
    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    in = bytes_fd(s.data, STR_LEN(&s));
    out = open("/dev/null", O_WRONLY);
    cr_assert_eq(maildrop_copy(in, out, 0, NULL, &err), -1);
    cr_assert(strstr(STR_DATA(&err), "without an end record"), "%s", STR_DATA(&err));
    close(in);
    close(out);
    str_release(&s);
    str_release(&err);
}

static void expect_bad(const STR *s, long long limit, const char *why)
{
    STR     err = STR_INIT;
    MAILDROP md;

    cr_assert_eq(parse(s, limit, &md, &err), -1, "accepted a bad file (want: %s)", why);
    cr_assert(strstr(STR_DATA(&err), why), "reason \"%s\", want \"%s\"", STR_DATA(&err), why);
    str_release(&err);
}

Test(maildrop, hostile_files)
{
    STR     s = STR_INIT;
    unsigned char huge[5] = {MAILDROP_REC_CONTENT, 0xff, 0xff, 0xff, 0xff};

    str_puts(&s, "From alice Mon Jan 1\n");
    expect_bad(&s, 0, "bad magic");
    str_reset(&s);
    str_puts(&s, "SLUICE-MAILDROP 9\n");
    expect_bad(&s, 0, "unsupported version");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, 'Z', "x", 1);
    expect_bad(&s, 0, "unexpected record type");

    /* A 4 GiB length: refused before any allocation. */
    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    str_append(&s, huge, sizeof(huge));
    expect_bad(&s, 0, "exceeds the limit");

    str_reset(&s);
    maildrop_start(&s);
    {
	char    big[MAILDROP_MAX_FIELD + 1];

	memset(big, 'a', sizeof(big));
	maildrop_put(&s, MAILDROP_REC_SENDER, big, sizeof(big));
    }
    expect_bad(&s, 0, "exceeds the limit");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_RCPT, "b\nX-Forged: yes", 15);
    maildrop_put(&s, MAILDROP_REC_END, "", 0);
    expect_bad(&s, 0, "NUL, CR or LF");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_SENDER, "b", 1);
    expect_bad(&s, 0, "more than one sender");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_RCPT, "b", 1);
    maildrop_put(&s, MAILDROP_REC_END, "", 0);
    expect_bad(&s, 0, "no sender record");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_CONTENT, "x\r\n", 3);
    maildrop_put(&s, MAILDROP_REC_RCPT, "b", 1);
    expect_bad(&s, 0, "after the content");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_FLAGS, "256", 3);
    expect_bad(&s, 0, "flags");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_TIME, "12x", 3);
    expect_bad(&s, 0, "arrival time");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_END, "", 0);
    str_puts(&s, "trailing");
    expect_bad(&s, 0, "data after the end record");

    str_reset(&s);
    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_END, "x", 1);
    expect_bad(&s, 0, "exceeds the limit");
    str_release(&s);
}

Test(maildrop, content_limit)
{
    STR     s = STR_INIT, err = STR_INIT;
    MAILDROP md;

    maildrop_start(&s);
    maildrop_put(&s, MAILDROP_REC_SENDER, "a", 1);
    maildrop_put(&s, MAILDROP_REC_CONTENT, "0123456789", 10);
    maildrop_put(&s, MAILDROP_REC_CONTENT, "0123456789", 10);
    maildrop_put(&s, MAILDROP_REC_END, "", 0);
    expect_bad(&s, 19, "size limit");
    cr_assert_eq(parse(&s, 20, &md, &err), 0, "%s", STR_DATA(&err));
    cr_assert_eq(STR_LEN(&md.content), 20);
    maildrop_free(&md);
    str_release(&s);
    str_release(&err);
}

/* Every proper prefix of a good file is malformed, never accepted. */
Test(maildrop, every_truncation)
{
    STR     s = STR_INIT, cut = STR_INIT, err = STR_INIT;
    MAILDROP md;

    good_file(&s);
    for (size_t n = 0; n < STR_LEN(&s); n++) {
	str_reset(&cut);
	str_append(&cut, s.data, n);
	cr_assert_eq(parse(&cut, 0, &md, &err), -1, "a file cut at %zu bytes was accepted", n);
    }
    str_release(&s);
    str_release(&cut);
    str_release(&err);
}

/* Random bytes after a good magic: refused or accepted, never a crash. */
Test(maildrop, random_garbage)
{
    STR     s = STR_INIT, err = STR_INIT;
    MAILDROP md;
    unsigned seed = 12345;

    for (int round = 0; round < 2000; round++) {
	str_reset(&s);
	maildrop_start(&s);
	int     n = rand_r(&seed) % 64;

	for (int i = 0; i < n; i++) {
	    int     r = rand_r(&seed);

	    /* Mostly plausible record types and short lengths. */
	    str_putc(&s, i % 5 == 0 ? "TSNFRCEZ"[r % 8] : (i % 5 < 4 ? 0 : r & 0x0f));
	}
	if (parse(&s, 100, &md, &err) == 0)
	    maildrop_free(&md);
    }
    str_release(&s);
    str_release(&err);
}
