/*
 * receive_service.h - the receive side as one engine component: the
 * cleanup stage (cleanup + trivial-rewrite, then the journal through
 * queue_service_submit) and one smtpd per master.cf "inet ... smtpd"
 * service, each with that service's -o overrides.
 *
 * Threading: start/stop from the engine's main thread.
 */
#ifndef SLUICE_RECEIVE_SERVICE_H
#define SLUICE_RECEIVE_SERVICE_H

#include "engine/engine.h"
#include "queue/message.h"
#include "stages/cleanup.h"
#include "stages/smtpd.h"

/* The entry of the cleanup stage: smtpd's submit function, and pickup's
 * and qmqpd's later. Takes ownership of msg; done(ctx, code, text) once. */
void receive_submit(MESSAGE *msg, smtpd_done_fn done, void *done_ctx);
/* The same with what the submitter knows (pickup: uid, sendmail -F, -t);
 * info is copied, fullname included. */
void receive_submit_info(MESSAGE *msg, const CLEANUP_INFO *info, smtpd_done_fn done,
			 void *done_ctx);
/* The same for the engine's own mail (bounce notices), from any thread, with
 * extra CLEANUP_FLAG_* bits. Returns -1 (msg still the caller's, done never
 * called) while the cleanup stage is not running. */
int  receive_submit_internal(MESSAGE *msg, int cleanup_flags, smtpd_done_fn done,
			     void *done_ctx);

/* smtpd's back-pressure hook: how saturated the cleanup stage is
 * (SMTPD_PRESSURE_*); for every smtpd that feeds receive_submit(). */
int  receive_pressure(void *ctx);

extern const ENGINE_COMPONENT receive_component;

#endif
