/*
 * config.c - mtad's configuration: the parameter table (every key, its
 * type and default), the `key = value` parser, and the rules between
 * settings (retry_min <= retry_max, a submission listener needs TLS, ...).
 * Defaults and the printers (`mtad -n`, `mtad -d`) are in config_print.c;
 * the files a configuration names are checked by mtad -n (mtad/check.c).
 *
 * Must not: do I/O in the parser (only mtad_config_load reads a file and
 * only mtad_config_defaults asks the resolver for the FQDN), keep global
 * mutable state, stop at the first error (every one is reported, up to
 * MTAD_CONFIG_ERRORS_MAX, so an operator fixes a file in one pass), or
 * accept a value it cannot represent exactly: every error names
 * FILE:LINE so an operator can fix it in one edit.
 *
 * Follows: RFC 1123 §2.1 / RFC 5321 §2.3.5 for the hostname syntax.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/config_int.h"

#define CONFIG_LINE_MAX 4096		/* longer lines are an error */
#define CONFIG_FILE_MAX (1024 * 1024)	/* a config file is small */

#define STR(f) OFF(f), sizeof(((struct mtad_config *)0)->f)
#define DAY 86400

const struct param config_params[] = {
	{ "hostname", P_HOSTNAME, STR(hostname), NULL, 0, 0, 0 , NULL },
	/* Postfix's mail_owner = postfix: a root start never stays root
	 * unless the file says `user =` (mtad/privilege.c). */
	{ "user", P_USER, STR(user), "mtad", 0, 0, 0, NULL },
	{ "log", P_CHOICE, STR(log), "stderr", 0, 0, 0, "stderr|syslog" },
	{ "syslog_socket", P_PATH, STR(syslog_socket), "/dev/log", 0, 0, 0, NULL },
	/* Postfix's syslog_name; log_services = no puts the tag alone on every line. */
	{ "log_tag", P_STRING, STR(log_tag), "mtad", 0, 0, 0, NULL },
	{ "log_services", P_CHOICE, STR(log_services), "yes", 0, 0, 0, "yes|no" },
	{ "spool_directory", P_PATH, STR(spool_directory), "/var/spool/mtad", 0, 0, 0 , NULL },
	{ "listen", P_LISTEN, OFF(listen), 0, NULL, 0, 0, 0 , NULL },
	{ "message_size_limit", P_SIZE, OFF(message_size_limit), 0, NULL, 52428800, 1, TB , NULL },
	{ "max_recipients", P_UNSIGNED, OFF(max_recipients), 0, NULL, 100, 1, 1000000 , NULL },
	{ "max_errors", P_UNSIGNED, OFF(max_errors), 0, NULL, 20, 1, 1000000 , NULL },
	{ "max_connections", P_UNSIGNED, OFF(max_connections), 0, NULL, 1000, 1, 1000000 , NULL },
	{ "max_connections_per_ip", P_UNSIGNED, OFF(max_connections_per_ip), 0, NULL, 50, 1, 1000000 , NULL },
	/* auto: one event loop per core (mtad/loops.c). */
	{ "loops", P_AUTO, OFF(loops), 0, NULL, 0, 1, MTAD_LOOPS_MAX, NULL },
	{ "command_timeout", P_UNSIGNED, OFF(command_timeout), 0, NULL, 300, 1, DAY , NULL },
	{ "data_timeout", P_UNSIGNED, OFF(data_timeout), 0, NULL, 600, 1, DAY , NULL },
	/* Berkeley DB refuses caches under 20 KB and log buffers too small for a record. */
	{ "db_cache_size", P_SIZE, OFF(db_cache_size), 0, NULL, 67108864, 20 * KB, TB , NULL },
	{ "db_log_buffer_size", P_SIZE, OFF(db_log_buffer_size), 0, NULL, 1048576, 64 * KB, 4 * GB - 1 , NULL },
	{ "helo_policy", P_CHOICE, STR(helo_policy), "relaxed", 0, 0, 0, "off|relaxed|strict" },
	{ "helo_rule.", P_RULE, OFF(helo_rule), 0, NULL, 0, 0, 0, NULL },
	{ "local_domains", P_DOMAINS, OFF(local_domains), 0, NULL, 0, 0, 0, NULL },
	{ "relay_domains", P_DOMAINS, OFF(relay_domains), 0, NULL, 0, 0, 0, NULL },
	{ "relay_networks", P_NETWORKS, OFF(relay_networks), 0, NULL, 0, 0, 0, NULL },
	{ "max_policy_rejections", P_UNSIGNED, OFF(max_policy_rejections), 0, NULL, 10, 1, 1000000, NULL },
	{ "dns_servers", P_STRING, STR(dns_servers), "system", 0, 0, 0, NULL },
	{ "dns_timeout", P_UNSIGNED, OFF(dns_timeout), 0, NULL, 5, 1, 300, NULL },
	{ "route", P_ROUTE, OFF(routes), 0, NULL, 0, 0, 0, NULL },
	{ "relayhost", P_ROUTE, STR(relayhost), "", 0, 0, 0, NULL },
	/* Issue 17: built-in DKIM signing of what our own users send. */
	{ "dkim_sign", P_DKIM, OFF(dkim_sign), 0, NULL, 0, 0, 0, NULL },
	{ "dkim_expire", P_UNSIGNED, OFF(dkim_expire), 0, NULL, 0, 0, 365 * DAY, NULL },
	/* Content filters over the Sendmail milter protocol (smtp/session_milter.c). */
	{ "milter", P_MILTER, OFF(milters), 0, NULL, 0, 0, 0, NULL },
	{ "milter_listeners", P_STRING, STR(milter_listeners), "all", 0, 0, 0, NULL },
	/* Postfix's defaults: default_process_limit and
	 * default_destination_concurrency_limit. */
	{ "delivery_concurrency", P_UNSIGNED, OFF(delivery_concurrency), 0, NULL, 100, 1, 10000, NULL },
	{ "destination_concurrency", P_UNSIGNED, OFF(destination_concurrency), 0, NULL, 20, 1, 1000, NULL },
	{ "retry_min", P_UNSIGNED, OFF(retry_min), 0, NULL, 300, 1, DAY, NULL },
	{ "retry_max", P_UNSIGNED, OFF(retry_max), 0, NULL, 14400, 1, 7 * DAY, NULL },
	{ "max_queue_lifetime", P_UNSIGNED, OFF(max_queue_lifetime), 0, NULL, 5 * DAY, 1, 365 * DAY, NULL },
	/* Postfix's delay_warning_time (4h since 3.0): one "delayed" DSN per
	 * message still undelivered after it; 0 sends none. */
	{ "delay_warning_time", P_TIME, OFF(delay_warning_time), 0, NULL, 4 * 3600, 0, 365 * DAY, NULL },
	{ "smtp_timeout", P_UNSIGNED, OFF(smtp_timeout), 0, NULL, 300, 1, 3600, NULL },
	/* Issue 18: a body chunk the queue has not read in this long defers the delivery. */
	{ "smtp_queue_read_timeout", P_UNSIGNED, OFF(smtp_queue_read_timeout), 0, NULL, 300, 1, 3600, NULL },
	{ "smtp_tls", P_CHOICE, STR(smtp_tls), "may", 0, 0, 0, "none|may|verify" },
	{ "smtp_tls_ca_file", P_PATH, STR(smtp_tls_ca_file), "", 0, 0, 0, NULL },
	{ "double_bounce", P_CHOICE, STR(double_bounce), "drop", 0, 0, 0, "drop|postmaster" },
	/* Issue 19: a Berkeley DB replication group (queue/replication.c). */
	{ "replication_local", P_HOSTPORT, STR(replication_local), "", 0, 0, 0, NULL },
	{ "replication_peer", P_PEER, OFF(replication_peers), 0, NULL, 0, 0, 0, NULL },
	{ "replication_priority", P_UNSIGNED, OFF(replication_priority), 0, NULL, 100, 0, 1000000, NULL },
	{ "replication_ack", P_CHOICE, STR(replication_ack), "one", 0, 0, 0, "one|quorum|all_peers|none" },
	{ "replication_ack_timeout", P_TIME, OFF(replication_ack_timeout), 0, NULL, 5, 1, 300, NULL },
	{ "replication_two_site_strict", P_CHOICE, STR(replication_two_site_strict), "no", 0, 0, 0, "yes|no" },
	{ "checkpoint_interval", P_UNSIGNED, OFF(checkpoint_interval), 0, NULL, 60, 1, DAY , NULL },
	/* The default is "auto" (mtad_config_minfree); 0 turns the reserve off. */
	{ "queue_minfree", P_SIZE, OFF(queue_minfree), 0, NULL, MTAD_MINFREE_AUTO, 0, TB, NULL },
	{ "tls_cert_file", P_PATH, STR(tls_cert_file), "", 0, 0, 0 , NULL },
	{ "tls_key_file", P_PATH, STR(tls_key_file), "", 0, 0, 0 , NULL },
	{ "tls_chain_file", P_PATH, STR(tls_chain_file), "", 0, 0, 0 , NULL },
	{ "tls_min_version", P_CHOICE, STR(tls_min_version), "TLSv1.2", 0, 0, 0, "TLSv1.2|TLSv1.3" },
	{ "tls_ciphers", P_STRING, STR(tls_ciphers), "", 0, 0, 0 , NULL },
	{ "tls_ciphersuites", P_STRING, STR(tls_ciphersuites), "", 0, 0, 0 , NULL },
	{ "tls_handshake_timeout", P_UNSIGNED, OFF(tls_handshake_timeout), 0, NULL, 30, 1, DAY , NULL },
	{ "sasl_mechanisms", P_STRING, STR(sasl_mechanisms), "PLAIN LOGIN", 0, 0, 0 , NULL },
	{ "sasl_pwcheck_method", P_CHOICE, STR(sasl_pwcheck_method), "auxprop", 0, 0, 0,
	  "auxprop|saslauthd" },
	{ "sasl_database", P_PATH, STR(sasl_database), "/etc/mtad/sasldb2", 0, 0, 0 , NULL },
	{ "saslauthd_path", P_PATH, STR(saslauthd_path), "/run/saslauthd/mux", 0, 0, 0 , NULL },
	{ "sasl_service", P_STRING, STR(sasl_service), "smtp", 0, 0, 0 , NULL },
	{ "sasl_realm", P_STRING, STR(sasl_realm), "", 0, 0, 0 , NULL },
	{ "auth_max_failures", P_UNSIGNED, OFF(auth_max_failures), 0, NULL, 3, 1, 1000 , NULL },
	{ "auth_failure_delay", P_UNSIGNED, OFF(auth_failure_delay), 0, NULL, 100, 0, 60000 , NULL },
	{ "auth_ip_max_failures", P_UNSIGNED, OFF(auth_ip_max_failures), 0, NULL, 10, 1, 1000000 , NULL },
	/* One login from more client addresses than this in an hour: a warning. */
	{ "auth_login_max_addresses", P_UNSIGNED, OFF(auth_login_max_addresses), 0, NULL, 10, 0, 1000, NULL },
	/* Logins refused at once, password or not: "alice, bob", or a file (/...). */
	{ "auth_block", P_STRING, STR(auth_block), "", 0, 0, 0, NULL },
	{ "auth_ip_window", P_UNSIGNED, OFF(auth_ip_window), 0, NULL, 600, 1, DAY , NULL },
	{ "sender_login", P_CHOICE, STR(sender_login), "strict", 0, 0, 0, "strict|warn|off" },
	/* sendmail(1)'s way in: any local user may connect; mtad reads the uid. */
	{ "local_socket", P_OPT_PATH, STR(local_socket), "/run/mtad/submit", 0, 0, 0, NULL },
	/* Compiled by newaliases into alias_maps.db; read at start and SIGHUP. */
	{ "alias_maps", P_OPT_PATH, STR(alias_maps), "/etc/aliases", 0, 0, 0, NULL },
	{ "sender_login_map", P_PATH, STR(sender_login_map), "", 0, 0, 0, NULL },
	/* Issue 16, no backscatter: who exists in the local domains, checked at RCPT. */
	{ "local_recipient_maps", P_PATH, STR(local_recipient_maps), "", 0, 0, 0, NULL },
	{ "recipient_verify", P_CHOICE, STR(recipient_verify), "no", 0, 0, 0, "yes|no" },
	/* Postfix's address_verify_positive/negative_expire_time: 31d, 3d. */
	{ "recipient_verify_positive_ttl", P_UNSIGNED, OFF(recipient_verify_positive_ttl), 0, NULL, 31 * DAY, 1, 365 * DAY, NULL },
	{ "recipient_verify_negative_ttl", P_UNSIGNED, OFF(recipient_verify_negative_ttl), 0, NULL, 3 * DAY, 1, 365 * DAY, NULL },
	{ "recipient_verify_cache_size", P_UNSIGNED, OFF(recipient_verify_cache_size), 0, NULL, 10000, 1, 10000000, NULL },
	{ "recipient_verify_timeout", P_UNSIGNED, OFF(recipient_verify_timeout), 0, NULL, 30, 1, 600, NULL },
	/* Per login (or trusted address): what a big provider allows; 0 = no limit. */
	{ "send_rate_limit", P_UNSIGNED, OFF(send_rate_limit), 0, NULL, 30, 0, 1000000, NULL },
	{ "send_recipient_limit", P_UNSIGNED, OFF(send_recipient_limit), 0, NULL, 2000, 0, 100000000, NULL },
	{ "send_limit_map", P_PATH, STR(send_limit_map), "", 0, 0, 0, NULL },
	{ "send_limit_notify", P_CHOICE, STR(send_limit_notify), "postmaster", 0, 0, 0, "postmaster|none" },
	/* Empty: every client is counted by the AUTH address limit. */
	{ "auth_ip_exempt", P_NETWORKS, OFF(auth_ip_exempt), 0, NULL, 0, 0, 0, NULL },
	/* Issue 18: Postfix's smtp_use_chunking and smtpd_forbid_bare_newline (3.9 default). */
	{ "smtp_use_chunking", P_CHOICE, STR(smtp_use_chunking), "yes", 0, 0, 0, "yes|no" },
	{ "bare_newline", P_CHOICE, STR(bare_newline), "normalize", 0, 0, 0, "normalize|reject" },
};

#define NPARAMS (sizeof(config_params) / sizeof(config_params[0]))

const size_t config_nparams = NPARAMS;

_Static_assert(NPARAMS <= MTAD_CONFIG_KEYS_MAX, "raise MTAD_CONFIG_KEYS_MAX in util.h");

/* Where one parse is: the file name and line for messages, and what it found. */
struct parse_ctx {
	const char *file;
	int line;
	unsigned errors;	/* found so far; the parse goes on after each */
	const struct mtad_config_report *report;	/* every finding, or NULL */
	int seen[NPARAMS];	/* line a key was first set on, 0 = not yet */
	const struct mtad_config_checks *checks;	/* the modules' own checks, or NULL */
};

#define CONFIG_MSG_MAX 1536	/* one finding, "FILE:LINE: what" */

/* note - formats one finding as "FILE:LINE: what" ("FILE: what" for line 0) and reports it. */
static void note(struct parse_ctx *ctx, enum mtad_config_severity sev, const char *fmt, va_list ap)
{
	char msg[CONFIG_MSG_MAX];
	int n;

	n = ctx->line > 0 ? snprintf(msg, sizeof(msg), "%s:%d: ", ctx->file, ctx->line)
			  : snprintf(msg, sizeof(msg), "%s: ", ctx->file);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	/* A truncated message is still better than none: ignore the count. */
	if (vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap) < 0)
		msg[n] = '\0';
	if (sev == MTAD_CONFIG_ERROR && ++ctx->errors > MTAD_CONFIG_ERRORS_MAX) {
		/* A file of garbage gets a page of errors, not a million lines. */
		if (ctx->errors == MTAD_CONFIG_ERRORS_MAX + 1 && ctx->report) {
			snprintf(msg, sizeof(msg), "%s: more than %d errors: the rest are not shown",
				 ctx->file, MTAD_CONFIG_ERRORS_MAX);
			ctx->report->note(ctx->report->arg, sev, msg);
		}
		return;
	}
	if (ctx->report)
		ctx->report->note(ctx->report->arg, sev, msg);
}

/* perr - reports an error at the current line and returns -1; the parse goes on. */
static int perr(struct parse_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int perr(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	note(ctx, MTAD_CONFIG_ERROR, fmt, ap);
	va_end(ap);
	return -1;
}

/* pwarn - reports a warning at the current line: the setting works, but likely not as meant. */
static void pwarn(struct parse_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void pwarn(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	note(ctx, MTAD_CONFIG_WARNING, fmt, ap);
	va_end(ap);
}

/* valid_hostname - RFC 1123 names: letters, digits, hyphens, dots; no empty labels. */
static bool valid_hostname(const char *s)
{
	size_t label = 0, total = strlen(s);

	if (total == 0 || total > MTAD_HOSTNAME_MAX)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (label == 0 || s[-1] == '-')
				return false;
			label = 0;
		} else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			   (*s >= '0' && *s <= '9') || (*s == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[-1] != '-';
}

/*
 * valid_user - a login name as useradd takes it (letters, digits, '_',
 * '.', '-', not first '-', a final '$' for machine accounts), or empty.
 */
static bool valid_user(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return true;
	if (s[0] == '-' || n > MTAD_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '_' && c != '.' && c != '-' && !(c == '$' && i == n - 1))
			return false;
	}
	return true;
}

/* parse_u64 - decimal digits with an optional K/M/G suffix (powers of 1024). */
static int parse_u64(const char *s, bool suffix, bool time_unit, uint64_t *out)
{
	uint64_t v = 0, mult = 1;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -2;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (suffix && *s) {
		switch (*s++) {
		case 'k': case 'K': mult = KB; break;
		case 'm': case 'M': mult = MB; break;
		case 'g': case 'G': mult = GB; break;
		default: return -1;
		}
	} else if (time_unit && *s) {
		/* Postfix's time units (s, m, h, d, w), lower case as it writes them. */
		switch (*s++) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = DAY; break;
		case 'w': mult = 7 * DAY; break;
		default: return -1;
		}
	}
	if (*s)
		return -1;
	if (v > UINT64_MAX / mult)
		return -2;
	*out = v * mult;
	return 0;
}

/* set_number - P_SIZE, P_UNSIGNED, P_AUTO and P_TIME: syntax, then the row's range. */
static int set_number(struct parse_ctx *ctx, struct mtad_config *cfg,
		      const struct param *p, const char *value)
{
	uint64_t v;
	int r;

	if (p->type == P_AUTO && strcmp(value, "auto") == 0) {
		*(unsigned *)config_field(cfg, p) = 0;
		return 0;
	}
	r = parse_u64(value, p->type == P_SIZE, p->type == P_TIME, &v);
	if (r == -1)
		return perr(ctx, "bad number \"%s\" for %s%s", value, p->name,
			    p->type == P_SIZE ? " (digits with optional K, M or G)"
			    : p->type == P_AUTO ? " (a number or auto)"
			    : p->type == P_TIME ? " (seconds, or digits with s, m, h, d or w)" : "");
	if (r == -2 || v < p->min || v > p->max)
		return perr(ctx, "%s = %s is out of range (%" PRIu64 "..%" PRIu64 ")",
			    p->name, value, p->min, p->max);
	if (p->type == P_SIZE)
		*(uint64_t *)config_field(cfg, p) = v;
	else
		*(unsigned *)config_field(cfg, p) = (unsigned)v;
	return 0;
}

/* is_choice - value is one of the words in "a|b|c". */
static bool is_choice(const char *choices, const char *value)
{
	size_t len = strlen(value);

	for (const char *c = choices; *c; ) {
		size_t n = strcspn(c, "|");

		if (n == len && strncmp(c, value, n) == 0)
			return true;
		c += n + (c[n] == '|');
	}
	return false;
}

/* set_string - P_HOSTNAME, P_PATH, P_STRING, P_CHOICE, P_USER, checked for syntax and length. */
static int set_string(struct parse_ctx *ctx, struct mtad_config *cfg,
		      const struct param *p, const char *value)
{
	size_t len = strlen(value);

	if (len >= p->size)
		return perr(ctx, "%s is too long (at most %zu characters)", p->name, p->size - 1);
	if (p->type == P_HOSTNAME && !valid_hostname(value))
		return perr(ctx, "bad hostname \"%s\"", value);
	if (p->type == P_USER && !valid_user(value))
		return perr(ctx, "bad user \"%s\" (a login name, or nothing: see `user` "
			    "in mtad.conf(5))", value);
	if (p->offset == OFF(log_tag) && !mtad_log_tag_valid(value))
		return perr(ctx, "bad log_tag \"%s\" (letters, digits, '.', '_' and '-' only)",
			    value);
	if (p->type == P_HOSTPORT) {
		char host[MTAD_HOSTPORT_MAX];
		unsigned port;

		if (mtad_hostport_parse(value, host, sizeof(host), &port) != 0)
			return perr(ctx, "%s wants HOST:PORT (or [IPV6]:PORT), not \"%s\"", p->name,
				    value);
	}
	if (p->type == P_CHOICE && !is_choice(p->choices, value))
		return perr(ctx, "bad %s \"%s\" (one of %s)", p->name, value, p->choices);
	/* A relative spool would depend on the directory mtad starts in. */
	if ((p->type == P_PATH || (p->type == P_OPT_PATH && value[0])) && value[0] != '/')
		return perr(ctx, "%s must be an absolute path: \"%s\"", p->name, value);
	memcpy(config_field(cfg, p), value, len + 1);
	return 0;
}

/* split_listen - "1.2.3.4:25" or "[::1]:25" into address text and port text. */
static int split_listen(const char *value, char *addr, size_t addrlen, const char **port)
{
	const char *end;
	size_t n;

	if (value[0] == '[') {
		end = strchr(value, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		value++;
		*port = end + 2;
	} else {
		end = strrchr(value, ':');
		/* An unbracketed IPv6 address would make the port ambiguous. */
		if (end == NULL || memchr(value, ':', (size_t)(end - value)) != NULL)
			return -1;
		*port = end + 1;
	}
	n = (size_t)(end - value);
	if (n == 0 || n >= addrlen)
		return -1;
	memcpy(addr, value, n);
	addr[n] = '\0';
	return 0;
}

/* listen_option - one word after ADDRESS:PORT. */
static int listen_option(struct parse_ctx *ctx, const char *word, size_t len,
			 struct mtad_listen *l)
{
	if (len == 8 && strncmp(word, "starttls", len) == 0)
		l->tls = l->tls == MTAD_TLS_NONE ? MTAD_TLS_STARTTLS : (enum mtad_listen_tls)-1;
	else if (len == 3 && strncmp(word, "tls", len) == 0)
		l->tls = l->tls == MTAD_TLS_NONE ? MTAD_TLS_IMPLICIT : (enum mtad_listen_tls)-1;
	else if (len == 10 && strncmp(word, "submission", len) == 0)
		l->submission = true;
	else if (len == 14 && strncmp(word, "auth_plaintext", len) == 0)
		l->auth_plaintext = true;
	else if (len == 19 && strncmp(word, "helo_reject_at=ehlo", len) == 0)
		l->helo_reject_ehlo = true;
	else if (len == 19 && strncmp(word, "helo_reject_at=mail", len) == 0)
		l->helo_reject_ehlo = false;
	else
		return perr(ctx, "unknown listen option \"%.*s\" (starttls, tls, submission, "
			    "auth_plaintext, helo_reject_at=ehlo)", (int)len, word);
	if (l->tls == (enum mtad_listen_tls)-1)
		return perr(ctx, "a listener is either starttls or tls, not both");
	return 0;
}

/* listen_options - the words after ADDRESS:PORT. */
static int listen_options(struct parse_ctx *ctx, const char *s, struct mtad_listen *l)
{
	while (*s) {
		size_t n;

		while (*s == ' ' || *s == '\t')
			s++;
		n = strcspn(s, " \t");
		if (n > 0 && listen_option(ctx, s, n, l) < 0)
			return -1;
		s += n;
	}
	return 0;
}

/* parse_listen - one listen value into a struct mtad_listen (normalised address). */
static int parse_listen(struct parse_ctx *ctx, const char *value, struct mtad_listen *l)
{
	char addr[64];
	char first[128];
	const char *options = value + strcspn(value, " \t");
	const char *port;
	unsigned char bin[sizeof(struct in6_addr)];
	uint64_t num;
	int af;

	memset(l, 0, sizeof(*l));
	if ((size_t)(options - value) >= sizeof(first))
		return perr(ctx, "bad listen \"%s\": expected ADDRESS:PORT or [IPV6]:PORT", value);
	memcpy(first, value, (size_t)(options - value));
	first[options - value] = '\0';
	if (listen_options(ctx, options, l) < 0)
		return -1;
	value = first;
	if (split_listen(value, addr, sizeof(addr), &port) < 0)
		return perr(ctx, "bad listen \"%s\": expected ADDRESS:PORT or [IPV6]:PORT", value);
	af = value[0] == '[' ? AF_INET6 : AF_INET;
	if (inet_pton(af, addr, bin) != 1)
		return perr(ctx, "bad listen \"%s\": \"%s\" is not a numeric %s address",
			    value, addr, af == AF_INET6 ? "IPv6" : "IPv4");
	if (parse_u64(port, false, false, &num) < 0 || num < 1 || num > 65535)
		return perr(ctx, "bad listen \"%s\": port must be 1..65535", value);
	/* Normalised text makes "::1" and "0::1" the same duplicate. */
	if (inet_ntop(af, bin, l->address, sizeof(l->address)) == NULL)
		return perr(ctx, "bad listen \"%s\": %s", value, strerror(errno));
	l->port = (int)num;
	l->line = ctx->line;
	return 0;
}

/* add_listen - appends a listen entry; the first one replaces the default. */
static int add_listen(struct parse_ctx *ctx, struct mtad_config *cfg, const char *value)
{
	struct mtad_listen l;
	size_t i;

	if (parse_listen(ctx, value, &l) < 0)
		return -1;
	if (!cfg->listen_configured) {
		cfg->nlisten = 0;
		cfg->listen_configured = true;
	}
	for (i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].port == l.port && strcmp(cfg->listen[i].address, l.address) == 0)
			return perr(ctx, "duplicate listen \"%s\" (first at line %d)",
				    value, cfg->listen[i].line);
	if (cfg->nlisten >= MTAD_MAX_LISTEN)
		return perr(ctx, "too many listen entries (at most %d)", MTAD_MAX_LISTEN);
	cfg->listen[cfg->nlisten++] = l;
	return 0;
}

/* next_word - the next item of a list separated by commas and blanks. */
static const char *next_word(const char **s, size_t *len)
{
	const char *w = *s + strspn(*s, ", \t");

	*len = strcspn(w, ", \t");
	*s = w + *len;
	return *len ? w : NULL;
}

/* domains_of - the list field a P_DOMAINS row points at, and its count. */
void config_domains_of(struct mtad_config *cfg, const struct param *p,
		       char (**list)[MTAD_HOSTNAME_MAX + 1], size_t **count)
{
	bool local = p->offset == OFF(local_domains);

	*list = local ? cfg->local_domains : cfg->relay_domains;
	*count = local ? &cfg->nlocal_domains : &cfg->nrelay_domains;
}

/* set_domains - local_domains / relay_domains: host names, lower-cased. */
static int set_domains(struct parse_ctx *ctx, struct mtad_config *cfg,
		       const struct param *p, const char *value)
{
	char (*list)[MTAD_HOSTNAME_MAX + 1];
	size_t *count, len;
	const char *w;

	config_domains_of(cfg, p, &list, &count);
	*count = 0;
	while ((w = next_word(&value, &len)) != NULL) {
		char name[MTAD_HOSTNAME_MAX + 1];

		int alen;

		if (len > MTAD_HOSTNAME_MAX)
			return perr(ctx, "%s: name too long: \"%.*s\"", p->name, (int)len, w);
		mtad_str_lower(name, w, len);
		/* U-labels are kept as A-labels (RFC 5890), the form recipients
		 * are compared in (util/idna.c). */
		if (!mtad_ascii(w, len) &&
		    ((alen = mtad_domain_to_ascii(w, len, name, sizeof(name))) <= 0 ||
		     name[alen - 1] == '.'))
			return perr(ctx, "%s: bad domain \"%.*s\"", p->name, (int)len, w);
		len = strlen(name);
		if (!valid_hostname(name))
			return perr(ctx, "%s: bad domain \"%s\"", p->name, name);
		if (*count >= MTAD_MAX_DOMAINS)
			return perr(ctx, "%s: too many domains (at most %d)", p->name, MTAD_MAX_DOMAINS);
		memcpy(list[(*count)++], name, len + 1);
	}
	return 0;
}

/* networks_of - the list field a P_NETWORKS row points at, and its count. */
void config_networks_of(struct mtad_config *cfg, const struct param *p,
			struct mtad_addr **list, size_t **count, char **text)
{
	bool exempt = p->offset == OFF(auth_ip_exempt);

	*list = exempt ? cfg->auth_ip_exempt : cfg->relay_networks;
	*count = exempt ? &cfg->nauth_ip_exempt : &cfg->nrelay_networks;
	*text = exempt ? cfg->auth_ip_exempt_text : cfg->relay_networks_text;
}

/* set_networks - relay_networks, auth_ip_exempt: CIDR networks (util/addr.c), and the text as written. */
static int set_networks(struct parse_ctx *ctx, struct mtad_config *cfg,
			const struct param *p, const char *value)
{
	struct mtad_addr *list;
	size_t *count, len, used = 0;
	const char *w;
	char *text;

	config_networks_of(cfg, p, &list, &count, &text);
	*count = 0;
	text[0] = '\0';
	while ((w = next_word(&value, &len)) != NULL) {
		if (*count >= MTAD_MAX_NETWORKS)
			return perr(ctx, "%s: too many networks (at most %d)",
				    p->name, MTAD_MAX_NETWORKS);
		/* Under 64 bytes a word, so the text (64 per network) always has room. */
		if (len >= 64 || mtad_addr_parse(w, len, false, &list[*count]) != 0)
			return perr(ctx, "%s: bad network \"%.*s\" "
				    "(expected ADDRESS or ADDRESS/PREFIX)", p->name, (int)len, w);
		used += (size_t)snprintf(text + used, MTAD_NETWORKS_TEXT - used, "%s%.*s",
					 used ? " " : "", (int)len, w);
		(*count)++;
	}
	return 0;
}

/* set_rule - helo_rule.NAME = on|off; policy/ says which names are rules a mode can switch. */
static int set_rule(struct parse_ctx *ctx, struct mtad_config *cfg,
		    const char *name, size_t len, const char *value)
{
	char rule[32], why[200];
	int r;

	if (len >= sizeof(rule))
		return perr(ctx, "unknown HELO rule \"%.*s\"", (int)len, name);
	memcpy(rule, name, len);
	rule[len] = '\0';
	if (!ctx->checks || !ctx->checks->helo_rule)
		return perr(ctx, "unknown HELO rule \"%s\"", rule);
	r = ctx->checks->helo_rule(rule, why, sizeof(why));
	if (r < 0 || r >= MTAD_MAX_RULES)
		return perr(ctx, "%s", r < 0 ? why : "unknown HELO rule");
	if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
		return perr(ctx, "helo_rule.%s must be on or off, not \"%s\"", rule, value);
	cfg->helo_rule[r] = strcmp(value, "on") == 0;
	return 0;
}

/* check_route - a route or relayhost line, checked by delivery's own parser (the hook). */
static int check_route(struct parse_ctx *ctx, const char *value, bool relayhost)
{
	char err[256];

	if (strlen(value) >= MTAD_ROUTE_MAX)
		return perr(ctx, "%s is too long", relayhost ? "relayhost" : "route");
	if (ctx->checks && ctx->checks->route &&
	    ctx->checks->route(value, relayhost, err, sizeof(err)) != 0)
		return perr(ctx, "%s", err);
	return 0;
}

/* add_route - one more `route = DOMAIN NEXTHOP` line. */
static int add_route(struct parse_ctx *ctx, struct mtad_config *cfg, const char *value)
{
	if (check_route(ctx, value, false) != 0)
		return -1;
	if (cfg->nroutes >= MTAD_MAX_ROUTES)
		return perr(ctx, "too many routes (at most %d)", MTAD_MAX_ROUTES);
	cfg->route_line[cfg->nroutes] = ctx->line;
	snprintf(cfg->routes[cfg->nroutes++], MTAD_ROUTE_MAX, "%s", value);
	return 0;
}

/* dkim_name_ok - a domain or selector: letters, digits, '-', '_', dots between labels. */
static bool dkim_name_ok(const char *s)
{
	if (*s == '\0' || *s == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* add_dkim - one more `dkim_sign = DOMAIN SELECTOR KEYFILE [ALGORITHM]` line. */
static int add_dkim(struct parse_ctx *ctx, struct mtad_config *cfg, const char *value)
{
	char f[5][MTAD_PATH_MAX];
	struct mtad_dkim_sign *d;
	int n;

	if (strlen(value) >= MTAD_PATH_MAX)
		return perr(ctx, "dkim_sign is too long");
	n = sscanf(value, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
	if (n < 3 || n > 4)
		return perr(ctx, "dkim_sign wants DOMAIN SELECTOR KEYFILE [rsa-sha256|ed25519-sha256]");
	if (cfg->ndkim_sign >= MTAD_MAX_DKIM)
		return perr(ctx, "too many dkim_sign lines (at most %d)", MTAD_MAX_DKIM);
	if (!dkim_name_ok(f[0]) || strlen(f[0]) > 253)
		return perr(ctx, "dkim_sign: bad domain \"%s\"", f[0]);
	if (!dkim_name_ok(f[1]) || strlen(f[1]) > 63)
		return perr(ctx, "dkim_sign: bad selector \"%s\"", f[1]);
	if (f[2][0] != '/')
		return perr(ctx, "dkim_sign: the key file must be an absolute path: %s", f[2]);
	if (n == 4 && strcmp(f[3], "rsa-sha256") != 0 && strcmp(f[3], "ed25519-sha256") != 0)
		return perr(ctx, "dkim_sign: unknown algorithm \"%s\" (rsa-sha256 or ed25519-sha256)",
			    f[3]);
	for (size_t i = 0; i < cfg->ndkim_sign; i++)
		if (strcasecmp(cfg->dkim_sign[i].domain, f[0]) == 0 &&
		    strcmp(cfg->dkim_sign[i].algorithm, n == 4 ? f[3] : "rsa-sha256") == 0)
			return perr(ctx, "dkim_sign: %s already has an %s key at line %d", f[0],
				    cfg->dkim_sign[i].algorithm, cfg->dkim_sign_line[i]);
	d = &cfg->dkim_sign[cfg->ndkim_sign];
	for (size_t i = 0; f[0][i] != '\0'; i++)
		f[0][i] = mtad_lower(f[0][i]);
	memcpy(d->domain, f[0], strlen(f[0]) + 1);	/* lengths checked above */
	memcpy(d->selector, f[1], strlen(f[1]) + 1);
	memcpy(d->key_file, f[2], strlen(f[2]) + 1);	/* shorter than value */
	strcpy(d->algorithm, n == 4 && f[3][0] == 'e' ? "ed25519-sha256" : "rsa-sha256");
	cfg->dkim_sign_line[cfg->ndkim_sign++] = ctx->line;
	return 0;
}

/* set_relayhost - the smarthost for everything without a route. */
static int set_relayhost(struct parse_ctx *ctx, struct mtad_config *cfg, const char *value)
{
	if (check_route(ctx, value, true) != 0)
		return -1;
	snprintf(cfg->relayhost, sizeof(cfg->relayhost), "%s", value);
	return 0;
}

/* add_milter - one more `milter = NAME ADDRESS [option=value ...]` line, parsed by milter/. */
static int add_milter(struct parse_ctx *ctx, struct mtad_config *cfg, const char *value)
{
	struct milter_spec spec;
	char err[256];

	if (milter_spec_parse(value, &spec, err, sizeof(err)) != 0)
		return perr(ctx, "%s", err);
	if (cfg->nmilters >= MILTER_MAX)
		return perr(ctx, "too many milters (at most %d)", MILTER_MAX);
	for (size_t i = 0; i < cfg->nmilters; i++)
		if (strcmp(cfg->milters[i].name, spec.name) == 0)
			return perr(ctx, "duplicate milter name \"%s\"", spec.name);
	cfg->milters[cfg->nmilters] = spec;
	snprintf(cfg->milter_text[cfg->nmilters++], MILTER_LINE_MAX, "%s", value);
	return 0;
}

/* add_peer - one more `replication_peer = HOST:PORT` line. */
static int add_peer(struct parse_ctx *ctx, struct mtad_config *cfg, const char *value)
{
	char host[MTAD_HOSTPORT_MAX];
	unsigned port;

	if (strlen(value) >= MTAD_HOSTPORT_MAX ||
	    mtad_hostport_parse(value, host, sizeof(host), &port) != 0)
		return perr(ctx, "replication_peer wants HOST:PORT (or [IPV6]:PORT), not \"%s\"", value);
	if (cfg->nreplication_peers >= MTAD_MAX_REPLICATION_PEERS)
		return perr(ctx, "too many replication_peer lines (at most %d)",
			    MTAD_MAX_REPLICATION_PEERS);
	for (size_t i = 0; i < cfg->nreplication_peers; i++)
		if (strcasecmp(cfg->replication_peers[i], value) == 0)
			return perr(ctx, "replication_peer %s is already listed at line %d", value,
				    cfg->replication_peer_line[i]);
	snprintf(cfg->replication_peers[cfg->nreplication_peers], MTAD_HOSTPORT_MAX, "%s", value);
	cfg->replication_peer_line[cfg->nreplication_peers++] = ctx->line;
	return 0;
}

/* find_param - the table row for a key, or NULL. */
static const struct param *find_param(const char *key, size_t keylen)
{
	size_t i;

	for (i = 0; i < NPARAMS; i++) {
		size_t n = strlen(config_params[i].name);

		/* helo_rule.NAME: the row's name is a prefix, NAME is checked later. */
		if (config_params[i].type == P_RULE ? (keylen > n && memcmp(config_params[i].name, key, n) == 0)
					     : (n == keylen && memcmp(config_params[i].name, key, keylen) == 0))
			return &config_params[i];
	}
	return NULL;
}

/* config_find - see config_int.h. */
const struct param *config_find(const char *key, size_t keylen)
{
	return find_param(key, keylen);
}

/* set_param - applies key = value; a key other than listen may appear once. */
static int set_param(struct parse_ctx *ctx, struct mtad_config *cfg,
		     const char *key, size_t keylen, const char *value)
{
	const struct param *p = find_param(key, keylen);
	size_t i;

	if (p == NULL)
		return perr(ctx, "unknown parameter \"%.*s\"", (int)keylen, key);
	i = (size_t)(p - config_params);
	/* `user =` (nothing) is a choice: stay the user mtad was started as;
	 * `local_socket =`: none. */
	if (*value == '\0' && p->type != P_USER && p->type != P_OPT_PATH && p->type != P_HOSTPORT)
		return perr(ctx, "empty value for %s", p->name);
	/* Repeatable keys: where the first one is, for messages about them all. */
	if (ctx->seen[i] == 0 && (p->type == P_LISTEN || p->type == P_RULE || p->type == P_DKIM ||
				  p->type == P_MILTER || p->type == P_PEER ||
				  (p->type == P_ROUTE && p->offset == OFF(routes))))
		ctx->seen[i] = ctx->line;
	if (p->type == P_LISTEN)
		return add_listen(ctx, cfg, value);
	if (p->type == P_RULE)
		return set_rule(ctx, cfg, key + strlen(p->name), keylen - strlen(p->name), value);
	if (p->type == P_ROUTE && p->offset == OFF(routes))
		return add_route(ctx, cfg, value);
	if (p->type == P_DKIM)
		return add_dkim(ctx, cfg, value);
	if (p->type == P_MILTER)
		return add_milter(ctx, cfg, value);
	if (p->type == P_PEER)
		return add_peer(ctx, cfg, value);
	/* Two settings of one key usually mean an edit went wrong: say so. */
	if (ctx->seen[i])
		return perr(ctx, "%s is already set at line %d", p->name, ctx->seen[i]);
	ctx->seen[i] = ctx->line;
	if (p->type == P_SIZE || p->type == P_UNSIGNED || p->type == P_AUTO || p->type == P_TIME)
		return set_number(ctx, cfg, p, value);
	if (p->type == P_DOMAINS)
		return set_domains(ctx, cfg, p, value);
	if (p->type == P_NETWORKS)
		return set_networks(ctx, cfg, p, value);
	if (p->type == P_ROUTE)
		return set_relayhost(ctx, cfg, value);
	return set_string(ctx, cfg, p, value);
}

/* is_space - blanks inside a config line (CR too, for files edited on Windows). */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* parse_line - one line (no newline, NUL-terminated, writable) of the file. */
static int parse_line(struct parse_ctx *ctx, struct mtad_config *cfg, char *s)
{
	char *eq, *key, *end, *hash;

	/* '#' starts a comment at line start or after a blank, never inside a value. */
	for (hash = s; (hash = strchr(hash, '#')) != NULL; hash++)
		if (hash == s || is_space(hash[-1])) {
			*hash = '\0';
			break;
		}
	while (is_space(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_space(end[-1]))
		*--end = '\0';
	if (*s == '\0')
		return 0;
	eq = strchr(s, '=');
	if (eq == NULL)
		return perr(ctx, "missing \"=\" in \"%s\"", s);
	key = s;
	for (end = eq; end > key && is_space(end[-1]); end--)
		;
	if (end == key)
		return perr(ctx, "missing parameter name before \"=\"");
	for (s = eq + 1; is_space(*s); s++)
		;
	/*
	 * "key=#x" is no comment ('#' after '='), but the same line as
	 * `mtad -n` prints it, "key = #x", is: refuse the value rather than
	 * have it mean two things (found by t/fuzz/fuzz_config.c).
	 */
	if (*s == '#')
		return perr(ctx, "value of %.*s starts with \"#\", which starts a comment "
			    "after a blank", (int)(end - key), key);
	return set_param(ctx, cfg, key, (size_t)(end - key), s);
}

/* param_line - where a key was set, for messages about it (0 = default). */
static int param_line(const struct parse_ctx *ctx, const char *name)
{
	const struct param *p = find_param(name, strlen(name));

	return p ? ctx->seen[p - config_params] : 0;
}

/* check_mechanisms - only mechanisms mtad offers (PLAIN, LOGIN), or none at all. */
static int check_mechanisms(struct parse_ctx *ctx, const struct mtad_config *cfg)
{
	const char *s = cfg->sasl_mechanisms;

	ctx->line = param_line(ctx, "sasl_mechanisms");
	if (strcmp(s, "none") == 0) {
		for (size_t i = 0; i < cfg->nlisten; i++)
			if (cfg->listen[i].submission) {
				ctx->line = cfg->listen[i].line;
				return perr(ctx, "a submission listener needs AUTH, but "
					    "sasl_mechanisms = none");
			}
		return 0;
	}
	while (*s) {
		size_t n = strcspn(s, " \t");

		/* CRAM-MD5 and friends need plaintext-equivalent secrets on disk: not offered. */
		if (n > 0 && !(n == 5 && strncasecmp(s, "PLAIN", 5) == 0) &&
		    !(n == 5 && strncasecmp(s, "LOGIN", 5) == 0))
			return perr(ctx, "sasl_mechanisms: unsupported mechanism \"%.*s\" "
				    "(PLAIN, LOGIN)", (int)n, s);
		s += n;
		s += strspn(s, " \t");
	}
	return 0;
}

/* later_line - where the later of two settings was made (0: both are defaults). */
static int later_line(const struct parse_ctx *ctx, const char *a, const char *b)
{
	int la = param_line(ctx, a), lb = param_line(ctx, b);

	return la > lb ? la : lb;
}

/* check_listeners - what a listener's options ask of the rest of the file. */
static void check_listeners(struct parse_ctx *ctx, const struct mtad_config *cfg)
{
	bool mechanisms = strcmp(cfg->sasl_mechanisms, "none") != 0;
	bool cert_said = false;

	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct mtad_listen *l = &cfg->listen[i];

		ctx->line = l->line;
		/* Rejecting at EHLO would lock out users who were about to AUTH. */
		if (l->helo_reject_ehlo &&
		    ((mechanisms && l->tls != MTAD_TLS_NONE) || l->auth_plaintext || l->submission))
			perr(ctx, "helo_reject_at=ehlo on a listener that offers AUTH: "
			     "the HELO rules would lock out users before they log in");
		/* MAIL needs AUTH there, and AUTH needs TLS: nobody could ever send. */
		if (l->submission && l->tls == MTAD_TLS_NONE && !l->auth_plaintext)
			perr(ctx, "a submission listener needs AUTH, and AUTH needs TLS: add "
			     "starttls or tls (or auth_plaintext) to this listener");
		if (l->auth_plaintext && !mechanisms)
			pwarn(ctx, "auth_plaintext, but sasl_mechanisms = none: no AUTH is offered");
		if (l->tls != MTAD_TLS_NONE && !cert_said &&
		    (!cfg->tls_cert_file[0] || !cfg->tls_key_file[0])) {
			perr(ctx, "a starttls or tls listener needs tls_cert_file and tls_key_file");
			cert_said = true;
		}
	}
}

/* check_milter_listeners - each word names a listener of this file, "local", "all" or "none". */
static void check_milter_listeners(struct parse_ctx *ctx, const struct mtad_config *cfg)
{
	char copy[sizeof(cfg->milter_listeners)], *save = NULL, *w;

	ctx->line = param_line(ctx, "milter_listeners");
	snprintf(copy, sizeof(copy), "%s", cfg->milter_listeners);
	for (w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		bool found = strcmp(w, "all") == 0 || strcmp(w, "none") == 0 ||
			     strcmp(w, "local") == 0;

		for (size_t i = 0; i < cfg->nlisten && !found; i++) {
			char name[80];

			snprintf(name, sizeof(name), strchr(cfg->listen[i].address, ':') ? "[%s]:%d" : "%s:%d",
				 cfg->listen[i].address, cfg->listen[i].port);
			found = strcmp(name, w) == 0;
		}
		if (!found) {
			perr(ctx, "milter_listeners: \"%s\" is no listener of this file "
			     "(ADDRESS:PORT as in listen, local, all or none)", w);
			return;
		}
	}
}

/*
 * check_relations - settings that are each in range but wrong together:
 * errors where mtad would misbehave, warnings where it works but most
 * likely not as the operator meant.
 */
static void check_relations(struct parse_ctx *ctx, const struct mtad_config *cfg)
{
	uint64_t minfree = cfg->queue_minfree;

	if (cfg->retry_min > cfg->retry_max) {
		ctx->line = later_line(ctx, "retry_min", "retry_max");
		perr(ctx, "retry_min = %u is above retry_max = %u: the first retry would wait "
		     "longer than the longest wait", cfg->retry_min, cfg->retry_max);
	}
	if (cfg->retry_min >= cfg->max_queue_lifetime) {
		ctx->line = later_line(ctx, "retry_min", "max_queue_lifetime");
		pwarn(ctx, "retry_min = %u is not below max_queue_lifetime = %u: a deferred "
		      "message is bounced without a second attempt", cfg->retry_min,
		      cfg->max_queue_lifetime);
	}
	if (cfg->delay_warning_time != 0 && cfg->delay_warning_time >= cfg->max_queue_lifetime) {
		ctx->line = later_line(ctx, "delay_warning_time", "max_queue_lifetime");
		pwarn(ctx, "delay_warning_time = %u is not below max_queue_lifetime = %u: no delay "
		      "warning is ever sent, the message bounces first", cfg->delay_warning_time,
		      cfg->max_queue_lifetime);
	}
	if (minfree != MTAD_MINFREE_AUTO && minfree != 0 && minfree < cfg->message_size_limit) {
		ctx->line = later_line(ctx, "queue_minfree", "message_size_limit");
		pwarn(ctx, "queue_minfree = %" PRIu64 " is below message_size_limit = %" PRIu64
		      ": one message in DATA can fill the spool's reserve (see mtad.conf(5))",
		      minfree, cfg->message_size_limit);
	}
	if (cfg->max_connections_per_ip > cfg->max_connections) {
		ctx->line = later_line(ctx, "max_connections_per_ip", "max_connections");
		pwarn(ctx, "max_connections_per_ip = %u is above max_connections = %u: it never "
		      "applies", cfg->max_connections_per_ip, cfg->max_connections);
	}
	if (cfg->destination_concurrency > cfg->delivery_concurrency) {
		ctx->line = later_line(ctx, "destination_concurrency", "delivery_concurrency");
		pwarn(ctx, "destination_concurrency = %u is above delivery_concurrency = %u: "
		      "it never applies", cfg->destination_concurrency, cfg->delivery_concurrency);
	}
	if (cfg->smtp_tls_ca_file[0] && strcmp(cfg->smtp_tls, "none") == 0) {
		ctx->line = later_line(ctx, "smtp_tls_ca_file", "smtp_tls");
		pwarn(ctx, "smtp_tls_ca_file is set, but smtp_tls = none: it is never used");
	}
}

/* check_replication - a group needs this node's address and at least one peer. */
static void check_replication(struct parse_ctx *ctx, const struct mtad_config *cfg)
{
	int peers_line = cfg->nreplication_peers ? cfg->replication_peer_line[0] : 0;

	if (cfg->nreplication_peers > 0 && !cfg->replication_local[0]) {
		ctx->line = peers_line;
		perr(ctx, "replication_peer without replication_local: this node's own "
		     "HOST:PORT is needed to join the group");
	}
	if (cfg->replication_local[0] && cfg->nreplication_peers == 0) {
		ctx->line = param_line(ctx, "replication_local");
		perr(ctx, "replication_local without a replication_peer: a group of one "
		     "replicates nothing");
	}
	for (size_t i = 0; i < cfg->nreplication_peers; i++)
		if (strcasecmp(cfg->replication_peers[i], cfg->replication_local) == 0) {
			ctx->line = cfg->replication_peer_line[i];
			perr(ctx, "replication_peer %s is this node's own replication_local",
			     cfg->replication_peers[i]);
		}
	if (cfg->nreplication_peers > 0 && strcmp(cfg->replication_ack, "none") == 0) {
		ctx->line = param_line(ctx, "replication_ack");
		pwarn(ctx, "replication_ack = none: a 250 means one copy, on this node only");
	}
}

/*
 * check_config - rules that span settings, checked once the whole file
 * is read; every one that fails is reported.
 */
static void check_config(struct parse_ctx *ctx, const struct mtad_config *cfg)
{
	check_listeners(ctx, cfg);
	check_milter_listeners(ctx, cfg);
	check_relations(ctx, cfg);
	check_mechanisms(ctx, cfg);
	check_replication(ctx, cfg);
}

/* parse_text - every line of text, then the rules between settings. */
static void parse_text(struct parse_ctx *ctx, struct mtad_config *cfg, const char *text, size_t len)
{
	char line[CONFIG_LINE_MAX + 1];
	size_t pos = 0, n;
	const char *nl;

	while (pos < len) {
		const char *start = text + pos;

		ctx->line++;
		nl = memchr(start, '\n', len - pos);
		n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl != NULL);
		/* A bad line is reported and skipped: the rest is still checked. */
		if (n > CONFIG_LINE_MAX) {
			perr(ctx, "line too long (more than %d bytes)", CONFIG_LINE_MAX);
			continue;
		}
		if (memchr(start, '\0', n) != NULL) {
			perr(ctx, "NUL byte in line");
			continue;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		(void)parse_line(ctx, cfg, line);
	}
	check_config(ctx, cfg);
	for (size_t i = 0; i < NPARAMS; i++)
		if (ctx->seen[i])
			cfg->key_line[i] = ctx->seen[i];
}

/* mtad_config_parse_all - see util.h. */
int mtad_config_parse_all(struct mtad_config *cfg, const struct mtad_config_checks *checks,
			  const struct mtad_config_report *report, const char *text, size_t len,
			  const char *filename)
{
	struct parse_ctx ctx = { filename ? filename : "(config)", 0, 0, report, { 0 }, checks };

	parse_text(&ctx, cfg, text, len);
	return ctx.errors > INT_MAX ? INT_MAX : (int)ctx.errors;
}

/* The first error, for callers that stop at one (start, SIGHUP, mtaq). */
struct first_error {
	char *err;
	size_t errlen;
	bool have;
};

static void keep_first_error(void *arg, enum mtad_config_severity sev, const char *msg)
{
	struct first_error *fe = arg;

	if (sev != MTAD_CONFIG_ERROR || fe->have)
		return;
	fe->have = true;
	if (fe->errlen > 0)
		snprintf(fe->err, fe->errlen, "%s", msg);
}

/* mtad_config_parse - parses text on top of cfg; see util.h. */
int mtad_config_parse(struct mtad_config *cfg, const struct mtad_config_checks *checks,
		      const char *text, size_t len, const char *filename, char *err, size_t errlen)
{
	struct first_error fe = { err, errlen, false };
	struct mtad_config_report report = { keep_first_error, &fe };

	if (errlen > 0)
		err[0] = '\0';
	return mtad_config_parse_all(cfg, checks, &report, text, len, filename) > 0 ? -1 : 0;
}

/* mtad_config_line - see util.h. */
int mtad_config_line(const struct mtad_config *cfg, const char *key)
{
	const struct param *p = find_param(key, strlen(key));

	return p ? cfg->key_line[p - config_params] : 0;
}

/* read_file - the whole of a small file into a malloc'd buffer. */
static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t have = 0;
	ssize_t n;
	char *b;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((b = malloc(CONFIG_FILE_MAX + 1)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* One byte more than allowed tells "too large" from "exactly the limit". */
	while (have <= CONFIG_FILE_MAX) {
		n = read(fd, b + have, CONFIG_FILE_MAX + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	if (have > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: file too large (more than %d bytes)", path, CONFIG_FILE_MAX);
		goto fail;
	}
	close(fd);
	*buf = b;
	*len = have;
	return 0;
fail:
	free(b);
	close(fd);
	return -1;
}

/* mtad_config_load - defaults, then the file's settings. */
int mtad_config_load(struct mtad_config *cfg, const struct mtad_config_checks *checks,
		     const char *path, char *err, size_t errlen)
{
	struct first_error fe = { err, errlen, false };
	struct mtad_config_report report = { keep_first_error, &fe };

	if (errlen > 0)
		err[0] = '\0';
	return mtad_config_load_all(cfg, checks, &report, path) > 0 ? -1 : 0;
}

/* mtad_config_load_all - see util.h; a file that cannot be read is one error. */
int mtad_config_load_all(struct mtad_config *cfg, const struct mtad_config_checks *checks,
			 const struct mtad_config_report *report, const char *path)
{
	char *text, why[CONFIG_MSG_MAX];
	size_t len;
	int r;

	mtad_config_defaults(cfg);
	if (read_file(path, &text, &len, why, sizeof(why)) < 0) {
		if (report)
			report->note(report->arg, MTAD_CONFIG_ERROR, why);
		return 1;
	}
	r = mtad_config_parse_all(cfg, checks, report, text, len, path);
	free(text);
	return r;
}
