/*
 * quota.c - sending quotas: messages per minute and recipients per day
 * for each authenticated login (and each trusted client address that
 * sends without one), so a stolen password sends a few dozen messages,
 * not a hundred thousand.
 *
 * Each key has two sliding windows, estimated the usual way from two
 * fixed ones: count(now) = previous window's count x the share of it
 * still inside the last W seconds + the current window's count. That
 * needs two counters per window and is never below the true count by
 * more than the previous window's spread.
 *
 * Pure: no I/O, no clock (the caller passes milliseconds), no locks (the
 * caller holds one). Must not: grow past max_keys keys (when full, the
 * key idle longest goes: it has the least to remember), or count an
 * attempt it refused (a refused client that retries at once must not
 * lock itself out forever).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "policy/policy_int.h"

#define QUOTA_BUCKETS 4096
#define MINUTE_MS 60000ull
#define DAY_MS 86400000ull

struct window {
	uint64_t start;		/* ms, a multiple of the width */
	uint64_t cur, prev;
	uint64_t warned;	/* start of the window last warned about, +1; 0 never */
};

/* The client addresses one login came from in a period (an hour, a day). */
struct login_spread {
	uint64_t period;		/* which one, +1; 0 never */
	uint32_t addr[POLICY_SPREAD_MAX];	/* hashes of the distinct addresses */
	unsigned n;
	bool warned;
};

struct quota_entry {
	struct quota_entry *next;
	uint64_t last_seen;
	struct window msgs, rcpts;
	struct login_spread spread;	/* this hour */
	struct login_spread day;	/* this day (the caller's day number) */
	char key[POLICY_QUOTA_KEY_MAX + 1];
};

struct policy_quota {
	struct quota_entry *bucket[QUOTA_BUCKETS];
	size_t n, max;
};

/* key_hash - FNV-1a, case-folded (logins compare without case). */
static unsigned key_hash(const char *k)
{
	uint32_t h = 2166136261u;

	for (; *k; k++)
		h = (h ^ (unsigned char)(*k >= 'A' && *k <= 'Z' ? *k + 32 : *k)) * 16777619u;
	return h % QUOTA_BUCKETS;
}

struct policy_quota *policy_quota_new(size_t max_keys)
{
	struct policy_quota *q = calloc(1, sizeof(*q));

	if (q)
		q->max = max_keys ? max_keys : 1;
	return q;
}

void policy_quota_free(struct policy_quota *q)
{
	if (!q)
		return;
	for (size_t b = 0; b < QUOTA_BUCKETS; b++)
		for (struct quota_entry *e = q->bucket[b], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	free(q);
}

/* evict_idlest - makes room: the entry seen longest ago goes. */
static void evict_idlest(struct policy_quota *q)
{
	struct quota_entry **victim = NULL;

	for (size_t b = 0; b < QUOTA_BUCKETS; b++)
		for (struct quota_entry **pp = &q->bucket[b]; *pp; pp = &(*pp)->next)
			if (!victim || (*pp)->last_seen < (*victim)->last_seen)
				victim = pp;
	if (victim) {
		struct quota_entry *e = *victim;

		*victim = e->next;
		free(e);
		q->n--;
	}
}

/* entry_of - key's entry, made when new; NULL when out of memory. */
static struct quota_entry *entry_of(struct policy_quota *q, const char *key)
{
	unsigned b = key_hash(key);
	struct quota_entry *e;

	for (e = q->bucket[b]; e; e = e->next)
		if (strcasecmp(e->key, key) == 0)
			return e;
	if (q->n >= q->max)
		evict_idlest(q);
	if (!(e = calloc(1, sizeof(*e))))
		return NULL;
	strncpy(e->key, key, POLICY_QUOTA_KEY_MAX);
	e->next = q->bucket[b];
	q->bucket[b] = e;
	q->n++;
	return e;
}

/* window_roll - moves w to the fixed window holding now. */
static void window_roll(struct window *w, uint64_t now, uint64_t width)
{
	uint64_t start = now - now % width;

	if (start == w->start)
		return;
	w->prev = start == w->start + width ? w->cur : 0;
	w->cur = 0;
	w->start = start;
}

/* window_count - the sliding estimate of the last width ms. */
static uint64_t window_count(const struct window *w, uint64_t now, uint64_t width)
{
	uint64_t into = now - w->start;	/* < width after window_roll */

	return w->cur + (w->prev * (width - into)) / width;
}

/*
 * take - one more (n more) in w if that stays within limit: true and
 * counted; false, not counted, with *count what it would have made.
 */
static bool take(struct window *w, uint64_t now, uint64_t width, unsigned limit, unsigned n,
		 uint64_t *count)
{
	window_roll(w, now, width);
	*count = window_count(w, now, width) + n;
	if (limit > 0 && *count > limit)
		return false;
	w->cur += n;
	return true;
}

/* first_warning - true once per fixed window: say it in the log then. */
static bool first_warning(struct window *w)
{
	if (w->warned == w->start + 1)
		return false;
	w->warned = w->start + 1;
	return true;
}

/*
 * quota_count - one more in the window of key chosen by rcpts (the day's
 * recipients, else the minute's messages): OK and counted, or OVER with
 * r filled. No memory for the key is not a reason to refuse mail.
 */
static enum policy_quota_verdict quota_count(struct policy_quota *q, const char *key,
					     uint64_t now_ms, unsigned limit, bool rcpts,
					     struct policy_quota_result *r)
{
	struct quota_entry *e = entry_of(q, key);
	struct window *w;

	memset(r, 0, sizeof(*r));
	if (!e)
		return POLICY_QUOTA_OK;
	e->last_seen = now_ms;
	w = rcpts ? &e->rcpts : &e->msgs;
	if (take(w, now_ms, rcpts ? DAY_MS : MINUTE_MS, limit, 1, &r->count))
		return POLICY_QUOTA_OK;
	r->warn = first_warning(w);
	return POLICY_QUOTA_OVER;
}

/* policy_quota_message - see policy.h. */
enum policy_quota_verdict policy_quota_message(struct policy_quota *q, const char *key,
					       uint64_t now_ms, unsigned limit,
					       struct policy_quota_result *r)
{
	return quota_count(q, key, now_ms, limit, false, r);
}

/* policy_quota_recipient - see policy.h. */
enum policy_quota_verdict policy_quota_recipient(struct policy_quota *q, const char *key,
						 uint64_t now_ms, unsigned limit,
						 struct policy_quota_result *r)
{
	return quota_count(q, key, now_ms, limit, true, r);
}

/* addr_hash - FNV-1a of an address text. */
static uint32_t addr_hash(const char *a)
{
	uint32_t h = 2166136261u;

	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 16777619u;
	return h;
}

/* spread_add - addr in sp's period (a new one starts it over); true when addr is new. */
static bool spread_add(struct login_spread *sp, uint64_t period, uint32_t h)
{
	unsigned i;

	if (sp->period != period + 1) {
		memset(sp, 0, sizeof(*sp));
		sp->period = period + 1;
	}
	for (i = 0; i < sp->n && sp->addr[i] != h; i++)
		;
	if (i < sp->n || sp->n == POLICY_SPREAD_MAX)
		return false;
	sp->addr[sp->n++] = h;
	return true;
}

/* policy_quota_login - see policy.h. */
unsigned policy_quota_login(struct policy_quota *q, const char *key, const char *addr,
			    uint64_t now_ms, uint32_t day, unsigned limit,
			    struct policy_login_result *r)
{
	struct quota_entry *e = entry_of(q, key);
	uint32_t h = addr_hash(addr);

	memset(r, 0, sizeof(*r));
	if (!e)
		return 0;
	e->last_seen = now_ms;
	r->new_hour = spread_add(&e->spread, now_ms / 3600000ull, h);
	r->new_today = spread_add(&e->day, day, h);
	if (limit > 0 && e->spread.n > limit && !e->spread.warned) {
		e->spread.warned = true;
		r->warn = true;
	}
	return e->spread.n;
}

/* policy_quota_seed_recipients - see policy.h. */
void policy_quota_seed_recipients(struct policy_quota *q, const char *key, uint64_t count,
				  uint64_t now_ms)
{
	struct quota_entry *e = entry_of(q, key);

	if (!e)
		return;
	e->last_seen = now_ms;
	window_roll(&e->rcpts, now_ms, DAY_MS);
	e->rcpts.cur += count;
}

/* policy_quota_keys - see policy.h. */
size_t policy_quota_keys(const struct policy_quota *q)
{
	return q->n;
}

/* ---- per-login limits (send_limit_map) ---- */

struct limit_line {
	char *login;		/* first: policy_login_find */
	struct policy_limits lim;
};

struct policy_limit_map {
	struct limit_line *lines;	/* sorted by login, without case */
	size_t n;
};

static int limit_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct limit_line *)a)->login,
			  ((const struct limit_line *)b)->login);
}

void policy_limit_map_free(struct policy_limit_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->lines[i].login);
	free(m->lines);
	free(m);
}

/* limit_value - a number, or '-' (-1: the global setting); false when neither. */
static bool limit_value(const char *s, size_t len, long long *v)
{
	char buf[16], *end;

	if (len == 1 && s[0] == '-') {
		*v = -1;
		return true;
	}
	if (len == 0 || len >= sizeof(buf) || s[0] < '0' || s[0] > '9')
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*v = strtoll(buf, &end, 10);
	return errno == 0 && *end == '\0' && *v <= 100000000;
}

/* limit_line_parse - "login: MESSAGES RECIPIENTS" into l; NULL, or what is wrong. */
static const char *limit_line_parse(const char *s, const char *e, struct limit_line *l)
{
	const char *colon = memchr(s, ':', (size_t)(e - s)), *p;
	long long v[2];
	size_t le;

	if (!colon)
		return "expected \"login: messages-a-minute recipients-a-day\"";
	for (le = (size_t)(colon - s); le > 0 && (s[le - 1] == ' ' || s[le - 1] == '\t'); le--)
		;
	if (le == 0 || le > POLICY_QUOTA_KEY_MAX || memchr(s, ' ', le) || memchr(s, '\t', le))
		return "bad login name";
	p = colon + 1;
	for (int i = 0; i < 2; i++) {
		const char *q;

		/* The text is len bytes, not a string: every scan stops at e. */
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		for (q = p; q < e && *q != ' ' && *q != '\t' && *q != '\r'; q++)
			;
		if (!limit_value(p, (size_t)(q - p), &v[i]))
			return "expected two limits: a number (0: none) or - (the global one)";
		p = q;
	}
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	if (p < e)
		return "more than two limits";
	if (!(l->login = strndup(s, le)))
		return "out of memory";
	l->lim.messages_per_minute = v[0];
	l->lim.recipients_per_day = v[1];
	return NULL;
}

/* limit_add - appends l to m. */
static int limit_add(struct policy_limit_map *m, size_t *cap, struct limit_line *l)
{
	if (m->n == POLICY_SENDER_MAP_MAX)
		return -1;
	if (m->n == *cap) {
		size_t want = *cap ? *cap * 2 : 16;
		struct limit_line *grown = realloc(m->lines, want * sizeof(*grown));

		if (!grown)
			return -1;
		m->lines = grown;
		*cap = want;
	}
	m->lines[m->n++] = *l;
	return 0;
}

/* policy_limit_map_parse - see policy.h. */
struct policy_limit_map *policy_limit_map_parse(const char *text, size_t len, const char *file,
						char *err, size_t errlen)
{
	struct policy_limit_map *m = calloc(1, sizeof(*m));
	struct policy_map_lines it = { .p = text, .end = text + len };
	const char *s, *e;
	size_t cap = 0;

	if (!m) {
		snprintf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	while (policy_map_line(&it, &s, &e)) {
		struct limit_line l = { 0 };
		const char *why;

		if ((why = limit_line_parse(s, e, &l)) == NULL && limit_add(m, &cap, &l) != 0)
			why = "too many lines, or out of memory";
		if (why) {
			snprintf(err, errlen, "%s:%d: %s", file, it.lineno, why);
			free(l.login);
			policy_limit_map_free(m);
			return NULL;
		}
	}
	if (m->n > 1)
		qsort(m->lines, m->n, sizeof(*m->lines), limit_cmp);
	for (size_t i = 1; i < m->n; i++)
		if (strcasecmp(m->lines[i - 1].login, m->lines[i].login) == 0) {
			snprintf(err, errlen, "%s: login %s is listed twice", file, m->lines[i].login);
			policy_limit_map_free(m);
			return NULL;
		}
	return m;
}

/* limit_find - the line of login's first len bytes (any case), or NULL. */
static const struct limit_line *limit_find(const struct policy_limit_map *m, const char *login,
					   size_t len)
{
	size_t i;

	if (m == NULL)
		return NULL;
	i = policy_login_find(m->lines, m->n, sizeof(*m->lines), login, len);
	return i < m->n ? &m->lines[i] : NULL;
}

/* policy_limits_for - see policy.h. */
struct policy_limits policy_limits_for(const struct policy_limit_map *m, const char *login,
				       struct policy_limits global)
{
	const struct limit_line *l = limit_find(m, login, strlen(login));

	if (!l)
		l = limit_find(m, login, strcspn(login, "@"));
	if (!l)
		return global;
	return (struct policy_limits){
		.messages_per_minute = l->lim.messages_per_minute < 0
			? global.messages_per_minute : l->lim.messages_per_minute,
		.recipients_per_day = l->lim.recipients_per_day < 0
			? global.recipients_per_day : l->lim.recipients_per_day,
	};
}
