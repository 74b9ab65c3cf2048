/*
 * param.h - the one parameter table, and typed access to the current values.
 *
 * Every parameter the engine knows is declared once, with the X-macro
 *   PARAM(ID, "name", TYPE, "default", unit, min, max, "short doc")
 * in one of the .def files below (each area owns its own file). From that
 * table come main.cf parsing and validation, `postconf -d`, and the generated
 * docs/parameters.md. Defaults are written as Postfix writes them in
 * `postconf -d` (e.g. "$myhostname", "300s", "10240000"); an empty default
 * that Postfix computes at run time (myhostname, mydomain) is computed by
 * param.c.
 *   TYPE  PARAM_STR | PARAM_INT | PARAM_BOOL | PARAM_TIME | PARAM_LIST
 *   unit  for PARAM_TIME: the default unit letter ('s','m','h','d','w');
 *         0 for other types
 *   min, max  bounds for PARAM_INT and PARAM_TIME (in seconds); 0,0 = none
 *         (any value >= 0); a max of 0 means no upper bound; values are
 *         never negative unless min < 0
 *   raw   unit 'r' on a PARAM_STR or PARAM_LIST marks a raw value: main.cf
 *         keeps its $names unexpanded because the user of the value expands
 *         them later (forward_path, mailbox_command: $home, $user, ...)
 *
 * Threading: the values live in an immutable snapshot. param_str() and
 * friends read the current snapshot; a reload installs a new one atomically
 * and old snapshots stay valid until exit (reloads are rare, so pointers
 * handed out never dangle). Until a configuration is installed (see
 * engine/config.h) the values are the table defaults. All functions here are
 * thread safe; the returned strings live until config_shutdown().
 *
 * Per transport and per service:
 *   param_transport_*(transport, P_DEFAULT_X) reads main.cf's <transport>_X
 *     when set, else default_X (e.g. "smtp" + DEFAULT_DESTINATION_CONCURRENCY_
 *     LIMIT -> smtp_destination_concurrency_limit). For a parameter without
 *     the default_ prefix the whole name is suffixed (relay_initial_
 *     destination_concurrency), and an smtp_X / lmtp_X parameter becomes
 *     <transport>_X.
 *   param_service_*(service, id) reads a parameter as the master.cf service
 *     sees it: its -o name=value overrides applied ($name expansion too).
 *     service is "name" or "name/type" (e.g. "submission/inet").
 */
#ifndef SLUICE_PARAM_H
#define SLUICE_PARAM_H

#include <stdbool.h>

enum param_type { PARAM_STR, PARAM_INT, PARAM_BOOL, PARAM_TIME, PARAM_LIST };

typedef enum param_id {
#define PARAM(id, name, type, dflt, unit, min, max, doc) P_##id,
#include "engine/params.def"
#include "queue/params.def"
#include "stages/params_receive.def"
#include "stages/params_delivery.def"
#undef PARAM
    P_COUNT
} param_id;

/* Values of the current configuration ($name expanded). */
const char *param_str(param_id id);
long long   param_int(param_id id);	/* PARAM_INT; PARAM_TIME in seconds */
bool        param_bool(param_id id);
const char *param_name(param_id id);

/* The table itself. */
enum param_type param_type(param_id id);
const char *param_default(param_id id);	/* as written in the .def file */
char        param_unit(param_id id);	/* PARAM_TIME unit, 'r' raw, or 0 */
long long   param_min(param_id id);
long long   param_max(param_id id);
const char *param_doc(param_id id);
bool        param_is_raw(param_id id);
param_id    param_lookup(const char *name);	/* P_COUNT when unknown */
const char *param_type_name(enum param_type type);	/* "int", "time", ... */

/* Per transport (qmgr, delivery agents) and per master.cf service. */
const char *param_transport_str(const char *transport, param_id default_id);
long long   param_transport_int(const char *transport, param_id default_id);
bool        param_transport_bool(const char *transport, param_id default_id);
const char *param_service_str(const char *service, param_id id);
long long   param_service_int(const char *service, param_id id);
bool        param_service_bool(const char *service, param_id id);
/* master.cf maxproc of a service ("-" -> default_process_limit); the
 * default_process_limit when the service is not in master.cf. */
int         param_service_maxproc(const char *service);

/*
 * Value syntax, shared by config loading and anyone who parses a value.
 * Each returns 0 on success, -1 with a short reason in *why (static text).
 */
int param_parse_int(const char *text, long long *value, const char **why);
int param_parse_bool(const char *text, bool *value, const char **why);
/* Duration with a default unit, result in seconds. */
int param_parse_time(const char *text, char unit, long long *secs, const char **why);
/* Sluice rate limits: "0" (off) or N/s, N/m, N/h; messages per second. */
int param_parse_rate(const char *text, double *per_second, const char **why);
/* Checks bounds and type-specific syntax of an expanded value. */
int param_check_value(param_id id, const char *text, const char **why);

/* Computed defaults (Postfix's): gethostname()-based myhostname; mydomain
 * from a hostname; mynetworks from a style ("host", "subnet", "class") and
 * inet_protocols, from the machine's interfaces (getifaddrs). Results are
 * mem_alloc'd. */
char *param_compute_myhostname(const char *mydomain_or_null);
char *param_compute_mydomain(const char *myhostname);
char *param_compute_mynetworks(const char *style, const char *inet_protocols);

#endif
