/*
 * group.c - one group (the recipients of one message that share a next
 * hop, SMTP or LMTP) on its way out: the key of its destination once
 * its next hop is resolved (protocol, TLS policy, port and the sorted
 * set of next-hop hosts: domains with the same MX hosts are one
 * destination), a connection slot of that destination
 * (destination_concurrency), a kept connection when one is idle, else
 * the next address; the message handed to the SMTP client with its
 * body read chunk by chunk from the queue and checked end to end, each
 * read bounded by smtp_queue_read_timeout; the peer's verdicts; the
 * connection passed on to the next group or kept.
 *
 * Must not: send a body that fails its check (the chunk becomes a read
 * error before the final dot); connect to one of our own listeners
 * (loops_to_myself), or over LMTP to our own local submission socket;
 * exceed a destination's connection limit; reuse a connection for a
 * group whose key differs (another host set, port, protocol or TLS
 * policy); leave a chunk request pointing at a freed group
 * (attempt_free clears it) or answer the client twice for one read (a
 * read that timed out is answered, and its late chunk dropped).
 *
 * Follows: RFC 5321 §4.5.4 (retry another address), §5 (one transaction
 * per next hop, several per connection), RFC 2033 (LMTP routes).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deliver/deliver_int.h"

static void group_send(struct group *g);
static bool group_pass_on(struct group *g);
static struct dest *dest_find(struct deliver *d, const struct group *g);

/*
 * chunk_check - the end-to-end body check on each chunk before it goes
 * out: when the last one arrives, the bytes must add up to the size and
 * SHA-256 the envelope recorded at arrival. A mismatch (a chunk missing,
 * short, or changed) becomes a failed read, so the client drops the
 * connection before the final dot and the next hop never gets the
 * message; the attempt then holds it (attempt_finish). Returns status.
 */
static int chunk_check(struct group *g, int status, const void *data, size_t len, bool last)
{
	struct attempt *a = g->att;

	if (status == QUEUE_DAMAGED) {
		a->damaged = true;
		snprintf(a->damage, sizeof(a->damage), "a chunk of its body is missing");
		return status;
	}
	if (status != 0)
		return status;
	queue_body_check_add(g->check, data, len);
	if (last && queue_body_check_verify(g->check, &a->env, a->damage, sizeof(a->damage)) < 0) {
		a->damaged = true;
		return QUEUE_DAMAGED;
	}
	return 0;
}

/*
 * with_prefix - chunk 0 as it goes out: the envelope's header_prefix
 * (the DKIM-Signature fields, queue.h) in front of the stored bytes,
 * which alone went through the body check. NULL when out of memory.
 */
static char *with_prefix(const char *prefix, const void *data, size_t len, size_t *outlen)
{
	size_t plen = strlen(prefix);
	char *out = malloc(plen + len + 1);

	if (out == NULL)
		return NULL;
	memcpy(out, prefix, plen);
	if (len > 0)
		memcpy(out + plen, data, len);
	*outlen = plen + len;
	return out;
}

/* chunk_arrived - hands the chunk to the client, unless it is gone. */
static void chunk_arrived(void *arg, int status, const void *data, size_t len, bool last)
{
	struct chunk_req *req = arg;
	const char *prefix = req->g && req->index == 0 ? req->g->att->env.header_prefix : NULL;
	char *joined = NULL;

	/* Too late: the read timed out and the client had its answer. */
	if (req->answered) {
		free(req);
		return;
	}
	/*
	 * Even when the attempt went away meanwhile: a closed client waits
	 * for this call to free itself.
	 */
	if (req->g) {
		req->g->chunk = NULL;
		status = chunk_check(req->g, status, data, len, last);
	} else {
		status = -1;
	}
	if (status == 0 && prefix != NULL) {
		if ((joined = with_prefix(prefix, data, len, &len)) == NULL)
			status = -1;
		data = joined;
	}
	req->done(req->client, status, data, len, last);
	free(joined);
	free(req);
}

/* chunk_read - the client wants chunk index; chunk 0 starts a new check
 * (a retry over another connection reads the body again). */
static void chunk_read(void *arg, uint32_t index, struct smtp_client *c, smtp_client_chunk_done done)
{
	struct group *g = arg;
	struct chunk_req *req = malloc(sizeof(*req));

	if (!req) {
		done(c, -1, NULL, 0, true);
		return;
	}
	if (index == 0) {
		queue_body_check_free(g->check);
		g->check = queue_body_check_new();
	}
	*req = (struct chunk_req){ .g = g, .client = c, .done = done, .index = index,
				   .since = uv_now(g->att->d->loop) };
	if (g->check == NULL ||
	    queue_chunk_async(g->att->d->queue, g->att->env.qid, index, chunk_arrived, req) != 0) {
		free(req);
		done(c, -1, NULL, 0, true);
		return;
	}
	g->chunk = req;
}

/*
 * deliver_read_timeouts - a body read the queue has not answered within
 * smtp_queue_read_timeout (the writer thread stuck on a lock, a slow
 * disk): the client gets a read error now, so it drops the connection
 * before the final dot and the recipients are deferred (451 4.3.0);
 * the request stays until the queue's late callback frees it. Called
 * every second: the bound holds to within a second. Answering may end
 * the attempt (and free it), so the scan starts over after each one.
 */
void deliver_read_timeouts(struct deliver *d)
{
	uint64_t now = uv_now(d->loop);
	uint64_t limit = (uint64_t)d->cfg->smtp_queue_read_timeout * 1000;
	bool again = true;

	while (again) {
		again = false;
		for (struct attempt *a = d->active; a && !again; a = a->next) {
			for (size_t i = 0; i < a->ngroups && !again; i++) {
				struct group *g = &a->groups[i];
				struct chunk_req *req = g->chunk;

				if (req == NULL || now - req->since < limit)
					continue;
				g->chunk = NULL;
				req->g = NULL;
				req->answered = true;
				mtad_log_svc(a->log_svc, MTAD_LOG_WARNING, "%s: reading chunk %u of the "
					     "queued message took over %u s; delivery deferred",
					     a->env.qid, req->index, d->cfg->smtp_queue_read_timeout);
				req->done(req->client, -1, NULL, 0, true);
				again = true;
			}
		}
	}
}

/* group_sent - the peer's verdicts, per recipient. */
static void group_sent(void *arg, bool ok, const struct smtp_client_reply *results,
		       const struct smtp_client_reply *data)
{
	struct group *g = arg;

	(void)data;
	for (size_t i = 0; i < g->nrcpt; i++) {
		/* Who decided it, for the DSN: an answer of the peer's (code 0: none came). */
		if (results[i].code != 0)
			attempt_note_hop(g->att, g->rcpt[i], g->route && g->route->lmtp ? HOP_LMTP
					 : smtp_client_offers_dsn(g->client) ? HOP_DSN : HOP_PLAIN);
		attempt_decide(g->att, g->rcpt[i], results[i].code, results[i].enhanced,
			       results[i].text, g->relay);
	}
	if (ok && g->dest && !g->att->d->stopping && group_pass_on(g))
		return;
	smtp_client_close(g->client);
	g->client = NULL;
	group_done(g);
}

/*
 * group_pass_on - several messages over one connection: the connection
 * (and its slot) goes to a group waiting for this destination, or is
 * kept IDLE_SECONDS for the next one. Returns false when neither.
 */
static bool group_pass_on(struct group *g)
{
	struct dest *dest = g->dest;
	struct group *w = dest->wait_head;

	if (!w && dest->idle)
		return false;
	g->dest = NULL;
	if (w) {
		dest->wait_head = w->next_wait;
		if (!dest->wait_head)
			dest->wait_tail = NULL;
		w->waiting = false;
		w->dest = dest;
		w->client = g->client;
		w->tried_idle = true;
		snprintf(w->relay, sizeof(w->relay), "%s", g->relay);
		g->client = NULL;
		attempt_next_group(g->att);
		group_send(w);
		return true;
	}
	dest->idle = g->client;
	dest->idle_since = time(NULL);
	snprintf(dest->idle_relay, sizeof(dest->idle_relay), "%s", g->relay);
	g->client = NULL;
	attempt_next_group(g->att);
	return true;
}

/* group_take_idle - a kept connection to this destination, with its slot. */
static bool group_take_idle(struct group *g)
{
	struct dest *dest = dest_find(g->att->d, g);

	g->tried_idle = true;
	if (!dest || !dest->idle || g->dest)
		return false;
	g->client = dest->idle;
	dest->idle = NULL;
	g->dest = dest;
	snprintf(g->relay, sizeof(g->relay), "%s", dest->idle_relay);
	return true;
}

/* dsn_fill - the DSN parameters of the group's recipients, from the envelope, in rcpt[] order. */
static void dsn_fill(struct group *g)
{
	for (size_t k = 0; k < g->nrcpt; k++) {
		const struct queue_rcpt *r = &g->att->env.rcpt[g->rcpt[k]];

		g->rcpt_notify[k] = r->notify;
		g->rcpt_dsn_orcpt[k] = r->dsn_orcpt;
		g->rcpt_orig[k] = r->orcpt;
	}
}

/* group_start_send - hands the group's message to its connection; 0 or -1. */
static int group_start_send(struct group *g)
{
	g->att->t_group_ready = deliver_now();	/* connection setup is over: delays=c */
	dsn_fill(g);
	struct smtp_client_message msg = {
		.sender = g->att->env.sender, .rcpt = g->rcpt_addrs, .nrcpt = g->nrcpt,
		.size = g->att->env.size + (g->att->env.header_prefix ?
					     strlen(g->att->env.header_prefix) : 0),
		.read = chunk_read, .read_arg = g,
		.smtputf8 = (g->att->env.flags & QUEUE_FLAG_SMTPUTF8) != 0,
		.body_8bitmime = (g->att->env.flags & QUEUE_FLAG_8BITMIME) != 0,
		.dsn_ret = g->att->env.dsn_ret, .dsn_envid = g->att->env.envid,
		.dsn_notify = g->rcpt_notify, .dsn_orcpt = g->rcpt_dsn_orcpt,
		.orig_rcpt = g->rcpt_orig,
	};

	return smtp_client_send(g->client, &msg, group_sent, g);
}

/* group_send - the message over a kept connection. */
static void group_send(struct group *g)
{
	if (group_start_send(g) == 0)
		return;
	/* A kept connection the peer closed meanwhile: connect afresh. */
	smtp_client_close(g->client);
	g->client = NULL;
	group_connect_next(g);
}

/* group_ready - connected and greeted: send the message. */
static void group_ready(void *arg, const struct smtp_client_reply *reply)
{
	struct group *g = arg;

	if (reply->code < 200 || reply->code >= 300) {
		smtp_client_close(g->client);
		g->client = NULL;
		if (reply->code >= 500) {
			/* The peer refused the session: its reply, its name in the DSN. */
			for (size_t i = 0; reply->code > 0 && i < g->nrcpt; i++)
				attempt_note_hop(g->att, g->rcpt[i], HOP_PLAIN);
			group_decide(g, reply->code, reply->enhanced, reply->text);
			group_done(g);
			return;
		}
		/* Kept: when no address is left, this is what the recipients are told. */
		g->fail = *reply;
		g->failed_once = true;
		mtad_log_svc(g->att->log_svc, MTAD_LOG_INFO, "%s: %s: %s", g->att->env.qid, g->relay,
			     reply->text);
		group_connect_next(g);
		return;
	}
	if (group_start_send(g) != 0) {
		smtp_client_close(g->client);
		g->client = NULL;
		group_decide(g, 451, "4.3.0", "cannot start the SMTP transaction");
		group_done(g);
	}
}

/* relay_label - "host[ip]:port" for logs. */
static void relay_label(struct group *g, size_t i)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr_storage *ss = &g->addrs[i];
	int port;

	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	}
	snprintf(g->relay, sizeof(g->relay), "%s[%s]:%d", g->hosts[i], ip, port);
}

/* default_tls - smtp_tls, for routes that do not say. */
static enum smtp_tls_policy default_tls(const struct mtad_config *cfg)
{
	if (strcmp(cfg->smtp_tls, "none") == 0)
		return SMTP_TLS_NONE;
	return strcmp(cfg->smtp_tls, "verify") == 0 ? SMTP_TLS_VERIFY : SMTP_TLS_MAY;
}

/* group_tls - the group's TLS policy: its route's tls=, else smtp_tls. */
static enum smtp_tls_policy group_tls(const struct group *g)
{
	if (g->route && g->route->path[0])
		return SMTP_TLS_NONE;	/* a Unix socket: never STARTTLS */
	return g->route && g->route->tls_given ? g->route->tls : default_tls(g->att->d->cfg);
}

static int host_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * deliver_dest_key - see deliver_int.h. Pure: unit-tested in
 * t/unit/destkey.c.
 */
char *deliver_dest_key(bool lmtp, enum smtp_tls_policy tls, int port,
		       const char *const *hosts, size_t n)
{
	static const char *const tls_name[] = { "none", "may", "verify" };
	char norm[MAX_ADDRS][256];
	const char *names[MAX_ADDRS];
	size_t len = 64, at;
	char *key;

	if (n == 0 || n > MAX_ADDRS || (unsigned)tls > SMTP_TLS_VERIFY)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		for (const char *p = hosts[i]; *p && k + 1 < sizeof(norm[0]); p++)
			norm[i][k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		if (k > 1 && norm[i][k - 1] == '.')
			k--;	/* "mx.example." is "mx.example" */
		norm[i][k] = '\0';
		names[i] = norm[i];
		len += k + 1;
	}
	qsort(names, n, sizeof(names[0]), host_cmp);
	if ((key = malloc(len)) == NULL)
		return NULL;
	at = (size_t)snprintf(key, len, "%s %s %d", lmtp ? "lmtp" : "smtp", tls_name[tls], port);
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(names[i]);

		if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
			continue;	/* one host, several addresses */
		key[at++] = i == 0 ? ' ' : ',';
		memcpy(key + at, names[i], k);
		at += k;
	}
	key[at] = '\0';
	return key;
}

/*
 * group_key - the key of the group's destination, once its addresses
 * are known (deliver_dest_key of the names its addresses came from), or
 * "lmtp unix /run/dovecot/lmtp" for an LMTP socket. NULL when out of
 * memory, or without an address (nothing to connect to).
 */
static char *group_key(const struct group *g)
{
	const char *hosts[MAX_ADDRS];
	const struct sockaddr_storage *ss = &g->addrs[0];
	int port;
	size_t len;
	char *key;

	if (g->route && g->route->path[0]) {
		len = strlen(g->route->path) + 16;
		if ((key = malloc(len)) != NULL)
			snprintf(key, len, "lmtp unix %s", g->route->path);
		return key;
	}
	if (g->naddrs == 0)
		return NULL;
	port = ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
					       : ((const struct sockaddr_in *)ss)->sin_port);
	for (size_t i = 0; i < g->naddrs; i++)
		hosts[i] = g->hosts[i];
	return deliver_dest_key(g->route && g->route->lmtp, group_tls(g), port, hosts, g->naddrs);
}

/* dest_find - the connection count of a group's destination (NULL: no key, or
 * the table is full or out of memory: no limit, no kept connection). */
static struct dest *dest_find(struct deliver *d, const struct group *g)
{
	struct dest *free_slot = NULL;

	if (g->key == NULL)
		return NULL;
	for (size_t i = 0; i < d->ndests; i++) {
		struct dest *dest = &d->dests[i];

		if (dest->key && strcmp(dest->key, g->key) == 0)
			return dest;
		if (!free_slot && (!dest->key || (dest->conns == 0 && !dest->wait_head)))
			free_slot = dest;
	}
	if (!free_slot && d->ndests < MAX_DESTS)
		free_slot = &d->dests[d->ndests++];
	if (!free_slot)
		return NULL;
	free(free_slot->key);
	free_slot->key = strdup(g->key);
	return free_slot->key ? free_slot : NULL;
}

/* dest_keys_free - the destinations' keys, when the runner goes. */
void dest_keys_free(struct deliver *d)
{
	for (size_t i = 0; i < d->ndests; i++) {
		free(d->dests[i].key);
		d->dests[i].key = NULL;
	}
}

/*
 * dest_acquire - a connection slot of the group's destination
 * (destination_concurrency). Returns false when the group must wait:
 * it is queued and resumes when a slot frees.
 */
static bool dest_acquire(struct group *g)
{
	struct deliver *d = g->att->d;
	struct dest *dest;

	if (g->dest)
		return true;
	dest = dest_find(d, g);
	if (!dest)
		return true;
	if (dest->conns < d->cfg->destination_concurrency) {
		dest->conns++;
		g->dest = dest;
		return true;
	}
	g->waiting = true;
	g->next_wait = NULL;
	if (dest->wait_tail)
		dest->wait_tail->next_wait = g;
	else
		dest->wait_head = g;
	dest->wait_tail = g;
	return false;
}

/* dest_unwait - takes a waiting group off its destination's queue. */
void dest_unwait(struct deliver *d, struct group *g)
{
	for (size_t i = 0; i < d->ndests && g->waiting; i++) {
		struct dest *dest = &d->dests[i];
		struct group *prev = NULL;

		for (struct group *w = dest->wait_head; w; prev = w, w = w->next_wait) {
			if (w != g)
				continue;
			if (prev)
				prev->next_wait = w->next_wait;
			else
				dest->wait_head = w->next_wait;
			if (dest->wait_tail == w)
				dest->wait_tail = prev;
			g->waiting = false;
			break;
		}
	}
}

/* dest_release - the group is done with its slot; the next waiting group takes it. */
static void dest_release(struct group *g)
{
	struct dest *dest = g->dest;
	struct group *w;

	if (!dest)
		return;
	g->dest = NULL;
	dest->conns--;
	if (g->att->d->stopping || !(w = dest->wait_head))
		return;
	dest->wait_head = w->next_wait;
	if (!dest->wait_head)
		dest->wait_tail = NULL;
	w->waiting = false;
	group_connect_next(w);
}

/* group_done - this destination is decided: free the slot, on to the next group.
 * While the group is being resolved, mx.c decided it: back to the runner. */
void group_done(struct group *g)
{
	if (g->resolving) {
		g->resolving = false;
		attempt_resolved(g);
		return;
	}
	dest_release(g);
	attempt_next_group(g->att);
}

/* group_no_address_left - every address failed: the recipients hear the last reason. */
static void group_no_address_left(struct group *g)
{
	char text[1200];

	if (g->failed_once && g->fail.code >= 400) {
		snprintf(text, sizeof(text), "host %s said: %d %s %s", g->relay, g->fail.code,
			 g->fail.enhanced, g->fail.text);
		group_decide(g, g->fail.code, g->fail.enhanced, text);
	} else if (g->failed_once) {
		group_decide(g, 451, g->fail.enhanced[0] ? g->fail.enhanced : "4.4.1", g->fail.text);
	} else {
		group_decide(g, 451, "4.4.1", "no address for the destination");
	}
	group_done(g);
}

/* group_loops - a next hop that is mtad itself: the recipients fail with 554 5.4.6. */
static void group_loops(struct group *g)
{
	char why[320];

	snprintf(why, sizeof(why), "mail for %s loops back to myself", g->domain);
	group_decide(g, 554, "5.4.6", why);
	group_done(g);
}

/* group_connect_unix - an LMTP route's Unix socket (never our own local submission socket). */
static void group_connect_unix(struct group *g, const struct smtp_client_options *opt)
{
	const char *path = g->route->path;

	snprintf(g->relay, sizeof(g->relay), "%s", path);
	if (strcmp(path, g->att->d->cfg->local_socket) == 0) {
		group_loops(g);
		return;
	}
	g->client = smtp_client_connect_unix(g->att->d->loop, path, opt, group_ready, g);
	if (!g->client)
		group_connect_next(g);
}

/*
 * group_resolved - mx.c found the group's addresses (maybe none): its
 * key, then back to the runner, which merges groups of one key before
 * any is sent.
 */
static void group_resolved(struct group *g)
{
	g->resolving = false;
	if (g->naddrs > 0 && (g->key = group_key(g)) == NULL) {
		group_decide(g, 451, "4.3.0", "out of memory");
		attempt_resolved(g);
		return;
	}
	g->resolved = true;
	attempt_resolved(g);
}

/* group_connect_next - the next address; when none is left, the recipients wait. */
void group_connect_next(struct group *g)
{
	const struct mtad_config *cfg = g->att->d->cfg;
	struct smtp_client_options opt = {
		.helo_name = cfg->hostname, .timeout = cfg->smtp_timeout,
		.tls_client = g->att->d->tls,
		.tls = group_tls(g),
		.lmtp = g->route && g->route->lmtp,
		.chunking = strcmp(cfg->smtp_use_chunking, "no") != 0,
	};
	size_t i;

	if (g->resolving) {
		group_resolved(g);
		return;
	}
	if (!g->tried_idle && group_take_idle(g)) {
		group_send(g);
		return;
	}
	if (g->next_addr >= g->naddrs) {
		group_no_address_left(g);
		return;
	}
	if (!dest_acquire(g))
		return;	/* waits for a connection slot of its destination */
	i = g->next_addr++;
	if (g->route && g->route->path[0]) {
		group_connect_unix(g, &opt);
		return;
	}
	relay_label(g, i);
	if (loops_to_myself(g->att->d, &g->addrs[i])) {
		group_loops(g);
		return;
	}
	opt.peer_name = g->hosts[i];
	g->client = smtp_client_connect(g->att->d->loop, (const struct sockaddr *)&g->addrs[i],
					&opt, group_ready, g);
	if (!g->client)
		group_connect_next(g);
}
