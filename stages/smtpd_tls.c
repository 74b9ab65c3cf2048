/*
 * smtpd_tls.c - STARTTLS for the SMTP server, with OpenSSL 3.
 *
 * One SSL_CTX per configuration (TLS 1.2 and up, no renegotiation, partial
 * writes), shared read-only by all I/O threads; one SSL per session, driven
 * non-blocking from the event loop: every call returns WANT_READ or
 * WANT_WRITE instead of waiting, and the caller waits in epoll.
 *
 * Threading: a SMTPD_TLS belongs to its session's thread. The OpenSSL error
 * queue is per thread; it is cleared before each call.
 * Diagnostics: reasons are returned as text for the session log.
 */
#include "config.h"

#include <string.h>
#include <errno.h>

#include <openssl/ssl.h>
#include <openssl/err.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "stages/smtpd_proto.h"
#include "stages/tlsmgr.h"

struct SMTPD_TLS {
    SSL    *ssl;
    bool    failed;			/* a TLS protocol error: forget the session */
};

static void tls_errors(STR *err)
{
    unsigned long e;
    char    buf[256];
    bool    first = true;

    while ((e = ERR_get_error()) != 0) {
	ERR_error_string_n(e, buf, sizeof(buf));
	str_printf(err, "%s%s", first ? "" : "; ", buf);
	first = false;
    }
    if (first)
	str_puts(err, "unknown TLS error");
}

void   *smtpd_tls_ctx_new(const char *cert_file, const char *key_file, STR *err)
{
    SSL_CTX *ctx;

    ERR_clear_error();
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
	tls_errors(err);
	return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
		     | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
	str_printf(err, "cannot load certificate chain from %s: ", cert_file);
	tls_errors(err);
	SSL_CTX_free(ctx);
	return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
	str_printf(err, "cannot load private key from %s: ", key_file);
	tls_errors(err);
	SSL_CTX_free(ctx);
	return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
	str_printf(err, "private key in %s does not match certificate in %s",
		   key_file, cert_file);
	SSL_CTX_free(ctx);
	return NULL;
    }
    /* Resumption: the shared cache and ticket keys (stages/tlsmgr.c). */
    if (tlsmgr_server_setup(ctx, (long) param_int(P_SMTPD_TLS_SESSION_CACHE_TIMEOUT), err) < 0) {
	SSL_CTX_free(ctx);
	return NULL;
    }
    return ctx;
}

void    smtpd_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

SMTPD_TLS *smtpd_tls_new(void *ctx, int fd)
{
    SMTPD_TLS *t = MEM_NEW(SMTPD_TLS);

    ERR_clear_error();
    if ((t->ssl = SSL_new(ctx)) == NULL)
	msg_fatal("SSL_new: out of memory");
    SSL_set_fd(t->ssl, fd);
    SSL_set_accept_state(t->ssl);
    return t;
}

static int tls_result(SMTPD_TLS *t, int ret, STR *err)
{
    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
	return SMTPD_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
	return SMTPD_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
	return SMTPD_TLS_EOF;
    case SSL_ERROR_SYSCALL:
	if (err) {
	    if (ERR_peek_error())
		tls_errors(err);
	    else
		str_puts(err, errno ? strerror(errno) : "lost connection");
	}
	return ERR_peek_error() || errno ? SMTPD_TLS_ERROR : SMTPD_TLS_EOF;
    default:
	t->failed = true;
	if (err)
	    tls_errors(err);
	return SMTPD_TLS_ERROR;
    }
}

int     smtpd_tls_handshake(SMTPD_TLS *t, STR *err)
{
    int     r;

    ERR_clear_error();
    errno = 0;
    if ((r = SSL_do_handshake(t->ssl)) == 1)
	return SMTPD_TLS_OK;
    r = tls_result(t, r, err);
    if (r == SMTPD_TLS_EOF) {
	if (err && STR_LEN(err) == 0)
	    str_puts(err, "lost connection");
	r = SMTPD_TLS_ERROR;
    }
    return r;
}

long    smtpd_tls_read(SMTPD_TLS *t, void *buf, size_t len)
{
    size_t  got = 0;
    int     r;
    STR     err = STR_INIT;

    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(t->ssl, buf, len, &got) == 1)
	return (long) got;
    r = tls_result(t, 0, &err);
    str_release(&err);
    return r;
}

long    smtpd_tls_write(SMTPD_TLS *t, const void *buf, size_t len)
{
    size_t  put = 0;
    int     r;
    STR     err = STR_INIT;

    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(t->ssl, buf, len, &put) == 1)
	return (long) put;
    r = tls_result(t, 0, &err);
    str_release(&err);
    return r == SMTPD_TLS_EOF ? SMTPD_TLS_ERROR : r;
}

bool    smtpd_tls_pending(SMTPD_TLS *t)
{
    return SSL_pending(t->ssl) > 0;
}

const char *smtpd_tls_version(SMTPD_TLS *t)
{
    return SSL_get_version(t->ssl);
}

const char *smtpd_tls_cipher(SMTPD_TLS *t)
{
    return SSL_get_cipher_name(t->ssl);
}

int     smtpd_tls_bits(SMTPD_TLS *t, int *alg_bits)
{
    return SSL_get_cipher_bits(t->ssl, alg_bits);
}

void    smtpd_tls_free(SMTPD_TLS *t)
{
    if (t == NULL)
	return;
    ERR_clear_error();

    /*
     * OpenSSL drops from its cache a session freed without a shutdown. The
     * socket is already closed here (so no close_notify: its number may
     * belong to another session by now); a session that ended without a
     * TLS error is marked shut down so that it stays resumable (tlsmgr.h).
     */
    if (!t->failed && SSL_is_init_finished(t->ssl))
	SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl);
    mem_free(t);
}
