/*
 * mailbox_util.c - message formatting, locking, mbox and Maildir delivery
 * for the local, virtual and pipe agents (see mailbox_util.h).
 *
 * The delivery functions run in forked children (mailbox_exec.h): they use
 * stack buffers and system calls only, no mem_* and no msg_*.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "engine/fsutil.h"
#include "engine/mem.h"
#include "stages/mailbox_util.h"

void    mailbox_result_set(MAILBOX_RESULT *res, enum delivery_status status,
			           const char *dsn, const char *fmt,...)
{
    va_list ap;

    res->status = status;
    snprintf(res->dsn, sizeof(res->dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
}

/* ---- formatting ---- */

static void mailbox_eol(STR *out, int flags)
{
    if (flags & MAILBOX_FMT_CRLF)
	str_putc(out, '\r');
    str_putc(out, '\n');
}

void    mailbox_format(STR *out, const MAILBOX_ENVELOPE *env, int flags,
		               const char *content, size_t len)
{
    const char *p = content, *end = content + len;

    if (flags & MAILBOX_FMT_FROM_LINE) {
	time_t  t = (time_t) env->time_s;
	struct tm tm;
	char    date[64];

	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	str_printf(out, "From %s  %s", env->sender && *env->sender ? env->sender
		   : "MAILER-DAEMON", date);
	mailbox_eol(out, flags);
    }
    if (env->return_path) {
	str_printf(out, "Return-Path: <%s>", env->return_path);
	mailbox_eol(out, flags);
    }
    if (env->x_original_to) {
	str_printf(out, "X-Original-To: %s", env->x_original_to);
	mailbox_eol(out, flags);
    }
    if (env->delivered_to) {
	str_printf(out, "Delivered-To: %s", env->delivered_to);
	mailbox_eol(out, flags);
    }
    while (p < end) {
	const char *nl = memchr(p, '\n', (size_t) (end - p));
	const char *lend = nl ? nl : end;
	size_t  n;

	/* CRLF (and a bare LF) end a line; a CR elsewhere is data. */
	if (lend > p && lend[-1] == '\r' && nl)
	    lend--;
	n = (size_t) (lend - p);
	if ((flags & MAILBOX_FMT_QUOTE_FROM) && n >= 5 && memcmp(p, "From ", 5) == 0)
	    str_putc(out, '>');
	if ((flags & MAILBOX_FMT_DOT) && n >= 1 && p[0] == '.')
	    str_putc(out, '.');
	str_append(out, p, n);
	mailbox_eol(out, flags);
	p = nl ? nl + 1 : end;
    }
    if (flags & MAILBOX_FMT_BLANK_END)
	mailbox_eol(out, flags);
}

static bool mailbox_addr_eq(const char *v, size_t n, const char *addr)
{
    while (n > 0 && isspace((unsigned char) *v))
	v++, n--;
    while (n > 0 && isspace((unsigned char) v[n - 1]))
	n--;
    if (n >= 2 && v[0] == '<' && v[n - 1] == '>')
	v++, n -= 2;
    return n == strlen(addr) && strncasecmp(v, addr, n) == 0;
}

bool    mailbox_delivered_to(const char *content, size_t len, const char *addr)
{
    const char *p = content, *end = content + len;

    while (p < end) {
	const char *nl = memchr(p, '\n', (size_t) (end - p));
	const char *lend = nl ? nl : end;
	size_t  n;

	if (lend > p && lend[-1] == '\r')
	    lend--;
	n = (size_t) (lend - p);
	if (n == 0)
	    break;				/* end of the headers */
	if (n > 13 && strncasecmp(p, "Delivered-To:", 13) == 0
	    && mailbox_addr_eq(p + 13, n - 13, addr))
	    return true;
	p = nl ? nl + 1 : end;
    }
    return false;
}

/* ---- locking ---- */

int     mailbox_lock_methods(const char *list, STR *why)
{
    int     methods = 0;
    const char *p = list;

    while (*p) {
	size_t  n;

	p += strspn(p, ", \t");
	n = strcspn(p, ", \t");
	if (n == 0)
	    break;
	if (n == 5 && strncasecmp(p, "fcntl", 5) == 0)
	    methods |= MAILBOX_LOCK_FCNTL;
	else if (n == 7 && strncasecmp(p, "dotlock", 7) == 0)
	    methods |= MAILBOX_LOCK_DOTLOCK;
	else if (n == 5 && strncasecmp(p, "flock", 5) == 0)
	    methods |= MAILBOX_LOCK_FCNTL;	/* same effect for our writers */
	else {
	    str_printf(why, "unknown mailbox lock method: %.*s", (int) n, p);
	    return -1;
	}
	p += n;
    }
    return methods;
}

static void mailbox_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
	 /* void */ ;
}

int     mailbox_dotlock(const char *path, const MAILBOX_LOCK *lk)
{
    char    lock[4096];
    struct stat st;
    int     fd;

    if ((size_t) snprintf(lock, sizeof(lock), "%s.lock", path) >= sizeof(lock)) {
	errno = ENAMETOOLONG;
	return -1;
    }
    for (int i = 0; i < (lk->attempts > 0 ? lk->attempts : 1); i++) {
	if (i > 0)
	    mailbox_sleep_ms(lk->delay_ms);
	if ((fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
	    close(fd);
	    return 0;
	}
	if (errno != EEXIST)
	    return -1;
	/* A lock left by a crashed writer goes away after stale_lock_time. */
	if (lstat(lock, &st) == 0 && lk->stale_s > 0
	    && time(NULL) > st.st_mtime + lk->stale_s)
	    (void) unlink(lock);
    }
    errno = EAGAIN;
    return -1;
}

void    mailbox_dotunlock(const char *path)
{
    char    lock[4096];

    if ((size_t) snprintf(lock, sizeof(lock), "%s.lock", path) < sizeof(lock))
	(void) unlink(lock);
}

int     mailbox_fcntl_lock(int fd, const MAILBOX_LOCK *lk)
{
    struct flock fl;

    for (int i = 0; i < (lk->attempts > 0 ? lk->attempts : 1); i++) {
	if (i > 0)
	    mailbox_sleep_ms(lk->delay_ms);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_SETLK, &fl) == 0)
	    return 0;
	if (errno != EAGAIN && errno != EACCES)
	    return -1;
    }
    errno = EAGAIN;
    return -1;
}

/* ---- delivery ---- */

static int mailbox_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
	ssize_t n = write(fd, data, len);

	if (n < 0) {
	    if (errno == EINTR)
		continue;
	    return -1;
	}
	data += n;
	len -= (size_t) n;
    }
    return 0;
}

static void mailbox_write_error(MAILBOX_RESULT *res, const char *what, const char *path, int err)
{
    if (err == EDQUOT || err == EFBIG)
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.2.2", "cannot update %s %s: %s", what,
			   path, strerror(err));
    else if (err == ENOSPC)
	mailbox_result_set(res, DELIVERY_DEFER, "4.3.1", "cannot update %s %s: %s", what,
			   path, strerror(err));
    else
	mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "cannot update %s %s: %s", what,
			   path, strerror(err));
}

void    mailbox_mbox_append(const char *path, const char *data, size_t len,
			            const MAILBOX_LOCK *lk, uid_t uid, gid_t gid,
			            long long size_limit, MAILBOX_RESULT *res)
{
    struct stat st;
    bool    dotlocked = false;
    off_t   size;
    int     fd, err;

    if (lk->methods & MAILBOX_LOCK_DOTLOCK) {
	if (mailbox_dotlock(path, lk) < 0) {
	    err = errno;
	    mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "cannot create lock file %s.lock: %s",
			       path, err == EAGAIN ? "file exists" : strerror(err));
	    return;
	}
	dotlocked = true;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
	if (uid != (uid_t) -1 && geteuid() == 0 && fchown(fd, uid, gid) < 0) {
	    err = errno;
	    close(fd);
	    (void) unlink(path);
	    mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "cannot change owner of %s: %s",
			       path, strerror(err));
	    goto unlock;
	}
    } else if (errno == EEXIST) {
	fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
	err = errno;
	mailbox_result_set(res, DELIVERY_DEFER, err == ELOOP ? "5.2.0" : "4.2.0",
			   "cannot open file %s: %s", path,
			   err == ELOOP ? "it is a symbolic link" : strerror(err));
	if (err == ELOOP)
	    res->status = DELIVERY_BOUNCE;
	goto unlock;
    }
    /* A hard link or a device would let someone redirect mail. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
	close(fd);
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.2.0",
			   "cannot deliver to file %s: not a regular file with one link", path);
	goto unlock;
    }
    if ((lk->methods & MAILBOX_LOCK_FCNTL) && mailbox_fcntl_lock(fd, lk) < 0) {
	err = errno;
	close(fd);
	mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "cannot lock file %s: %s", path,
			   err == EAGAIN ? "resource temporarily unavailable" : strerror(err));
	goto unlock;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size_limit > 0 && (long long) size + (long long) len > size_limit) {
	close(fd);
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.2.2", "cannot update mailbox %s: %s",
			   path, strerror(EFBIG));
	goto unlock;
    }
    if (mailbox_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
	err = errno;
	/* Leave the mailbox as it was: no half message. */
	if (size >= 0)
	    (void) ftruncate(fd, size);
	close(fd);
	mailbox_write_error(res, "mailbox", path, err);
	goto unlock;
    }
    if (close(fd) < 0) {
	mailbox_write_error(res, "mailbox", path, errno);
	goto unlock;
    }
    mailbox_result_set(res, DELIVERY_SENT, "2.0.0", "delivered to mailbox");

unlock:
    if (dotlocked)
	mailbox_dotunlock(path);
}

int     mailbox_maildir_name(char *buf, size_t size, int64_t sec, long usec,
			             long pid, unsigned long n, const char *host)
{
    size_t  len;
    int     w = snprintf(buf, size, "%lld.M%ldP%ldQ%lu.", (long long) sec, usec, pid, n);

    if (w < 0 || (size_t) w >= size)
	return -1;
    len = (size_t) w;
    for (const char *h = host; *h; h++) {
	const char *rep = *h == '/' ? "\\057" : *h == ':' ? "\\072" : NULL;
	size_t  need = rep ? 4 : 1;

	if (len + need >= size)
	    return -1;
	if (rep)
	    memcpy(buf + len, rep, 4);
	else
	    buf[len] = *h;
	len += need;
    }
    buf[len] = 0;
    return (int) len;
}

static int mailbox_mkdir(const char *path)
{
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}


void    mailbox_maildir_deliver(const char *dir, const char *data, size_t len,
				        MAILBOX_RESULT *res)
{
    static unsigned long counter;
    char    base[4096], tmp[4096 + 300], new_[4096 + 300], name[256], host[256];
    struct timeval tv;
    size_t  bl;
    int     fd, err;

    bl = (size_t) snprintf(base, sizeof(base), "%s", dir);
    while (bl > 1 && base[bl - 1] == '/')
	base[--bl] = 0;
    if (bl >= sizeof(base) - 8) {
	mailbox_result_set(res, DELIVERY_BOUNCE, "5.2.0", "maildir name too long: %s", dir);
	return;
    }
    /* Make the Maildir (and missing parents) on first delivery, as Postfix does. */
    if (fs_mkdirs(base, 0700) < 0) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "create maildir %s: %s", base,
			   strerror(errno));
	return;
    }
    for (int i = 0; i < 3; i++) {
	snprintf(tmp, sizeof(tmp), "%s/%s", base, i == 0 ? "tmp" : i == 1 ? "new" : "cur");
	if (mailbox_mkdir(tmp) < 0) {
	    mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "create maildir %s: %s", tmp,
			       strerror(errno));
	    return;
	}
    }
    if (gethostname(host, sizeof(host)) < 0)
	snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = 0;
    gettimeofday(&tv, NULL);
    if (mailbox_maildir_name(name, sizeof(name), (int64_t) tv.tv_sec, (long) tv.tv_usec,
			     (long) getpid(),
			     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), host) < 0) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "maildir file name too long");
	return;
    }
    snprintf(tmp, sizeof(tmp), "%s/tmp/%s", base, name);
    snprintf(new_, sizeof(new_), "%s/new/%s", base, name);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
	mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "create maildir file %s: %s", tmp,
			   strerror(errno));
	return;
    }
    if (mailbox_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
	err = errno;
	close(fd);
	(void) unlink(tmp);
	mailbox_write_error(res, "maildir file", tmp, err);
	return;
    }
    if (close(fd) < 0) {
	err = errno;
	(void) unlink(tmp);
	mailbox_write_error(res, "maildir file", tmp, err);
	return;
    }
    /* link() never replaces an existing file; rename() where links fail. */
    if (link(tmp, new_) == 0) {
	(void) unlink(tmp);
    } else if (errno == EEXIST || rename(tmp, new_) < 0) {
	err = errno;
	(void) unlink(tmp);
	mailbox_result_set(res, DELIVERY_DEFER, "4.2.0", "create maildir file %s: %s", new_,
			   strerror(err));
	return;
    }
    snprintf(new_, sizeof(new_), "%s/new", base);
    if ((fd = open(new_, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
	(void) fsync(fd);
	close(fd);
    }
    mailbox_result_set(res, DELIVERY_SENT, "2.0.0", "delivered to maildir");
}

/* ---- $name expansion ---- */

int     mailbox_expand(const char *text, mailbox_lookup_fn lookup, void *ctx,
		               STR *out, STR *err)
{
    const char *p = text;

    while (*p) {
	const char *dollar = strchr(p, '$');
	char    name[128], close_ch;
	const char *value, *start, *alt = NULL;
	size_t  n, altlen = 0;
	int     op = 0;

	if (dollar == NULL) {
	    str_puts(out, p);
	    break;
	}
	str_append(out, p, (size_t) (dollar - p));
	p = dollar + 1;
	if (*p == '$') {
	    str_putc(out, '$');
	    p++;
	    continue;
	}
	close_ch = *p == '{' ? '}' : *p == '(' ? ')' : 0;
	if (close_ch)
	    p++;
	start = p;
	while (isalnum((unsigned char) *p) || *p == '_')
	    p++;
	n = (size_t) (p - start);
	if (n == 0 || n >= sizeof(name)) {
	    str_printf(err, "bad macro name in \"%s\"", text);
	    return -1;
	}
	memcpy(name, start, n);
	name[n] = 0;
	if (close_ch) {
	    if (*p == '?' || *p == ':') {
		int     depth = 1;

		op = *p++;
		alt = p;
		/* The text may hold nested ${...}: find the matching close. */
		while (*p && depth > 0) {
		    if (*p == '{' || *p == '(')
			depth++;
		    else if (*p == '}' || *p == ')')
			depth--;
		    if (depth > 0)
			p++;
		}
		altlen = (size_t) (p - alt);
	    }
	    if (*p != close_ch) {
		str_printf(err, "unterminated ${%s in \"%s\"", name, text);
		return -1;
	    }
	    p++;
	}
	if ((value = lookup(ctx, name)) == NULL) {
	    str_printf(err, "unknown macro name \"%s\" in \"%s\"", name, text);
	    return -1;
	}
	if (op == '?' || op == ':') {
	    if ((op == '?') == (*value != 0)) {
		char   *sub = mem_strndup(alt, altlen);
		int     rc = mailbox_expand(sub, lookup, ctx, out, err);

		mem_free(sub);
		if (rc < 0)
		    return -1;
	    }
	} else {
	    str_puts(out, value);
	}
    }
    return 0;
}

void    mailbox_addr_split(MAILBOX_ADDR *a, const char *addr, const char *delims)
{
    const char *at = strrchr(addr, '@');
    size_t  ll = at ? (size_t) (at - addr) : strlen(addr);
    size_t  ul = ll;

    str_init(&a->local);
    str_init(&a->user);
    str_init(&a->extension);
    str_init(&a->domain);
    a->delim[0] = a->delim[1] = 0;
    str_append(&a->local, addr, ll);
    str_puts(&a->domain, at ? at + 1 : "");
    /* Postfix: the first delimiter found, not at the very start. */
    if (delims && *delims) {
	for (size_t i = 1; i < ll; i++)
	    if (strchr(delims, addr[i])) {
		ul = i;
		a->delim[0] = addr[i];
		str_append(&a->extension, addr + i + 1, ll - i - 1);
		break;
	    }
    }
    str_append(&a->user, addr, ul);
}

void    mailbox_addr_release(MAILBOX_ADDR *a)
{
    str_release(&a->local);
    str_release(&a->user);
    str_release(&a->extension);
    str_release(&a->domain);
}
