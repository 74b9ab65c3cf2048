/*
 * privsep_dirs.c - who owns what in the queue directory: checked by
 * `postfix check`, put right by `postfix set-permissions` and by the master
 * (root) before the engine drops to mail_owner (see privsep.h).
 *
 * Fixing as root never follows a symbolic link and never chowns a file
 * with more than one link: mail_owner may write in these directories, and
 * must not get root to chown something elsewhere.
 * Threading: single-threaded callers (master, commands, engine start-up).
 * Diagnostics: through the caller's report function, in postfix-script's
 * words.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "engine/privsep.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"

enum privsep_dir_owner { PD_ROOT, PD_OWNER };

typedef struct PRIVSEP_DIR {
    const char *name;			/* "" = the queue directory itself */
    enum privsep_dir_owner owner;
    mode_t  mode;			/* 0: maildrop (1730 or 1733) */
    bool    descend;			/* entries must be mail_owner's too */
} PRIVSEP_DIR;

static const PRIVSEP_DIR privsep_layout[] = {
    {"", PD_ROOT, 0755, false},
    {"pid", PD_ROOT, 0755, false},
    {"journal", PD_OWNER, 0700, true},
    {"private", PD_OWNER, 0700, true},
    {"corrupt", PD_OWNER, 0700, true},
    {"maildrop", PD_OWNER, 0, false},	/* never descended into */
};

int     privsep_owners(PRIVSEP_OWNERS *o, uid_t root_uid, STR *why)
{
    struct passwd pw, *pwr = NULL;
    struct group gr, *grr = NULL;
    char    buf[16384];
    STR     postdrop = STR_INIT;
    struct stat st;

    memset(o, 0, sizeof(*o));
    if (getpwnam_r(param_str(P_MAIL_OWNER), &pw, buf, sizeof(buf), &pwr) != 0 || pwr == NULL) {
	str_printf(why, "mail_owner: unknown user: %s", param_str(P_MAIL_OWNER));
	return -1;
    }
    o->root_uid = root_uid;
    o->owner_uid = pw.pw_uid;
    o->owner_gid = pw.pw_gid;
    snprintf(o->owner_name, sizeof(o->owner_name), "%s", pw.pw_name);
    o->setgid_gid = (gid_t) -1;
    snprintf(o->setgid_name, sizeof(o->setgid_name), "%s", param_str(P_SETGID_GROUP));
    if (getgrnam_r(param_str(P_SETGID_GROUP), &gr, buf, sizeof(buf), &grr) == 0 && grr) {
	o->setgid_gid = gr.gr_gid;
	str_printf(&postdrop, "%s/postdrop", param_str(P_COMMAND_DIRECTORY));
	o->postdrop_setgid = stat(STR_DATA(&postdrop), &st) == 0 && (st.st_mode & S_ISGID)
	    && st.st_gid == gr.gr_gid;
	str_release(&postdrop);
    }
    return 0;
}

static void privsep_say(privsep_dirs_report_fn report, void *ctx, bool problem,
			        const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

static void privsep_say(privsep_dirs_report_fn report, void *ctx, bool problem,
			        const char *fmt,...)
{
    STR     text = STR_INIT;
    va_list ap;

    if (report == NULL)
	return;
    va_start(ap, fmt);
    str_vprintf(&text, fmt, ap);
    va_end(ap);
    report(ctx, problem, "%s", STR_DATA(&text));
    str_release(&text);
}

/* The entries of an owner's directory: one level, sockets and fifos aside
 * (as postfix-script). Returns the problems left. */
static int privsep_entries(const char *path, const PRIVSEP_DIR *d, const PRIVSEP_OWNERS *o,
			           bool fix, privsep_dirs_report_fn report, void *ctx)
{
    int     dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int     problems = 0;
    DIR    *dir;
    struct dirent *de;

    if (dfd < 0 || (dir = fdopendir(dfd)) == NULL) {
	if (dfd >= 0)
	    close(dfd);
	if (errno == EACCES)
	    return 0;				/* not ours to read: the owner check said so */
	privsep_say(report, ctx, true, "cannot read directory %s: %s", path, strerror(errno));
	return 1;
    }
    while ((de = readdir(dir)) != NULL) {
	struct stat st;

	if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
	    continue;
	if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
	    continue;				/* gone meanwhile */
	if (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode))
	    continue;
	if (strcmp(d->name, "corrupt") == 0 && S_ISREG(st.st_mode))
	    privsep_say(report, ctx, false, "damaged message: %s/%s", path, de->d_name);
	if (st.st_uid == o->owner_uid)
	    continue;
	if (fix && (S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink == 1))
	    && fchownat(dfd, de->d_name, o->owner_uid, o->owner_gid, AT_SYMLINK_NOFOLLOW) == 0) {
	    privsep_say(report, ctx, false, "changed owner to %s: %s/%s", o->owner_name, path,
			de->d_name);
	    continue;
	}
	privsep_say(report, ctx, true, "not owned by %s: %s/%s", o->owner_name, path, de->d_name);
	problems++;
    }
    closedir(dir);
    return problems;
}

int     privsep_dirs(const char *qdir, const PRIVSEP_OWNERS *o, bool fix,
		             privsep_dirs_report_fn report, void *ctx)
{
    int     problems = 0;

    for (size_t i = 0; i < sizeof(privsep_layout) / sizeof(privsep_layout[0]); i++) {
	const PRIVSEP_DIR *d = privsep_layout + i;
	uid_t   uid = d->owner == PD_ROOT ? o->root_uid : o->owner_uid;
	gid_t   gid = d->owner == PD_ROOT ? (gid_t) -1 : o->owner_gid;
	const char *who = d->owner == PD_ROOT && o->root_uid != o->owner_uid ? "root"
	    : o->owner_name;
	mode_t  want = d->mode;
	STR     path = STR_INIT;
	struct stat st;

	if (*d->name)
	    str_printf(&path, "%s/%s", qdir, d->name);
	else
	    str_puts(&path, qdir);
	if (want == 0) {
	    /* maildrop: group setgid_group when postdrop is set-gid to it. */
	    want = o->postdrop_setgid ? 01730 : 01733;
	    if (o->postdrop_setgid)
		gid = o->setgid_gid;
	}
	if (lstat(STR_DATA(&path), &st) < 0 && errno == ENOENT) {
	    /* Missing directories are created even by check, as Postfix's is. */
	    if (mkdir(STR_DATA(&path), 0700) < 0 || lstat(STR_DATA(&path), &st) < 0) {
		privsep_say(report, ctx, true, "cannot create %s: %s", STR_DATA(&path),
			    strerror(errno));
		problems++;
		str_release(&path);
		continue;
	    }
	    /* A fresh directory gets its owner and mode whatever fix says. */
	    if ((geteuid() == 0 && lchown(STR_DATA(&path), uid, gid) < 0)
		|| chmod(STR_DATA(&path), want) < 0 || lstat(STR_DATA(&path), &st) < 0)
		privsep_say(report, ctx, true, "cannot set owner or mode of %s: %s",
			    STR_DATA(&path), strerror(errno));
	    else
		privsep_say(report, ctx, false, "created directory %s", STR_DATA(&path));
	}
	if (!S_ISDIR(st.st_mode)) {
	    privsep_say(report, ctx, true, "not a directory: %s", STR_DATA(&path));
	    problems++;
	    str_release(&path);
	    continue;
	}
	if (st.st_uid != uid || (gid != (gid_t) -1 && d->mode == 0 && st.st_gid != gid)) {
	    if (fix && lchown(STR_DATA(&path), uid, gid) == 0) {
		privsep_say(report, ctx, false, "changed owner to %s: %s", who, STR_DATA(&path));
		st.st_uid = uid;
	    } else {
		if (st.st_uid != uid) {
		    privsep_say(report, ctx, true, "not owned by %s: %s", who, STR_DATA(&path));
		    problems++;
		}
		if (gid != (gid_t) -1 && d->mode == 0 && st.st_gid != gid) {
		    privsep_say(report, ctx, true, "not owned by group %s: %s", o->setgid_name,
				STR_DATA(&path));
		    problems++;
		}
	    }
	}
	if ((st.st_mode & 07777) != want) {
	    if (fix && chmod(STR_DATA(&path), want) == 0) {
		privsep_say(report, ctx, false, "changed mode to %04o: %s", (unsigned) want,
			    STR_DATA(&path));
	    } else if (d->owner == PD_ROOT && (st.st_mode & 022)) {
		privsep_say(report, ctx, true, "group or other writable: %s", STR_DATA(&path));
		problems++;
	    } else if (d->owner == PD_OWNER) {
		privsep_say(report, ctx, true, "bad mode %04o, want %04o: %s",
			    (unsigned) (st.st_mode & 07777), (unsigned) want, STR_DATA(&path));
		problems++;
	    }
	}
	if (d->descend)
	    problems += privsep_entries(STR_DATA(&path), d, o, fix, report, ctx);
	str_release(&path);
    }
    return problems;
}

static void privsep_log(void *ctx, bool problem, const char *fmt,...)
{
    STR     text = STR_INIT;
    va_list ap;

    (void) ctx;
    va_start(ap, fmt);
    str_vprintf(&text, fmt, ap);
    va_end(ap);
    if (problem)
	msg_warn("%s", STR_DATA(&text));
    else
	msg_info("%s", STR_DATA(&text));
    str_release(&text);
}

/* maillog_file, when a file: exists, and mail_owner's. */
static void privsep_maillog(const PRIVSEP_OWNERS *o, bool log)
{
    const char *path = param_str(P_MAILLOG_FILE);
    struct stat st;
    int     fd;

    if (*path == 0 || strncmp(path, "/dev/", 5) == 0)
	return;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK
	      | O_CLOEXEC, 0644);
    if (fd < 0) {
	if (log)
	    msg_warn("maillog_file %s: %m", path);
	return;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid != o->owner_uid) {
	if (fchown(fd, o->owner_uid, (gid_t) -1) < 0) {
	    if (log)
		msg_warn("maillog_file %s: chown to %s: %m", path, o->owner_name);
	} else if (log) {
	    msg_info("maillog_file %s: owner changed to %s", path, o->owner_name);
	}
    }
    close(fd);
}

int     privsep_prepare(bool log, STR *why)
{
    PRIVSEP_OWNERS o;

    if (geteuid() != 0)
	return 0;
    if (privsep_owners(&o, 0, why) < 0)
	return -1;
    if (o.owner_uid == 0)
	return 0;
    (void) privsep_dirs(param_str(P_QUEUE_DIRECTORY), &o, true, log ? privsep_log : NULL,
			NULL);
    privsep_maillog(&o, log);
    return 0;
}
