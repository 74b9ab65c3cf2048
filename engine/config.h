/*
 * engine/config.h - the configuration: main.cf and master.cf loaded into an
 * immutable snapshot, installed atomically, read through engine/param.h.
 *
 * NOTE: a file in engine/ that writes #include "config.h" (autoconf's) finds
 * this file first, so this file includes autoconf's <config.h> itself.
 * Elsewhere include it as "engine/config.h".
 *
 * Loading (config_load): reads DIR/main.cf (required) and DIR/master.cf
 * (optional; the built-in transport names are used without it), then
 *   - expands $name, ${name}, $(name), ${name?text}, ${name:text},
 *     ${name?{text}:{text}}, $$ (Postfix's rules; undefined names are empty;
 *     recursion and unterminated ${ are errors naming file, line, parameter);
 *   - computes the defaults Postfix computes (myhostname, mydomain,
 *     mynetworks, config_directory);
 *   - checks every value against its type and bounds (file, line, parameter
 *     and value in the message);
 *   - warns "path, line N: unused parameter: name=value" for a name that is
 *     neither in the table, nor <service>_<suffix> of a per-transport
 *     parameter (relay_destination_concurrency_limit), nor referenced as
 *     $name by another value (user-defined parameters, as in Postfix);
 *   - builds, for each master.cf service with -o overrides, its own view.
 * A load that fails returns NULL and every error line in err: the engine
 * refuses to start, or (config_reload) keeps the configuration it has.
 *
 * Threading: config_current() and every reader are lock-free (an atomic
 * pointer load); config_install()/config_reload() may run in any thread, one
 * at a time. Installed snapshots are never freed before config_shutdown(),
 * which must run when no other thread reads any more (at exit).
 */
#ifndef SLUICE_ENGINE_CONFIG_H
#define SLUICE_ENGINE_CONFIG_H

#include <config.h>		/* autoconf's; see the note above */

#include <stdbool.h>
#include <stddef.h>

#include "engine/param.h"
#include "engine/str.h"
#include "engine/maincf.h"
#include "engine/mastercf.h"

typedef struct CONFIG CONFIG;

/* The configuration directory, as every command chooses it: -c (opt_c,
 * may be NULL), else $MAIL_CONFIG, else the compiled-in SLUICE_SYSCONFDIR.
 * Returns one of those pointers. */
const char *config_dir_select(const char *opt_c);

#define CONFIG_LENIENT	(1<<0)	/* bad values and expansion errors are
				 * warnings, the raw text stays (postconf) */
#define CONFIG_NO_WARN	(1<<1)	/* no "unused parameter" warnings */

CONFIG *config_load(const char *config_dir, int flags, STR *err);
/* The same from text (tests; an embedded default configuration). The paths
 * in messages are DIR/main.cf and DIR/master.cf; mastercf may be NULL. */
CONFIG *config_load_text(const char *config_dir, const char *maincf, size_t maincf_len,
			 const char *mastercf, size_t mastercf_len, int flags, STR *err);
void    config_free(CONFIG *cfg);	/* only a snapshot never installed */

void    config_install(CONFIG *cfg);	/* takes ownership */
/* The installed snapshot, or the table defaults when none is. */
const CONFIG *config_current(void);
/* Load strictly and install; on failure log each error (msg_error), keep
 * the current configuration, and return -1. */
int     config_reload(const char *config_dir, STR *err);
void    config_shutdown(void);		/* frees every snapshot (exit) */

/* Reading one snapshot (postconf, postfix check; the engine uses param_*). */
const char *config_dir(const CONFIG *cfg);
const char *config_maincf_path(const CONFIG *cfg);
const MAINCF *config_maincf(const CONFIG *cfg);		/* NULL: defaults */
const MASTERCF *config_mastercf(const CONFIG *cfg);	/* NULL: none */
const char *config_str(const CONFIG *cfg, param_id id);	/* expanded */
long long config_int(const CONFIG *cfg, param_id id);
bool    config_bool(const CONFIG *cfg, param_id id);
/* main.cf's text for id (unexpanded), or NULL when not set there. */
const char *config_raw(const CONFIG *cfg, param_id id);
int     config_line(const CONFIG *cfg, param_id id);	/* 0: not set */
/* The default as `postconf -d` shows it (computed ones computed). */
const char *config_default(const CONFIG *cfg, param_id id);
const char *config_service_str(const CONFIG *cfg, const char *service, param_id id);
long long config_service_int(const CONFIG *cfg, const char *service, param_id id);
bool    config_service_bool(const CONFIG *cfg, const char *service, param_id id);
int     config_service_maxproc(const CONFIG *cfg, const char *service);
const char *config_transport_str(const CONFIG *cfg, const char *transport, param_id id);
long long config_transport_int(const CONFIG *cfg, const char *transport, param_id id);
bool    config_transport_bool(const CONFIG *cfg, const char *transport, param_id id);

/* What a name is: in the table (*id set), a per-transport name such as
 * relay_destination_concurrency_limit (*id = the parameter it overrides),
 * a user-defined name set in main.cf and used as $name, or unknown. */
enum config_name_kind { CONFIG_NAME_UNKNOWN, CONFIG_NAME_TABLE,
			CONFIG_NAME_TRANSPORT, CONFIG_NAME_USER };
enum config_name_kind config_name_kind(const CONFIG *cfg, const char *name, param_id *id);
/* The main.cf value (raw) of a name outside the table, or NULL. */
const char *config_user_raw(const CONFIG *cfg, const char *name);

/* Expand text against a snapshot (global view); 0, or -1 with err. */
int     config_expand(const CONFIG *cfg, const char *text, STR *out, STR *err);

/*
 * Lists: items separated by commas and/or whitespace; "{ ... }" keeps an
 * item whole (inline:{ a=b, c=d }). Returns a NULL-terminated mem_alloc'd
 * array of mem_alloc'd items (count may be NULL); free with config_list_free.
 */
char  **config_list_split(const char *value, size_t *count);
void    config_list_free(char **list);
/* The addresses an inet service listens on, from its master.cf name
 * ("host:port", "port", or a service name such as "smtp") and
 * inet_interfaces: "127.0.0.1:25", "[::1]:25", or "25" for all. Returns
 * the count; *out is a mem_alloc'd array of mem_alloc'd strings. */
size_t  config_listen_addrs(const char *service_name, char ***out);
/* Is word (case-insensitive) an item of a comma/whitespace list? */
bool    config_list_has(const char *list, const char *word);

#endif
