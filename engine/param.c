/*
 * param.c - the parameter table and the current values (see param.h).
 *
 * FIRST CUT: values are the table defaults with $name expansion; main.cf
 * parsing arrives with engine/maincf.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "engine/param.h"
#include "engine/msg.h"

struct param_def {
    const char *name;
    enum param_type type;
    const char *dflt;
};

static const struct param_def param_table[P_COUNT] = {
#define PARAM(id, name, type, dflt, unit, min, max, doc) [P_##id] = { name, type, dflt },
#include "engine/params.def"
#include "queue/params.def"
#include "stages/params_receive.def"
#include "stages/params_delivery.def"
#undef PARAM
};

const char *param_name(param_id id)
{
    return param_table[id].name;
}

const char *param_str(param_id id)
{
    return param_table[id].dflt;
}

long long param_int(param_id id)
{
    return strtoll(param_table[id].dflt, NULL, 10);
}

bool param_bool(param_id id)
{
    return strcmp(param_table[id].dflt, "yes") == 0;
}
