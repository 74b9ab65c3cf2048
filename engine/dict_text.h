/*
 * dict_text.h - reading Postfix table source files: logical lines, the
 * "key whitespace value" format shared by postmap and texthash:, and the
 * rule files of cidr: and regexp: with their IF/ENDIF blocks.
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

/* fdopen() for a table loader: NULL with "open PATH: reason" in err (fd closed). */
FILE   *dict_text_fdopen(int fd, const char *path, STR *err);

/*
 * Rule files (cidr:, regexp:): one rule per logical line, first match wins,
 * and "if PATTERN" ... "endif" blocks that nest. dict_text_rules() reads the
 * file from fd (and closes it), handles ENDIF and the nesting itself, and
 * hands each other line to the table:
 *	rule(text, is_if, path, lineno, ctx)	adds the rule on one line;
 *		for "if PATTERN" is_if is set and text starts at PATTERN.
 *		Returns 1 when it added a rule, 0 when it skipped the line. An
 *		IF must always add one (never true when broken), so that its
 *		ENDIF pairs up.
 *	endif(if_rule, next_rule, ctx)	the IF block of rule number if_rule
 *		ends: a false IF skips to rule number next_rule.
 * Rules are numbered from 0 in the order rule() added them. An ENDIF adds
 * no rule. IFs still open at the end of the file close there.
 * Warnings: "MAP map PATH, line N: ..." as Postfix words them.
 * Returns 0, or -1 with "open PATH: ..." or "read PATH: ..." in err.
 */
typedef struct DICT_TEXT_RULE_OPS {
    const char *map;			/* "cidr", "regexp" */
    int     (*rule) (char *text, int is_if, const char *path, int lineno, void *ctx);
    void    (*endif) (size_t if_rule, size_t next_rule, void *ctx);
} DICT_TEXT_RULE_OPS;

int     dict_text_rules(int fd, const char *path, const DICT_TEXT_RULE_OPS *ops,
			        void *ctx, STR *err);

#endif
