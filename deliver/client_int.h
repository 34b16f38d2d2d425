/*
 * client_int.h - private to the SMTP client: what deliver/client.c (the
 * connection: setup, STARTTLS, reading replies, closing) and
 * deliver/client_send.c (the mail transaction and the body) share.
 * Nothing outside those two files includes this; the API is in
 * deliver/deliver.h.
 */
#ifndef DELIVER_CLIENT_INT_H
#define DELIVER_CLIENT_INT_H

#include <arpa/inet.h>

#include "deliver/deliver.h"
#include "tls/tls.h"

enum client_state {
	C_CONNECT,	/* TCP connect */
	C_GREETING,	/* waiting for the 220 */
	C_EHLO,		/* EHLO, or LHLO for LMTP */
	C_HELO,
	C_STARTTLS,	/* waiting for the 220 to STARTTLS */
	C_HANDSHAKE,	/* TLS handshake */
	C_REFUSED,	/* setup failed on a reply: in sync, only QUIT is left */
	C_READY,	/* idle, a message may be sent */
	C_MAIL,		/* waiting for the MAIL reply */
	C_RCPT,		/* waiting for RCPT replies */
	C_DATA,		/* waiting for the DATA reply */
	C_BODY,		/* sending the body */
	C_BDAT,		/* waiting for the reply to a BDAT chunk that is not the last */
	C_DOT,		/* waiting for the reply (LMTP: one per accepted recipient) to the end of data */
	C_RSET,		/* waiting for the RSET reply after a failed transaction */
	C_LOCAL,	/* a message decided without the peer; reported from the timer */
	C_QUIT,		/* closing: waiting for the 221 */
	C_DEAD,		/* the connection is no longer usable */
};

/* Per recipient. */
enum rcpt_state {
	R_PENDING,	/* goes (or went) to the peer, no verdict yet */
	R_ACCEPTED,	/* RCPT accepted: the end of data decides */
	R_DONE,		/* decided */
	R_LOCAL,	/* decided here, never sent */
};

struct smtp_client {
	uv_loop_t *loop;
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;	/* LMTP over a Unix socket */
	} sock;
	uv_stream_t *stream;		/* &sock.tcp or &sock.pipe */
	bool lmtp;			/* RFC 2033: LHLO, a reply per recipient after the data */
	bool chunking;			/* opt->chunking: BDAT when the peer offers CHUNKING */
	uv_timer_t timer;
	uv_connect_t connect_req;
	int handles_open;
	enum client_state state;
	enum smtp_tls_policy tls_policy;
	struct tls_client *tls_client;
	uint64_t timeout_ms;
	char helo[SMTP_DOMAIN_MAX + 1];
	char peer_name[SMTP_DOMAIN_MAX + 1];
	char peer[SMTP_DOMAIN_MAX + INET6_ADDRSTRLEN + 3];	/* "name[ip]" for texts */

	char in[SMTP_CLIENT_REPLY_MAX];	/* plaintext from the peer, not yet parsed */
	size_t inlen;
	unsigned ext;			/* SMTP_EXT_* from the last EHLO */
	uint64_t peer_size;		/* its SIZE limit, 0 = none */
	struct smtp_client_reply ehlo;	/* for the ready callback after STARTTLS fails */

	struct tls_pump pump;		/* writes; TLS once it starts (pump.tls) */
	char *cipher_in;
	char tls_info[160];

	smtp_client_ready_cb ready_cb;
	void *ready_arg;

	/* The message being sent. */
	struct smtp_client_message msg;
	smtp_client_sent_cb sent_cb;
	void *sent_arg;
	struct smtp_client_reply *results;
	unsigned char *rstate;		/* enum rcpt_state per recipient */
	struct smtp_client_reply data;
	size_t next_rcpt;		/* whose RCPT reply comes next */
	size_t next_dot;		/* LMTP: whose reply to the end of data comes next */
	size_t accepted;
	bool pipelining;		/* this transaction was pipelined */
	bool bdat;			/* this message goes in BDAT chunks (RFC 3030), not DATA */
	bool mail_ok, mail_failed;
	bool reading_chunk;		/* msg.read has not called back yet */
	bool fail_pending;		/* failed while reading_chunk: report when it returns */
	bool body_last;
	uint32_t chunk_index;
	struct smtp_dot_encoder dot;
	/* RFC 6152: BODY=8BITMIME to a peer without 8BITMIME, converted as it goes
	 * (deliver/mime_downgrade.c); NULL when the body goes as it is. */
	struct smtp_mime_downgrade *downgrade;

	bool user_closed;		/* smtp_client_close was called: no more callbacks */
	bool closing;			/* the handles are being closed */
};

/* ---- client.c, for client_send.c ---- */

/* client_fail - the connection is no longer usable: code 0 (temporary) or e.g. 451 4.3.0. */
void client_fail(struct smtp_client *c, int code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* client_free - everything, once libuv and the body reader are done with it. */
void client_free(struct smtp_client *c);
/* client_step_timer - the deadline for the step that starts now. */
void client_step_timer(struct smtp_client *c, uint64_t ms);
/* client_send_plain - SMTP bytes to the peer; a failure ends the connection. 0 or -1. */
int client_send_plain(struct smtp_client *c, const char *data, size_t len);
/* client_send_line - one command, formatted. */
int client_send_line(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* client_finish_message - reports the message; the client is ready again (ok) or dead. */
void client_finish_message(struct smtp_client *c, bool ok);

/* ---- client_send.c, for client.c ---- */

/* client_start_transaction - MAIL (and with PIPELINING, the rest of the envelope). */
void client_start_transaction(struct smtp_client *c);
/* client_on_transaction_reply - a reply while a message is under way. */
void client_on_transaction_reply(struct smtp_client *c, const struct smtp_client_reply *r);
/* client_request_chunk - asks the caller for the next body chunk. */
void client_request_chunk(struct smtp_client *c);

#endif
