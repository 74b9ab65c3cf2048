/*
 * ctl.c - control socket server and client (see ctl.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "engine/ctl.h"
#include "engine/mem.h"
#include "engine/msg.h"

#define CTL_MAX_HANDLERS	64
#define CTL_IO_TIMEOUT_MS	5000

static struct {
    const char *command;
    ctl_handler_fn fn;
    void *ctx;
} ctl_handlers[CTL_MAX_HANDLERS];
static int ctl_nhandlers;
static int ctl_listen_fd = -1;
static int ctl_wake_pipe[2] = {-1, -1};
static pthread_t ctl_tid;
static uid_t ctl_extra_uid;
static STR ctl_path = STR_INIT;

void ctl_socket_path(const char *queue_dir, STR *path)
{
    str_reset(path);
    str_printf(path, "%s/%s", queue_dir, CTL_SOCKET_NAME);
}

void ctl_register(const char *command, ctl_handler_fn fn, void *ctx)
{
    if (ctl_nhandlers == CTL_MAX_HANDLERS)
	msg_panic("ctl_register: too many handlers");
    ctl_handlers[ctl_nhandlers].command = command;
    ctl_handlers[ctl_nhandlers].fn = fn;
    ctl_handlers[ctl_nhandlers].ctx = ctx;
    ctl_nhandlers++;
}

/* Full read/write with a deadline; the peer is an operator command. */
static int ctl_io(int fd, void *buf, size_t len, int writing)
{
    size_t done = 0;

    while (done < len) {
	struct pollfd pfd = {.fd = fd, .events = writing ? POLLOUT : POLLIN};
	ssize_t n;

	if (poll(&pfd, 1, CTL_IO_TIMEOUT_MS) <= 0)
	    return -1;
	n = writing ? send(fd, (char *) buf + done, len - done, MSG_NOSIGNAL)
	    : read(fd, (char *) buf + done, len - done);
	if (n < 0 && errno == EINTR)
	    continue;
	if (n <= 0)
	    return -1;
	done += (size_t) n;
    }
    return 0;
}

static int ctl_send_frame(int fd, const char *data, size_t len)
{
    uint32_t hdr = htonl((uint32_t) len);

    return ctl_io(fd, &hdr, 4, 1) < 0 || ctl_io(fd, (void *) data, len, 1) < 0 ? -1 : 0;
}

static char *ctl_read_frame(int fd, size_t *len)
{
    uint32_t hdr;
    char *buf;

    if (ctl_io(fd, &hdr, 4, 0) < 0)
	return NULL;
    *len = ntohl(hdr);
    if (*len > CTL_MAX_FRAME)
	return NULL;
    buf = mem_alloc(*len + 1);
    if (ctl_io(fd, buf, *len, 0) < 0) {
	mem_free(buf);
	return NULL;
    }
    buf[*len] = 0;
    return buf;
}

static void ctl_serve(int fd)
{
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    char *frame, *argv[256];
    size_t len;
    int argc = 0, status = 1;
    STR out = STR_INIT;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0
	|| (cred.uid != 0 && cred.uid != geteuid() && cred.uid != ctl_extra_uid)) {
	msg_warn("control: request from uid %ld refused", (long) cred.uid);
	return;
    }
    if ((frame = ctl_read_frame(fd, &len)) == NULL) {
	msg_warn("control: bad or truncated request frame");
	return;
    }
    /* argv: NUL-terminated strings back to back. */
    for (size_t off = 0; off < len && argc < 255; off += strlen(frame + off) + 1)
	argv[argc++] = frame + off;
    argv[argc] = NULL;
    str_putc(&out, '1');
    if (argc == 0) {
	str_puts(&out, "empty request");
    } else {
	int i;

	for (i = 0; i < ctl_nhandlers; i++)
	    if (strcmp(ctl_handlers[i].command, argv[0]) == 0)
		break;
	if (i == ctl_nhandlers) {
	    str_printf(&out, "unknown request: %s", argv[0]);
	} else {
	    str_reset(&out);
	    str_putc(&out, '?');
	    status = ctl_handlers[i].fn(argc, argv, &out, ctl_handlers[i].ctx);
	    out.data[0] = status ? '1' : '0';
	}
    }
    (void) ctl_send_frame(fd, STR_DATA(&out), STR_LEN(&out));
    str_release(&out);
    mem_free(frame);
}

static void *ctl_thread(void *arg)
{
    msg_service_set("master");
    for (;;) {
	struct pollfd pfd[2] = {{.fd = ctl_listen_fd, .events = POLLIN},
	{.fd = ctl_wake_pipe[0], .events = POLLIN}};

	if (poll(pfd, 2, -1) < 0) {
	    if (errno == EINTR)
		continue;
	    msg_fatal("control: poll: %m");
	}
	if (pfd[1].revents)
	    break;
	if (pfd[0].revents & POLLIN) {
	    int fd = accept4(ctl_listen_fd, NULL, NULL, SOCK_CLOEXEC);

	    if (fd >= 0) {
		ctl_serve(fd);
		close(fd);
	    }
	}
    }
    return NULL;
}

void ctl_start(const char *queue_dir, uid_t extra_uid)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    STR dir = STR_INIT;
    int err;

    ctl_extra_uid = extra_uid;
    str_printf(&dir, "%s/private", queue_dir);
    if (mkdir(STR_DATA(&dir), 0700) < 0 && errno != EEXIST)
	msg_fatal("control: mkdir %s: %m", STR_DATA(&dir));
    if (chmod(STR_DATA(&dir), 0700) < 0)
	msg_fatal("control: chmod %s: %m", STR_DATA(&dir));
    str_release(&dir);
    ctl_socket_path(queue_dir, &ctl_path);
    if (STR_LEN(&ctl_path) >= sizeof(sun.sun_path))
	msg_fatal("control: socket path too long: %s", STR_DATA(&ctl_path));
    strcpy(sun.sun_path, STR_DATA(&ctl_path));
    (void) unlink(sun.sun_path);
    if ((ctl_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0
	|| bind(ctl_listen_fd, (struct sockaddr *) &sun, sizeof(sun)) < 0
	|| chmod(sun.sun_path, 0600) < 0
	|| listen(ctl_listen_fd, 64) < 0)
	msg_fatal("control: bind %s: %m", sun.sun_path);
    if (pipe2(ctl_wake_pipe, O_CLOEXEC) < 0)
	msg_fatal("control: pipe: %m");
    if ((err = pthread_create(&ctl_tid, NULL, ctl_thread, NULL)) != 0)
	msg_fatal("control: pthread_create: %s", strerror(err));
}

void ctl_stop(void)
{
    if (ctl_listen_fd < 0)
	return;
    (void) !write(ctl_wake_pipe[1], "x", 1);
    pthread_join(ctl_tid, NULL);
    close(ctl_listen_fd);
    close(ctl_wake_pipe[0]);
    close(ctl_wake_pipe[1]);
    ctl_listen_fd = -1;
    (void) unlink(STR_DATA(&ctl_path));
    str_release(&ctl_path);
}

int ctl_call(const char *queue_dir, int argc, char **argv, STR *out)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    STR path = STR_INIT, req = STR_INIT;
    char *reply;
    size_t len;
    int fd, status = -1;

    str_reset(out);
    ctl_socket_path(queue_dir, &path);
    if (STR_LEN(&path) >= sizeof(sun.sun_path)) {
	str_printf(out, "socket path too long: %s", STR_DATA(&path));
	goto done;
    }
    strcpy(sun.sun_path, STR_DATA(&path));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
	goto done;
    if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
	str_printf(out, "connect to %s: %s", sun.sun_path, strerror(errno));
	close(fd);
	goto done;
    }
    for (int i = 0; i < argc; i++)
	str_append(&req, argv[i], strlen(argv[i]) + 1);
    if (ctl_send_frame(fd, STR_DATA(&req), STR_LEN(&req)) < 0
	|| (reply = ctl_read_frame(fd, &len)) == NULL || len < 1) {
	str_printf(out, "%s: no reply from the mail system", sun.sun_path);
    } else {
	status = reply[0] == '0' ? 0 : 1;
	str_append(out, reply + 1, len - 1);
	mem_free(reply);
    }
    close(fd);
done:
    str_release(&path);
    str_release(&req);
    return status;
}
