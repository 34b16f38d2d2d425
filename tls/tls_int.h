/*
 * tls_int.h - private to tls/: what server.c and client.c (the SSL_CTX)
 * and conn.c (one SSL per connection) share. Nothing outside tls/
 * includes this.
 */
#ifndef TLS_TLS_INT_H
#define TLS_TLS_INT_H

#include <stdint.h>

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

/*
 * The session ticket keys (tickets.c): made by tls_server_new, kept
 * across reloads, rotated every TLS_TICKET_PERIOD seconds (the previous
 * key still opens tickets for one more period). A server connection
 * holds a reference, since its handshake may outlive the server.
 */
#define TLS_TICKET_PERIOD (12 * 60 * 60)

struct tls_tickets;
struct tls_tickets *tls_tickets_new(void);
void tls_tickets_hold(struct tls_tickets *t);
void tls_tickets_drop(struct tls_tickets *t);

/* tls_tickets_setup - ticket hook, session id context, no cache, on a server context. 0 or -1. */
int tls_tickets_setup(SSL_CTX *ctx);

/* tls_tickets_attach - the keys for this server SSL's tickets. 0 or -1. */
int tls_tickets_attach(struct tls_tickets *t, SSL *ssl);

/*
 * tls_tickets_set_clock - for tests: period seconds (0: the default) and
 * the clock now(arg) in seconds (NULL: CLOCK_BOOTTIME).
 */
void tls_tickets_set_clock(struct tls_tickets *t, int64_t period,
			   int64_t (*now)(void *arg), void *arg);

struct tls_server {
	/* Replaced whole on reload. Every SSL made from it holds its own
	 * reference (SSL_new up-refs, SSL_free drops), so freeing it here
	 * never pulls the context from under an open connection. */
	SSL_CTX *ctx;
	struct tls_queue_method *queues;
	struct tls_tickets *tickets;	/* outlives every ctx: moved on reload */
};

/* The delivery side: one context for every outgoing connection. */
struct tls_client {
	SSL_CTX *ctx;
	struct tls_queue_method *queues;
};

#endif
