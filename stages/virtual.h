/*
 * virtual.h - the virtual(8) delivery agent: mailboxes of hosted domains
 * (virtual_mailbox_domains) that are not system users.
 *
 * For each recipient: a "Delivered-To:" header naming it already is a
 * loop (bounce 5.4.6); virtual_mailbox_maps gives a path relative to
 * virtual_mailbox_base (user@domain, user@domain without the extension,
 * then @domain); a path ending in "/" is a Maildir, else an mbox file
 * (virtual_mailbox_lock, From_ line, >From quoting). virtual_uid_maps and
 * virtual_gid_maps (static:N is common) give the owner; a uid below
 * virtual_minimum_uid is a configuration error (defer). Unknown address:
 * bounce 5.1.1 `unknown user: "user@domain"`. As root the write runs in a
 * helper child with that uid/gid; otherwise as the invoking user.
 *
 * Threading and diagnostics as local.h (logged as postfix/virtual,
 * relay=virtual).
 */
#ifndef SLUICE_VIRTUAL_H
#define SLUICE_VIRTUAL_H

#include "engine/str.h"
#include "stages/delivery.h"

typedef struct VIRTUAL_AGENT VIRTUAL_AGENT;

VIRTUAL_AGENT *virtual_agent_create(const char *service, STR *why);
void    virtual_agent_deliver(VIRTUAL_AGENT *agent, DELIVERY_REQUEST *req);
void    virtual_agent_destroy(VIRTUAL_AGENT *agent);

#endif
