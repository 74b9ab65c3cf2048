/*
 * tlsmgr.c - shared TLS session cache and rotating session ticket keys
 * for the SMTP server (see tlsmgr.h).
 *
 * Tickets: AES-256-CBC with HMAC-SHA256 (OpenSSL's ticket format, keys of
 * our own through SSL_CTX_set_tlsext_ticket_key_evp_cb). The key ring holds
 * two keys; a ticket names its key with 16 random bytes. A key that is
 * older than the timeout is replaced on the next use, and the key it
 * replaces is kept for decryption only.
 *
 * Threading: ring_lock guards the key ring; OpenSSL locks its own session
 * cache. Diagnostics: see tlsmgr.h.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "engine/msg.h"
#include "engine/timeutil.h"
#include "stages/tlsmgr.h"

#define TLSMGR_NAME_LEN		16
#define TLSMGR_KEY_LEN		32
#define TLSMGR_CACHE_SIZE	20480	/* sessions per SSL_CTX */

typedef struct TLSMGR_KEY {
    unsigned char name[TLSMGR_NAME_LEN];
    unsigned char aes[TLSMGR_KEY_LEN];
    unsigned char hmac[TLSMGR_KEY_LEN];
    int64_t born_ns;			/* monotonic; 0: empty slot */
} TLSMGR_KEY;

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static TLSMGR_KEY ring_cur, ring_old;
static int64_t ring_lifetime_ns;	/* the smallest timeout configured */
static unsigned ring_rotations;

static const unsigned char tlsmgr_sid_ctx[] = "sluice-smtpd";

unsigned tlsmgr_rotations(void)
{
    unsigned n;

    pthread_mutex_lock(&ring_lock);
    n = ring_rotations;
    pthread_mutex_unlock(&ring_lock);
    return n;
}

/* Under ring_lock: a current key that is not too old, or -1. */
static int tlsmgr_ring_fresh(int64_t now)
{
    TLSMGR_KEY k;

    if (ring_cur.born_ns != 0 && now - ring_cur.born_ns < ring_lifetime_ns)
	return 0;
    if (RAND_bytes(k.name, sizeof(k.name)) != 1 || RAND_bytes(k.aes, sizeof(k.aes)) != 1
	|| RAND_bytes(k.hmac, sizeof(k.hmac)) != 1) {
	msg_warn("tlsmgr: cannot generate a session ticket key");
	return -1;
    }
    k.born_ns = now;
    if (ring_cur.born_ns != 0)
	ring_rotations++;
    ring_old = ring_cur;
    ring_cur = k;
    return 0;
}

static int tlsmgr_mac_init(EVP_MAC_CTX *hctx, unsigned char *key)
{
    OSSL_PARAM params[3];

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, TLSMGR_KEY_LEN);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback: 1 = ok, 2 = ok but renew, 0 = no key
 * (a full handshake), -1 = error. */
static int tlsmgr_ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv,
			    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    TLSMGR_KEY k;
    int     ret = 1;
    int64_t now = time_mono_ns();

    (void) ssl;
    pthread_mutex_lock(&ring_lock);
    if (enc) {
	if (tlsmgr_ring_fresh(now) < 0) {
	    pthread_mutex_unlock(&ring_lock);
	    return -1;
	}
	k = ring_cur;
    } else if (ring_cur.born_ns && memcmp(key_name, ring_cur.name, TLSMGR_NAME_LEN) == 0
	       && now - ring_cur.born_ns < 2 * ring_lifetime_ns) {
	k = ring_cur;
	/* Expired since: still good for this ticket, but issue a new one. */
	if (now - k.born_ns >= ring_lifetime_ns)
	    ret = 2;
    } else if (ring_old.born_ns && memcmp(key_name, ring_old.name, TLSMGR_NAME_LEN) == 0
	       && now - ring_old.born_ns < 2 * ring_lifetime_ns) {
	k = ring_old;
	ret = 2;
    } else {
	pthread_mutex_unlock(&ring_lock);
	return 0;
    }
    pthread_mutex_unlock(&ring_lock);

    if (enc) {
	memcpy(key_name, k.name, TLSMGR_NAME_LEN);
	if (RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1)
	    ret = -1;
	else if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
	    ret = -1;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
	ret = -1;
    if (ret > 0 && tlsmgr_mac_init(hctx, k.hmac) < 0)
	ret = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return ret;
}

int     tlsmgr_server_setup(void *ssl_ctx, long timeout_s, STR *err)
{
    SSL_CTX *ctx = ssl_ctx;

    if (timeout_s <= 0) {
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	return 0;
    }
    if (SSL_CTX_set_session_id_context(ctx, tlsmgr_sid_ctx, sizeof(tlsmgr_sid_ctx) - 1) != 1) {
	str_puts(err, "cannot set the TLS session ID context");
	return -1;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLSMGR_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, timeout_s);
    pthread_mutex_lock(&ring_lock);
    if (ring_lifetime_ns == 0 || timeout_s * TIME_NS_PER_SEC < ring_lifetime_ns)
	ring_lifetime_ns = timeout_s * TIME_NS_PER_SEC;
    pthread_mutex_unlock(&ring_lock);
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tlsmgr_ticket_cb) != 1) {
	str_puts(err, "cannot install the TLS session ticket key callback");
	return -1;
    }
    return 0;
}
