/*
 * cleanup_body.c - the message body: body_checks on each line (within
 * body_checks_size_limit), and the replacement of stray CR and LF.
 *
 * A body line is what lies between two CRLFs. body_checks see it without
 * the CRLF and with NUL bytes as spaces (a NUL must not hide the rest of
 * the line from a pattern); the content itself keeps its bytes.
 *
 * Threading: per-message state only. Diagnostics: see cleanup_header.c.
 */
#include "config.h"

#include <string.h>

#include "engine/msg.h"
#include "stages/cleanup_priv.h"

void    cleanup_body_fix_stray(char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
	if (line[i] == '\r' || line[i] == '\n')
	    line[i] = ' ';
}

int     cleanup_body_checking(const CLEANUP_STATE *st)
{
    const CLEANUP_CTX *ctx = st->ctx;

    return !(st->info.flags & CLEANUP_FLAG_NO_CHECKS)
	&& !rewrite_maps_empty(ctx->body_checks)
	&& (ctx->cfg.body_checks_size_limit <= 0
	    || st->body_offset < (size_t) ctx->cfg.body_checks_size_limit);
}

/*
 * cleanup_body_rest - the rest of the body in one copy, when no check
 * looks at it any more: the same result as line by line (stray CR and LF
 * become spaces, the last line gets its CRLF), without the per-line work.
 */
void    cleanup_body_rest(CLEANUP_STATE *st, const char *data, size_t len)
{
    size_t  start = STR_LEN(&st->out);
    char   *p;

    if (len == 0)
	return;
    str_append(&st->out, data, len);
    p = st->out.data + start;
    if (st->ctx->cfg.replace_stray_cr_lf) {
	/* Line by line with memchr: a CR is stray unless an LF follows, an
	 * LF unless a CR precedes (the CR of a CRLF is never replaced). */
	for (size_t i = 0; i < len;) {
	    char   *nl = memchr(p + i, '\n', len - i);
	    size_t  e = nl ? (size_t) (nl - p) : len;
	    size_t  stop = nl && e > i && p[e - 1] == '\r' ? e - 1 : e;

	    for (char *cr = memchr(p + i, '\r', stop - i); cr;
		 cr = memchr(cr + 1, '\r', (size_t) (p + stop - cr - 1)))
		*cr = ' ';
	    if (nl && (e == 0 || p[e - 1] != '\r'))
		*nl = ' ';
	    i = e + 1;
	}
    }
    if (len < 2 || p[len - 2] != '\r' || p[len - 1] != '\n')
	str_puts(&st->out, "\r\n");
    st->body_offset += len;
}

void    cleanup_body_line(CLEANUP_STATE *st, const char *line, size_t len)
{
    CLEANUP_CTX *ctx = st->ctx;
    if (st->status != CLEANUP_OK)
	return;
    if (cleanup_body_checking(st)) {
	STR     key = STR_INIT, value = STR_INIT, repl = STR_INIT, prepend = STR_INIT;
	int     rc, act = CLEANUP_ACT_KEEP;

	for (size_t i = 0; i < len; i++)
	    str_putc(&key, line[i] == 0 ? ' ' : line[i]);
	rc = rewrite_maps_find(ctx->body_checks, STR_DATA(&key), 0, &value);
	if (rc == DICT_FOUND) {
	    act = cleanup_act(st, "body", STR_DATA(&key), STR_DATA(&value),
			      "body_checks", &repl, &prepend);
	    if (STR_LEN(&prepend) > 0) {
		str_append(&st->out, STR_DATA(&prepend), STR_LEN(&prepend));
		str_puts(&st->out, "\r\n");
	    }
	    if (act == CLEANUP_ACT_REPLACE) {
		str_append(&st->out, STR_DATA(&repl), STR_LEN(&repl));
		str_puts(&st->out, "\r\n");
	    }
	} else if (rc == DICT_ERR) {
	    msg_warn("%s: %s map lookup problem -- "
		     "message not accepted, try again later",
		     st->m->queue_id, rewrite_maps_title(ctx->body_checks));
	    cleanup_set_error(st, CLEANUP_DEFER, "451 4.3.0 Error: queue file write error");
	}
	str_release(&key);
	str_release(&value);
	str_release(&repl);
	str_release(&prepend);
	if (act != CLEANUP_ACT_KEEP) {
	    st->body_offset += len + 2;
	    return;
	}
    }
    st->body_offset += len + 2;
    str_append(&st->out, line, len);
    str_puts(&st->out, "\r\n");
}
