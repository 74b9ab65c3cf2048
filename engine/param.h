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
 *
 * Threading: the values live in an immutable snapshot. param_str() and
 * friends read the current snapshot; a reload installs a new one atomically
 * and old snapshots stay valid until exit (reloads are rare, so pointers
 * handed out never dangle).
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

#endif
