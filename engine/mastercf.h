/*
 * mastercf.h - master.cf: Postfix's service table.
 *
 * Each logical line (same comment and continuation rules as main.cf) has
 * eight columns and then arguments:
 *   service type private unpriv chroot wakeup maxproc command [args...]
 *   type     inet | unix | unix-dgram | fifo | pass
 *   private, unpriv, chroot  y | n | -     ("-" = built-in default)
 *   wakeup   N, N? or -          maxproc  N or -
 * Arguments "-o name=value" and "-o { name = value }" override main.cf for
 * that service; any argument may be written "{ text with spaces }".
 * In Sluice, maxproc is the thread count of the stage or transport the
 * service names ("-" = default_process_limit).
 *
 * Errors (returned, one line each, "path, line N: ..."): unknown service
 * type, bad y/n/- column, bad wakeup or maxproc, missing columns, a -o
 * without '=', an unbalanced '{', a duplicate service name/type.
 * Threading: a MASTERCF is immutable once parsed.
 */
#ifndef SLUICE_MASTERCF_H
#define SLUICE_MASTERCF_H

#include <stddef.h>

#include "engine/str.h"

typedef struct MASTERCF_OPT {
    char   *name;
    char   *value;
} MASTERCF_OPT;

typedef struct MASTERCF_SERVICE {
    char   *name;		/* "smtp", "127.0.0.1:2525", "relay" */
    char   *type;		/* "inet", "unix", ... */
    char    private_;		/* 'y', 'n' or '-' */
    char    unpriv;
    char    chroot;
    char   *wakeup;		/* as written: "-", "60", "300?" */
    int     maxproc;		/* -1 for "-" */
    char   *command;		/* "smtpd", "smtp", "pipe" */
    char  **argv;		/* arguments other than -o, NULL-terminated */
    size_t  argc;
    MASTERCF_OPT *opt;		/* -o overrides, in order */
    size_t  nopt;
    int     line;
} MASTERCF_SERVICE;

typedef struct MASTERCF {
    char   *path;
    MASTERCF_SERVICE *svc;
    size_t  count;
} MASTERCF;

MASTERCF *mastercf_parse(const char *path, const char *text, size_t len, STR *err);
MASTERCF *mastercf_read(const char *path, STR *err);
void     mastercf_free(MASTERCF *cf);
/* By name and type ("smtp", "inet"), or by "name/type", or by name alone
 * (type NULL: the first entry with that name). */
const MASTERCF_SERVICE *mastercf_find(const MASTERCF *cf, const char *name,
				      const char *type);
/* The value of a -o override of a service, or NULL. */
const char *mastercf_opt(const MASTERCF_SERVICE *svc, const char *name);
/* One line as `postconf -M` prints it (no newline). */
void     mastercf_format(const MASTERCF_SERVICE *svc, STR *out);

#endif
