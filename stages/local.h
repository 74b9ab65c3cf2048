/*
 * local.h - the local(8) delivery agent: final delivery for domains in
 * mydestination, as Postfix's local(8) does it.
 *
 * For each recipient user[+ext]@domain of a request:
 *   - a "Delivered-To: user@domain" header already in the message is a
 *     mail forwarding loop: bounce 5.4.6;
 *   - alias_maps (user+ext, then user): each member of the value is an
 *     address (all of them go out as one new message through the cleanup
 *     stage: "forwarded as NEWID"), "|command", "/file" (mbox; "/dir/" is a
 *     Maildir) or ":include:/file"; commands and files run with the rights
 *     of the alias table's owner (default_privs when root owns it);
 *   - else the user from the password file (unknown: bounce 5.1.1
 *     `unknown user: "name"`), then the first forward_path file that
 *     exists (same member syntax, the user's rights; "\user" or the user's
 *     own name means the mailbox);
 *   - else the mailbox: mailbox_command, or $home/$home_mailbox (a name
 *     ending in "/" is a Maildir), or $mail_spool_directory/user (mbox:
 *     dotlock and fcntl locks, From_ line, >From quoting, empty line).
 * Mailboxes, files and commands get Return-Path:, X-Original-To: and
 * Delivered-To: headers and LF line ends. Commands run under /bin/sh -c
 * with Postfix's environment (SENDER, RECIPIENT, USER, HOME, EXTENSION,
 * DOMAIN, LOCAL, ...) and command_time_limit; exit 75 defers, other
 * codes map through the sys_exits table (mailbox_exec.h).
 *
 * Privileges: as root, work for a user runs in a helper child that drops to
 * that user (mailbox_exec.h); otherwise as the invoking user.
 *
 * Threading: local_agent_deliver() from any thread, never blocks; the work
 * runs on the agent's own worker threads (agent_pool.h); req->done() is
 * called once per request from a worker. local_agent_destroy() waits for
 * every request handed in.
 * Diagnostics: one "to=<...>, relay=local, ... status=..." line per
 * delivery step (delivery_log.h), logged as postfix/local.
 */
#ifndef SLUICE_LOCAL_H
#define SLUICE_LOCAL_H

#include "engine/str.h"
#include "stages/delivery.h"
#include "stages/smtpd.h"

typedef struct LOCAL_AGENT LOCAL_AGENT;

/* Reads its parameters as master.cf service `service` sees them. NULL with
 * the reason in why when an alias table cannot be opened or a value is bad. */
LOCAL_AGENT *local_agent_create(const char *service, STR *why);
void    local_agent_deliver(LOCAL_AGENT *agent, DELIVERY_REQUEST *req);
void    local_agent_destroy(LOCAL_AGENT *agent);

/*
 * Where forwarded mail goes: receive_submit_internal (the cleanup stage)
 * by default. Same contract: -1 when the stage is closed (msg is still the
 * caller's, done never called), else done(ctx, code, text) once, with
 * code 250 and the new queue ID as text on success.
 */
typedef int (*local_submit_fn)(MESSAGE *msg, int cleanup_flags, smtpd_done_fn done,
			       void *done_ctx);
void    local_agent_set_submit(LOCAL_AGENT *agent, local_submit_fn submit);

/*
 * The plan for one alias or .forward value, for tests and `postalias -q`
 * style tools: each member's kind and text, in order, one per line
 * ("address user@x", "command /bin/true", "file /tmp/f", "include /f",
 * "mailbox user" for "\user"). -1 with the reason in err on bad syntax.
 */
int     local_alias_plan(const char *value, STR *out, STR *err);

#endif
