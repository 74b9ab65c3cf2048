/*
 * master.h - the supervisor (Postfix's master(8)).
 *
 * master_main() takes the pid file lock ($queue_directory/pid/master.pid),
 * optionally detaches, and runs the engine as a child process (fork + exec of
 * this same program with -E), restarting it with a growing delay when it
 * dies unexpectedly. SIGHUP is passed on (reload), SIGTERM and SIGINT stop
 * the engine cleanly, then the master exits.
 *
 * Single-threaded. Diagnostics go to the maillog.
 */
#ifndef SLUICE_MASTER_H
#define SLUICE_MASTER_H

#include <sys/types.h>

#define MASTER_PID_FILE	"pid/master.pid"

/* The master's pid when one runs for queue_dir (its lock is held), else 0. */
pid_t master_running(const char *queue_dir);
int   master_main(const char *config_dir, int detach);

#endif
