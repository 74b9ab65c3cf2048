/*
 * queue_ctl.h - the engine side of the queue commands (mailq/postqueue,
 * postsuper, postcat, qshape) and of the queue counters: control socket
 * requests served from qmgr's state.
 *
 * Requests (argv; options are key=value words before the IDs):
 *   flush				postqueue -f, postfix flush
 *   flush-site SITE			postqueue -s SITE
 *   queue-list fmt=p|j [after=ID] [queues=a,b] [domain=D] [long=1]
 *	one page, IDs ascending after the cursor; reply "more 0|1\n" then
 *	per message "ID SIZE LEN\n" and LEN bytes of formatted text
 *   queue-cat ID env | data OFFSET	postcat: "QUEUE SIZE\n" + envelope, or
 *					"QUEUE SIZE\n" + up to 512 KiB of content
 *   queue-op OP [queues=..] [domain=D] [after=ID] (all | ID...)
 *	OP hold, release, delete, requeue, flush. Reply lines "done ID",
 *	"missing ID", "invalid ID", "busy ID" (requeue of active mail), and
 *	for "all" a last line "more 0|1 ID" (at most QUEUE_CTL_OP_PAGE per
 *	request: the caller repeats with after=ID).
 *	Every change is a journal record, durable, before qmgr acts.
 *   queue-shape by=r|s minutes=N buckets=N [queues=..]   qshape (export form)
 *   queue-dest [domain]		per-destination status, tab separated
 *   queue-stats			queue and journal counters (text)
 *   queue-metrics			the same in Prometheus text format
 *
 * Threading: handlers run on the control thread and wait for the qmgr
 * thread (queue_service_control) and for the journal (journal_wait).
 * Diagnostics: the engine logs "ID: placed on hold", "ID: released from
 * hold", "ID: requeued" as postsuper does (qmgr logs "ID: removed").
 */
#ifndef SLUICE_QUEUE_CTL_H
#define SLUICE_QUEUE_CTL_H

#include "engine/str.h"
#include "queue/message.h"

#define QUEUE_CTL_LIST_PAGE	1000	/* messages per queue-list reply */
#define QUEUE_CTL_OP_PAGE	2000	/* messages per queue-op "all" reply */
#define QUEUE_CTL_CAT_CHUNK	(512 * 1024)

/* Registers the requests above; starts the metrics endpoint if
 * metrics_listen is set. Called from the queue component's start. */
void    queue_ctl_register(void);
/* Stops the metrics endpoint (before qmgr goes away). */
void    queue_ctl_stop(void);

/* Recipient outcome counters (sluice_recipients_total{status=...});
 * called from the queue service's outcome hook. Any thread. */
void    queue_ctl_count_outcome(enum rcpt_state state);

/* Prometheus text for the metrics endpoint (control thread or its own). */
void    queue_ctl_metrics(STR *out);

#endif
