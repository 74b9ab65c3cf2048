/*
 * postdrop.c - postdrop(1): write one message from sendmail into the
 * maildrop queue, as Postfix's postdrop does.
 *
 * Usage: postdrop [-rv] [-c config_dir]
 * Reads a maildrop stream (stages/maildrop.h) on standard input -- sendmail
 * writes it -- checks it record by record while copying it to a temporary
 * file $queue_directory/maildrop/.tmp.PID.RANDOM (mode 0644, O_EXCL,
 * O_NOFOLLOW), fsyncs it, renames it to its final random name and fsyncs
 * the directory. pickup notices the rename (inotify) or finds the file at
 * its next scan; the file's owner tells it who submitted the message.
 *
 * Privileges: when `make install` runs as root, postdrop is installed
 * setgid $setgid_group and the engine creates the maildrop mode 1730 of
 * that group, as Postfix does. Otherwise (the embedded default) the
 * maildrop is mode 1733 and postdrop needs no privilege. A setgid postdrop
 * run by an ordinary user refuses -c and MAIL_CONFIG other than the
 * compiled-in directory, so a user cannot point it at another queue.
 * An interrupted postdrop (SIGINT, SIGTERM, SIGHUP; sendmail aborting)
 * removes its temporary file.
 *
 * Exit status (sysexits.h): 0 queued; EX_USAGE bad options; EX_DATAERR
 * malformed input; EX_NOPERM refused configuration directory;
 * EX_TEMPFAIL anything that a later retry may cure (no maildrop yet,
 * write errors, a bad main.cf). Diagnostics on stderr:
 * "postdrop: fatal: uid=N: malformed input: REASON".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "engine/config.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"
#include "stages/maildrop.h"

static char postdrop_temp[4096];	/* absolute path, for the signal handler */
static int postdrop_dirfd = -1;

static void postdrop_remove_temp(void)
{
    if (postdrop_temp[0])
	unlink(postdrop_temp);
    postdrop_temp[0] = 0;
}

static void __attribute__((format(printf, 2, 3), noreturn)) postdrop_fatal(int status,
							         const char *fmt,...)
{
    va_list ap;

    postdrop_remove_temp();
    fprintf(stderr, "postdrop: fatal: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

static void postdrop_signal(int sig)
{
    /* unlink() and _exit() are async-signal-safe. */
    if (postdrop_temp[0])
	unlink(postdrop_temp);
    _exit(EX_TEMPFAIL);
    (void) sig;
}

static unsigned long long postdrop_random(void)
{
    unsigned long long r = 0;

    if (getrandom(&r, sizeof(r), 0) != (ssize_t) sizeof(r))
	r = ((unsigned long long) getpid() << 32) ^ (unsigned long long) time(NULL)
	    ^ (unsigned long long) clock();
    return r;
}

int     main(int argc, char **argv)
{
    const char *opt_c = NULL, *dir;
    STR     err = STR_INIT, path = STR_INIT;
    CONFIG *cfg;
    struct sigaction sa;
    char    temp[64], final[64];
    long    uid = (long) getuid();
    size_t  nrcpt = 0;
    int     ch, fd, rc;

    umask(022);
    for (fd = 0; fd < 3; fd++)
	if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
	    postdrop_fatal(EX_OSERR, "open /dev/null: %s", strerror(errno));
    msg_progname_set("postdrop");
    while ((ch = getopt(argc, argv, "c:rv")) != -1) {
	switch (ch) {
	case 'c':
	    opt_c = optarg;
	    break;
	case 'r':				/* Postfix: record stream input; ours always is */
	case 'v':
	    break;
	default:
	    postdrop_fatal(EX_USAGE, "usage: postdrop [-rv] [-c config_dir]");
	}
    }
    if (optind != argc)
	postdrop_fatal(EX_USAGE, "usage: postdrop [-rv] [-c config_dir]");
    dir = config_dir_select(opt_c);

    /* Setgid: only the compiled-in configuration, unless root asks. */
    if (getegid() != getgid() && getuid() != 0 && strcmp(dir, SLUICE_SYSCONFDIR) != 0)
	postdrop_fatal(EX_NOPERM, "uid=%ld: -c or MAIL_CONFIG %s: a setgid postdrop uses "
		       "only %s", uid, dir, SLUICE_SYSCONFDIR);
    if ((cfg = config_load(dir, CONFIG_NO_WARN, &err)) == NULL) {
	while (STR_LEN(&err) && err.data[STR_LEN(&err) - 1] == '\n')
	    str_truncate(&err, STR_LEN(&err) - 1);
	postdrop_fatal(EX_TEMPFAIL, "%s", STR_DATA(&err));
    }
    config_install(cfg);

    str_printf(&path, "%s/maildrop", param_str(P_QUEUE_DIRECTORY));
    if ((postdrop_dirfd = open(STR_DATA(&path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0
	&& (postdrop_dirfd = open(STR_DATA(&path), O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
	postdrop_fatal(EX_TEMPFAIL, "open %s: %s (the mail system creates it when it starts)",
		       STR_DATA(&path), strerror(errno));

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = postdrop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Block signals while the name is published for the handler. */
    sigset_t block, old;

    sigfillset(&block);
    sigprocmask(SIG_BLOCK, &block, &old);
    snprintf(temp, sizeof(temp), ".tmp.%ld.%016llx", (long) getpid(), postdrop_random());
    fd = openat(postdrop_dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0)
	snprintf(postdrop_temp, sizeof(postdrop_temp), "%s/%s", STR_DATA(&path), temp);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (fd < 0)
	postdrop_fatal(EX_TEMPFAIL, "uid=%ld: create file %s/%s: %s", uid, STR_DATA(&path),
		       temp, strerror(errno));

    rc = maildrop_copy(0, fd, param_int(P_MESSAGE_SIZE_LIMIT), &nrcpt, &err);
    if (rc == -1)
	postdrop_fatal(EX_DATAERR, "uid=%ld: malformed input: %s", uid, STR_DATA(&err));
    if (rc < 0)
	postdrop_fatal(EX_TEMPFAIL, "uid=%ld: %s", uid, STR_DATA(&err));
    if (fsync(fd) < 0 || close(fd) < 0)
	postdrop_fatal(EX_TEMPFAIL, "uid=%ld: write %s: %s", uid, postdrop_temp, strerror(errno));

    /* Time first, so names sort roughly by arrival; random, so unguessable. */
    snprintf(final, sizeof(final), "%08lX%016llX", (unsigned long) time(NULL),
	     postdrop_random());
    sigprocmask(SIG_BLOCK, &block, &old);
    if (renameat(postdrop_dirfd, temp, postdrop_dirfd, final) < 0) {
	int     saved = errno;

	sigprocmask(SIG_SETMASK, &old, NULL);
	postdrop_fatal(EX_TEMPFAIL, "uid=%ld: rename %s: %s", uid, postdrop_temp,
		       strerror(saved));
    }
    postdrop_temp[0] = 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (fsync(postdrop_dirfd) < 0 && errno != EBADF && errno != EINVAL)
	postdrop_fatal(EX_TEMPFAIL, "uid=%ld: fsync %s: %s", uid, STR_DATA(&path),
		       strerror(errno));
    close(postdrop_dirfd);
    str_release(&path);
    str_release(&err);
    config_shutdown();
    return 0;
}
