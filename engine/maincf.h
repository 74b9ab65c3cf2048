/*
 * maincf.h - main.cf: Postfix's syntax, parsed into entries, and edited in
 * place (postconf -e, -X, -#).
 *
 * Syntax (as Postfix's readllines() and mail_conf_read()):
 *   - a line whose first non-blank character is '#' is a comment, and so is
 *     an empty or all-blank line; '#' elsewhere is part of the value;
 *   - a line that starts with whitespace continues the logical line above
 *     (comment lines in between are skipped); the text is joined as is;
 *   - a logical line is "name = value", blanks around both trimmed;
 *   - a later entry for the same name wins.
 * Warnings (msg_warn, naming file and line): text after a NUL byte
 * (dropped), a logical line that starts with whitespace (dropped), a value
 * that is not valid UTF-8. Errors (returned): a line without '='.
 *
 * Threading: a MAINCF is immutable once parsed; the functions are reentrant.
 */
#ifndef SLUICE_MAINCF_H
#define SLUICE_MAINCF_H

#include <stddef.h>

#include "engine/str.h"

typedef struct MAINCF_ENTRY {
    char   *name;
    char   *value;		/* trimmed, continuation lines joined */
    int     line;		/* first physical line */
} MAINCF_ENTRY;

typedef struct MAINCF {
    char   *path;
    MAINCF_ENTRY *entry;	/* in file order, duplicates included */
    size_t  count;
} MAINCF;

/* Parse text of len bytes (may hold NUL bytes). Returns NULL and appends
 * one line per error to err ("path, line N: ...") on a syntax error. */
MAINCF *maincf_parse(const char *path, const char *text, size_t len, STR *err);
/* Read and parse a file; NULL with the reason in err. */
MAINCF *maincf_read(const char *path, STR *err);
void    maincf_free(MAINCF *cf);
/* The entry that wins (the last one for that name), or NULL. */
const MAINCF_ENTRY *maincf_find(const MAINCF *cf, const char *name);

/* Whole-file reading helper shared with master.cf (NUL-safe). Returns a
 * mem_alloc'd buffer and its length, or NULL with errno set. */
char   *maincf_slurp(const char *path, size_t *len);

/*
 * Editing, keeping every other line (comments, blank lines, continuation
 * lines, order) byte for byte:
 *   MAINCF_SET: the first entry of each name becomes "name = value", later
 *     duplicates go away, names not present are appended in order;
 *   MAINCF_REMOVE: every entry of each name goes away (postconf -X);
 *   MAINCF_COMMENT: every entry of each name is commented out line by line
 *     (postconf -#).
 * An entry's continuation lines go with it.
 */
enum maincf_edit_op { MAINCF_SET, MAINCF_REMOVE, MAINCF_COMMENT };

typedef struct MAINCF_EDIT {
    const char *name;
    const char *value;		/* MAINCF_SET only */
} MAINCF_EDIT;

/* Pure: edits text into out. */
void maincf_edit_text(const char *text, size_t len, enum maincf_edit_op op,
		      const MAINCF_EDIT *edit, size_t nedit, STR *out);
/* The file, atomically: under a lock on path.tmp, the new text goes to
 * path.tmp (same mode as path), fsync, rename over path, fsync of the
 * directory. Returns 0, or -1 with the reason in err; path is then unchanged. */
int  maincf_edit_file(const char *path, enum maincf_edit_op op,
		      const MAINCF_EDIT *edit, size_t nedit, STR *err);

#endif
