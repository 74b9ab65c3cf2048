/*
 * test_dict.c - lookup tables: every type, hostile table lines, the
 * address/domain helpers, and reload when a file changes.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/aliasfile.h"
#include "engine/dict.h"
#include "engine/dict_gdbm.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"

static char tmpdir[64];
static STR warnings;

static void capture(enum msg_level level, const char *service, const char *text)
{
    (void) level;
    (void) service;
    str_puts(&warnings, text);
    str_putc(&warnings, '\n');
}

static void setup(void)
{
    strcpy(tmpdir, "/tmp/test_dict.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    str_init(&warnings);
    msg_sink_set(capture);
}

static void teardown(void)
{
    char    cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    (void) system(cmd);
    str_release(&warnings);
}

TestSuite(dict, .init = setup, .fini = teardown);

/* write_file - DIR/name with content (len: -1 = strlen); returns the path */
static char *write_file(const char *name, const char *content, ssize_t len)
{
    static char path[4][256];
    static int slot;
    char   *p = path[slot++ % 4];
    char    tmp[300];
    FILE   *fp;

    snprintf(p, 256, "%s/%s", tmpdir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    cr_assert_not_null(fp = fopen(tmp, "w"));
    fwrite(content, 1, len < 0 ? strlen(content) : (size_t) len, fp);
    cr_assert_eq(fclose(fp), 0);
    cr_assert_eq(rename(tmp, p), 0);		/* a new inode, as editors do */
    return p;
}

static DICT *open_ok(const char *fmt, const char *arg, int flags)
{
    char    name[512];
    STR     err = STR_INIT;
    DICT   *dict;

    snprintf(name, sizeof(name), fmt, arg);
    dict = dict_open(name, flags, &err);
    cr_assert_not_null(dict, "dict_open(%s): %s", name, STR_DATA(&err));
    str_release(&err);
    return dict;
}

static void expect(DICT *dict, const char *key, const char *value)
{
    STR     result = STR_INIT;
    int     rc = dict_lookup(dict, key, &result);

    if (value == NULL) {
	cr_expect_eq(rc, DICT_NOTFOUND, "%s: key \"%s\": expected not found, got %d \"%s\"",
		     dict_name(dict), key, rc, STR_DATA(&result));
    } else {
	cr_expect_eq(rc, DICT_FOUND, "%s: key \"%s\": expected found, got %d",
		     dict_name(dict), key, rc);
	cr_expect_str_eq(STR_DATA(&result), value, "%s: key \"%s\"", dict_name(dict), key);
    }
    str_release(&result);
}

static void open_fails(const char *name, const char *why)
{
    STR     err = STR_INIT;
    DICT   *dict = dict_open(name, 0, &err);

    cr_expect_null(dict, "dict_open(%s) should fail", name);
    if (dict)
	dict_close(dict);
    cr_expect(strstr(STR_DATA(&err), why) != NULL, "dict_open(%s): reason \"%s\" lacks \"%s\"",
	      name, STR_DATA(&err), why);
    str_release(&err);
}

static void expect_warning(const char *text)
{
    cr_expect(strstr(STR_DATA(&warnings), text) != NULL,
	      "warning \"%s\" missing from:\n%s", text, STR_DATA(&warnings));
}

/* dict_open dispatch */

Test(dict, open_errors)
{
    open_fails("nocolon", "need dictionary type:name");
    open_fails("bogus:/x", "unsupported dictionary type: bogus");
    open_fails("texthash:", "empty table name");
    open_fails("hash:/nonexistent/table", "open database /nonexistent/table.db: No such file");
    open_fails("unix:group.bygid", "unknown table: unix:group.bygid");
}

/* texthash: and the shared source format */

Test(dict, texthash_basic_and_hostile_lines)
{
    static const char text[] =
	"# comment\n"
	"\n"
	"Alice@Example.COM   OK\n"
	"bob      value with   spaces   \n"
	"   continued here\n"
	"missingvalue\n"
	"missingvalue2   \n"
	"\"quoted key\" with quotes\n"
	"\"unbalanced key value\n"
	"alice@example.com   second\n"
	"nul\0key  value\n"
	"after   still-read\n"
	"crlf   windows\r\n";
    char    big[6000];
    DICT   *d;

    /* An overlong key is skipped; the following line is still read. */
    memset(big, 'k', 5000);
    strcpy(big + 5000, " toolong\nnext ok\n");

    d = open_ok("texthash:%s", write_file("t", text, sizeof(text) - 1), 0);
    expect(d, "alice@example.com", "OK");
    expect(d, "ALICE@EXAMPLE.COM", "OK");		/* folded by default */
    expect(d, "bob", "value with   spaces      continued here");
    expect(d, "missingvalue", NULL);
    expect(d, "\"quoted key\"", "with quotes");	/* Postfix keeps the quotes */
    expect(d, "nul", NULL);
    expect(d, "after", "still-read");
    expect(d, "crlf", "windows");
    expect(d, "", NULL);
    expect_warning("line 6: expected format: key whitespace value -- ignoring this line");
    expect_warning("line 7: expected format: key whitespace value -- ignoring this line");
    expect_warning("line 9: unbalanced '\"'");
    expect_warning("line 10: duplicate entry: \"alice@example.com\"");
    expect_warning("line 11: NUL byte in input -- ignoring this line");
    dict_close(d);

    d = open_ok("texthash:%s", write_file("big", big, -1), 0);
    expect(d, "next", "ok");
    expect_warning("line 1: key is longer than 4096 bytes");
    dict_close(d);
}

Test(dict, texthash_no_fold)
{
    DICT   *d = open_ok("texthash:%s", write_file("t", "MiXed value\n", -1), DICT_FLAG_NO_FOLD);

    expect(d, "MiXed", "value");
    expect(d, "mixed", NULL);
    dict_close(d);
}

Test(dict, texthash_whitespace_first_line)
{
    DICT   *d = open_ok("texthash:%s", write_file("t", "  orphan text\nkey value\n", -1), 0);

    expect(d, "key", "value");
    expect(d, "orphan", NULL);
    expect_warning("line 1: logical line must not start with whitespace");
    dict_close(d);
}

/* hash: and gdbm: */

static void build_db(const char *path, const char *const *kv, int replace)
{
    char    db[300];
    STR     err = STR_INIT;
    DICT_GDBM_BUILD *b;

    snprintf(db, sizeof(db), "%s.db", path);
    b = dict_gdbm_build_open(db, 0644, replace ? DICT_GDBM_DUP_REPLACE : DICT_GDBM_DUP_WARN, &err);
    cr_assert_not_null(b, "%s", STR_DATA(&err));
    for (; kv[0]; kv += 2)
	cr_assert_geq(dict_gdbm_build_add(b, kv[0], kv[1], &err), 0);
    cr_assert_eq(dict_gdbm_build_commit(b, &err), 0, "%s", STR_DATA(&err));
    str_release(&err);
}

static int count_entry(const char *key, const char *value, void *ctx)
{
    (void) key;
    (void) value;
    ++*(int *) ctx;
    return 0;
}

Test(dict, hash_and_gdbm)
{
    static const char *const kv[] = {"user@example.com", "REJECT", "@example.org", "OK",
    "example.net", "relay", "k", "first", "k", "second", NULL};
    char    path[256];
    int     n = 0;
    DICT   *d;

    snprintf(path, sizeof(path), "%s/access", tmpdir);
    build_db(path, kv, 0);
    expect_warning("access.db: duplicate entry: \"k\"");
    d = open_ok("hash:%s", path, 0);
    expect(d, "USER@example.com", "REJECT");
    expect(d, "k", "first");				/* the first one wins */
    expect(d, "missing", NULL);
    cr_expect_eq(dict_walk(d, count_entry, &n), 0);
    cr_expect_eq(n, 4);
    dict_close(d);
    d = open_ok("gdbm:%s", path, 0);
    expect(d, "example.net", "relay");
    dict_close(d);
}

Test(dict, hash_garbage_file)
{
    char    path[256];

    write_file("junk.db", "this is not a gdbm file at all\n", -1);
    snprintf(path, sizeof(path), "hash:%s/junk", tmpdir);
    open_fails(path, "open database");
}

Test(dict, hash_values_without_nul)
{
    /* A table written by another tool without trailing NULs reads the same. */
    char    path[256];
    DICT   *d;
    GDBM_FILE db;
    datum   k = {(char *) "nonul", 5}, v = {(char *) "value", 5};

    snprintf(path, sizeof(path), "%s/x.db", tmpdir);
    cr_assert_not_null(db = gdbm_open(path, 0, GDBM_NEWDB, 0644, NULL));
    cr_assert_eq(gdbm_store(db, k, v, GDBM_INSERT), 0);
    gdbm_close(db);
    path[strlen(path) - 3] = 0;
    d = open_ok("hash:%s", path, 0);
    expect(d, "nonul", "value");
    dict_close(d);
}

/* inline: and static: */

Test(dict, inline_table)
{
    DICT   *d = open_ok("%s", "inline:{ Key1=value1, key2=value2 ,{ key3 = value with spaces }, "
			 "{key4=v=w} }", 0);

    expect(d, "key1", "value1");
    expect(d, "KEY2", "value2");
    expect(d, "key3", "value with spaces");
    expect(d, "key4", "v=w");
    expect(d, "key5", NULL);
    dict_close(d);
    open_fails("inline:{ a=b", "unbalanced '{'");
    open_fails("inline:{ a=b, { c=d }", "unbalanced '{'");
    open_fails("inline:{ a=b, c }", "not in key=value format");
    open_fails("inline:{ =b }", "empty key or value");
    open_fails("inline:{ }", "empty table");
    open_fails("inline:a=b", "expected \"{ ... }\"");
    open_fails("inline:{ a=b } junk", "text after '}'");
    open_fails("inline:{ a=b }}", "unbalanced '}'");
}

Test(dict, static_table)
{
    DICT   *d = open_ok("%s", "static:OK", 0);

    expect(d, "anything", "OK");
    dict_close(d);
    d = open_ok("%s", "static:{ value with spaces }", 0);
    expect(d, "x", "value with spaces");
    dict_close(d);
    open_fails("static:{ open", "unbalanced '{'");
    open_fails("static:{ }", "empty value");
}

/* cidr: */

Test(dict, cidr_table)
{
    static const char text[] =
	"192.168.1.1        exact\n"
	"192.168.0.0/16     wide\n"
	"192.168.1.0/24     never (after wider)\n"
	"10.1.2.3/8         bad-host-bits\n"
	"10.0.0.0/33        bad-prefix\n"
	"not.an.address     garbage\n"
	"172.16.0.0/12\n"
	"2001:db8::/32      v6net\n"
	"[::1]              v6loop\n"
	"[2001:db8::1]/128  never\n"
	"!10.0.0.0/8        not-ten\n";
    DICT   *d = open_ok("cidr:%s", write_file("c", text, -1), 0);

    expect(d, "192.168.1.1", "exact");
    expect(d, "192.168.1.2", "wide");			/* first match wins */
    expect(d, "192.168.200.1", "wide");
    expect(d, "::ffff:192.168.3.4", "wide");		/* v4-mapped */
    expect(d, "2001:db8::1", "v6net");
    expect(d, "2001:DB8:0:0::5", "v6net");
    expect(d, "[::1]", "v6loop");
    expect(d, "10.1.1.1", NULL);			/* bad rules skipped */
    expect(d, "172.16.0.1", "not-ten");
    expect(d, "not an address", NULL);
    expect_warning("line 4: non-null host address bits in \"10.1.2.3/8\", perhaps you "
		   "should use \"10.0.0.0/8\" instead: skipping this rule");
    expect_warning("line 5: bad net/mask pattern: \"10.0.0.0/33\"");
    expect_warning("line 6: bad net/mask pattern");
    expect_warning("line 7: expected format");
    dict_close(d);
}

Test(dict, cidr_if_endif)
{
    static const char text[] =
	"if 10.0.0.0/8\n"
	"if !10.1.0.0/16\n"
	"10.0.0.0/8 ten-not-10.1\n"
	"endif\n"
	"10.1.2.0/24 ten-one-two\n"
	"endif\n"
	"10.0.0.0/8 outside\n"
	"endif\n";
    DICT   *d = open_ok("cidr:%s", write_file("c", text, -1), 0);

    expect(d, "10.2.0.1", "ten-not-10.1");
    expect(d, "10.1.2.3", "ten-one-two");
    expect(d, "10.1.3.3", "outside");
    expect_warning("line 8: ignoring ENDIF without matching IF");
    dict_close(d);
}

/* regexp: */

Test(dict, regexp_table)
{
    static const char text[] =
	"/^Subject: (.*)spam(.*)$/     REJECT $1[SPAM]${2}$$\n"
	"/^case$/i                     case-sensitive\n"
	"/^CASE2$/                     case-insensitive\n"
	"/^bad(/                       broken\n"
	"/^(a)(b)$/                    $3 out of range\n"
	"!/^(x)$/                      $1 negated\n"
	"/^basic\\(x\\)$/x               basic-re $1\n"
	"|^pipe/delim$|                pipe\n"
	"/unterminated                 nope\n"
	"/^q/z                         badflag\n"
	"/^opt(x)?y$/                  [$(1)]\n"
	"/^empty$/\n"
	"!/@/                          no-at-sign\n";
    DICT   *d = open_ok("regexp:%s", write_file("r", text, -1), DICT_FLAG_FOLD_KEY);

    expect(d, "Subject: buy spam now", "REJECT buy [SPAM] now$");
    expect(d, "case", "case-sensitive");
    expect(d, "CASE", "no-at-sign");			/* i toggled off */
    expect(d, "case2", "case-insensitive");		/* i is the default */
    expect(d, "basicx", "basic-re x");		/* x: basic RE syntax */
    expect(d, "pipe/delim", "pipe");
    expect(d, "opty", "[]");				/* unmatched group: empty */
    expect(d, "optxy", "[x]");
    expect(d, "ab@", NULL);				/* out-of-range rule skipped */
    expect(d, "x@y", NULL);				/* bad negated rule skipped */
    expect(d, "empty", "");
    expect(d, "q@", NULL);
    expect_warning("line 4: ");
    expect_warning(": skipping this rule");
    expect_warning("line 5: out of range replacement index \"3\": skipping this rule");
    expect_warning("line 6: $number found in negative match replacement text");
    expect_warning("line 9: missing closing delimiter");
    expect_warning("line 10: unknown regexp option \"z\"");
    expect_warning("line 12: no replacement text: using empty string");
    dict_close(d);
}

Test(dict, regexp_if_endif)
{
    static const char text[] =
	"if /@example\\.com$/\n"
	"/^postmaster@/   OK\n"
	"if !/^admin/\n"
	"/./              REJECT not admin\n"
	"endif\n"
	"endif\n"
	"/./              DUNNO\n"
	"endif\n"
	"if /never(/\n"
	"/./              inside-broken-if\n"
	"endif\n";
    DICT   *d = open_ok("regexp:%s", write_file("r", text, -1), 0);

    expect(d, "postmaster@example.com", "OK");
    expect(d, "joe@example.com", "REJECT not admin");
    expect(d, "admin@example.com", "DUNNO");
    expect(d, "joe@example.org", "DUNNO");
    expect_warning("line 8: ignoring ENDIF without matching IF");
    dict_close(d);
}

/* cidr: and regexp: alike */

/*
 * Extra text after IF and ENDIF, a broken IF (never true), and IFs still
 * open at the end of the file: one warning naming the last logical line,
 * and the open blocks end there, as in Postfix.
 */
Test(dict, rule_tables_if_unbalanced)
{
    static const struct {
	const char *map;
	const char *text;
	const char *bad_if;		/* line 4's warning */
	const char *lookups[8][2];	/* key, result (NULL: not found) */
    } cases[] = {
	{"cidr",
	    "if 10.0.0.0/8 extra\n"
	    "10.1.0.0/16 ten-one\n"
	    "endif trailing\n"
	    "if 10.0.0.0/33\n"
	    "10.0.0.0/8 in-broken-if\n"
	    "endif\n"
	    "if 192.168.0.0/16\n"
	    "if 192.168.1.0/24\n"
	    "192.168.1.0/24 inner\n"
	    "endif\n"
	    "192.168.3.0/24 outer\n"
	    "if 192.168.2.0/24\n"
	    "0.0.0.0/0 last\n"
	    "# not a logical line\n",
	    "line 4: bad net/mask pattern: \"10.0.0.0/33\": skipping this rule",
	    {{"10.1.2.3", "ten-one"}, {"10.2.3.4", NULL}, {"192.168.1.5", "inner"},
	     {"192.168.3.1", "outer"}, {"192.168.2.1", "last"},
	     {"192.168.5.5", NULL}, {"172.16.0.1", NULL}}},
	{"regexp",
	    "if /^a/ extra\n"
	    "/^ab/ ten-one\n"
	    "ENDIF trailing\n"
	    "if /never(/\n"
	    "/./ in-broken-if\n"
	    "endif\n"
	    "IF /@example\\.com$/\n"
	    "if /^x/\n"
	    "/^x/ inner\n"
	    "endif\n"
	    "/^y/ outer\n"
	    "if /^z/\n"
	    "/./ last\n"
	    "# not a logical line\n",
	    ": skipping this rule",
	    {{"ab", "ten-one"}, {"in", NULL}, {"x@example.com", "inner"},
	     {"y@example.com", "outer"}, {"z@example.com", "last"},
	     {"w@example.com", NULL}, {"z@example.org", NULL}}},
    };

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
	const char *path = write_file(cases[c].map, cases[c].text, -1);
	char    name[300], want[512];
	const char *hit;
	DICT   *d;

	str_reset(&warnings);
	snprintf(name, sizeof(name), "%s:%%s", cases[c].map);
	d = open_ok(name, path, 0);
	for (int n = 0; cases[c].lookups[n][0]; n++)
	    expect(d, cases[c].lookups[n][0], cases[c].lookups[n][1]);
	expect_warning(cases[c].bad_if);
	snprintf(want, sizeof(want), "%s map %s, line 1: ignoring extra text after IF",
		 cases[c].map, path);
	expect_warning(want);
	snprintf(want, sizeof(want), "%s map %s, line 3: ignoring extra text after ENDIF",
		 cases[c].map, path);
	expect_warning(want);
	snprintf(want, sizeof(want), "%s map %s, line 13: IF has no matching ENDIF\n",
		 cases[c].map, path);
	expect_warning(want);
	hit = strstr(STR_DATA(&warnings), "IF has no");
	cr_expect(hit && strstr(hit + 1, "IF has no") == NULL,
		  "one warning for all open IFs:\n%s", STR_DATA(&warnings));
	dict_close(d);
    }
}

/* unionmap: and unix: */

Test(dict, unionmap)
{
    DICT   *d = open_ok("%s", "unionmap:{ inline:{a=1, b=2}, static:{ s v }, inline:{ {a = 3} } }", 0);

    expect(d, "a", "1,s v,3");
    expect(d, "zzz", "s v");
    dict_close(d);
    d = open_ok("%s", "unionmap:{inline:{a=1},inline:{b=2}}", 0);
    expect(d, "c", NULL);
    expect(d, "b", "2");
    dict_close(d);
    open_fails("unionmap:{ inline:{a=1}, bogus:x }", "unsupported dictionary type: bogus");
    open_fails("unionmap:{ }", "no member tables");
    open_fails("unionmap:{ inline:{a=1 }", "unbalanced");
}

Test(dict, unix_passwd)
{
    DICT   *d = open_ok("%s", "unix:passwd.byname", 0);
    STR     r = STR_INIT;

    cr_expect_eq(dict_lookup(d, "ROOT", &r), DICT_FOUND);
    cr_expect(strncmp(STR_DATA(&r), "root:", 5) == 0 && strstr(STR_DATA(&r), ":0:0:"),
	      "got %s", STR_DATA(&r));
    expect(d, "no-such-user-xyzzy", NULL);
    dict_close(d);
    str_release(&r);
}

/* dict_lookup_address / dict_lookup_domain */

Test(dict, address_and_domain_helpers)
{
    DICT   *d = open_ok("%s", "inline:{ user@example.com=full, @example.com=catchall, "
			 "example.org=exact, .example.org=subs, .net=tld }", 0);
    STR     r = STR_INIT;

    cr_expect_eq(dict_lookup_address(d, "User@Example.com", &r), DICT_FOUND);
    cr_expect_str_eq(STR_DATA(&r), "full");
    cr_expect_eq(dict_lookup_address(d, "other@example.com", &r), DICT_FOUND);
    cr_expect_str_eq(STR_DATA(&r), "catchall");
    cr_expect_eq(dict_lookup_address(d, "other@example.net", &r), DICT_NOTFOUND);
    cr_expect_eq(dict_lookup_address(d, "user@", &r), DICT_NOTFOUND);
    cr_expect_eq(dict_lookup_address(d, "nodomain", &r), DICT_NOTFOUND);

    cr_expect_eq(dict_lookup_domain(d, "example.org", &r), DICT_FOUND);
    cr_expect_str_eq(STR_DATA(&r), "exact");
    cr_expect_eq(dict_lookup_domain(d, "a.b.Example.org", &r), DICT_FOUND);
    cr_expect_str_eq(STR_DATA(&r), "subs");
    cr_expect_eq(dict_lookup_domain(d, "foo.net", &r), DICT_FOUND);
    cr_expect_str_eq(STR_DATA(&r), "tld");
    cr_expect_eq(dict_lookup_domain(d, "example.com", &r), DICT_NOTFOUND);
    dict_close(d);
    str_release(&r);
}

/* reload */

Test(dict, reload_texthash_and_keep_on_failure)
{
    char   *path = write_file("t", "key one\n", -1);
    DICT   *d = open_ok("texthash:%s", path, 0);
    unsigned long serial = dict_serial(d);

    expect(d, "key", "one");
    cr_expect_eq(dict_refresh(d), 0);			/* unchanged */
    write_file("t", "key two\n", -1);
    cr_expect_eq(dict_refresh(d), 1);
    cr_expect_neq(dict_serial(d), serial);
    expect(d, "key", "two");
    /* The file disappears: the loaded version stays. */
    cr_assert_eq(unlink(path), 0);
    cr_expect_eq(dict_refresh(d), 0);
    expect(d, "key", "two");
    expect_warning("keeping the loaded version");
    dict_close(d);
}

Test(dict, reload_hash_on_lookup)
{
    static const char *const v1[] = {"k", "v1", NULL};
    static const char *const v2[] = {"k", "v2", NULL};
    char    path[256], junk[300];
    DICT   *d;

    snprintf(path, sizeof(path), "%s/h", tmpdir);
    build_db(path, v1, 0);
    dict_set_check_interval(0);			/* check on every lookup */
    d = open_ok("hash:%s", path, 0);
    expect(d, "k", "v1");
    build_db(path, v2, 0);
    expect(d, "k", "v2");
    /* A broken replacement keeps the working version. */
    snprintf(junk, sizeof(junk), "%s.db", path);
    write_file("h.db", "garbage garbage garbage", -1);
    expect(d, "k", "v2");
    expect_warning("keeping the loaded version");
    (void) junk;
    dict_close(d);
}

/* aliases(5) source format */

typedef struct ALIAS_SEEN {
    STR     text;
} ALIAS_SEEN;

static int alias_member(ALIAS_KIND kind, const char *text, void *ctx)
{
    static const char *names[] = {"addr", "cmd", "file", "include"};
    ALIAS_SEEN *seen = ctx;

    str_printf(&seen->text, "%s<%s>", names[kind], text);
    return 0;
}

static int alias_entry(const char *name, const char *value, int lineno, void *ctx)
{
    ALIAS_SEEN *seen = ctx;

    str_printf(&seen->text, "%d[%s]=[%s]\n", lineno, name, value);
    return 0;
}

Test(dict, aliasfile_split_members)
{
    ALIAS_SEEN seen;
    STR     err = STR_INIT;

    str_init(&seen.text);
    cr_expect_eq(aliasfile_split("root, \"|/bin/cmd a,b\", /var/mail/x,"
				 ":include:/etc/list , \"joe smith\"@example.com, "
				 "\"/quoted file\"", alias_member, &seen, &err), 0,
		 "%s", STR_DATA(&err));
    cr_expect_str_eq(STR_DATA(&seen.text), "addr<root>cmd</bin/cmd a,b>file</var/mail/x>"
		     "include</etc/list>addr<\"joe smith\"@example.com>file</quoted file>");
    cr_expect_eq(aliasfile_split("a, \"unbalanced", alias_member, &seen, &err), -1);
    cr_expect(strstr(STR_DATA(&err), "unbalanced") != NULL);
    cr_expect_eq(aliasfile_split("a,,b", alias_member, &seen, &err), -1);
    cr_expect_eq(aliasfile_split(":include:", alias_member, &seen, &err), -1);
    str_release(&seen.text);
    str_release(&err);
}

Test(dict, aliasfile_read_hostile)
{
    static const char text[] =
	"root: admin\n"
	"list: a,\n"
	"  b,\n"
	"\tc\n"
	"novalue:\n"
	"nocolon here\n"
	"a, b: c\n"
	"user@host: x\n"
	"\"quoted: name\": v\n"
	"nul\0: x\n"
	":empty name\n"
	"last: \"x,   y\"   z\n";
    ALIAS_SEEN seen;
    FILE   *fp = fmemopen((void *) text, sizeof(text) - 1, "r");

    str_init(&seen.text);
    cr_assert_not_null(fp);
    cr_expect_eq(aliasfile_read(fp, "aliases", alias_entry, &seen), 0);
    fclose(fp);
    cr_expect_str_eq(STR_DATA(&seen.text),
		     "1[root]=[admin]\n"
		     "2[list]=[a, b, c]\n"
		     "9[quoted: name]=[v]\n"
		     "12[last]=[\"x,   y\" z]\n");
    expect_warning("aliases, line 5: need name:value pair");
    expect_warning("aliases, line 6: need name:value pair");
    expect_warning("aliases, line 7: need name:value pair");
    expect_warning("aliases, line 8: name must be local");
    expect_warning("aliases, line 10: NUL byte in input");
    expect_warning("aliases, line 11: need name:value pair");
    str_release(&seen.text);
}
