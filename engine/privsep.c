/*
 * privsep.c - the engine's privilege drop and its privileged helper (see
 * privsep.h).
 *
 * The helper is forked from the engine before the engine has threads, so
 * it and its workers are single-threaded copies of the engine's memory as
 * it was then: the configuration snapshot, the registered job handlers and
 * the port list are the ones of that moment (a reload does not change what
 * the helper allows; a restart does). The helper never logs: the engine
 * logs what it answers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "engine/privsep.h"
#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"

#define PRIVSEP_MAX_PORTS	64
#define PRIVSEP_MAX_WORKERS	256	/* more waits for one to finish */

/* Set once in privsep_start(), before any other thread exists. */
static int privsep_fd = -1;		/* engine: our end of the socketpair */
static bool privsep_helper;		/* this process is the helper or a worker */
static uid_t privsep_owner_uid = (uid_t) -1;
static privsep_job_fn privsep_jobs[PRIVSEP_JOB_MAX];
static uint16_t privsep_ports[PRIVSEP_MAX_PORTS];
static size_t privsep_nports;

void    privsep_job_register(unsigned type, privsep_job_fn fn)
{
    if (type <= PRIVSEP_JOB_BIND || type >= PRIVSEP_JOB_MAX)
	msg_panic("privsep_job_register: bad job type %u", type);
    privsep_jobs[type] = fn;
}

bool    privsep_active(void)
{
    return privsep_fd >= 0;
}

bool    privsep_in_helper(void)
{
    return privsep_helper;
}

uid_t   privsep_uid(void)
{
    return privsep_owner_uid;
}

/* ---- data passed by memfd ---- */

int     privsep_data_fd(const char *data, size_t len)
{
    int     fd = memfd_create("sluice-data", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    size_t  done = 0;

    if (fd < 0)
	return -1;
    while (done < len) {
	ssize_t n = write(fd, data + done, len - done);

	if (n < 0 && errno == EINTR)
	    continue;
	if (n <= 0) {
	    int     saved = n < 0 ? errno : EIO;

	    close(fd);
	    errno = saved;
	    return -1;
	}
	done += (size_t) n;
    }
    /* Sealed, the worker may map it without fearing a truncation (SIGBUS). */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
	int     saved = errno;

	close(fd);
	errno = saved;
	return -1;
    }
    return fd;
}

const char *privsep_data_map(int fd, size_t max, size_t *len, STR *why)
{
    const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    struct stat st;
    int     seals;
    void   *p;

    *len = 0;
    if (fd < 0) {
	str_puts(why, "no message data");
	return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
	str_puts(why, "message data is not a regular file");
	return NULL;
    }
    if ((seals = fcntl(fd, F_GET_SEALS)) < 0 || (seals & need) != need) {
	str_puts(why, "message data is not sealed");
	return NULL;
    }
    if (st.st_size < 0 || (unsigned long long) st.st_size > max) {
	str_printf(why, "message data too large (%lld bytes)", (long long) st.st_size);
	return NULL;
    }
    if (st.st_size == 0)
	return "";
    p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
	str_printf(why, "mmap message data: %s", strerror(errno));
	return NULL;
    }
    *len = (size_t) st.st_size;
    return p;
}

void    privsep_data_unmap(const char *data, size_t len)
{
    if (len > 0)
	munmap((void *) data, len);
}

/* ---- credentials ---- */

int     privsep_become(uid_t uid, gid_t gid, STR *why)
{
    struct passwd *pw;

    if (uid == 0 || uid == (uid_t) -1 || gid == (gid_t) -1) {
	str_printf(why, "refusing to run as uid %ld gid %ld", (long) uid, (long) gid);
	return -1;
    }
    /* Single-threaded here (a helper worker or the engine before threads). */
    if ((pw = getpwuid(uid)) != NULL && pw->pw_name) {
	if (initgroups(pw->pw_name, gid) < 0) {
	    str_printf(why, "initgroups %s: %s", pw->pw_name, strerror(errno));
	    return -1;
	}
    } else if (setgroups(1, &gid) < 0) {
	str_printf(why, "setgroups: %s", strerror(errno));
	return -1;
    }
    if (setgid(gid) < 0 || setuid(uid) < 0) {
	str_printf(why, "set privileges to uid %ld gid %ld: %s", (long) uid, (long) gid,
		   strerror(errno));
	return -1;
    }
    /* A drop that did not stick, or that could be undone, is no drop. */
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid
	|| setuid(0) == 0 || seteuid(0) == 0) {
	str_printf(why, "privileges to uid %ld gid %ld did not stick", (long) uid, (long) gid);
	return -1;
    }
    return 0;
}

/* ---- the helper ---- */

static int privsep_port_allowed(unsigned port)
{
    for (size_t i = 0; i < privsep_nports; i++)
	if (privsep_ports[i] == port)
	    return 1;
    return 0;
}

/* PRIVSEP_JOB_BIND: the errno of the bind, 0 when bound. */
static int privsep_helper_bind(const void *req, size_t len, int fd)
{
    struct sockaddr_storage ss;
    int     domain = 0, type = 0;
    socklen_t ol = sizeof(int);
    unsigned port;

    if (fd < 0 || len < sizeof(sa_family_t) || len > sizeof(ss))
	return EINVAL;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, req, len);
    if (ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in))
	port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
    else if (ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6))
	port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
    else
	return EAFNOSUPPORT;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &ol) < 0
	|| (ol = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol)) < 0)
	return errno;
    if (domain != ss.ss_family || type != SOCK_STREAM)
	return EPROTOTYPE;
    /* Only the ports the configuration named when we started. */
    if (!privsep_port_allowed(port))
	return EACCES;
    return bind(fd, (struct sockaddr *) &ss, (socklen_t) len) < 0 ? errno : 0;
}

/* One reply datagram: a status byte (0 done, 1 refused), then the text. */
static void privsep_reply(int fd, int status, const void *data, size_t len)
{
    char    st = (char) status;
    struct iovec iov[2] = {{&st, 1}, {(void *) data, len > PRIVSEP_REPLY_MAX
    ? PRIVSEP_REPLY_MAX : len}};
    struct msghdr mh = {.msg_iov = iov,.msg_iovlen = 2};

    while (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
	 /* again */ ;
}

static void privsep_worker(int sock, unsigned type, const void *req, size_t len,
			           int reply_fd, int data_fd)
{
    STR     reply = STR_INIT;
    int     rc;
    struct sigaction sa;

    /* Commands run by a handler need their exit status back. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    close(sock);
    rc = privsep_jobs[type](req, len, data_fd, &reply);
    privsep_reply(reply_fd, rc < 0, STR_DATA(&reply), STR_LEN(&reply));
    _exit(0);
}

static void privsep_close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
	if (fds[i] >= 0)
	    close(fds[i]);
}

static void __attribute__((noreturn)) privsep_helper_main(int sock, pid_t engine)
{
    static char buf[sizeof(PRIVSEP_HDR) + PRIVSEP_PAYLOAD_MAX];
    union {
	struct cmsghdr align;
	char    space[CMSG_SPACE(3 * sizeof(int))];
    } cbuf;
    struct sigaction sa;
    sigset_t none;
    int     workers = 0;

    privsep_helper = true;
    privsep_fd = -1;
    (void) prctl(PR_SET_NAME, "sluice-privsep", 0, 0, 0);
    (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != engine)
	_exit(0);				/* the engine died before the line above */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    /* The terminal's ^C and the master's HUP are for the engine. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    for (;;) {
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov,.msg_iovlen = 1,
	.msg_control = cbuf.space,.msg_controllen = sizeof(cbuf.space)};
	int     fds[3] = {-1, -1, -1}, nfd = 0;
	PRIVSEP_HDR hdr;
	ssize_t n;
	pid_t   pid;

	while ((pid = waitpid(-1, NULL, workers >= PRIVSEP_MAX_WORKERS ? 0 : WNOHANG)) > 0)
	    workers--;
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n == 0)
	    _exit(0);				/* the engine is gone */
	if (n < 0) {
	    if (errno == EINTR)
		continue;
	    _exit(1);
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
	    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		continue;
	    size_t  k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

	    for (size_t i = 0; i < k; i++) {
		int     fd;

		memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		if (nfd < 3)
		    fds[nfd++] = fd;
		else
		    close(fd);
	    }
	}
	/* fds[0]: where the answer goes; nothing is done without one. */
	if (nfd < 1 || nfd > 2) {
	    privsep_close_fds(fds, nfd);
	    continue;
	}
	if ((size_t) n < sizeof(hdr) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
	    privsep_reply(fds[0], 1, "malformed request", 17);
	    privsep_close_fds(fds, nfd);
	    continue;
	}
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.magic != PRIVSEP_MAGIC || hdr.len != (size_t) n - sizeof(hdr)
	    || hdr.type == 0 || hdr.type >= PRIVSEP_JOB_MAX
	    || (hdr.type != PRIVSEP_JOB_BIND && privsep_jobs[hdr.type] == NULL)) {
	    privsep_reply(fds[0], 1, "unknown request", 15);
	    privsep_close_fds(fds, nfd);
	    continue;
	}
	if (hdr.type == PRIVSEP_JOB_BIND) {
	    int32_t err = privsep_helper_bind(buf + sizeof(hdr), hdr.len, fds[1]);

	    privsep_reply(fds[0], 0, &err, sizeof(err));
	} else if ((pid = fork()) == 0) {
	    privsep_worker(sock, hdr.type, buf + sizeof(hdr), hdr.len, fds[0], fds[1]);
	} else if (pid < 0) {
	    privsep_reply(fds[0], 1, "privileged helper: fork failed", 30);
	} else {
	    workers++;
	}
	privsep_close_fds(fds, nfd);
    }
}

/* ---- the engine side ---- */

int     privsep_call(unsigned type, const void *req, size_t len, int data_fd,
		             STR *reply, STR *why)
{
    PRIVSEP_HDR hdr = {PRIVSEP_MAGIC, type, (uint32_t) len};
    struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *) req, len}};
    union {
	struct cmsghdr align;
	char    space[CMSG_SPACE(2 * sizeof(int))];
    } cbuf;
    struct msghdr mh = {.msg_iov = iov,.msg_iovlen = 2,.msg_control = cbuf.space};
    struct cmsghdr *c;
    int     rs[2], nfd = data_fd >= 0 ? 2 : 1;
    char   *buf;
    ssize_t n;

    str_reset(reply);
    if (privsep_fd < 0) {
	str_puts(why, "privileged helper not running");
	return -1;
    }
    if (len > PRIVSEP_PAYLOAD_MAX) {
	str_printf(why, "privileged helper request too large (%zu bytes)", len);
	return -1;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rs) < 0) {
	str_printf(why, "socketpair: %s", strerror(errno));
	return -1;
    }
    memset(cbuf.space, 0, sizeof(cbuf.space));
    mh.msg_controllen = CMSG_SPACE((size_t) nfd * sizeof(int));
    c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t) nfd * sizeof(int));
    memcpy(CMSG_DATA(c), &rs[1], sizeof(int));
    if (nfd == 2)
	memcpy(CMSG_DATA(c) + sizeof(int), &data_fd, sizeof(int));
    while ((n = sendmsg(privsep_fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
	 /* again */ ;
    close(rs[1]);
    if (n < 0) {
	str_printf(why, "privileged helper: %s", strerror(errno));
	close(rs[0]);
	return -1;
    }
    buf = mem_alloc(PRIVSEP_REPLY_MAX + 2);
    while ((n = recv(rs[0], buf, PRIVSEP_REPLY_MAX + 1, 0)) < 0 && errno == EINTR)
	 /* again */ ;
    close(rs[0]);
    if (n <= 0) {
	str_puts(why, "privileged helper process died without a result");
	mem_free(buf);
	return -1;
    }
    if (buf[0] != 0) {
	str_append(why, buf + 1, (size_t) n - 1);
	mem_free(buf);
	return -1;
    }
    str_append(reply, buf + 1, (size_t) n - 1);
    mem_free(buf);
    return 0;
}

int     privsep_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    STR     reply = STR_INIT, why = STR_INIT;
    int32_t err;

    if (bind(fd, sa, len) == 0)
	return 0;
    if (errno != EACCES || privsep_fd < 0)
	return -1;
    if (privsep_call(PRIVSEP_JOB_BIND, sa, len, fd, &reply, &why) < 0
	|| STR_LEN(&reply) != sizeof(err)) {
	msg_warn("bind through the privileged helper: %s",
		 STR_LEN(&why) ? STR_DATA(&why) : "bad reply");
	err = EACCES;
    } else {
	memcpy(&err, reply.data, sizeof(err));	/* non-NULL: len checked */
    }
    str_release(&reply);
    str_release(&why);
    if (err != 0) {
	errno = err;
	return -1;
    }
    return 0;
}

/* "host:port", "[v6]:port", "port", "smtp" -> the TCP port, or -1. */
static int privsep_spec_port(const char *spec)
{
    const char *p = strrchr(spec, ':');
    char   *end;
    long    v;
    struct servent *se;

    p = p ? p + 1 : spec;
    if (*p == 0)
	return -1;
    v = strtol(p, &end, 10);
    if (*end == 0)
	return v > 0 && v < 65536 ? (int) v : -1;
    if ((se = getservbyname(p, "tcp")) != NULL)
	return ntohs((uint16_t) se->s_port);
    return -1;
}

static void privsep_port_add(int port)
{
    if (port > 0 && !privsep_port_allowed((unsigned) port) && privsep_nports < PRIVSEP_MAX_PORTS)
	privsep_ports[privsep_nports++] = (uint16_t) port;
}

/* The ports the configuration listens on: master.cf inet services (smtpd,
 * qmqpd, ...) and metrics_listen. */
static void privsep_collect_ports(void)
{
    const MASTERCF *mcf = config_mastercf(config_current());

    privsep_nports = 0;
    for (size_t i = 0; mcf && i < mcf->count; i++)
	if (strcmp(mcf->svc[i].type, "inet") == 0)
	    privsep_port_add(privsep_spec_port(mcf->svc[i].name));
    if (*param_str(P_METRICS_LISTEN))
	privsep_port_add(privsep_spec_port(param_str(P_METRICS_LISTEN)));
}

/* Threads: /proc/self/status "Threads:" (1 when unknown). */
static int privsep_threads(void)
{
    char    line[256];
    int     n = 1;
    FILE   *fp = fopen("/proc/self/status", "re");

    if (fp == NULL)
	return 1;
    while (fgets(line, sizeof(line), fp))
	if (strncmp(line, "Threads:", 8) == 0)
	    n = atoi(line + 8);
    fclose(fp);
    return n;
}

int     privsep_start(STR *why)
{
    PRIVSEP_OWNERS o;
    int     sv[2];
    pid_t   pid, engine = getpid();

    if (geteuid() != 0 || privsep_fd >= 0)
	return 0;
    if (privsep_owners(&o, 0, why) < 0)
	return -1;
    if (o.owner_uid == 0)
	return 0;				/* mail_owner root: nothing to drop to */
    if (privsep_threads() != 1) {
	str_puts(why, "privilege separation must start before any thread");
	return -1;
    }
    /* The master normally did this already; the engine may run alone (-E). */
    if (privsep_prepare(false, why) < 0)
	return -1;
    privsep_collect_ports();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
	str_printf(why, "socketpair: %s", strerror(errno));
	return -1;
    }
    if ((pid = fork()) < 0) {
	str_printf(why, "fork: %s", strerror(errno));
	close(sv[0]);
	close(sv[1]);
	return -1;
    }
    if (pid == 0) {
	close(sv[0]);
	privsep_helper_main(sv[1], engine);
    }
    close(sv[1]);
    privsep_fd = sv[0];
    if (privsep_become(o.owner_uid, o.owner_gid, why) < 0) {
	close(privsep_fd);			/* the helper sees EOF and exits */
	privsep_fd = -1;
	return -1;
    }
    privsep_owner_uid = o.owner_uid;
    return 0;
}
