/*
 * test_addr_parse.c - RFC 5322 address lists (display names, comments,
 * groups, quoted strings, route-addrs), splicing rewritten addresses
 * back, quoting of local parts, and hostile input.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "stages/addr_parse.h"

static size_t parse(const char *text, ADDR_LIST *list)
{
    addr_list_init(list);
    return addr_parse_list(text, strlen(text), list);
}

Test(addr_parse, display_name_and_angle)
{
    ADDR_LIST l;
    const char *text = "John Doe <john@example.com>";

    cr_assert_eq(parse(text, &l), 1);
    cr_expect_str_eq(l.v[0].addr, "john@example.com");
    cr_expect_str_eq(l.v[0].display, "John Doe");
    cr_expect(l.v[0].flags & ADDR_F_ANGLE);
    cr_expect_eq(l.v[0].end - l.v[0].start, strlen("john@example.com"));
    cr_expect(strncmp(text + l.v[0].start, "john@example.com", 16) == 0);
    addr_list_free(&l);
}

Test(addr_parse, list_with_quotes_and_comments)
{
    ADDR_LIST l;

    cr_assert_eq(parse("\"Doe, John\" <john@x.test>, jane@y.test (Jane Roe),"
		       " (only a comment), \"odd user\"@z.test", &l), 3);
    cr_expect_str_eq(l.v[0].addr, "john@x.test");
    cr_expect_str_eq(l.v[0].display, "Doe, John");
    cr_expect_str_eq(l.v[1].addr, "jane@y.test");
    cr_expect_null(l.v[1].display);
    cr_expect_str_eq(l.v[2].addr, "odd user@z.test");
    addr_list_free(&l);
}

Test(addr_parse, groups)
{
    ADDR_LIST l;

    cr_assert_eq(parse("team: a@x.test, \"b c\"@y.test; , d@z.test", &l), 3);
    cr_expect_str_eq(l.v[0].group, "team");
    cr_expect_str_eq(l.v[1].addr, "b c@y.test");
    cr_expect_str_eq(l.v[1].group, "team");
    cr_expect_null(l.v[2].group);
    addr_list_free(&l);
    cr_expect_eq(parse("undisclosed-recipients:;", &l), 0);
    addr_list_free(&l);
}

Test(addr_parse, null_route_and_nested_comments)
{
    ADDR_LIST l;

    cr_assert_eq(parse("<>", &l), 1);
    cr_expect_str_eq(l.v[0].addr, "");
    addr_list_free(&l);
    cr_assert_eq(parse("<@a.test,@b.test:user@c.test>", &l), 1);
    cr_expect_str_eq(l.v[0].addr, "@a.test,@b.test:user@c.test");
    addr_list_free(&l);
    cr_assert_eq(parse("(a (nested) comment) user@x.test (tail \\) still)", &l), 1);
    cr_expect_str_eq(l.v[0].addr, "user@x.test");
    addr_list_free(&l);
    cr_assert_eq(parse("user@[192.0.2.1]", &l), 1);
    cr_expect_str_eq(l.v[0].addr, "user@[192.0.2.1]");
    addr_list_free(&l);
}

Test(addr_parse, splice_keeps_the_rest)
{
    ADDR_LIST l;
    const char *text = " John <john@x.test>,\r\n\tjane@y.test (Jane), keep@z.test";
    char   *repl[3] = {"j@new.test", "jane doe@y.test", NULL};
    STR     out = STR_INIT;

    cr_assert_eq(parse(text, &l), 3);
    addr_list_splice(text, strlen(text), &l, repl, &out);
    cr_expect_str_eq(STR_DATA(&out),
		     " John <j@new.test>,\r\n\t\"jane doe\"@y.test (Jane), keep@z.test");
    str_release(&out);
    addr_list_free(&l);
}

static const struct {
    const char *internal;
    const char *external;
} quote_cases[] = {
    {"user@x.test", "user@x.test"},
    {"first.last@x.test", "first.last@x.test"},
    {"john doe@x.test", "\"john doe\"@x.test"},
    {"a..b@x.test", "\"a..b\"@x.test"},
    {".a@x.test", "\".a\"@x.test"},
    {"a.@x.test", "\"a.\"@x.test"},
    {"a\"b@x.test", "\"a\\\"b\"@x.test"},
    {"a\\b@x.test", "\"a\\\\b\"@x.test"},
    {"a@b@x.test", "\"a@b\"@x.test"},
    {"@x.test", "\"\"@x.test"},
    {"jos\xc3\xa9@x.test", "jos\xc3\xa9@x.test"},
    {"user+tag=x@x.test", "user+tag=x@x.test"},
    {"user", "user"},
    {"", ""},
};

Test(addr_parse, quoting_round_trip)
{
    for (size_t i = 0; i < sizeof(quote_cases) / sizeof(quote_cases[0]); i++) {
	STR     ext = STR_INIT, in = STR_INIT;

	addr_externalize(&ext, quote_cases[i].internal);
	cr_expect_str_eq(STR_DATA(&ext), quote_cases[i].external, "case %zu", i);
	addr_internalize(&in, STR_DATA(&ext));
	cr_expect_str_eq(STR_DATA(&in), quote_cases[i].internal, "round trip %zu", i);
	str_release(&ext);
	str_release(&in);
    }
}

Test(addr_parse, hostile_input)
{
    ADDR_LIST l;
    STR     big = STR_INIT;
    size_t  n;

    /* unterminated everything */
    cr_expect_leq(parse("\"abc", &l), 1);
    addr_list_free(&l);
    cr_expect_leq(parse("(abc", &l), 1);
    addr_list_free(&l);
    cr_expect_leq(parse("<abc", &l), 1);
    addr_list_free(&l);
    cr_expect_leq(parse("[abc", &l), 1);
    addr_list_free(&l);
    cr_expect_leq(parse(">>>,,,;;;:::@@@", &l), 10);
    addr_list_free(&l);

    /* NUL bytes are data, not an end */
    addr_list_init(&l);
    n = addr_parse_list("a@x.test,\0b@y.test", 18, &l);
    cr_expect_eq(n, 2);
    addr_list_free(&l);

    /* 1 MB of '<' and deep comment nesting */
    for (int i = 0; i < 1 << 20; i++)
	str_putc(&big, '<');
    addr_list_init(&l);
    (void) addr_parse_list(STR_DATA(&big), STR_LEN(&big), &l);
    addr_list_free(&l);
    str_reset(&big);
    for (int i = 0; i < 100000; i++)
	str_putc(&big, '(');
    addr_list_init(&l);
    cr_expect_eq(addr_parse_list(STR_DATA(&big), STR_LEN(&big), &l), 0);
    addr_list_free(&l);

    /* 20 000 addresses: only the first ADDR_PARSE_TOKEN_LIMIT tokens */
    str_reset(&big);
    for (int i = 0; i < 20000; i++)
	str_printf(&big, "u%d@x.test, ", i);
    addr_list_init(&l);
    n = addr_parse_list(STR_DATA(&big), STR_LEN(&big), &l);
    cr_expect_gt(n, 100);
    cr_expect_leq(n, ADDR_PARSE_TOKEN_LIMIT / 4 + 1);
    addr_list_free(&l);
    str_release(&big);
}
