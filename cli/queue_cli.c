/*
 * queue_cli.c - shared plumbing of the queue commands (see queue_cli.h).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cli/queue_cli.h"
#include "engine/config.h"
#include "engine/ctl.h"
#include "engine/engine.h"
#include "engine/master.h"
#include "engine/msg.h"
#include "engine/param.h"

void queue_cli_config(const char *config_dir_opt)
{
    STR     why = STR_INIT;

    if (engine_config_load(config_dir_select(config_dir_opt), &why) < 0)
	msg_fatal("%s", STR_DATA(&why));
    str_release(&why);
}

const char *queue_cli_queue_dir(void)
{
    return param_str(P_QUEUE_DIRECTORY);
}

bool queue_cli_online(void)
{
    return master_running(queue_cli_queue_dir()) != 0;
}

int queue_cli_call(int argc, char **argv, STR *out)
{
    int     rc = ctl_call(queue_cli_queue_dir(), argc, argv, out);

    if (rc < 0)
	msg_fatal("cannot reach the mail system: %s", STR_DATA(out));
    return rc;
}

JOURNAL *queue_cli_journal_open(bool writable)
{
    JOURNAL_OPTIONS opts;
    JOURNAL *j;

    journal_options_default(&opts);
    if (!writable)
	opts.flags |= JOURNAL_RDONLY;
    if ((j = journal_open(&journal_backend_fs, NULL, &opts)) != NULL)
	return j;
    if (errno == EWOULDBLOCK) {
	if (queue_cli_online())
	    msg_fatal("the mail system started meanwhile; try again");
	msg_fatal("the queue in %s/journal is locked by another process (another postsuper, "
		  "or an engine whose master died), but no master is running; try again later",
		  queue_cli_queue_dir());
    }
    if (errno == ENOENT && !writable)
	return NULL;			/* never started: an empty queue */
    msg_fatal("open the queue in %s/journal: %m", queue_cli_queue_dir());
}

typedef struct QUEUE_CLI_WALK {
    queue_cli_msg_fn fn;
    void   *ctx;
} QUEUE_CLI_WALK;

static void queue_cli_one(void *ctx, JOURNAL_RECOVERED *item)
{
    QUEUE_CLI_WALK *w = ctx;
    QUEUE_VIEW_MSG m;

    m.msg = item->msg;
    m.size = item->msg->content ? item->msg->content->len : 0;
    m.reason = item->reason;
    if (item->corrupt)
	m.queue = QUEUE_VIEW_CORRUPT;
    else if (item->hold)
	m.queue = QUEUE_VIEW_HOLD;
    else {
	m.queue = QUEUE_VIEW_INCOMING;
	for (size_t i = 0; i < item->msg->nrcpt; i++)
	    if (item->msg->rcpt[i].state == RCPT_DEFERRED
		|| (item->next_retry && item->next_retry[i] > 0))
		m.queue = QUEUE_VIEW_DEFERRED;
    }
    w->fn(w->ctx, &m);
    message_free(item->msg);
}

void queue_cli_recover(JOURNAL *j, queue_cli_msg_fn fn, void *ctx)
{
    QUEUE_CLI_WALK w = {fn, ctx};
    JOURNAL_RECOVERY_STATS rs;

    if (j == NULL)
	return;
    memset(&rs, 0, sizeof(rs));
    if (journal_recover(j, queue_cli_one, &w, &rs) < 0)
	msg_fatal("read the queue in %s/journal: %m", queue_cli_queue_dir());
}

int queue_cli_id_cmp(const char *a, const char *b)
{
    size_t  la = strlen(a), lb = strlen(b);

    if (la != lb)
	return la < lb ? -1 : 1;
    return strcmp(a, b);
}
