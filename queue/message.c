/*
 * message.c - one message as the stages hand it to each other (message.h).
 */
#include "config.h"

#include <string.h>

#include "engine/mem.h"
#include "queue/message.h"

MESSAGE *message_new(void)
{
    MESSAGE *m = MEM_NEW(MESSAGE);

    m->sender = mem_strdup("");
    return m;
}

void message_free(MESSAGE *m)
{
    if (m == NULL)
	return;
    for (size_t i = 0; i < m->nrcpt; i++) {
	RCPT *r = &m->rcpt[i];

	mem_free(r->address);
	mem_free(r->orig_rcpt);
	mem_free(r->dsn_orcpt);
	mem_free(r->transport);
	mem_free(r->nexthop);
    }
    mem_free(m->rcpt);
    mem_free(m->sender);
    mem_free(m->client_name);
    mem_free(m->client_addr);
    mem_free(m->helo);
    mem_free(m->protocol);
    mem_free(m->tls_info);
    mem_free(m->dsn_envid);
    blob_unref(m->content);
    mem_free(m);
}

RCPT *message_add_rcpt(MESSAGE *m, const char *address, const char *orig_rcpt)
{
    RCPT *r;

    if (m->nrcpt == m->rcpt_cap) {
	m->rcpt_cap = m->rcpt_cap ? 2 * m->rcpt_cap : 1;
	m->rcpt = mem_realloc(m->rcpt, m->rcpt_cap * sizeof(*m->rcpt));
    }
    r = &m->rcpt[m->nrcpt++];
    memset(r, 0, sizeof(*r));
    r->address = mem_strdup(address);
    r->orig_rcpt = orig_rcpt ? mem_strdup(orig_rcpt) : NULL;
    return r;
}
