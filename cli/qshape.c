/*
 * qshape.c - qshape(1): queued mail per domain and age.
 *
 * Usage: qshape [-c config_dir] [-s] [-j] [-b buckets] [-t minutes]
 *	[-n rows] [-D domain] [queue...]
 * Columns as Postfix's qshape: T (total), then age buckets of -t minutes
 * (default 5) doubling -b times (default 10): 5 10 20 ... 1280, 1280+.
 * Counts are live recipients per recipient domain, or with -s messages per
 * sender domain. Ages are from the message's arrival. Queues: default
 * incoming and active, as Postfix's; name others (deferred, hold, ...).
 * -j prints one JSON object: {"by", "bucket_minutes", "total", "domains"}.
 *
 * Running engine: computed by the engine in one pass over qmgr's messages
 * (queue-shape); stopped engine: from the journal, read-only.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/queue_cli.h"
#include "engine/msg.h"
#include "engine/timeutil.h"
#include "queue/queue_view.h"

typedef struct QS_OFF {
    QUEUE_VIEW_FILTER filter;
    QUEUE_VIEW_SHAPE *shape;
} QS_OFF;

static void qshape_offline_one(void *ctx, const QUEUE_VIEW_MSG *m)
{
    QS_OFF *o = ctx;

    if (queue_view_match(&o->filter, m))
	queue_view_shape_add(o->shape, m);
}

static int qshape_number(const char *opt, const char *arg, int min, int max)
{
    char   *end;
    long    v = strtol(arg, &end, 10);

    if (*arg == 0 || *end || v < min || v > max)
	msg_fatal("-%s: expected a number from %d to %d, got \"%s\"", opt, min, max, arg);
    return (int) v;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL, *domain = NULL;
    bool    by_sender = false, json = false;
    int     ch, minutes = 5, buckets = 10, rows = 0;
    unsigned mask = 0;
    QUEUE_VIEW_SHAPE shape;
    STR     out = STR_INIT, qtext = STR_INIT;

    msg_progname_set("qshape");
    while ((ch = getopt(argc, argv, "b:c:D:jn:st:v")) > 0) {
	switch (ch) {
	case 'b':
	    buckets = qshape_number("b", optarg, 2, QUEUE_VIEW_SHAPE_MAX_BUCKETS);
	    break;
	case 'c':
	    config_dir = optarg;
	    break;
	case 'D':
	    domain = optarg;
	    break;
	case 'j':
	    json = true;
	    break;
	case 'n':
	    rows = qshape_number("n", optarg, 1, 1000000);
	    break;
	case 's':
	    by_sender = true;
	    break;
	case 't':
	    minutes = qshape_number("t", optarg, 1, 1000000);
	    break;
	case 'v':
	    msg_verbose++;
	    break;
	default:
	    msg_fatal("usage: qshape [-s] [-j] [-b buckets] [-t minutes] [-n rows] "
		      "[-c config_dir] [-D domain] [queue...]");
	}
    }
    for (int i = optind; i < argc; i++) {
	long    m = queue_view_queue_mask(argv[i]);

	if (m < 0)
	    msg_fatal("unknown queue name: \"%s\"", argv[i]);
	mask |= (unsigned) m;
	if (m == 0)
	    mask |= 1u << QUEUE_VIEW_NQUEUES;
    }
    if (mask == 0)
	mask = (1u << QUEUE_VIEW_INCOMING) | (1u << QUEUE_VIEW_ACTIVE);
    queue_cli_config(config_dir);
    queue_view_mask_format(mask & QUEUE_VIEW_ALL_QUEUES, &qtext);
    if (queue_cli_online()) {
	STR     a[5] = {STR_INIT, STR_INIT, STR_INIT, STR_INIT, STR_INIT};
	char   *argv2[8];
	int     n = 0;

	str_printf(&a[0], "by=%s", by_sender ? "s" : "r");
	str_printf(&a[1], "minutes=%d", minutes);
	str_printf(&a[2], "buckets=%d", buckets);
	str_printf(&a[3], "queues=%s", STR_DATA(&qtext));
	argv2[n++] = "queue-shape";
	for (int i = 0; i < 4; i++)
	    argv2[n++] = a[i].data;
	if (domain) {
	    str_printf(&a[4], "domain=%s", domain);
	    argv2[n++] = a[4].data;
	}
	argv2[n] = NULL;
	if (queue_cli_call(n, argv2, &out) != 0)
	    msg_fatal("%s", STR_DATA(&out));
	if (queue_view_shape_import(&shape, STR_DATA(&out)) < 0)
	    msg_fatal("malformed reply from the mail system");
	for (int i = 0; i < 5; i++)
	    str_release(&a[i]);
    } else {
	QS_OFF  o = {{mask, domain}, &shape};
	JOURNAL *j = queue_cli_journal_open(false);

	queue_view_shape_init(&shape, by_sender, minutes, buckets, time_real_us());
	queue_cli_recover(j, qshape_offline_one, &o);
	if (j)
	    journal_close(j);
    }
    queue_view_shape_sort(&shape);
    str_reset(&out);
    if (json)
	queue_view_shape_json(&shape, &out);
    else
	queue_view_shape_table(&shape, &out, (size_t) rows);
    fputs(STR_DATA(&out), stdout);
    queue_view_shape_free(&shape);
    str_release(&out);
    str_release(&qtext);
    return fflush(stdout) != 0;
}
