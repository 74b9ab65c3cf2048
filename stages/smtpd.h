/*
 * smtpd.h - the SMTP server stage (Postfix's smtpd(8)), public API.
 *
 * smtpd_start() opens nothing itself when given listening sockets, or binds
 * the listed addresses, and runs `threads` I/O threads. Each thread serves
 * many sessions with epoll; a session costs a few hundred bytes while idle.
 * The RFC 5321 dialogue itself is stages/smtpd_proto.c (pure logic), the
 * DATA/BDAT decoder stages/smtpd_data.c, relay control stages/smtpd_check.c,
 * STARTTLS stages/smtpd_tls.c, client limits stages/anvil.c.
 *
 * A complete message goes to the injected submit function, which owns the
 * MESSAGE from then on and calls done() exactly once, from any thread,
 * possibly later: code 250 with text = the queue ID, or a 4xx/5xx code with
 * text like "4.3.0 Error: queue file write error". While it waits, the
 * session is parked (not read); done() wakes its I/O thread through an
 * eventfd. The I/O threads never block.
 *
 * msg->queue_id is already set when submit is called (smtpd assigns it at
 * the first accepted RCPT TO, when it logs "ID: client=host[ip]", as
 * Postfix does when it opens the queue file); a submit function keeps it.
 *
 * Back-pressure: the optional pressure function says how saturated the next
 * stages are. SMTPD_PRESSURE_SLOW: sessions stop reading message content
 * (they resume by themselves, or at once after smtpd_wakeup()).
 * SMTPD_PRESSURE_FULL: in addition, MAIL FROM is answered
 * "451 4.3.0 Error: queue busy, try again later". So memory stays bounded by
 * the number of sessions times one read buffer.
 *
 * Threading: smtpd_start/stop from one controlling thread; smtpd_wakeup and
 * smtpd_session_count from any thread. Configuration is immutable once
 * built and shared by all threads.
 * Diagnostics: smtpd_start() and smtpd_config_build() return NULL with the
 * reason in err; session events are logged as Postfix logs them.
 */
#ifndef SLUICE_SMTPD_H
#define SLUICE_SMTPD_H

#include <stddef.h>
#include <stdbool.h>

#include "engine/str.h"
#include "queue/message.h"

typedef void (*smtpd_done_fn)(void *done_ctx, int code, const char *text);
typedef void (*smtpd_submit_fn)(MESSAGE *msg, smtpd_done_fn done, void *done_ctx);

/* ETRN site ("example.com", "@example.com", "#queueid"): 0 = flush started
 * ("250 Queuing started"), 1 = denied ("459"), -1 = failure ("458"). */
typedef int (*smtpd_etrn_fn)(void *etrn_ctx, const char *site);

#define SMTPD_PRESSURE_NONE	0
#define SMTPD_PRESSURE_SLOW	1	/* stop reading message content */
#define SMTPD_PRESSURE_FULL	2	/* ... and 451 4.3.0 at MAIL FROM */
typedef int (*smtpd_pressure_fn)(void *pressure_ctx);

/* Configuration source: the value of a main.cf parameter by name, or NULL
 * if unknown. Values may hold $name references; smtpd expands them. */
typedef const char *(*smtpd_param_fn)(void *param_ctx, const char *name);

typedef struct SMTPD_CONFIG SMTPD_CONFIG;

/* The engine's parameter table, looked up by name (param_ctx unused). */
const char *smtpd_param_default(void *param_ctx, const char *name);

SMTPD_CONFIG *smtpd_config_build(smtpd_param_fn get, void *param_ctx, STR *err);
void smtpd_config_free(SMTPD_CONFIG *cfg);

typedef struct SMTPD_OPTS {
    const int *listen_fds;	/* listening sockets (O_NONBLOCK is set), or */
    size_t  n_listen_fds;
    const char *const *listen;	/* "127.0.0.1:25", "[::1]:2525", "25" */
    size_t  n_listen;
    int     threads;		/* maxproc; <= 0 means 1 */
    const SMTPD_CONFIG *config;	/* NULL: built from the parameter table */
    smtpd_submit_fn submit;	/* required */
    smtpd_etrn_fn etrn;		/* NULL: ETRN answers 458 */
    void   *etrn_ctx;
    smtpd_pressure_fn pressure;	/* NULL: never saturated */
    void   *pressure_ctx;
} SMTPD_OPTS;

typedef struct SMTPD SMTPD;

SMTPD  *smtpd_start(const SMTPD_OPTS *opts, STR *err);
/* Stops accepting, closes idle sessions, waits for outstanding submissions,
 * joins the threads and closes the sockets smtpd opened itself. */
void    smtpd_stop(SMTPD *smtpd);
void    smtpd_wakeup(SMTPD *smtpd);	/* back-pressure relieved */
/* postfix reload: clients that connect from now on get cfg (the caller
 * keeps the old one alive until smtpd_stop: sessions still use it). */
void    smtpd_set_config(SMTPD *smtpd, const SMTPD_CONFIG *cfg);
size_t  smtpd_session_count(SMTPD *smtpd);
/* Bound port of the first listener (for tests binding port 0). */
int     smtpd_port(SMTPD *smtpd);

/*
 * Takes over a connected socket that someone else accepted (postscreen's
 * hand-off to the "pass" smtpd service): one of the I/O threads serves it
 * from the greeting on, exactly as if it had accepted it. Any thread.
 * Returns 0 (the socket is smtpd's), or -1 when smtpd is stopping (the
 * socket stays the caller's).
 */
int     smtpd_adopt(SMTPD *smtpd, int fd);

/* A listening socket for "host:port", "[host]:port" or "port" (non-blocking,
 * close-on-exec); -1 with the reason in err. For other front ends. */
int     smtpd_listen_socket(const char *spec, STR *err);

#endif
