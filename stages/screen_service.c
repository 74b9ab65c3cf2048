/*
 * screen_service.c - the pass smtpd services and postscreen, as one engine
 * component (see screen_service.h).
 *
 * A pass smtpd is an ordinary SMTPD without listeners: its sockets come
 * from postscreen through smtpd_adopt(). It submits to the cleanup stage
 * like the inet smtpd services (receive_submit) and takes ETRN the same
 * way. A postscreen service whose smtpd_service_name names no pass service
 * is a configuration error.
 *
 * Threading: start/stop on the engine's main thread; the hand-off runs on
 * the postscreen thread (smtpd_adopt is thread safe).
 * Diagnostics: start fails with the service and the reason.
 */
#include "config.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "queue/queue_service.h"
#include "stages/postscreen.h"
#include "stages/receive_service.h"
#include "stages/screen_service.h"
#include "stages/smtpd.h"

#define SS_MAX	16

typedef struct SS_PASS {
    char   *name;			/* master.cf service name */
    SMTPD  *smtpd;
    SMTPD_CONFIG *cfg;			/* smtpd_start() borrows it */
} SS_PASS;

static SS_PASS ss_pass[SS_MAX];
static size_t ss_npass;
static POSTSCREEN *ss_psc[SS_MAX];
static size_t ss_npsc;

/* A service's view of the parameters: main.cf plus its -o overrides. */
static const char *ss_param(void *ctx, const char *name)
{
    param_id id = param_lookup(name);

    return id == P_COUNT ? NULL : param_service_str((const char *) ctx, id);
}

static void ss_etrn_done(QMGR_CONTROL *ctl)
{
    mem_free((char *) ctl->site);
    mem_free(ctl);
}

static int ss_etrn(void *ctx, const char *site)
{
    QMGR_CONTROL *ctl = MEM_NEW(QMGR_CONTROL);

    (void) ctx;
    ctl->op = QMGR_CTL_FLUSH_SITE;
    ctl->site = mem_strdup(site[0] == '@' ? site + 1 : site);
    ctl->done = ss_etrn_done;
    queue_service_control_async(ctl);
    return 0;
}

static int ss_start_pass(const MASTERCF_SERVICE *svc, STR *why)
{
    STR     view = STR_INIT, err = STR_INIT;
    SMTPD_OPTS opts;
    SMTPD_CONFIG *cfg;
    long    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    SS_PASS *p = &ss_pass[ss_npass];

    if (ss_npass == SS_MAX) {
	str_printf(why, "too many pass services in master.cf");
	return -1;
    }
    str_printf(&view, "%s/pass", svc->name);
    if ((cfg = smtpd_config_build(ss_param, (void *) STR_DATA(&view), &err)) == NULL) {
	str_printf(why, "smtpd service %s: %s", svc->name, STR_DATA(&err));
	str_release(&view);
	str_release(&err);
	return -1;
    }
    memset(&opts, 0, sizeof(opts));
    opts.threads = svc->maxproc > 0 ? svc->maxproc : (int) (ncpu > 0 ? ncpu : 1);
    opts.config = cfg;
    opts.submit = receive_submit;
    opts.pressure = receive_pressure;
    opts.etrn = ss_etrn;
    if ((p->smtpd = smtpd_start(&opts, &err)) == NULL) {
	str_printf(why, "smtpd service %s: %s", svc->name, STR_DATA(&err));
	smtpd_config_free(cfg);
	str_release(&view);
	str_release(&err);
	return -1;
    }
    p->name = mem_strdup(svc->name);
    p->cfg = cfg;
    ss_npass++;
    str_release(&view);
    str_release(&err);
    return 0;
}

static int ss_handoff(void *ctx, int fd)
{
    return smtpd_adopt((SMTPD *) ctx, fd);
}

static int ss_start_postscreen(const MASTERCF_SERVICE *svc, STR *why)
{
    STR     view = STR_INIT, err = STR_INIT;
    POSTSCREEN_OPTS opts;
    const char *target;
    SMTPD  *smtpd = NULL;
    char  **addrs;
    size_t  n;
    int     rc = 0;

    if (ss_npsc == SS_MAX) {
	str_printf(why, "too many postscreen services in master.cf");
	return -1;
    }
    str_printf(&view, "%s/inet", svc->name);
    target = param_service_str(STR_DATA(&view), P_SMTPD_SERVICE_NAME);
    for (size_t i = 0; i < ss_npass; i++)
	if (strcmp(ss_pass[i].name, target) == 0)
	    smtpd = ss_pass[i].smtpd;
    if (smtpd == NULL) {
	str_printf(why, "postscreen service %s: no \"%s pass ... smtpd\" service in master.cf "
		   "(smtpd_service_name = %s)", svc->name, target, target);
	str_release(&view);
	return -1;
    }
    n = config_listen_addrs(svc->name, &addrs);
    memset(&opts, 0, sizeof(opts));
    opts.listen = (const char *const *) addrs;
    opts.n_listen = n;
    opts.service = STR_DATA(&view);
    opts.handoff = ss_handoff;
    opts.handoff_ctx = smtpd;
    if ((ss_psc[ss_npsc] = postscreen_start(&opts, &err)) == NULL) {
	str_printf(why, "postscreen service %s: %s", svc->name, STR_DATA(&err));
	rc = -1;
    } else
	ss_npsc++;
    for (size_t i = 0; i < n; i++)
	mem_free(addrs[i]);
    mem_free(addrs);
    str_release(&view);
    str_release(&err);
    return rc;
}

static void ss_stop(void);

static int ss_start(STR *why)
{
    const MASTERCF *mcf = config_mastercf(config_current());

    for (size_t i = 0; mcf && i < mcf->count; i++)
	if (strcmp(mcf->svc[i].type, "pass") == 0 && strcmp(mcf->svc[i].command, "smtpd") == 0
	    && ss_start_pass(&mcf->svc[i], why) < 0)
	    goto fail;
    for (size_t i = 0; mcf && i < mcf->count; i++)
	if (strcmp(mcf->svc[i].type, "inet") == 0
	    && strcmp(mcf->svc[i].command, "postscreen") == 0
	    && ss_start_postscreen(&mcf->svc[i], why) < 0)
	    goto fail;
    return 0;

fail:
    /* The engine stops only the components that started. */
    ss_stop();
    return -1;
}

static void ss_stop(void)
{
    /* postscreen first: no hand-off may reach a stopped smtpd. */
    while (ss_npsc > 0)
	postscreen_stop(ss_psc[--ss_npsc]);
    while (ss_npass > 0) {
	SS_PASS *p = &ss_pass[--ss_npass];

	smtpd_stop(p->smtpd);
	smtpd_config_free(p->cfg);
	p->cfg = NULL;
	mem_free(p->name);
	p->name = NULL;
	p->smtpd = NULL;
    }
}

const ENGINE_COMPONENT screen_component = {"screen", ss_start, ss_stop, NULL};
