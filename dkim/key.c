/*
 * key.c - DKIM signing keys: each `dkim_sign` line's PEM private key
 * loaded with OpenSSL and kept with its domain and selector; new keys
 * for `mtaq dkim-keygen` and the DNS TXT record that publishes them.
 *
 * A set is shared read-only by every loop and by signing jobs on the
 * thread pool, and counted: SIGHUP drops the old set's reference and a
 * job still signing with it keeps it alive (dkim_keys_ref/unref).
 *
 * Must not: run on an event loop (it reads files: mtad calls it at
 * start, on SIGHUP and in mtad -n; mtaq in keygen), change a set once
 * it is shared (dkim_keys_add only before, on the loading thread),
 * accept a key that does not fit its algorithm (an RSA key named
 * ed25519-sha256, an RSA key under 1024 bits), overwrite an existing
 * key file, or leave a half-written key behind.
 *
 * Follows: RFC 6376 §3.6.1 (the key record: v=DKIM1; k=rsa; p= the
 * SubjectPublicKeyInfo), RFC 8301 (RSA keys of 1024 bits or more;
 * 2048 generated), RFC 8463 §4.2 (k=ed25519; p= the raw 32-byte key).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim/dkim_int.h"

/* dkim_alg_name - see dkim.h. */
const char *dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

/* dkim_alg_parse - see dkim.h. */
int dkim_alg_parse(const char *name, enum dkim_alg *alg)
{
	if (strcmp(name, "rsa-sha256") == 0)
		*alg = DKIM_RSA_SHA256;
	else if (strcmp(name, "ed25519-sha256") == 0)
		*alg = DKIM_ED25519_SHA256;
	else
		return -1;
	return 0;
}

/* dkim_keys_new - see dkim.h. */
struct dkim_keys *dkim_keys_new(void)
{
	struct dkim_keys *ks = calloc(1, sizeof(struct dkim_keys));

	if (ks != NULL)
		atomic_init(&ks->refs, 1);
	return ks;
}

/* dkim_keys_ref - see dkim.h. Relaxed: the caller already holds a
 * reference, so the set cannot go meanwhile. */
struct dkim_keys *dkim_keys_ref(struct dkim_keys *ks)
{
	if (ks != NULL)
		atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
	return ks;
}

/* dkim_keys_unref - see dkim.h. Release and acquire: whoever frees the
 * set sees every other holder's last use of it finished. */
void dkim_keys_unref(struct dkim_keys *ks)
{
	if (ks == NULL || atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < ks->n; i++)
		EVP_PKEY_free(ks->key[i].pkey);
	free(ks);
}

size_t dkim_keys_count(const struct dkim_keys *ks)
{
	return ks ? ks->n : 0;
}

/* ssl_reason - OpenSSL's last error as text, or fallback; clears the queue. */
static const char *ssl_reason(char *buf, size_t size, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, size, "%s", fallback);
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

/* key_read - the PEM private key in path; NULL with err. */
static EVP_PKEY *key_read(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *pkey;
	char why[256];

	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL)
		snprintf(err, errlen, "%s: not a PEM private key (%s)", path,
			 ssl_reason(why, sizeof(why), "no key found"));
	return pkey;
}

/* key_fits - the key is of alg's type (and RSA long enough); -1 with err. */
static int key_fits(EVP_PKEY *pkey, enum dkim_alg alg, const char *path, char *err, size_t errlen)
{
	if (alg == DKIM_ED25519_SHA256) {
		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
			snprintf(err, errlen, "%s: not an Ed25519 key (ed25519-sha256)", path);
			return -1;
		}
		return 0;
	}
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "%s: not an RSA key (rsa-sha256)", path);
		return -1;
	}
	if (EVP_PKEY_get_bits(pkey) < 1024) {
		snprintf(err, errlen, "%s: RSA key of %d bits (RFC 8301: at least 1024)", path,
			 EVP_PKEY_get_bits(pkey));
		return -1;
	}
	return 0;
}

/* dkim_keys_add - see dkim.h. */
int dkim_keys_add(struct dkim_keys *ks, const char *domain, const char *selector,
		  const char *path, enum dkim_alg alg, char *err, size_t errlen)
{
	struct dkim_key *k;
	EVP_PKEY *pkey;

	if (ks->n >= DKIM_MAX_KEYS) {
		snprintf(err, errlen, "too many DKIM keys (at most %d)", DKIM_MAX_KEYS);
		return -1;
	}
	if (strlen(domain) > DKIM_DOMAIN_MAX || strlen(selector) > DKIM_SELECTOR_MAX) {
		snprintf(err, errlen, "domain or selector too long");
		return -1;
	}
	if ((pkey = key_read(path, err, errlen)) == NULL)
		return -1;
	if (key_fits(pkey, alg, path, err, errlen) != 0) {
		EVP_PKEY_free(pkey);
		return -1;
	}
	k = &ks->key[ks->n++];
	k->pkey = pkey;
	k->alg = alg;
	for (size_t i = 0; domain[i] != '\0'; i++)
		k->domain[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32 : domain[i]);
	k->domain[strlen(domain)] = '\0';
	snprintf(k->selector, sizeof(k->selector), "%s", selector);
	return 0;
}

/* dkim_keys_find - see dkim.h. */
size_t dkim_keys_find(const struct dkim_keys *ks, const char *domain,
		      const struct dkim_key **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; ks != NULL && i < ks->n && n < max; i++)
		if (strcmp(ks->key[i].domain, domain) == 0)
			out[n++] = &ks->key[i];
	return n;
}

const char *dkim_key_domain(const struct dkim_key *k)
{
	return k->domain;
}

const char *dkim_key_selector(const struct dkim_key *k)
{
	return k->selector;
}

/* key_public_b64 - p= of the key record, malloc'd; NULL when out of memory. */
static char *key_public_b64(EVP_PKEY *pkey, enum dkim_alg alg)
{
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof(raw);
	int len;
	char *b64;

	if (alg == DKIM_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 || rawlen != sizeof(raw))
			return NULL;
		if ((b64 = malloc(4 * ((rawlen + 2) / 3) + 1)) != NULL)
			EVP_EncodeBlock((unsigned char *)b64, raw, (int)rawlen);
		return b64;
	}
	if ((len = i2d_PUBKEY(pkey, &der)) <= 0)
		return NULL;
	if ((b64 = malloc(4 * (((size_t)len + 2) / 3) + 1)) != NULL)
		EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	return b64;
}

/* key_write - pkey as PEM into a new file of mode 0640; -1 with err (no file left). */
static int key_write(EVP_PKEY *pkey, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	FILE *f;
	bool ok;

	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0640) != 0 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	ok = PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
	ok = fflush(f) == 0 && ok && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok) {
		snprintf(err, errlen, "cannot write %s", path);
		unlink(path);
		return -1;
	}
	return 0;
}

/* dkim_keygen - see dkim.h. */
int dkim_keygen(const char *path, enum dkim_alg alg, char **txt, char *err, size_t errlen)
{
	EVP_PKEY *pkey = alg == DKIM_ED25519_SHA256 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
						     : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	char *p = NULL, why[256];
	size_t size;
	int rc = -1;

	*txt = NULL;
	if (pkey == NULL) {
		snprintf(err, errlen, "cannot generate the key: %s",
			 ssl_reason(why, sizeof(why), "unknown error"));
		return -1;
	}
	if ((p = key_public_b64(pkey, alg)) == NULL) {
		snprintf(err, errlen, "cannot encode the public key");
		goto out;
	}
	size = strlen(p) + 40;
	if ((*txt = malloc(size)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(*txt, size, "v=DKIM1; k=%s; p=%s", alg == DKIM_ED25519_SHA256 ? "ed25519" : "rsa", p);
	if (key_write(pkey, path, err, errlen) != 0) {
		free(*txt);
		*txt = NULL;
		goto out;
	}
	rc = 0;
out:
	free(p);
	EVP_PKEY_free(pkey);
	return rc;
}
