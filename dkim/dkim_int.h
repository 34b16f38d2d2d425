/*
 * dkim_int.h - private to dkim/: the key set's layout, shared by key.c
 * (which loads it) and sign.c (which signs with it). Nothing outside
 * dkim/ includes this file.
 *
 * A key set is read-only once loaded and shared by every event loop and
 * by the thread pool's signing jobs; it lives as long as its last
 * reference (refs, atomic: the last one may be dropped on any thread).
 */
#ifndef DKIM_DKIM_INT_H
#define DKIM_DKIM_INT_H

#include <stdatomic.h>

#include <openssl/evp.h>

#include "dkim/dkim.h"

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
	char domain[DKIM_DOMAIN_MAX + 1];	/* lower case */
	char selector[DKIM_SELECTOR_MAX + 1];
};

struct dkim_keys {
	struct dkim_key key[DKIM_MAX_KEYS];
	size_t n;
	atomic_uint refs;	/* 1 at dkim_keys_new; freed when it reaches 0 */
};

#endif
