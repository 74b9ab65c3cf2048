/*
 * queue_service.h - the queue as one engine component: the journal and the
 * queue manager, wired together.
 *
 * Start: open the journal ($queue_directory/journal, fs backend, exclusive
 * lock), replay it into qmgr (deferred, held and corrupt states kept), then
 * run qmgr on its own thread. Every state change qmgr decides goes to the
 * journal first (outcome records; DONE, then "ID: removed").
 *
 * queue_service_submit() is the end of the receive path: it journals a
 * finished MESSAGE (group commit) and, once the record is durable, hands the
 * message to qmgr and reports the status to the caller -- that is when smtpd
 * may say "250 2.0.0 Ok: queued as ID" (DESIGN.md invariant 1).
 *
 * Threading: queue_service_submit and queue_service_qmgr_control from any
 * thread. The done callbacks run on the journal's writer thread and must not
 * block.
 */
#ifndef SLUICE_QUEUE_SERVICE_H
#define SLUICE_QUEUE_SERVICE_H

#include <stdbool.h>

#include "engine/engine.h"
#include "queue/message.h"
#include "queue/qmgr.h"

/* status 0, or an errno value (ENOSPC: "452 4.3.1 Insufficient system storage"). */
typedef void (*queue_submit_done_fn)(void *ctx, int status);

/* The running engine's journal (control records from the CLI handlers). */
struct JOURNAL *queue_service_journal(void);

/* Takes ownership of msg in every case. */
void queue_service_submit(MESSAGE *msg, bool hold, queue_submit_done_fn done, void *ctx);
/* Runs a qmgr control operation and waits for it (control thread, CLI). */
void queue_service_control(QMGR_CONTROL *ctl);
/* The same without waiting: ctl->done runs later on the qmgr thread. */
void queue_service_control_async(QMGR_CONTROL *ctl);

extern const ENGINE_COMPONENT queue_component;

#endif
