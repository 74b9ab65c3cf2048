/*
 * dict_unix.c - unix:passwd.byname, the system's users (for
 * local_recipient_maps). The result is the passwd entry as Postfix gives
 * it: "name:passwd:uid:gid:gecos:dir:shell".
 *
 * Keys are folded (as Postfix does for this table) unless DICT_FLAG_NO_FOLD.
 * Threading: getpwnam_r() with a per-call buffer; any thread.
 * Diagnostics: dict_open() fails on any other unix: table name; a lookup
 * whose getpwnam_r() fails for a reason other than "no such user" is
 * DICT_ERR.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "engine/dict_priv.h"
#include "engine/mem.h"
#include "engine/msg.h"

static void *dict_unix_open(const char *name, int flags, STR *err)
{
    (void) flags;
    if (strcmp(name, "passwd.byname") != 0) {
	str_printf(err, "unknown table: unix:%s", name);
	return NULL;
    }
    return mem_strdup(name);
}

static int dict_unix_lookup(void *table, const char *key, STR *result)
{
    struct passwd pw, *found = NULL;
    long    size = sysconf(_SC_GETPW_R_SIZE_MAX);
    char   *buf;
    int     rc;

    (void) table;
    if (size < 1024)
	size = 1024;
    for (;;) {
	buf = mem_alloc((size_t) size);
	rc = getpwnam_r(key, &pw, buf, (size_t) size, &found);
	if (rc != ERANGE || size > (1 << 20))
	    break;
	mem_free(buf);
	size *= 2;
    }
    if (found == NULL) {
	mem_free(buf);
	/* "Not found" may be reported as 0, ENOENT, ESRCH, EBADF or EPERM. */
	if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
	    return DICT_NOTFOUND;
	errno = rc;
	msg_warn("table unix:passwd.byname: lookup %s: %m", key);
	return DICT_ERR;
    }
    str_printf(result, "%s:%s:%ld:%ld:%s:%s:%s", pw.pw_name, pw.pw_passwd,
	       (long) pw.pw_uid, (long) pw.pw_gid, pw.pw_gecos ? pw.pw_gecos : "",
	       pw.pw_dir, pw.pw_shell);
    mem_free(buf);
    return DICT_FOUND;
}

static void dict_unix_free(void *table)
{
    mem_free(table);
}

const DICT_TYPE dict_type_unix = {
    "unix", DICT_TYPE_FIXED, "",
    NULL, dict_unix_open, dict_unix_lookup, NULL, dict_unix_free,
};
