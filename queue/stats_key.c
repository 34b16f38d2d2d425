/*
 * stats_key.c - the one owner of the statistics keys' format
 * ("YYYYMMDD/reject/own-name", see queue.h): the day part, the check
 * that a key is well-formed, building a key (the SMTP session, the
 * writer thread and stats.c write them) and taking one apart (mtaq
 * reads them). The rule names in keys are policy_rule_name's; this file
 * does not know them, it only keeps them to one well-formed segment.
 *
 * Must not: do I/O, allocate, or read a key past QUEUE_STATS_KEY_MAX + 1
 * bytes (keys come back from stats.db, which another program may have
 * written). queue_stats_day reads the time zone, nothing else.
 *
 * Follows: no RFC; the key format is mtad's own (queue.h).
 */
#include <stdio.h>
#include <string.h>

#include "queue/queue_impl.h"

/* The "what" of each kind, after "YYYYMMDD/": a '*' ends it with a rule
 * or sender name, a '#' with a batch size; a '%' is a ten-minute slot
 * ("HHMM"). NULL: not written (read only). */
static const char *const kind_what[] = {
	[QUEUE_STATS_OTHER] = NULL,
	[QUEUE_STATS_DAY] = "",
	[QUEUE_STATS_REJECT] = "reject/*",
	[QUEUE_STATS_CONN] = "conn/*",
	[QUEUE_STATS_CLIENTS] = "sketch/clients/*",
	[QUEUE_STATS_TOP_HELO] = "sketch/helo",
	[QUEUE_STATS_TOP_IP] = "sketch/ip",
	[QUEUE_STATS_ACCEPT_AUTH] = "accept/auth",
	[QUEUE_STATS_ACCEPT_UNAUTH] = "accept/unauth",
	[QUEUE_STATS_COMMIT_MESSAGES] = "commit/messages",
	[QUEUE_STATS_COMMIT_SYNCS] = "commit/syncs/#",
	[QUEUE_STATS_OLD_IP] = NULL,
	[QUEUE_STATS_OLD_HELO] = NULL,
	[QUEUE_STATS_SENDER_MSGS] = "sender/msgs/*",
	[QUEUE_STATS_SENDER_RCPTS] = "sender/rcpts/*",
	[QUEUE_STATS_SENDER_QUOTA] = "sender/quota/*",
	[QUEUE_STATS_SENDER_OWNER] = "sender/owner/*",
	[QUEUE_STATS_SENDER_ADDRS] = "sender/addrs/*",
	[QUEUE_STATS_SLOT_MSGS] = "sender/%/msgs/*",
	[QUEUE_STATS_SLOT_RCPTS] = "sender/%/rcpts/*",
	[QUEUE_STATS_SLOT_QUOTA] = "sender/%/quota/*",
	[QUEUE_STATS_SLOT_OWNER] = "sender/%/owner/*",
	[QUEUE_STATS_SLOT_ADDRS] = "sender/%/addrs/*",
};
#define NKINDS (sizeof(kind_what) / sizeof(kind_what[0]))

/* queue_stats_key_len - see queue_impl.h. */
size_t queue_stats_key_len(const char *key, size_t max)
{
	size_t len = strnlen(key, max + 1);

	if (len <= QUEUE_STATS_DAY_LEN + 1 || len > max)
		return 0;
	for (size_t i = 0; i < QUEUE_STATS_DAY_LEN; i++)
		if (key[i] < '0' || key[i] > '9')
			return 0;
	if (key[QUEUE_STATS_DAY_LEN] != '/')
		return 0;
	for (size_t i = QUEUE_STATS_DAY_LEN + 1; i < len; i++)
		if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
			return 0;
	return len;
}

/* queue_stats_day - see queue.h. Noon, so a DST change cannot skip a day. */
int queue_stats_day(time_t now, int offset, char out[QUEUE_STATS_DAY_LEN + 1])
{
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL)
		return -1;
	tm.tm_mday += offset;
	tm.tm_hour = 12;
	tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	if (mktime(&tm) == (time_t)-1)
		return -1;
	return strftime(out, QUEUE_STATS_DAY_LEN + 1, "%Y%m%d", &tm) == QUEUE_STATS_DAY_LEN ? 0 : -1;
}

/* queue_stats_slot - see queue.h. */
int queue_stats_slot(time_t now, char day[QUEUE_STATS_DAY_LEN + 1], unsigned *slot)
{
	struct tm tm;

	if (localtime_r(&now, &tm) == NULL ||
	    strftime(day, QUEUE_STATS_DAY_LEN + 1, "%Y%m%d", &tm) != QUEUE_STATS_DAY_LEN)
		return -1;
	*slot = (unsigned)(tm.tm_hour * 60 + tm.tm_min) / 10;
	return *slot < QUEUE_STATS_SLOTS ? 0 : -1;
}

/* day_ok - exactly QUEUE_STATS_DAY_LEN digits. */
static bool day_ok(const char *day)
{
	if (day == NULL || strnlen(day, QUEUE_STATS_DAY_LEN + 1) != QUEUE_STATS_DAY_LEN)
		return false;
	for (size_t i = 0; i < QUEUE_STATS_DAY_LEN; i++)
		if (day[i] < '0' || day[i] > '9')
			return false;
	return true;
}

/* put_part - one variable part of a key: '*' the name, '#' the batch
 * size 1 << bucket, '%' the slot bucket as HHMM. Returns what it wrote,
 * or -1 when the part is unusable or does not fit. */
static int put_part(char *buf, size_t size, char what, const char *name, unsigned bucket)
{
	int n;

	if (what == '*') {
		if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL)
			return -1;
		n = snprintf(buf, size, "%s", name);
	} else if (what == '#') {
		if (bucket >= QUEUE_SYNC_BUCKETS)
			return -1;
		n = snprintf(buf, size, "%u", 1u << bucket);
	} else {
		if (bucket >= QUEUE_STATS_SLOTS)
			return -1;
		n = snprintf(buf, size, "%02u%02u", bucket / 6, bucket % 6 * 10);
	}
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* queue_stats_key_format - see queue.h. */
int queue_stats_key_format(char *buf, size_t size, const char *day, enum queue_stats_kind kind,
			   const char *rule, unsigned bucket)
{
	const char *what = (size_t)kind < NKINDS ? kind_what[kind] : NULL;
	size_t n;

	if (what == NULL || !day_ok(day) || size <= QUEUE_STATS_DAY_LEN + 1)
		return -1;
	n = (size_t)snprintf(buf, size, "%s/", day);
	while (*what) {
		size_t fixed = strcspn(what, "*#%");
		int part;

		if (fixed >= size - n)
			return -1;
		memcpy(buf + n, what, fixed);
		n += fixed;
		buf[n] = '\0';
		what += fixed;
		if (*what == '\0')
			break;
		if ((part = put_part(buf + n, size - n, *what++, rule, bucket)) < 0)
			return -1;
		n += (size_t)part;
	}
	/* The day's prefix is no key of its own; everything else must be one. */
	if (kind != QUEUE_STATS_DAY && queue_stats_key_len(buf, QUEUE_STATS_KEY_MAX) != n)
		return -1;
	return (int)n;
}

/* prefix_of - the fixed part of kind's "what" (before its '*' or '#')
 * at the start of what: the rest of what, or NULL when it is not there. */
static const char *prefix_of(const char *what, enum queue_stats_kind kind)
{
	size_t len = strcspn(kind_what[kind], "*#");

	return strncmp(what, kind_what[kind], len) == 0 ? what + len : NULL;
}

/* parse_named - REJECT, CONN, CLIENTS: the prefix, then a rule's name
 * (one non-empty segment: no '/'). */
static bool parse_named(const char *what, enum queue_stats_kind kind, struct queue_stats_key *out)
{
	const char *name = prefix_of(what, kind);

	if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL)
		return false;
	out->kind = kind;
	out->name = name;
	out->name_len = strlen(name);
	return true;
}

/* parse_slot - SLOT_*: "sender/HHMM/K/" then a sender's name, the
 * slot a real ten minutes of a day. */
static bool parse_slot(const char *what, enum queue_stats_kind kind, struct queue_stats_key *out)
{
	const char *p = kind_what[kind], *name;
	size_t head = strcspn(p, "%");
	unsigned hh, mm;

	if (strncmp(what, p, head) != 0)
		return false;
	what += head;
	for (int i = 0; i < 4; i++)
		if (what[i] < '0' || what[i] > '9')
			return false;
	hh = (unsigned)(what[0] - '0') * 10 + (unsigned)(what[1] - '0');
	mm = (unsigned)(what[2] - '0') * 10 + (unsigned)(what[3] - '0');
	if (hh > 23 || mm > 59 || mm % 10 != 0)
		return false;
	p += head + 1;
	head = strcspn(p, "*");
	if (strncmp(what + 4, p, head) != 0)
		return false;
	name = what + 4 + head;
	if (name[0] == '\0' || strchr(name, '/') != NULL)
		return false;
	out->kind = kind;
	out->name = name;
	out->name_len = strlen(name);
	out->bucket = hh * 6 + mm / 10;
	return true;
}

/* parse_old_ip - "ip/RULE/IP", before issue 11: a rule, then any address. */
static bool parse_old_ip(const char *what, struct queue_stats_key *out)
{
	const char *slash, *rule = strncmp(what, "ip/", 3) == 0 ? what + 3 : NULL;

	if (rule == NULL || (slash = strchr(rule, '/')) == NULL || slash == rule || slash[1] == '\0')
		return false;
	out->kind = QUEUE_STATS_OLD_IP;
	out->name = rule;
	out->name_len = (size_t)(slash - rule);
	out->ip = slash + 1;
	return true;
}

/* parse_old_helo - "helo/NAME", before issue 11: NAME may hold '/'. */
static bool parse_old_helo(const char *what, struct queue_stats_key *out)
{
	const char *name = strncmp(what, "helo/", 5) == 0 ? what + 5 : NULL;

	if (name == NULL || name[0] == '\0')
		return false;
	out->kind = QUEUE_STATS_OLD_HELO;
	out->name = name;
	out->name_len = strlen(name);
	return true;
}

/* parse_syncs - "commit/syncs/N" with N exactly 1 << bucket. */
static bool parse_syncs(const char *what, struct queue_stats_key *out)
{
	const char *n = prefix_of(what, QUEUE_STATS_COMMIT_SYNCS);

	for (unsigned b = 0; n != NULL && b < QUEUE_SYNC_BUCKETS; b++) {
		char text[12];

		snprintf(text, sizeof(text), "%u", 1u << b);
		if (strcmp(n, text) == 0) {
			out->kind = QUEUE_STATS_COMMIT_SYNCS;
			out->bucket = b;
			return true;
		}
	}
	return false;
}

/* parse_fixed - the kinds without a variable part. */
static bool parse_fixed(const char *what, struct queue_stats_key *out)
{
	static const enum queue_stats_kind fixed[] = {
		QUEUE_STATS_TOP_HELO, QUEUE_STATS_TOP_IP, QUEUE_STATS_ACCEPT_AUTH,
		QUEUE_STATS_ACCEPT_UNAUTH, QUEUE_STATS_COMMIT_MESSAGES,
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(what, kind_what[fixed[i]]) == 0) {
			out->kind = fixed[i];
			return true;
		}
	return false;
}

/* queue_stats_key_parse - see queue.h. */
int queue_stats_key_parse(const char *key, struct queue_stats_key *out)
{
	const char *what;

	*out = (struct queue_stats_key){ .kind = QUEUE_STATS_OTHER };
	if (key == NULL || queue_stats_key_len(key, QUEUE_STATS_KEY_MAX) == 0)
		return -1;
	memcpy(out->day, key, QUEUE_STATS_DAY_LEN);
	what = key + QUEUE_STATS_DAY_LEN + 1;
	if (!parse_named(what, QUEUE_STATS_REJECT, out) &&
	    !parse_named(what, QUEUE_STATS_CONN, out) &&
	    !parse_named(what, QUEUE_STATS_CLIENTS, out) &&
	    !parse_named(what, QUEUE_STATS_SENDER_MSGS, out) &&
	    !parse_named(what, QUEUE_STATS_SENDER_RCPTS, out) &&
	    !parse_named(what, QUEUE_STATS_SENDER_QUOTA, out) &&
	    !parse_named(what, QUEUE_STATS_SENDER_OWNER, out) &&
	    !parse_named(what, QUEUE_STATS_SENDER_ADDRS, out) &&
	    !parse_slot(what, QUEUE_STATS_SLOT_MSGS, out) &&
	    !parse_slot(what, QUEUE_STATS_SLOT_RCPTS, out) &&
	    !parse_slot(what, QUEUE_STATS_SLOT_QUOTA, out) &&
	    !parse_slot(what, QUEUE_STATS_SLOT_OWNER, out) &&
	    !parse_slot(what, QUEUE_STATS_SLOT_ADDRS, out) &&
	    !parse_old_ip(what, out) && !parse_old_helo(what, out) &&
	    !parse_syncs(what, out) && !parse_fixed(what, out))
		out->kind = QUEUE_STATS_OTHER;
	return 0;
}
