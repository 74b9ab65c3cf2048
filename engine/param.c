/*
 * param.c - the parameter table, value syntax, computed defaults, and the
 * current values (see param.h).
 *
 * The values themselves live in the installed CONFIG snapshot
 * (engine/config.c); every reader here is one atomic pointer load plus an
 * array index, so stages may call param_*() on hot paths.
 * Threading: everything here is thread safe. Diagnostics: the parse and
 * check functions return a reason; messages naming file and line are made
 * by config.c.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"
#include "engine/timeutil.h"

struct param_def {
    const char *name;
    enum param_type type;
    const char *dflt;
    char    unit;
    long long min;
    long long max;
    const char *doc;
};

static const struct param_def param_table[P_COUNT] = {
#define PARAM(id, name, type, dflt, unit, min, max, doc) \
    [P_##id] = { name, type, dflt, unit, min, max, doc },
#include "engine/params.def"
#include "queue/params.def"
#include "stages/params_receive.def"
#include "stages/params_delivery.def"
#undef PARAM
};

/* Names sorted once for param_lookup() (binary search). */
static param_id param_sorted[P_COUNT];
static int param_sorted_ready;		/* atomic */

/* ---------- the table ---------- */

const char *param_name(param_id id)
{
    return param_table[id].name;
}

enum param_type param_type(param_id id)
{
    return param_table[id].type;
}

const char *param_default(param_id id)
{
    return param_table[id].dflt;
}

char    param_unit(param_id id)
{
    return param_table[id].unit;
}

long long param_min(param_id id)
{
    return param_table[id].min;
}

long long param_max(param_id id)
{
    return param_table[id].max;
}

const char *param_doc(param_id id)
{
    return param_table[id].doc;
}

bool    param_is_raw(param_id id)
{
    return (param_table[id].type == PARAM_STR || param_table[id].type == PARAM_LIST)
	&& param_table[id].unit == 'r';
}

const char *param_type_name(enum param_type type)
{
    switch (type) {
    case PARAM_STR: return "string";
    case PARAM_INT: return "integer";
    case PARAM_BOOL: return "boolean";
    case PARAM_TIME: return "time";
    case PARAM_LIST: return "list";
    }
    return "?";
}

static int param_sort_cmp(const void *a, const void *b)
{
    return strcmp(param_table[*(const param_id *) a].name,
		  param_table[*(const param_id *) b].name);
}

param_id param_lookup(const char *name)
{
    size_t  lo = 0, hi = P_COUNT;

    if (!__atomic_load_n(&param_sorted_ready, __ATOMIC_ACQUIRE)) {
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&lock);
	if (!param_sorted_ready) {
	    for (int i = 0; i < P_COUNT; i++)
		param_sorted[i] = (param_id) i;
	    qsort(param_sorted, P_COUNT, sizeof(param_id), param_sort_cmp);
	    for (int i = 1; i < P_COUNT; i++)
		if (strcmp(param_table[param_sorted[i - 1]].name,
			   param_table[param_sorted[i]].name) == 0)
		    msg_panic("parameter %s is defined twice in the .def files",
			      param_table[param_sorted[i]].name);
	    __atomic_store_n(&param_sorted_ready, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&lock);
    }
    while (lo < hi) {
	size_t  mid = (lo + hi) / 2;
	int     cmp = strcmp(param_table[param_sorted[mid]].name, name);

	if (cmp == 0)
	    return param_sorted[mid];
	if (cmp < 0)
	    lo = mid + 1;
	else
	    hi = mid;
    }
    return P_COUNT;
}

/* ---------- value syntax ---------- */

static _Thread_local char param_why[160];

int     param_parse_int(const char *text, long long *value, const char **why)
{
    const char *cp = text;
    long long v = 0;
    bool    neg = false;

    if (*cp == '-' || *cp == '+')
	neg = *cp++ == '-';
    if (!isdigit((unsigned char) *cp)) {
	*why = "not a number";
	return -1;
    }
    for (; isdigit((unsigned char) *cp); cp++) {
	if (v > (LLONG_MAX - 9) / 10) {
	    *why = "number too large";
	    return -1;
	}
	v = v * 10 + (*cp - '0');
    }
    if (*cp) {
	*why = "not a number";
	return -1;
    }
    *value = neg ? -v : v;
    return 0;
}

int     param_parse_bool(const char *text, bool *value, const char **why)
{
    if (strcasecmp(text, "yes") == 0 || strcasecmp(text, "true") == 0) {
	*value = true;
	return 0;
    }
    if (strcasecmp(text, "no") == 0 || strcasecmp(text, "false") == 0) {
	*value = false;
	return 0;
    }
    *why = "not a boolean (use yes or no)";
    return -1;
}

int     param_parse_time(const char *text, char unit, long long *secs, const char **why)
{
    long long v;

    if (*text == '-') {
	*why = "negative time";
	return -1;
    }
    if ((v = time_parse_duration(text, unit ? unit : 's')) < 0) {
	*why = "bad time value (use a number with an optional unit s, m, h, d or w)";
	return -1;
    }
    *secs = v;
    return 0;
}

int     param_parse_rate(const char *text, double *per_second, const char **why)
{
    long long n;
    const char *slash = strchr(text, '/');
    char    num[32];
    double  div;

    if (slash == NULL) {
	if (param_parse_int(text, &n, why) == 0 && n == 0) {
	    *per_second = 0;
	    return 0;
	}
	*why = "bad rate (use 0, or N/s, N/m or N/h)";
	return -1;
    }
    if ((size_t) (slash - text) >= sizeof(num)) {
	*why = "bad rate (use 0, or N/s, N/m or N/h)";
	return -1;
    }
    memcpy(num, text, (size_t) (slash - text));
    num[slash - text] = 0;
    if (param_parse_int(num, &n, why) != 0 || n < 0) {
	*why = "bad rate (use 0, or N/s, N/m or N/h)";
	return -1;
    }
    if (strcmp(slash + 1, "s") == 0)
	div = 1;
    else if (strcmp(slash + 1, "m") == 0)
	div = 60;
    else if (strcmp(slash + 1, "h") == 0)
	div = 3600;
    else {
	*why = "bad rate unit (use N/s, N/m or N/h)";
	return -1;
    }
    *per_second = (double) n / div;
    return 0;
}

/* Postfix's feedback syntax: N, N/M or N/concurrency. */
static int param_check_feedback(const char *text, const char **why)
{
    const char *slash = strchr(text, '/');
    char    num[32];
    long long n;

    *why = "bad feedback value (use N, N/M or N/concurrency)";
    if (slash == NULL)
	return param_parse_int(text, &n, why) == 0 && n >= 0 ? 0 : -1;
    if ((size_t) (slash - text) >= sizeof(num))
	return -1;
    memcpy(num, text, (size_t) (slash - text));
    num[slash - text] = 0;
    if (param_parse_int(num, &n, why) != 0 || n < 0) {
	*why = "bad feedback value (use N, N/M or N/concurrency)";
	return -1;
    }
    if (strcmp(slash + 1, "concurrency") == 0)
	return 0;
    if (param_parse_int(slash + 1, &n, why) != 0 || n <= 0) {
	*why = "bad feedback value (use N, N/M or N/concurrency)";
	return -1;
    }
    return 0;
}

static int param_check_one_of(const char *text, const char *const *words, bool list,
			      const char **why)
{
    char  **items = list ? config_list_split(text, NULL) : NULL;
    const char *single[2] = {text, NULL};
    const char *const *check = list ? (const char *const *) items : single;
    int     ret = 0;

    for (; *check; check++) {
	const char *const *w;

	for (w = words; *w; w++)
	    if (strcasecmp(*check, *w) == 0)
		break;
	if (*w == NULL) {
	    snprintf(param_why, sizeof(param_why), "unknown value \"%.40s\"", *check);
	    *why = param_why;
	    ret = -1;
	    break;
	}
    }
    config_list_free(items);
    return ret;
}

static int param_check_range(param_id id, long long v, const char **why)
{
    long long min = param_table[id].min, max = param_table[id].max;

    if (v < min || (min >= 0 && v < 0)) {
	snprintf(param_why, sizeof(param_why), "out of range (minimum %lld%s)", min,
		 param_table[id].type == PARAM_TIME ? "s" : "");
	*why = param_why;
	return -1;
    }
    if (max > 0 && v > max) {
	snprintf(param_why, sizeof(param_why), "out of range (maximum %lld%s)", max,
		 param_table[id].type == PARAM_TIME ? "s" : "");
	*why = param_why;
	return -1;
    }
    return 0;
}

int     param_check_value(param_id id, const char *text, const char **why)
{
    static const char *const styles[] = {"host", "subnet", "class", NULL};
    static const char *const protocols[] = {"ipv4", "ipv6", "all", NULL};
    long long v;
    bool    b;
    double  rate;

    switch (param_table[id].type) {
    case PARAM_INT:
	if (param_parse_int(text, &v, why) != 0)
	    return -1;
	return param_check_range(id, v, why);
    case PARAM_TIME:
	if (param_parse_time(text, param_table[id].unit, &v, why) != 0)
	    return -1;
	return param_check_range(id, v, why);
    case PARAM_BOOL:
	return param_parse_bool(text, &b, why);
    case PARAM_STR:
    case PARAM_LIST:
	break;
    }
    switch (id) {
    case P_DEFAULT_DESTINATION_MESSAGE_RATE_LIMIT:
	return param_parse_rate(text, &rate, why);
    case P_MYNETWORKS_STYLE:
	return param_check_one_of(text, styles, false, why);
    case P_INET_PROTOCOLS:
	return param_check_one_of(text, protocols, true, why);
    case P_DEFAULT_DESTINATION_CONCURRENCY_POSITIVE_FEEDBACK:
    case P_DEFAULT_DESTINATION_CONCURRENCY_NEGATIVE_FEEDBACK:
	return param_check_feedback(text, why);
    default:
	return 0;
    }
}

/* ---------- computed defaults ---------- */

char   *param_compute_myhostname(const char *mydomain)
{
    char    host[256];
    STR     out = STR_INIT;

    if (gethostname(host, sizeof(host)) < 0 || host[0] == 0)
	strcpy(host, "localhost");
    host[sizeof(host) - 1] = 0;
    str_puts(&out, host);
    if (strchr(host, '.') == NULL)
	str_printf(&out, ".%s", mydomain && *mydomain ? mydomain : "localdomain");
    return str_steal(&out, NULL);
}

char   *param_compute_mydomain(const char *myhostname)
{
    const char *dot = strchr(myhostname, '.');

    /* Postfix: a domain needs at least two labels. */
    if (dot == NULL || strchr(dot + 1, '.') == NULL)
	return mem_strdup("localdomain");
    return mem_strdup(dot + 1);
}

static int param_prefix_len(const unsigned char *mask, size_t len)
{
    int     bits = 0;

    for (size_t i = 0; i < len; i++)
	for (int b = 7; b >= 0; b--)
	    if (mask[i] & (1 << b))
		bits++;
    return bits;
}

static void param_add_net(STR *out, int family, const unsigned char *addr,
			  int prefix, size_t alen)
{
    unsigned char net[16];
    char    text[INET6_ADDRSTRLEN];
    STR     item = STR_INIT;

    memcpy(net, addr, alen);
    for (size_t i = 0; i < alen; i++) {
	int     keep = prefix - (int) i * 8;

	if (keep <= 0)
	    net[i] = 0;
	else if (keep < 8)
	    net[i] &= (unsigned char) (0xff << (8 - keep));
    }
    inet_ntop(family, net, text, sizeof(text));
    if (family == AF_INET6)
	str_printf(&item, "[%s]/%d", text, prefix);
    else
	str_printf(&item, "%s/%d", text, prefix);
    /* No duplicates (several addresses on one subnet). */
    {
	const char *hay = STR_DATA(out), *hit;
	size_t  n = STR_LEN(&item);

	for (hit = strstr(hay, STR_DATA(&item)); hit; hit = strstr(hit + 1, STR_DATA(&item)))
	    if ((hit == hay || hit[-1] == ' ') && (hit[n] == 0 || hit[n] == ' '))
		break;
	if (hit == NULL) {
	    if (STR_LEN(out))
		str_putc(out, ' ');
	    str_append(out, STR_DATA(&item), n);
	}
    }
    str_release(&item);
}

char   *param_compute_mynetworks(const char *style, const char *protocols)
{
    struct ifaddrs *ifa_list, *ifa;
    STR     out = STR_INIT;
    bool    v4 = false, v6 = false;
    char  **proto = config_list_split(protocols, NULL);

    for (char **p = proto; *p; p++) {
	if (strcasecmp(*p, "all") == 0)
	    v4 = v6 = true;
	else if (strcasecmp(*p, "ipv4") == 0)
	    v4 = true;
	else if (strcasecmp(*p, "ipv6") == 0)
	    v6 = true;
    }
    config_list_free(proto);
    if (getifaddrs(&ifa_list) < 0) {
	msg_warn("getifaddrs: %m; mynetworks defaults to the loopback networks");
	str_puts(&out, v6 ? "127.0.0.0/8 [::1]/128" : "127.0.0.0/8");
	return str_steal(&out, NULL);
    }
    for (int pass = 0; pass < 2; pass++) {
	int     family = pass == 0 ? AF_INET : AF_INET6;

	if ((family == AF_INET && !v4) || (family == AF_INET6 && !v6))
	    continue;
	for (ifa = ifa_list; ifa; ifa = ifa->ifa_next) {
	    const unsigned char *addr, *mask;
	    size_t  alen;
	    int     prefix;

	    if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != family)
		continue;
	    if (family == AF_INET) {
		addr = (const unsigned char *) &((struct sockaddr_in *) ifa->ifa_addr)->sin_addr;
		mask = ifa->ifa_netmask ? (const unsigned char *)
		    &((struct sockaddr_in *) ifa->ifa_netmask)->sin_addr : NULL;
		alen = 4;
	    } else {
		addr = (const unsigned char *) &((struct sockaddr_in6 *) ifa->ifa_addr)->sin6_addr;
		mask = ifa->ifa_netmask ? (const unsigned char *)
		    &((struct sockaddr_in6 *) ifa->ifa_netmask)->sin6_addr : NULL;
		alen = 16;
	    }
	    prefix = mask ? param_prefix_len(mask, alen) : (int) alen * 8;
	    if (strcasecmp(style, "host") == 0)
		prefix = (int) alen * 8;
	    else if (strcasecmp(style, "class") == 0 && family == AF_INET)
		prefix = addr[0] < 128 ? 8 : addr[0] < 192 ? 16 : addr[0] < 224 ? 24 : prefix;
	    param_add_net(&out, family, addr, prefix, alen);
	}
    }
    freeifaddrs(ifa_list);
    str_reserve(&out, 1);
    return str_steal(&out, NULL);
}

/* ---------- the current values ---------- */

const char *param_str(param_id id)
{
    return config_str(config_current(), id);
}

long long param_int(param_id id)
{
    return config_int(config_current(), id);
}

bool    param_bool(param_id id)
{
    return config_bool(config_current(), id);
}

const char *param_transport_str(const char *transport, param_id id)
{
    return config_transport_str(config_current(), transport, id);
}

long long param_transport_int(const char *transport, param_id id)
{
    return config_transport_int(config_current(), transport, id);
}

bool    param_transport_bool(const char *transport, param_id id)
{
    return config_transport_bool(config_current(), transport, id);
}

const char *param_service_str(const char *service, param_id id)
{
    return config_service_str(config_current(), service, id);
}

long long param_service_int(const char *service, param_id id)
{
    return config_service_int(config_current(), service, id);
}

bool    param_service_bool(const char *service, param_id id)
{
    return config_service_bool(config_current(), service, id);
}

int     param_service_maxproc(const char *service)
{
    return config_service_maxproc(config_current(), service);
}
