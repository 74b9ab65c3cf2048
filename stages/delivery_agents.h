/*
 * delivery_agents.h - the delivery agents of the running engine, one per
 * master.cf "unix" service that qmgr may use as a transport.
 *
 * The master.cf command picks the agent: smtp and lmtp (stages/smtp.c, one
 * agent per service, so relay and smtp keep separate connection caches and
 * -o overrides), error (bounce, or defer when the service is named
 * "retry", as Postfix's error(8) does), discard. A transport without an
 * agent is left without a dispatch function: qmgr defers its mail with
 * "mail transport unavailable".
 *
 * postfix reload: delivery_agents_reload() builds a new set of agents from
 * the reloaded configuration (smtp_* and lmtp_* settings, TLS, local,
 * virtual and pipe settings, master.cf -o); qmgr then asks
 * delivery_agents_setup() again for every transport, and
 * delivery_agents_retire() lets the old set finish what it was handed on
 * a thread of its own before it is freed.
 *
 * Threading: start/reload/retire/stop on the engine's main thread; setup on
 * the qmgr thread; the dispatch functions on the qmgr thread.
 */
#ifndef SLUICE_DELIVERY_AGENTS_H
#define SLUICE_DELIVERY_AGENTS_H

#include "engine/str.h"
#include "queue/qmgr.h"

int  delivery_agents_start(STR *why);
/* Fills tc->dispatch and tc->agent_ctx for a transport, if it has an agent. */
void delivery_agents_setup(const char *transport, QMGR_TRANSPORT_CONFIG *tc);
/* From now on requests are handed back at once, deferred and not logged:
 * the engine is stopping and the journal keeps them pending. */
void delivery_agents_quiesce(void);
/* Reload: a new set for the transports that qmgr sets up from now on. */
void delivery_agents_reload(void);
/* After qmgr has set its transports up again: the old set goes. */
void delivery_agents_retire(void);
/* Waits until every request handed to an agent is done, then frees them. */
void delivery_agents_stop(void);
/* The reason given to requests handed back by a quiescing engine. */
extern const char delivery_agents_shutdown_reason[];

#endif
