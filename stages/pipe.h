/*
 * pipe.h - the pipe(8) delivery agent: hands messages to a command named
 * by a master.cf service such as
 *   mypipe unix - n n - - pipe flags=DRhu user=filter argv=/usr/bin/f ${recipient}
 *
 * Attributes (before argv=): flags= (D Delivered-To:, O X-Original-To:,
 * R Return-Path:, F From_ line, B empty line at the end, q quote address
 * local parts, h lower-case domains and ${nexthop}, u lower-case local
 * parts, . dot-stuff lines, > quote "From " lines, X final delivery),
 * user=name[:group] (required; as root the command runs with those rights
 * in a child, never root; not as root only the invoking user is allowed),
 * eol= (default \n), size= (bounce larger messages 5.2.3), null_sender=
 * (default MAILER-DAEMON), directory= (the command's working directory).
 * argv= and the words after it are the command, with ${sender},
 * ${recipient}, ${original_recipient}, ${nexthop}, ${user}, ${extension},
 * ${mailbox}, ${domain}, ${queue_id}, ${size}, ${client_address},
 * ${client_hostname}, ${client_helo}, ${client_protocol} (also $name):
 * a word with a per-recipient macro is repeated once per recipient.
 * With per-recipient macros (or the D or O flag) each recipient gets its
 * own command, unless main.cf sets <service>_destination_recipient_limit.
 *
 * Outcome: exit 0 sent ("delivered via NAME service"); sys_exits codes as
 * Postfix (75 EX_TEMPFAIL defers, 67 EX_NOUSER bounces 5.1.1, ...); any
 * other status bounces with the command's first output line; time limit
 * <service>_time_limit (else command_time_limit) kills the command.
 *
 * Threading and diagnostics as local.h (postfix/pipe, relay=NAME).
 */
#ifndef SLUICE_PIPE_H
#define SLUICE_PIPE_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/str.h"
#include "stages/delivery.h"

#define PIPE_FLAG_DELIVERED	(1<<0)	/* D */
#define PIPE_FLAG_ORIGINAL	(1<<1)	/* O */
#define PIPE_FLAG_RETURN_PATH	(1<<2)	/* R */
#define PIPE_FLAG_FROM		(1<<3)	/* F */
#define PIPE_FLAG_BLANK		(1<<4)	/* B */
#define PIPE_FLAG_QUOTE		(1<<5)	/* q */
#define PIPE_FLAG_FOLD_HOST	(1<<6)	/* h */
#define PIPE_FLAG_FOLD_USER	(1<<7)	/* u */
#define PIPE_FLAG_DOT		(1<<8)	/* . */
#define PIPE_FLAG_QUOTE_FROM	(1<<9)	/* > */
#define PIPE_FLAG_FINAL		(1<<10)	/* X */

/* A service's attributes, as parsed from its master.cf arguments. */
typedef struct PIPE_CONFIG {
    int     flags;
    char   *user;		/* user= name */
    char   *group;		/* user=name:group, or NULL */
    char  **argv;		/* the command's words, unexpanded */
    size_t  argc;
    bool    crlf;		/* eol=\r\n */
    long long size_limit;	/* 0: none */
    char   *null_sender;
    char   *directory;
} PIPE_CONFIG;

int     pipe_config_parse(PIPE_CONFIG *cfg, char *const *args, size_t nargs, STR *why);
void    pipe_config_free(PIPE_CONFIG *cfg);
/* Does the command use a per-recipient macro? */
bool    pipe_config_per_rcpt(const PIPE_CONFIG *cfg);

/* What the macros expand to for one command. */
typedef struct PIPE_VARS {
    const char *sender;
    const char *nexthop;
    const char *queue_id;
    const char *client_address;
    const char *client_hostname;
    const char *client_helo;
    const char *client_protocol;
    long long size;
    const char *const *rcpt;	/* recipients of this command */
    const char *const *orig;	/* their original addresses */
    size_t  nrcpt;
    const char *delims;		/* recipient_delimiter */
} PIPE_VARS;

/* The command's argv (NULL-terminated, mem_alloc'd; free with
 * pipe_argv_free), or NULL with the reason in why. */
char  **pipe_argv_expand(const PIPE_CONFIG *cfg, const PIPE_VARS *vars, STR *why);
void    pipe_argv_free(char **argv);

typedef struct PIPE_AGENT PIPE_AGENT;

PIPE_AGENT *pipe_agent_create(const char *service, STR *why);
void    pipe_agent_deliver(PIPE_AGENT *agent, DELIVERY_REQUEST *req);
void    pipe_agent_destroy(PIPE_AGENT *agent);

#endif
