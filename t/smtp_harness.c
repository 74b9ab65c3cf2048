/*
 * smtp_harness.c - deliver one message through the SMTP/LMTP agent.
 *
 * Usage: smtp_harness [-L] [-t threads] [-n count] [-o name=value]...
 *	  [-f sender] [-i file] [-8] [-R ret] [-E envid] [-N notify]
 *	  nexthop rcpt[=orig_rcpt]...
 *
 *   -L        use the lmtp agent (lmtp_* parameters, LHLO)
 *   -n count  deliver `count` messages one after another (connection reuse)
 *   -o n=v    override an smtp_ or lmtp_ parameter, or myhostname
 *   -i file   message content (LF or CRLF lines); default: a small message
 *   -8        mark the message BODY=8BITMIME
 *   -R/-E/-N  DSN RET (FULL|HDRS), ENVID, NOTIFY (e.g. SUCCESS,FAILURE)
 *
 * Prints the agent's log lines ("smtp: ID: to=<...>, ...") and then, per
 * request, "result relay=R site_failed=0|1" and one line per recipient
 * "rcpt <addr> status=sent|deferred|bounced dsn=X.Y.Z reason=TEXT".
 * Exit 0 when every request completed (whatever the outcome), 2 on usage.
 * Integration tests (t/smtp_*.py) drive it.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/blob.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "queue/message.h"
#include "queue/queue_id.h"
#include "stages/delivery.h"
#include "stages/smtp.h"

static pthread_mutex_t harness_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t harness_cond = PTHREAD_COND_INITIALIZER;
static int harness_done;

static void harness_sink(enum msg_level level, const char *service, const char *text)
{
    pthread_mutex_lock(&harness_lock);
    printf("%s: %s\n", service, text);
    fflush(stdout);
    pthread_mutex_unlock(&harness_lock);
}

static void harness_req_done(DELIVERY_REQUEST *req)
{
    pthread_mutex_lock(&harness_lock);
    harness_done++;
    pthread_cond_broadcast(&harness_cond);
    pthread_mutex_unlock(&harness_lock);
}

static BLOB *harness_content(const char *path, const char *sender, char **rcpts, int nrcpt)
{
    STR     raw = STR_INIT;
    STR     out = STR_INIT;

    if (path) {
	FILE   *fp = fopen(path, "r");
	char    buf[8192];
	size_t  n;

	if (fp == NULL)
	    msg_fatal("open %s: %m", path);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
	    str_append(&raw, buf, n);
	fclose(fp);
    } else {
	str_printf(&raw, "From: <%s>\nTo: <%s>\nSubject: harness test\n\nHello from the smtp harness.\n",
		   sender, nrcpt ? rcpts[0] : "");
    }
    /* Canonical form: CRLF line ends, last line terminated. */
    for (size_t i = 0; i < raw.len; i++) {
	char    c = raw.data[i];

	if (c == '\r' && i + 1 < raw.len && raw.data[i + 1] == '\n')
	    continue;
	if (c == '\n')
	    str_append(&out, "\r\n", 2);
	else
	    str_putc(&out, c);
    }
    if (out.len && (out.len < 2 || memcmp(out.data + out.len - 2, "\r\n", 2) != 0))
	str_append(&out, "\r\n", 2);
    str_release(&raw);
    return blob_adopt(&out);
}

static void harness_usage(void)
{
    fprintf(stderr, "usage: smtp_harness [-L] [-t threads] [-n count] [-o name=value]... "
	    "[-f sender] [-i file] [-8] [-R FULL|HDRS] [-E envid] [-N notify] nexthop rcpt[=orig]...\n");
    exit(2);
}

int     main(int argc, char **argv)
{
    SMTP_CONFIG cfg;
    SMTP_AGENT *agent;
    bool    lmtp = false;
    int     threads = 2;
    int     count = 1;
    const char *sender = "sender@example.org";
    const char *file = NULL;
    const char *envid = NULL;
    int     ret = DSN_RET_NONE;
    int     notify = 0;
    bool    eight = false;
    char   *overrides[64];
    int     noverrides = 0;
    int     ch;

    msg_progname_set("smtp_harness");
    msg_sink_set(harness_sink);
    while ((ch = getopt(argc, argv, "Lt:n:o:f:i:8R:E:N:")) != -1) {
	switch (ch) {
	case 'L':
	    lmtp = true;
	    break;
	case 't':
	    threads = atoi(optarg);
	    break;
	case 'n':
	    count = atoi(optarg);
	    break;
	case 'o':
	    if (noverrides == 64)
		harness_usage();
	    overrides[noverrides++] = optarg;
	    break;
	case 'f':
	    sender = optarg;
	    break;
	case 'i':
	    file = optarg;
	    break;
	case '8':
	    eight = true;
	    break;
	case 'R':
	    ret = strcasecmp(optarg, "FULL") == 0 ? DSN_RET_FULL : DSN_RET_HDRS;
	    break;
	case 'E':
	    envid = optarg;
	    break;
	case 'N':
	    if (strstr(optarg, "NEVER"))
		notify |= DSN_NOTIFY_NEVER;
	    if (strstr(optarg, "SUCCESS"))
		notify |= DSN_NOTIFY_SUCCESS;
	    if (strstr(optarg, "FAILURE"))
		notify |= DSN_NOTIFY_FAILURE;
	    if (strstr(optarg, "DELAY"))
		notify |= DSN_NOTIFY_DELAY;
	    break;
	default:
	    harness_usage();
	}
    }
    if (argc - optind < 2 || count < 1 || threads < 1)
	harness_usage();
    smtp_config_load(&cfg, lmtp);
    for (int i = 0; i < noverrides; i++) {
	char   *eq = strchr(overrides[i], '=');
	STR     why = STR_INIT;

	if (eq == NULL)
	    harness_usage();
	*eq = 0;
	if (smtp_config_set(&cfg, overrides[i], eq + 1, &why) < 0) {
	    fprintf(stderr, "smtp_harness: %s\n", STR_DATA(&why));
	    exit(2);
	}
	str_release(&why);
    }
    agent = smtp_agent_create(&cfg, threads);

    for (int n = 0; n < count; n++) {
	MESSAGE *m = message_new();
	DELIVERY_REQUEST req;
	int     nrcpt = argc - optind - 1;

	queue_id_next(m->queue_id);
	m->arrival_us = time_real_us();
	mem_free(m->sender);
	m->sender = mem_strdup(sender);
	m->protocol = mem_strdup("ESMTP");
	m->body_type = eight ? BODY_TYPE_8BITMIME : BODY_TYPE_NONE;
	m->dsn_ret = ret;
	m->dsn_envid = envid ? mem_strdup(envid) : NULL;
	for (int i = 0; i < nrcpt; i++) {
	    char   *arg = mem_strdup(argv[optind + 1 + i]);
	    char   *eq = strchr(arg, '=');
	    RCPT   *r;

	    if (eq)
		*eq++ = 0;
	    r = message_add_rcpt(m, arg, eq);
	    r->dsn_notify = notify;
	    r->transport = mem_strdup(cfg.service);
	    r->nexthop = mem_strdup(argv[optind]);
	    mem_free(arg);
	}
	m->content = harness_content(file, sender, argv + optind + 1, nrcpt);

	memset(&req, 0, sizeof(req));
	req.msg = m;
	req.transport = cfg.service;
	req.nexthop = argv[optind];
	req.nrcpt = m->nrcpt;
	req.rcpt = mem_calloc(m->nrcpt, sizeof(*req.rcpt));
	for (size_t i = 0; i < m->nrcpt; i++)
	    req.rcpt[i].index = i;
	req.active_mono_ns = time_mono_ns();
	req.queued_mono_ns = time_mono_ns();
	req.done = harness_req_done;

	pthread_mutex_lock(&harness_lock);
	harness_done = 0;
	pthread_mutex_unlock(&harness_lock);
	smtp_agent_deliver(agent, &req);
	pthread_mutex_lock(&harness_lock);
	while (harness_done == 0)
	    pthread_cond_wait(&harness_cond, &harness_lock);
	printf("result relay=%s site_failed=%d\n", req.relay, req.site_failed);
	for (size_t i = 0; i < req.nrcpt; i++) {
	    static const char *words[] = {"sent", "deferred", "bounced"};

	    printf("rcpt %s status=%s dsn=%s reason=%s\n", m->rcpt[i].address,
		   words[req.rcpt[i].status], req.rcpt[i].dsn,
		   req.rcpt[i].reason ? req.rcpt[i].reason : "");
	    mem_free(req.rcpt[i].reason);
	}
	fflush(stdout);
	pthread_mutex_unlock(&harness_lock);
	mem_free(req.rcpt);
	message_free(m);
    }
    smtp_agent_destroy(agent);
    return 0;
}
