/*
 * tls_int.h - private to tls/: what server.c and client.c (the SSL_CTX)
 * and conn.c (one SSL per connection) share. Nothing outside tls/
 * includes this.
 */
#ifndef TLS_TLS_INT_H
#define TLS_TLS_INT_H

#include <openssl/ssl.h>

struct tls_server {
	/* Replaced whole on reload. Every SSL made from it holds its own
	 * reference (SSL_new up-refs, SSL_free drops), so freeing it here
	 * never pulls the context from under an open connection. */
	SSL_CTX *ctx;
};

/* The delivery side: one context for every outgoing connection. */
struct tls_client {
	SSL_CTX *ctx;
};

#endif
