/*
 * deliver.c - the queue runner: picks up due messages, finds where each
 * recipient's mail goes (route, relayhost, or MX), hands it to the SMTP
 * client, and records the outcome: sent, deferred with an exponential
 * backoff, or failed with a bounce (RFC 3464) to the sender.
 *
 * Every state change is a queue transaction (queue_update_async), so a
 * crash at any moment can cause a message to be delivered twice, never
 * zero times. The runner never blocks: the queue work runs on the writer
 * thread, DNS on c-ares, SMTP on libuv. It must never send mail anywhere
 * that the configuration and DNS did not name, and never bounces a
 * bounce (null sender).
 *
 * RFC 5321 §4.5.4 (retry), §5.1 (MX, then A/AAAA), RFC 7505 (Null MX),
 * RFC 3464 (DSN).
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "deliver/deliver.h"
#include "tls/tls.h"

#define SCAN_INTERVAL_MS 1000
#define MAX_ADDRS 16		/* addresses tried per attempt */
#define MAX_DESTS 256		/* destinations with a connection count */
#define MAX_COOLING 64		/* messages whose outcome could not be recorded */

/* A destination (route host or recipient domain) and its connections. */
struct dest {
	char key[300];
	unsigned conns;			/* connection slots in use (the idle one too) */
	struct group *wait_head, *wait_tail;	/* groups waiting for a slot */
	struct smtp_client *idle;	/* a connection kept for the next message */
	char idle_relay[320];
	int64_t idle_since;
};

#define IDLE_SECONDS 2		/* how long a spare connection is kept */

struct attempt;

/* One next hop tried for some recipients of one message. */
struct group {
	struct attempt *att;
	const struct smtp_route *route;	/* NULL: MX of the domain */
	char domain[256];
	size_t *rcpt;			/* indexes into att->env.rcpt */
	size_t nrcpt;
	struct sockaddr_storage addrs[MAX_ADDRS];
	char hosts[MAX_ADDRS][256];	/* the name each address came from */
	size_t naddrs, next_addr;
	struct mtad_dns_query *query;
	struct smtp_client *client;
	char relay[320];		/* "host[ip]:port" of the connection in use */
	const char **rcpt_addrs;
	struct mx_wait *mx;
	struct chunk_req *chunk;	/* a body chunk being read for the client */
	struct queue_body_check *check;	/* over the chunks sent so far */
	struct smtp_client_reply fail;	/* the last address's failure, for the log */
	bool failed_once;
	struct dest *dest;		/* set while it holds a connection slot */
	bool waiting;			/* queued for a slot of its destination */
	bool tried_idle;		/* a kept connection was offered already */
	struct group *next_wait;
};

/* A message being delivered. */
struct attempt {
	struct deliver *d;
	struct queue_envelope env;	/* our own copy */
	struct group *groups;
	size_t ngroups, current;
	int64_t started;
	bool queue_wait;		/* a queue call answers later: freed there */
	bool damaged;			/* the body failed its check: hold, never send */
	char damage[200];		/* ... and how */
	bool *decided;			/* per recipient: this attempt decided it */
	char (*reply)[600];		/* per recipient: the reply for logs and DSN */
	char (*dsn)[16];
	char (*relay)[320];
	struct attempt *next;
};

struct deliver {
	uv_loop_t *loop;
	const struct mtad_config *cfg;
	struct queue *queue;
	struct mtad_dns *dns;
	struct tls_client *tls;
	struct queue_id_gen *ids;
	uv_timer_t timer;
	struct smtp_route routes[MTAD_MAX_ROUTES];
	size_t nroutes;
	struct smtp_route relayhost;
	bool has_relayhost;
	struct sockaddr_storage own[64];	/* this machine's addresses, for loop checks */
	size_t nown;
	struct dest dests[MAX_DESTS];
	size_t ndests;
	struct attempt *active;
	unsigned nactive;
	/*
	 * Messages whose outcome the queue could not record (a full spool:
	 * even the delete of a delivered message needs log space). They are
	 * still due, and without this they were delivered again at once, in
	 * a loop: each waits retry_min instead. A ring: the oldest go first.
	 */
	struct { char qid[QUEUE_ID_LEN + 1]; int64_t until; } cooling[MAX_COOLING];
	size_t cooling_next;
	bool scanning;
	bool more_due;		/* the last scan was full: look again when there is room */
	size_t asked;		/* how many the scan in flight asked for */
	bool stopping;
};

static void attempt_next_group(struct attempt *a);
static void attempt_finish(struct attempt *a);
static void deliver_more(struct deliver *d);

/* ---- routes ---- */

/* deliver_routes - parses the configured routes (already checked by the config parser). */
static void deliver_routes(struct deliver *d)
{
	char err[256];

	d->nroutes = 0;
	for (size_t i = 0; i < d->cfg->nroutes; i++)
		if (smtp_route_parse(d->cfg->routes[i], false, &d->routes[d->nroutes], err,
				     sizeof(err)) == 0)
			d->nroutes++;
	d->has_relayhost = d->cfg->relayhost[0] &&
			   smtp_route_parse(d->cfg->relayhost, true, &d->relayhost, err,
					    sizeof(err)) == 0;
}

/* rcpt_domain - the part after the last @ ("" for a bare postmaster). */
static const char *rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

/* ---- recording outcomes ---- */

/* decide - one recipient's outcome in this attempt, and its Postfix-style log line. */
static void decide(struct attempt *a, size_t i, int code, const char *enhanced,
		   const char *text, const char *relay)
{
	struct queue_rcpt *r = &a->env.rcpt[i];
	const char *status = code >= 200 && code < 300 ? "sent"
			     : code >= 500 ? "bounced" : "deferred";

	if (a->decided[i])
		return;
	a->decided[i] = true;
	snprintf(a->reply[i], sizeof(a->reply[i]), "%d %s %s", code ? code : 451, enhanced, text);
	snprintf(a->dsn[i], sizeof(a->dsn[i]), "%s", enhanced);
	snprintf(a->relay[i], sizeof(a->relay[i]), "%s", relay ? relay : "none");
	r->attempts++;
	free(r->last_reply);
	r->last_reply = strdup(a->reply[i]);
	if (code >= 200 && code < 300)
		r->state = QUEUE_RCPT_SENT;
	else if (code >= 500)
		r->state = QUEUE_RCPT_FAILED;
	mtad_log(MTAD_LOG_INFO, "%s: to=<%s>, relay=%s, delay=%lld, dsn=%s, status=%s (%s)",
		 a->env.qid, r->addr, a->relay[i], (long long)(time(NULL) - a->env.arrival),
		 enhanced, status, a->reply[i]);
}

/* decide_group - the same outcome for every recipient of a group. */
static void decide_group(struct group *g, int code, const char *enhanced, const char *text)
{
	for (size_t i = 0; i < g->nrcpt; i++)
		decide(g->att, g->rcpt[i], code, enhanced, text, g->relay[0] ? g->relay : NULL);
}

/* ---- SMTP ---- */

static void group_connect_next(struct group *g);
static void group_done(struct group *g);
static void group_send(struct group *g);
static bool group_pass_on(struct group *g);
static struct dest *dest_find(struct deliver *d, const struct group *g);
static bool literal_addr(const char *host, struct sockaddr_storage *ss);

/* A body chunk on its way from the queue to the client. */
struct chunk_req {
	struct group *g;		/* NULL: the attempt went away meanwhile */
	struct smtp_client *client;
	smtp_client_chunk_done done;
};

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

/* chunk_arrived - hands the chunk to the client, unless it is gone. */
static void chunk_arrived(void *arg, int status, const void *data, size_t len, bool last)
{
	struct chunk_req *req = arg;

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
	req->done(req->client, status, data, len, last);
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
	*req = (struct chunk_req){ g, c, done };
	if (g->check == NULL ||
	    queue_chunk_async(g->att->d->queue, g->att->env.qid, index, chunk_arrived, req) != 0) {
		free(req);
		done(c, -1, NULL, 0, true);
		return;
	}
	g->chunk = req;
}

/* group_sent - the peer's verdicts, per recipient. */
static void group_sent(void *arg, bool ok, const struct smtp_client_reply *results,
		       const struct smtp_client_reply *data)
{
	struct group *g = arg;

	(void)data;
	for (size_t i = 0; i < g->nrcpt; i++)
		decide(g->att, g->rcpt[i], results[i].code, results[i].enhanced, results[i].text,
		       g->relay);
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

/* group_start_send - hands the group's message to its connection; 0 or -1. */
static int group_start_send(struct group *g)
{
	struct smtp_client_message msg = {
		.sender = g->att->env.sender, .rcpt = g->rcpt_addrs, .nrcpt = g->nrcpt,
		.size = g->att->env.size, .read = chunk_read, .read_arg = g,
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
			decide_group(g, reply->code, reply->enhanced, reply->text);
			group_done(g);
			return;
		}
		/* Kept: when no address is left, this is what the recipients are told. */
		g->fail = *reply;
		g->failed_once = true;
		mtad_log(MTAD_LOG_INFO, "%s: %s: %s", g->att->env.qid, g->relay, reply->text);
		group_connect_next(g);
		return;
	}
	if (group_start_send(g) != 0) {
		smtp_client_close(g->client);
		g->client = NULL;
		decide_group(g, 451, "4.3.0", "cannot start the SMTP transaction");
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

/* same_ip - two addresses (ports ignored). */
static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/*
 * loops_to_myself - is addr one of our own listeners? A stale MX or a
 * missing route would otherwise make mtad hand mail to itself forever.
 */
static bool loops_to_myself(const struct deliver *d, const struct sockaddr_storage *addr)
{
	int port = ntohs(addr->ss_family == AF_INET6
				 ? ((const struct sockaddr_in6 *)addr)->sin6_port
				 : ((const struct sockaddr_in *)addr)->sin_port);

	for (size_t i = 0; i < d->cfg->nlisten; i++) {
		const struct mtad_listen *l = &d->cfg->listen[i];
		struct sockaddr_storage la;
		bool wildcard = strcmp(l->address, "0.0.0.0") == 0 || strcmp(l->address, "::") == 0;

		if (l->port != port)
			continue;
		if (!wildcard && literal_addr(l->address, &la) && same_ip(&la, addr))
			return true;
		for (size_t k = 0; wildcard && k < d->nown; k++)
			if (same_ip(&d->own[k], addr))
				return true;
	}
	return false;
}

/* own_addresses - the interface addresses, once at start. */
static void own_addresses(struct deliver *d)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa) != 0)
		return;
	for (i = ifa; i && d->nown < sizeof(d->own) / sizeof(d->own[0]); i = i->ifa_next) {
		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
				     i->ifa_addr->sa_family != AF_INET6))
			continue;
		memset(&d->own[d->nown], 0, sizeof(d->own[0]));
		memcpy(&d->own[d->nown++], i->ifa_addr, i->ifa_addr->sa_family == AF_INET
				? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

/* dest_find - the connection count of a group's destination (NULL: table full, no limit). */
static struct dest *dest_find(struct deliver *d, const struct group *g)
{
	char key[300];

	if (g->route)
		snprintf(key, sizeof(key), "%s:%d", g->route->host, g->route->port);
	else
		snprintf(key, sizeof(key), "mx:%s", g->domain);
	for (size_t i = 0; i < d->ndests; i++)
		if (strcasecmp(d->dests[i].key, key) == 0)
			return &d->dests[i];
	for (size_t i = 0; i < d->ndests; i++)
		if (d->dests[i].conns == 0 && !d->dests[i].wait_head) {
			snprintf(d->dests[i].key, sizeof(d->dests[i].key), "%s", key);
			return &d->dests[i];
		}
	if (d->ndests >= MAX_DESTS)
		return NULL;
	snprintf(d->dests[d->ndests].key, sizeof(d->dests[0].key), "%s", key);
	return &d->dests[d->ndests++];
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
static void dest_unwait(struct deliver *d, struct group *g)
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

/* group_done - this destination is decided: free the slot, on to the next group. */
static void group_done(struct group *g)
{
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
		decide_group(g, g->fail.code, g->fail.enhanced, text);
	} else if (g->failed_once) {
		decide_group(g, 451, g->fail.enhanced[0] ? g->fail.enhanced : "4.4.1", g->fail.text);
	} else {
		decide_group(g, 451, "4.4.1", "no address for the destination");
	}
	group_done(g);
}

/* group_connect_next - the next address; when none is left, the recipients wait. */
static void group_connect_next(struct group *g)
{
	const struct mtad_config *cfg = g->att->d->cfg;
	struct smtp_client_options opt = {
		.helo_name = cfg->hostname, .timeout = cfg->smtp_timeout,
		.tls_client = g->att->d->tls,
		.tls = g->route && g->route->tls_given ? g->route->tls : default_tls(cfg),
	};
	size_t i;

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
	relay_label(g, i);
	if (loops_to_myself(g->att->d, &g->addrs[i])) {
		char why[320];

		snprintf(why, sizeof(why), "mail for %s loops back to myself", g->domain);
		decide_group(g, 554, "5.4.6", why);
		group_done(g);
		return;
	}
	opt.peer_name = g->hosts[i];
	g->client = smtp_client_connect(g->att->d->loop, (const struct sockaddr *)&g->addrs[i],
					&opt, group_ready, g);
	if (!g->client)
		group_connect_next(g);
}

/* ---- resolving the next hop ---- */

/* add_addrs - addresses of one host, with the port of the next hop. */
static void add_addrs(struct group *g, const char *host, const struct sockaddr_storage *addrs,
		      size_t n, int port)
{
	for (size_t i = 0; i < n && g->naddrs < MAX_ADDRS; i++) {
		struct sockaddr_storage *ss = &g->addrs[g->naddrs];

		*ss = addrs[i];
		if (ss->ss_family == AF_INET6)
			((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		else
			((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		snprintf(g->hosts[g->naddrs++], sizeof(g->hosts[0]), "%s", host);
	}
}

/* literal_addr - "1.2.3.4" or "2001:db8::1" as an address, without DNS. */
static bool literal_addr(const char *host, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

/* An MX host whose addresses are being looked up. */
struct mx_wait {
	struct group *g;
	char hosts[MAX_ADDRS][256];
	size_t nhosts, next;
	int port;
};

static void mx_next_host(struct mx_wait *w);

/* mx_host_addrs - addresses of one MX host; then the next host. */
static void mx_host_addrs(void *arg, enum mtad_dns_status st,
			  const struct sockaddr_storage *addrs, size_t n)
{
	struct mx_wait *w = arg;

	w->g->query = NULL;
	if (st == MTAD_DNS_FOUND)
		add_addrs(w->g, w->hosts[w->next - 1], addrs, n, w->port);
	mx_next_host(w);
}

/* mx_next_host - resolve the MX hosts one by one, in preference order. */
static void mx_next_host(struct mx_wait *w)
{
	struct group *g = w->g;

	while (w->next < w->nhosts) {
		const char *host = w->hosts[w->next++];
		struct sockaddr_storage ss;

		if (literal_addr(host, &ss)) {
			add_addrs(g, host, &ss, 1, w->port);
			continue;
		}
		g->query = mtad_dns_addresses(g->att->d->dns, host, mx_host_addrs, w);
		if (g->query)
			return;
	}
	g->mx = NULL;
	free(w);
	group_connect_next(g);
}

/* mx_shuffle - equal preferences in random order (RFC 5321 §5.1). */
static void mx_shuffle(struct mtad_dns_mx *mx, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		size_t j = i;

		while (j + 1 < n && mx[j + 1].preference == mx[i].preference)
			j++;
		for (size_t k = j; k > i; k--) {
			size_t r = i + arc4random_uniform((uint32_t)(k - i + 1));
			struct mtad_dns_mx t = mx[k];

			mx[k] = mx[r];
			mx[r] = t;
		}
		i = j;
	}
}

static void group_resolve_host(struct group *g, const char *host, int port);

/* mx_done - the MX records of the destination. */
static void mx_done(void *arg, enum mtad_dns_status st, const struct mtad_dns_mx *mx, size_t n)
{
	struct mx_wait *w = arg;
	struct group *g = w->g;
	struct mtad_dns_mx sorted[MAX_ADDRS];

	g->query = NULL;
	if (st == MTAD_DNS_TEMPFAIL) {
		free(w);
		g->mx = NULL;
		decide_group(g, 451, "4.4.3", "temporary DNS failure looking up MX");
		group_done(g);
		return;
	}
	if (st == MTAD_DNS_NOTFOUND) {
		/* RFC 5321 §5.1: no MX, the domain's own address is the mail host. */
		int port = w->port;
		char host[256];

		snprintf(host, sizeof(host), "%s", w->hosts[0]);
		free(w);
		g->mx = NULL;
		group_resolve_host(g, host, port);
		return;
	}
	if (n == 1 && mx[0].host[0] == '\0') {
		free(w);
		g->mx = NULL;
		decide_group(g, 556, "5.1.10", "the domain accepts no mail (null MX, RFC 7505)");
		group_done(g);
		return;
	}
	n = n < MAX_ADDRS ? n : MAX_ADDRS;
	memcpy(sorted, mx, n * sizeof(*mx));
	mx_shuffle(sorted, n);
	w->nhosts = 0;
	for (size_t i = 0; i < n; i++)
		if (sorted[i].host[0])
			snprintf(w->hosts[w->nhosts++], sizeof(w->hosts[0]), "%s", sorted[i].host);
	w->next = 0;
	mx_next_host(w);
}

/* host_addrs_done - the addresses of a host named without MX lookup. */
static void host_addrs_done(void *arg, enum mtad_dns_status st,
			    const struct sockaddr_storage *addrs, size_t n)
{
	struct mx_wait *w = arg;
	struct group *g = w->g;

	g->query = NULL;
	g->mx = NULL;
	if (st == MTAD_DNS_FOUND)
		add_addrs(g, w->hosts[0], addrs, n, w->port);
	free(w);
	if (st == MTAD_DNS_NOTFOUND)
		decide_group(g, 550, "5.1.2", "host or domain name not found");
	else if (st == MTAD_DNS_TEMPFAIL)
		decide_group(g, 451, "4.4.3", "temporary DNS failure looking up the host");
	if (st != MTAD_DNS_FOUND) {
		group_done(g);
		return;
	}
	group_connect_next(g);
}

/* new_wait - the DNS state of one group. */
static struct mx_wait *new_wait(struct group *g, const char *host, int port)
{
	struct mx_wait *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->g = g;
	w->port = port;
	snprintf(w->hosts[0], sizeof(w->hosts[0]), "%s", host);
	g->mx = w;
	return w;
}

/* group_resolve_host - a host's own addresses (no MX). */
static void group_resolve_host(struct group *g, const char *host, int port)
{
	struct sockaddr_storage ss;
	struct mx_wait *w;

	if (literal_addr(host, &ss)) {
		add_addrs(g, host, &ss, 1, port);
		group_connect_next(g);
		return;
	}
	if (!g->att->d->dns) {
		decide_group(g, 451, "4.4.3", "no DNS resolver (dns_servers = none) and no route "
			     "with an address for this destination");
		group_done(g);
		return;
	}
	w = new_wait(g, host, port);
	g->query = w ? mtad_dns_addresses(g->att->d->dns, host, host_addrs_done, w) : NULL;
	if (!g->query) {
		free(w);
		g->mx = NULL;
		decide_group(g, 451, "4.4.3", "cannot look up the destination");
		group_done(g);
	}
}

/* group_start - route, relayhost or MX: where this group's mail goes. */
static void group_start(struct group *g)
{
	const char *host = g->route ? g->route->host : g->domain;
	int port = g->route ? g->route->port : 25;
	struct mx_wait *w;

	if (g->att->damaged) {	/* found by an earlier group: no more sending */
		decide_group(g, 451, "4.3.0", "the queued body is damaged; message held");
		group_done(g);
		return;
	}
	if (g->route && !g->route->mx) {
		group_resolve_host(g, host, port);
		return;
	}
	if (!g->att->d->dns) {
		decide_group(g, 451, "4.4.3", "no DNS resolver (dns_servers = none) and no route "
			     "for this domain");
		group_done(g);
		return;
	}
	w = new_wait(g, host, port);
	g->query = w ? mtad_dns_mx(g->att->d->dns, host, mx_done, w) : NULL;
	if (!g->query) {
		free(w);
		g->mx = NULL;
		decide_group(g, 451, "4.4.3", "cannot look up MX");
		group_done(g);
	}
}

/* ---- one message ---- */

/* attempt_groups - pending recipients grouped by next hop (route or domain). */
static int attempt_groups(struct attempt *a)
{
	struct deliver *d = a->d;

	a->groups = calloc(a->env.nrcpt, sizeof(*a->groups));
	if (!a->groups)
		return -1;
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		const char *dom = rcpt_domain(a->env.rcpt[i].addr);
		const struct smtp_route *r;
		struct group *g = NULL;

		if (a->env.rcpt[i].state != QUEUE_RCPT_PENDING)
			continue;
		if (dom[0] == '\0')
			dom = d->cfg->hostname;	/* "postmaster" */
		r = smtp_route_lookup(d->routes, d->nroutes, d->has_relayhost ? &d->relayhost : NULL,
				      dom);
		for (size_t k = 0; k < a->ngroups && !g; k++)
			if (a->groups[k].route == r && (r || strcasecmp(a->groups[k].domain, dom) == 0))
				g = &a->groups[k];
		if (!g) {
			g = &a->groups[a->ngroups++];
			g->att = a;
			g->route = r;
			snprintf(g->domain, sizeof(g->domain), "%s", dom);
			g->rcpt = calloc(a->env.nrcpt, sizeof(*g->rcpt));
			g->rcpt_addrs = calloc(a->env.nrcpt, sizeof(*g->rcpt_addrs));
			if (!g->rcpt || !g->rcpt_addrs)
				return -1;
		}
		g->rcpt_addrs[g->nrcpt] = a->env.rcpt[i].addr;
		g->rcpt[g->nrcpt++] = i;
	}
	return 0;
}

/* attempt_next_group - one destination after the other; then the outcome. */
static void attempt_next_group(struct attempt *a)
{
	if (a->d->stopping || a->current >= a->ngroups) {
		attempt_finish(a);
		return;
	}
	group_start(&a->groups[a->current++]);
}

/* attempt_free - everything one message's attempt took. */
static void attempt_free(struct attempt *a)
{
	for (size_t i = 0; i < a->ngroups; i++) {
		struct group *g = &a->groups[i];

		if (g->query)
			mtad_dns_cancel(g->query);
		if (g->chunk)
			g->chunk->g = NULL;	/* chunk_arrived frees it */
		if (g->waiting)
			dest_unwait(a->d, g);
		if (g->dest)
			g->dest->conns--;
		free(g->mx);
		queue_body_check_free(g->check);
		if (g->client)
			smtp_client_close(g->client);
		free(g->rcpt);
		free(g->rcpt_addrs);
	}
	free(a->groups);
	free(a->decided);
	free(a->reply);
	free(a->dsn);
	free(a->relay);
	queue_envelope_free(&a->env);
	free(a);
}

/* attempt_unlink - off the active list. */
static void attempt_unlink(struct attempt *a)
{
	struct deliver *d = a->d;

	for (struct attempt **pp = &d->active; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			d->nactive--;
			return;
		}
}

/* deliver_cool - qid waits retry_min before it may be tried again. */
static void deliver_cool(struct deliver *d, const char *qid)
{
	size_t i = d->cooling_next++ % MAX_COOLING;

	memcpy(d->cooling[i].qid, qid, QUEUE_ID_LEN + 1);
	d->cooling[i].until = time(NULL) + d->cfg->retry_min;
}

/* attempt_updated - the queue has the outcome. */
static void attempt_updated(void *arg, int status, const char *errmsg)
{
	struct attempt *a = arg;
	struct deliver *d = a->d;

	a->queue_wait = false;
	if (status != 0 && status != QUEUE_NOTFOUND) {
		mtad_log(MTAD_LOG_WARNING, "%s: cannot record the delivery outcome: %s; "
			 "not tried again for %u s", a->env.qid, errmsg ? errmsg : "unknown error",
			 d->cfg->retry_min);
		deliver_cool(d, a->env.qid);
	}
	attempt_unlink(a);
	attempt_free(a);
	deliver_more(d);
}

/* retry_delay - exponential backoff from retry_min, capped at retry_max. */
static int64_t retry_delay(const struct mtad_config *cfg, uint32_t attempts)
{
	int64_t delay = cfg->retry_min;

	for (uint32_t i = 1; i < attempts && delay < cfg->retry_max; i++)
		delay *= 2;
	return delay < cfg->retry_max ? delay : cfg->retry_max;
}

/* expire - a message past max_queue_lifetime: what is still pending fails. */
static void expire(struct attempt *a, int64_t now)
{
	if (now - a->env.arrival < (int64_t)a->d->cfg->max_queue_lifetime)
		return;
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].state == QUEUE_RCPT_PENDING) {
			char why[700];

			snprintf(why, sizeof(why), "message expired after %u days in the queue (last: %s)",
				 a->d->cfg->max_queue_lifetime / 86400,
				 a->env.rcpt[i].last_reply ? a->env.rcpt[i].last_reply : "none");
			a->decided[i] = false;
			a->env.rcpt[i].attempts--;	/* decide() counts one more */
			decide(a, i, 550, "5.4.7", why, a->relay[i][0] ? a->relay[i] : NULL);
		}
}

/* bounce_needed - recipients that failed in this attempt, when the sender can get a DSN. */
static size_t bounce_count(const struct attempt *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->decided[i] && a->env.rcpt[i].state == QUEUE_RCPT_FAILED)
			n++;
	return n;
}

struct bounce_ctx {
	struct attempt *a;
};

/*
 * bounce_target - who hears about failed recipients: the sender; for a
 * bounce that failed (null sender) postmaster when double_bounce says
 * so, else nobody; never anyone for a failed double bounce, so a broken
 * postmaster address cannot make mail go round.
 */
static const char *bounce_target(const struct attempt *a, char *buf, size_t size, bool *dbl)
{
	*dbl = false;
	if (a->env.sender[0] != '\0')
		return a->env.sender;
	if (strcmp(a->d->cfg->double_bounce, "postmaster") != 0 ||
	    (a->env.listener && strcmp(a->env.listener, "double-bounce") == 0))
		return NULL;
	*dbl = true;
	snprintf(buf, size, "postmaster@%s", a->d->cfg->hostname);
	return buf;
}

/* attempt_record - the new envelope (and a bounce) to the queue. */
static void attempt_record(struct attempt *a, const char *headers, size_t hlen)
{
	struct queue_new_message bounce_msg;
	struct queue_envelope benv;
	struct queue_rcpt brcpt;
	char helo[MTAD_HOSTNAME_MAX + 1];
	char notify_buf[MTAD_HOSTNAME_MAX + 16];
	const char *notify;
	bool double_bounce;
	char *body = NULL;
	size_t blen = 0, nb = bounce_count(a);
	uint32_t max_attempts = 0;
	int64_t now = time(NULL);

	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].attempts > max_attempts)
			max_attempts = a->env.rcpt[i].attempts;
	a->env.next_attempt = now + retry_delay(a->d->cfg, max_attempts);
	memset(&benv, 0, sizeof(benv));
	notify = bounce_target(a, notify_buf, sizeof(notify_buf), &double_bounce);
	if (nb > 0 && !notify) {
		mtad_log(MTAD_LOG_INFO, "%s: not bouncing a bounce (null sender): %zu recipient(s) "
			 "dropped", a->env.qid, nb);
		nb = 0;
	}
	if (nb > 0) {
		struct smtp_dsn_rcpt *dr = calloc(nb, sizeof(*dr));
		struct smtp_dsn_info info = {
			.hostname = a->d->cfg->hostname, .orig_qid = a->env.qid,
			.orig_sender = notify, .orig_arrival = a->env.arrival, .now = now,
			.rcpt = dr, .headers = headers, .headers_len = hlen,
		};
		struct timeval tv;

		for (size_t i = 0, k = 0; dr && i < a->env.nrcpt; i++)
			if (a->decided[i] && a->env.rcpt[i].state == QUEUE_RCPT_FAILED)
				dr[k++] = (struct smtp_dsn_rcpt){
					.addr = a->env.rcpt[i].addr, .action = "failed",
					.status = a->dsn[i], .remote_mta = NULL,
					.diagnostic = a->reply[i] };
		info.nrcpt = dr ? nb : 0;
		body = dr ? smtp_dsn_build(&info, &blen) : NULL;
		free(dr);
		gettimeofday(&tv, NULL);
		benv.version = QUEUE_RECORD_VERSION;
		queue_id_next(a->d->ids, tv.tv_sec, (int32_t)tv.tv_usec, benv.qid);
		benv.arrival = tv.tv_sec;
		benv.arrival_usec = (int32_t)tv.tv_usec;
		benv.sender = "";
		brcpt = (struct queue_rcpt){ .addr = (char *)notify, .state = QUEUE_RCPT_PENDING };
		benv.rcpt = &brcpt;
		benv.nrcpt = 1;
		benv.client_ip = "127.0.0.1";
		benv.client_name = "localhost";
		snprintf(helo, sizeof(helo), "%s", a->d->cfg->hostname);
		benv.helo = helo;
		benv.listener = double_bounce ? "double-bounce" : "bounce";
		benv.protocol = "local";
		benv.size = blen;
		bounce_msg = (struct queue_new_message){ &benv, body, blen };
		if (body)
			mtad_log(MTAD_LOG_INFO, "%s: sender non-delivery notification: %s",
				 a->env.qid, benv.qid);
	}
	a->queue_wait = true;
	if (queue_update_async(a->d->queue, &a->env, body ? &bounce_msg : NULL,
			       attempt_updated, a) != 0) {
		mtad_log(MTAD_LOG_WARNING, "%s: cannot record the delivery outcome", a->env.qid);
		attempt_unlink(a);
		attempt_free(a);
	}
	free(body);
}

/* headers_arrived - the original header section, for the DSN. */
static void headers_arrived(void *arg, int status, const void *data, size_t len, bool last)
{
	struct attempt *a = arg;
	const char *p = data;
	size_t hlen = 0;

	(void)last;
	a->queue_wait = false;
	if (a->d->stopping) {
		/* Not recorded: the recipients stay pending and are tried after the restart. */
		attempt_unlink(a);
		attempt_free(a);
		return;
	}
	if (status == 0 && p) {
		const char *end = memmem(p, len, "\r\n\r\n", 4);

		hlen = end ? (size_t)(end - p) + 2 : len;
	}
	attempt_record(a, status == 0 ? p : NULL, hlen);
}

/*
 * attempt_hold_damaged - a body that failed its check is never sent and
 * never deleted by mtad: the message is held for the operator (mtaq
 * verify, show, delete) with one line saying why.
 */
static void attempt_hold_damaged(struct attempt *a)
{
	a->env.flags |= QUEUE_FLAG_HELD | QUEUE_FLAG_DAMAGED;
	mtad_log(MTAD_LOG_ERROR, "%s: held: the queued body is damaged (%s); it was not "
		 "delivered; see mtaq verify", a->env.qid, a->damage);
}

/* attempt_finish - the outcome of every group is known: retry, done, bounce. */
static void attempt_finish(struct attempt *a)
{
	if (a->damaged)
		attempt_hold_damaged(a);
	else
		expire(a, time(NULL));
	if (bounce_count(a) > 0 &&
	    queue_chunk_async(a->d->queue, a->env.qid, 0, headers_arrived, a) == 0) {
		a->queue_wait = true;
		return;
	}
	attempt_record(a, NULL, 0);
}

/* attempt_start - one due message. */
static void attempt_start(struct deliver *d, struct queue_envelope *env)
{
	struct attempt *a = calloc(1, sizeof(*a));

	if (!a)
		return;
	a->d = d;
	/* The scan's envelope moves into the attempt (queue.h allows it). */
	a->env = *env;
	memset(env, 0, sizeof(*env));
	env = &a->env;
	if (!(a->decided = calloc(env->nrcpt, sizeof(*a->decided))) ||
	    !(a->reply = calloc(env->nrcpt, sizeof(*a->reply))) ||
	    !(a->dsn = calloc(env->nrcpt, sizeof(*a->dsn))) ||
	    !(a->relay = calloc(env->nrcpt, sizeof(*a->relay))) || attempt_groups(a) != 0) {
		attempt_free(a);
		return;
	}
	a->started = time(NULL);
	a->next = d->active;
	d->active = a;
	d->nactive++;
	attempt_next_group(a);
}

/* in_flight - a message already being delivered (the scan may see it again). */
static bool in_flight(const struct deliver *d, const char *qid)
{
	for (const struct attempt *a = d->active; a; a = a->next)
		if (strcmp(a->env.qid, qid) == 0)
			return true;
	return false;
}

/* due_arrived - the scan's result. */
static void due_arrived(void *arg, int status, struct queue_envelope *envs, size_t n)
{
	struct deliver *d = arg;
	size_t asked = d->asked;

	d->scanning = false;
	if (status != 0 || d->stopping)
		return;
	d->more_due = n >= asked;
	for (size_t i = 0; i < n && d->nactive < d->cfg->delivery_concurrency; i++)
		if (!in_flight(d, envs[i].qid))
			attempt_start(d, &envs[i]);
}

/* deliver_close_idle - kept connections past IDLE_SECONDS (all of them when stopping). */
static void deliver_close_idle(struct deliver *d, bool all)
{
	int64_t now = time(NULL);

	for (size_t i = 0; i < d->ndests; i++) {
		struct dest *dest = &d->dests[i];

		if (!dest->idle || (!all && now - dest->idle_since < IDLE_SECONDS))
			continue;
		smtp_client_close(dest->idle);
		dest->idle = NULL;
		dest->conns--;
	}
}

/*
 * deliver_scan - asks the queue for up to room due messages. In-flight
 * messages are still due until their attempt is recorded; the scan
 * skips them by queue id rather than decoding them again (under a
 * backlog it runs after every attempt), and the cooling ones too.
 */
static void deliver_scan(struct deliver *d, unsigned room)
{
	char (*skip)[QUEUE_ID_LEN + 1] = NULL;
	size_t nskip = 0;
	int64_t now = time(NULL);

	if (!(skip = calloc(d->nactive + MAX_COOLING, sizeof(*skip))))
		return;		/* the next tick tries again */
	for (const struct attempt *a = d->active; a && nskip < d->nactive; a = a->next)
		memcpy(skip[nskip++], a->env.qid, QUEUE_ID_LEN + 1);
	for (size_t i = 0; i < MAX_COOLING; i++)
		if (d->cooling[i].until > now)
			memcpy(skip[nskip++], d->cooling[i].qid, QUEUE_ID_LEN + 1);
	d->asked = room;
	d->scanning = queue_due_async(d->queue, time(NULL), room, (const char (*)[QUEUE_ID_LEN + 1])skip,
				      nskip, due_arrived, d) == 0;
	free(skip);
}

/* deliver_tick - every second: anything due? */
static void deliver_tick(uv_timer_t *t)
{
	struct deliver *d = t->data;
	unsigned room = d->cfg->delivery_concurrency - d->nactive;

	deliver_close_idle(d, false);
	if (d->scanning || d->stopping || d->nactive >= d->cfg->delivery_concurrency)
		return;
	deliver_scan(d, room);
}

/*
 * deliver_more - an attempt ended: when the last scan left due messages
 * behind, look again now rather than at the next tick, so a backlog is
 * worked off at the speed of delivery, not one batch a second.
 */
static void deliver_more(struct deliver *d)
{
	if (d->more_due && !d->scanning && !d->stopping)
		deliver_tick(&d->timer);
}

/* deliver_new - see smtp.h. */
struct deliver *deliver_new(uv_loop_t *loop, const struct mtad_config *cfg,
				      struct queue *queue, struct mtad_dns *dns,
				      struct tls_client *tls, struct queue_id_gen *ids)
{
	struct deliver *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	*d = (struct deliver){ .loop = loop, .cfg = cfg, .queue = queue, .dns = dns,
				    .tls = tls, .ids = ids };
	deliver_routes(d);
	own_addresses(d);
	if (uv_timer_init(loop, &d->timer) != 0) {
		free(d);
		return NULL;
	}
	d->timer.data = d;
	if (uv_timer_start(&d->timer, deliver_tick, SCAN_INTERVAL_MS, SCAN_INTERVAL_MS) != 0) {
		uv_close((uv_handle_t *)&d->timer, (uv_close_cb)free);
		return NULL;
	}
	return d;
}

/* deliver_reload - routes again after SIGHUP. */
void deliver_reload(struct deliver *d)
{
	deliver_routes(d);
}

/* deliver_closed - the timer is closed: the runner's memory goes. */
static void deliver_closed(uv_handle_t *h)
{
	free(h->data);
}

/*
 * deliver_stop - no new attempts. Attempts in the middle of DNS or
 * SMTP are abandoned: their recipients stay pending in the queue and are
 * tried again after the restart (delivered twice at worst, never lost).
 * Attempts waiting for the queue finish when the queue answers (call
 * queue_writer_stop next, then deliver_free).
 */
void deliver_stop(struct deliver *d)
{
	struct attempt *a, *next;

	d->stopping = true;
	uv_timer_stop(&d->timer);
	deliver_close_idle(d, true);
	for (a = d->active; a; a = next) {
		next = a->next;
		if (!a->queue_wait) {
			attempt_unlink(a);
			attempt_free(a);
		}
	}
}

/* deliver_free - after deliver_stop and queue_writer_stop. */
void deliver_free(struct deliver *d)
{
	while (d->active) {
		struct attempt *a = d->active;

		attempt_unlink(a);
		attempt_free(a);
	}
	uv_close((uv_handle_t *)&d->timer, deliver_closed);
}
