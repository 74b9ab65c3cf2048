/*
 * postconf.c - show and edit the configuration, as Postfix's postconf(1).
 *
 *   postconf [-c dir] [-n | -d] [-h] [-x] [name ...]   show parameters
 *   postconf [-c dir] -e name=value ...                edit main.cf
 *   postconf [-c dir] name=value ...                   the same
 *   postconf [-c dir] -X name ...                      remove entries
 *   postconf [-c dir] -# name ...                      comment entries out
 *   postconf [-c dir] -M [name[/type] ...]             show master.cf
 *   postconf --doc-markdown                            docs/parameters.md
 * Output is sorted by name, "name = value" (Postfix writes "name =" for an
 * empty value); values are shown unexpanded unless -x.
 * Diagnostics: "postconf: warning: name: unknown parameter" (exit 0, as
 * Postfix); a main.cf or master.cf syntax error or a failed edit is fatal
 * (exit 1). The configuration directory: -c, else MAIL_CONFIG, else the
 * compiled-in one.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/maincf.h"
#include "engine/mastercf.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"

#define PC_DEFAULTS	(1<<0)	/* -d */
#define PC_NONDEFAULT	(1<<1)	/* -n */
#define PC_NONAME	(1<<2)	/* -h */
#define PC_EXPAND	(1<<3)	/* -x */

static void postconf_usage(void)
{
    msg_fatal("usage: postconf [-c config_dir] [-d (defaults)] [-e (edit)] "
	      "[-h (no names)] [-M (master.cf)] [-n (non-default parameters)] "
	      "[-x (expand parameter values)] [-X (remove)] [-# (comment out)] "
	      "[parameter[=value] ...]");
}

static void postconf_print(const char *name, const char *value, int flags)
{
    if (flags & PC_NONAME)
	printf("%s\n", value);
    else if (*value)
	printf("%s = %s\n", name, value);
    else
	printf("%s =\n", name);
}

static int postconf_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The value of a name as the flags ask; NULL when -n and not set. */
static const char *postconf_value(const CONFIG *cfg, const char *name, int flags,
				  STR *buf, bool *unknown)
{
    param_id id;
    enum config_name_kind kind = config_name_kind(cfg, name, &id);
    const char *raw;

    *unknown = false;
    str_reset(buf);
    switch (kind) {
    case CONFIG_NAME_TABLE:
	if (flags & PC_DEFAULTS)
	    raw = config_default(cfg, id);
	else if ((raw = config_raw(cfg, id)) == NULL) {
	    if (flags & PC_NONDEFAULT)
		return NULL;
	    raw = config_default(cfg, id);
	}
	if ((flags & PC_EXPAND) && !param_is_raw(id)) {
	    if ((flags & PC_DEFAULTS) == 0)
		return config_str(cfg, id);
	    (void) config_expand(cfg, raw, buf, NULL);
	    return STR_DATA(buf);
	}
	return raw;
    case CONFIG_NAME_TRANSPORT:
	raw = (flags & PC_DEFAULTS) ? NULL : config_user_raw(cfg, name);
	if (raw == NULL) {
	    if (flags & PC_NONDEFAULT)
		return NULL;
	    str_printf(buf, "$%s", param_name(id));
	    raw = STR_DATA(buf);
	}
	if (flags & PC_EXPAND) {
	    STR     tmp = STR_INIT;

	    (void) config_expand(cfg, raw, &tmp, NULL);
	    str_reset(buf);
	    str_append(buf, STR_DATA(&tmp), STR_LEN(&tmp));
	    str_release(&tmp);
	    return STR_DATA(buf);
	}
	return raw;
    case CONFIG_NAME_USER:
	if (flags & PC_DEFAULTS) {
	    *unknown = true;
	    return NULL;
	}
	raw = config_user_raw(cfg, name);
	if (flags & PC_EXPAND) {
	    (void) config_expand(cfg, raw, buf, NULL);
	    return STR_DATA(buf);
	}
	return raw;
    default:
	*unknown = true;
	return NULL;
    }
}

static int postconf_show(const char *dir, int flags, char **names, int nnames)
{
    STR     err = STR_INIT, buf = STR_INIT;
    CONFIG *cfg;
    bool    unknown;

    if (flags & PC_DEFAULTS)
	cfg = config_load_text(dir, "", 0, NULL, 0, CONFIG_LENIENT | CONFIG_NO_WARN, &err);
    else
	cfg = config_load(dir, CONFIG_LENIENT | (nnames ? CONFIG_NO_WARN : 0), &err);
    if (cfg == NULL) {
	str_truncate(&err, STR_LEN(&err) && STR_DATA(&err)[STR_LEN(&err) - 1] == '\n'
		     ? STR_LEN(&err) - 1 : STR_LEN(&err));
	msg_fatal("%s", STR_DATA(&err));
    }
    if (nnames > 0) {
	for (int i = 0; i < nnames; i++) {
	    const char *value = postconf_value(cfg, names[i], flags, &buf, &unknown);

	    if (unknown) {
		fflush(stdout);
		msg_warn("%s: unknown parameter", names[i]);
	    } else if (value) {
		postconf_print(names[i], value, flags);
	    }
	}
    } else {
	const MAINCF *mcf = config_maincf(cfg);
	size_t  n = 0, cap = P_COUNT + (mcf ? mcf->count : 0);
	const char **all = mem_calloc(cap + 1, sizeof(char *));

	for (int id = 0; id < P_COUNT; id++)
	    all[n++] = param_name((param_id) id);
	/* Names outside the table that main.cf sets (per transport, user). */
	for (size_t i = 0; mcf && !(flags & PC_DEFAULTS) && i < mcf->count; i++) {
	    bool    dup = false;

	    if (param_lookup(mcf->entry[i].name) != P_COUNT)
		continue;
	    for (size_t j = P_COUNT; j < n; j++)
		if (strcmp(all[j], mcf->entry[i].name) == 0)
		    dup = true;
	    if (!dup)
		all[n++] = mcf->entry[i].name;
	}
	qsort(all, n, sizeof(char *), postconf_name_cmp);
	for (size_t i = 0; i < n; i++) {
	    const char *value = postconf_value(cfg, all[i], flags, &buf, &unknown);

	    if (value == NULL && !unknown && (flags & PC_NONDEFAULT))
		continue;
	    if (value == NULL)		/* unused main.cf name: show it as set */
		value = config_user_raw(cfg, all[i]);
	    if (value)
		postconf_print(all[i], value, flags);
	}
	mem_free(all);
    }
    config_free(cfg);
    str_release(&err);
    str_release(&buf);
    return 0;
}

static int postconf_master(const char *dir, char **names, int nnames)
{
    STR     path = STR_INIT, err = STR_INIT, line = STR_INIT;
    MASTERCF *mcf;

    str_printf(&path, "%s/master.cf", dir);
    if ((mcf = mastercf_read(STR_DATA(&path), &err)) == NULL) {
	str_truncate(&err, STR_LEN(&err) - (STR_LEN(&err) && STR_DATA(&err)[STR_LEN(&err) - 1] == '\n'));
	msg_fatal("%s", STR_DATA(&err));
    }
    for (size_t i = 0; i < mcf->count; i++) {
	const MASTERCF_SERVICE *svc = &mcf->svc[i];
	bool    want = nnames == 0;

	for (int j = 0; j < nnames && !want; j++) {
	    const char *slash = strchr(names[j], '/');
	    size_t  nlen = slash ? (size_t) (slash - names[j]) : strlen(names[j]);

	    want = strlen(svc->name) == nlen && strncmp(svc->name, names[j], nlen) == 0
		&& (slash == NULL || strcmp(slash + 1, svc->type) == 0);
	}
	if (!want)
	    continue;
	str_reset(&line);
	mastercf_format(svc, &line);
	printf("%s\n", STR_DATA(&line));
    }
    for (int j = 0; j < nnames; j++) {
	const char *slash = strchr(names[j], '/');
	char   *nm = mem_strndup(names[j], slash ? (size_t) (slash - names[j]) : strlen(names[j]));

	if (mastercf_find(mcf, nm, slash ? slash + 1 : NULL) == NULL) {
	    fflush(stdout);
	    msg_warn("%s: unknown service", names[j]);
	}
	mem_free(nm);
    }
    mastercf_free(mcf);
    str_release(&path);
    str_release(&err);
    str_release(&line);
    return 0;
}

static int postconf_edit(const char *dir, enum maincf_edit_op op, char **args, int nargs)
{
    MAINCF_EDIT *edit = mem_calloc((size_t) nargs + 1, sizeof(*edit));
    char  **names = mem_calloc((size_t) nargs + 1, sizeof(char *));
    STR     path = STR_INIT, err = STR_INIT;

    for (int i = 0; i < nargs; i++) {
	if (op == MAINCF_SET) {
	    char   *eq = strchr(args[i], '=');
	    char   *ns = args[i], *ne, *vs, *ve;

	    if (eq == NULL)
		msg_fatal("edit syntax error: missing '=' in \"%s\"", args[i]);
	    ne = eq;
	    while (ns < ne && (*ns == ' ' || *ns == '\t'))
		ns++;
	    while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t'))
		ne--;
	    vs = eq + 1;
	    ve = eq + strlen(eq);
	    while (*vs == ' ' || *vs == '\t')
		vs++;
	    while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	    if (ns == ne || strcspn(ns, " \t") < (size_t) (ne - ns))
		msg_fatal("edit syntax error: bad parameter name in \"%s\"", args[i]);
	    names[i] = mem_strndup(ns, (size_t) (ne - ns));
	    edit[i].name = names[i];
	    edit[i].value = mem_strndup(vs, (size_t) (ve - vs));
	} else {
	    if (strchr(args[i], '='))
		msg_fatal("-%c accepts names only, not \"%s\"",
			  op == MAINCF_REMOVE ? 'X' : '#', args[i]);
	    edit[i].name = args[i];
	}
    }
    str_printf(&path, "%s/main.cf", dir);
    if (maincf_edit_file(STR_DATA(&path), op, edit, (size_t) nargs, &err) != 0)
	msg_fatal("%s", STR_DATA(&err));
    for (int i = 0; i < nargs; i++) {
	mem_free(names[i]);
	if (op == MAINCF_SET)
	    mem_free((char *) edit[i].value);
    }
    mem_free(names);
    mem_free(edit);
    str_release(&path);
    str_release(&err);
    return 0;
}

/* Markdown, a | or a newline would break a table row. */
static void postconf_md_cell(const char *text, bool code)
{
    if (code)
	fputs("`", stdout);
    for (const char *cp = text; *cp; cp++) {
	if (*cp == '|')
	    fputs("\\|", stdout);
	else if (*cp == '\n')
	    fputs(" ", stdout);
	else
	    putchar(*cp);
    }
    if (code)
	fputs("`", stdout);
}

static int postconf_doc_markdown(void)
{
    const char *names[P_COUNT];

    for (int id = 0; id < P_COUNT; id++)
	names[id] = param_name((param_id) id);
    qsort(names, P_COUNT, sizeof(char *), postconf_name_cmp);
    printf("# Sluice configuration parameters\n\n"
	   "<!-- Generated by `postconf --doc-markdown` from engine/params.def,\n"
	   "     queue/params.def, stages/params_receive.def and\n"
	   "     stages/params_delivery.def. Do not edit: run `make docs-parameters`. -->\n\n"
	   "Every parameter has Postfix's name and default where Postfix has one.\n"
	   "Set them in `main.cf` (`postconf -e name=value`), or for one service\n"
	   "with `-o name=value` in `master.cf`. Values may refer to other\n"
	   "parameters as `$name`, `${name}`, `${name?text}` (text if name is\n"
	   "non-empty), `${name:text}` (text if name is empty) and\n"
	   "`${name?{text1}:{text2}}`; `$$` is a literal `$`.\n\n"
	   "Types: *integer*; *time* (a number with an optional unit s, m, h, d\n"
	   "or w; the unit in the table is the default unit); *boolean* (yes or\n"
	   "no); *list* (items separated by commas and/or whitespace); *string*.\n\n"
	   "Per transport: every `default_X` parameter (and\n"
	   "`initial_destination_concurrency`) may be set for one transport as\n"
	   "`<transport>_X`, where the transport is a `master.cf` service name,\n"
	   "e.g. `relay_destination_concurrency_limit = 50`.\n\n"
	   "| Parameter | Type | Default | Description |\n"
	   "|---|---|---|---|\n");
    for (int i = 0; i < P_COUNT; i++) {
	param_id id = param_lookup(names[i]);
	enum param_type type = param_type(id);
	const char *dflt = param_default(id);

	printf("| `%s` | %s", names[i], param_type_name(type));
	if (type == PARAM_TIME)
	    printf(" (unit %c)", param_unit(id));
	if ((type == PARAM_INT || type == PARAM_TIME)
	    && (param_min(id) != 0 || param_max(id) != 0)) {
	    if (param_max(id) > 0)
		printf(", %lld..%lld", param_min(id), param_max(id));
	    else
		printf(", min %lld", param_min(id));
	}
	if (param_is_raw(id))
	    printf(", not expanded");
	fputs(" | ", stdout);
	if (*dflt)
	    postconf_md_cell(dflt, true);
	else if (strstr(param_doc(id), "(computed"))
	    fputs("*(computed)*", stdout);
	else
	    fputs("*(empty)*", stdout);
	fputs(" | ", stdout);
	postconf_md_cell(param_doc(id), false);
	fputs(" |\n", stdout);
    }
    return 0;
}

int     main(int argc, char **argv)
{
    const char *opt_c = NULL, *dir;
    int     ch, flags = 0, ret;
    bool    edit = false, master = false, remove_ = false, comment = false;

    msg_progname_set("postconf");
    if (argc == 2 && strcmp(argv[1], "--doc-markdown") == 0)
	return postconf_doc_markdown();
    while ((ch = getopt(argc, argv, "c:dehnxMX#")) != -1) {
	switch (ch) {
	case 'c':
	    opt_c = optarg;
	    break;
	case 'd':
	    flags |= PC_DEFAULTS;
	    break;
	case 'e':
	    edit = true;
	    break;
	case 'h':
	    flags |= PC_NONAME;
	    break;
	case 'n':
	    flags |= PC_NONDEFAULT;
	    break;
	case 'x':
	    flags |= PC_EXPAND;
	    break;
	case 'M':
	    master = true;
	    break;
	case 'X':
	    remove_ = true;
	    break;
	case '#':
	    comment = true;
	    break;
	default:
	    postconf_usage();
	}
    }
    argv += optind;
    argc -= optind;
    dir = config_dir_select(opt_c);
    /* Postfix: "postconf name=value" edits, like -e. */
    if (!edit && !remove_ && !comment && !master && argc > 0 && strchr(argv[0], '='))
	edit = true;
    if ((edit + remove_ + comment + master) > 1
	|| ((flags & PC_DEFAULTS) && (flags & PC_NONDEFAULT))
	|| ((edit || remove_ || comment) && (argc == 0 || flags != 0)))
	postconf_usage();
    if (edit)
	ret = postconf_edit(dir, MAINCF_SET, argv, argc);
    else if (remove_)
	ret = postconf_edit(dir, MAINCF_REMOVE, argv, argc);
    else if (comment)
	ret = postconf_edit(dir, MAINCF_COMMENT, argv, argc);
    else if (master)
	ret = postconf_master(dir, argv, argc);
    else
	ret = postconf_show(dir, flags, argv, argc);
    config_shutdown();
    return ret;
}
