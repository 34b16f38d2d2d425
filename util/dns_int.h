/*
 * dns_int.h - private to util/: the resolver's state, shared by dns.c
 * (the resolver's life, its sockets and timer on the loop) and
 * dns_query.c (the lookups). Nothing outside util/ includes this file.
 */
#ifndef UTIL_DNS_INT_H
#define UTIL_DNS_INT_H

#include <ares.h>

#include "util/util.h"

#define MAX_INFLIGHT 4000	/* lookups (each one or two DNS queries) */
#define MAX_PTR 3		/* PTR names tried for forward confirmation */
#define MAX_ADDRS 64		/* A/AAAA records looked at per answer */
#define MAX_MX 32
#define NAME_MAX_LEN 253	/* RFC 1035 §2.3.4 in text form, no trailing dot */
#define SERVERS_MAX 1024	/* the server list, as text */

/* One socket c-ares asked us to watch. */
struct dns_sock {
	uv_poll_t poll;
	ares_socket_t fd;
	struct mtad_dns *dns;
	struct dns_sock *next;
};

struct mtad_dns {
	uv_loop_t *loop;
	ares_channel channel;
	uv_timer_t timer;
	struct dns_sock *socks;	/* watched, not closing */
	unsigned inflight;	/* lookups not yet freed, cancelled ones too */
	unsigned handles;	/* uv handles not yet closed (timer + polls) */
	unsigned depth;		/* > 0 while inside ares_process_fd */
	bool dying;		/* mtad_dns_free was called */
};

enum query_kind { Q_FORWARD, Q_REVERSE, Q_MX, Q_ADDRS };

struct mtad_dns_query {
	struct mtad_dns *dns;
	enum query_kind kind;
	union {
		mtad_dns_addr_cb addr;
		mtad_dns_name_cb name;
		mtad_dns_mx_cb mx;
		mtad_dns_addrs_cb addrs;
	} cb;
	void *arg;
	unsigned refs;		/* DNS queries outstanding, plus our own holds */
	bool cancelled;
	bool tempfail;		/* some answer was a server failure */
	bool confirmed;		/* reverse: name[] is forward-confirmed */
	unsigned naddrs;	/* forward: addresses seen */
	int family;		/* reverse: the client's address */
	unsigned char addr[16];
	char ptr[MAX_PTR][NAME_MAX_LEN + 1];
	unsigned nptr, iptr;	/* reverse: PTR names, the one being confirmed */
	struct mtad_dns_mx mx[MAX_MX];
	size_t nmx;
	unsigned char v4[MAX_ADDRS][4];	/* addresses: kept apart so IPv4 comes first */
	unsigned char v6[MAX_ADDRS][16];
	unsigned nv4, nv6;
};

/* dns_update_timer - follow ares_timeout() after queries were sent or answered. */
void dns_update_timer(struct mtad_dns *dns);

#endif
