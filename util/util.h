/*
 * util.h - the ground floor: what every part of mtad needs and that
 * needs nothing of mtad above it. Configuration (the key table, the
 * parser, defaults; util/config.c), logging (util/log.c), DNS on the
 * event loop (util/dns.c), the one address type (util/addr.c), this
 * machine's own addresses (util/own_addr.c) and small string helpers
 * (util/str.c).
 *
 * Nothing here includes a header of another folder. The configuration
 * knows keys, types and defaults; values whose meaning belongs to a
 * module above (routes, HELO rule names) are checked by that module
 * through struct mtad_config_checks, so the parser still reports them
 * as file:line. The parser is pure: it turns text into a struct and an
 * error message, and does no I/O beyond reading the file in
 * mtad_config_load().
 */
#ifndef UTIL_UTIL_H
#define UTIL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sys/socket.h>

#include <uv.h>

#include "milter/milter.h"

#define MTAD_VERSION "0.15.0"

/* RFC 5321 §4.5.3.1 limits, for both the server (smtp/) and the client (deliver/). */
#define SMTP_COMMAND_MAX 512	/* command line including CRLF */
#define SMTP_PATH_MAX 256	/* path including < > */
#define SMTP_DOMAIN_MAX 255
#define SMTP_LOCAL_MAX 64
#define MTAD_MAX_LISTEN 16
#define MTAD_LOOPS_MAX 64	/* event loops (QUEUE_ID_LANES_MAX is as many) */
#define MTAD_HOSTNAME_MAX 255
#define MTAD_PATH_MAX 1024
#define MTAD_USER_MAX 32	/* useradd's limit for a login name */
#define MTAD_LOG_TAG_MAX 32	/* log_tag: letters, digits, '.', '_', '-' */

/* How a listener uses TLS. */
enum mtad_listen_tls {
	MTAD_TLS_NONE,		/* plaintext only */
	MTAD_TLS_STARTTLS,	/* plaintext, STARTTLS offered (ports 25, 587) */
	MTAD_TLS_IMPLICIT,	/* handshake first, RFC 8314 (port 465) */
};

/* One `listen = ADDRESS:PORT [starttls|tls] [submission] [auth_plaintext]` entry. */
struct mtad_listen {
	char address[64];	/* numeric IPv4 or IPv6 address, no brackets */
	int port;
	int line;		/* where it was configured, for messages */
	enum mtad_listen_tls tls;
	bool submission;	/* RFC 6409: MAIL needs AUTH */
	bool auth_plaintext;	/* AUTH allowed without TLS (off by default) */
	bool helo_reject_ehlo;	/* helo_reject_at=ehlo: HELO rules at EHLO (no AUTH here) */
	bool local;		/* the local submission socket (local_socket): sendmail's */
};

#define MTAD_MAX_DOMAINS 64
#define MTAD_MAX_NETWORKS 64
#define MTAD_NETWORKS_TEXT (MTAD_MAX_NETWORKS * 64)	/* a network list as written */
#define MTAD_MAX_RULES 16
#define MTAD_MAX_ROUTES 64
#define MTAD_MAX_REPLICATION_PEERS 8	/* replication_peer lines */
#define MTAD_HOSTPORT_MAX 272	/* HOST:PORT, [IPV6]:PORT */
#define MTAD_ROUTE_MAX 320
#define MTAD_MAX_DKIM 32	/* dkim_sign lines (dkim/dkim.h DKIM_MAX_KEYS) */
#define MTAD_CONFIG_KEYS_MAX 104	/* rows of the parameter table, with room */

/*
 * An IPv4 or IPv6 address, or a network (CIDR): the one address type of
 * mtad (util/addr.c). Configured networks, the policy's lists and this
 * machine's own addresses all use it; sockets' sockaddrs are converted
 * with mtad_addr_from_sockaddr.
 */
struct mtad_addr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t bytes[16];
	unsigned prefix;	/* networks: prefix length; addresses: 32 or 128 */
};

/*
 * All settings. Each one is declared once, with its default, in the
 * parameter table in util/config.c; `mtad -n` prints those that differ.
 */
struct mtad_config {
	char hostname[MTAD_HOSTNAME_MAX + 1];
	/* The account mtad switches to when started as root; "" = stay as
	 * started (tests, `make run`). See mtad/privilege.c. */
	char user[MTAD_USER_MAX + 1];
	char log[8];			/* where log lines go: stderr or syslog */
	char log_tag[MTAD_LOG_TAG_MAX + 1];	/* the program name in log lines */
	char log_services[4];		/* yes: "TAG/smtpd" etc.; no: TAG on every line */
	char syslog_socket[108];	/* log = syslog: the daemon's socket (sun_path) */
	char spool_directory[MTAD_PATH_MAX];
	/* The Unix socket sendmail(1) submits through; "" = none. */
	char local_socket[108];
	/* aliases(5) for the host name and local domains, read from its
	 * .db (newaliases); "" = none. */
	char alias_maps[MTAD_PATH_MAX];
	struct mtad_listen listen[MTAD_MAX_LISTEN];
	size_t nlisten;
	/*
	 * false while listen[] holds the built-in default (0.0.0.0:25);
	 * the first `listen =` line replaces the default instead of adding
	 * to it. Users of the config just read listen[0..nlisten).
	 */
	bool listen_configured;

	uint64_t message_size_limit;	/* bytes; SIZE in EHLO */
	unsigned max_recipients;	/* per message */
	unsigned max_errors;		/* per session, then 421 */
	unsigned max_connections;	/* whole server */
	unsigned max_connections_per_ip;
	unsigned loops;			/* event loops for sessions; 0 = auto, one per core */
	unsigned command_timeout;	/* seconds idle waiting for a command */
	unsigned data_timeout;		/* seconds idle inside DATA */

	char tls_cert_file[MTAD_PATH_MAX];
	char tls_key_file[MTAD_PATH_MAX];
	char tls_chain_file[MTAD_PATH_MAX];
	char tls_min_version[16];	/* TLSv1.2 or TLSv1.3 */
	char tls_ciphers[512];		/* TLS 1.2 list; "" = OpenSSL's default */
	char tls_ciphersuites[512];	/* TLS 1.3 list; "" = OpenSSL's default */
	unsigned tls_handshake_timeout;	/* seconds */

	char sender_login[8];		/* strict, warn, off: who may send as whom */
	char sender_login_map[MTAD_PATH_MAX];	/* login: address, @domain; "" = none */
	unsigned auth_login_max_addresses;	/* per login and hour, then a warning; 0 = none */
	char auth_block[4096];		/* logins refused: "alice, bob", or a file; "" = none */
	unsigned send_rate_limit;	/* messages a minute per login; 0 = none */
	unsigned send_recipient_limit;	/* recipients a day per login; 0 = none */
	char send_limit_map[MTAD_PATH_MAX];	/* login: MESSAGES RECIPIENTS; "" = none */
	char send_limit_notify[16];	/* postmaster, none: a notice when a limit is hit */

	/* RCPT for a local domain: does the recipient exist? (issue 16) */
	char local_recipient_maps[MTAD_PATH_MAX];	/* one key a line; "" = none */
	char recipient_verify[4];	/* yes, no: ask the domain's next hop (an RCPT probe) */
	unsigned recipient_verify_positive_ttl;	/* seconds a "known" answer is kept */
	unsigned recipient_verify_negative_ttl;	/* seconds an "unknown" answer is kept */
	unsigned recipient_verify_cache_size;	/* answers kept per event loop */
	unsigned recipient_verify_timeout;	/* seconds a RCPT waits for a probe */

	char sasl_mechanisms[128];	/* "PLAIN LOGIN" */
	char sasl_pwcheck_method[16];	/* auxprop (sasldb) or saslauthd */
	char sasl_database[MTAD_PATH_MAX];
	char saslauthd_path[MTAD_PATH_MAX];
	char sasl_service[64];
	char sasl_realm[MTAD_HOSTNAME_MAX + 1];	/* "" = hostname */
	unsigned auth_max_failures;	/* per session, then 421 */
	unsigned auth_failure_delay;	/* milliseconds before a 535, plus jitter */
	unsigned auth_ip_max_failures;	/* per client address within auth_ip_window */
	unsigned auth_ip_window;	/* seconds */
	struct mtad_addr auth_ip_exempt[MTAD_MAX_NETWORKS];	/* not counted (a shared NAT) */
	size_t nauth_ip_exempt;
	char auth_ip_exempt_text[MTAD_NETWORKS_TEXT];	/* as written, for `mtad -n` */

	char helo_policy[16];		/* off, relaxed, strict */
	int8_t helo_rule[MTAD_MAX_RULES];	/* per policy rule: -1 mode, 0 off, 1 on */
	char local_domains[MTAD_MAX_DOMAINS][MTAD_HOSTNAME_MAX + 1];
	size_t nlocal_domains;
	char relay_domains[MTAD_MAX_DOMAINS][MTAD_HOSTNAME_MAX + 1];
	size_t nrelay_domains;
	struct mtad_addr relay_networks[MTAD_MAX_NETWORKS];
	size_t nrelay_networks;
	char relay_networks_text[MTAD_NETWORKS_TEXT];	/* as written, for `mtad -n` */
	unsigned max_policy_rejections;	/* per connection, then 421 */
	char dns_servers[512];		/* "system", "none", or IP[:PORT] list */
	unsigned dns_timeout;		/* seconds per try */

	/* Delivery (deliver/deliver.c). Routes are kept as text, parsed by deliver/route.c. */
	char routes[MTAD_MAX_ROUTES][MTAD_ROUTE_MAX];
	int route_line[MTAD_MAX_ROUTES];
	size_t nroutes;
	char relayhost[MTAD_ROUTE_MAX];	/* "" = none: MX lookups */
	/* DKIM signing (dkim/, smtp/session_dkim.c): one key per line, the
	 * line's fields split and checked here, the key file read by mtad. */
	struct mtad_dkim_sign {
		char domain[254];	/* lower case */
		char selector[64];
		char key_file[MTAD_PATH_MAX];
		char algorithm[16];	/* rsa-sha256 | ed25519-sha256 */
	} dkim_sign[MTAD_MAX_DKIM];
	int dkim_sign_line[MTAD_MAX_DKIM];
	size_t ndkim_sign;
	unsigned dkim_expire;	/* x= this many seconds after t=; 0: no x= */

	/* Content filters (smtp/session_milter.c): `milter =` lines in order. */
	struct milter_spec milters[MILTER_MAX];
	char milter_text[MILTER_MAX][MILTER_LINE_MAX];	/* as written, for mtad -n */
	size_t nmilters;
	/* Which listeners use them: "all" (every TCP listener), "none", or
	 * words: ADDRESS:PORT as a listen line names it, [IPV6]:PORT, "local". */
	char milter_listeners[512];
	unsigned delivery_concurrency;	/* messages being delivered at once */
	unsigned destination_concurrency;	/* connections per destination */
	unsigned retry_min;		/* seconds before the first retry */
	unsigned retry_max;		/* cap of the doubling backoff */
	unsigned max_queue_lifetime;	/* seconds, then bounce */
	unsigned delay_warning_time;	/* seconds, then one "delayed" DSN; 0: none */
	unsigned smtp_timeout;		/* seconds per outbound SMTP step */
	unsigned smtp_queue_read_timeout;	/* seconds a body chunk read from the queue may take */
	char smtp_tls[16];		/* none, may, verify (routes may override) */
	char smtp_use_chunking[8];	/* yes, no: BDAT to a next hop that offers CHUNKING */
	char bare_newline[16];		/* normalize, reject: a bare LF in DATA (smtp/data.c) */
	char smtp_tls_ca_file[MTAD_PATH_MAX];	/* "" = the system's CA store */
	char double_bounce[16];		/* a failed bounce: drop, or tell postmaster */

	/* Replication (queue/replication.c): a Berkeley DB replication group
	 * of this node and its peers. replication_local "" = a single node. */
	char replication_local[MTAD_HOSTPORT_MAX];
	char replication_peers[MTAD_MAX_REPLICATION_PEERS][MTAD_HOSTPORT_MAX];
	int replication_peer_line[MTAD_MAX_REPLICATION_PEERS];
	size_t nreplication_peers;
	unsigned replication_priority;	/* election priority; 0: never master */
	char replication_ack[16];	/* one, quorum, all_peers, none */
	unsigned replication_ack_timeout;	/* seconds the master waits for acknowledgements */
	char replication_two_site_strict[8];	/* yes, no: 2 nodes elect only together */

	uint64_t db_cache_size;		/* Berkeley DB cache, bytes */
	uint64_t db_log_buffer_size;	/* Berkeley DB in-memory log buffer */
	unsigned checkpoint_interval;	/* seconds between txn checkpoints */
	/* Free space kept in the spool's filesystem: below it MAIL and DATA
	 * get 452 (smtp/). MTAD_MINFREE_AUTO until set; read it through
	 * mtad_config_minfree. 0 = no reserve. */
	uint64_t queue_minfree;

	/* Where each table row was set (index: the row), 0 = its default:
	 * for messages about a setting found wrong after the parse (`mtad -n`
	 * checking the files it names). Read it through mtad_config_line. */
	int key_line[MTAD_CONFIG_KEYS_MAX];
};

#define MTAD_MINFREE_AUTO UINT64_MAX

/* mtad_config_minfree - the reserve in force (bytes; 0 = none). */
uint64_t mtad_config_minfree(const struct mtad_config *cfg);

/*
 * What the parser asks the modules above the ground floor: values whose
 * meaning is theirs. The program that loads the file (mtad/main.c, mtaq)
 * fills it in; any member may be NULL: routes are then kept unchecked,
 * and helo_rule.NAME lines are refused as unknown.
 */
struct mtad_config_checks {
	/* route / relayhost value: 0, or -1 with err ("bad route ..."). */
	int (*route)(const char *value, bool relayhost, char *err, size_t errlen);
	/* helo_rule.NAME: the rule's number (below MTAD_MAX_RULES), or -1 with err. */
	int (*helo_rule)(const char *name, char *err, size_t errlen);
	/* The NAME of rule number r, for `mtad -n`. */
	const char *(*helo_rule_name)(int r);
	/* Whether rule r is on under helo_policy mode when no helo_rule.NAME
	 * says otherwise (for `mtad -d`): 1, 0, or -1 when r is no switchable rule. */
	int (*helo_rule_default)(int r, const char *mode);
};

/*
 * What a check found: an error (the configuration is refused) or a
 * warning (it works, but probably not as meant). msg is "FILE:LINE: what"
 * (or "FILE: what" for the file as a whole).
 */
enum mtad_config_severity { MTAD_CONFIG_ERROR, MTAD_CONFIG_WARNING };

/* Where a parse's findings go, every one of them (`mtad -n`). */
struct mtad_config_report {
	void (*note)(void *arg, enum mtad_config_severity sev, const char *msg);
	void *arg;
};

/* At most this many errors are reported from one file; then one line says so. */
#define MTAD_CONFIG_ERRORS_MAX 100

/* Fills in every default. The hostname default is the machine's FQDN. */
void mtad_config_defaults(struct mtad_config *cfg);

/*
 * Parses configuration text on top of what is in cfg (call defaults
 * first). On error returns -1 and writes "file:line: what" into err.
 */
int mtad_config_parse(struct mtad_config *cfg, const struct mtad_config_checks *checks,
		      const char *text, size_t len, const char *filename, char *err, size_t errlen);

/* Reads and parses a file; defaults are applied first. */
int mtad_config_load(struct mtad_config *cfg, const struct mtad_config_checks *checks,
		     const char *path, char *err, size_t errlen);

/*
 * The same, going on after an error: every error and warning of the
 * file (syntax, values, and the rules between settings) goes to report,
 * each as "FILE:LINE: what". Returns the number of errors (0: valid).
 */
int mtad_config_parse_all(struct mtad_config *cfg, const struct mtad_config_checks *checks,
			  const struct mtad_config_report *report, const char *text, size_t len,
			  const char *filename);
int mtad_config_load_all(struct mtad_config *cfg, const struct mtad_config_checks *checks,
			 const struct mtad_config_report *report, const char *path);

/* mtad_config_line - the line that set key (a table name), 0 when it is the default. */
int mtad_config_line(const struct mtad_config *cfg, const char *key);

/*
 * `mtad -n KEY...` and `mtad -d [KEY...]`: "key = value" for each key
 * named (its value in cfg: pass defaults for -d), or for every row of
 * the table when nkeys is 0. A key that is no setting gets a line on
 * errout; returns how many were unknown.
 */
size_t mtad_config_print_keys(const struct mtad_config *cfg, const struct mtad_config_checks *checks,
			      const char *const *keys, size_t nkeys, FILE *out, FILE *errout);

/* Prints `key = value` for each setting that differs from its default. */
void mtad_config_print_nondefault(const struct mtad_config *cfg,
				  const struct mtad_config_checks *checks, FILE *out);

/*
 * Logging: one line per event, Postfix-shaped, to stderr:
 *   Nov 27 08:17:47 mtad[1234]: warning: ...
 * or, after mtad_log_to_syslog(), as one RFC 3164 datagram to the syslog
 * daemon's socket with facility mail:
 *   <20>Nov 27 08:17:47 mtad[1234]: warning: ...
 * Safe from any thread: each line is one write(2) or send(2), or a share
 * of one write (mtad_log_hold_start).
 */
enum mtad_log_level { MTAD_LOG_INFO, MTAD_LOG_WARNING, MTAD_LOG_ERROR };

void mtad_log(enum mtad_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mtad_vlog(enum mtad_log_level level, const char *fmt, va_list ap);

/*
 * The part of mtad a line comes from, as Postfix names its daemons, so
 * that pflogsumm and fail2ban's postfix filters read mtad's log: the
 * program name is "TAG/NAME" (TAG is log_tag, "mtad" by default), e.g.
 *   Nov 27 08:17:47 mtad/smtpd[1234]: connect from unknown[192.0.2.1]
 * mtad_log() is MTAD_SVC_DAEMON: the plain TAG, for the daemon's own
 * lines (start, stop, reload, queue and resource warnings).
 */
enum mtad_log_service {
	MTAD_SVC_DAEMON,	/* "mtad": start, stop, reload, warnings */
	MTAD_SVC_SMTPD,		/* "mtad/smtpd": SMTP sessions (port 25 listeners) */
	MTAD_SVC_SUBMISSION,	/* "mtad/submission/smtpd": submission listeners */
	MTAD_SVC_SMTPS,		/* "mtad/smtps/smtpd": implicit TLS listeners */
	MTAD_SVC_PICKUP,	/* "mtad/pickup": the local socket (sendmail) */
	MTAD_SVC_CLEANUP,	/* "mtad/cleanup": message-id= of a queued message */
	MTAD_SVC_QMGR,		/* "mtad/qmgr": (queue active), removed */
	MTAD_SVC_SMTP,		/* "mtad/smtp": SMTP deliveries */
	MTAD_SVC_LMTP,		/* "mtad/lmtp": LMTP deliveries */
	MTAD_SVC_BOUNCE,	/* "mtad/bounce": non-delivery notifications */
	MTAD_SVC_MTAQ,		/* "mtad/mtaq": administrator actions */
};

/* mtad_log_svc - mtad_log, with the service's program name. */
void mtad_log_svc(enum mtad_log_service svc, enum mtad_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mtad_vlog_svc(enum mtad_log_service svc, enum mtad_log_level level, const char *fmt,
		   va_list ap);

/* mtad_log_service_name - "smtpd", "submission/smtpd", ...; "" for MTAD_SVC_DAEMON. */
const char *mtad_log_service_name(enum mtad_log_service svc);

/* mtad_log_tag_valid - a log_tag value that keeps "TAG/NAME[PID]:" parseable. */
bool mtad_log_tag_valid(const char *tag);

/*
 * mtad_log_set_tag - from now on lines are "TAG[pid]:" and, when
 * services is true, "TAG/NAME[pid]:" for the services above (when false
 * every line has the plain TAG). Before it, the program name is the
 * executable's (mtad, mtaq) and services are "mtad/NAME". Returns 0, or
 * -1 for a tag mtad_log_tag_valid refuses. Call before other threads
 * log (at start), like mtad_log_to_syslog.
 */
int mtad_log_set_tag(const char *tag, bool services);

/*
 * mtad_log_to_syslog - from now on every line goes to the Unix datagram
 * socket at path (/dev/log), one datagram per line, never held. A line
 * the socket does not take at once (no daemon there any more, or one
 * that is behind) is written to stderr instead: the loop never waits for
 * syslog, and no line is dropped while stderr works. Returns 0, or -1
 * with err when nothing listens at path now. Call before other threads
 * log (at start).
 */
int mtad_log_to_syslog(const char *path, char *err, size_t errlen);

/* mtad_log_to_stderr - back to stderr (closes the socket). Call when no
 * other thread logs (at exit). */
void mtad_log_to_stderr(void);

/* mtad_log_syslog_active - true between the two calls above. */
bool mtad_log_syslog_active(void);

/*
 * mtad_log_hold_start - from now on, info lines logged on the loop's
 * thread for stderr (not for syslog) are gathered and written together
 * before the loop next waits for events (or when 16 KB have gathered),
 * instead of one write(2) each: under load that was ~3 system calls per
 * message. Warnings and errors, and lines from other threads, are
 * still written at once (held lines first, so the loop thread's lines
 * keep their order). Call on the loop's thread; returns 0 or a libuv
 * error. Held lines are lost only if the process dies within one loop
 * iteration.
 */
int mtad_log_hold_start(uv_loop_t *loop);

/* mtad_log_hold_stop - writes what is held and logs line by line again
 * (before the loop is closed; the prepare handle is closed here). */
void mtad_log_hold_stop(void);

/*
 * DNS (util/dns.c): c-ares driven by the libuv loop, never blocking.
 * Only the servers named in mtad.conf are asked (`dns_servers`), so tests
 * and the development runtime use a DNS server on loopback and never the
 * system's resolver; "system" means /etc/resolv.conf.
 */
struct mtad_dns;
struct mtad_dns_query;

enum mtad_dns_status { MTAD_DNS_FOUND, MTAD_DNS_NOTFOUND, MTAD_DNS_TEMPFAIL };

/*
 * mtad_dns_new - servers is "system", or a list of "IP", "IP:PORT",
 * "[IPV6]:PORT" separated by commas or blanks. timeout_ms is per try.
 * Returns NULL with err on failure.
 */
struct mtad_dns *mtad_dns_new(uv_loop_t *loop, const char *servers, unsigned timeout_ms,
			      unsigned tries, char *err, size_t errlen);

/* Cancels every query (their callbacks are not called) and frees the resolver. */
void mtad_dns_free(struct mtad_dns *dns);

/*
 * The client's name: PTR of ip, then forward-confirmed (one of the
 * name's A/AAAA records must be ip, as Postfix requires). name is set
 * with MTAD_DNS_FOUND only.
 */
typedef void (*mtad_dns_name_cb)(void *arg, enum mtad_dns_status status, const char *name);
struct mtad_dns_query *mtad_dns_reverse(struct mtad_dns *dns, const char *ip,
					mtad_dns_name_cb cb, void *arg);

/* Does name have A or AAAA records? naddrs counts them. */
typedef void (*mtad_dns_addr_cb)(void *arg, enum mtad_dns_status status, unsigned naddrs);
struct mtad_dns_query *mtad_dns_forward(struct mtad_dns *dns, const char *name,
					mtad_dns_addr_cb cb, void *arg);

/*
 * The mail exchangers of domain (RFC 5321 §5.1), sorted by preference.
 * FOUND: nmx >= 1; a null MX (RFC 7505) is one entry with host "".
 * NOTFOUND: no MX records (the caller may fall back to the domain's own
 * address). TEMPFAIL also when every exchange name is malformed.
 */
struct mtad_dns_mx {
	unsigned preference;
	char host[MTAD_HOSTNAME_MAX + 1];	/* lower case, no trailing dot */
};
typedef void (*mtad_dns_mx_cb)(void *arg, enum mtad_dns_status status,
			       const struct mtad_dns_mx *mx, size_t nmx);
struct mtad_dns_query *mtad_dns_mx(struct mtad_dns *dns, const char *domain,
				   mtad_dns_mx_cb cb, void *arg);

/*
 * The lookups above return NULL, and never call cb, when the query was
 * not started: a malformed name or address (see mtad_dns_hostname_ok),
 * too many queries in flight, or a resolver being freed. Callbacks are
 * only ever called from the loop, never from inside these functions.
 * A query handle is valid until its callback returns or it is cancelled;
 * a callback may start lookups, cancel others, or free the resolver.
 */

/*
 * The addresses of name (A and AAAA), for connecting: IPv4 first as
 * found, then IPv6; port is 0 in each; at most 64 of each family.
 * NOTFOUND (addrs NULL) when neither exists; TEMPFAIL when none was
 * found and a query failed. NULL and cancel as for the lookups above.
 */
typedef void (*mtad_dns_addrs_cb)(void *arg, enum mtad_dns_status status,
				  const struct sockaddr_storage *addrs, size_t naddrs);
struct mtad_dns_query *mtad_dns_addresses(struct mtad_dns *dns, const char *name,
					  mtad_dns_addrs_cb cb, void *arg);

/* Stops a query: its callback will not be called. */
void mtad_dns_cancel(struct mtad_dns_query *q);

/*
 * Is name a sane host name: letters, digits, hyphens and dots, labels of
 * 1..63 characters not starting or ending with a hyphen, at most 253
 * characters, not all-numeric at the end (so never an IPv4 address)? One
 * trailing dot is allowed. Names from DNS reach users only if this holds.
 */
bool mtad_dns_hostname_ok(const char *name);

/*
 * mtad_addr_parse - "192.0.2.1", "2001:db8::1", "10.0.0.0/8",
 * "[::1]" (brackets and "IPv6:" prefix allowed when literal is true).
 * Returns 0 or -1. Networks with host bits set are accepted and masked.
 */
int mtad_addr_parse(const char *text, size_t len, bool literal, struct mtad_addr *out);

/* mtad_net_contains - is addr inside net? (IPv4-mapped IPv6 counts as IPv4.) */
bool mtad_net_contains(const struct mtad_addr *net, const struct mtad_addr *addr);

/* mtad_in_networks - is the textual address in any of the networks? */
bool mtad_in_networks(const struct mtad_addr *nets, size_t n, const char *ip);

/* mtad_addr_from_sockaddr - an AF_INET/AF_INET6 sockaddr as an address (false: another family). */
bool mtad_addr_from_sockaddr(const struct sockaddr *sa, struct mtad_addr *out);

/* mtad_addr_same - the same host address (prefixes ignored; IPv4-mapped IPv6 is IPv4). */
bool mtad_addr_same(const struct mtad_addr *a, const struct mtad_addr *b);

/*
 * mtad_own_addresses - this machine's interface addresses (getifaddrs)
 * and the configured listen addresses that are not wildcards, at most
 * max. util/own_addr.c; it logs a warning when the interfaces cannot
 * be listed and returns what it has.
 */
size_t mtad_own_addresses(const struct mtad_config *cfg, struct mtad_addr *out, size_t max);

/* mtad_lower - ASCII lower case, whatever the locale (util/str.c). */
char mtad_lower(char c);

/*
 * mtad_xtext_decode - RFC 3461 §4 xtext in s[0..len) into out (size
 * outsize, NUL-terminated): "+XX" (two upper-case hex digits) is the
 * byte XX; other characters are "!" to "~" but "+" and "=". The decoded
 * text must be printable ASCII (RFC 3461 §4.2, §4.4). Returns its
 * length, or -1 when malformed or longer than outsize - 1 (util/xtext.c).
 */
int mtad_xtext_decode(const char *s, size_t len, char *out, size_t outsize);

/*
 * mtad_xtext_encode - s as xtext into out (size outsize, NUL-terminated):
 * "+", "=", and bytes outside "!".."~" as "+XX". Returns the length, or
 * -1 when it does not fit (util/xtext.c).
 */
int mtad_xtext_encode(const char *s, char *out, size_t outsize);

/*
 * mtad_file_slurp - a whole (small) file as a NUL-terminated string for a
 * parser; *len without the NUL. -1 with err ("WHAT PATH: why"): missing,
 * unreadable, or over 64 MB. Blocking: at start, SIGHUP, -n and in mtaq.
 */
int mtad_file_slurp(const char *what, const char *path, char **text, size_t *len,
		    char *err, size_t errlen);

/* mtad_str_lower - n bytes of src into dst, lower-cased (ASCII), NUL-terminated. */
void mtad_str_lower(char *dst, const char *src, size_t n);

/*
 * mtad_hostport_parse - "HOST:PORT" or "[IPV6]:PORT" (a host name or
 * address of letters, digits, '.', '-'; a port 1-65535) into host
 * (hostlen bytes with the NUL) and port: 0, or -1 when s is not one.
 */
int mtad_hostport_parse(const char *s, char *host, size_t hostlen, unsigned *port);


/* ---- UTF-8 and IDN (util/idna.c), for SMTPUTF8 ---- */

/*
 * mtad_utf8_next - the code point at the start of s[0..len) into *cp;
 * returns its length in octets, 0 when it is not well-formed UTF-8
 * (RFC 3629: truncated, overlong, a surrogate, above U+10FFFF).
 */
size_t mtad_utf8_next(const char *s, size_t len, uint32_t *cp);
/* mtad_utf8_valid - well-formed UTF-8 without C0, DEL or C1 controls. */
bool mtad_utf8_valid(const char *s, size_t len);
/* mtad_ascii - no octet above 0x7f. */
bool mtad_ascii(const char *s, size_t len);

#define MTAD_PUNYCODE_MAX_IN 256	/* code points one call encodes at most */
#define MTAD_DOMAIN_ASCII_MAX 253	/* octets of a name in A-label form, no trailing dot */
/*
 * mtad_punycode_encode - RFC 3492 Punycode of n code points (at most
 * MTAD_PUNYCODE_MAX_IN) into out[0..size), no terminator; *outlen its
 * length. -1 when it does not fit or a code point is above U+10FFFF.
 */
int mtad_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t size, size_t *outlen);
/*
 * mtad_domain_to_ascii - domain d[0..len) in its A-label form into out,
 * NUL-terminated: ASCII labels lower-cased, non-ASCII ones as "xn--"
 * Punycode; an address literal ([...]) unchanged. Returns its length,
 * or -1: not UTF-8, a control, an empty label, a label over 63 octets,
 * the name over 253, or out too small. No NFC (see util/idna.c).
 */
int mtad_domain_to_ascii(const char *d, size_t len, char *out, size_t size);
/* mtad_domain_same - the same domain once both are in A-label form (a trailing dot ignored). */
bool mtad_domain_same(const char *a, size_t alen, const char *b, size_t blen);

#endif
