/*
 * engine.c - the engine process (see engine.h).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <pwd.h>
#include <sys/stat.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/ctl.h"
#include "engine/fsutil.h"
#include "engine/maillog.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/privsep.h"
#include "engine/stage.h"
#include "queue/queue_notice.h"
#include "queue/queue_service.h"
#include "stages/receive_service.h"
#include "stages/pickup.h"
#include "stages/qmqpd.h"
#include "stages/mailbox_exec.h"
#include "stages/screen_service.h"
#include "stages/verify.h"

/* The components, started in this order and stopped in reverse. */
static const ENGINE_COMPONENT *engine_components[] = {
    &queue_component,			/* delivery agents, journal, qmgr */
    &verify_component,			/* address verification (smtpd asks it) */
    &receive_component,			/* cleanup, smtpd */
    &queue_notice_component,		/* notices -> cleanup while it runs */
    &pickup_component,			/* maildrop -> cleanup */
    &qmqpd_component,			/* QMQP -> cleanup */
    &screen_component,			/* postscreen -> pass smtpd */
    NULL
};

static const char *engine_config_dir;

static int engine_stats(int argc, char **argv, STR *out, void *ctx)
{
    STAGE *stages[64];
    size_t n = stage_all(stages, 64);

    str_printf(out, "%-12s %7s %12s %12s %10s %10s %12s\n", "stage", "threads",
	       "events_in", "events_out", "inflight", "limit", "busy_ms");
    for (size_t i = 0; i < n; i++) {
	STAGE_STATS st;

	stage_stats(stages[i], &st);
	str_printf(out, "%-12s %7d %12llu %12llu %10llu %10llu %12llu\n", st.name, st.threads,
		   (unsigned long long) st.events_in, (unsigned long long) st.events_out,
		   (unsigned long long) st.inflight, (unsigned long long) st.inflight_limit,
		   (unsigned long long) (st.busy_ns / 1000000));
    }
    str_printf(out, "maillog_dropped %llu\n", (unsigned long long) maillog_dropped());
    str_printf(out, "heap_allocated %zu\n", mem_heap_allocated());
    return 0;
}

static int engine_status(int argc, char **argv, STR *out, void *ctx)
{
    str_printf(out, "running pid %ld config %s\n", (long) getpid(), engine_config_dir);
    return 0;
}

static void engine_reload(void)
{
    STR why = STR_INIT;

    if (engine_config_load(engine_config_dir, &why) < 0) {
	msg_warn("reload: %s; keeping the old configuration", STR_DATA(&why));
    } else {
	maillog_reopen();
	for (size_t i = 0; engine_components[i]; i++)
	    if (engine_components[i]->reload)
		engine_components[i]->reload();
	msg_info("reload: configuration %s", engine_config_dir);
    }
    str_release(&why);
}

static uid_t engine_mail_owner_uid(void)
{
    struct passwd *pw = getpwnam(param_str(P_MAIL_OWNER));

    return pw ? pw->pw_uid : (uid_t) -1;
}

int engine_main(const char *config_dir)
{
    STR why = STR_INIT;
    sigset_t sigs;
    size_t started = 0;
    int sig = 0;

    engine_config_dir = config_dir;
    if (engine_config_load(config_dir, &why) < 0)
	msg_fatal("%s", STR_DATA(&why));
    if (fs_mkdirs(param_str(P_QUEUE_DIRECTORY), 0755) < 0)
	msg_fatal("mkdir %s: %m", param_str(P_QUEUE_DIRECTORY));

    /*
     * Started as root: fork the privileged helper (binds, per-user delivery
     * steps) and continue as mail_owner. Before any thread exists, so the
     * helper is single-threaded and the drop covers the whole process.
     */
    mailbox_exec_register();
    if (privsep_start(&why) < 0)
	msg_fatal("privilege separation: %s", STR_DATA(&why));

    /* Every thread created from here on inherits the blocked mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    maillog_open(param_str(P_SYSLOG_NAME), param_str(P_MAILLOG_FILE));
    msg_service_set("master");
    ctl_register("status", engine_status, NULL);
    ctl_register("stats", engine_stats, NULL);

    /* Components register their control requests while they start. */
    for (; engine_components[started]; started++) {
	str_reset(&why);
	if (engine_components[started]->start(&why) < 0) {
	    msg_error("%s: %s", engine_components[started]->name, STR_DATA(&why));
	    break;
	}
    }
    if (engine_components[started] == NULL) {
	ctl_start(param_str(P_QUEUE_DIRECTORY), engine_mail_owner_uid());
	for (;;) {
	    if (sigwait(&sigs, &sig) != 0)
		continue;
	    if (sig == SIGHUP) {
		engine_reload();
		continue;
	    }
	    break;
	}
    }
    /* No control request may reach a component that is stopping. */
    ctl_stop();
    while (started-- > 0)
	engine_components[started]->stop();
    if (sig)
	msg_info("terminating on signal %d", sig);
    maillog_close();
    str_release(&why);
    return sig ? 0 : 1;
}

int engine_config_load(const char *config_dir, STR *why)
{
    STR err = STR_INIT;
    CONFIG *cfg = config_load(config_dir, 0, &err);

    if (cfg == NULL) {
	/* One error per line; the caller shows them as one message. */
	while (STR_LEN(&err) && err.data[STR_LEN(&err) - 1] == '\n')
	    str_truncate(&err, STR_LEN(&err) - 1);
	if (why)
	    str_set(why, STR_DATA(&err));
	str_release(&err);
	return -1;
    }
    config_install(cfg);
    str_release(&err);
    return 0;
}
