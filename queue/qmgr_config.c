/*
 * qmgr_config.c - the queue manager's settings: Postfix's defaults, and the
 * parsers for the main.cf forms that are qmgr's own (concurrency feedback
 * "N", "N/M", "N/concurrency"; message rate "N/s", "N/m", "N/h", "N/d").
 *
 * The engine maps main.cf / master.cf onto a QMGR_CONFIG once (and per
 * transport through the transport_config hook); nothing here runs in the
 * scheduling path.
 *
 * Threading: pure functions. Diagnostics: parsers return -1, the caller
 * names the parameter in its error.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/timeutil.h"
#include "queue/qmgr.h"

#define SEC	TIME_NS_PER_SEC

void qmgr_config_defaults(QMGR_CONFIG *cfg)
{
    QMGR_TRANSPORT_CONFIG *tc = &cfg->transport_defaults;

    memset(cfg, 0, sizeof(*cfg));
    tc->dest_concurrency_limit = 20;		/* default_destination_concurrency_limit */
    tc->initial_dest_concurrency = 5;		/* initial_destination_concurrency */
    tc->pos_feedback.base = 1;			/* ..._positive_feedback = 1 */
    tc->neg_feedback.base = 1;			/* ..._negative_feedback = 1 */
    tc->dest_failed_cohort_limit = 1;		/* ..._failed_cohort_limit = 1 */
    tc->dest_recipient_limit = 50;		/* default_destination_recipient_limit */
    tc->dest_rate_delay_ns = 0;			/* default_destination_rate_delay = 0s */
    tc->process_limit = 100;			/* default_process_limit */
    tc->dest_message_rate.count = 0;		/* extension: off */
    tc->dest_connection_limit = 0;		/* extension: off */
    tc->delivery_slot_cost = 5;			/* default_delivery_slot_cost */
    tc->delivery_slot_loan = 3;			/* default_delivery_slot_loan */
    tc->delivery_slot_discount = 50;		/* default_delivery_slot_discount */
    tc->minimum_delivery_slots = 3;		/* default_minimum_delivery_slots */

    cfg->transport_retry_time_ns = 60 * SEC;
    cfg->queue_run_delay_ns = 300 * SEC;
    cfg->minimal_backoff_ns = 300 * SEC;
    cfg->maximal_backoff_ns = 4000 * SEC;
    cfg->maximal_queue_lifetime_ns = 5 * 86400 * SEC;
    cfg->bounce_queue_lifetime_ns = 5 * 86400 * SEC;
    cfg->delay_warning_time_ns = 0;
    cfg->backoff_jitter_percent = 10;
    cfg->message_active_limit = 20000;
    cfg->message_recipient_limit = 20000;
}

/* A number as strtod reads it, with nothing but blanks around it. */
static int qmgr_config_number(const char *s, const char *end, double *out)
{
    char    buf[64];
    char   *stop;
    size_t  len;

    while (s < end && isspace((unsigned char) *s))
	s++;
    while (end > s && isspace((unsigned char) end[-1]))
	end--;
    len = (size_t) (end - s);
    if (len == 0 || len >= sizeof(buf))
	return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (!isdigit((unsigned char) buf[0]) && buf[0] != '.')
	return -1;			/* no sign, no "inf", no "nan" */
    errno = 0;
    *out = strtod(buf, &stop);
    if (errno != 0 || *stop != 0)
	return -1;
    return 0;
}

int qmgr_feedback_parse(const char *text, QMGR_FEEDBACK *out)
{
    const char *slash;
    const char *end;
    double  num;
    double  den;
    QMGR_FEEDBACK fb = {0};

    if (text == NULL)
	return -1;
    end = text + strlen(text);
    slash = strchr(text, '/');
    if (slash == NULL) {
	if (qmgr_config_number(text, end, &num) < 0)
	    return -1;
	fb.base = num;
    } else {
	const char *d = slash + 1;

	if (qmgr_config_number(text, slash, &num) < 0)
	    return -1;
	while (*d && isspace((unsigned char) *d))
	    d++;
	if (strncasecmp(d, "concurrency", 11) == 0) {
	    const char *t = d + 11;

	    while (*t && isspace((unsigned char) *t))
		t++;
	    if (*t)
		return -1;
	    fb.base = num;
	    fb.per_concurrency = true;
	} else {
	    if (qmgr_config_number(slash + 1, end, &den) < 0 || den < 1e-9)
		return -1;
	    fb.base = num / den;
	}
    }
    /* Postfix accepts 0..1; 0 would freeze the window, so ask for > 0. */
    if (!(fb.base > 0 && fb.base <= 1))
	return -1;
    *out = fb;
    return 0;
}

int qmgr_rate_parse(const char *text, QMGR_RATE *out)
{
    const char *p = text;
    unsigned long long n = 0;
    int64_t period;

    if (text == NULL)
	return -1;
    while (isspace((unsigned char) *p))
	p++;
    if (!isdigit((unsigned char) *p))
	return -1;
    while (isdigit((unsigned char) *p)) {
	n = n * 10 + (unsigned long long) (*p - '0');
	if (n > 1000000000ULL)
	    return -1;
	p++;
    }
    while (isspace((unsigned char) *p))
	p++;
    if (*p == 0) {
	if (n != 0)
	    return -1;			/* a bare number other than 0 has no unit */
	out->count = 0;
	out->period_ns = 0;
	out->burst = 0;
	return 0;
    }
    if (*p++ != '/')
	return -1;
    while (isspace((unsigned char) *p))
	p++;
    switch (tolower((unsigned char) *p)) {
    case 's':
	period = SEC;
	break;
    case 'm':
	period = 60 * SEC;
	break;
    case 'h':
	period = 3600 * SEC;
	break;
    case 'd':
	period = 86400 * SEC;
	break;
    default:
	return -1;
    }
    p++;
    while (isspace((unsigned char) *p))
	p++;
    if (*p)
	return -1;
    out->count = (uint32_t) n;
    out->period_ns = n ? period : 0;
    out->burst = 0;
    return 0;
}
