/*
 * smtpd_proto.h - the SMTP server's inside: the RFC 5321 state machine
 * (smtpd_proto.c), the DATA/BDAT decoder (smtpd_data.c), relay control
 * (smtpd_check.c) and STARTTLS (smtpd_tls.c). Internal to stages/smtpd*.
 *
 * The state machine is pure logic: bytes in, replies out, plus an event
 * that tells the I/O layer what to do next (submit a message, start TLS,
 * sleep, close). It owns no socket, so unit tests and the fuzzer drive it
 * directly.
 *
 * Threading: one SMTPD_PROTO belongs to one thread at a time. An
 * SMTPD_CONFIG is immutable and shared.
 */
#ifndef SLUICE_SMTPD_PROTO_H
#define SLUICE_SMTPD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/str.h"
#include "engine/blob.h"
#include "queue/message.h"
#include "stages/smtpd.h"

/* smtpd_forbid_bare_newline */
#define SMTPD_BARE_LF_NORMALIZE	0
#define SMTPD_BARE_LF_REJECT	1
#define SMTPD_BARE_LF_ALLOW	2	/* "no": old behaviour, <LF>.<LF> ends DATA */

#define SMTPD_TLS_NONE		0
#define SMTPD_TLS_MAY		1
#define SMTPD_TLS_ENCRYPT	2

typedef struct SMTPD_CHECKS SMTPD_CHECKS;

struct SMTPD_CONFIG {
    char   *myhostname;
    char   *banner;
    long long message_size_limit;	/* 0: none */
    int     recipient_limit;
    int     recipient_overshoot_limit;
    int     line_length_limit;
    int     timeout_s;
    int     hard_error_limit;
    int     soft_error_limit;
    int     error_sleep_ms;
    int     conn_count_limit;
    int     conn_rate_limit;
    int     msg_rate_limit;
    int     rate_unit_s;
    int     bare_newline;		/* SMTPD_BARE_LF_* */
    int     bare_newline_reject_code;
    bool    forbid_unauth_pipelining;
    bool    helo_required;
    bool    disable_vrfy;
    bool    smtputf8_enable;
    bool    client_port_logging;
    int     tls_level;			/* SMTPD_TLS_* */
    char   *tls_cert_file;
    char   *tls_key_file;
    void   *tls_ctx;			/* SSL_CTX *, NULL without a certificate */
    SMTPD_CHECKS *checks;
};

/* ---- the state machine (smtpd_proto.c) ---- */

typedef struct SMTPD_PROTO SMTPD_PROTO;

enum smtpd_proto_event {
    SMTPD_EV_INPUT = 0,	/* wants more input */
    SMTPD_EV_FLUSH,	/* output over its bound: write it, then smtpd_proto_resume() */
    SMTPD_EV_SUBMIT,	/* smtpd_proto_take_message(), later smtpd_proto_submit_done() */
    SMTPD_EV_STARTTLS,	/* write output, handshake, then smtpd_proto_tls_done() */
    SMTPD_EV_SLEEP,	/* write output, wait smtpd_proto_sleep_ms(), then resume */
    SMTPD_EV_CLOSE,	/* write output, then close */
};

typedef struct SMTPD_PEER {
    const char *name;		/* "localhost", "unknown" */
    const char *addr;		/* "127.0.0.1", "::1" */
    int     port;
    const char *local_addr;	/* our side, for [ip] destinations; may be NULL */
} SMTPD_PEER;

typedef struct SMTPD_HOOKS {
    smtpd_etrn_fn etrn;
    void   *etrn_ctx;
    smtpd_pressure_fn pressure;
    void   *pressure_ctx;
} SMTPD_HOOKS;

/* Logs "connect from"; hooks may be NULL. */
SMTPD_PROTO *smtpd_proto_new(const SMTPD_CONFIG *cfg, const SMTPD_PEER *peer,
			     const SMTPD_HOOKS *hooks);
/* Sends the greeting, or refuses: early = input that arrived before it. */
void    smtpd_proto_greet(SMTPD_PROTO *p, const char *early, size_t len);
/* Takes all bytes; what cannot be handled now is kept (at most one read). */
void    smtpd_proto_input(SMTPD_PROTO *p, const char *buf, size_t len);
enum smtpd_proto_event smtpd_proto_event(SMTPD_PROTO *p);
STR    *smtpd_proto_output(SMTPD_PROTO *p);	/* replies to write; caller resets */
void    smtpd_proto_resume(SMTPD_PROTO *p);	/* after FLUSH or SLEEP */
int     smtpd_proto_sleep_ms(SMTPD_PROTO *p);
MESSAGE *smtpd_proto_take_message(SMTPD_PROTO *p);
void    smtpd_proto_submit_done(SMTPD_PROTO *p, int code, const char *text);
/* tls_info: "TLSv1.3 with cipher NAME (256/256 bits)", kept in MESSAGE.tls_info. */
void    smtpd_proto_tls_done(SMTPD_PROTO *p, const char *tls_info);
void    smtpd_proto_tls_failed(SMTPD_PROTO *p, const char *reason);
void    smtpd_proto_timeout(SMTPD_PROTO *p);
void    smtpd_proto_eof(SMTPD_PROTO *p);
bool    smtpd_proto_wants_content(SMTPD_PROTO *p);	/* in DATA or BDAT bytes */
bool    smtpd_proto_has_input(SMTPD_PROTO *p);	/* kept input to handle */
const char *smtpd_proto_namaddr(SMTPD_PROTO *p);	/* "host[ip]" for logs */
/* Logs "disconnect from ... commands=N" and frees. */
void    smtpd_proto_free(SMTPD_PROTO *p);

/* ---- the DATA/BDAT content decoder (smtpd_data.c) ---- */

typedef struct SMTPD_DATA {
    STR     content;		/* canonical: CRLF lines, unstuffed */
    long long limit;		/* 0: none */
    long long seen;		/* content bytes, stored or not */
    int     mode;		/* SMTPD_BARE_LF_* */
    int     state;
    bool    bdat;		/* no dot rules, no end marker */
    bool    prev_crlf;		/* the line before ended in <CR><LF> */
    bool    too_big;
    bool    bare_lf;		/* a line ended in a bare <LF> */
    bool    done;		/* end of DATA seen */
} SMTPD_DATA;

void    smtpd_data_init(SMTPD_DATA *d, int mode, bool bdat, long long limit);
/* Returns the number of bytes consumed: all of them, or up to the end of
 * DATA (d->done). */
size_t  smtpd_data_feed(SMTPD_DATA *d, const char *buf, size_t len);
/* BDAT LAST: flush what is pending, end with CRLF. */
void    smtpd_data_finish(SMTPD_DATA *d);
BLOB   *smtpd_data_take(SMTPD_DATA *d);
void    smtpd_data_release(SMTPD_DATA *d);

/* ---- relay control and access restrictions (smtpd_check.c) ---- */

typedef struct SMTPD_CHECK_STATE {
    const char *client_name;
    const char *client_addr;
    const char *local_addr;
    const char *helo;
    const char *sender;
    const char *recipient;
} SMTPD_CHECK_STATE;

/* Builds the restriction lists and tables; NULL with the reason in err. */
SMTPD_CHECKS *smtpd_check_build(smtpd_param_fn get, void *ctx, STR *err);
void    smtpd_check_free(SMTPD_CHECKS *checks);
/* 0 = accepted; else the reply code, with "X.Y.Z text" in reply. */
int     smtpd_check_rcpt(const SMTPD_CHECKS *checks, const SMTPD_CHECK_STATE *st, STR *reply);
/* The expanded value of a parameter ("" when unknown), kept in buf. */
const char *smtpd_conf_value(smtpd_param_fn get, void *ctx, const char *name, STR *buf);
/* Helpers shared with smtpd_proto.c and the tests. */
bool    smtpd_check_is_local(const SMTPD_CHECKS *checks, const char *domain,
			     const char *local_addr);

/* ---- STARTTLS (smtpd_tls.c) ---- */

typedef struct SMTPD_TLS SMTPD_TLS;

#define SMTPD_TLS_OK		1
#define SMTPD_TLS_WANT_READ	(-2)
#define SMTPD_TLS_WANT_WRITE	(-3)
#define SMTPD_TLS_EOF		0
#define SMTPD_TLS_ERROR		(-1)

void   *smtpd_tls_ctx_new(const char *cert_file, const char *key_file, STR *err);
void    smtpd_tls_ctx_free(void *ctx);
SMTPD_TLS *smtpd_tls_new(void *ctx, int fd);
/* SMTPD_TLS_OK when done, WANT_READ/WANT_WRITE, or ERROR (reason in err). */
int     smtpd_tls_handshake(SMTPD_TLS *t, STR *err);
/* > 0 bytes, SMTPD_TLS_EOF, WANT_READ/WANT_WRITE, ERROR. */
long    smtpd_tls_read(SMTPD_TLS *t, void *buf, size_t len);
long    smtpd_tls_write(SMTPD_TLS *t, const void *buf, size_t len);
bool    smtpd_tls_pending(SMTPD_TLS *t);
const char *smtpd_tls_version(SMTPD_TLS *t);
const char *smtpd_tls_cipher(SMTPD_TLS *t);
int     smtpd_tls_bits(SMTPD_TLS *t, int *alg_bits);
void    smtpd_tls_free(SMTPD_TLS *t);

#endif
