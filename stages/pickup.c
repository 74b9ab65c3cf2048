/*
 * pickup.c - local mail pickup: maildrop/ -> cleanup stage (see pickup.h).
 *
 * The thread keeps two small lists: files handed to the cleanup stage and
 * not yet answered (so a rescan does not submit them twice), and files
 * whose submission failed temporarily (skipped until the next periodic
 * scan, so a full journal is not hammered). Files are opened with
 * O_NOFOLLOW relative to the directory and checked with fstat(): the
 * maildrop is writable by untrusted users, who may plant symlinks, FIFOs
 * or hard links there.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "queue/message.h"
#include "queue/queue_id.h"
#include "stages/cleanup.h"
#include "stages/maildrop.h"
#include "stages/pickup.h"
#include "stages/receive_service.h"

#define PICKUP_DEFAULT_WAKEUP	60	/* seconds, as Postfix's master.cf */
#define PICKUP_STALE_TEMP	86400	/* postdrop temp files older than this go */
#define PICKUP_MAX_DEFERRED	10000	/* remembered temporary failures */

typedef struct PICKUP_JOB {
    struct PICKUP_JOB *next;		/* in the in-flight or completed list */
    char   *name;
    long    uid;
    int     code;			/* cleanup's answer */
    char   *text;
} PICKUP_JOB;

typedef struct PICKUP_DEFER {
    char   *name;
    int64_t until_ns;
} PICKUP_DEFER;

static pthread_t pickup_thread;
static bool pickup_running;
static atomic_bool pickup_stopping;
static int pickup_dirfd = -1;
static int pickup_inotify = -1;
static int pickup_evfd = -1;
static char *pickup_dir;		/* $queue_directory/maildrop */
static char *pickup_corrupt;		/* $queue_directory/corrupt */
static int  pickup_wakeup_s;

/* Completions, filled by other threads. */
static pthread_mutex_t pickup_lock = PTHREAD_MUTEX_INITIALIZER;
static PICKUP_JOB *pickup_done_list;

/* Pickup thread only. */
static PICKUP_JOB *pickup_inflight;
static size_t pickup_ninflight;
static PICKUP_DEFER *pickup_deferred;
static size_t pickup_ndeferred;

/* ---- the maildrop directory ---- */

/* 1730 group setgid_group when postdrop is installed setgid to it, else 1733. */
static int pickup_mkdir(const char *path, STR *why)
{
    STR     postdrop = STR_INIT;
    struct stat st;
    struct group *gr = getgrnam(param_str(P_SETGID_GROUP));
    mode_t  mode = 01733;

    if (mkdir(path, 0700) < 0) {
	if (errno == EEXIST)
	    return 0;
	str_printf(why, "mkdir %s: %s", path, strerror(errno));
	return -1;
    }
    str_printf(&postdrop, "%s/postdrop", param_str(P_COMMAND_DIRECTORY));
    if (gr && stat(STR_DATA(&postdrop), &st) == 0 && (st.st_mode & S_ISGID)
	&& st.st_gid == gr->gr_gid && chown(path, (uid_t) -1, gr->gr_gid) == 0)
	mode = 01730;
    if (chmod(path, mode) < 0) {
	str_printf(why, "chmod %s: %s", path, strerror(errno));
	str_release(&postdrop);
	return -1;
    }
    msg_info("created %s, mode %04o%s%s", path, (unsigned) mode,
	     mode == 01730 ? ", group " : "", mode == 01730 ? gr->gr_name : "");
    str_release(&postdrop);
    return 0;
}

/* ---- bookkeeping ---- */

static PICKUP_JOB *pickup_find_inflight(const char *name)
{
    for (PICKUP_JOB *j = pickup_inflight; j; j = j->next)
	if (strcmp(j->name, name) == 0)
	    return j;
    return NULL;
}

static void pickup_unlink_inflight(PICKUP_JOB *job)
{
    for (PICKUP_JOB **pp = &pickup_inflight; *pp; pp = &(*pp)->next) {
	if (*pp == job) {
	    *pp = job->next;
	    pickup_ninflight--;
	    return;
	}
    }
}

static bool pickup_is_deferred(const char *name, int64_t now)
{
    for (size_t i = 0; i < pickup_ndeferred; i++)
	if (strcmp(pickup_deferred[i].name, name) == 0)
	    return pickup_deferred[i].until_ns > now;
    return false;
}

static void pickup_defer(const char *name, int64_t until)
{
    for (size_t i = 0; i < pickup_ndeferred; i++) {
	if (strcmp(pickup_deferred[i].name, name) == 0) {
	    pickup_deferred[i].until_ns = until;
	    return;
	}
    }
    if (pickup_ndeferred == PICKUP_MAX_DEFERRED)
	return;					/* retried at the next scan */
    pickup_deferred = mem_realloc(pickup_deferred, (pickup_ndeferred + 1) * sizeof(PICKUP_DEFER));
    pickup_deferred[pickup_ndeferred].name = mem_strdup(name);
    pickup_deferred[pickup_ndeferred].until_ns = until;
    pickup_ndeferred++;
}

static void pickup_forget_expired(int64_t now)
{
    size_t  j = 0;

    for (size_t i = 0; i < pickup_ndeferred; i++) {
	if (pickup_deferred[i].until_ns > now)
	    pickup_deferred[j++] = pickup_deferred[i];
	else
	    mem_free(pickup_deferred[i].name);
    }
    pickup_ndeferred = j;
}

/* ---- one file ---- */

static void pickup_move_aside(const char *name, long uid, const char *reason)
{
    if (mkdir(pickup_corrupt, 0700) < 0 && errno != EEXIST) {
	msg_warn("maildrop/%s: uid=%ld: %s; mkdir %s: %m; file removed",
		 name, uid, reason, pickup_corrupt);
	unlinkat(pickup_dirfd, name, 0);
	return;
    }
    int     cfd = open(pickup_corrupt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (cfd < 0 || renameat(pickup_dirfd, name, cfd, name) < 0) {
	msg_warn("maildrop/%s: uid=%ld: %s; cannot move it to %s: %m; file removed",
		 name, uid, reason, pickup_corrupt);
	unlinkat(pickup_dirfd, name, 0);
    } else {
	msg_warn("maildrop/%s: uid=%ld: %s; moved to corrupt/%s", name, uid, reason, name);
    }
    if (cfd >= 0)
	close(cfd);
}

static void pickup_done(void *ctx, int code, const char *text)
{
    PICKUP_JOB *job = ctx;
    uint64_t one = 1;

    job->code = code;
    job->text = mem_strdup(text ? text : "");
    pthread_mutex_lock(&pickup_lock);
    job->next = pickup_done_list;
    pickup_done_list = job;
    pthread_mutex_unlock(&pickup_lock);
    if (write(pickup_evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	msg_warn("pickup: eventfd write: %m");
}

static MESSAGE *pickup_message(MAILDROP *md, const struct stat *st)
{
    MESSAGE *m = message_new();
    int64_t now = time_real_us();
    int64_t mtime = (int64_t) st->st_mtim.tv_sec * 1000000 + st->st_mtim.tv_nsec / 1000;

    queue_id_next(m->queue_id);
    /* Arrival: what sendmail recorded, else the file time; never the future. */
    m->arrival_us = md->arrival_us > 0 ? md->arrival_us : mtime;
    if (m->arrival_us > now)
	m->arrival_us = now;
    mem_free(m->sender);
    m->sender = md->sender;
    md->sender = NULL;
    m->protocol = mem_strdup("LOCAL");
    for (size_t i = 0; i < md->nrcpt; i++)
	message_add_rcpt(m, md->rcpt[i], md->rcpt[i]);
    /* Canonical content ends in CRLF; a hostile file may not. */
    if (STR_LEN(&md->content) > 0
	&& (STR_LEN(&md->content) < 2
	    || memcmp(md->content.data + STR_LEN(&md->content) - 2, "\r\n", 2) != 0))
	str_puts(&md->content, "\r\n");
    m->content = blob_adopt(&md->content);
    return m;
}

static void pickup_file(const char *name)
{
    struct stat st;
    MAILDROP md;
    STR     err = STR_INIT;
    int     fd = openat(pickup_dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int     rc;

    if (fd < 0) {
	if (errno == ENOENT)
	    return;
	if (errno == ELOOP) {
	    pickup_move_aside(name, -1, "symbolic link");
	    return;
	}
	msg_warn("open maildrop/%s: %m", name);
	pickup_defer(name, time_mono_ns() + (int64_t) pickup_wakeup_s * 1000000000);
	return;
    }
    if (fstat(fd, &st) < 0) {
	msg_warn("fstat maildrop/%s: %m", name);
	close(fd);
	return;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
	close(fd);
	pickup_move_aside(name, (long) st.st_uid,
			  S_ISREG(st.st_mode) ? "file has more than one link" : "not a regular file");
	return;
    }
    rc = maildrop_read(fd, param_int(P_MESSAGE_SIZE_LIMIT), &md, &err);
    close(fd);
    if (rc == -2) {
	msg_warn("read maildrop/%s: %m", name);
	pickup_defer(name, time_mono_ns() + (int64_t) pickup_wakeup_s * 1000000000);
    } else if (rc < 0) {
	STR     why = STR_INIT;

	str_printf(&why, "malformed file: %s", STR_DATA(&err));
	pickup_move_aside(name, (long) st.st_uid, STR_DATA(&why));
	str_release(&why);
    } else {
	PICKUP_JOB *job = MEM_NEW(PICKUP_JOB);
	CLEANUP_INFO info;
	MESSAGE *m = pickup_message(&md, &st);

	memset(&info, 0, sizeof(info));
	info.flags = CLEANUP_FLAG_LOCAL_HEADERS;
	if (md.flags & MAILDROP_FLAG_EXTRACT)
	    info.flags |= CLEANUP_FLAG_EXTRACT;
	if (md.flags & MAILDROP_FLAG_VERIFY)
	    info.flags |= CLEANUP_FLAG_VERIFY;
	info.fullname = md.fullname;
	info.uid = (long) st.st_uid;
	job->name = mem_strdup(name);
	job->uid = (long) st.st_uid;
	job->next = pickup_inflight;
	pickup_inflight = job;
	pickup_ninflight++;
	msg_info("%s: uid=%ld from=<%s>", m->queue_id, job->uid, m->sender);
	receive_submit_info(m, &info, pickup_done, job);
	maildrop_free(&md);
    }
    str_release(&err);
}

/* Handles the answers of the cleanup stage; returns how many there were. */
static size_t pickup_completions(void)
{
    PICKUP_JOB *list, *job;
    size_t  n = 0;

    pthread_mutex_lock(&pickup_lock);
    list = pickup_done_list;
    pickup_done_list = NULL;
    pthread_mutex_unlock(&pickup_lock);
    while ((job = list) != NULL) {
	list = job->next;
	pickup_unlink_inflight(job);
	if (job->code / 100 == 2) {
	    if (unlinkat(pickup_dirfd, job->name, 0) < 0 && errno != ENOENT)
		msg_warn("remove maildrop/%s: %m", job->name);
	} else if (job->code / 100 == 4) {
	    msg_warn("maildrop/%s: uid=%ld: %d %s; will retry in %d s", job->name,
		     job->uid, job->code, job->text, pickup_wakeup_s);
	    pickup_defer(job->name, time_mono_ns() + (int64_t) pickup_wakeup_s * 1000000000);
	} else {
	    /* Postfix's cleanup bounces the message and pickup removes the file. */
	    msg_warn("maildrop/%s: uid=%ld: message rejected: %d %s; file removed",
		     job->name, job->uid, job->code, job->text);
	    if (unlinkat(pickup_dirfd, job->name, 0) < 0 && errno != ENOENT)
		msg_warn("remove maildrop/%s: %m", job->name);
	}
	mem_free(job->name);
	mem_free(job->text);
	mem_free(job);
	n++;
    }
    return n;
}

/* ---- the scan ---- */

/* Returns true when files were left over for lack of in-flight room. */
static bool pickup_scan(bool periodic)
{
    int     dfd = dup(pickup_dirfd);
    DIR    *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;
    int64_t now = time_mono_ns();
    bool    more = false;

    if (dir == NULL) {
	msg_warn("open %s: %m", pickup_dir);
	if (dfd >= 0)
	    close(dfd);
	return false;
    }
    rewinddir(dir);
    while ((de = readdir(dir)) != NULL && !atomic_load(&pickup_stopping)) {
	const char *name = de->d_name;

	if (name[0] == '.') {
	    struct stat st;

	    /* A temp file left by a postdrop that died. */
	    if (periodic && strncmp(name, ".tmp.", 5) == 0
		&& fstatat(pickup_dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
		&& st.st_mtime < time(NULL) - PICKUP_STALE_TEMP) {
		msg_warn("maildrop/%s: uid=%ld: removing an incomplete file older than a day",
			 name, (long) st.st_uid);
		unlinkat(pickup_dirfd, name, 0);
	    }
	    continue;
	}
	if (pickup_find_inflight(name) || pickup_is_deferred(name, now))
	    continue;
	if (pickup_ninflight >= PICKUP_INFLIGHT) {
	    more = true;
	    break;
	}
	pickup_file(name);
    }
    closedir(dir);
    return more;
}

/* Drains inotify; true when a file may have arrived. */
static bool pickup_drain_inotify(void)
{
    char    buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool    any = false;
    ssize_t n;

    while ((n = read(pickup_inotify, buf, sizeof(buf))) > 0) {
	for (char *p = buf; p < buf + n;) {
	    struct inotify_event *ev = (struct inotify_event *) p;

	    if ((ev->mask & IN_Q_OVERFLOW) || (ev->len > 0 && ev->name[0] != '.'))
		any = true;
	    p += sizeof(*ev) + ev->len;
	}
    }
    return any;
}

static void *pickup_main(void *arg)
{
    int64_t period = (int64_t) pickup_wakeup_s * 1000000000;
    int64_t next_periodic = time_mono_ns() + period;
    bool    scan = true, periodic = true;

    msg_service_set("pickup");
    while (!atomic_load(&pickup_stopping)) {
	struct pollfd pfd[2] = {{.fd = pickup_inotify,.events = POLLIN},
	{.fd = pickup_evfd,.events = POLLIN}};
	int64_t now;
	int     timeout;

	if (scan && pickup_ninflight < PICKUP_INFLIGHT) {
	    scan = pickup_scan(periodic);
	    periodic = false;
	}
	now = time_mono_ns();
	timeout = next_periodic > now ? (int) ((next_periodic - now) / 1000000) + 1 : 0;
	if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
	    msg_fatal("pickup: poll: %m");
	if ((pfd[0].revents & POLLIN) && pickup_drain_inotify())
	    scan = true;
	if (pfd[1].revents & POLLIN) {
	    uint64_t v;

	    if (read(pickup_evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		msg_warn("pickup: eventfd read: %m");
	    /* Room again: go on with files the last scan left behind. */
	    pickup_completions();
	}
	now = time_mono_ns();
	if (now >= next_periodic) {
	    pickup_forget_expired(now);
	    next_periodic = now + period;
	    scan = periodic = true;
	}
    }
    /* The cleanup stage still answers: wait for every file in flight. */
    while (pickup_ninflight > 0) {
	struct pollfd pfd = {.fd = pickup_evfd,.events = POLLIN};
	uint64_t v;

	if (poll(&pfd, 1, 1000) > 0 && read(pickup_evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
	    msg_warn("pickup: eventfd read: %m");
	pickup_completions();
    }
    return arg;
}

/* ---- the component ---- */

static const MASTERCF_SERVICE *pickup_service(void)
{
    const MASTERCF *mcf = config_mastercf(config_current());

    for (size_t i = 0; mcf && i < mcf->count; i++)
	if (strcmp(mcf->svc[i].command, "pickup") == 0)
	    return &mcf->svc[i];
    return NULL;
}

static int pickup_start(STR *why)
{
    const MASTERCF_SERVICE *svc = pickup_service();
    STR     path = STR_INIT;
    int     err;

    if (svc == NULL)
	return 0;				/* not in master.cf: not wanted */
    pickup_wakeup_s = atoi(svc->wakeup);
    if (pickup_wakeup_s <= 0)
	pickup_wakeup_s = PICKUP_DEFAULT_WAKEUP;
    str_printf(&path, "%s/maildrop", param_str(P_QUEUE_DIRECTORY));
    pickup_dir = str_steal(&path, NULL);
    str_printf(&path, "%s/corrupt", param_str(P_QUEUE_DIRECTORY));
    pickup_corrupt = str_steal(&path, NULL);
    if (pickup_mkdir(pickup_dir, why) < 0)
	goto fail;
    if ((pickup_dirfd = open(pickup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
	str_printf(why, "open %s: %s", pickup_dir, strerror(errno));
	goto fail;
    }
    if ((pickup_inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0
	|| inotify_add_watch(pickup_inotify, pickup_dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
	str_printf(why, "inotify %s: %s", pickup_dir, strerror(errno));
	goto fail;
    }
    if ((pickup_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
	str_printf(why, "eventfd: %s", strerror(errno));
	goto fail;
    }
    atomic_store(&pickup_stopping, false);
    if ((err = pthread_create(&pickup_thread, NULL, pickup_main, NULL)) != 0) {
	str_printf(why, "pthread_create: %s", strerror(err));
	goto fail;
    }
    pickup_running = true;
    return 0;

fail:
    if (pickup_inotify >= 0)
	close(pickup_inotify);
    if (pickup_evfd >= 0)
	close(pickup_evfd);
    if (pickup_dirfd >= 0)
	close(pickup_dirfd);
    pickup_inotify = pickup_evfd = pickup_dirfd = -1;
    return -1;
}

static void pickup_stop(void)
{
    uint64_t one = 1;

    if (pickup_running) {
	atomic_store(&pickup_stopping, true);
	if (write(pickup_evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
	    msg_warn("pickup: eventfd write: %m");
	pthread_join(pickup_thread, NULL);
	pickup_running = false;
    }
    if (pickup_inotify >= 0)
	close(pickup_inotify);
    if (pickup_evfd >= 0)
	close(pickup_evfd);
    if (pickup_dirfd >= 0)
	close(pickup_dirfd);
    pickup_inotify = pickup_evfd = pickup_dirfd = -1;
    for (size_t i = 0; i < pickup_ndeferred; i++)
	mem_free(pickup_deferred[i].name);
    mem_free(pickup_deferred);
    pickup_deferred = NULL;
    pickup_ndeferred = 0;
    mem_free(pickup_dir);
    mem_free(pickup_corrupt);
    pickup_dir = pickup_corrupt = NULL;
}

const ENGINE_COMPONENT pickup_component = {"pickup", pickup_start, pickup_stop, NULL};
