/*
 * cleanup_addr.c - envelope and header addresses: canonical form,
 * canonical maps (one to one), virtual alias expansion (one to many),
 * duplicate recipients, and the recipients of sendmail -t.
 *
 * Order, as Postfix's cleanup(8): sender -> canonical form ->
 * sender_canonical_maps -> canonical_maps; recipient -> canonical form ->
 * recipient_canonical_maps -> canonical_maps -> virtual_alias_maps. Every
 * table result is put in canonical form again ("bob" -> "bob@$myorigin").
 *
 * Virtual alias expansion walks a growing list: each address is looked
 * up until it no longer maps (or maps to itself, which keeps it: the
 * "been here" set stops the walk); more than
 * virtual_alias_recursion_limit steps on one address or more than
 * virtual_alias_expansion_limit addresses defer the message
 * ("451 4.6.0 Alias expansion error"), as Postfix does.
 *
 * Threading: per-message state only. Diagnostics: limits and table
 * errors are msg_warn()ed with Postfix's wording.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "stages/addr_parse.h"
#include "stages/cleanup_priv.h"

#define CLEANUP_MAP11_RECURSION	10	/* Postfix's MAX_RECURSION */

/* cleanup_addr_is_local - may "user" (no domain) keys be used? */

static int cleanup_addr_is_local(CLEANUP_STATE *st, const char *addr)
{
    const REWRITE_CONFIG *rcfg = rewrite_config(st->ctx->rw);
    const char *at = strrchr(addr, '@');

    if (at == NULL)
	return 1;
    if (rcfg->myorigin && strcasecmp(at + 1, rcfg->myorigin) == 0)
	return 1;
    return rewrite_domain_is_local(st->ctx->rw, at + 1) > 0;
}

/* cleanup_addr_result - table result to a list of canonical addresses */

static void cleanup_addr_result(CLEANUP_STATE *st, const char *value,
				        CLEANUP_LIST *out)
{
    ADDR_LIST list;
    STR     canon = STR_INIT;

    addr_list_init(&list);
    addr_parse_list(value, strlen(value), &list);
    for (size_t i = 0; i < list.n; i++) {
	rewrite_address(st->ctx->rw, list.v[i].addr, &canon);
	cleanup_list_add(out, STR_DATA(&canon));
    }
    str_release(&canon);
    addr_list_free(&list);
}

/* cleanup_addr_map11 - one-to-one mapping; 0 = done, -1 = deferred */

static int cleanup_addr_map11(CLEANUP_STATE *st, REWRITE_MAPS *maps,
			              int propagate, STR *addr)
{
    const REWRITE_CONFIG *rcfg = rewrite_config(st->ctx->rw);
    STR     value = STR_INIT;
    int     rc = 0;

    if (rewrite_maps_empty(maps) || STR_LEN(addr) == 0)
	return 0;
    for (int count = 0;; count++) {
	CLEANUP_LIST res = {0};
	int     found, same;

	if (count >= CLEANUP_MAP11_RECURSION) {
	    msg_warn("%s: unreasonable %s map nesting for %s -- "
		     "message not accepted, try again later",
		     st->m->queue_id, rewrite_maps_title(maps), STR_DATA(addr));
	    cleanup_set_error(st, CLEANUP_DEFER, "451 4.6.0 Alias expansion error");
	    rc = -1;
	    break;
	}
	found = rewrite_maps_find_addr(maps, STR_DATA(addr), rcfg->recipient_delimiter,
				       cleanup_addr_is_local(st, STR_DATA(addr)),
				       propagate, &value);
	if (found == DICT_ERR) {
	    msg_warn("%s: %s map lookup problem for %s -- "
		     "message not accepted, try again later",
		     st->m->queue_id, rewrite_maps_title(maps), STR_DATA(addr));
	    cleanup_set_error(st, CLEANUP_DEFER, "451 4.3.0 Error: queue file write error");
	    rc = -1;
	    break;
	}
	if (found != DICT_FOUND)
	    break;
	cleanup_addr_result(st, STR_DATA(&value), &res);
	if (res.n == 0) {
	    cleanup_list_free(&res);
	    break;
	}
	if (res.n > 1)
	    msg_warn("%s: multi-valued %s entry for %s",
		     st->m->queue_id, rewrite_maps_title(maps), STR_DATA(addr));
	same = strcasecmp(res.v[0], STR_DATA(addr)) == 0;
	str_set(addr, res.v[0]);
	cleanup_list_free(&res);
	if (same)
	    break;			/* maps to itself: done */
    }
    str_release(&value);
    return rc;
}

/* cleanup_addr_canonical - canonical form, then class and common maps */

static int cleanup_addr_canonical(CLEANUP_STATE *st, int sender_class,
				          const char *in, STR *out)
{
    CLEANUP_CTX *ctx = st->ctx;

    rewrite_address(ctx->rw, in, out);
    if (cleanup_addr_map11(st, sender_class ? ctx->send_canon : ctx->rcpt_canon,
			   ctx->cfg.propagate_canonical, out) < 0)
	return -1;
    return cleanup_addr_map11(st, ctx->canonical, ctx->cfg.propagate_canonical, out);
}

int     cleanup_addr_sender(CLEANUP_STATE *st)
{
    MESSAGE *m = st->m;
    STR     addr = STR_INIT;
    int     rc;

    if (m->sender == NULL || *m->sender == 0)
	return 0;			/* the null sender stays null */
    rc = cleanup_addr_canonical(st, 1, m->sender, &addr);
    if (rc == 0 && strcmp(STR_DATA(&addr), m->sender) != 0) {
	mem_free(m->sender);
	m->sender = mem_strdup(STR_DATA(&addr));
    }
    str_release(&addr);
    return rc;
}

/* cleanup_addr_virtual - virtual alias expansion of one address */

static int cleanup_addr_virtual(CLEANUP_STATE *st, const char *addr,
				        CLEANUP_LIST *out)
{
    CLEANUP_CTX *ctx = st->ctx;
    const REWRITE_CONFIG *rcfg = rewrite_config(ctx->rw);
    CLEANUP_SET been;
    STR     value = STR_INIT;
    int     rc = 0;

    cleanup_list_add(out, addr);
    if (rewrite_maps_empty(ctx->virtual))
	return 0;
    cleanup_set_init(&been, 0);
    for (size_t arg = 0; arg < out->n && rc == 0; arg++) {
	if (out->n > (size_t) ctx->cfg.virtual_alias_expansion_limit) {
	    msg_warn("%s: unreasonable virtual_alias_maps map expansion size for %s -- "
		     "message not accepted, try again later", st->m->queue_id, addr);
	    cleanup_set_error(st, CLEANUP_DEFER, "451 4.6.0 Alias expansion error");
	    rc = -1;
	    break;
	}
	for (int count = 0;; count++) {
	    CLEANUP_LIST res = {0};
	    char   *saved;
	    int     found;

	    if (cleanup_set_check(&been, out->v[arg]))
		break;
	    if (count >= ctx->cfg.virtual_alias_recursion_limit) {
		msg_warn("%s: unreasonable virtual_alias_maps map nesting for %s -- "
			 "message not accepted, try again later",
			 st->m->queue_id, addr);
		cleanup_set_error(st, CLEANUP_DEFER, "451 4.6.0 Alias expansion error");
		rc = -1;
		break;
	    }
	    found = rewrite_maps_find_addr(ctx->virtual, out->v[arg],
					   rcfg->recipient_delimiter,
					   cleanup_addr_is_local(st, out->v[arg]),
					   ctx->cfg.propagate_virtual, &value);
	    if (found == DICT_ERR) {
		msg_warn("%s: virtual_alias_maps map lookup problem for %s -- "
			 "message not accepted, try again later",
			 st->m->queue_id, out->v[arg]);
		cleanup_set_error(st, CLEANUP_DEFER,
				  "451 4.3.0 Error: queue file write error");
		rc = -1;
		break;
	    }
	    if (found != DICT_FOUND)
		break;
	    cleanup_addr_result(st, STR_DATA(&value), &res);
	    saved = mem_strdup(out->v[arg]);
	    for (size_t i = 0; i < res.n; i++) {
		if (i == 0) {
		    mem_free(out->v[arg]);
		    out->v[arg] = mem_strdup(res.v[0]);
		} else {
		    cleanup_list_add(out, res.v[i]);
		}
		/* An address may expand into itself (once): keep it. */
		if (strcasecmp(saved, res.v[i]) == 0)
		    (void) cleanup_set_check(&been, saved);
	    }
	    mem_free(saved);
	    cleanup_list_free(&res);
	}
    }
    cleanup_set_free(&been);
    str_release(&value);
    return rc;
}

typedef struct CLEANUP_RIN {		/* one input recipient */
    const char *address;
    const char *orig;
    const char *dsn_orcpt;
    int     dsn_notify;
} CLEANUP_RIN;

int     cleanup_addr_recipients(CLEANUP_STATE *st)
{
    MESSAGE *m = st->m;
    const REWRITE_CONFIG *rcfg = rewrite_config(st->ctx->rw);
    CLEANUP_RIN *in;
    size_t  nin = 0, cap;
    CLEANUP_LIST *ext;
    RCPT   *old = m->rcpt;
    size_t  nold = m->nrcpt;
    CLEANUP_SET dups;
    STR     canon = STR_INIT, key = STR_INIT;
    int     rc = 0;

    /* The input list: envelope recipients (all replaced by REDIRECT),
     * sendmail -t recipients (Resent- ones win), BCC action addresses. */
    ext = st->extracted_resent.n ? &st->extracted_resent : &st->extracted;
    cap = nold + ext->n + st->bcc.n + 1;
    in = mem_calloc(cap, sizeof(*in));
    for (size_t i = 0; i < nold; i++) {
	in[nin].address = st->redirect ? st->redirect : old[i].address;
	in[nin].orig = old[i].orig_rcpt ? old[i].orig_rcpt : old[i].address;
	in[nin].dsn_orcpt = old[i].dsn_orcpt;
	in[nin].dsn_notify = old[i].dsn_notify;
	nin++;
    }
    if (st->info.flags & CLEANUP_FLAG_EXTRACT) {
	for (size_t i = 0; i < ext->n; i++) {
	    in[nin].address = st->redirect ? st->redirect : ext->v[i];
	    in[nin].orig = ext->v[i];
	    nin++;
	}
    }
    for (size_t i = 0; i < st->bcc.n; i++) {
	in[nin].address = st->bcc.v[i];
	in[nin].orig = st->bcc.v[i];
	nin++;
    }

    m->rcpt = NULL;
    m->nrcpt = m->rcpt_cap = 0;
    cleanup_set_init(&dups, (size_t) (st->ctx->cfg.duplicate_filter_limit > 0 ?
				       st->ctx->cfg.duplicate_filter_limit : 0));
    for (size_t i = 0; i < nin && rc == 0; i++) {
	const char *a = in[i].address ? in[i].address : "";
	CLEANUP_LIST exp = {0};

	if (*a == 0)
	    a = rcfg->empty_address_recipient;
	if ((rc = cleanup_addr_canonical(st, 0, a, &canon)) < 0)
	    break;
	if ((rc = cleanup_addr_virtual(st, STR_DATA(&canon), &exp)) == 0) {
	    for (size_t j = 0; j < exp.n; j++) {
		RCPT   *r;

		str_reset(&key);
		str_printf(&key, "%s\n%d\n%s\n%s", in[i].dsn_orcpt ? in[i].dsn_orcpt : "",
			   in[i].dsn_notify, in[i].orig ? in[i].orig : "", exp.v[j]);
		if (cleanup_set_check(&dups, STR_DATA(&key)))
		    continue;
		r = message_add_rcpt(m, exp.v[j], in[i].orig);
		r->dsn_orcpt = in[i].dsn_orcpt ? mem_strdup(in[i].dsn_orcpt) : NULL;
		r->dsn_notify = in[i].dsn_notify;
	    }
	}
	cleanup_list_free(&exp);
    }
    cleanup_set_free(&dups);
    str_release(&canon);
    str_release(&key);
    mem_free(in);
    for (size_t i = 0; i < nold; i++) {
	mem_free(old[i].address);
	mem_free(old[i].orig_rcpt);
	mem_free(old[i].dsn_orcpt);
	mem_free(old[i].transport);
	mem_free(old[i].nexthop);
    }
    mem_free(old);
    return rc;
}

int     cleanup_addr_header(CLEANUP_STATE *st, int sender_class,
			            const char *value, size_t len, STR *out)
{
    ADDR_LIST list;
    char  **repl;
    STR     canon = STR_INIT;
    int     changed = 0, rc = 0;

    addr_list_init(&list);
    addr_parse_list(value, len, &list);
    repl = mem_calloc(list.n + 1, sizeof(*repl));
    for (size_t i = 0; i < list.n; i++) {
	if (*list.v[i].addr == 0)
	    continue;
	if (cleanup_addr_canonical(st, sender_class, list.v[i].addr, &canon) < 0) {
	    rc = -1;
	    break;
	}
	if (strcmp(STR_DATA(&canon), list.v[i].addr) != 0) {
	    repl[i] = mem_strdup(STR_DATA(&canon));
	    changed = 1;
	}
    }
    if (rc == 0 && changed) {
	addr_list_splice(value, len, &list, repl, out);
	rc = 1;
    }
    for (size_t i = 0; i < list.n; i++)
	mem_free(repl[i]);
    mem_free(repl);
    str_release(&canon);
    addr_list_free(&list);
    return rc;
}

void    cleanup_addr_extract(const char *value, size_t len, CLEANUP_LIST *list)
{
    ADDR_LIST alist;

    addr_list_init(&alist);
    addr_parse_list(value, len, &alist);
    for (size_t i = 0; i < alist.n; i++)
	if (*alist.v[i].addr)
	    cleanup_list_add(list, alist.v[i].addr);
    addr_list_free(&alist);
}
