/*
 * postfix_check.h - `postfix check` and `postfix set-permissions` beyond
 * main.cf/master.cf syntax (which postfix.c checks first).
 *
 * postfix_check_run() reads the installed configuration and reports, one
 * line each on stderr, in Postfix's words where Postfix has them:
 *   - command_directory, daemon_directory (and its master program),
 *     config_directory: exist; the configuration not group/other writable;
 *   - the queue directory layout (engine/privsep.h): owners, modes,
 *     "postfix/postfix-script: warning: not owned by postfix: PATH";
 *   - every lookup table named in main.cf (any parameter, user-defined
 *     ones too, but not alias_database, *_cache_map and the like, which
 *     are not opened for lookups) and in master.cf -o overrides: it opens
 *     ("postfix: fatal: open database /etc/postfix/x.db: No such file or
 *     directory"), and a hash:/gdbm: table is not older than its source
 *     ("postfix: warning: database /etc/postfix/x.db is older than source
 *     file /etc/postfix/x").
 * With fix (set-permissions) the queue layout is put right first, as root
 * does it (chown, chmod), and each change is printed.
 * Returns the exit status: 0 when nothing is wrong, 1 otherwise. Missing
 * queue directories are created either way, as Postfix's check does.
 */
#ifndef SLUICE_POSTFIX_CHECK_H
#define SLUICE_POSTFIX_CHECK_H

#include <stdbool.h>

int     postfix_check_run(const char *config_dir, bool fix);

#endif
