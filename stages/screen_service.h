/*
 * screen_service.h - postscreen as an engine component: the master.cf
 * "pass" smtpd services, and postscreen on every "inet ... postscreen"
 * service, which hands the clients it lets through to the pass service
 * named by smtpd_service_name.
 *
 * (verify is its own component, stages/verify.h. tlsmgr needs none: see
 * stages/tlsmgr.h. proxymap neither: every
 * stage already reads its tables through the one shared, RCU-swapped table
 * layer, engine/dict.h.)
 *
 * Start after the receive component (its cleanup stage takes the pass
 * smtpd's mail) and stop before it. Threading: start/stop from the
 * engine's main thread.
 */
#ifndef SLUICE_SCREEN_SERVICE_H
#define SLUICE_SCREEN_SERVICE_H

#include "engine/engine.h"

extern const ENGINE_COMPONENT screen_component;

#endif
