/*
 * engine.h - the engine process: every stage in one process.
 *
 * engine_main() loads the configuration, opens the maillog, starts the
 * control socket and the components in order, then waits for signals in
 * the main thread: SIGHUP reloads (a bad new configuration is logged and
 * the old one kept), SIGTERM/SIGINT stop everything in reverse order.
 * Components are listed in engine.c; each has start/stop/reload hooks.
 *
 * Threading: signals are blocked in every thread but the main thread, which
 * only waits for them.
 */
#ifndef SLUICE_ENGINE_H
#define SLUICE_ENGINE_H

#include "engine/str.h"

typedef struct ENGINE_COMPONENT {
    const char *name;
    int   (*start)(STR *why);		/* 0 or -1 with the reason */
    void  (*stop)(void);
    void  (*reload)(void);		/* after a new configuration is installed */
} ENGINE_COMPONENT;

int  engine_main(const char *config_dir);
/* Loads and installs the configuration from dir; -1 with the reason. */
int  engine_config_load(const char *config_dir, STR *why);

#endif
