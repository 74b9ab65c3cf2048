/*
 * addr_parse.c - RFC 5322 address lists and address quoting (addr_parse.h).
 *
 * A small tokenizer (atoms, quoted strings, comments, domain literals,
 * specials) records the byte span of every token, so that a rewritten
 * address can be spliced back into the header without disturbing display
 * names, comments or folding. The parser above it splits the token stream
 * into list elements (',' outside <>), groups (':' ... ';') and, within an
 * element, the display name and the address.
 *
 * Threading: reentrant. Diagnostics: none.
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "stages/addr_parse.h"

enum {
    ADDR_T_ATOM = 256,
    ADDR_T_QSTRING,
    ADDR_T_DOMLIT,
    ADDR_T_COMMENT,
};

typedef struct ADDR_TOK {
    int     type;			/* ADDR_T_* or the special character */
    size_t  start;
    size_t  end;
} ADDR_TOK;

#define ADDR_SPECIALS	"()<>@,;:\\\".[]"

static int addr_is_space(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* addr_skip_quoted - end of a quoted run that started at text[i] (open char) */

static size_t addr_skip_quoted(const char *text, size_t len, size_t i,
			               char close, int nest)
{
    int     depth = 1;
    char    open = text[i];

    for (i++; i < len; i++) {
	if (text[i] == '\\') {
	    if (i + 1 < len)
		i++;
	} else if (nest && text[i] == open) {
	    depth++;
	} else if (text[i] == close) {
	    if (--depth == 0)
		return i + 1;
	}
    }
    return len;				/* unterminated: runs to the end */
}

/* addr_tokenize - split text into at most max tokens */

static size_t addr_tokenize(const char *text, size_t len, ADDR_TOK *tok, size_t max)
{
    size_t  n = 0, i = 0;

    while (i < len && n < max) {
	unsigned char ch = (unsigned char) text[i];
	size_t  start = i;

	if (addr_is_space(ch)) {
	    i++;
	    continue;
	}
	if (ch == '(') {
	    i = addr_skip_quoted(text, len, i, ')', 1);
	    tok[n++] = (ADDR_TOK) {ADDR_T_COMMENT, start, i};
	} else if (ch == '"') {
	    i = addr_skip_quoted(text, len, i, '"', 0);
	    tok[n++] = (ADDR_TOK) {ADDR_T_QSTRING, start, i};
	} else if (ch == '[') {
	    i = addr_skip_quoted(text, len, i, ']', 0);
	    tok[n++] = (ADDR_TOK) {ADDR_T_DOMLIT, start, i};
	} else if (ch != 0 && strchr(ADDR_SPECIALS, ch) != NULL) {
	    i++;
	    tok[n++] = (ADDR_TOK) {ch, start, i};
	} else {
	    /* An atom; control characters and 8-bit bytes are taken as atom
	     * text (lenient, and UTF-8 is atext under RFC 6532). */
	    while (i < len && !addr_is_space((unsigned char) text[i])
		   && (text[i] == 0 || strchr(ADDR_SPECIALS, text[i]) == NULL))
		i++;
	    tok[n++] = (ADDR_TOK) {ADDR_T_ATOM, start, i};
	}
    }
    return n;
}

/* addr_append_qstring - the content of a quoted string, unescaped */

static void addr_append_qstring(STR *out, const char *text, const ADDR_TOK *t)
{
    size_t  i = t->start + 1, end = t->end;

    if (end > i && text[end - 1] == '"')
	end--;
    for (; i < end; i++) {
	if (text[i] == '\\' && i + 1 < end)
	    i++;
	str_putc(out, text[i]);
    }
}

static int addr_is_word(int type)
{
    return type == ADDR_T_ATOM || type == ADDR_T_QSTRING;
}

/* addr_tokens_internal - internal form of tokens [s, e), comments skipped */

static void addr_tokens_internal(STR *out, const char *text,
				         const ADDR_TOK *tok, size_t s, size_t e)
{
    int     prev = 0;

    for (size_t i = s; i < e; i++) {
	const ADDR_TOK *t = tok + i;

	if (t->type == ADDR_T_COMMENT)
	    continue;
	if (addr_is_word(t->type) && addr_is_word(prev))
	    str_putc(out, ' ');
	if (t->type == ADDR_T_QSTRING)
	    addr_append_qstring(out, text, t);
	else
	    str_append(out, text + t->start, t->end - t->start);
	prev = t->type;
    }
}

/* addr_phrase - display name: words joined by one space */

static char *addr_phrase(const char *text, const ADDR_TOK *tok, size_t s, size_t e)
{
    STR     buf = STR_INIT;
    char   *res;

    for (size_t i = s; i < e; i++) {
	const ADDR_TOK *t = tok + i;

	if (t->type == ADDR_T_COMMENT)
	    continue;
	if (STR_LEN(&buf) > 0 && t->type != '.')
	    str_putc(&buf, ' ');
	if (t->type == ADDR_T_QSTRING)
	    addr_append_qstring(&buf, text, t);
	else
	    str_append(&buf, text + t->start, t->end - t->start);
    }
    if (STR_LEN(&buf) == 0) {
	str_release(&buf);
	return NULL;
    }
    res = str_steal(&buf, NULL);
    return res;
}

void    addr_list_init(ADDR_LIST *list)
{
    memset(list, 0, sizeof(*list));
}

void    addr_list_free(ADDR_LIST *list)
{
    for (size_t i = 0; i < list->n; i++) {
	mem_free(list->v[i].addr);
	mem_free(list->v[i].display);
	mem_free(list->v[i].group);
    }
    mem_free(list->v);
    memset(list, 0, sizeof(*list));
}

static ADDR_ENTRY *addr_list_add(ADDR_LIST *list)
{
    if (list->n == list->cap) {
	list->cap = list->cap ? 2 * list->cap : 4;
	list->v = mem_realloc(list->v, list->cap * sizeof(*list->v));
    }
    memset(list->v + list->n, 0, sizeof(*list->v));
    return list->v + list->n++;
}

/* addr_element - one list element, tokens [s, e) */

static int addr_element(const char *text, size_t len, const ADDR_TOK *tok,
			        size_t s, size_t e, const char *group,
			        ADDR_LIST *list)
{
    size_t  lt = e, gt = e, first = e, last = e;
    ADDR_ENTRY *ent;
    STR     buf = STR_INIT;

    for (size_t i = s; i < e; i++) {
	if (tok[i].type == '<') {
	    lt = i;
	    break;
	}
    }
    if (lt < e) {
	for (gt = lt + 1; gt < e && tok[gt].type != '>'; gt++)
	     /* void */ ;
	ent = addr_list_add(list);
	ent->flags = ADDR_F_ANGLE;
	ent->display = addr_phrase(text, tok, s, lt);
	ent->start = tok[lt].end;
	if (gt < e)
	    ent->end = tok[gt].start;
	else if (e > lt + 1)
	    ent->end = tok[e - 1].end;	/* no '>': to the last token */
	else
	    ent->end = tok[lt].end;
	addr_tokens_internal(&buf, text, tok, lt + 1, gt);
    } else {
	for (size_t i = s; i < e; i++) {
	    if (tok[i].type == ADDR_T_COMMENT)
		continue;
	    if (first == e)
		first = i;
	    last = i;
	}
	if (first == e)
	    return 0;			/* only comments: no address */
	ent = addr_list_add(list);
	ent->start = tok[first].start;
	ent->end = tok[last].end;
	addr_tokens_internal(&buf, text, tok, first, last + 1);
    }
    (void) len;
    if (group) {
	ent->group = mem_strdup(group);
	ent->flags |= ADDR_F_GROUP;
    }
    str_putc(&buf, 0);			/* make sure data exists */
    ent->addr = str_steal(&buf, NULL);
    return 1;
}

size_t  addr_parse_list(const char *text, size_t len, ADDR_LIST *list)
{
    size_t  max = ADDR_PARSE_TOKEN_LIMIT;
    ADDR_TOK *tok = mem_alloc(sizeof(*tok) * (len < max ? len + 1 : max));
    size_t  ntok = addr_tokenize(text, len, tok, len < max ? len + 1 : max);
    size_t  found = 0, s = 0;
    char   *group = NULL;
    int     depth = 0, saw_at = 0;

    for (size_t i = 0; i <= ntok; i++) {
	int     type = i < ntok ? tok[i].type : 0;

	if (type == '<') {
	    depth++;
	} else if (type == '>') {
	    if (depth > 0)
		depth--;
	} else if (type == '@') {
	    saw_at = 1;
	} else if (depth == 0 && type == ':' && group == NULL && !saw_at
		   && i > s) {
	    /* "name: member, member;" */
	    group = addr_phrase(text, tok, s, i);
	    if (group == NULL)
		group = mem_strdup("");
	    s = i + 1;
	    continue;
	} else if (i == ntok || (depth == 0 && (type == ',' || type == ';'))) {
	    found += addr_element(text, len, tok, s, i, group, list);
	    if (type == ';' && group) {
		mem_free(group);
		group = NULL;
	    }
	    s = i + 1;
	    saw_at = 0;
	    depth = 0;
	}
    }
    mem_free(group);
    mem_free(tok);
    return found;
}

void    addr_list_splice(const char *text, size_t len, const ADDR_LIST *list,
			         char *const *new_addr, STR *out)
{
    size_t  pos = 0;

    str_reset(out);
    for (size_t i = 0; i < list->n; i++) {
	const ADDR_ENTRY *ent = list->v + i;

	if (new_addr[i] == NULL || ent->start < pos || ent->end > len)
	    continue;
	str_append(out, text + pos, ent->start - pos);
	addr_externalize(out, new_addr[i]);
	pos = ent->end;
    }
    str_append(out, text + pos, len - pos);
}

static int addr_is_atext(unsigned char ch)
{
    if (ch >= 0x80)
	return 1;			/* UTF-8 (RFC 6532) */
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
	|| (ch >= '0' && ch <= '9'))
	return 1;
    return ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

int     addr_local_needs_quote(const char *local, size_t len)
{
    if (len == 0)
	return 1;
    if (local[0] == '.' || local[len - 1] == '.')
	return 1;
    for (size_t i = 0; i < len; i++) {
	unsigned char ch = (unsigned char) local[i];

	if (ch == '.') {
	    if (local[i + 1] == '.')
		return 1;
	} else if (!addr_is_atext(ch)) {
	    return 1;
	}
    }
    return 0;
}

void    addr_externalize(STR *out, const char *internal)
{
    const char *at = strrchr(internal, '@');
    size_t  llen = at ? (size_t) (at - internal) : strlen(internal);

    if (*internal == 0)
	return;				/* the null address */
    if (addr_local_needs_quote(internal, llen)) {
	str_putc(out, '"');
	for (size_t i = 0; i < llen; i++) {
	    if (internal[i] == '"' || internal[i] == '\\')
		str_putc(out, '\\');
	    str_putc(out, internal[i]);
	}
	str_putc(out, '"');
    } else {
	str_append(out, internal, llen);
    }
    if (at)
	str_puts(out, at);
}

void    addr_internalize(STR *out, const char *external)
{
    size_t  len = strlen(external);
    size_t  max = len < ADDR_PARSE_TOKEN_LIMIT ? len + 1 : ADDR_PARSE_TOKEN_LIMIT;
    ADDR_TOK *tok = mem_alloc(sizeof(*tok) * max);
    size_t  n = addr_tokenize(external, len, tok, max), s = 0, e = n;

    if (n > 0 && tok[0].type == '<') {
	s = 1;
	for (e = s; e < n && tok[e].type != '>'; e++)
	     /* void */ ;
    }
    addr_tokens_internal(out, external, tok, s, e);
    mem_free(tok);
}
