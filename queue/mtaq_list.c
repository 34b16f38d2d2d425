/*
 * mtaq_list.c - mtaq's commands that look at the queue: list (mailq
 * style, or --json), show (one message's envelope and headers, or its
 * body), count and summary (recipients by domain and age, like qshape).
 *
 * Must not: change the queue (the spool is opened read-only for these),
 * print a queue string to a terminal but through put_text (addresses,
 * replies and headers may hold control characters), except the message
 * itself with `show --body`, or emit invalid JSON (json_str).
 *
 * Follows: RFC 8259 (JSON); RFC 5322 §2.2 (the header section ends at
 * the first empty line).
 */
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "queue/mtaq_int.h"

#define MTAQ_NBUCKETS 10	/* qshape: 5 10 20 ... 1280 minutes, then older */
#define MTAQ_INDENT 46		/* where sender and recipients start in `list` */

/* state_name - text of a recipient state. */
static const char *state_name(enum queue_rcpt_state s)
{
	switch (s) {
	case QUEUE_RCPT_PENDING: return "pending";
	case QUEUE_RCPT_SENT: return "sent";
	case QUEUE_RCPT_FAILED: return "failed";
	}
	return "unknown";
}

/* qid_cmp - qsort and bsearch order of queue ids. */
static int qid_cmp(const void *a, const void *b)
{
	return memcmp(a, b, QUEUE_ID_LEN);
}

/*
 * load_active - what mtad's runner says it is delivering now (its last
 * report, at most a second old: queue/active.c), sorted for lookups.
 * Nothing when mtad does not run; an unreadable report is said, and
 * then no message is shown as active.
 */
static void load_active(struct mtaq *m)
{
	if (queue_active_read(m->spool, &m->active, &m->nactive) < 0)
		fprintf(stderr, "mtaq: warning: cannot read %s/active: no message is shown "
			"as active\n", m->spool);
	if (m->nactive > 1)
		qsort(m->active, m->nactive, sizeof(*m->active), qid_cmp);
}

/*
 * queue_state - where a message stands, in Postfix's queue names: hold
 * (held, damaged ones too), active (mtad's runner is delivering it),
 * deferred (some recipient was tried and waits for its next try),
 * incoming (not tried yet: new, or requeued).
 */
static const char *queue_state(const struct mtaq *m, const struct queue_envelope *env)
{
	if (env->flags & QUEUE_FLAG_HELD)
		return "hold";
	if (m->nactive > 0 && bsearch(env->qid, m->active, m->nactive, sizeof(*m->active),
				      qid_cmp) != NULL)
		return "active";
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == QUEUE_RCPT_PENDING && env->rcpt[i].attempts > 0)
			return "deferred";
	return "incoming";
}

/* arrival_text - "Fri Nov 27 08:17:47" in local time. */
static void arrival_text(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL || strftime(buf, size, "%a %b %e %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)t);
}

/* ---- list ---- */

/* list_text - one mailq-style entry (after the id: ! held, * being
 * delivered, as mailq marks them); the next attempt when in the future. */
static void list_text(const struct mtaq *m, const struct queue_envelope *env, int64_t now)
{
	const char *state = queue_state(m, env);
	char when[64];

	arrival_text(env->arrival, when, sizeof(when));
	printf("%s%c %8llu %-20.20s ", env->qid, state[0] == 'h' ? '!' : state[0] == 'a' ? '*' : ' ',
	       (unsigned long long)env->size, when);
	put_text(stdout, env->sender[0] ? env->sender : "<>");
	putchar('\n');
	if (env->next_attempt > now) {
		arrival_text(env->next_attempt, when, sizeof(when));
		printf("%*s(next attempt %s)\n", MTAQ_INDENT, "", when);
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];

		printf("%*s", MTAQ_INDENT, "");
		put_text(stdout, r->addr);
		if (r->orcpt) {
			fputs(" (for ", stdout);
			put_text(stdout, r->orcpt);
			putchar(')');
		}
		printf("  %s", state_name(r->state));
		if (r->attempts > 0)
			printf(", %u attempt%s", r->attempts, r->attempts == 1 ? "" : "s");
		putchar('\n');
		if (r->last_reply != NULL) {
			printf("%*s(", MTAQ_INDENT + 2, "");
			put_text(stdout, r->last_reply);
			fputs(")\n", stdout);
		}
	}
	putchar('\n');
}

/* json_key - ,"key": before a value (no comma for the first). */
static void json_key(const char *key, bool first)
{
	printf("%s\"%s\":", first ? "" : ",", key);
}

/* json_rcpt - one recipient object. */
static void json_rcpt(const struct queue_rcpt *r)
{
	putchar('{');
	json_key("address", true);
	json_str(stdout, r->addr);
	json_key("state", false);
	json_str(stdout, state_name(r->state));
	json_key("attempts", false);
	printf("%u", r->attempts);
	json_key("last_reply", false);
	json_str(stdout, r->last_reply);
	json_key("orcpt", false);
	json_str(stdout, r->orcpt);
	putchar('}');
}

/* json_envelope - the fields of an envelope (no braces). */
static void json_envelope(const struct mtaq *m, const struct queue_envelope *env)
{
	json_key("queue_id", true);
	json_str(stdout, env->qid);
	json_key("held", false);
	fputs(env->flags & QUEUE_FLAG_HELD ? "true" : "false", stdout);
	json_key("damaged", false);
	fputs(env->flags & QUEUE_FLAG_DAMAGED ? "true" : "false", stdout);
	json_key("state", false);
	json_str(stdout, queue_state(m, env));
	json_key("expire_requested", false);
	fputs(env->flags & QUEUE_FLAG_EXPIRE ? "true" : "false", stdout);
	json_key("size", false);
	printf("%llu", (unsigned long long)env->size);
	json_key("arrival", false);
	printf("%lld.%06d", (long long)env->arrival, (int)env->arrival_usec % 1000000);
	json_key("sender", false);
	json_str(stdout, env->sender);
	json_key("client_ip", false);
	json_str(stdout, env->client_ip);
	json_key("client_name", false);
	json_str(stdout, env->client_name);
	json_key("helo", false);
	json_str(stdout, env->helo);
	json_key("listener", false);
	json_str(stdout, env->listener);
	json_key("protocol", false);
	json_str(stdout, env->protocol);
	json_key("auth_user", false);
	json_str(stdout, env->auth_user);
	json_key("smtputf8", false);
	fputs(env->flags & QUEUE_FLAG_SMTPUTF8 ? "true" : "false", stdout);
	json_key("body_8bitmime", false);
	fputs(env->flags & QUEUE_FLAG_8BITMIME ? "true" : "false", stdout);
	json_key("next_attempt", false);
	printf("%lld", (long long)env->next_attempt);
	json_key("recipients", false);
	putchar('[');
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (i > 0)
			putchar(',');
		json_rcpt(&env->rcpt[i]);
	}
	putchar(']');
}

/*
 * json_line - one message as postqueue -j prints it: one object a line,
 * Postfix's field names, the recipients not yet delivered or bounced
 * with why they wait (delay_reason: the last reply, when tried).
 */
static void json_line(const struct mtaq *m, const struct queue_envelope *env)
{
	bool first = true;

	putchar('{');
	json_key("queue_name", true);
	json_str(stdout, queue_state(m, env));
	json_key("queue_id", false);
	json_str(stdout, env->qid);
	json_key("arrival_time", false);
	printf("%lld", (long long)env->arrival);
	json_key("message_size", false);
	printf("%llu", (unsigned long long)env->size);
	json_key("forced_expire", false);
	fputs(env->flags & QUEUE_FLAG_EXPIRE ? "true" : "false", stdout);
	json_key("sender", false);
	json_str(stdout, env->sender);
	json_key("recipients", false);
	putchar('[');
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		printf("%s{", first ? "" : ",");
		first = false;
		json_key("address", true);
		json_str(stdout, r->addr);
		if (r->last_reply != NULL) {
			json_key("delay_reason", false);
			json_str(stdout, r->last_reply);
		}
		putchar('}');
	}
	puts("]}");
}

/* list_fn - queue_foreach callback for `list`; stops when stdout fails. */
static int list_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct list_state *st = arg;

	if (env == NULL) {
		report_damaged(st->m, qid);
		st->damaged++;
		return 0;
	}
	if (st->m->json_lines) {
		json_line(st->m, env);
	} else if (st->m->json) {
		fputs(st->n == 0 ? "[\n{" : ",\n{", stdout);
		json_envelope(st->m, env);
		putchar('}');
	} else {
		if (st->n == 0)
			printf("%-15s %8s %-20s %s\n", "-Queue ID-", "--Size--",
			       "----Arrival Time----", "-Sender/Recipient-------");
		list_text(st->m, env, (int64_t)time(NULL));
	}
	st->n++;
	st->bytes += env->size;
	return ferror(stdout);
}

/* cmd_list - `mtaq list [--json|--json-lines]`. */
int cmd_list(struct mtaq *m)
{
	struct list_state st = { .m = m };
	int rc;

	load_active(m);
	rc = queue_foreach(m->q, list_fn, &st);

	if (m->json_lines)
		;	/* an empty queue is no line at all, as with postqueue -j */
	else if (m->json)
		fputs(st.n == 0 ? "[]\n" : "\n]\n", stdout);
	else if (st.n == 0)
		puts("Mail queue is empty");
	else
		printf("-- %llu Kbytes in %zu Request%s.\n",
		       (unsigned long long)((st.bytes + 1023) / 1024), st.n, st.n == 1 ? "" : "s");
	if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	return rc != QUEUE_OK || st.damaged > 0;
}

/* ---- count ---- */

/* count_fn - queue_foreach callback for `count`. */
int count_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct list_state *st = arg;

	if (env == NULL) {
		report_damaged(st->m, qid);
		st->damaged++;
	} else {
		const char *state = queue_state(st->m, env);

		st->n++;
		st->held += state[0] == 'h';
		st->deferred += state[0] == 'd';
	}
	return 0;
}

/* cmd_count - `mtaq count`: the number of messages. */
int cmd_count(struct mtaq *m)
{
	struct list_state st = { .m = m };
	int rc;

	load_active(m);
	rc = queue_foreach(m->q, count_fn, &st);

	if (rc != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
		return 1;
	}
	if (m->json)
		printf("{\"count\":%zu,\"incoming\":%zu,\"deferred\":%zu,\"hold\":%zu,"
		       "\"damaged\":%zu}\n", st.n, st.n - st.held - st.deferred, st.deferred,
		       st.held, st.damaged);
	else
		printf("%zu\n", st.n);
	return st.damaged > 0;
}

/* ---- show ---- */

/* get_or_complain - queue_get with the standard messages; 0 when found. */
static int get_or_complain(struct mtaq *m, const char *qid, struct queue_envelope *env)
{
	int rc = queue_id_valid(qid) ? queue_get(m->q, qid, env) : QUEUE_NOTFOUND;

	if (rc == QUEUE_NOTFOUND)
		fprintf(stderr, "mtaq: no such message: %s\n", qid);
	else if (rc == QUEUE_DAMAGED)
		report_damaged(m, qid);
	else if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	return rc == QUEUE_OK ? 0 : -1;
}


/* notify_text - NOTIFY= bits as the client wrote them: "NEVER", "SUCCESS,FAILURE". */
static const char *notify_text(uint32_t bits, char buf[32])
{
	static const char *const names[4] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };

	buf[0] = '\0';
	for (unsigned k = 0; k < 4; k++)
		if (bits & (1u << k)) {
			if (buf[0])
				strcat(buf, ",");
			strcat(buf, names[k]);
		}
	return buf;
}
/* show_field - "name: value" when the value exists. */
static void show_field(const char *name, const char *value)
{
	if (value == NULL)
		return;
	printf("%s: ", name);
	put_text(stdout, value);
	putchar('\n');
}

/* show_envelope - the envelope as "name: value" lines. */
static void show_envelope(const struct mtaq *m, const struct queue_envelope *env)
{
	char when[64], nbuf[32];

	arrival_text(env->arrival, when, sizeof(when));
	printf("queue_id: %s\nstatus: %s%s\n", env->qid,
	       env->flags & QUEUE_FLAG_DAMAGED ? "held (damaged body: see mtaq verify)"
	       : queue_state(m, env), env->flags & QUEUE_FLAG_EXPIRE ?
	       " (expired by mtaq: returned to the sender at the next pass)" : "");
	printf("arrival: %s (%lld.%06d)\nsize: %llu\n", when, (long long)env->arrival,
	       (int)env->arrival_usec % 1000000, (unsigned long long)env->size);
	show_field("sender", env->sender[0] ? env->sender : "<>");
	show_field("client_name", env->client_name);
	show_field("client_ip", env->client_ip);
	show_field("helo", env->helo);
	show_field("listener", env->listener);
	show_field("protocol", env->protocol);
	show_field("auth_user", env->auth_user);
	if (env->flags & QUEUE_FLAG_SMTPUTF8)
		show_field("smtputf8", "yes (the next hop must offer SMTPUTF8)");
	if (env->flags & QUEUE_FLAG_8BITMIME)
		show_field("body", "8BITMIME");
	/* DSN (RFC 3461): RET= and ENVID= of the message, NOTIFY= and ORCPT= of each recipient. */
	if (env->dsn_ret != 0)
		printf("ret: %s\n", env->dsn_ret == QUEUE_RET_HDRS ? "HDRS" : "FULL");
	show_field("envid", env->envid);
	if (env->flags & QUEUE_FLAG_DELAY_WARNED)
		printf("delay_warning: sent\n");
	if (env->next_attempt != 0) {
		arrival_text(env->next_attempt, when, sizeof(when));
		printf("next_attempt: %s (%lld)\n", when, (long long)env->next_attempt);
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		printf("recipient: ");
		put_text(stdout, env->rcpt[i].addr);
		printf("  %s, %u attempts\n", state_name(env->rcpt[i].state), env->rcpt[i].attempts);
		show_field("  orcpt", env->rcpt[i].orcpt);
		if (env->rcpt[i].notify != 0)
			printf("  notify: %s\n", notify_text(env->rcpt[i].notify, nbuf));
		show_field("  dsn_orcpt", env->rcpt[i].dsn_orcpt);
		show_field("  last_reply", env->rcpt[i].last_reply);
	}
}

/* Collects the header section of a body: up to the first empty line. */
struct headers {
	char *text;
	size_t len;
	FILE *f;
	int nl;			/* newlines just seen (CR ignored) */
	bool done;
};

/* headers_fn - queue_body_fn: keeps bytes until the blank line. */
static int headers_fn(void *arg, const void *data, size_t len)
{
	struct headers *h = arg;
	const unsigned char *p = data;

	for (size_t i = 0; i < len && !h->done; i++) {
		if (p[i] == '\n' && ++h->nl == 2)
			h->done = true;
		else if (p[i] != '\r' && p[i] != '\n')
			h->nl = 0;
		if (!h->done && putc(p[i], h->f) == EOF)
			return -1;
	}
	return 0;
}

/* read_headers - the header section of qid as a string, NULL on error. */
static char *read_headers(struct mtaq *m, const char *qid)
{
	struct headers h = { 0 };
	int rc;

	if ((h.f = open_memstream(&h.text, &h.len)) == NULL) {
		fprintf(stderr, "mtaq: %s\n", strerror(errno));
		return NULL;
	}
	rc = queue_message_read(m->q, qid, headers_fn, &h);
	if (fclose(h.f) != 0 || rc != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", rc != QUEUE_OK ? queue_strerror(m->q) : strerror(errno));
		free(h.text);
		return NULL;
	}
	/* The CR of the empty line's CRLF was kept: it belongs to the separator. */
	if (h.len >= 2 && h.text[h.len - 1] == '\r' && h.text[h.len - 2] == '\n')
		h.text[--h.len] = '\0';
	return h.text;
}

/* put_headers - header lines for a terminal: CRLF as a newline, controls escaped. */
static void put_headers(const char *text)
{
	const char *line = text;

	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char *copy = strndup(line, len && line[len - 1] == '\r' ? len - 1 : len);

		if (copy == NULL)
			return;
		put_text_tabs(stdout, copy, true);
		putchar('\n');
		free(copy);
		line += nl ? len + 1 : len;
	}
}

/* show_body - `show --body`: the message exactly as stored. */
static int show_body(struct mtaq *m, const char *qid)
{
	int rc = queue_body_write(m->q, qid, stdout);

	if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	return rc != QUEUE_OK;
}

/* show_json - `show --json`: envelope plus headers or the whole message. */
static int show_json(struct mtaq *m, const struct queue_envelope *env)
{
	char *text = NULL;
	size_t len;
	FILE *f;
	int rc;

	if (m->body) {
		if ((f = open_memstream(&text, &len)) == NULL)
			return 1;
		rc = queue_body_write(m->q, env->qid, f);
		if (fclose(f) != 0 || rc != QUEUE_OK) {
			fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
			free(text);
			return 1;
		}
	} else if ((text = read_headers(m, env->qid)) == NULL) {
		return 1;
	}
	/* A NUL in the body would end the JSON string early: report it. */
	putchar('{');
	json_envelope(m, env);
	json_key(m->body ? "message" : "headers", false);
	json_str(stdout, text);
	if (m->body && strlen(text) != len)
		printf(",\"truncated_at_nul\":true");
	puts("}");
	free(text);
	return 0;
}

/* cmd_show - `mtaq show [--json] [--body] ID`. */
int cmd_show(struct mtaq *m)
{
	struct queue_envelope env;
	char *headers;
	int rc = 0;

	if (m->nargs != 1) {
		usage(stderr);
		return MTAQ_EXIT_USAGE;
	}
	if (get_or_complain(m, m->args[0], &env) < 0)
		return 1;
	load_active(m);
	if (m->json) {
		rc = show_json(m, &env);
	} else if (m->body) {
		rc = show_body(m, env.qid);
	} else {
		show_envelope(m, &env);
		putchar('\n');
		if ((headers = read_headers(m, env.qid)) == NULL)
			rc = 1;
		else
			put_headers(headers);
		free(headers);
	}
	queue_envelope_free(&env);
	return rc;
}

/* ---- summary ---- */

struct domain {
	char *name;
	uint64_t count[MTAQ_NBUCKETS];
	uint64_t total, bytes;
	const char *last_qid;	/* counts a message's size once per domain */
};

struct summary {
	struct mtaq *m;
	void *tree;		/* tsearch tree of struct domain */
	struct domain all;
	struct domain **sorted;
	size_t ndomains, damaged;
	time_t now;
	bool oom;
};

/* age_bucket - qshape column for a message that arrived at t. */
static int age_bucket(time_t now, int64_t t)
{
	int64_t minutes = (now - t) / 60;
	int64_t edge = 5;

	for (int i = 0; i < MTAQ_NBUCKETS - 1; i++, edge *= 2)
		if (minutes <= edge)
			return i;
	return MTAQ_NBUCKETS - 1;
}

/* domain_cmp - tsearch order: by name. */
static int domain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct domain *)a)->name, ((const struct domain *)b)->name);
}

/* domain_name - addr's domain, lower-cased and escaped for printing. */
static char *domain_name(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *name = NULL;
	size_t len;
	FILE *f = open_memstream(&name, &len);

	if (f == NULL)
		return NULL;
	put_text(f, at && at[1] ? at + 1 : "(no domain)");
	if (fclose(f) != 0) {
		free(name);
		return NULL;
	}
	/* Domains compare case-insensitively. */
	for (char *p = name; *p; p++)
		*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
	return name;
}

/* domain_of - the summary row for addr's domain, created when new. */
static struct domain *domain_of(struct summary *s, const char *addr)
{
	struct domain key = { .name = domain_name(addr) }, *d, **found;

	if (key.name == NULL)
		return NULL;
	if ((found = tfind(&key, &s->tree, domain_cmp)) != NULL) {
		free(key.name);
		return *found;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		free(key.name);
		return NULL;
	}
	d->name = key.name;
	if (tsearch(d, &s->tree, domain_cmp) == NULL) {
		free(d->name);
		free(d);
		return NULL;
	}
	s->ndomains++;
	return d;
}

/* domain_add - counts one recipient of env in row d. */
static void domain_add(struct domain *d, const struct queue_envelope *env, int bucket)
{
	d->count[bucket]++;
	d->total++;
	if (d->last_qid != env->qid) {
		d->bytes += env->size;
		d->last_qid = env->qid;
	}
}

/* summary_fn - queue_foreach callback: counts the not yet delivered recipients. */
static int summary_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct summary *s = arg;
	int bucket;

	if (env == NULL) {
		report_damaged(s->m, qid);
		s->damaged++;
		return 0;
	}
	bucket = age_bucket(s->now, env->arrival);
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct domain *d;

		if (env->rcpt[i].state == QUEUE_RCPT_SENT)
			continue;
		if ((d = domain_of(s, env->rcpt[i].addr)) == NULL) {
			s->oom = true;
			return 1;
		}
		domain_add(d, env, bucket);
		domain_add(&s->all, env, bucket);
	}
	return 0;
}

/* summary_row - one line of the table. */
static void summary_row(const char *name, const struct domain *d)
{
	printf("%30s %6llu", name, (unsigned long long)d->total);
	for (int i = 0; i < MTAQ_NBUCKETS; i++)
		printf(" %5llu", (unsigned long long)d->count[i]);
	printf(" %8llu\n", (unsigned long long)((d->bytes + 1023) / 1024));
}

/* summary_collect - twalk_r callback gathering the rows for sorting. */
static void summary_collect(const void *node, VISIT which, void *arg)
{
	struct summary *s = arg;

	if (which == postorder || which == leaf)
		s->sorted[s->ndomains++] = *(struct domain *const *)node;
}

/* summary_order - busiest domain first, then by name. */
static int summary_order(const void *a, const void *b)
{
	const struct domain *x = *(struct domain *const *)a, *y = *(struct domain *const *)b;

	if (x->total != y->total)
		return x->total < y->total ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* domain_free - tdestroy callback. */
static void domain_free(void *p)
{
	struct domain *d = p;

	free(d->name);
	free(d);
}

/* summary_json_row - one domain (or the total) as a JSON object. */
static void summary_json_row(const char *name, const struct domain *d)
{
	putchar('{');
	json_key("domain", true);
	json_str(stdout, name);
	json_key("total", false);
	printf("%llu", (unsigned long long)d->total);
	json_key("by_age", false);
	for (int i = 0; i < MTAQ_NBUCKETS; i++)
		printf("%c%llu", i == 0 ? '[' : ',', (unsigned long long)d->count[i]);
	putchar(']');
	json_key("kbytes", false);
	printf("%llu}", (unsigned long long)((d->bytes + 1023) / 1024));
}

/* summary_json - the table as one object: the age columns' upper edges
 * in minutes (the last column has none: older), the total, each domain. */
static void summary_json(struct summary *s)
{
	fputs("{\"age_minutes\":[", stdout);
	for (int i = 0, edge = 5; i < MTAQ_NBUCKETS - 1; i++, edge *= 2)
		printf("%s%d", i == 0 ? "" : ",", edge);
	fputs(",null],\"total\":", stdout);
	summary_json_row("TOTAL", &s->all);
	fputs(",\"domains\":[", stdout);
	for (size_t i = 0; i < s->ndomains; i++) {
		if (i > 0)
			putchar(',');
		summary_json_row(s->sorted[i]->name, s->sorted[i]);
	}
	puts("]}");
}

/* summary_print - the qshape-style table. */
static void summary_print(struct summary *s)
{
	printf("%30s %6s", "", "T");
	for (int i = 0, edge = 5; i < MTAQ_NBUCKETS - 1; i++, edge *= 2)
		printf(" %5d", edge);
	printf(" %5s %8s\n", "1280+", "Kbytes");
	summary_row("TOTAL", &s->all);
	for (size_t i = 0; i < s->ndomains; i++)
		summary_row(s->sorted[i]->name, s->sorted[i]);
}

/* cmd_summary - `mtaq summary`. */
int cmd_summary(struct mtaq *m)
{
	struct summary s = { .m = m, .now = time(NULL) };
	int rc = queue_foreach(m->q, summary_fn, &s), status = 0;
	size_t n = s.ndomains;

	if (rc != QUEUE_OK || s.oom) {
		fprintf(stderr, "mtaq: %s\n", s.oom ? "out of memory" : queue_strerror(m->q));
		status = 1;
	} else if ((s.sorted = calloc(n ? n : 1, sizeof(*s.sorted))) == NULL) {
		fprintf(stderr, "mtaq: out of memory\n");
		status = 1;
	} else {
		s.ndomains = 0;
		twalk_r(s.tree, summary_collect, &s);
		qsort(s.sorted, s.ndomains, sizeof(*s.sorted), summary_order);
		if (m->json)
			summary_json(&s);
		else
			summary_print(&s);
	}
	free(s.sorted);
	tdestroy(s.tree, domain_free);
	return status || s.damaged > 0;
}
