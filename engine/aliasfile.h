/*
 * aliasfile.h - the aliases(5) source format, shared by postalias and the
 * local delivery agent.
 *
 *	name: value, value, ...
 *	    continued value, ...	(a line starting with whitespace continues)
 *	# comment
 * The name may be quoted ("first last": ...); it must be local (no '@' or
 * '%'). Values are addresses, "|command", "/file/name", ":include:/file",
 * any of them in double quotes when they contain commas or spaces.
 *
 * Threading: pure functions over caller-owned data.
 * Diagnostics: bad entries are skipped with Postfix's warnings
 * ("FILE, line N: need name:value pair", "FILE, line N: name must be local").
 */
#ifndef SLUICE_ALIASFILE_H
#define SLUICE_ALIASFILE_H

#include <stdio.h>
#include "engine/str.h"

/* name: unquoted, case as written; value: trimmed, continuation lines
 * joined, runs of whitespace outside quotes collapsed to one space. */
typedef int (*aliasfile_fn) (const char *name, const char *value, int lineno, void *ctx);

/* Returns 0, fn's non-zero result, or -1 on a read error (errno set). */
int     aliasfile_read(FILE *fp, const char *path, aliasfile_fn fn, void *ctx);

typedef enum ALIAS_KIND {
    ALIAS_ADDRESS,			/* user, user@domain */
    ALIAS_COMMAND,			/* |command (text without the '|') */
    ALIAS_FILE,				/* /file/name */
    ALIAS_INCLUDE,			/* :include:/file (text = the path) */
} ALIAS_KIND;

typedef int (*aliasfile_member_fn) (ALIAS_KIND kind, const char *text, void *ctx);

/*
 * Splits a value into its members (commas outside double quotes). A member
 * that is entirely one quoted string is unquoted first. Returns 0, fn's
 * non-zero result, or -1 with the reason in err (unbalanced quote, empty
 * member, ":include:" without a file).
 */
int     aliasfile_split(const char *value, aliasfile_member_fn fn, void *ctx, STR *err);

#endif
