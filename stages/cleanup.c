/*
 * cleanup.c - the cleanup stage's work on one message (cleanup.h): the
 * settings, the shared context, and the driver that walks the content
 * line by line (headers to cleanup_header.c, body to cleanup_body.c) and
 * the envelope (cleanup_addr.c).
 *
 * The content is read once and written once into a new buffer: our
 * Received: header, the (possibly rewritten) headers, the missing ones,
 * the empty line, then the body. A header section that ends without an
 * empty line (a line that is not a header) gets one, so the header/body
 * boundary is always explicit downstream.
 *
 * Threading: see cleanup.h. Diagnostics: see cleanup.h.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/config.h"
#include "engine/param.h"
#include "stages/cleanup_priv.h"

/* Settings. */

void    cleanup_config_defaults(CLEANUP_CONFIG *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->myhostname = "localhost.localdomain";
    cfg->mail_name = "Postfix";
    cfg->canonical_maps = "";
    cfg->sender_canonical_maps = "";
    cfg->recipient_canonical_maps = "";
    cfg->virtual_alias_maps = "";
    cfg->header_checks = "";
    cfg->body_checks = "";
    cfg->hopcount_limit = 50;
    cfg->header_size_limit = 102400;
    cfg->body_checks_size_limit = 51200;
    cfg->virtual_alias_recursion_limit = 1000;
    cfg->virtual_alias_expansion_limit = 1000;
    cfg->duplicate_filter_limit = 1000;
    cfg->replace_stray_cr_lf = true;
    cfg->always_add_missing_headers = false;
    cfg->long_queue_ids = false;
    cfg->propagate_canonical = true;
    cfg->propagate_virtual = true;
}


void    cleanup_config_from_params(CLEANUP_CONFIG *cfg)
{
    const char *prop;

    cleanup_config_defaults(cfg);
    cfg->myhostname = param_str(P_MYHOSTNAME);
    cfg->mail_name = param_str(P_MAIL_NAME);
    cfg->canonical_maps = param_str(P_CANONICAL_MAPS);
    cfg->sender_canonical_maps = param_str(P_SENDER_CANONICAL_MAPS);
    cfg->recipient_canonical_maps = param_str(P_RECIPIENT_CANONICAL_MAPS);
    cfg->virtual_alias_maps = param_str(P_VIRTUAL_ALIAS_MAPS);
    cfg->header_checks = param_str(P_HEADER_CHECKS);
    cfg->body_checks = param_str(P_BODY_CHECKS);
    cfg->hopcount_limit = (int) param_int(P_HOPCOUNT_LIMIT);
    cfg->header_size_limit = (int) param_int(P_HEADER_SIZE_LIMIT);
    cfg->body_checks_size_limit = (int) param_int(P_BODY_CHECKS_SIZE_LIMIT);
    cfg->virtual_alias_recursion_limit = (int) param_int(P_VIRTUAL_ALIAS_RECURSION_LIMIT);
    cfg->virtual_alias_expansion_limit = (int) param_int(P_VIRTUAL_ALIAS_EXPANSION_LIMIT);
    cfg->duplicate_filter_limit = (int) param_int(P_DUPLICATE_FILTER_LIMIT);
    cfg->replace_stray_cr_lf = param_bool(P_CLEANUP_REPLACE_STRAY_CR_LF);
    cfg->always_add_missing_headers = param_bool(P_ALWAYS_ADD_MISSING_HEADERS);
    cfg->long_queue_ids = param_bool(P_ENABLE_LONG_QUEUE_IDS);
    prop = param_str(P_PROPAGATE_UNMATCHED_EXTENSIONS);
    cfg->propagate_canonical = config_list_has(prop, "canonical");
    cfg->propagate_virtual = config_list_has(prop, "virtual");
}

/* The shared context. */

CLEANUP_CTX *cleanup_create(const CLEANUP_CONFIG *cfg, REWRITE *rw, STR *err)
{
    CLEANUP_CTX *ctx = MEM_NEW(CLEANUP_CTX);

    ctx->cfg = *cfg;
    ctx->rw = rw;
    if ((ctx->canonical = rewrite_maps_open("canonical_maps", cfg->canonical_maps, err)) == NULL
	|| (ctx->send_canon = rewrite_maps_open("sender_canonical_maps",
					   cfg->sender_canonical_maps, err)) == NULL
	|| (ctx->rcpt_canon = rewrite_maps_open("recipient_canonical_maps",
					   cfg->recipient_canonical_maps, err)) == NULL
	|| (ctx->virtual = rewrite_maps_open("virtual_alias_maps",
					     cfg->virtual_alias_maps, err)) == NULL
	|| (ctx->header_checks = rewrite_maps_open("header_checks",
						   cfg->header_checks, err)) == NULL
	|| (ctx->body_checks = rewrite_maps_open("body_checks",
						 cfg->body_checks, err)) == NULL) {
	cleanup_free(ctx);
	return NULL;
    }
    return ctx;
}

void    cleanup_free(CLEANUP_CTX *ctx)
{
    if (ctx == NULL)
	return;
    rewrite_maps_free(ctx->canonical);
    rewrite_maps_free(ctx->send_canon);
    rewrite_maps_free(ctx->rcpt_canon);
    rewrite_maps_free(ctx->virtual);
    rewrite_maps_free(ctx->header_checks);
    rewrite_maps_free(ctx->body_checks);
    mem_free(ctx);
}

void    cleanup_info_default(const MESSAGE *m, CLEANUP_INFO *info)
{
    const char *addr = m->client_addr;

    memset(info, 0, sizeof(*info));
    info->uid = -1;
    if ((m->protocol && strcasecmp(m->protocol, "LOCAL") == 0)
	|| addr == NULL || *addr == 0
	|| strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0)
	info->flags |= CLEANUP_FLAG_LOCAL_HEADERS;
}

/* Small containers. */

void    cleanup_list_add(CLEANUP_LIST *l, const char *s)
{
    if (l->n == l->cap) {
	l->cap = l->cap ? 2 * l->cap : 8;
	l->v = mem_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = mem_strdup(s);
}

void    cleanup_list_free(CLEANUP_LIST *l)
{
    for (size_t i = 0; i < l->n; i++)
	mem_free(l->v[i]);
    mem_free(l->v);
    memset(l, 0, sizeof(*l));
}

void    cleanup_set_init(CLEANUP_SET *s, size_t limit)
{
    memset(s, 0, sizeof(*s));
    s->limit = limit;
}

static size_t cleanup_set_hash(const char *key)
{
    size_t  h = 5381;

    for (const unsigned char *p = (const unsigned char *) key; *p; p++) {
	unsigned char ch = *p;

	if (ch >= 'A' && ch <= 'Z')
	    ch = (unsigned char) (ch - 'A' + 'a');
	h = h * 33 + ch;
    }
    return h;
}

static void cleanup_set_grow(CLEANUP_SET *s)
{
    size_t  ncap = s->cap ? 2 * s->cap : 64;
    char  **nslot = mem_calloc(ncap, sizeof(*nslot));

    for (size_t i = 0; i < s->cap; i++) {
	if (s->slot[i]) {
	    size_t  j = cleanup_set_hash(s->slot[i]) & (ncap - 1);

	    while (nslot[j])
		j = (j + 1) & (ncap - 1);
	    nslot[j] = s->slot[i];
	}
    }
    mem_free(s->slot);
    s->slot = nslot;
    s->cap = ncap;
}

int     cleanup_set_check(CLEANUP_SET *s, const char *key)
{
    size_t  j;

    if (s->cap) {
	for (j = cleanup_set_hash(key) & (s->cap - 1); s->slot[j];
	     j = (j + 1) & (s->cap - 1))
	    if (strcasecmp(s->slot[j], key) == 0)
		return 1;
    }
    if (s->limit && s->n >= s->limit)
	return 0;			/* full: no longer remembered */
    if ((s->n + 1) * 2 > s->cap)
	cleanup_set_grow(s);
    for (j = cleanup_set_hash(key) & (s->cap - 1); s->slot[j]; j = (j + 1) & (s->cap - 1))
	 /* void */ ;
    s->slot[j] = mem_strdup(key);
    s->n++;
    return 0;
}

void    cleanup_set_free(CLEANUP_SET *s)
{
    for (size_t i = 0; i < s->cap; i++)
	mem_free(s->slot[i]);
    mem_free(s->slot);
    memset(s, 0, sizeof(*s));
}

/* Errors: the first one decides the reply. */

void    cleanup_set_error(CLEANUP_STATE *st, int status, const char *reply)
{
    if (st->status != CLEANUP_OK)
	return;
    st->status = status;
    str_reset(st->reply);
    str_puts(st->reply, reply);
}

/* cleanup_content - walk the content, line by line */

static void cleanup_content(CLEANUP_STATE *st)
{
    const CLEANUP_CONFIG *cfg = &st->ctx->cfg;
    const char *data = st->m->content ? st->m->content->data : "";
    size_t  len = st->m->content ? st->m->content->len : 0;
    size_t  pos = 0, limit = cfg->header_size_limit > 0 ?
	(size_t) cfg->header_size_limit : (size_t) -1;
    STR     hdr = STR_INIT, line = STR_INIT;
    int     have_hdr = 0, truncated = 0;

    str_reserve(&st->out, len + 1024);
    st->in_headers = 1;
    if (!(st->info.flags & CLEANUP_FLAG_NO_RECEIVED)) {
	cleanup_header_received(st, &hdr);
	cleanup_header_one(st, &hdr);
    }
    while (pos < len && st->status == CLEANUP_OK) {
	size_t  end = pos, next, i;
	const char *nl;

	/* In the body, once no check looks: the rest in one copy. */
	if (!st->in_headers && !cleanup_body_checking(st)) {
	    cleanup_body_rest(st, data + pos, len - pos);
	    break;
	}

	/* A line ends at CRLF; a bare LF is part of the line. */
	for (;;) {
	    if ((nl = memchr(data + end, '\n', len - end)) == NULL) {
		end = next = len;
		break;
	    }
	    i = (size_t) (nl - data);
	    if (i > pos && data[i - 1] == '\r') {
		end = i - 1;
		next = i + 1;
		break;
	    }
	    end = i + 1;
	}
	str_reset(&line);
	str_append(&line, data + pos, end - pos);
	pos = next;
	if (cfg->replace_stray_cr_lf)
	    cleanup_body_fix_stray(line.data, STR_LEN(&line));

	if (st->in_headers) {
	    const char *lp = STR_DATA(&line);
	    size_t  ll = STR_LEN(&line);

	    if (have_hdr && ll > 0 && (lp[0] == ' ' || lp[0] == '\t')) {
		/* A continuation line; past the limit, the rest is cut. */
		if (!truncated) {
		    if (STR_LEN(&hdr) + 2 + ll > limit) {
			size_t  room = STR_LEN(&hdr) + 2 < limit ?
			    limit - STR_LEN(&hdr) - 2 : 0;

			if (room > 0) {
			    str_puts(&hdr, "\r\n");
			    str_append(&hdr, lp, room);
			}
			truncated = 1;
		    } else {
			str_puts(&hdr, "\r\n");
			str_append(&hdr, lp, ll);
		    }
		}
		continue;
	    }
	    if (have_hdr) {
		if (truncated)
		    msg_info("%s: warning: header %.100s... from %s: truncated at %zu bytes",
			     st->m->queue_id, STR_DATA(&hdr), st->origin, limit);
		cleanup_header_one(st, &hdr);
		have_hdr = truncated = 0;
		if (st->status != CLEANUP_OK)
		    break;
	    }
	    if (ll > 0 && cleanup_is_header(lp, ll, NULL)) {
		str_reset(&hdr);
		if (ll > limit) {
		    str_append(&hdr, lp, limit);
		    truncated = 1;
		} else {
		    str_append(&hdr, lp, ll);
		}
		have_hdr = 1;
		continue;
	    }
	    /* The empty line, or a line that cannot be a header: the body
	     * starts. Either way one empty line separates the two. */
	    cleanup_header_done(st);
	    st->in_headers = 0;
	    str_puts(&st->out, "\r\n");
	    if (ll == 0 || st->status != CLEANUP_OK)
		continue;
	}
	cleanup_body_line(st, STR_DATA(&line), STR_LEN(&line));
    }
    if (have_hdr && st->status == CLEANUP_OK)
	cleanup_header_one(st, &hdr);
    if (st->in_headers && st->status == CLEANUP_OK) {
	cleanup_header_done(st);
	st->in_headers = 0;
	str_puts(&st->out, "\r\n");
    }
    str_release(&hdr);
    str_release(&line);
}

int     cleanup_message(CLEANUP_CTX *ctx, MESSAGE *m, const CLEANUP_INFO *info,
			        STR *reply)
{
    CLEANUP_STATE st;
    STR     buf = STR_INIT;
    int     result;

    memset(&st, 0, sizeof(st));
    st.ctx = ctx;
    st.m = m;
    st.reply = reply;
    st.status = CLEANUP_OK;
    str_init(&st.out);
    str_reset(reply);
    if (info)
	st.info = *info;
    else
	cleanup_info_default(m, &st.info);

    if (m->protocol && strcasecmp(m->protocol, "LOCAL") == 0)
	str_puts(&buf, "local");
    else
	str_printf(&buf, "%s[%s]", m->client_name ? m->client_name : "unknown",
		   m->client_addr ? m->client_addr : "unknown");
    st.origin = str_steal(&buf, NULL);
    if (m->nrcpt > 0) {
	RCPT   *r = m->rcpt + m->nrcpt - 1;

	st.log_rcpt = mem_strdup(r->address ? r->address : "");
	if (m->nrcpt == 1)
	    st.first_rcpt = mem_strdup(m->rcpt[0].address ? m->rcpt[0].address : "");
    }

    if (cleanup_addr_sender(&st) == 0)
	cleanup_content(&st);
    if (st.status == CLEANUP_OK)
	cleanup_addr_recipients(&st);
    if (st.status == CLEANUP_OK && m->nrcpt == 0) {
	msg_warn("%s: no recipients", m->queue_id);
	cleanup_set_error(&st, CLEANUP_REJECT, "550 5.1.0 Error: no recipients specified");
    }

    if (st.status == CLEANUP_OK) {
	blob_unref(m->content);
	m->content = blob_adopt(&st.out);
	result = st.discard ? CLEANUP_DISCARD : st.hold ? CLEANUP_HOLD : CLEANUP_OK;
    } else {
	result = st.status;
    }
    str_release(&st.out);
    mem_free(st.origin);
    mem_free(st.log_rcpt);
    mem_free(st.first_rcpt);
    mem_free(st.redirect);
    cleanup_list_free(&st.bcc);
    cleanup_list_free(&st.extracted);
    cleanup_list_free(&st.extracted_resent);
    return result;
}
