/*
 * smtp_tls.c - client-side TLS for the SMTP/LMTP client (STARTTLS).
 *
 * PURPOSE
 *   One SSL_CTX per agent (TLS 1.2 or better, smtp_tls_CAfile plus the
 *   system's default trust store), one SSL per session on a non-blocking
 *   socket. smtp_tls_security_level:
 *     may, encrypt  no certificate check (Postfix: opportunistic and
 *                   mandatory encryption authenticate nothing);
 *     verify        the chain must verify and the certificate must name
 *                   the host we meant (the MX host name, or the nexthop
 *                   host in [host]); otherwise "Server certificate not
 *                   verified".
 *   SNI (smtp_tls_servername): "" sends none, "hostname" the host name,
 *   "nexthop" the nexthop host, anything else is sent literally. Numeric
 *   addresses are never sent as SNI (RFC 6066).
 *
 * THREADING
 *   The SSL_CTX is shared read-only; an SMTP_TLS belongs to the I/O thread
 *   of its session. ERR_clear_error() before each SSL call because the
 *   error queue is per thread.
 *
 * DIAGNOSTICS
 *   Handshake errors are returned as text in why (OpenSSL's reason).
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "stages/smtp.h"

struct SMTP_TLS_CTX {
    SSL_CTX *ctx;
};

struct SMTP_TLS {
    SSL    *ssl;
    enum smtp_tls_level level;
};

SMTP_TLS_CTX *smtp_tls_ctx_create(const SMTP_CONFIG *cfg, STR *why)
{
    SMTP_TLS_CTX *t;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
	str_puts(why, "cannot create the TLS client context");
	return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_default_verify_paths(ctx);
    if (cfg->tls_cafile[0] && SSL_CTX_load_verify_locations(ctx, cfg->tls_cafile, NULL) != 1) {
	str_printf(why, "cannot load smtp_tls_CAfile %s", cfg->tls_cafile);
	SSL_CTX_free(ctx);
	return NULL;
    }
    t = MEM_NEW(SMTP_TLS_CTX);
    t->ctx = ctx;
    return t;
}

void    smtp_tls_ctx_free(SMTP_TLS_CTX *t)
{
    if (t) {
	SSL_CTX_free(t->ctx);
	mem_free(t);
    }
}

static bool smtp_tls_is_addr(const char *name)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

SMTP_TLS *smtp_tls_start(SMTP_TLS_CTX *t, int fd, enum smtp_tls_level level,
			 const char *sni, const char *match_name)
{
    SMTP_TLS *tls = MEM_NEW(SMTP_TLS);

    ERR_clear_error();
    tls->ssl = SSL_new(t->ctx);
    tls->level = level;
    if (tls->ssl == NULL)
	msg_fatal("smtp_tls_start: SSL_new failed");
    SSL_set_fd(tls->ssl, fd);
    SSL_set_connect_state(tls->ssl);
    if (sni && *sni && !smtp_tls_is_addr(sni))
	SSL_set_tlsext_host_name(tls->ssl, sni);
    if (level == SMTP_TLS_VERIFY) {
	SSL_set_verify(tls->ssl, SSL_VERIFY_NONE, NULL);	/* checked after */
	if (match_name && *match_name) {
	    if (smtp_tls_is_addr(match_name))
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls->ssl), match_name);
	    else {
		SSL_set_hostflags(tls->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		SSL_set1_host(tls->ssl, match_name);
	    }
	}
    } else
	SSL_set_verify(tls->ssl, SSL_VERIFY_NONE, NULL);
    return tls;
}

static enum smtp_tls_io smtp_tls_error(SMTP_TLS *tls, int ret, STR *why)
{
    int     err = SSL_get_error(tls->ssl, ret);
    unsigned long e;

    switch (err) {
    case SSL_ERROR_WANT_READ:
	return SMTP_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
	return SMTP_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
	return SMTP_TLS_EOF;
    case SSL_ERROR_SYSCALL:
	if (ERR_peek_error() == 0) {
	    if (why)
		str_puts(why, "lost connection");
	    return SMTP_TLS_EOF;
	}
	/* FALLTHROUGH */
    default:
	e = ERR_get_error();
	if (why) {
	    char    buf[256];

	    ERR_error_string_n(e, buf, sizeof(buf));
	    str_printf(why, "%s", e ? buf : "TLS protocol error");
	}
	return SMTP_TLS_ERROR;
    }
}

enum smtp_tls_io smtp_tls_handshake(SMTP_TLS *tls, STR *why)
{
    int     ret;

    ERR_clear_error();
    ret = SSL_do_handshake(tls->ssl);
    if (ret != 1) {
	enum smtp_tls_io io = smtp_tls_error(tls, ret, why);

	return io == SMTP_TLS_EOF ? SMTP_TLS_ERROR : io;
    }
    if (tls->level == SMTP_TLS_VERIFY) {
	long    vr = SSL_get_verify_result(tls->ssl);
	X509   *peer = SSL_get0_peer_certificate(tls->ssl);

	if (peer == NULL || vr != X509_V_OK) {
	    str_printf(why, "Server certificate not verified (%s)",
		       peer ? X509_verify_cert_error_string(vr) : "no certificate");
	    return SMTP_TLS_ERROR;
	}
    }
    return SMTP_TLS_OK;
}

enum smtp_tls_io smtp_tls_read(SMTP_TLS *tls, char *buf, size_t len, size_t *got)
{
    ERR_clear_error();
    if (SSL_read_ex(tls->ssl, buf, len, got) == 1)
	return SMTP_TLS_OK;
    *got = 0;
    return smtp_tls_error(tls, 0, NULL);
}

enum smtp_tls_io smtp_tls_write(SMTP_TLS *tls, const char *buf, size_t len, size_t *put)
{
    ERR_clear_error();
    if (SSL_write_ex(tls->ssl, buf, len, put) == 1)
	return SMTP_TLS_OK;
    *put = 0;
    return smtp_tls_error(tls, 0, NULL);
}

bool    smtp_tls_pending(SMTP_TLS *tls)
{
    return SSL_pending(tls->ssl) > 0;
}

void    smtp_tls_free(SMTP_TLS *tls)
{
    if (tls) {
	SSL_free(tls->ssl);
	mem_free(tls);
	ERR_clear_error();
    }
}
