/*
 * test_local.c - unit tests of the local/virtual/pipe delivery pieces:
 * mbox formatting (From_ line, >From quoting, LF line ends), the
 * Delivered-To: loop test, dotlock contention, fcntl locks, mbox append,
 * Maildir names and delivery, $name expansion, alias value plans, pipe
 * attributes and argv expansion, command exit status mapping.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "stages/local.h"
#include "stages/mailbox_exec.h"
#include "stages/mailbox_util.h"
#include "stages/pipe.h"

static char *tmpdir_make(void)
{
    char    tmpl[] = "/tmp/sluice-local-XXXXXX";
    char   *d = mkdtemp(tmpl);

    cr_assert_not_null(d);
    return mem_strdup(d);
}

static int tmpdir_unlink(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

/* The test's directory goes, whatever it holds (tests leave nothing behind). */
static void tmpdir_remove(char *dir)
{
    (void) nftw(dir, tmpdir_unlink, 16, FTW_DEPTH | FTW_PHYS);
    mem_free(dir);
}

static char *slurp(const char *path, size_t *len)
{
    FILE   *f = fopen(path, "r");
    STR     s = STR_INIT;
    char    buf[4096];
    size_t  n;

    cr_assert_not_null(f, "open %s", path);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
	str_append(&s, buf, n);
    fclose(f);
    if (len)
	*len = STR_LEN(&s);
    str_putc(&s, 0);
    return str_steal(&s, NULL);
}

/* ---- formatting ---- */

Test(format, mbox_from_line_quoting_and_lf)
{
    const char content[] = "Subject: hi\r\nFrom: a@b\r\n\r\nFrom the start\r\n"
	">From already\r\nFrom\r\nline with bare\rCR\r\n";
    MAILBOX_ENVELOPE env = {.sender = "s@x.test", .time_s = 0, .return_path = "s@x.test",
	.x_original_to = "o@y.test", .delivered_to = "r@y.test"};
    STR     out = STR_INIT;
    const char *p;

    mailbox_format(&out, &env, MAILBOX_FMT_FROM_LINE | MAILBOX_FMT_QUOTE_FROM
		   | MAILBOX_FMT_BLANK_END, content, sizeof(content) - 1);
    p = STR_DATA(&out);
    cr_assert(strncmp(p, "From s@x.test  ", 15) == 0, "From_ line: %s", p);
    p = strchr(p, '\n') + 1;
    cr_assert_str_eq(p, "Return-Path: <s@x.test>\nX-Original-To: o@y.test\n"
		     "Delivered-To: r@y.test\nSubject: hi\nFrom: a@b\n\n>From the start\n"
		     ">From already\nFrom\nline with bare\rCR\n\n");
    cr_assert_null(strstr(STR_DATA(&out), "\r\n"), "no CRLF left");
    str_release(&out);
}

Test(format, null_sender_and_unterminated_last_line)
{
    MAILBOX_ENVELOPE env = {.sender = "", .time_s = 86400 * 365};
    STR     out = STR_INIT;

    mailbox_format(&out, &env, MAILBOX_FMT_FROM_LINE, "a\r\nb", 4);
    cr_assert(strncmp(STR_DATA(&out), "From MAILER-DAEMON  ", 20) == 0, "%s", STR_DATA(&out));
    cr_assert(strstr(STR_DATA(&out), "\na\nb\n") != NULL, "%s", STR_DATA(&out));
    cr_assert_eq(STR_DATA(&out)[STR_LEN(&out) - 2], 'b');
    str_release(&out);
}

Test(format, dot_stuffing_and_crlf)
{
    MAILBOX_ENVELOPE env = {0};
    STR     out = STR_INIT;

    mailbox_format(&out, &env, MAILBOX_FMT_DOT | MAILBOX_FMT_CRLF, ".x\r\ny\r\n.\r\n", 11);
    cr_assert_str_eq(STR_DATA(&out), "..x\r\ny\r\n..\r\n");
    str_release(&out);
}

Test(format, delivered_to_loop_test)
{
    const char m[] = "Received: x\r\nDelivered-To: <User@Example.COM>\r\nSubject: s\r\n\r\n"
	"Delivered-To: body@example.com\r\n";

    cr_assert(mailbox_delivered_to(m, sizeof(m) - 1, "user@example.com"));
    cr_assert_not(mailbox_delivered_to(m, sizeof(m) - 1, "other@example.com"));
    /* Only headers count, not a body line that looks like one. */
    cr_assert_not(mailbox_delivered_to(m, sizeof(m) - 1, "body@example.com"));
    cr_assert_not(mailbox_delivered_to("", 0, "a@b"));
    cr_assert_not(mailbox_delivered_to("Delivered-To:", 13, ""));
}

/* ---- locking ---- */

Test(lock, dotlock_contention_and_stale_lock)
{
    char   *dir = tmpdir_make();
    STR     path = STR_INIT, lock = STR_INIT;
    MAILBOX_LOCK lk = {.methods = MAILBOX_LOCK_DOTLOCK, .attempts = 3, .delay_ms = 10,
    .stale_s = 500};
    struct stat st;

    str_printf(&path, "%s/mbox", dir);
    str_printf(&lock, "%s/mbox.lock", dir);
    cr_assert_eq(mailbox_dotlock(STR_DATA(&path), &lk), 0);
    cr_assert_eq(stat(STR_DATA(&lock), &st), 0, "lock file exists");
    /* A second locker gives up after its attempts. */
    errno = 0;
    cr_assert_eq(mailbox_dotlock(STR_DATA(&path), &lk), -1);
    cr_assert_eq(errno, EAGAIN);
    mailbox_dotunlock(STR_DATA(&path));
    cr_assert_eq(stat(STR_DATA(&lock), &st), -1, "lock file removed");
    cr_assert_eq(mailbox_dotlock(STR_DATA(&path), &lk), 0, "free again");
    mailbox_dotunlock(STR_DATA(&path));

    /* A lock older than stale_lock_time is broken. */
    cr_assert_eq(mailbox_dotlock(STR_DATA(&path), &lk), 0);
    {
	struct timespec old[2] = {{1000, 0}, {1000, 0}};

	cr_assert_eq(utimensat(AT_FDCWD, STR_DATA(&lock), old, 0), 0);
    }
    cr_assert_eq(mailbox_dotlock(STR_DATA(&path), &lk), 0, "stale lock broken");
    mailbox_dotunlock(STR_DATA(&path));

    /* A mailbox append waits for a lock that goes away. */
    cr_assert_eq(mailbox_dotlock(STR_DATA(&path), &lk), 0);
    pid_t   pid = fork();

    if (pid == 0) {
	usleep(50000);
	mailbox_dotunlock(STR_DATA(&path));
	_exit(0);
    }
    {
	MAILBOX_LOCK patient = lk;
	MAILBOX_RESULT res;

	patient.attempts = 200;
	mailbox_mbox_append(STR_DATA(&path), "x\n", 2, &patient, (uid_t) -1, (gid_t) -1, 0,
			    &res);
	cr_assert_eq(res.status, DELIVERY_SENT, "%s", res.text);
	waitpid(pid, NULL, 0);
    }
    /* ... and defers when the lock stays. */
    cr_assert_eq(mailbox_dotlock(STR_DATA(&path), &lk), 0);
    {
	MAILBOX_RESULT res;

	mailbox_mbox_append(STR_DATA(&path), "y\n", 2, &lk, (uid_t) -1, (gid_t) -1, 0, &res);
	cr_assert_eq(res.status, DELIVERY_DEFER);
	cr_assert_str_eq(res.dsn, "4.2.0");
	cr_assert(strstr(res.text, "mbox.lock") != NULL, "%s", res.text);
    }
    mailbox_dotunlock(STR_DATA(&path));
    {
	char   *got = slurp(STR_DATA(&path), NULL);

	cr_assert_str_eq(got, "x\n", "the deferred message left nothing behind");
	mem_free(got);
    }
    str_release(&path);
    str_release(&lock);
    tmpdir_remove(dir);
}

Test(lock, fcntl_contention)
{
    char   *dir = tmpdir_make();
    STR     path = STR_INIT;
    MAILBOX_LOCK lk = {.methods = MAILBOX_LOCK_FCNTL, .attempts = 2, .delay_ms = 10};
    int     ready[2], fd;
    pid_t   pid;
    char    c;

    str_printf(&path, "%s/mbox", dir);
    fd = open(STR_DATA(&path), O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pipe(ready), 0);
    /* fcntl locks are per process: hold one in a child. */
    if ((pid = fork()) == 0) {
	int     cfd = open(STR_DATA(&path), O_RDWR);

	if (mailbox_fcntl_lock(cfd, &lk) < 0)
	    _exit(1);
	(void) write(ready[1], "x", 1);
	pause();
	_exit(0);
    }
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(mailbox_fcntl_lock(fd, &lk), -1);
    {
	MAILBOX_RESULT res;

	mailbox_mbox_append(STR_DATA(&path), "z\n", 2, &lk, (uid_t) -1, (gid_t) -1, 0, &res);
	cr_assert_eq(res.status, DELIVERY_DEFER, "%s", res.text);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(mailbox_fcntl_lock(fd, &lk), 0, "free after the holder died");
    close(fd);
    str_release(&path);
    tmpdir_remove(dir);
}

Test(lock, methods)
{
    STR     why = STR_INIT;

    cr_assert_eq(mailbox_lock_methods("fcntl, dotlock", &why),
		 MAILBOX_LOCK_FCNTL | MAILBOX_LOCK_DOTLOCK);
    cr_assert_eq(mailbox_lock_methods("", &why), 0);
    cr_assert_eq(mailbox_lock_methods("fcntl,bogus", &why), -1);
    cr_assert(strstr(STR_DATA(&why), "bogus") != NULL);
    str_release(&why);
}

/* ---- mbox and Maildir ---- */

Test(mbox, append_refuses_symlink_and_respects_limit)
{
    char   *dir = tmpdir_make();
    STR     path = STR_INIT, link_ = STR_INIT;
    MAILBOX_LOCK lk = {.methods = MAILBOX_LOCK_FCNTL | MAILBOX_LOCK_DOTLOCK, .attempts = 1};
    MAILBOX_RESULT res;
    struct stat st;

    str_printf(&path, "%s/user", dir);
    mailbox_mbox_append(STR_DATA(&path), "one\n\n", 5, &lk, (uid_t) -1, (gid_t) -1, 0, &res);
    cr_assert_eq(res.status, DELIVERY_SENT);
    mailbox_mbox_append(STR_DATA(&path), "two\n\n", 5, &lk, (uid_t) -1, (gid_t) -1, 0, &res);
    cr_assert_eq(res.status, DELIVERY_SENT);
    cr_assert_eq(stat(STR_DATA(&path), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, 10);
    mailbox_mbox_append(STR_DATA(&path), "three\n", 6, &lk, (uid_t) -1, (gid_t) -1, 12, &res);
    cr_assert_eq(res.status, DELIVERY_BOUNCE);
    cr_assert_str_eq(res.dsn, "5.2.2");

    str_printf(&link_, "%s/evil", dir);
    cr_assert_eq(symlink(STR_DATA(&path), STR_DATA(&link_)), 0);
    mailbox_mbox_append(STR_DATA(&link_), "x\n", 2, &lk, (uid_t) -1, (gid_t) -1, 0, &res);
    cr_assert_eq(res.status, DELIVERY_BOUNCE, "%s", res.text);
    cr_assert_eq(stat(STR_DATA(&path), &st), 0);
    cr_assert_eq(st.st_size, 10, "the symlink target is untouched");
    str_release(&path);
    str_release(&link_);
    tmpdir_remove(dir);
}

Test(maildir, names)
{
    char    buf[128];

    cr_assert_eq(mailbox_maildir_name(buf, sizeof(buf), 1700000000, 123456, 42, 7,
				      "host.example"), (int) strlen(buf));
    cr_assert_str_eq(buf, "1700000000.M123456P42Q7.host.example");
    mailbox_maildir_name(buf, sizeof(buf), 1, 0, 1, 1, "a/b:c");
    cr_assert_str_eq(buf, "1.M0P1Q1.a\\057b\\072c");
    cr_assert_eq(mailbox_maildir_name(buf, 10, 1700000000, 1, 1, 1, "h"), -1);
    cr_assert_eq(mailbox_maildir_name(buf, 18, 1, 0, 1, 1, "hhhhhhhhhhhhhhh"), -1);
}

static size_t count_dir(const char *path)
{
    DIR    *d = opendir(path);
    struct dirent *e;
    size_t  n = 0;

    cr_assert_not_null(d, "%s", path);
    while ((e = readdir(d)) != NULL)
	if (e->d_name[0] != '.')
	    n++;
    closedir(d);
    return n;
}

Test(maildir, deliver_unique_files)
{
    char   *dir = tmpdir_make();
    STR     md = STR_INIT, sub = STR_INIT;
    MAILBOX_RESULT res;

    str_printf(&md, "%s/deep/er/Maildir/", dir);
    for (int i = 0; i < 50; i++) {
	mailbox_maildir_deliver(STR_DATA(&md), "Subject: x\n\nbody\n", 18, &res);
	cr_assert_eq(res.status, DELIVERY_SENT, "%s", res.text);
    }
    cr_assert_str_eq(res.text, "delivered to maildir");
    str_printf(&sub, "%snew", STR_DATA(&md));
    cr_assert_eq(count_dir(STR_DATA(&sub)), 50, "50 distinct names in new/");
    str_reset(&sub);
    str_printf(&sub, "%stmp", STR_DATA(&md));
    cr_assert_eq(count_dir(STR_DATA(&sub)), 0, "tmp/ is empty");
    str_reset(&sub);
    str_printf(&sub, "%scur", STR_DATA(&md));
    cr_assert_eq(count_dir(STR_DATA(&sub)), 0);
    str_release(&md);
    str_release(&sub);
    tmpdir_remove(dir);
}

/* ---- expansion ---- */

static const char *test_lookup(void *ctx, const char *name)
{
    if (strcmp(name, "home") == 0)
	return "/home/u";
    if (strcmp(name, "extension") == 0)
	return (const char *) ctx;
    if (strcmp(name, "recipient_delimiter") == 0)
	return *(const char *) ctx ? "+" : "";
    return NULL;
}

Test(expand, forward_path_forms)
{
    STR     out = STR_INIT, err = STR_INIT;

    cr_assert_eq(mailbox_expand("$home/.forward${recipient_delimiter}${extension}",
				test_lookup, "foo", &out, &err), 0);
    cr_assert_str_eq(STR_DATA(&out), "/home/u/.forward+foo");
    str_reset(&out);
    cr_assert_eq(mailbox_expand("$home/.forward${recipient_delimiter}${extension}",
				test_lookup, "", &out, &err), 0);
    cr_assert_str_eq(STR_DATA(&out), "/home/u/.forward");
    str_reset(&out);
    cr_assert_eq(mailbox_expand("${extension?+$extension}${extension:none}$$x $(home)",
				test_lookup, "e", &out, &err), 0);
    cr_assert_str_eq(STR_DATA(&out), "+e$x /home/u");
    str_reset(&out);
    cr_assert_eq(mailbox_expand("${extension:{x}}", test_lookup, "", &out, &err), 0);
    cr_assert_eq(mailbox_expand("$nosuch", test_lookup, "", &out, &err), -1);
    cr_assert(strstr(STR_DATA(&err), "nosuch") != NULL);
    cr_assert_eq(mailbox_expand("${home", test_lookup, "", &out, &err), -1);
    cr_assert_eq(mailbox_expand("${home?x", test_lookup, "", &out, &err), -1);
    cr_assert_eq(mailbox_expand("$", test_lookup, "", &out, &err), -1);
    cr_assert_eq(mailbox_expand("${}", test_lookup, "", &out, &err), -1);
    str_release(&out);
    str_release(&err);
}

Test(expand, address_split)
{
    MAILBOX_ADDR a;

    mailbox_addr_split(&a, "user+ext+more@Example.com", "+-");
    cr_assert_str_eq(STR_DATA(&a.local), "user+ext+more");
    cr_assert_str_eq(STR_DATA(&a.user), "user");
    cr_assert_str_eq(STR_DATA(&a.extension), "ext+more");
    cr_assert_str_eq(STR_DATA(&a.domain), "Example.com");
    cr_assert_str_eq(a.delim, "+");
    mailbox_addr_release(&a);
    mailbox_addr_split(&a, "+lead@x", "+");
    cr_assert_str_eq(STR_DATA(&a.user), "+lead", "a leading delimiter is not one");
    cr_assert_str_eq(STR_DATA(&a.extension), "");
    mailbox_addr_release(&a);
    mailbox_addr_split(&a, "plain", "");
    cr_assert_str_eq(STR_DATA(&a.user), "plain");
    cr_assert_str_eq(STR_DATA(&a.domain), "");
    mailbox_addr_release(&a);
}

/* ---- aliases ---- */

Test(alias, value_plan)
{
    STR     out = STR_INIT, err = STR_INIT;

    cr_assert_eq(local_alias_plan("bob, bob@example.com, |/usr/bin/vacation bob, "
				  "/var/mail/archive, :include:/etc/mail/list, \\bob, "
				  "\"|/bin/echo a, b\", /tmp/dir/", &out, &err), 0, "%s",
		 STR_DATA(&err));
    cr_assert_str_eq(STR_DATA(&out), "address bob\naddress bob@example.com\n"
		     "command /usr/bin/vacation bob\nfile /var/mail/archive\n"
		     "include /etc/mail/list\nmailbox bob\ncommand /bin/echo a, b\n"
		     "file /tmp/dir/\n");
    str_reset(&out);
    cr_assert_eq(local_alias_plan("a,,b", &out, &err), -1, "empty member");
    cr_assert_eq(local_alias_plan("\"|unbalanced", &out, &err), -1);
    cr_assert_eq(local_alias_plan(":include:", &out, &err), -1);
    str_release(&out);
    str_release(&err);
}

/* ---- pipe ---- */

static void pipe_parse_ok(PIPE_CONFIG *cfg, const char *const *args)
{
    STR     why = STR_INIT;
    size_t  n = 0;

    while (args[n])
	n++;
    cr_assert_eq(pipe_config_parse(cfg, (char *const *) args, n, &why), 0, "%s", STR_DATA(&why));
    str_release(&why);
}

static int pipe_parse_bad(const char *const *args, const char *want)
{
    PIPE_CONFIG cfg;
    STR     why = STR_INIT;
    size_t  n = 0;
    int     rc;

    while (args[n])
	n++;
    rc = pipe_config_parse(&cfg, (char *const *) args, n, &why);
    cr_assert(strstr(STR_DATA(&why), want) != NULL, "%s", STR_DATA(&why));
    pipe_config_free(&cfg);
    str_release(&why);
    return rc;
}

Test(pipe, attributes)
{
    PIPE_CONFIG cfg;
    const char *args[] = {"flags=DROFqhu.>B", "user=nobody:nogroup", "size=100",
	"eol=\\r\\n", "argv=/bin/cat", "-x", "${recipient}", NULL};

    pipe_parse_ok(&cfg, args);
    cr_assert_eq(cfg.flags, PIPE_FLAG_DELIVERED | PIPE_FLAG_RETURN_PATH | PIPE_FLAG_ORIGINAL
		 | PIPE_FLAG_FROM | PIPE_FLAG_QUOTE | PIPE_FLAG_FOLD_HOST | PIPE_FLAG_FOLD_USER
		 | PIPE_FLAG_DOT | PIPE_FLAG_QUOTE_FROM | PIPE_FLAG_BLANK);
    cr_assert_str_eq(cfg.user, "nobody");
    cr_assert_str_eq(cfg.group, "nogroup");
    cr_assert_eq(cfg.size_limit, 100);
    cr_assert(cfg.crlf);
    cr_assert_eq(cfg.argc, 3);
    cr_assert_str_eq(cfg.argv[0], "/bin/cat");
    cr_assert_str_eq(cfg.argv[2], "${recipient}");
    cr_assert(pipe_config_per_rcpt(&cfg));
    pipe_config_free(&cfg);

    const char *a1[] = {"flags=Z", "user=x", "argv=/bin/true", NULL};
    const char *a2[] = {"user=x", NULL};
    const char *a3[] = {"argv=/bin/true", NULL};
    const char *a4[] = {"bogus=1", "user=x", "argv=/bin/true", NULL};
    const char *a5[] = {"user=x", "size=-1", "argv=/bin/true", NULL};
    const char *a6[] = {"user=x", "noequals", "argv=/bin/true", NULL};
    const char *a7[] = {"user=x:", "argv=/bin/true", NULL};

    cr_assert_eq(pipe_parse_bad(a1, "unknown flag 'Z'"), -1);
    cr_assert_eq(pipe_parse_bad(a2, "missing argv="), -1);
    cr_assert_eq(pipe_parse_bad(a3, "missing user="), -1);
    cr_assert_eq(pipe_parse_bad(a4, "unknown attribute name \"bogus\""), -1);
    cr_assert_eq(pipe_parse_bad(a5, "bad size="), -1);
    cr_assert_eq(pipe_parse_bad(a6, "bad attribute"), -1);
    cr_assert_eq(pipe_parse_bad(a7, "bad user="), -1);
}

static char *join(char **argv)
{
    STR     s = STR_INIT;

    for (size_t i = 0; argv[i]; i++)
	str_printf(&s, "%s[%s]", i ? " " : "", argv[i]);
    return str_steal(&s, NULL);
}

Test(pipe, argv_expansion)
{
    PIPE_CONFIG cfg;
    const char *args[] = {"flags=hu", "user=nobody", "argv=/usr/bin/deliver", "-f",
	"$sender", "-n", "${nexthop}", "-q", "${queue_id}", "--", "${recipient}",
	"u=${user}", "e=${extension}", "m=${mailbox}", "d=$domain", "o=${original_recipient}",
	"${extension?x}", NULL};
    const char *rcpt[] = {"Joe+Box@Example.COM", "ann@example.com"};
    const char *orig[] = {"joe@orig.test", "ann@example.com"};
    PIPE_VARS vars = {.sender = "S@X.Test", .nexthop = "Example.COM", .queue_id = "ABC",
	.rcpt = rcpt, .orig = orig, .nrcpt = 2, .delims = "+"};
    STR     why = STR_INIT;
    char  **argv, *got;

    pipe_parse_ok(&cfg, args);
    argv = pipe_argv_expand(&cfg, &vars, &why);
    cr_assert_not_null(argv, "%s", STR_DATA(&why));
    got = join(argv);
    cr_assert_str_eq(got, "[/usr/bin/deliver] [-f] [S@X.Test] [-n] [example.com] [-q] [ABC] "
		     "[--] [joe+box@example.com] [ann@example.com] [u=joe] [u=ann] [e=box] [e=] "
		     "[m=joe+box] [m=ann] [d=example.com] [d=example.com] "
		     "[o=joe@orig.test] [o=ann@example.com] [x] []");
    mem_free(got);
    pipe_argv_free(argv);

    /* Null sender; q quotes local parts with specials; no folding. */
    pipe_config_free(&cfg);
    const char *args2[] = {"flags=q", "user=nobody", "null_sender=", "argv=/bin/x",
	"<${sender}>", "${recipient}", NULL};
    const char *rcpt2[] = {"a b@Ex.com"};

    pipe_parse_ok(&cfg, args2);
    vars.sender = "";
    vars.rcpt = rcpt2;
    vars.orig = NULL;
    vars.nrcpt = 1;
    argv = pipe_argv_expand(&cfg, &vars, &why);
    cr_assert_not_null(argv);
    got = join(argv);
    cr_assert_str_eq(got, "[/bin/x] [<>] [\"a b\"@Ex.com]");
    mem_free(got);
    pipe_argv_free(argv);
    cr_assert_not(pipe_config_per_rcpt(&(PIPE_CONFIG) {.argv = (char *[]) {"/bin/x",
				       "$sender", NULL}, .argc = 2}));

    /* An unknown macro is a configuration error. */
    pipe_config_free(&cfg);
    const char *args3[] = {"user=nobody", "argv=/bin/x", "${bogus}", NULL};

    pipe_parse_ok(&cfg, args3);
    cr_assert_null(pipe_argv_expand(&cfg, &vars, &why));
    cr_assert(strstr(STR_DATA(&why), "bogus") != NULL, "%s", STR_DATA(&why));
    pipe_config_free(&cfg);
    str_release(&why);
}

/* ---- commands and exit status ---- */

static void run_sh(const char *script, const char *input, int limit, MAILBOX_CMD_STATUS *st)
{
    char   *argv[] = {"/bin/sh", "-c", (char *) script, NULL};
    char   *envp[] = {"PATH=/usr/bin:/bin", "SENDER=s@x", NULL};
    MAILBOX_CREDS self;
    MAILBOX_CMD cmd = {.path = "/bin/sh", .argv = argv, .envp = envp, .cwd = "/",
	.input = input, .input_len = input ? strlen(input) : 0, .time_limit = limit};

    mailbox_exec_self(&self);
    mailbox_exec_command(&self, &cmd, st);
}

Test(exec, exit_status_mapping)
{
    static const struct {
	int     code;
	enum delivery_status status;
	const char *dsn;
	const char *text;
    } cases[] = {
	{0, DELIVERY_SENT, "2.0.0", "delivered to command: x"},
	{75, DELIVERY_DEFER, "4.3.0", "temporary failure. Command output: out75"},
	{71, DELIVERY_DEFER, "4.3.0", "system resource problem. Command output: out71"},
	{67, DELIVERY_BOUNCE, "5.1.1", "user unknown. Command output: out67"},
	{69, DELIVERY_BOUNCE, "5.3.0", "service unavailable. Command output: out69"},
	{77, DELIVERY_BOUNCE, "5.7.0", "permission denied. Command output: out77"},
	{78, DELIVERY_BOUNCE, "5.3.5", "local configuration error. Command output: out78"},
	{1, DELIVERY_BOUNCE, "5.3.0", "Command died with status 1: \"x\". Command output: out1"},
	{100, DELIVERY_BOUNCE, "5.3.0", "Command died with status 100: \"x\". Command output: out100"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
	MAILBOX_CMD_STATUS st;
	MAILBOX_RESULT res;
	char    script[128];

	snprintf(script, sizeof(script), "cat >/dev/null; [ %d = 0 ] || echo out%d; "
		 "echo second line >&2; exit %d", cases[i].code, cases[i].code, cases[i].code);
	run_sh(script, "Subject: x\n\nbody\n", 10, &st);
	mailbox_exec_result(&st, "x", "delivered to command: x", &res);
	cr_assert_eq(res.status, cases[i].status, "exit %d", cases[i].code);
	cr_assert_str_eq(res.dsn, cases[i].dsn, "exit %d", cases[i].code);
	cr_assert_str_eq(res.text, cases[i].text, "exit %d", cases[i].code);
	mailbox_exec_status_release(&st);
    }
    const char *dsn;

    cr_assert_null(mailbox_exec_sysexit(63, &dsn));
    cr_assert_null(mailbox_exec_sysexit(79, &dsn));
}

Test(exec, stdin_env_timeout_and_big_input)
{
    MAILBOX_CMD_STATUS st;
    MAILBOX_RESULT res;
    STR     big = STR_INIT;

    run_sh("read line; echo \"got $line from $SENDER\"", "hello\n", 10, &st);
    cr_assert(st.started);
    cr_assert_eq(st.exit_status, 0);
    cr_assert_str_eq(STR_DATA(&st.output), "got hello from s@x\n");
    mailbox_exec_status_release(&st);

    /* 4 MiB through stdin while the command also writes: no deadlock. */
    for (int i = 0; i < 65536; i++)
	str_puts(&big, "0123456789012345678901234567890123456789012345678901234567890123\n");
    run_sh("wc -c; yes | head -c 100000 >&2", STR_DATA(&big), 20, &st);
    cr_assert_eq(st.exit_status, 0);
    cr_assert(strncmp(STR_DATA(&st.output), "4259840", 7) == 0, "%.40s", STR_DATA(&st.output));
    mailbox_exec_status_release(&st);

    /* A command that does not read its input is fine. */
    run_sh("exit 0", STR_DATA(&big), 20, &st);
    cr_assert_eq(st.exit_status, 0);
    mailbox_exec_status_release(&st);
    str_release(&big);

    /* The time limit kills the command and its children. */
    int64_t t0 = time(NULL);

    run_sh("sleep 30 & sleep 30", "", 1, &st);
    cr_assert(st.timed_out);
    cr_assert_lt(time(NULL) - t0, 10);
    mailbox_exec_result(&st, "sleeper", "ok", &res);
    cr_assert_eq(res.status, DELIVERY_BOUNCE);
    cr_assert_str_eq(res.text, "Command time limit exceeded: \"sleeper\"");
    mailbox_exec_status_release(&st);

    run_sh("kill -9 $$", "", 10, &st);
    cr_assert_eq(st.signal, 9);
    mailbox_exec_result(&st, "k", "ok", &res);
    cr_assert_eq(res.status, DELIVERY_DEFER);
    mailbox_exec_status_release(&st);
}

static void exec_as_fn(void *ctx, MAILBOX_RESULT *res)
{
    mailbox_result_set(res, DELIVERY_SENT, "2.0.0", "uid %ld gid %ld", (long) geteuid(),
		       (long) getegid());
    (void) ctx;
}

Test(exec, helper_child_changes_credentials)
{
    MAILBOX_CREDS c = {.uid = 65534, .gid = 65534};
    MAILBOX_RESULT res;

    if (geteuid() != 0) {
	mailbox_exec_self(&c);
	mailbox_exec_as(&c, exec_as_fn, NULL, &res);
	cr_assert_eq(res.status, DELIVERY_SENT);
	return;
    }
    mailbox_exec_as(&c, exec_as_fn, NULL, &res);
    cr_assert_str_eq(res.text, "uid 65534 gid 65534");
    cr_assert_eq(geteuid(), 0, "the caller keeps its own rights");
}
