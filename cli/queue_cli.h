/*
 * queue_cli.h - what postqueue, postsuper, postcat and qshape share: the
 * configuration, the choice between the running engine (control socket)
 * and the journal (engine stopped), and reading the journal offline.
 *
 * Online when a master runs for queue_directory (master_running()); the
 * commands then only talk to the control socket. Offline they open the
 * journal themselves: read-only (shared lock) to look, writable (exclusive
 * lock, like the engine) to change. A busy lock with no master running
 * means another postsuper (or a stray engine) holds it: said plainly.
 *
 * Threading: single-threaded commands. Diagnostics: msg_fatal with the
 * command's name ("postsuper: fatal: ...").
 */
#ifndef SLUICE_QUEUE_CLI_H
#define SLUICE_QUEUE_CLI_H

#include <stdbool.h>

#include "engine/str.h"
#include "queue/journal.h"
#include "queue/queue_view.h"

/* Loads main.cf/master.cf from -c, $MAIL_CONFIG or the default; fatal on error. */
void    queue_cli_config(const char *config_dir_opt);
const char *queue_cli_queue_dir(void);
bool    queue_cli_online(void);
/* A control request; fatal when the engine cannot be reached. Returns the
 * status (0 ok, 1 the engine's error text is in out). */
int     queue_cli_call(int argc, char **argv, STR *out);
/* Offline journal; fatal with a clear reason when it cannot be opened. */
JOURNAL *queue_cli_journal_open(bool writable);

/* Every live message of the journal, as the stopped engine has it. */
typedef void (*queue_cli_msg_fn)(void *ctx, const QUEUE_VIEW_MSG *m);
void    queue_cli_recover(JOURNAL *j, queue_cli_msg_fn fn, void *ctx);

/* Numeric order of queue IDs (uppercase hex). */
int     queue_cli_id_cmp(const char *a, const char *b);

#endif
