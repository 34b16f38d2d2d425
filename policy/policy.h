/*
 * policy.h - who may send what through mtad: the HELO rules for
 * unauthenticated sessions and relay control.
 *
 * Everything here is pure: no I/O, no allocation, no clock. The SMTP
 * session gathers the facts (HELO name, client address, its reverse name
 * and whether the HELO name resolves, both looked up elsewhere, whether
 * the client authenticated or is in a trusted network) and asks for a
 * verdict. That keeps the decision table-testable and fuzzable, and lets
 * the admin's question "Can we turn these EHLO rules off?" be answered
 * by one setting.
 */
#ifndef POLICY_POLICY_H
#define POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* The rules, in the order they are checked. */
enum policy_rule {
	POLICY_ACCEPT = 0,
	POLICY_NO_HELO,		/* MAIL before any HELO/EHLO (always) */
	POLICY_HELO_SYNTAX,	/* not a hostname or address literal (always) */
	POLICY_OWN_NAME,	/* our hostname or a local domain (relaxed) */
	POLICY_OWN_ADDRESS,	/* one of our addresses, bracketed or bare (relaxed) */
	POLICY_LOCALHOST,	/* localhost, [127.0.0.1], [::1] from elsewhere (relaxed) */
	POLICY_NON_FQDN,	/* no dot: Outlook, Pegasus (strict) */
	POLICY_UNDER_OWN_NAME,	/* x.<our hostname>: Eudora (strict) */
	POLICY_BARE_IP,		/* 1.2.3.4 without brackets (strict) */
	POLICY_LITERAL_MISMATCH,/* [a.b.c.d] that is not the client (strict) */
	POLICY_UNRESOLVABLE,	/* the name has no A/AAAA (strict, needs DNS) */
	POLICY_NO_RDNS,		/* the client address has no PTR (off by default) */
	POLICY_RELAY,		/* relay control: not a local recipient */
	POLICY_NRULES
};

enum policy_mode { POLICY_MODE_OFF, POLICY_MODE_RELAXED, POLICY_MODE_STRICT };

/* What a DNS lookup said; UNKNOWN when it was not done (no resolver). */
enum policy_dns { POLICY_DNS_UNKNOWN, POLICY_DNS_FOUND, POLICY_DNS_NOTFOUND, POLICY_DNS_TEMPFAIL };

#define POLICY_MAX_DOMAINS 64
#define POLICY_MAX_ADDRS 64

/* Settings: built from mtad.conf (and the machine's addresses) by the caller. */
struct policy_settings {
	enum policy_mode mode;
	/* Per rule: -1 = as the mode says, 0 = off, 1 = on (helo_rule.NAME). */
	int8_t rule_override[POLICY_NRULES];
	const char *hostname;
	const char *const *local_domains;	/* mail for them is delivered here */
	size_t nlocal_domains;
	const char *const *relay_domains;	/* mail for them is relayed on */
	size_t nrelay_domains;
	const struct mtad_addr *own_addrs;	/* this machine's addresses */
	size_t nown_addrs;
	const struct mtad_addr *trusted;	/* relay_networks */
	size_t ntrusted;
};

/* The facts about one session at MAIL FROM (or EHLO). */
struct policy_client {
	const char *helo;		/* NULL: no HELO/EHLO yet */
	const char *client_ip;		/* text, as from inet_ntop */
	enum policy_dns rdns;		/* the client's PTR */
	enum policy_dns helo_dns;	/* A/AAAA of the HELO name */
	bool authenticated;
	bool trusted;			/* client_ip in relay_networks */
};

struct policy_verdict {
	enum policy_rule rule;	/* POLICY_ACCEPT, or the rule that refused */
	int code;		/* 550, 501, 503, 450, 554 ... */
	const char *enhanced;	/* "5.7.1" */
	const char *text;	/* reply text, no code */
};

/*
 * policy_helo_verdict - the HELO rules. Authenticated and trusted
 * clients are always accepted (the point of mtad: a user's broken mail
 * client that authenticates is never locked out by its HELO name).
 */
struct policy_verdict policy_helo_verdict(const struct policy_settings *set,
					  const struct policy_client *client);

/*
 * policy_relay_verdict - may this client send to rcpt (the path from
 * RCPT TO, without < >)? Local and relay domains from anyone; anything
 * else only from authenticated or trusted clients (554 5.7.1 Relay
 * access denied). For the others the old open-relay tricks are refused:
 * % and ! in the local part, a quoted local part holding @, a source
 * route (had_route), and [address] domain literals. "postmaster" with no
 * domain is always accepted (RFC 5321 §4.5.1).
 */
struct policy_verdict policy_relay_verdict(const struct policy_settings *set,
					   const char *rcpt, bool had_route,
					   bool authenticated, bool trusted);

/*
 * policy_settings_build - set as mtad.conf says (helo_policy, helo_rule.*,
 * hostname, local_domains, relay_domains, relay_networks): the one place
 * that reads them, for mtad's sessions and for `mtaq policy-test`, so the
 * two cannot differ. local and relay (POLICY_MAX_DOMAINS each) are the
 * caller's storage that set points into, as are own (this machine's
 * addresses, found by the caller: that is I/O) and cfg.
 */
void policy_settings_build(struct policy_settings *set, const struct mtad_config *cfg,
			   const char **local, const char **relay,
			   const struct mtad_addr *own, size_t nown);

/* policy_rule_enabled - what mode and overrides say about a rule. */
bool policy_rule_enabled(const struct policy_settings *set, enum policy_rule rule);

/* "own-name", "non-fqdn", ... and back (-1 when unknown). */
const char *policy_rule_name(enum policy_rule rule);
int policy_rule_lookup(const char *name);

/*
 * policy_config_rule / policy_config_rule_name - the configuration's
 * hooks for helo_rule.NAME (struct mtad_config_checks): the number of a
 * rule a mode can switch, or -1 with err ("unknown HELO rule", "... is
 * always on" for no-helo and helo-syntax); and a number's name.
 */
int policy_config_rule(const char *name, char *err, size_t errlen);
const char *policy_config_rule_name(int rule);
/* policy_config_rule_default - 1 or 0: rule r under helo_policy mode when
 * no helo_rule.NAME says otherwise (`mtad -d`); -1 when r cannot be switched. */
int policy_config_rule_default(int rule, const char *mode);

/* policy_mode_name / lookup: "off", "relaxed", "strict". */
const char *policy_mode_name(enum policy_mode mode);
int policy_mode_lookup(const char *name);

/*
 * policy_space_verdict - may a message of size bytes (0 when the client
 * did not say, RFC 1870 SIZE) be taken, when the spool's filesystem has
 * avail bytes free and queue_minfree asks for reserve? True unless avail
 * would fall below reserve: avail - size < reserve. reserve 0 means no
 * reserve; avail POLICY_SPACE_UNKNOWN (not measured yet, or the measure
 * failed) means room. No overflow for any input. policy/space.c.
 */
#define POLICY_SPACE_UNKNOWN UINT64_MAX
bool policy_space_verdict(uint64_t avail, uint64_t reserve, uint64_t size);

/* ---- sender ownership (policy/sender.c) ---- */

/*
 * Which addresses an authenticated login may send as (sender_login).
 * The map (sender_login_map) is parsed once from the file's text; its
 * lines replace the default for the logins they name. Parsing allocates;
 * the checks do not.
 */
#define POLICY_SENDER_MAP_MAX 100000	/* lines */
#define POLICY_SENDER_OWNED_MAX 256	/* addresses on one line */
#define POLICY_FROM_MAX 32		/* addresses checked in From: */

struct policy_sender_map;

/*
 * policy_sender_map_parse - "login: address, @domain, ..." lines, '#'
 * comments and blank lines. NULL with err "FILE:LINE: what" on a bad
 * line, a login listed twice, or out of memory.
 */
struct policy_sender_map *policy_sender_map_parse(const char *text, size_t len, const char *file,
						  char *err, size_t errlen);
void policy_sender_map_free(struct policy_sender_map *m);

/* policy_login_local - the length of login's name without "@realm". */
size_t policy_login_local(const char *login);

/*
 * policy_sender_owned - may login send as addr ("" is <>, always yes)?
 * A login in the map (by its full name, or its name without the realm)
 * owns what its line lists; any other owns LOCALPART@D for the local
 * domains. m may be NULL (no map). Case does not matter.
 */
bool policy_sender_owned(const struct policy_sender_map *m, const char *login, const char *addr,
			 const char *const *local_domains, size_t nlocal);

/*
 * policy_login_listed - is login (len bytes, not NUL-terminated) in list:
 * names separated by commas, blanks or lines, '#' comments? A name
 * matches the whole login or its name without "@realm"; case does not
 * matter. For auth_block.
 */
bool policy_login_listed(const char *list, const char *login, size_t len);

/*
 * policy_from_addresses - the addresses of a From: header's value
 * (unfolded; several From: fields may be joined with ','), at most max.
 * Returns -1 when there are more than max, or one is longer than
 * SMTP_PATH_MAX - 1: the caller must not pass such a header unchecked.
 */
int policy_from_addresses(const char *value, size_t len, char out[][SMTP_PATH_MAX], size_t max,
			  size_t *n);

/* ---- sending quotas (policy/quota.c) ---- */

/*
 * Messages per minute and recipients per day per key (an authenticated
 * login, or "[address]" for a trusted client without one), as sliding
 * windows. The table allocates one entry per key, at most max_keys (the
 * idlest goes when full); the caller locks it and passes the time.
 * A limit of 0 means no limit.
 */
#define POLICY_QUOTA_KEY_MAX 255

enum policy_quota_verdict { POLICY_QUOTA_OK, POLICY_QUOTA_OVER };

struct policy_quota_result {
	uint64_t count;	/* what the window holds with this one (over: would hold) */
	bool warn;	/* the first refusal in this window: log it */
};

struct policy_quota;
struct policy_quota *policy_quota_new(size_t max_keys);
void policy_quota_free(struct policy_quota *q);
/* policy_quota_message - one more message now? Counted only when OK. */
enum policy_quota_verdict policy_quota_message(struct policy_quota *q, const char *key,
					       uint64_t now_ms, unsigned limit,
					       struct policy_quota_result *r);
/* policy_quota_recipient - one more recipient now? Counted only when OK. */
enum policy_quota_verdict policy_quota_recipient(struct policy_quota *q, const char *key,
						 uint64_t now_ms, unsigned limit,
						 struct policy_quota_result *r);
size_t policy_quota_keys(const struct policy_quota *q);

/*
 * policy_quota_login - a login from addr now: how many distinct client
 * addresses the login came from in this clock hour (counted up to
 * POLICY_SPREAD_MAX). r->warn is true once an hour, when that passes
 * limit (0: never): a sign of a stolen password. r->new_hour: addr is
 * new for the login in this clock hour; r->new_today: on day (the
 * caller's day number, say 20261204).
 */
#define POLICY_SPREAD_MAX 64
struct policy_login_result {
	bool warn;
	bool new_hour;
	bool new_today;
};
unsigned policy_quota_login(struct policy_quota *q, const char *key, const char *addr,
			    uint64_t now_ms, uint32_t day, unsigned limit,
			    struct policy_login_result *r);

/*
 * Per-login limits (send_limit_map): "login: MESSAGES RECIPIENTS" lines,
 * each a number (0: no limit) or '-' (the global setting); '#'
 * comments. A login is found by its full name or its name without the
 * realm. Parse errors as "FILE:LINE: what".
 */
struct policy_limits {
	long long messages_per_minute;	/* -1 in a map line: the global one */
	long long recipients_per_day;
};
struct policy_limit_map;
struct policy_limit_map *policy_limit_map_parse(const char *text, size_t len, const char *file,
						char *err, size_t errlen);
void policy_limit_map_free(struct policy_limit_map *m);
/* policy_limits_for - login's limits: its line's, else global (m may be NULL). */
struct policy_limits policy_limits_for(const struct policy_limit_map *m, const char *login,
				       struct policy_limits global);

/* policy_quota_seed_recipients - count recipients already sent today
 * (from the statistics, at start): a restart does not reset the quota. */
void policy_quota_seed_recipients(struct policy_quota *q, const char *key, uint64_t count,
				  uint64_t now_ms);

/* ---- local recipients (policy/rcpt_map.c, policy/verify_cache.c) ---- */

/*
 * local_recipient_maps: one key a line, "localpart", "local@domain" or
 * "@domain" (what follows a blank is ignored, so postmap sources work),
 * '#' comments. NULL with err "FILE:LINE: what" on a bad key, more than
 * POLICY_RCPT_MAP_MAX keys, or out of memory.
 */
#define POLICY_RCPT_MAP_MAX 1000000
struct policy_rcpt_map;
struct policy_rcpt_map *policy_rcpt_map_parse(const char *text, size_t len, const char *file,
					      char *err, size_t errlen);
/*
 * policy_rcpt_known - is addr (an address of a local domain; the caller
 * decides that) listed: as itself, its "@domain", or its local part?
 * Any case. false for a NULL map.
 */
bool policy_rcpt_known(const struct policy_rcpt_map *m, const char *addr);
size_t policy_rcpt_map_count(const struct policy_rcpt_map *m);
void policy_rcpt_map_free(struct policy_rcpt_map *m);

/*
 * What recipient verification learnt, per address, each answer until
 * its time to live (seconds) runs out: at most max entries, the least
 * recently used evicted when full. Times are the caller's (seconds);
 * not locked: one cache per event loop.
 */
enum policy_verify_state {
	POLICY_VERIFY_UNCACHED,	/* never asked, or the answer expired */
	POLICY_VERIFY_KNOWN,
	POLICY_VERIFY_UNKNOWN,
};
struct policy_verify_cache;
/* NULL when out of memory or max is 0. */
struct policy_verify_cache *policy_verify_cache_new(size_t max, unsigned positive_ttl,
						    unsigned negative_ttl);
enum policy_verify_state policy_verify_cache_get(struct policy_verify_cache *c, const char *addr,
						 int64_t now);
/* policy_verify_cache_put - the answer for addr now (replacing one); -1 out of memory. */
int policy_verify_cache_put(struct policy_verify_cache *c, const char *addr, bool known,
			    int64_t now);
size_t policy_verify_cache_count(const struct policy_verify_cache *c);
void policy_verify_cache_free(struct policy_verify_cache *c);

#endif
