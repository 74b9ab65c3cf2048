/*
 * test_matchlist.c - domain and address match lists: exact domains,
 * subdomains (with and without parent_domain_matches_subdomains), negation,
 * tables, files, networks, and bad lists.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/matchlist.h"
#include "engine/msg.h"
#include "engine/str.h"

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/test_matchlist.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char    cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    (void) system(cmd);
}

TestSuite(matchlist, .init = setup, .fini = teardown);

static char *write_file(const char *name, const char *content)
{
    static char path[256];
    FILE   *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    cr_assert_not_null(fp = fopen(path, "w"));
    fputs(content, fp);
    fclose(fp);
    return path;
}

static MATCH_LIST *build(int addrs, const char *param, const char *spec)
{
    STR     err = STR_INIT;
    MATCH_LIST *list = addrs ? match_list_addrs(param, spec, &err)
	: match_list_domains(param, spec, &err);

    cr_assert_not_null(list, "%s = %s: %s", param, spec, STR_DATA(&err));
    str_release(&err);
    return list;
}

static void fails(int addrs, const char *spec, const char *why)
{
    STR     err = STR_INIT;
    MATCH_LIST *list = addrs ? match_list_addrs("mynetworks", spec, &err)
	: match_list_domains("relay_domains", spec, &err);

    cr_expect_null(list, "\"%s\" should fail", spec);
    match_list_free(list);
    cr_expect(strstr(STR_DATA(&err), why) != NULL, "\"%s\": reason \"%s\" lacks \"%s\"",
	      spec, STR_DATA(&err), why);
    str_release(&err);
}

#define MATCH(list, key, want) \
    cr_expect_eq(match_list_match((list), (key)), (want), "key %s", (key))

Test(matchlist, mydestination_is_exact)
{
    MATCH_LIST *l = build(0, "mydestination", "Example.COM, .sub.org localhost");

    MATCH(l, "example.com", 1);
    MATCH(l, "EXAMPLE.com", 1);
    MATCH(l, "a.example.com", 0);			/* not a parent-matching list */
    MATCH(l, "x.sub.org", 1);
    MATCH(l, "deep.x.sub.org", 1);
    MATCH(l, "sub.org", 0);
    MATCH(l, "localhost", 1);
    MATCH(l, "example.org", 0);
    match_list_free(l);
}

Test(matchlist, relay_domains_match_subdomains)
{
    MATCH_LIST *l = build(0, "relay_domains", "example.com");

    MATCH(l, "example.com", 1);
    MATCH(l, "a.b.Example.Com", 1);
    MATCH(l, "badexample.com", 0);			/* not a label boundary */
    MATCH(l, "example.com.evil", 0);
    match_list_free(l);
}

Test(matchlist, negation_first_match_wins)
{
    MATCH_LIST *l = build(0, "relay_domains", "!bad.example.com, example.com, !other.org");

    MATCH(l, "bad.example.com", 0);
    MATCH(l, "x.bad.example.com", 0);
    MATCH(l, "good.example.com", 1);
    MATCH(l, "other.org", 0);
    match_list_free(l);
}

Test(matchlist, tables_and_files)
{
    MATCH_LIST *l = build(0, "relay_domains", "inline:{ example.net=x, {.dot.org = y} }");

    MATCH(l, "example.net", 1);
    MATCH(l, "a.example.net", 1);			/* parent "example.net" */
    MATCH(l, "a.dot.org", 0);
    match_list_free(l);
    l = build(0, "mydestination", "inline:{ example.net=x, .dot.org=y }");
    MATCH(l, "example.net", 1);
    MATCH(l, "a.example.net", 0);
    MATCH(l, "a.dot.org", 1);				/* ".dot.org" entry */
    match_list_free(l);

    char    spec[300];

    snprintf(spec, sizeof(spec), "first.example %s",
	     write_file("domains", "# domains\nfile.example, !no.other.example\n"
			"other.example\n"));
    l = build(0, "mydestination", spec);
    MATCH(l, "file.example", 1);
    MATCH(l, "first.example", 1);
    MATCH(l, "other.example", 1);
    MATCH(l, "no.other.example", 0);
    match_list_free(l);
}

Test(matchlist, address_lists)
{
    char    spec[400];
    MATCH_LIST *l;

    snprintf(spec, sizeof(spec), "127.0.0.0/8 [::1]/128, 192.168.1.1 !10.1.0.0/16 "
	     "10.0.0.0/8 [2001:db8::]/32 fe80::/10 cidr:%s",
	     write_file("nets", "172.16.0.0/12 ok\n"));
    l = build(1, "mynetworks", spec);
    MATCH(l, "127.1.2.3", 1);
    MATCH(l, "::1", 1);
    MATCH(l, "[::1]", 1);
    MATCH(l, "::ffff:127.0.0.1", 1);
    MATCH(l, "192.168.1.1", 1);
    MATCH(l, "192.168.1.2", 0);
    MATCH(l, "10.1.2.3", 0);
    MATCH(l, "10.2.0.1", 1);
    MATCH(l, "2001:db8:1::1", 1);
    MATCH(l, "fe80::1", 1);
    MATCH(l, "172.20.0.1", 1);
    MATCH(l, "8.8.8.8", 0);
    MATCH(l, "not-an-address", 0);
    match_list_free(l);
}

Test(matchlist, empty_list_matches_nothing)
{
    MATCH_LIST *l = build(1, "mynetworks", "");

    MATCH(l, "127.0.0.1", 0);
    match_list_free(l);
}

Test(matchlist, bad_lists)
{
    fails(1, "127.0.0.1/8", "non-null host address bits in \"127.0.0.1/8\", perhaps you "
	  "should use \"127.0.0.0/8\" instead");
    fails(1, "10.0.0.0/40", "bad net/mask pattern");
    fails(1, "localhost", "bad net/mask pattern");
    fails(1, "[::1", "bad net/mask pattern");
    fails(0, "hash:/nonexistent/relay", "open database /nonexistent/relay.db");
    fails(0, "example.com, /nonexistent/file", "open /nonexistent/file");
    fails(0, "!", "missing pattern");
    fails(0, "inline:{ a=b", "unbalanced");
}
