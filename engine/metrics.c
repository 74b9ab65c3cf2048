/*
 * metrics.c - the Prometheus text endpoint (see metrics.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "engine/mem.h"
#include "engine/metrics.h"
#include "engine/msg.h"
#include "engine/privsep.h"

#define METRICS_IO_TIMEOUT_MS	2000

static int metrics_fd = -1;
static int metrics_wake[2] = {-1, -1};
static pthread_t metrics_tid;
static metrics_fn metrics_body;

static int metrics_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	ssize_t n;

	if (poll(&pfd, 1, METRICS_IO_TIMEOUT_MS) <= 0)
	    return -1;
	if ((n = send(fd, data, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
	    continue;
	if (n <= 0)
	    return -1;
	data += n;
	len -= (size_t) n;
    }
    return 0;
}

static void metrics_serve(int fd)
{
    char    req[4096];
    size_t  got = 0;
    STR     body = STR_INIT, resp = STR_INIT;
    const char *status = "400 Bad Request";

    /* Read the request head (we never need a body). */
    while (got < sizeof(req) - 1) {
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ssize_t n;

	if (poll(&pfd, 1, METRICS_IO_TIMEOUT_MS) <= 0)
	    break;
	if ((n = read(fd, req + got, sizeof(req) - 1 - got)) < 0 && errno == EINTR)
	    continue;
	if (n <= 0)
	    break;
	got += (size_t) n;
	req[got] = 0;
	if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
	    break;
    }
    req[got] = 0;
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
	status = "200 OK";
	metrics_body(&body);
    } else if (strncmp(req, "GET ", 4) == 0) {
	status = "404 Not Found";
	str_puts(&body, "not found; try /metrics\n");
    } else {
	str_puts(&body, "bad request\n");
    }
    str_printf(&resp, "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	       "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, STR_LEN(&body));
    str_append(&resp, STR_DATA(&body), STR_LEN(&body));
    (void) metrics_write_all(fd, STR_DATA(&resp), STR_LEN(&resp));
    str_release(&body);
    str_release(&resp);
}

static void *metrics_thread(void *arg)
{
    msg_service_set("metrics");
    for (;;) {
	struct pollfd pfd[2] = {{.fd = metrics_fd, .events = POLLIN},
	{.fd = metrics_wake[0], .events = POLLIN}};

	if (poll(pfd, 2, -1) < 0) {
	    if (errno == EINTR)
		continue;
	    msg_warn("metrics: poll: %m");
	    break;
	}
	if (pfd[1].revents)
	    break;
	if (pfd[0].revents & POLLIN) {
	    int     fd = accept4(metrics_fd, NULL, NULL, SOCK_CLOEXEC);

	    if (fd >= 0) {
		metrics_serve(fd);
		close(fd);
	    }
	}
    }
    return NULL;
}

int metrics_start(const char *listen_addr, metrics_fn fn, STR *why)
{
    struct addrinfo hints, *res = NULL;
    char    host[256], *port;
    const char *h;
    int     err, on = 1;

    if (metrics_fd >= 0) {
	str_puts(why, "already started");
	return -1;
    }
    snprintf(host, sizeof(host), "%s", listen_addr);
    if ((port = strrchr(host, ':')) == NULL || port[1] == 0) {
	str_printf(why, "expected host:port, got \"%s\"", listen_addr);
	return -1;
    }
    *port++ = 0;
    h = host;
    if (*h == '[') {
	h++;
	if (port - host >= 2 && port[-2] == ']')
	    port[-2] = 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((err = getaddrinfo(*h ? h : NULL, port, &hints, &res)) != 0) {
	str_printf(why, "%s: %s", listen_addr, gai_strerror(err));
	return -1;
    }
    metrics_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (metrics_fd < 0
	|| setsockopt(metrics_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0
	|| privsep_bind(metrics_fd, res->ai_addr, res->ai_addrlen) < 0
	|| listen(metrics_fd, 16) < 0) {
	str_printf(why, "bind %s: %s", listen_addr, strerror(errno));
	if (metrics_fd >= 0)
	    close(metrics_fd);
	metrics_fd = -1;
	freeaddrinfo(res);
	return -1;
    }
    freeaddrinfo(res);
    if (pipe2(metrics_wake, O_CLOEXEC) < 0)
	msg_fatal("metrics: pipe: %m");
    metrics_body = fn;
    if ((err = pthread_create(&metrics_tid, NULL, metrics_thread, NULL)) != 0)
	msg_fatal("metrics: pthread_create: %s", strerror(err));
    msg_info("metrics: listening on %s", listen_addr);
    return 0;
}

void metrics_stop(void)
{
    if (metrics_fd < 0)
	return;
    (void) !write(metrics_wake[1], "x", 1);
    pthread_join(metrics_tid, NULL);
    close(metrics_fd);
    close(metrics_wake[0]);
    close(metrics_wake[1]);
    metrics_fd = -1;
}
