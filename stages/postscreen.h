/*
 * postscreen.h - the zombie blocker in front of smtpd (Postfix's
 * postscreen(8)).
 *
 * master.cf:  smtp   inet n - n - 1 postscreen
 *             smtpd  pass - - n - - smtpd
 * postscreen owns the public listener. For each connection it logs
 * "CONNECT from [ip]:port to [ip]:port", consults postscreen_access_list
 * (ALLOWLISTED: straight to smtpd; DENYLISTED: postscreen_denylist_action)
 * and its temporary allowlist (postscreen_cache_map: "PASS OLD", straight to
 * smtpd). Other clients get the first line of a multi-line greeting
 * ("220-banner") and postscreen_greet_wait to stay silent (the pregreet
 * test: "PREGREET N after T from [ip]:port: text", postscreen_greet_action),
 * while the DNSBL queries of postscreen_dnsbl_sites run ("DNSBL rank N for
 * [ip]:port" at postscreen_dnsbl_threshold, postscreen_dnsbl_action). A
 * client that passes every test is "PASS NEW", remembered, and handed to
 * smtpd, whose "220 banner" ends the greeting. The actions: ignore (log,
 * hand off, do not remember), enforce (a dummy SMTP engine answers every
 * RCPT "550 5.7.1 Service unavailable; client [ip] blocked using site" or
 * "550 5.5.1 Protocol error", logs Postfix's "NOQUEUE: reject: RCPT from
 * [ip]:port: ..." line, and "DISCONNECT [ip]:port" at the end), drop (a
 * "521" reply and the connection closes).
 *
 * Threading: one thread serves every connection (as Postfix's single
 * postscreen process does), with epoll; start/stop from the engine's main
 * thread. The hand-off function is called on that thread.
 * Diagnostics: postscreen_start() returns NULL with the reason in err;
 * session events are logged as Postfix's postscreen logs them.
 */
#ifndef SLUICE_POSTSCREEN_H
#define SLUICE_POSTSCREEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/str.h"

/* 0: the socket is taken; -1: refused (postscreen closes it). */
typedef int (*postscreen_handoff_fn)(void *ctx, int fd);

typedef struct POSTSCREEN_OPTS {
    const char *const *listen;	/* "127.0.0.1:25", "[::1]:25", "25" */
    size_t  n_listen;
    const char *service;	/* "smtp/inet": whose -o overrides apply */
    postscreen_handoff_fn handoff;	/* required */
    void   *handoff_ctx;
} POSTSCREEN_OPTS;

typedef struct POSTSCREEN POSTSCREEN;

POSTSCREEN *postscreen_start(const POSTSCREEN_OPTS *opts, STR *err);
/* Closes the listeners and every session still under test, joins. */
void    postscreen_stop(POSTSCREEN *ps);
int     postscreen_port(POSTSCREEN *ps);	/* first listener's port */

/* ---- INTERNAL: DNSBL queries (postscreen_dnsbl.c), for tests too ---- */

#define PSC_DNSBL_MAX	32		/* sites */

typedef struct PSC_DNSBL PSC_DNSBL;

/* One client's lookups: filled in as replies come. */
typedef struct PSC_DNSBL_SCORE {
    int     score;
    int     pending;		/* queries without a reply */
    const char *site;		/* the listing site with the largest weight */
    int     site_weight;
    uint16_t ids[PSC_DNSBL_MAX];
    int     nids;
    void   *owner;
} PSC_DNSBL_SCORE;

/* sites: postscreen_dnsbl_sites ("name[=filter][*weight]", ...); server:
 * "ip[:port]" or "" (resolv.conf's first nameserver). NULL with err. */
PSC_DNSBL *psc_dnsbl_create(const char *sites, const char *server, STR *err);
size_t  psc_dnsbl_nsites(const PSC_DNSBL *d);
int     psc_dnsbl_fd(const PSC_DNSBL *d);	/* the UDP socket, for epoll */
/* Sends one query per site for client_addr; sc->pending counts them. */
void    psc_dnsbl_start(PSC_DNSBL *d, PSC_DNSBL_SCORE *sc, const char *client_addr);
/* Forgets the queries of sc (its replies will be ignored). */
void    psc_dnsbl_cancel(PSC_DNSBL *d, PSC_DNSBL_SCORE *sc);
/* Reads every reply that is waiting; done(sc) when sc->pending drops to 0. */
void    psc_dnsbl_input(PSC_DNSBL *d, void (*done)(PSC_DNSBL_SCORE *sc));
void    psc_dnsbl_free(PSC_DNSBL *d);
/* The DNS name for client_addr at site ("2.0.0.127.zen.example"); -1 if
 * the address is not an IPv4 or IPv6 literal. */
int     psc_dnsbl_name(const char *client_addr, const char *site, STR *out);

#endif
