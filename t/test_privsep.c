/*
 * test_privsep.c - the privileged helper against hostile or wrong requests
 * (engine/privsep.c, the job handlers of stages/mailbox_exec.c).
 *
 * Each test (its own process under Criterion) installs a configuration with
 * mail_owner=nobody and a master.cf smtpd on a free port below 1024, starts
 * privilege separation (the test process becomes nobody, the helper stays
 * root), then asks the helper for things it must refuse: deliveries as
 * root outside the mail spool, chowns, commands as root or as a uid with no
 * user, malformed and unknown requests, unsealed data, binds of ports the
 * configuration does not name. And for things it must do: a Maildir
 * delivery and a command as the user daemon, a bind of the configured
 * privileged port. Needs root;
 * skipped otherwise.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/privsep.h"
#include "engine/str.h"
#include "stages/mailbox_exec.h"

/*
 * Criterion's test process has threads, and privilege separation starts
 * only in a single-threaded process (and cannot be undone): each test body
 * runs in a forked child, which reports a failed CHECK on stderr and with
 * its exit status.
 */
#define CHECK(cond, ...) do { \
	if (!(cond)) \
	    check_failed(__LINE__, #cond, " " __VA_ARGS__); \
    } while (0)

static void check_failed(int line, const char *what, const char *fmt,...)
	__attribute__((format(printf, 3, 4), noreturn));

static void check_failed(int line, const char *what, const char *fmt,...)
{
    va_list ap;

    fprintf(stderr, "test_privsep.c:%d: CHECK(%s) failed:", line, what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(1);
}

static char dir[64];
static int low_port, other_port;
static uid_t nobody_uid, rcpt_uid;
static gid_t nobody_gid, rcpt_gid;

/* A port below 1024 nobody listens on (skip: not root or none). */
static int free_low_port(int not)
{
    for (int p = 1023; p > 600; p--) {
	struct sockaddr_in sa = {.sin_family = AF_INET,.sin_port = htons((uint16_t) p)};
	int     fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = p != not && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
	close(fd);
	if (ok)
	    return p;
    }
    return 0;
}

/* Removes dir once this (soon unprivileged) process is gone. */
static void janitor(void)
{
    int     p[2];

    CHECK(pipe(p) == 0);
    if (fork() == 0) {
	char    c;

	close(p[1]);
	while (read(p[0], &c, 1) > 0)
	     /* wait for EOF */ ;
	execlp("rm", "rm", "-rf", dir, (char *) NULL);
	_exit(1);
    }
    close(p[0]);				/* p[1] stays open until we exit */
}

static void setup(void)
{
    struct passwd *pw = getpwnam("nobody");
    STR     main_cf = STR_INIT, master_cf = STR_INIT, err = STR_INIT, why = STR_INIT;
    char    spool[128];
    CONFIG *cfg;

    nobody_uid = pw->pw_uid;
    nobody_gid = pw->pw_gid;
    pw = getpwnam("daemon");
    CHECK(pw != NULL);
    rcpt_uid = pw->pw_uid;
    rcpt_gid = pw->pw_gid;
    snprintf(dir, sizeof(dir), "/tmp/sluice-privsep-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    chmod(dir, 0755);
    snprintf(spool, sizeof(spool), "%s/spool", dir);
    mkdir(spool, 0755);
    snprintf(spool, sizeof(spool), "%s/home", dir);
    mkdir(spool, 0711);			/* others may look up names, not write */
    CHECK(chown(spool, rcpt_uid, rcpt_gid) == 0);
    snprintf(spool, sizeof(spool), "%s/spool", dir);
    janitor();
    low_port = free_low_port(0);
    other_port = free_low_port(low_port);
    CHECK(low_port != 0 && other_port != 0, "no free ports below 1024");
    str_printf(&main_cf, "queue_directory = %s/queue\nmail_owner = nobody\n"
	       "mail_spool_directory = %s\nmaillog_file = %s/maillog\n"
	       "message_size_limit = 100000\n", dir, spool, dir);
    str_printf(&master_cf, "127.0.0.1:%d inet n - n - - smtpd\n", low_port);
    cfg = config_load_text(dir, STR_DATA(&main_cf), STR_LEN(&main_cf), STR_DATA(&master_cf),
			   STR_LEN(&master_cf), CONFIG_NO_WARN, &err);
    CHECK(cfg != NULL, "%s", STR_DATA(&err));
    config_install(cfg);
    mailbox_exec_register();
    CHECK(privsep_start(&why) == 0, "%s", STR_DATA(&why));
    CHECK(privsep_active());
    CHECK(geteuid() == nobody_uid);
    CHECK(getuid() == nobody_uid);
    CHECK(setuid(0) != 0, "root must not come back");
    str_release(&main_cf);
    str_release(&master_cf);
    str_release(&err);
    str_release(&why);
}

static MAILBOX_RESULT deliver(uid_t uid, gid_t gid, const char *path, bool maildir,
			              uid_t chown_uid)
{
    MAILBOX_LOCK lk = {.methods = MAILBOX_LOCK_FCNTL,.attempts = 1,.delay_ms = 10,
    .stale_s = 500};
    MAILBOX_FILE_JOB job = {.path = path,.data = "Subject: x\n\nhi\n",.len = 15,
	.maildir = maildir,.lock = &lk,.chown_uid = chown_uid,
    .chown_gid = chown_uid == (uid_t) -1 ? (gid_t) -1 : 0,.size_limit = 0};
    MAILBOX_CREDS c = {uid, gid};
    MAILBOX_RESULT res;

    memset(&res, 0, sizeof(res));
    mailbox_exec_file(&c, &job, &res);
    return res;
}

static void body_delivers_maildir_as_the_user(void)
{
    char    md[128], new[160];
    MAILBOX_RESULT res;
    struct stat st;

    /* home is daemon's 0711: only daemon (and root) can write there. */
    snprintf(md, sizeof(md), "%s/home/Maildir/", dir);
    res = deliver(rcpt_uid, rcpt_gid, md, true, (uid_t) -1);
    CHECK(res.status == DELIVERY_SENT, "%s", res.text);
    snprintf(new, sizeof(new), "%s/home/Maildir", dir);
    CHECK(stat(new, &st) == 0);
    CHECK(st.st_uid == rcpt_uid, "created by the user");
    /* dir itself is root's 0755: as daemon the worker cannot write there. */
    snprintf(md, sizeof(md), "%s/md/", dir);
    res = deliver(rcpt_uid, rcpt_gid, md, true, (uid_t) -1);
    CHECK(res.status == DELIVERY_DEFER, "%s", res.text);
}

static void body_refuses_root_outside_the_spool(void)
{
    char    path[128];
    MAILBOX_RESULT res;

    snprintf(path, sizeof(path), "%s/evil", dir);
    res = deliver(0, 0, path, false, nobody_uid);
    CHECK(res.status == DELIVERY_DEFER);
    CHECK(strstr(res.text, "refusing to deliver") != NULL, "%s", res.text);
    CHECK(access(path, F_OK) < 0, "nothing was created");
    /* A Maildir as root, even in the spool: no. */
    snprintf(path, sizeof(path), "%s/spool/md/", dir);
    res = deliver(0, 0, path, true, nobody_uid);
    CHECK(strstr(res.text, "refusing to deliver") != NULL, "%s", res.text);
    /* Climbing out of the spool: no. */
    snprintf(path, sizeof(path), "%s/spool/../evil", dir);
    res = deliver(0, 0, path, false, nobody_uid);
    CHECK(strstr(res.text, "refusing to deliver") != NULL, "%s", res.text);
    CHECK(access(path, F_OK) < 0, "nothing was created");
}

static void body_root_in_the_spool_creates_for_the_user(void)
{
    char    path[128];
    MAILBOX_RESULT res;
    struct stat st;

    snprintf(path, sizeof(path), "%s/spool/daemon", dir);
    /* ... but not for root itself. */
    res = deliver(0, 0, path, false, 0);
    CHECK(strstr(res.text, "refusing to deliver") != NULL, "%s", res.text);
    res = deliver(0, 0, path, false, rcpt_uid);
    CHECK(res.status == DELIVERY_SENT, "%s", res.text);
    CHECK(stat(path, &st) == 0);
    CHECK(st.st_uid == rcpt_uid, "the mbox belongs to the user");
}

static void body_refuses_chown_and_group_root_as_a_user(void)
{
    char    path[128];
    MAILBOX_RESULT res;

    snprintf(path, sizeof(path), "%s/spool/x", dir);
    res = deliver(rcpt_uid, rcpt_gid, path, false, 0);
    CHECK(strstr(res.text, "refusing to deliver") != NULL, "%s", res.text);
    res = deliver(rcpt_uid, 0, path, false, (uid_t) -1);
    CHECK(strstr(res.text, "refusing to deliver") != NULL, "%s", res.text);
}

static void body_reads_files_as_the_user(void)
{
    char    path[128];
    STR     text = STR_INIT;
    struct stat st;
    MAILBOX_CREDS daemon_c = {rcpt_uid, rcpt_gid}, root_c = {0, 0};

    /* daemon's own 0600 file, made by a delivery as daemon. */
    snprintf(path, sizeof(path), "%s/home/mbox", dir);
    CHECK(deliver(rcpt_uid, rcpt_gid, path, false, (uid_t) -1).status == DELIVERY_SENT);
    CHECK(mailbox_exec_read(&daemon_c, path, true, 1000, &text, &st) == 0, "%m");
    CHECK(strstr(STR_DATA(&text), "Subject: x") != NULL, "%s", STR_DATA(&text));
    CHECK(st.st_uid == rcpt_uid && S_ISREG(st.st_mode));
    /* We (nobody) cannot read it ourselves; root is never lent for this. */
    CHECK(open(path, O_RDONLY) < 0 && errno == EACCES);
    CHECK(mailbox_exec_read(&root_c, path, true, 1000, &text, &st) < 0 && errno == EPERM);
    CHECK(mailbox_exec_read(&daemon_c, "relative", true, 1000, &text, &st) < 0);
    snprintf(path, sizeof(path), "%s/home", dir);
    CHECK(mailbox_exec_read(&daemon_c, path, true, 1000, &text, &st) < 0 && errno == EINVAL);
    snprintf(path, sizeof(path), "%s/home/nosuch", dir);
    CHECK(mailbox_exec_read(&daemon_c, path, true, 1000, &text, &st) < 0 && errno == ENOENT);
    str_release(&text);
}

static MAILBOX_CMD_STATUS command(uid_t uid, gid_t gid, const char *path)
{
    char   *argv[] = {"sh", "-c", "id -u", NULL};
    char   *envp[] = {"PATH=/usr/bin:/bin", NULL};
    MAILBOX_CMD cmd = {.path = path,.argv = argv,.envp = envp,.input = "hi\n",
    .input_len = 3,.time_limit = 10};
    MAILBOX_CREDS c = {uid, gid};
    MAILBOX_CMD_STATUS st;

    mailbox_exec_command(&c, &cmd, &st);
    return st;
}

static void body_commands_only_as_real_non_root_users(void)
{
    MAILBOX_CMD_STATUS st;
    char    want[32];

    st = command(0, 0, "/bin/sh");
    CHECK(!(st.started));
    CHECK(strstr(STR_DATA(&st.output), "root") != NULL, "%s", STR_DATA(&st.output));
    mailbox_exec_status_release(&st);
    st = command(rcpt_uid, 0, "/bin/sh");
    CHECK(!(st.started));
    mailbox_exec_status_release(&st);
    st = command(54321, 54321, "/bin/sh");
    if (getpwuid(54321) == NULL) {
	CHECK(!(st.started));
	CHECK(strstr(STR_DATA(&st.output), "no such user") != NULL, "%s",
		  STR_DATA(&st.output));
    }
    mailbox_exec_status_release(&st);
    st = command(rcpt_uid, rcpt_gid, "sh");	/* not absolute */
    CHECK(!(st.started));
    mailbox_exec_status_release(&st);
    /* The real thing: runs as daemon, output comes back. */
    st = command(rcpt_uid, rcpt_gid, "/bin/sh");
    CHECK(st.started, "%s", STR_DATA(&st.output));
    CHECK(st.exit_status == 0);
    snprintf(want, sizeof(want), "%ld\n", (long) rcpt_uid);
    CHECK(strcmp(STR_DATA(&st.output), want) == 0, "%s", STR_DATA(&st.output));
    mailbox_exec_status_release(&st);
}

static void body_malformed_and_unknown_requests(void)
{
    STR     reply = STR_INIT, why = STR_INIT;
    char    junk[64];

    memset(junk, 0xff, sizeof(junk));
    CHECK(privsep_call(2, junk, 3, -1, &reply, &why) == -1);
    CHECK(strstr(STR_DATA(&why), "malformed") != NULL, "%s", STR_DATA(&why));
    str_reset(&why);
    CHECK(privsep_call(2, junk, sizeof(junk), -1, &reply, &why) == -1);
    CHECK(STR_LEN(&why) > 0);
    str_reset(&why);
    CHECK(privsep_call(3, junk, sizeof(junk), -1, &reply, &why) == -1);
    CHECK(STR_LEN(&why) > 0);
    str_reset(&why);
    CHECK(privsep_call(9, junk, sizeof(junk), -1, &reply, &why) == -1);
    CHECK(strstr(STR_DATA(&why), "unknown request") != NULL, "%s", STR_DATA(&why));
    str_reset(&why);
    CHECK(privsep_call(2, junk, PRIVSEP_PAYLOAD_MAX + 1, -1, &reply, &why) == -1);
    CHECK(strstr(STR_DATA(&why), "too large") != NULL, "%s", STR_DATA(&why));
    str_release(&reply);
    str_release(&why);
}

static void body_data_must_be_sealed_and_bounded(void)
{
    STR     why = STR_INIT;
    size_t  len;
    int     fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    CHECK(write(fd, "abc", 3) == 3);
    CHECK(privsep_data_map(fd, 100, &len, &why) == NULL);
    CHECK(strstr(STR_DATA(&why), "not sealed") != NULL, "%s", STR_DATA(&why));
    close(fd);
    fd = privsep_data_fd("abcdef", 6);
    CHECK(fd >= 0);
    str_reset(&why);
    CHECK(privsep_data_map(fd, 5, &len, &why) == NULL);
    CHECK(strstr(STR_DATA(&why), "too large") != NULL, "%s", STR_DATA(&why));
    CHECK(privsep_data_map(fd, 6, &len, &why) != NULL);
    CHECK(len == 6);
    close(fd);
    str_release(&why);
}

static int tcp_bind(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,.sin_port = htons((uint16_t) port)};
    int     fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = privsep_bind(fd, (struct sockaddr *) &sa, sizeof(sa));
    if (rc < 0) {
	int     saved = errno;

	close(fd);
	errno = saved;
	return -1;
    }
    return fd;
}

static void body_binds_only_configured_ports(void)
{
    struct sockaddr_in got;
    socklen_t len = sizeof(got);
    int     fd;

    fd = tcp_bind(other_port);
    CHECK(fd == -1, "port %d is not in master.cf", other_port);
    CHECK(errno == EACCES);
    fd = tcp_bind(low_port);
    CHECK(fd >= 0, "port %d: %s", low_port, strerror(errno));
    CHECK(getsockname(fd, (struct sockaddr *) &got, &len) == 0);
    CHECK(ntohs(got.sin_port) == low_port);
    CHECK(listen(fd, 5) == 0);
    close(fd);
    /* A datagram socket on the right port: no. */
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    {
	struct sockaddr_in sa = {.sin_family = AF_INET,.sin_port = htons((uint16_t) low_port)};

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(privsep_bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1);
    }
    close(fd);
}

/* ---- the tests: each body in its own child ---- */

static void run_child(void (*body)(void))
{
    pid_t   pid;
    int     status;

    if (geteuid() != 0 || getpwnam("nobody") == NULL || getpwnam("daemon") == NULL)
	cr_skip_test("needs root and the users nobody and daemon");
    fflush(NULL);
    if ((pid = fork()) == 0) {
	setup();
	body();
	_exit(0);
    }
    cr_assert_gt(pid, 0);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the test child failed (status 0x%x); see its stderr", status);
}

Test(privsep, reads_files_as_the_user)
{
    run_child(body_reads_files_as_the_user);
}

Test(privsep, delivers_maildir_as_the_user)
{
    run_child(body_delivers_maildir_as_the_user);
}

Test(privsep, refuses_root_outside_the_spool)
{
    run_child(body_refuses_root_outside_the_spool);
}

Test(privsep, root_in_the_spool_creates_for_the_user)
{
    run_child(body_root_in_the_spool_creates_for_the_user);
}

Test(privsep, refuses_chown_and_group_root_as_a_user)
{
    run_child(body_refuses_chown_and_group_root_as_a_user);
}

Test(privsep, commands_only_as_real_non_root_users)
{
    run_child(body_commands_only_as_real_non_root_users);
}

Test(privsep, malformed_and_unknown_requests)
{
    run_child(body_malformed_and_unknown_requests);
}

Test(privsep, data_must_be_sealed_and_bounded)
{
    run_child(body_data_must_be_sealed_and_bounded);
}

Test(privsep, binds_only_configured_ports)
{
    run_child(body_binds_only_configured_ports);
}
