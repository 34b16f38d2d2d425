/*
 * tls_int.h - private to tls/: what server.c and client.c (the SSL_CTX)
 * and conn.c (one SSL per connection) share. Nothing outside tls/
 * includes this.
 */
#ifndef TLS_TLS_INT_H
#define TLS_TLS_INT_H

#include <openssl/ssl.h>

/*
 * The BIO kind of conn.c's ciphertext queues (one in, one out per
 * connection; memory only while bytes wait). A server or client
 * configuration makes one, and every connection made from it holds a
 * reference, since connections may outlive their configuration (see
 * tls_server_free): whoever drops the last reference frees it.
 */
struct tls_queue_method;
struct tls_queue_method *tls_queue_method_new(void);
void tls_queue_method_hold(struct tls_queue_method *m);
void tls_queue_method_drop(struct tls_queue_method *m);

struct tls_server {
	/* Replaced whole on reload. Every SSL made from it holds its own
	 * reference (SSL_new up-refs, SSL_free drops), so freeing it here
	 * never pulls the context from under an open connection. */
	SSL_CTX *ctx;
	struct tls_queue_method *queues;
};

/* The delivery side: one context for every outgoing connection. */
struct tls_client {
	SSL_CTX *ctx;
	struct tls_queue_method *queues;
};

#endif
