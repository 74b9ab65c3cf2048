/*
 * dict_text.h - reading Postfix table source files: logical lines, and the
 * "key whitespace value" format shared by postmap and texthash:.
 *
 * A logical line starts with non-whitespace text; a line that starts with
 * whitespace continues it. Empty lines, whitespace-only lines and lines
 * whose first non-whitespace character is '#' are ignored. A logical line
 * that contains a NUL byte is skipped with a warning.
 * Threading: a DICT_TEXT belongs to one thread.
 * Diagnostics: msg_warn("FILE, line N: ...") with Postfix's wording.
 */
#ifndef SLUICE_DICT_TEXT_H
#define SLUICE_DICT_TEXT_H

#include <stdio.h>
#include "engine/str.h"

/* Longest key a fixed-string table accepts (longer lines are skipped). */
#define DICT_TEXT_KEY_MAX	4096

typedef struct DICT_TEXT {
    FILE   *fp;
    const char *path;
    int     lineno;			/* first line of the last logical line */
    int     physical;			/* physical lines read so far */
    STR     pending;			/* next logical line's first line */
    int     have_pending;
    int     pending_bad;
    int     pending_lineno;
    char   *buf;			/* getline() buffer */
    size_t  bufcap;
} DICT_TEXT;

void    dict_text_init(DICT_TEXT *text, FILE *fp, const char *path);
/* 1 = a logical line in line; 0 = end of file; -1 = read error (errno). */
int     dict_text_next(DICT_TEXT *text, STR *line);
void    dict_text_done(DICT_TEXT *text);

/*
 * Splits a logical line in place as postmap does: the key ends at the first
 * whitespace outside double quotes (the key keeps its quotes and
 * backslashes); the value is the rest, trimmed. -1 on an unbalanced '"'.
 */
int     dict_text_split(char *line, char **key, char **value);

/*
 * Reads a whole "key whitespace value" file, warning about and skipping bad
 * lines (expected_suffix is appended to the "expected format" warning:
 * texthash: says " -- ignoring this line", postmap says nothing). Calls
 * fn(key, value, lineno, ctx) for each good line; a non-zero return stops.
 * Returns 0, fn's non-zero result, or -1 on a read error (errno set).
 */
typedef int (*dict_text_fn) (char *key, char *value, int lineno, void *ctx);
int     dict_text_table(FILE *fp, const char *path, const char *expected_suffix,
			        dict_text_fn fn, void *ctx);

#endif
