/*
 * tickets.c - the server's session ticket keys: stateless resumption
 * (TLS 1.3 tickets, TLS 1.2 session tickets), so a mail client that
 * reconnects skips the certificate signature and the full key exchange.
 *
 * The keys belong to the tls_server, not to one SSL_CTX: a reload
 * (SIGHUP, a new SSL_CTX) keeps every ticket already handed out valid.
 * A key seals new tickets for one period (12 hours); the first ticket
 * after that makes a new key, and the old one only opens tickets until
 * two periods after it was made, then it is gone. Only the newest two
 * keys are kept. Rotation is checked when a ticket is sealed or opened,
 * so no timer is needed. Clients are told to keep a ticket for OpenSSL's
 * session lifetime (2 hours); the keys bound it here.
 *
 * Must not: write a key anywhere (they come from RAND_bytes, live only
 * in this process's memory and are wiped when freed); open a ticket
 * under a key older than two periods; fail a handshake because a ticket
 * could not be opened (the client gets a full handshake instead); let
 * two threads touch the keys at once: every event loop's connections
 * seal and open tickets under one tls_server's keys, so sealing and
 * opening take the keys' lock (held for microseconds: no crypto on the
 * ticket itself runs under it, only choosing and loading the key).
 *
 * Follows: RFC 8446 §2.2 and §4.6.1 (TLS 1.3 resumption and tickets),
 * RFC 5077 §4 (the ticket construction OpenSSL builds from the key name,
 * AES-256-CBC and HMAC-SHA-256 set up here), RFC 9325 §3.4 (ticket keys
 * rotated, never kept longer than the tickets they protect).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "tls/tls_int.h"

#define TICKET_NAME_LEN 16	/* OpenSSL's key_name: how a ticket says its key */
#define TICKET_AES_LEN 32	/* AES-256-CBC */
#define TICKET_HMAC_LEN 32	/* HMAC-SHA-256 */

/* The session id context: resumption is allowed among mtad's own listeners. */
static const unsigned char session_context[] = "mtad";

struct ticket_key {
	unsigned char name[TICKET_NAME_LEN];
	unsigned char aes[TICKET_AES_LEN];
	unsigned char hmac[TICKET_HMAC_LEN];
	int64_t born;		/* by the tickets' clock */
	bool set;
};

struct tls_tickets {
	atomic_uint refs;
	pthread_mutex_t lock;		/* guards current and previous */
	EVP_CIPHER *cipher;		/* AES-256-CBC, fetched once */
	int64_t period;			/* seconds a key seals new tickets */
	int64_t (*now)(void *arg);	/* seconds; tests move it */
	void *now_arg;
	struct ticket_key current;	/* seals and opens */
	struct ticket_key previous;	/* only opens, until two periods old */
};

/* clock_seconds - the default clock: it never jumps with the wall clock. */
static int64_t clock_seconds(void *arg)
{
	struct timespec ts;

	(void)arg;
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec;
}

/* key_wipe - nothing of a key stays in memory. */
static void key_wipe(struct ticket_key *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

/* tls_tickets_new - no key yet (the first ticket makes one); NULL on failure. */
struct tls_tickets *tls_tickets_new(void)
{
	struct tls_tickets *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (t->cipher == NULL) {
		ERR_clear_error();
		free(t);
		return NULL;
	}
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		EVP_CIPHER_free(t->cipher);
		free(t);
		return NULL;
	}
	atomic_init(&t->refs, 1);
	t->period = TLS_TICKET_PERIOD;
	t->now = clock_seconds;
	return t;
}

void tls_tickets_hold(struct tls_tickets *t)
{
	atomic_fetch_add(&t->refs, 1);
}

/* tls_tickets_drop - the last reference wipes the keys. */
void tls_tickets_drop(struct tls_tickets *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	key_wipe(&t->current);
	key_wipe(&t->previous);
	(void)pthread_mutex_destroy(&t->lock);	/* unlocked: the last reference */
	EVP_CIPHER_free(t->cipher);
	free(t);
}

/* tls_tickets_set_clock - for tests: the period and the clock (NULL: the default). */
void tls_tickets_set_clock(struct tls_tickets *t, int64_t period,
			   int64_t (*now)(void *arg), void *arg)
{
	t->period = period > 0 ? period : TLS_TICKET_PERIOD;
	t->now = now != NULL ? now : clock_seconds;
	t->now_arg = arg;
}

/* key_make - a fresh random key born now; 0, or -1 when RAND_bytes failed. */
static int key_make(struct ticket_key *k, int64_t now)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1) {
		key_wipe(k);
		ERR_clear_error();
		return -1;
	}
	k->born = now;
	k->set = true;
	return 0;
}

/*
 * tickets_sealing_key - the key for a new ticket: the current one while
 * it is younger than a period, else a new one (the current one becomes
 * the previous, the previous is wiped). If no new key can be made, an
 * old current key still serves; NULL only when there is none at all.
 */
static struct ticket_key *tickets_sealing_key(struct tls_tickets *t, int64_t now)
{
	struct ticket_key fresh;

	if (t->current.set && now - t->current.born < t->period)
		return &t->current;
	if (key_make(&fresh, now) != 0)
		return t->current.set ? &t->current : NULL;
	key_wipe(&t->previous);
	t->previous = t->current;
	t->current = fresh;
	key_wipe(&fresh);
	return &t->current;
}

/* tickets_opening_key - the key named, if it is still kept and younger than two periods. */
static struct ticket_key *tickets_opening_key(struct tls_tickets *t, const unsigned char *name,
					      int64_t now)
{
	struct ticket_key *keys[2] = { &t->current, &t->previous };

	for (int i = 0; i < 2; i++) {
		struct ticket_key *k = keys[i];

		if (k->set && CRYPTO_memcmp(k->name, name, TICKET_NAME_LEN) == 0)
			return now - k->born < 2 * t->period ? k : NULL;
	}
	return NULL;
}

/* mac_init - the ticket's HMAC-SHA-256 with k. 1 or 0. */
static int mac_init(EVP_MAC_CTX *hctx, struct ticket_key *k)
{
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k->hmac,
						      sizeof(k->hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params);
}

/* ticket_seal - a new ticket: key name, fresh IV, cipher and MAC set up. 1, or -1. */
static int ticket_seal(struct tls_tickets *t, unsigned char *name, unsigned char *iv,
		       EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx)
{
	struct ticket_key *k = tickets_sealing_key(t, t->now(t->now_arg));
	int ivlen = EVP_CIPHER_get_iv_length(t->cipher);

	/* -1 rather than 0: OpenSSL 3.0 answers 0 with an empty ticket,
	 * which TLS 1.3 does not allow. Only a failing RNG gets here. */
	if (k == NULL || ivlen <= 0 || ivlen > EVP_MAX_IV_LENGTH ||
	    RAND_bytes(iv, ivlen) != 1)
		return -1;
	memcpy(name, k->name, TICKET_NAME_LEN);
	if (EVP_EncryptInit_ex2(cctx, t->cipher, k->aes, iv, NULL) != 1 || mac_init(hctx, k) != 1)
		return -1;
	return 1;
}

/*
 * ticket_open - a ticket the client presented: 1 (resume), 2 (resume,
 * and send a ticket under the current key: this one's key is retired
 * or due to be), 0 (unknown or expired key: a full handshake).
 */
static int ticket_open(struct tls_tickets *t, const unsigned char *name, unsigned char *iv,
		       EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx)
{
	int64_t now = t->now(t->now_arg);
	struct ticket_key *k = tickets_opening_key(t, name, now);

	if (k == NULL)
		return 0;
	if (mac_init(hctx, k) != 1 || EVP_DecryptInit_ex2(cctx, t->cipher, k->aes, iv, NULL) != 1) {
		ERR_clear_error();
		return 0;
	}
	return k == &t->current && now - k->born < t->period ? 1 : 2;
}

/* ticket_cb - OpenSSL's hook, for both directions; the keys hang on the SSL. */
static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
		     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_tickets *t = SSL_get_app_data(ssl);
	int r;

	if (t == NULL || pthread_mutex_lock(&t->lock) != 0)
		return enc ? -1 : 0;	/* no ticket, or a full handshake */
	r = enc ? ticket_seal(t, name, iv, cctx, hctx) : ticket_open(t, name, iv, cctx, hctx);
	(void)pthread_mutex_unlock(&t->lock);	/* ours, locked above: cannot fail */
	return r;
}

/*
 * tls_tickets_setup - a server context resumes through tickets only:
 * the ticket hook, the session id context, and no session cache (a
 * cache would be per SSL_CTX, lost on reload, and hold memory per
 * client; a TLS 1.2 client without tickets does a full handshake).
 */
int tls_tickets_setup(SSL_CTX *ctx)
{
	if (SSL_CTX_set_session_id_context(ctx, session_context, sizeof(session_context) - 1) != 1 ||
	    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1)
		return -1;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	return 0;
}

/* tls_tickets_attach - a server connection's SSL finds the keys (the conn holds a reference). */
int tls_tickets_attach(struct tls_tickets *t, SSL *ssl)
{
	return SSL_set_app_data(ssl, t) == 1 ? 0 : -1;
}
