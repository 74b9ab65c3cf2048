/*
 * mime_downgrade.c - convert 8-bit MIME content to 7-bit for a server that
 *		      does not announce 8BITMIME.
 *
 * PURPOSE
 *   What Postfix's smtp client does with disable_mime_output_conversion =
 *   no (src/global/mime_state.c, MIME_OPT_DOWNGRADE), as a pure function
 *   over canonical content:
 *   - each entity (the message, a multipart body part, the message inside
 *     a message/rfc822 part) starts as text/plain, 7bit;
 *   - its Content-Transfer-Encoding 8bit or binary makes it an 8-bit
 *     entity: that header is dropped and, at the end of the entity's
 *     header block, "Content-Transfer-Encoding: quoted-printable" is added
 *     for a leaf (its body is then encoded), "... 7bit" for a multipart or
 *     message/rfc822 (their parts carry their own encodings);
 *   - everything else (7bit, base64, quoted-printable parts, parts without
 *     an encoding header, every header line, boundaries) is kept byte for
 *     byte. Like Postfix, 8-bit bytes in headers or in parts that do not
 *     declare 8bit are not touched: there is no right way to fix them.
 *   Quoted-printable: '=', controls other than TAB and bytes above 126 as
 *   =XX; a soft line break keeps lines at most 76 characters; a space or
 *   TAB at the end of a line is encoded; lines end in CRLF.
 *
 *   Boundaries match as Postfix matches them: "--" + boundary at the start
 *   of a line, any level of the multipart stack (a missing close boundary
 *   is repaired by the next outer one), trailing text ignored, at most
 *   MIME_DOWNGRADE_BOUNDARY_MAX bytes compared.
 *
 *   Parse problems make the caller send the content unchanged (ERROR):
 *   multipart nesting deeper than MIME_DOWNGRADE_MAX_DEPTH, a multipart
 *   without a boundary, an 8-bit message/partial or external-body. The
 *   walk is a loop over lines with an explicit, bounded stack: no
 *   recursion, linear time.
 *
 * THREADING
 *   Pure; any thread.
 *
 * DIAGNOSTICS
 *   None; the caller logs ERROR with its reason.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "stages/mime_downgrade.h"

enum md_ctype { MD_TEXT, MD_MESSAGE, MD_MULTIPART, MD_OTHER };
enum md_stype { MD_ST_OTHER, MD_ST_RFC822, MD_ST_PARTIAL, MD_ST_DIGEST };

typedef struct MD_LEVEL {
    char   *bound;
    size_t  len;
    bool    digest;			/* parts default to message/rfc822 */
} MD_LEVEL;

typedef struct MD_STATE {
    STR    *out;
    STR    *why;
    MD_LEVEL stack[MIME_DOWNGRADE_MAX_DEPTH];
    size_t  depth;
    bool    in_headers;
    enum md_ctype ctype;
    enum md_stype stype;
    bool    domain8;			/* 8bit or binary */
    bool    pushed;			/* this header block set a boundary */
    const char *hdr;			/* pending header, folded lines */
    size_t  hdr_len;
    bool    converted;
    bool    failed;
} MD_STATE;

#define MD_TSPECIALS	"()<>@,;:\\\"/[]?="
#define MD_TOKEN_MAX	(MIME_DOWNGRADE_BOUNDARY_MAX + 1)

bool    mime_downgrade_has_8bit(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
	if ((unsigned char) data[i] & 0x80)
	    return true;
    return false;
}

static void mime_downgrade_fail(MD_STATE *st, const char *why)
{
    if (!st->failed) {
	st->failed = true;
	str_puts(st->why, why);
    }
}

/* ------------------------------------------------------ header parsing */

/*
 * One RFC 2045 token from [*cp, end): returns 'T' (token or quoted string,
 * in buf, truncated to bufsz - 1), a tspecial character, or 0 at the end.
 * Whitespace, line breaks and (nested) comments are skipped.
 */
static int mime_downgrade_token(const char **cp, const char *end,
				        char *buf, size_t bufsz)
{
    const char *s = *cp;
    size_t  n = 0;

    for (;;) {
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
	    s++;
	if (s < end && *s == '(') {
	    int     level = 0;

	    for (; s < end; s++) {
		if (*s == '\\' && s + 1 < end)
		    s++;
		else if (*s == '(')
		    level++;
		else if (*s == ')' && --level == 0) {
		    s++;
		    break;
		}
	    }
	    continue;
	}
	break;
    }
    if (s >= end) {
	*cp = s;
	return 0;
    }
    if (*s == '"') {
	for (s++; s < end && *s != '"'; s++) {
	    if (*s == '\\' && s + 1 < end)
		s++;
	    if (*s == '\r' || *s == '\n')
		continue;		/* folding inside the quotes */
	    if (n + 1 < bufsz)
		buf[n++] = *s;
	}
	if (s < end)
	    s++;
	buf[n] = 0;
	*cp = s;
	return 'T';
    }
    if (strchr(MD_TSPECIALS, *s)) {
	*cp = s + 1;
	return (unsigned char) *s;
    }
    for (; s < end && (unsigned char) *s > ' ' && *s != 127
	 && !strchr(MD_TSPECIALS, *s); s++)
	if (n + 1 < bufsz)
	    buf[n++] = *s;
    buf[n] = 0;
    *cp = s;
    return 'T';
}

/* Length of the header name at the start of a line, 0 if not a header. */
static size_t mime_downgrade_header_name(const char *text, size_t len,
					         const char **value)
{
    size_t  n = 0;
    size_t  i;

    while (n < len && (unsigned char) text[n] > ' ' && (unsigned char) text[n] < 127
	   && text[n] != ':')
	n++;
    if (n == 0)
	return 0;
    for (i = n; i < len && (text[i] == ' ' || text[i] == '\t'); i++)
	 /* void */ ;
    if (i >= len || text[i] != ':')
	return 0;
    *value = text + i + 1;
    return n;
}

static void mime_downgrade_content_type(MD_STATE *st, const char *cp, const char *end)
{
    char   *tok = mem_alloc(MD_TOKEN_MAX);
    int     t;

    if (mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX) != 'T')
	goto done;
    st->stype = MD_ST_OTHER;
    if (strcasecmp(tok, "text") == 0)
	st->ctype = MD_TEXT;
    else if (strcasecmp(tok, "message") == 0)
	st->ctype = MD_MESSAGE;
    else if (strcasecmp(tok, "multipart") == 0)
	st->ctype = MD_MULTIPART;
    else
	st->ctype = MD_OTHER;
    if ((t = mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX)) == '/'
	&& (t = mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX)) == 'T') {
	if (st->ctype == MD_MESSAGE && strcasecmp(tok, "rfc822") == 0)
	    st->stype = MD_ST_RFC822;
	else if (st->ctype == MD_MESSAGE && (strcasecmp(tok, "partial") == 0
					 || strcasecmp(tok, "external-body") == 0))
	    st->stype = MD_ST_PARTIAL;
	else if (st->ctype == MD_MULTIPART && strcasecmp(tok, "digest") == 0)
	    st->stype = MD_ST_DIGEST;
	t = mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX);
    }
    if (st->ctype != MD_MULTIPART || st->pushed)
	goto done;

    /* Parameters: ; attribute = value ... Anything odd is skipped. */
    while (t != 0) {
	if (t != ';') {
	    t = mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX);
	    continue;
	}
	if ((t = mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX)) != 'T')
	    continue;
	if (strcasecmp(tok, "boundary") != 0)
	    continue;
	if ((t = mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX)) != '=')
	    continue;
	if ((t = mime_downgrade_token(&cp, end, tok, MD_TOKEN_MAX)) != 'T' || *tok == 0)
	    continue;
	if (st->depth >= MIME_DOWNGRADE_MAX_DEPTH) {
	    mime_downgrade_fail(st, "MIME nesting exceeds safety limit");
	    goto done;
	}
	/* tok holds at most MIME_DOWNGRADE_BOUNDARY_MAX bytes: a longer
	 * boundary is compared by that prefix, as Postfix does. */
	st->stack[st->depth].len = strlen(tok);
	st->stack[st->depth].bound = mem_strdup(tok);
	st->stack[st->depth].digest = st->stype == MD_ST_DIGEST;
	st->depth++;
	st->pushed = true;
	break;
    }
done:
    mem_free(tok);
}

static void mime_downgrade_encoding(MD_STATE *st, const char *cp, const char *end)
{
    char    tok[32];

    if (mime_downgrade_token(&cp, end, tok, sizeof(tok)) != 'T')
	return;
    /* Unknown encodings leave the domain alone, as Postfix does. */
    if (strcasecmp(tok, "8bit") == 0 || strcasecmp(tok, "binary") == 0)
	st->domain8 = true;
    else if (strcasecmp(tok, "7bit") == 0 || strcasecmp(tok, "base64") == 0
	     || strcasecmp(tok, "quoted-printable") == 0)
	st->domain8 = false;
}

/* Look at the pending header and send it on (an 8-bit CTE is dropped). */
static void mime_downgrade_flush_header(MD_STATE *st)
{
    const char *value;
    size_t  n;
    bool    is_cte = false;

    if (st->hdr == NULL)
	return;
    n = mime_downgrade_header_name(st->hdr, st->hdr_len, &value);
    if (n == 12 && strncasecmp(st->hdr, "content-type", n) == 0)
	mime_downgrade_content_type(st, value, st->hdr + st->hdr_len);
    else if (n == 25 && strncasecmp(st->hdr, "content-transfer-encoding", n) == 0) {
	mime_downgrade_encoding(st, value, st->hdr + st->hdr_len);
	is_cte = true;
    }
    if (!is_cte || !st->domain8)
	str_append(st->out, st->hdr, st->hdr_len);
    st->hdr = NULL;
    st->hdr_len = 0;
}

/* The header block ends: say how the entity is encoded now. */
static void mime_downgrade_end_headers(MD_STATE *st)
{
    mime_downgrade_flush_header(st);
    st->in_headers = false;
    if (st->ctype == MD_MULTIPART && !st->pushed)
	mime_downgrade_fail(st, "multipart without boundary parameter");
    if (!st->domain8)
	return;
    if (st->ctype == MD_MESSAGE && st->stype == MD_ST_PARTIAL)
	mime_downgrade_fail(st, "8-bit message/partial or message/external-body");
    else if (st->ctype == MD_MESSAGE || st->ctype == MD_MULTIPART)
	str_puts(st->out, "Content-Transfer-Encoding: 7bit\r\n");
    else
	str_puts(st->out, "Content-Transfer-Encoding: quoted-printable\r\n");
    st->converted = true;
}

static void mime_downgrade_new_entity(MD_STATE *st, enum md_ctype ctype,
				              enum md_stype stype)
{
    st->in_headers = true;
    st->ctype = ctype;
    st->stype = stype;
    st->domain8 = false;
    st->pushed = false;
}

/* ------------------------------------------------------------- body */

static void mime_downgrade_qp(STR *out, const char *text, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t  col = 0;
    size_t  start = out->len;

    for (size_t i = 0; i < len; i++) {
	unsigned char ch = (unsigned char) text[i];

	/* Room for "=XX" and a soft break "=" within 76 columns. */
	if (col > 72) {
	    str_append(out, "=\r\n", 3);
	    col = 0;
	    start = out->len;
	}
	if ((ch < 32 && ch != '\t') || ch == '=' || ch > 126) {
	    char    enc[3] = {'=', hex[ch >> 4], hex[ch & 15]};

	    str_append(out, enc, 3);
	    col += 3;
	} else {
	    str_putc(out, ch);
	    col++;
	}
    }
    /* Trailing white space would be lost in transit (RFC 2045 6.7 (3)). */
    if (out->len > start && (out->data[out->len - 1] == ' '
			     || out->data[out->len - 1] == '\t')) {
	unsigned char ch = (unsigned char) out->data[out->len - 1];
	char    enc[3] = {'=', hex[ch >> 4], hex[ch & 15]};

	str_truncate(out, out->len - 1);
	str_append(out, enc, 3);
    }
    str_append(out, "\r\n", 2);
}

/* A boundary line of some level: that level's index + 1, else 0. */
static size_t mime_downgrade_match(const MD_STATE *st, const char *text, size_t len,
				           bool *closing)
{
    if (st->depth == 0 || len < 2 || text[0] != '-' || text[1] != '-')
	return 0;
    for (size_t i = st->depth; i-- > 0;) {
	const MD_LEVEL *lv = st->stack + i;

	if (len - 2 < lv->len || memcmp(text + 2, lv->bound, lv->len) != 0)
	    continue;
	*closing = len - 2 - lv->len >= 2 && text[2 + lv->len] == '-'
	    && text[3 + lv->len] == '-';
	return i + 1;
    }
    return 0;
}

/* Move to the next part, or to the epilogue. */
static void mime_downgrade_boundary(MD_STATE *st, size_t level, bool closing)
{
    bool    digest = st->stack[level - 1].digest;

    /* Close the levels whose end boundary never came. */
    while (st->depth > level)
	mem_free(st->stack[--st->depth].bound);
    if (closing) {
	mem_free(st->stack[--st->depth].bound);
	st->in_headers = false;
	st->ctype = MD_OTHER;
	st->domain8 = false;
    } else if (digest)
	mime_downgrade_new_entity(st, MD_MESSAGE, MD_ST_RFC822);
    else
	mime_downgrade_new_entity(st, MD_TEXT, MD_ST_OTHER);
}

/* ------------------------------------------------------------- driver */

static void mime_downgrade_line(MD_STATE *st, const char *line, size_t line_len,
				        size_t text_len)
{
    const char *value;
    size_t  level;
    bool    closing;

    if (st->in_headers) {
	if (st->hdr && text_len > 0 && (line[0] == ' ' || line[0] == '\t')) {
	    st->hdr_len += line_len;	/* folded */
	    return;
	}
	mime_downgrade_flush_header(st);
	if ((level = mime_downgrade_match(st, line, text_len, &closing)) != 0) {
	    /* A part without body (nor empty line). */
	    mime_downgrade_end_headers(st);
	    mime_downgrade_boundary(st, level, closing);
	    str_append(st->out, line, line_len);
	    return;
	}
	if (text_len > 0 && mime_downgrade_header_name(line, text_len, &value)) {
	    st->hdr = line;
	    st->hdr_len = line_len;
	    return;
	}
	if (text_len == 0) {
	    mime_downgrade_end_headers(st);
	    str_append(st->out, line, line_len);
	    if (st->ctype == MD_MESSAGE && st->stype == MD_ST_RFC822)
		mime_downgrade_new_entity(st, MD_TEXT, MD_ST_OTHER);
	    else if (st->ctype == MD_MULTIPART)
		st->domain8 = false;	/* the prologue */
	    return;
	}
	/* Not a header, no empty line: the body starts here. */
	mime_downgrade_end_headers(st);
	if (st->domain8)
	    str_append(st->out, "\r\n", 2);
	if (st->ctype == MD_MULTIPART)
	    st->domain8 = false;
    }
    if ((level = mime_downgrade_match(st, line, text_len, &closing)) != 0) {
	mime_downgrade_boundary(st, level, closing);
	str_append(st->out, line, line_len);
    }
    else if (st->domain8)
	mime_downgrade_qp(st->out, line, text_len);
    else
	str_append(st->out, line, line_len);
}

enum mime_downgrade_status mime_downgrade(const char *data, size_t len,
					          STR *out, STR *why)
{
    MD_STATE *st;
    size_t  pos = 0;
    size_t  out_len = out->len;
    enum mime_downgrade_status status;

    if (!mime_downgrade_has_8bit(data, len))
	return MIME_DOWNGRADE_UNCHANGED;
    st = MEM_NEW(MD_STATE);
    memset(st, 0, sizeof(*st));
    st->out = out;
    st->why = why;
    mime_downgrade_new_entity(st, MD_TEXT, MD_ST_OTHER);
    str_reserve(out, len + len / 8);

    while (pos < len && !st->failed) {
	const char *line = data + pos;
	const char *nl = memchr(line, '\n', len - pos);
	size_t  line_len = nl ? (size_t) (nl - line) + 1 : len - pos;
	size_t  text_len = line_len;

	if (nl) {
	    text_len--;
	    if (text_len > 0 && line[text_len - 1] == '\r')
		text_len--;
	}
	mime_downgrade_line(st, line, line_len, text_len);
	pos += line_len;
    }
    if (!st->failed && st->in_headers)
	mime_downgrade_end_headers(st);

    while (st->depth > 0)
	mem_free(st->stack[--st->depth].bound);
    if (st->failed)
	status = MIME_DOWNGRADE_ERROR;
    else if (st->converted)
	status = MIME_DOWNGRADE_DONE;
    else
	status = MIME_DOWNGRADE_UNCHANGED;
    if (status != MIME_DOWNGRADE_DONE)
	str_truncate(out, out_len);
    mem_free(st);
    return status;
}
