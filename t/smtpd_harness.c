/*
 * smtpd_harness.c - runs the smtpd stage alone, for integration tests.
 *
 * Usage: smtpd_harness -d DIR [-c CONFIG_DIR] [-o name=value]... [-t threads]
 *                      [-b bind_addr] [-n nofile] [-w] [-F "code text"]
 *                      [-D delay_ms] [-P pressure_file]
 *
 * Listens on an ephemeral port of bind_addr (default 127.0.0.1) and prints
 * the port on stdout. With -w it then waits for a line on stdin before
 * smtpd starts accepting (the kernel completes connections meanwhile, so a
 * test can send "before the greeting" deterministically).
 *
 * A fake submit function takes each message: it writes DIR/ID.env (the
 * envelope, one item per line) and DIR/ID.msg (the canonical content), via
 * temporary names and rename, then answers 250 with the queue ID -- from a
 * separate thread, after -D milliseconds, as the engine's journal would.
 * -F "451 4.3.0 Error: queue file write error" makes every submission fail.
 * -P FILE: the back-pressure hook reads a digit from FILE (0, 1, 2).
 *
 * Configuration: main.cf from -c (if given) plus the -o overrides, loaded
 * with engine/config.h. Log lines go to stderr as "sluice/smtpd[pid]: text".
 * SIGUSR1 prints "sessions N rss_kb R allocated B" on stdout;
 * SIGTERM/SIGINT stop smtpd cleanly and exit 0.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "queue/message.h"
#include "queue/queue_id.h"
#include "stages/smtpd.h"

typedef struct JOB {
    struct JOB *next;
    MESSAGE *msg;
    smtpd_done_fn done;
    void   *ctx;
} JOB;

static const char *harness_dir;
static const char *harness_fail;
static const char *harness_pressure_file;
static int harness_delay_ms;
static pthread_mutex_t harness_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t harness_cond = PTHREAD_COND_INITIALIZER;
static JOB *harness_head, *harness_tail;
static bool harness_stop;
static pthread_mutex_t harness_log_lock = PTHREAD_MUTEX_INITIALIZER;

static void harness_sink(enum msg_level level, const char *service, const char *text)
{
    pthread_mutex_lock(&harness_log_lock);
    fprintf(stderr, "sluice/%s[%ld]: %s\n", service, (long) getpid(), text);
    fflush(stderr);
    pthread_mutex_unlock(&harness_log_lock);
}

static void harness_write(const char *name, const char *data, size_t len)
{
    char    tmp[4096], path[4096];
    FILE   *fp;

    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", harness_dir, name);
    snprintf(path, sizeof(path), "%s/%s", harness_dir, name);
    if ((fp = fopen(tmp, "w")) == NULL)
	msg_fatal("open %s: %m", tmp);
    if (fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
	msg_fatal("write %s: %m", tmp);
    if (rename(tmp, path) != 0)
	msg_fatal("rename %s: %m", tmp);
}

static void harness_store(MESSAGE *m)
{
    STR     env = STR_INIT;
    char    name[QUEUE_ID_MAX + 8];

    if (m->queue_id[0] == 0)
	queue_id_next(m->queue_id);
    str_printf(&env, "id %s\n", m->queue_id);
    str_printf(&env, "sender <%s>\n", m->sender);
    str_printf(&env, "client %s %s\n", m->client_name, m->client_addr);
    str_printf(&env, "helo %s\n", m->helo ? m->helo : "");
    str_printf(&env, "protocol %s\n", m->protocol);
    str_printf(&env, "envid %s\n", m->dsn_envid ? m->dsn_envid : "");
    str_printf(&env, "ret %d\n", m->dsn_ret);
    str_printf(&env, "body %d\n", m->body_type);
    str_printf(&env, "smtputf8 %d\n", m->smtputf8);
    str_printf(&env, "size %zu\n", m->content ? m->content->len : 0);
    for (size_t i = 0; i < m->nrcpt; i++)
	str_printf(&env, "rcpt <%s> notify=%d orcpt=%s\n", m->rcpt[i].address,
		   m->rcpt[i].dsn_notify, m->rcpt[i].dsn_orcpt ? m->rcpt[i].dsn_orcpt : "");
    snprintf(name, sizeof(name), "%s.msg", m->queue_id);
    harness_write(name, m->content ? m->content->data : "", m->content ? m->content->len : 0);
    snprintf(name, sizeof(name), "%s.env", m->queue_id);
    harness_write(name, STR_DATA(&env), STR_LEN(&env));
    str_release(&env);
}

static void *harness_worker(void *unused)
{
    msg_service_set("cleanup");
    for (;;) {
	JOB    *j;

	pthread_mutex_lock(&harness_lock);
	while (harness_head == NULL && !harness_stop)
	    pthread_cond_wait(&harness_cond, &harness_lock);
	if ((j = harness_head) == NULL) {
	    pthread_mutex_unlock(&harness_lock);
	    return NULL;
	}
	if ((harness_head = j->next) == NULL)
	    harness_tail = NULL;
	pthread_mutex_unlock(&harness_lock);
	if (harness_delay_ms > 0)
	    usleep((useconds_t) harness_delay_ms * 1000);
	if (harness_fail) {
	    char   *end;
	    long    code = strtol(harness_fail, &end, 10);

	    j->done(j->ctx, (int) code, *end ? end + 1 : "4.3.0 Error");
	} else {
	    char    id[QUEUE_ID_MAX];

	    harness_store(j->msg);
	    snprintf(id, sizeof(id), "%s", j->msg->queue_id);
	    j->done(j->ctx, 250, id);
	}
	message_free(j->msg);
	mem_free(j);
    }
}

static void harness_submit(MESSAGE *msg, smtpd_done_fn done, void *ctx)
{
    JOB    *j = MEM_NEW(JOB);

    j->msg = msg;
    j->done = done;
    j->ctx = ctx;
    pthread_mutex_lock(&harness_lock);
    if (harness_tail)
	harness_tail->next = j;
    else
	harness_head = j;
    harness_tail = j;
    pthread_cond_signal(&harness_cond);
    pthread_mutex_unlock(&harness_lock);
}

static int harness_etrn(void *ctx, const char *site)
{
    msg_info("harness: ETRN %s", site);
    return strcmp(site, "deny.example") == 0 ? 1 : 0;
}

static int harness_pressure(void *ctx)
{
    FILE   *fp = fopen(harness_pressure_file, "r");
    int     c = '0';

    if (fp) {
	c = fgetc(fp);
	fclose(fp);
    }
    return c >= '0' && c <= '2' ? c - '0' : 0;
}

static long harness_rss_kb(void)
{
    FILE   *fp = fopen("/proc/self/status", "r");
    char    line[256];
    long    kb = -1;

    if (fp == NULL)
	return -1;
    while (fgets(line, sizeof(line), fp))
	if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
	    break;
    fclose(fp);
    return kb;
}

static long long harness_allocated(void)
{
#ifdef HAVE_JEMALLOC
    uint64_t epoch = 1;
    size_t  sz = sizeof(epoch), allocated = 0, asz = sizeof(allocated);

    mallctl("epoch", &epoch, &sz, &epoch, sz);
    if (mallctl("stats.allocated", &allocated, &asz, NULL, 0) == 0)
	return (long long) allocated;
#endif
    return -1;
}

static void usage(void)
{
    msg_fatal("usage: smtpd_harness -d DIR [-c CONFIG_DIR] [-o name=value]... "
	      "[-t threads] [-b addr] [-n nofile] [-w] [-F 'code text'] [-D ms] [-P file]");
}

int     main(int argc, char **argv)
{
    STR     maincf = STR_INIT;
    STR     err = STR_INIT;
    const char *config_dir = NULL, *bind_addr = "127.0.0.1";
    int     threads = 2, ch, fd;
    long    nofile = 0;
    bool    wait_stdin = false;
    sigset_t sigs;
    pthread_t worker;
    struct sockaddr_in sin = {0};
    socklen_t slen = sizeof(sin);

    msg_progname_set("smtpd_harness");
    msg_sink_set(harness_sink);
    while ((ch = getopt(argc, argv, "d:c:o:t:b:n:wF:D:P:")) != -1) {
	switch (ch) {
	case 'd':
	    harness_dir = optarg;
	    break;
	case 'c':
	    config_dir = optarg;
	    break;
	case 'o':
	    if (strchr(optarg, '=') == NULL)
		usage();
	    str_append(&maincf, optarg, (size_t) (strchr(optarg, '=') - optarg));
	    str_printf(&maincf, " = %s\n", strchr(optarg, '=') + 1);
	    break;
	case 't':
	    threads = atoi(optarg);
	    break;
	case 'b':
	    bind_addr = optarg;
	    break;
	case 'n':
	    nofile = atol(optarg);
	    break;
	case 'w':
	    wait_stdin = true;
	    break;
	case 'F':
	    harness_fail = optarg;
	    break;
	case 'D':
	    harness_delay_ms = atoi(optarg);
	    break;
	case 'P':
	    harness_pressure_file = optarg;
	    break;
	default:
	    usage();
	}
    }
    if (harness_dir == NULL)
	usage();
    if (nofile > 0) {
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = (rlim_t) nofile > rl.rlim_max ? rl.rlim_max : (rlim_t) nofile;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
	    msg_warn("setrlimit RLIMIT_NOFILE %ld: %m", nofile);
    }

    /* main.cf: the file from -c, then the overrides (later lines win). */
    STR     text = STR_INIT;

    if (config_dir) {
	char    path[4096];
	FILE   *fp;
	char    buf[8192];
	size_t  n;

	snprintf(path, sizeof(path), "%s/main.cf", config_dir);
	if ((fp = fopen(path, "r")) == NULL)
	    msg_fatal("open %s: %m", path);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
	    str_append(&text, buf, n);
	fclose(fp);
	str_putc(&text, '\n');
    }
    str_append(&text, STR_DATA(&maincf), STR_LEN(&maincf));
    CONFIG *cf = config_load_text(config_dir ? config_dir : harness_dir,
				  STR_DATA(&text), STR_LEN(&text), NULL, 0,
				  CONFIG_NO_WARN, &err);

    if (cf == NULL)
	msg_fatal("configuration: %s", STR_DATA(&err));
    config_install(cf);
    str_release(&text);
    str_release(&maincf);

    SMTPD_CONFIG *scfg = smtpd_config_build(NULL, NULL, &err);

    if (scfg == NULL)
	msg_fatal("smtpd configuration: %s", STR_DATA(&err));

    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
	msg_fatal("socket: %m");
    sin.sin_family = AF_INET;
    if (inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1)
	msg_fatal("bad bind address: %s", bind_addr);
    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0 || listen(fd, 4096) < 0)
	msg_fatal("bind/listen %s: %m", bind_addr);
    /* Signals are taken by sigwait() below, in this thread only;
     * blocked before the port is printed, so a test may signal at once. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    getsockname(fd, (struct sockaddr *) &sin, &slen);
    printf("%d\n", ntohs(sin.sin_port));
    fflush(stdout);

    if (wait_stdin) {
	char    line[64];

	if (fgets(line, sizeof(line), stdin) == NULL)
	    msg_fatal("stdin closed before the start signal");
    }
    pthread_create(&worker, NULL, harness_worker, NULL);

    SMTPD_OPTS opts = {
	.listen_fds = &fd,.n_listen_fds = 1,.threads = threads,
	.config = scfg,.submit = harness_submit,
	.etrn = harness_etrn,
	.pressure = harness_pressure_file ? harness_pressure : NULL,
    };
    SMTPD  *smtpd = smtpd_start(&opts, &err);

    if (smtpd == NULL)
	msg_fatal("smtpd_start: %s", STR_DATA(&err));
    msg_info("harness: smtpd started with %d threads", threads);
    for (;;) {
	int     sig;

	if (sigwait(&sigs, &sig) != 0)
	    continue;
	if (sig == SIGUSR1) {
	    printf("sessions %zu rss_kb %ld allocated %lld\n", smtpd_session_count(smtpd),
		   harness_rss_kb(), harness_allocated());
	    fflush(stdout);
	    continue;
	}
	break;
    }
    smtpd_stop(smtpd);
    pthread_mutex_lock(&harness_lock);
    harness_stop = true;
    pthread_cond_broadcast(&harness_cond);
    pthread_mutex_unlock(&harness_lock);
    pthread_join(worker, NULL);
    smtpd_config_free(scfg);
    close(fd);
    str_release(&err);
    msg_info("harness: stopped");
    return 0;
}
