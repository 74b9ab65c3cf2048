/*
 * smtpd_check.c - relay control and access restrictions (Postfix's
 * smtpd_check.c, the part Sluice implements).
 *
 * All restriction lists are evaluated at RCPT TO time, in Postfix's order
 * (smtpd_delay_reject = yes, the Postfix default): smtpd_client_restrictions,
 * smtpd_helo_restrictions, smtpd_sender_restrictions,
 * smtpd_relay_restrictions, smtpd_recipient_restrictions; then, for a
 * recipient in mydestination, local_recipient_maps. A "permit" ends its own
 * list only; the first reject/defer ends everything.
 *
 * Restrictions: permit, reject, defer, dunno, permit_mynetworks,
 * permit_sasl_authenticated (never matches: no SASL yet),
 * permit_auth_destination, reject_unauth_destination,
 * defer_unauth_destination, check_client_access, check_helo_access,
 * check_sender_access, check_recipient_access, reject_non_fqdn_sender,
 * reject_non_fqdn_recipient, reject_non_fqdn_helo_hostname,
 * reject_unverified_recipient, reject_unverified_sender (stages/verify.c).
 *
 * Sluice default: smtpd_relay_restrictions = permit_mynetworks,
 * permit_sasl_authenticated, reject_unauth_destination -- an outside client
 * relaying to an outside domain gets "554 5.7.1 <rcpt>: Relay access
 * denied", never a temporary 454 that would let it retry forever.
 * As Postfix, a configuration whose relay and recipient restrictions have no
 * reject_unauth_destination/defer_unauth_destination/reject/defer is refused
 * ("never an open relay").
 *
 * "Authorised destination": the recipient domain matches mydestination,
 * relay_domains, virtual_alias_domains or virtual_mailbox_domains, or is an
 * address literal of the server ([127.0.0.1]); a local part with routing
 * operators (%, !, @) is never authorised from outside.
 *
 * Threading: SMTPD_CHECKS is immutable after smtpd_check_build(); the match
 * lists and tables it holds are thread safe (engine/matchlist.h, dict.h).
 * Diagnostics: build errors name the parameter and the bad item.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "engine/dict.h"
#include "engine/matchlist.h"
#include "stages/smtpd_proto.h"
#include "stages/verify.h"

enum restriction {
    R_PERMIT, R_REJECT, R_DEFER, R_DUNNO,
    R_PERMIT_MYNETWORKS, R_PERMIT_SASL, R_PERMIT_AUTH_DEST,
    R_REJECT_UNAUTH_DEST, R_DEFER_UNAUTH_DEST,
    R_CHECK_CLIENT, R_CHECK_HELO, R_CHECK_SENDER, R_CHECK_RCPT,
    R_NON_FQDN_SENDER, R_NON_FQDN_RCPT, R_NON_FQDN_HELO,
    R_UNVERIFIED_RCPT, R_UNVERIFIED_SENDER,
};

static const struct {
    const char *name;
    enum restriction type;
} check_names[] = {
    {"permit", R_PERMIT}, {"reject", R_REJECT}, {"defer", R_DEFER},
    {"dunno", R_DUNNO},
    {"permit_mynetworks", R_PERMIT_MYNETWORKS},
    {"permit_sasl_authenticated", R_PERMIT_SASL},
    {"permit_auth_destination", R_PERMIT_AUTH_DEST},
    {"reject_unauth_destination", R_REJECT_UNAUTH_DEST},
    {"defer_unauth_destination", R_DEFER_UNAUTH_DEST},
    {"check_client_access", R_CHECK_CLIENT},
    {"check_helo_access", R_CHECK_HELO},
    {"check_sender_access", R_CHECK_SENDER},
    {"check_recipient_access", R_CHECK_RCPT},
    {"reject_non_fqdn_sender", R_NON_FQDN_SENDER},
    {"reject_non_fqdn_recipient", R_NON_FQDN_RCPT},
    {"reject_non_fqdn_helo_hostname", R_NON_FQDN_HELO},
    {"reject_unverified_recipient", R_UNVERIFIED_RCPT},
    {"reject_unverified_sender", R_UNVERIFIED_SENDER},
};

typedef struct CHECK_ITEM {
    enum restriction type;
    DICT   *dict;			/* check_*_access */
} CHECK_ITEM;

typedef struct CHECK_LIST {
    CHECK_ITEM *items;
    size_t  n;
} CHECK_LIST;

enum list_kind { L_CLIENT, L_HELO, L_SENDER, L_RELAY, L_RCPT, L_COUNT };

static const char *list_params[L_COUNT] = {
    "smtpd_client_restrictions", "smtpd_helo_restrictions",
    "smtpd_sender_restrictions", "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
};

struct SMTPD_CHECKS {
    CHECK_LIST lists[L_COUNT];
    MATCH_LIST *mynetworks;
    MATCH_LIST *mydestination;
    MATCH_LIST *relay_domains;
    MATCH_LIST *virt_alias_domains;
    MATCH_LIST *virt_mailbox_domains;
    DICT  **local_maps;		/* NULL entries: tables that did not open */
    char  **local_map_names;
    size_t  n_local_maps;
    int     relay_code;
    int     access_reject_code;
    int     access_defer_code;
    int     reject_code;
    int     defer_code;
    int     non_fqdn_code;
    int     local_rcpt_code;
    int     unv_rcpt_reject_code;
    int     unv_rcpt_defer_code;
    int     unv_sender_reject_code;
    int     unv_sender_defer_code;
};

enum verdict { V_DUNNO, V_OK, V_REPLY };

/* ---- configuration values, with $name expansion ---- */

/* Core parameters other helpers own; used until the table has them. */
static const struct {
    const char *name;
    const char *value;
} check_fallback[] = {
    {"mydomain", ""},
    {"mydestination", "$myhostname, localhost.$mydomain, localhost"},
    {"mynetworks", "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128"},
    {"relay_domains", ""},
    {"virtual_alias_maps", ""},
    {"virtual_alias_domains", "$virtual_alias_maps"},
    {"virtual_mailbox_maps", ""},
    {"virtual_mailbox_domains", "$virtual_mailbox_maps"},
    {"alias_maps", "hash:/etc/aliases"},
    {"message_size_limit", "10240000"},
};

static void conf_expand(smtpd_param_fn get, void *ctx, const char *name,
			  STR *out, int depth);

static const char *conf_raw(smtpd_param_fn get, void *ctx, const char *name)
{
    const char *v = get ? get(ctx, name) : NULL;

    if (v == NULL)
	v = smtpd_param_default(NULL, name);
    if (v == NULL)
	for (size_t i = 0; i < sizeof(check_fallback) / sizeof(check_fallback[0]); i++)
	    if (strcmp(check_fallback[i].name, name) == 0)
		return check_fallback[i].value;
    return v;
}

static void conf_expand_text(smtpd_param_fn get, void *ctx, const char *v,
			       STR *out, int depth)
{
    while (*v) {
	if (*v != '$') {
	    str_putc(out, *v++);
	    continue;
	}
	v++;
	char    close = 0;
	const char *start;

	if (*v == '{')
	    close = '}';
	else if (*v == '(')
	    close = ')';
	if (close)
	    v++;
	start = v;
	while (isalnum((unsigned char) *v) || *v == '_')
	    v++;
	char   *name = mem_strndup(start, (size_t) (v - start));

	if (close && *v == close)
	    v++;
	if (*name)
	    conf_expand(get, ctx, name, out, depth + 1);
	else
	    str_putc(out, '$');
	mem_free(name);
    }
}

static void conf_expand(smtpd_param_fn get, void *ctx, const char *name,
			  STR *out, int depth)
{
    const char *v;
    char    host[256];

    if (depth > 20)
	return;				/* a loop: stop quietly */
    v = conf_raw(get, ctx, name);
    if ((v == NULL || *v == 0) && strcmp(name, "myhostname") == 0) {
	if (gethostname(host, sizeof(host)) != 0)
	    strcpy(host, "localhost");
	host[sizeof(host) - 1] = 0;
	v = host;
    }
    if (v == NULL)
	return;
    conf_expand_text(get, ctx, v, out, depth);
}

/* The expanded value of a parameter ("" when unknown), in buf. */
const char *smtpd_conf_value(smtpd_param_fn get, void *ctx, const char *name, STR *buf)
{
    str_reset(buf);
    conf_expand(get, ctx, name, buf, 0);
    return STR_DATA(buf);
}

/* ---- building ---- */

static bool check_is_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char *check_next_token(const char **cp)
{
    const char *s = *cp, *start;
    int     brace = 0;

    while (*s && check_is_sep(*s))
	s++;
    if (*s == 0) {
	*cp = s;
	return NULL;
    }
    start = s;
    /* inline:{ a=b, c=d } holds separators inside its braces. */
    while (*s && (brace > 0 || !check_is_sep(*s))) {
	if (*s == '{')
	    brace++;
	else if (*s == '}' && brace > 0)
	    brace--;
	s++;
    }
    *cp = s;
    return mem_strndup(start, (size_t) (s - start));
}

static DICT *check_open_table(const char *spec, STR *err)
{
    if (strncmp(spec, "proxy:", 6) == 0)	/* one shared table service already */
	spec += 6;
    return dict_open(spec, DICT_FLAG_FOLD_KEY, err);
}

static int check_build_list(CHECK_LIST *list, const char *param, const char *spec, STR *err)
{
    const char *cp = spec;
    char   *tok;

    while ((tok = check_next_token(&cp)) != NULL) {
	size_t  i;
	CHECK_ITEM item = {0};

	for (i = 0; i < sizeof(check_names) / sizeof(check_names[0]); i++)
	    if (strcasecmp(tok, check_names[i].name) == 0)
		break;
	if (i == sizeof(check_names) / sizeof(check_names[0])) {
	    str_printf(err, "%s: unknown restriction: \"%s\"", param, tok);
	    mem_free(tok);
	    return -1;
	}
	item.type = check_names[i].type;
	if (item.type >= R_CHECK_CLIENT && item.type <= R_CHECK_RCPT) {
	    char   *table = check_next_token(&cp);
	    STR     derr = STR_INIT;

	    if (table == NULL || strchr(table, ':') == NULL) {
		str_printf(err, "%s: restriction \"%s\" needs a type:table argument", param, tok);
		mem_free(table);
		mem_free(tok);
		return -1;
	    }
	    if ((item.dict = check_open_table(table, &derr)) == NULL) {
		str_printf(err, "%s: %s: %s", param, table, STR_DATA(&derr));
		str_release(&derr);
		mem_free(table);
		mem_free(tok);
		return -1;
	    }
	    mem_free(table);
	}
	mem_free(tok);
	list->items = mem_realloc(list->items, (list->n + 1) * sizeof(*list->items));
	list->items[list->n++] = item;
    }
    return 0;
}

static MATCH_LIST *check_domains(smtpd_param_fn get, void *ctx, const char *name,
				          STR *buf, STR *err)
{
    STR     merr = STR_INIT;
    MATCH_LIST *m = match_list_domains(name, smtpd_conf_value(get, ctx, name, buf), &merr);

    if (m == NULL)
	str_printf(err, "%s: %s", name, STR_DATA(&merr));
    str_release(&merr);
    return m;
}

static int check_code(smtpd_param_fn get, void *ctx, const char *name, STR *buf, int dflt)
{
    const char *v = smtpd_conf_value(get, ctx, name, buf);
    int     code = *v ? atoi(v) : dflt;

    return code >= 400 && code <= 599 ? code : dflt;
}

SMTPD_CHECKS *smtpd_check_build(smtpd_param_fn get, void *ctx, STR *err)
{
    SMTPD_CHECKS *c = MEM_NEW(SMTPD_CHECKS);
    STR     buf = STR_INIT;
    STR     merr = STR_INIT;
    bool    guarded = false;

    for (int l = 0; l < L_COUNT; l++) {
	if (check_build_list(&c->lists[l], list_params[l],
			     smtpd_conf_value(get, ctx, list_params[l], &buf), err) < 0)
	    goto fail;
    }
    for (int l = L_RELAY; l <= L_RCPT; l++)
	for (size_t i = 0; i < c->lists[l].n; i++) {
	    enum restriction t = c->lists[l].items[i].type;

	    if (t == R_REJECT_UNAUTH_DEST || t == R_DEFER_UNAUTH_DEST
		|| t == R_REJECT || t == R_DEFER)
		guarded = true;
	}
    if (!guarded) {
	str_printf(err, "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, "
		   "specify at least one working instance of: reject_unauth_destination, "
		   "defer_unauth_destination, reject, defer");
	goto fail;
    }
    c->mynetworks = match_list_addrs("mynetworks",
			       smtpd_conf_value(get, ctx, "mynetworks", &buf), &merr);
    if (c->mynetworks == NULL) {
	str_printf(err, "mynetworks: %s", STR_DATA(&merr));
	goto fail;
    }
    if ((c->mydestination = check_domains(get, ctx, "mydestination", &buf, err)) == NULL
	|| (c->relay_domains = check_domains(get, ctx, "relay_domains", &buf, err)) == NULL
	|| (c->virt_alias_domains = check_domains(get, ctx, "virtual_alias_domains", &buf, err)) == NULL
	|| (c->virt_mailbox_domains = check_domains(get, ctx, "virtual_mailbox_domains", &buf, err)) == NULL)
	goto fail;

    /*
     * local_recipient_maps: a table that cannot be opened now is kept as a
     * hole that answers "451 4.3.0 Temporary lookup failure", as Postfix
     * answers for an unavailable table, rather than refusing to start.
     */
    const char *cp = smtpd_conf_value(get, ctx, "local_recipient_maps", &buf);
    char   *tok;

    while ((tok = check_next_token(&cp)) != NULL) {
	STR     derr = STR_INIT;
	DICT   *d = check_open_table(tok, &derr);

	if (d == NULL)
	    msg_warn("local_recipient_maps: %s: %s", tok, STR_DATA(&derr));
	c->local_maps = mem_realloc(c->local_maps, (c->n_local_maps + 1) * sizeof(DICT *));
	c->local_map_names = mem_realloc(c->local_map_names,
					 (c->n_local_maps + 1) * sizeof(char *));
	c->local_maps[c->n_local_maps] = d;
	c->local_map_names[c->n_local_maps++] = tok;
	str_release(&derr);
    }
    c->relay_code = check_code(get, ctx, "relay_domains_reject_code", &buf, 554);
    c->access_reject_code = check_code(get, ctx, "access_map_reject_code", &buf, 554);
    c->access_defer_code = check_code(get, ctx, "access_map_defer_code", &buf, 450);
    c->reject_code = check_code(get, ctx, "reject_code", &buf, 554);
    c->defer_code = check_code(get, ctx, "defer_code", &buf, 450);
    c->non_fqdn_code = check_code(get, ctx, "non_fqdn_reject_code", &buf, 504);
    c->local_rcpt_code = check_code(get, ctx, "unknown_local_recipient_reject_code", &buf, 550);
    c->unv_rcpt_reject_code = check_code(get, ctx, "unverified_recipient_reject_code", &buf, 450);
    c->unv_rcpt_defer_code = check_code(get, ctx, "unverified_recipient_defer_code", &buf, 450);
    c->unv_sender_reject_code = check_code(get, ctx, "unverified_sender_reject_code", &buf, 450);
    c->unv_sender_defer_code = check_code(get, ctx, "unverified_sender_defer_code", &buf, 450);
    str_release(&buf);
    str_release(&merr);
    return c;

fail:
    str_release(&buf);
    str_release(&merr);
    smtpd_check_free(c);
    return NULL;
}

void smtpd_check_free(SMTPD_CHECKS *c)
{
    if (c == NULL)
	return;
    for (int l = 0; l < L_COUNT; l++) {
	for (size_t i = 0; i < c->lists[l].n; i++)
	    if (c->lists[l].items[i].dict)
		dict_close(c->lists[l].items[i].dict);
	mem_free(c->lists[l].items);
    }
    if (c->mynetworks)
	match_list_free(c->mynetworks);
    if (c->mydestination)
	match_list_free(c->mydestination);
    if (c->relay_domains)
	match_list_free(c->relay_domains);
    if (c->virt_alias_domains)
	match_list_free(c->virt_alias_domains);
    if (c->virt_mailbox_domains)
	match_list_free(c->virt_mailbox_domains);
    for (size_t i = 0; i < c->n_local_maps; i++) {
	if (c->local_maps[i])
	    dict_close(c->local_maps[i]);
	mem_free(c->local_map_names[i]);
    }
    mem_free(c->local_maps);
    mem_free(c->local_map_names);
    mem_free(c);
}

/* ---- evaluation ---- */

/* The domain of an address, lower-cased, without a trailing dot; "" if none. */
static void check_domain_of(const char *addr, STR *out)
{
    const char *at = strrchr(addr, '@');

    str_reset(out);
    if (at == NULL)
	return;
    for (const char *s = at + 1; *s; s++)
	str_putc(out, tolower((unsigned char) *s));
    if (STR_LEN(out) > 0 && out->data[STR_LEN(out) - 1] == '.')
	str_truncate(out, STR_LEN(out) - 1);
}

static bool check_match(MATCH_LIST *list, const char *key)
{
    return list && match_list_match(list, key) > 0;
}

bool smtpd_check_is_local(const SMTPD_CHECKS *c, const char *domain, const char *local_addr)
{
    if (*domain == 0)
	return true;			/* unqualified: $myorigin, ours */
    if (domain[0] == '[') {
	/* [ip] names us only when it is the address the client reached. */
	size_t  n = strlen(domain);
	const char *ip = domain + 1;

	if (n < 3 || domain[n - 1] != ']' || local_addr == NULL)
	    return false;
	if (strncasecmp(ip, "ipv6:", 5) == 0)
	    ip += 5;
	return strlen(local_addr) == (size_t) (domain + n - 1 - ip)
	    && strncasecmp(ip, local_addr, strlen(local_addr)) == 0;
    }
    return check_match(c->mydestination, domain);
}

static bool check_auth_destination(const SMTPD_CHECKS *c, const SMTPD_CHECK_STATE *st)
{
    STR     dom = STR_INIT;
    const char *at = strrchr(st->recipient, '@');
    bool    ok;
    size_t  llen = at ? (size_t) (at - st->recipient) : strlen(st->recipient);

    /* user%host@ours, host!user@ours: source routing through us. */
    for (size_t i = 0; i < llen; i++)
	if (st->recipient[i] == '%' || st->recipient[i] == '!' || st->recipient[i] == '@')
	    return false;
    check_domain_of(st->recipient, &dom);
    ok = smtpd_check_is_local(c, STR_DATA(&dom), st->local_addr)
	|| check_match(c->relay_domains, STR_DATA(&dom))
	|| check_match(c->virt_alias_domains, STR_DATA(&dom))
	|| check_match(c->virt_mailbox_domains, STR_DATA(&dom));
    str_release(&dom);
    return ok;
}

/* "<x>: Recipient address rejected" and friends. */
static void check_reply_prefix(enum list_kind kind, const SMTPD_CHECK_STATE *st, STR *reply)
{
    switch (kind) {
    case L_CLIENT:
	str_printf(reply, "<%s[%s]>: Client host rejected: ", st->client_name, st->client_addr);
	break;
    case L_HELO:
	str_printf(reply, "<%s>: Helo command rejected: ", st->helo ? st->helo : "");
	break;
    case L_SENDER:
	str_printf(reply, "<%s>: Sender address rejected: ", st->sender);
	break;
    default:
	str_printf(reply, "<%s>: Recipient address rejected: ", st->recipient);
	break;
    }
}

static int check_reject(int code, const char *dsn_in, enum list_kind kind,
			        const SMTPD_CHECK_STATE *st, const char *text, STR *reply)
{
    char    dsn[16];

    if (dsn_in)
	snprintf(dsn, sizeof(dsn), "%s", dsn_in);
    else
	snprintf(dsn, sizeof(dsn), "%c.7.1", code >= 500 ? '5' : '4');
    dsn[0] = code >= 500 ? '5' : '4';	/* the class follows the code */
    str_reset(reply);
    str_printf(reply, "%s ", dsn);
    check_reply_prefix(kind, st, reply);
    str_puts(reply, text);
    return code;
}

static bool check_is_dsn(const char *s, size_t *len)
{
    const char *p = s;

    if ((*p != '4' && *p != '5' && *p != '2') || p[1] != '.')
	return false;
    p += 2;
    if (!isdigit((unsigned char) *p))
	return false;
    while (isdigit((unsigned char) *p))
	p++;
    if (*p++ != '.' || !isdigit((unsigned char) *p))
	return false;
    while (isdigit((unsigned char) *p))
	p++;
    if (*p != ' ' && *p != 0)
	return false;
    *len = (size_t) (p - s);
    return true;
}

/* Applies an access(5) result. */
static enum verdict check_access_result(const SMTPD_CHECKS *c, const char *value,
					        enum list_kind kind,
					        const SMTPD_CHECK_STATE *st,
					        STR *reply, int *code)
{
    const char *v = value;
    size_t  wl;

    while (*v == ' ' || *v == '\t')
	v++;
    for (wl = 0; v[wl] && v[wl] != ' ' && v[wl] != '\t'; wl++)
	 /* word length */ ;
    const char *rest = v + wl;

    while (*rest == ' ' || *rest == '\t')
	rest++;
    if ((wl == 2 && strncasecmp(v, "OK", 2) == 0)
	|| (wl == 6 && strncasecmp(v, "PERMIT", 6) == 0))
	return V_OK;
    if (wl > 0 && strspn(v, "0123456789") == wl && wl != 3)
	return V_OK;			/* a number is OK, as in Postfix */
    if (wl == 5 && strncasecmp(v, "DUNNO", 5) == 0)
	return V_DUNNO;
    if (wl == 6 && strncasecmp(v, "REJECT", 6) == 0) {
	*code = check_reject(c->access_reject_code, NULL, kind, st,
			     *rest ? rest : "Access denied", reply);
	return V_REPLY;
    }
    if (wl == 5 && strncasecmp(v, "DEFER", 5) == 0) {
	*code = check_reject(c->access_defer_code, NULL, kind, st,
			     *rest ? rest : "Access denied", reply);
	return V_REPLY;
    }
    if (wl == 3 && (v[0] == '4' || v[0] == '5') && isdigit((unsigned char) v[1])
	&& isdigit((unsigned char) v[2])) {
	size_t  dl;
	char    dsn[16] = "";

	if (check_is_dsn(rest, &dl) && dl < sizeof(dsn)) {
	    memcpy(dsn, rest, dl);
	    dsn[dl] = 0;
	    rest += dl;
	    while (*rest == ' ')
		rest++;
	}
	*code = check_reject(atoi(v), *dsn ? dsn : NULL, kind, st,
			     *rest ? rest : "Access denied", reply);
	return V_REPLY;
    }
    /* Anything else (FILTER, HOLD, restriction names...): not ours yet. */
    msg_warn("access table result \"%s\" is not supported; treated as DUNNO", value);
    return V_DUNNO;
}

static enum verdict check_lookup(const SMTPD_CHECKS *c, DICT *dict, const char *key,
				         enum list_kind kind, const SMTPD_CHECK_STATE *st,
				         STR *reply, int *code, bool *found)
{
    STR     val = STR_INIT;
    int     r = dict_lookup(dict, key, &val);
    enum verdict v = V_DUNNO;

    *found = false;
    if (r == DICT_ERR) {
	msg_warn("%s lookup error for \"%s\"", dict_name(dict), key);
	*code = 451;
	str_reset(reply);
	str_printf(reply, "4.3.0 <%s>: Temporary lookup failure",
		   kind == L_CLIENT ? st->client_addr
		   : kind == L_HELO ? (st->helo ? st->helo : "")
		   : kind == L_SENDER ? st->sender : st->recipient);
	v = V_REPLY;
	*found = true;
    } else if (r == DICT_FOUND) {
	*found = true;
	v = check_access_result(c, STR_DATA(&val), kind, st, reply, code);
    }
    str_release(&val);
    return v;
}

/* Postfix's order for a domain: the name, then each parent domain. */
static enum verdict check_access_domain(const SMTPD_CHECKS *c, DICT *d, const char *domain,
					        enum list_kind kind, const SMTPD_CHECK_STATE *st,
					        STR *reply, int *code)
{
    bool    found;

    for (const char *s = domain; s && *s; s = strchr(s + 1, '.')) {
	const char *key = (*s == '.') ? s + 1 : s;
	enum verdict v = check_lookup(c, d, key, kind, st, reply, code, &found);

	if (found)
	    return v;
    }
    return V_DUNNO;
}

static enum verdict check_access_addr(const SMTPD_CHECKS *c, DICT *d, const char *addr,
				              enum list_kind kind, const SMTPD_CHECK_STATE *st,
				              STR *reply, int *code)
{
    STR     key = STR_INIT;
    STR     dom = STR_INIT;
    bool    found;
    enum verdict v;
    const char *at = strrchr(addr, '@');

    /* Postfix looks up the null sender as smtpd_null_access_lookup_key. */
    v = check_lookup(c, d, *addr ? addr : "<>", kind, st, reply, code, &found);
    if (!found && at) {
	check_domain_of(addr, &dom);
	v = check_access_domain(c, d, STR_DATA(&dom), kind, st, reply, code);
	if (v == V_DUNNO) {
	    str_append(&key, addr, (size_t) (at - addr) + 1);	/* "user@" */
	    v = check_lookup(c, d, STR_DATA(&key), kind, st, reply, code, &found);
	}
    }
    str_release(&key);
    str_release(&dom);
    return v;
}

static enum verdict check_access_client(const SMTPD_CHECKS *c, DICT *d,
					        const SMTPD_CHECK_STATE *st,
					        STR *reply, int *code)
{
    enum verdict v = V_DUNNO;
    bool    found;
    char    net[64];

    if (strcmp(st->client_name, "unknown") != 0
	&& (v = check_access_domain(c, d, st->client_name, L_CLIENT, st, reply, code)) != V_DUNNO)
	return v;
    v = check_lookup(c, d, st->client_addr, L_CLIENT, st, reply, code, &found);
    if (found)
	return v;
    /* 1.2.3.4 -> 1.2.3, 1.2, 1 */
    snprintf(net, sizeof(net), "%s", st->client_addr);
    char    sep = strchr(net, ':') ? ':' : '.';
    char   *cut;

    while ((cut = strrchr(net, sep)) != NULL) {
	*cut = 0;
	if (*net == 0)
	    break;
	v = check_lookup(c, d, net, L_CLIENT, st, reply, code, &found);
	if (found)
	    return v;
    }
    return V_DUNNO;
}

/*
 * reject_unverified_recipient/sender: ask the verify service (it never
 * waits: an unknown address gets a probe and, meanwhile, the defer code
 * with "Address verification in progress"), in Postfix's words.
 */
static enum verdict check_unverified(const SMTPD_CHECKS *c, const char *addr, bool sender,
				             STR *reply, int *code)
{
    STR     why = STR_INIT;
    enum verify_status vs = verify_query(addr, &why);
    const char *what = sender ? "Sender" : "Recipient";

    if (vs == VERIFY_OK) {
	str_release(&why);
	return V_DUNNO;
    }
    str_reset(reply);
    if (vs == VERIFY_BOUNCE) {
	*code = sender ? c->unv_sender_reject_code : c->unv_rcpt_reject_code;
	str_printf(reply, "%c.1.%c <%s>: %s address rejected: undeliverable address: %s",
		   *code >= 500 ? '5' : '4', sender ? '7' : '1', addr, what, STR_DATA(&why));
    } else {
	*code = sender ? c->unv_sender_defer_code : c->unv_rcpt_defer_code;
	str_printf(reply, "4.1.%c <%s>: %s address rejected: unverified address: %s",
		   sender ? '7' : '1', addr, what, STR_DATA(&why));
    }
    str_release(&why);
    return V_REPLY;
}

static bool check_fqdn(const char *addr)
{
    STR     dom = STR_INIT;
    bool    ok;

    check_domain_of(addr, &dom);
    ok = STR_LEN(&dom) > 0 && (dom.data[0] == '[' || strchr(STR_DATA(&dom), '.') != NULL);
    str_release(&dom);
    return ok;
}

static enum verdict check_list(const SMTPD_CHECKS *c, enum list_kind kind,
			               const SMTPD_CHECK_STATE *st, STR *reply, int *code)
{
    const CHECK_LIST *list = &c->lists[kind];

    for (size_t i = 0; i < list->n; i++) {
	const CHECK_ITEM *it = &list->items[i];
	enum verdict v = V_DUNNO;

	switch (it->type) {
	case R_PERMIT:
	    return V_OK;
	case R_DUNNO:
	case R_PERMIT_SASL:
	    break;
	case R_REJECT:
	    *code = check_reject(c->reject_code, NULL, kind, st, "Access denied", reply);
	    return V_REPLY;
	case R_DEFER:
	    *code = check_reject(c->defer_code, NULL, kind, st, "Try again later", reply);
	    return V_REPLY;
	case R_PERMIT_MYNETWORKS:
	    if (check_match(c->mynetworks, st->client_addr))
		return V_OK;
	    break;
	case R_PERMIT_AUTH_DEST:
	    if (st->recipient && check_auth_destination(c, st))
		return V_OK;
	    break;
	case R_REJECT_UNAUTH_DEST:
	case R_DEFER_UNAUTH_DEST:
	    if (st->recipient && !check_auth_destination(c, st)) {
		bool    defer = it->type == R_DEFER_UNAUTH_DEST;

		*code = defer ? 454 : c->relay_code;
		str_reset(reply);
		str_printf(reply, "%s <%s>: Relay access denied",
			   *code >= 500 ? "5.7.1" : "4.7.1", st->recipient);
		return V_REPLY;
	    }
	    break;
	case R_CHECK_CLIENT:
	    v = check_access_client(c, it->dict, st, reply, code);
	    break;
	case R_CHECK_HELO:
	    if (st->helo)
		v = check_access_domain(c, it->dict, st->helo, kind, st, reply, code);
	    break;
	case R_CHECK_SENDER:
	    if (st->sender)
		v = check_access_addr(c, it->dict, st->sender, kind, st, reply, code);
	    break;
	case R_CHECK_RCPT:
	    if (st->recipient)
		v = check_access_addr(c, it->dict, st->recipient, kind, st, reply, code);
	    break;
	case R_NON_FQDN_SENDER:
	    if (st->sender && *st->sender && !check_fqdn(st->sender)) {
		str_reset(reply);
		str_printf(reply, "%c.5.2 <%s>: Sender address rejected: need fully-qualified address",
			   c->non_fqdn_code >= 500 ? '5' : '4', st->sender);
		*code = c->non_fqdn_code;
		return V_REPLY;
	    }
	    break;
	case R_NON_FQDN_RCPT:
	    if (st->recipient && !check_fqdn(st->recipient)) {
		str_reset(reply);
		str_printf(reply, "%c.5.2 <%s>: Recipient address rejected: need fully-qualified address",
			   c->non_fqdn_code >= 500 ? '5' : '4', st->recipient);
		*code = c->non_fqdn_code;
		return V_REPLY;
	    }
	    break;
	case R_UNVERIFIED_RCPT:
	    if (st->recipient && *st->recipient)
		v = check_unverified(c, st->recipient, false, reply, code);
	    break;
	case R_UNVERIFIED_SENDER:
	    /* The null sender is always deliverable. */
	    if (st->sender && *st->sender)
		v = check_unverified(c, st->sender, true, reply, code);
	    break;
	case R_NON_FQDN_HELO:
	    if (st->helo && strchr(st->helo, '.') == NULL && st->helo[0] != '[') {
		str_reset(reply);
		str_printf(reply, "%c.5.2 <%s>: Helo command rejected: need fully-qualified hostname",
			   c->non_fqdn_code >= 500 ? '5' : '4', st->helo);
		*code = c->non_fqdn_code;
		return V_REPLY;
	    }
	    break;
	}
	if (v != V_DUNNO)
	    return v;
    }
    return V_DUNNO;
}

/* local_recipient_maps for a recipient in mydestination. */
static int check_local_rcpt(const SMTPD_CHECKS *c, const SMTPD_CHECK_STATE *st, STR *reply)
{
    STR     dom = STR_INIT;
    STR     key = STR_INIT;
    STR     val = STR_INIT;
    int     code = 0;
    bool    tmpfail = false;
    const char *at = strrchr(st->recipient, '@');

    if (c->n_local_maps == 0)
	return 0;
    check_domain_of(st->recipient, &dom);
    if (!smtpd_check_is_local(c, STR_DATA(&dom), st->local_addr)) {
	str_release(&dom);
	return 0;
    }
    /* Local part, lower-cased; "user+ext" also as "user". */
    for (const char *s = st->recipient; *s && s != at; s++)
	str_putc(&key, tolower((unsigned char) *s));
    for (int pass = 0; pass < 2 && code == 0; pass++) {
	bool    found = false;

	if (pass == 1) {
	    char   *plus = strchr(key.data ? key.data : "", '+');

	    if (plus == NULL)
		break;
	    str_truncate(&key, (size_t) (plus - key.data));
	}
	for (size_t i = 0; i < c->n_local_maps && !found; i++) {
	    int     r = c->local_maps[i] ? dict_lookup(c->local_maps[i], STR_DATA(&key), &val)
	    : DICT_ERR;

	    if (r == DICT_FOUND)
		found = true;
	    else if (r == DICT_ERR)
		tmpfail = true;
	}
	if (found) {
	    code = -1;
	    break;
	}
    }
    if (code == -1)
	code = 0;
    else if (tmpfail) {
	code = 451;
	str_reset(reply);
	str_printf(reply, "4.3.0 <%s>: Temporary lookup failure", st->recipient);
    } else {
	code = c->local_rcpt_code;
	str_reset(reply);
	str_printf(reply, "%s <%s>: Recipient address rejected: User unknown in local recipient table",
		   code >= 500 ? "5.1.1" : "4.1.1", st->recipient);
    }
    str_release(&dom);
    str_release(&key);
    str_release(&val);
    return code;
}

int smtpd_check_rcpt(const SMTPD_CHECKS *c, const SMTPD_CHECK_STATE *st, STR *reply)
{
    int     code = 0;

    for (int l = 0; l < L_COUNT; l++) {
	enum verdict v = check_list(c, (enum list_kind) l, st, reply, &code);

	if (v == V_REPLY)
	    return code;
    }
    return check_local_rcpt(c, st, reply);
}
