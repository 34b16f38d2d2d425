/*
 * config.c - unit tests for util/config.c: defaults, every key, size
 * suffixes, listen syntax, comments, exact FILE:LINE error texts, and
 * the `mtad -n` printer; every error of a file at once, the rules
 * between settings, and the -n KEY / -d printer.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "deliver/deliver.h"
#include "policy/policy.h"
#include "t/unit/tap.h"

/* The checks mtad itself passes to the parser (mtad/main.c). */
static const struct mtad_config_checks checks = {
	.route = deliver_config_route,
	.helo_rule = policy_config_rule,
	.helo_rule_name = policy_config_rule_name,
	.helo_rule_default = policy_config_rule_default,
};

/* parse - defaults, then text; returns the parser's result. */
static int parse(struct mtad_config *cfg, const char *text, char *err, size_t errlen)
{
	mtad_config_defaults(cfg);
	return mtad_config_parse(cfg, &checks, text, strlen(text), "etc/mtad.conf", err, errlen);
}

/* test_defaults - every default from the table. */
static void test_defaults(struct tap *t)
{
	struct mtad_config c;

	mtad_config_defaults(&c);
	TAP_OK(t, c.hostname[0] != '\0', "default hostname is set (%s)", c.hostname);
	TAP_OK(t, strcmp(c.spool_directory, "/var/spool/mtad") == 0, "default spool_directory");
	TAP_OK(t, c.nlisten == 1 && !c.listen_configured &&
	       strcmp(c.listen[0].address, "0.0.0.0") == 0 && c.listen[0].port == 25,
	       "default listen 0.0.0.0:25, not configured");
	TAP_OK(t, c.message_size_limit == 52428800, "default message_size_limit");
	TAP_OK(t, c.max_recipients == 100, "default max_recipients");
	TAP_OK(t, c.max_errors == 20, "default max_errors");
	TAP_OK(t, c.max_connections == 1000, "default max_connections");
	TAP_OK(t, c.max_connections_per_ip == 50, "default max_connections_per_ip");
	TAP_OK(t, c.command_timeout == 300, "default command_timeout");
	TAP_OK(t, c.data_timeout == 600, "default data_timeout");
	TAP_OK(t, c.db_cache_size == 67108864, "default db_cache_size");
	TAP_OK(t, c.db_log_buffer_size == 1048576, "default db_log_buffer_size");
	TAP_OK(t, c.checkpoint_interval == 60, "default checkpoint_interval");
	TAP_OK(t, strcmp(c.user, "mtad") == 0, "default user mtad: a root start never stays root");
	TAP_OK(t, strcmp(c.log, "stderr") == 0, "default log stderr");
	TAP_OK(t, strcmp(c.syslog_socket, "/dev/log") == 0, "default syslog_socket /dev/log");
}

/* test_every_key - one file setting every key, read back field by field. */
static void test_every_key(struct tap *t)
{
	static const char text[] =
		"# mtad test configuration\n"
		"\n"
		"hostname = mx.example.org\n"
		"  spool_directory=/tmp/spool   \n"
		"listen = 127.0.0.1:2525\n"
		"listen = [::1]:2525   # loopback v6\n"
		"message_size_limit = 10M\n"
		"max_recipients = 1\n"
		"max_errors = 5\n"
		"max_connections = 10\n"
		"max_connections_per_ip = 2\n"
		"command_timeout = 30\n"
		"data_timeout = 60\n"
		"db_cache_size = 1g\n"
		"db_log_buffer_size = 512K\n"
		"checkpoint_interval = 5";	/* no final newline */
	struct mtad_config c;
	char err[256];
	int r = parse(&c, text, err, sizeof(err));

	TAP_OK(t, r == 0, "full file parses (%s)", err);
	TAP_OK(t, strcmp(c.hostname, "mx.example.org") == 0, "hostname");
	TAP_OK(t, strcmp(c.spool_directory, "/tmp/spool") == 0, "spool_directory, blanks trimmed");
	TAP_OK(t, c.listen_configured && c.nlisten == 2, "two listen entries replace the default");
	TAP_OK(t, strcmp(c.listen[0].address, "127.0.0.1") == 0 && c.listen[0].port == 2525 &&
	       c.listen[0].line == 5, "listen IPv4 with line number");
	TAP_OK(t, strcmp(c.listen[1].address, "::1") == 0 && c.listen[1].port == 2525 &&
	       c.listen[1].line == 6, "listen IPv6, comment after value stripped");
	TAP_OK(t, c.message_size_limit == 10485760, "message_size_limit 10M");
	TAP_OK(t, c.max_recipients == 1, "max_recipients");
	TAP_OK(t, c.max_errors == 5, "max_errors");
	TAP_OK(t, c.max_connections == 10, "max_connections");
	TAP_OK(t, c.max_connections_per_ip == 2, "max_connections_per_ip");
	TAP_OK(t, c.command_timeout == 30, "command_timeout");
	TAP_OK(t, c.data_timeout == 60, "data_timeout");
	TAP_OK(t, c.db_cache_size == 1073741824, "db_cache_size 1g");
	TAP_OK(t, c.db_log_buffer_size == 524288, "db_log_buffer_size 512K");
	TAP_OK(t, c.checkpoint_interval == 5, "checkpoint_interval, last line without newline");
}

struct good_case {
	const char *text;
	uint64_t size;		/* expected message_size_limit */
};

/* test_sizes - suffixes and plain numbers. */
static void test_sizes(struct tap *t)
{
	static const struct good_case cases[] = {
		{ "message_size_limit = 1", 1 },
		{ "message_size_limit = 1024", 1024 },
		{ "message_size_limit = 1k", 1024 },
		{ "message_size_limit = 2K", 2048 },
		{ "message_size_limit = 3m", 3145728 },
		{ "message_size_limit = 1G", 1073741824 },
		{ "message_size_limit = 1024G", 1099511627776ULL },
		{ "message_size_limit = 007", 7 },
		{ "message_size_limit\t=\t9\r\n", 9 },
	};
	struct mtad_config c;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		TAP_OK(t, parse(&c, cases[i].text, err, sizeof(err)) == 0 &&
		       c.message_size_limit == cases[i].size, "size: %s", cases[i].text);
}

/* test_listen - accepted listen syntaxes and their normalised form. */
static void test_listen(struct tap *t)
{
	static const struct { const char *text, *addr; int port; } cases[] = {
		{ "listen = 0.0.0.0:25", "0.0.0.0", 25 },
		{ "listen = 192.0.2.1:65535", "192.0.2.1", 65535 },
		{ "listen = [::]:1", "::", 1 },
		{ "listen = [2001:DB8:0:0::1]:587", "2001:db8::1", 587 },
		{ "listen = [::ffff:127.0.0.1]:25", "::ffff:127.0.0.1", 25 },
	};
	struct mtad_config c;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		TAP_OK(t, parse(&c, cases[i].text, err, sizeof(err)) == 0 && c.nlisten == 1 &&
		       strcmp(c.listen[0].address, cases[i].addr) == 0 &&
		       c.listen[0].port == cases[i].port, "listen: %s", cases[i].text);
}

/* test_max_listen - MTAD_MAX_LISTEN entries fit, one more does not. */
static void test_max_listen(struct tap *t)
{
	char text[2048], err[256], want[256];
	struct mtad_config c;
	size_t n = 0;
	int i;

	for (i = 0; i < MTAD_MAX_LISTEN; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "listen = 127.0.0.1:%d\n", 2000 + i);
	TAP_OK(t, parse(&c, text, err, sizeof(err)) == 0 && c.nlisten == MTAD_MAX_LISTEN,
	       "%d listen entries", MTAD_MAX_LISTEN);
	snprintf(text + n, sizeof(text) - n, "listen = 127.0.0.1:3000\n");
	snprintf(want, sizeof(want), "etc/mtad.conf:%d: too many listen entries (at most %d)",
		 MTAD_MAX_LISTEN + 1, MTAD_MAX_LISTEN);
	TAP_OK(t, parse(&c, text, err, sizeof(err)) == -1 && strcmp(err, want) == 0,
	       "one more is an error: %s", err);
}

struct bad_case {
	const char *text;
	const char *err;
};

/* test_errors - each kind of mistake, with the exact message. */
static void test_errors(struct tap *t)
{
	static const struct bad_case cases[] = {
		{ "\n\n\n\n\n\n\n\n\n\n\nmax_recpients = 5\n",
		  "etc/mtad.conf:12: unknown parameter \"max_recpients\"" },
		{ "hostname mx.example.org\n", "etc/mtad.conf:1: missing \"=\" in \"hostname mx.example.org\"" },
		{ "= 5\n", "etc/mtad.conf:1: missing parameter name before \"=\"" },
		{ "# c\nmax_errors =\n", "etc/mtad.conf:2: empty value for max_errors" },
		{ "max_errors = # nothing\n", "etc/mtad.conf:1: empty value for max_errors" },
		/* t/fuzz/corpus/config/regress-value-hash: `mtad -n` printed it as a comment. */
		{ "sasl_realm=#", "etc/mtad.conf:1: value of sasl_realm starts with \"#\", "
		  "which starts a comment after a blank" },
		{ "\ntls_ciphers\t=#x # c\n", "etc/mtad.conf:2: value of tls_ciphers starts with \"#\", "
		  "which starts a comment after a blank" },
		{ "Hostname = a.b\n", "etc/mtad.conf:1: unknown parameter \"Hostname\"" },
		{ "max_errors = five\n", "etc/mtad.conf:1: bad number \"five\" for max_errors" },
		{ "max_errors = -1\n", "etc/mtad.conf:1: bad number \"-1\" for max_errors" },
		{ "max_errors = 5k\n", "etc/mtad.conf:1: bad number \"5k\" for max_errors" },
		{ "max_errors = 5 6\n", "etc/mtad.conf:1: bad number \"5 6\" for max_errors" },
		{ "max_recipients = 0\n",
		  "etc/mtad.conf:1: max_recipients = 0 is out of range (1..1000000)" },
		{ "max_recipients = 4294967297\n",
		  "etc/mtad.conf:1: max_recipients = 4294967297 is out of range (1..1000000)" },
		{ "command_timeout = 86401\n",
		  "etc/mtad.conf:1: command_timeout = 86401 is out of range (1..86400)" },
		{ "message_size_limit = 10x\n",
		  "etc/mtad.conf:1: bad number \"10x\" for message_size_limit (digits with optional K, M or G)" },
		{ "message_size_limit = M\n",
		  "etc/mtad.conf:1: bad number \"M\" for message_size_limit (digits with optional K, M or G)" },
		{ "message_size_limit = 10MB\n",
		  "etc/mtad.conf:1: bad number \"10MB\" for message_size_limit (digits with optional K, M or G)" },
		{ "message_size_limit = 99999999999999999999999\n",
		  "etc/mtad.conf:1: message_size_limit = 99999999999999999999999 is out of range (1..1099511627776)" },
		{ "message_size_limit = 18014398509481984K\n",
		  "etc/mtad.conf:1: message_size_limit = 18014398509481984K is out of range (1..1099511627776)" },
		{ "db_cache_size = 1k\n",
		  "etc/mtad.conf:1: db_cache_size = 1k is out of range (20480..1099511627776)" },
		{ "hostname = bad_host.example\n", "etc/mtad.conf:1: bad hostname \"bad_host.example\"" },
		{ "hostname = a..b\n", "etc/mtad.conf:1: bad hostname \"a..b\"" },
		{ "hostname = -a.b\n", "etc/mtad.conf:1: bad hostname \"-a.b\"" },
		{ "spool_directory = spool\n",
		  "etc/mtad.conf:1: spool_directory must be an absolute path: \"spool\"" },
		{ "max_errors = 1\nmax_errors = 2\n", "etc/mtad.conf:2: max_errors is already set at line 1" },
		{ "listen = 127.0.0.1\n",
		  "etc/mtad.conf:1: bad listen \"127.0.0.1\": expected ADDRESS:PORT or [IPV6]:PORT" },
		{ "listen = ::1:25\n",
		  "etc/mtad.conf:1: bad listen \"::1:25\": expected ADDRESS:PORT or [IPV6]:PORT" },
		{ "listen = [::1]25\n",
		  "etc/mtad.conf:1: bad listen \"[::1]25\": expected ADDRESS:PORT or [IPV6]:PORT" },
		{ "listen = :25\n",
		  "etc/mtad.conf:1: bad listen \":25\": expected ADDRESS:PORT or [IPV6]:PORT" },
		{ "listen = localhost:25\n",
		  "etc/mtad.conf:1: bad listen \"localhost:25\": \"localhost\" is not a numeric IPv4 address" },
		{ "listen = 256.0.0.1:25\n",
		  "etc/mtad.conf:1: bad listen \"256.0.0.1:25\": \"256.0.0.1\" is not a numeric IPv4 address" },
		{ "listen = [127.0.0.1]:25\n",
		  "etc/mtad.conf:1: bad listen \"[127.0.0.1]:25\": \"127.0.0.1\" is not a numeric IPv6 address" },
		{ "listen = 127.0.0.1:0\n",
		  "etc/mtad.conf:1: bad listen \"127.0.0.1:0\": port must be 1..65535" },
		{ "listen = 127.0.0.1:65536\n",
		  "etc/mtad.conf:1: bad listen \"127.0.0.1:65536\": port must be 1..65535" },
		{ "listen = 127.0.0.1:smtp\n",
		  "etc/mtad.conf:1: bad listen \"127.0.0.1:smtp\": port must be 1..65535" },
		{ "listen = 127.0.0.1:\n",
		  "etc/mtad.conf:1: bad listen \"127.0.0.1:\": port must be 1..65535" },
		{ "listen = [::1]:25\nlisten = [0::1]:25\n",
		  "etc/mtad.conf:2: duplicate listen \"[0::1]:25\" (first at line 1)" },
		{ "listen = 127.0.0.1:25 startls\n",
		  "etc/mtad.conf:1: unknown listen option \"startls\" (starttls, tls, submission, "
		  "auth_plaintext, helo_reject_at=ehlo)" },
		{ "helo_policy = lenient\n",
		  "etc/mtad.conf:1: bad helo_policy \"lenient\" (one of off|relaxed|strict)" },
		{ "helo_rule.non-fdqn = on\n", "etc/mtad.conf:1: unknown HELO rule \"non-fdqn\"" },
		{ "helo_rule.no-helo = off\n", "etc/mtad.conf:1: helo_rule.no-helo is always on" },
		{ "helo_rule.relay = off\n", "etc/mtad.conf:1: unknown HELO rule \"relay\"" },
		{ "helo_rule.localhost = yes\n",
		  "etc/mtad.conf:1: helo_rule.localhost must be on or off, not \"yes\"" },
		{ "local_domains = campus.test, bad_domain\n",
		  "etc/mtad.conf:1: local_domains: bad domain \"bad_domain\"" },
		{ "relay_domains = b\xc3\xbc" "cher.test b\xc3.test\n",
		  "etc/mtad.conf:1: relay_domains: bad domain \"b\xc3.test\"" },
		{ "relay_networks = 10.0.0.0/8 10.1.2.3/33\n",
		  "etc/mtad.conf:1: relay_networks: bad network \"10.1.2.3/33\" "
		  "(expected ADDRESS or ADDRESS/PREFIX)" },
		{ "tls_cert_file = /c\ntls_key_file = /k\n"
		  "listen = 127.0.0.1:25 starttls helo_reject_at=ehlo\n",
		  "etc/mtad.conf:3: helo_reject_at=ehlo on a listener that offers AUTH: "
		  "the HELO rules would lock out users before they log in" },
		{ "tls_cert_file = /c\ntls_key_file = /k\nlisten = 127.0.0.1:25 starttls tls\n",
		  "etc/mtad.conf:3: a listener is either starttls or tls, not both" },
		{ "\nlisten = 127.0.0.1:465 tls\n",
		  "etc/mtad.conf:2: a starttls or tls listener needs tls_cert_file and tls_key_file" },
		{ "tls_cert_file = /c\nlisten = 127.0.0.1:25 starttls\n",
		  "etc/mtad.conf:2: a starttls or tls listener needs tls_cert_file and tls_key_file" },
		{ "tls_min_version = TLSv1.1\n",
		  "etc/mtad.conf:1: bad tls_min_version \"TLSv1.1\" (one of TLSv1.2|TLSv1.3)" },
		{ "sasl_pwcheck_method = pam\n",
		  "etc/mtad.conf:1: bad sasl_pwcheck_method \"pam\" (one of auxprop|saslauthd)" },
		{ "\nsasl_mechanisms = PLAIN CRAM-MD5\n",
		  "etc/mtad.conf:2: sasl_mechanisms: unsupported mechanism \"CRAM-MD5\" (PLAIN, LOGIN)" },
		{ "tls_cert_file = /c\ntls_key_file = /k\nsasl_mechanisms = none\n"
		  "listen = 127.0.0.1:587 starttls submission\n",
		  "etc/mtad.conf:4: a submission listener needs AUTH, but sasl_mechanisms = none" },
		{ "sasl_database = sasldb2\n",
		  "etc/mtad.conf:1: sasl_database must be an absolute path: \"sasldb2\"" },
		{ "user = -mtad\n",
		  "etc/mtad.conf:1: bad user \"-mtad\" (a login name, or nothing: see `user` in mtad.conf(5))" },
		{ "user = mail owner\n",
		  "etc/mtad.conf:1: bad user \"mail owner\" (a login name, or nothing: see `user` in mtad.conf(5))" },
		{ "user = mtad:mtad\n",
		  "etc/mtad.conf:1: bad user \"mtad:mtad\" (a login name, or nothing: see `user` in mtad.conf(5))" },
		{ "user = a$b\n",
		  "etc/mtad.conf:1: bad user \"a$b\" (a login name, or nothing: see `user` in mtad.conf(5))" },
		{ "user = abcdefghijklmnopqrstuvwxyz0123456\n",
		  "etc/mtad.conf:1: user is too long (at most 32 characters)" },
		{ "user =\nuser = mtad\n", "etc/mtad.conf:2: user is already set at line 1" },
		{ "log = file\n", "etc/mtad.conf:1: bad log \"file\" (one of stderr|syslog)" },
		{ "log =\n", "etc/mtad.conf:1: empty value for log" },
		{ "syslog_socket = dev/log\n",
		  "etc/mtad.conf:1: syslog_socket must be an absolute path: \"dev/log\"" },
		{ "syslog_socket = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		  "etc/mtad.conf:1: syslog_socket is too long (at most 107 characters)" },
		{ "\nmilter = x tcp:127.0.0.1:1\n",
		  "etc/mtad.conf:2: milter address \"tcp:127.0.0.1:1\": expected unix:/path or inet:127.0.0.1:PORT" },
		{ "milter = x inet:127.0.0.1:1\nmilter = x unix:/a\n",
		  "etc/mtad.conf:2: duplicate milter name \"x\"" },
		{ "milter = x inet:127.0.0.1:1 default_action=maybe\n",
		  "etc/mtad.conf:1: milter option \"default_action=maybe\": tempfail, accept or reject" },
		{ "listen = 127.0.0.1:25\nmilter_listeners = 127.0.0.1:587\n",
		  "etc/mtad.conf:2: milter_listeners: \"127.0.0.1:587\" is no listener of this file "
		  "(ADDRESS:PORT as in listen, local, all or none)" },
	};
	struct mtad_config c;
	char err[256];
	size_t i;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = parse(&c, cases[i].text, err, sizeof(err));
		TAP_OK(t, r == -1 && strcmp(err, cases[i].err) == 0, "error: %s", cases[i].err);
		if (r != -1 || strcmp(err, cases[i].err) != 0)
			printf("#   got %d \"%s\"\n", r, err);
	}
}

/* test_milter - milter lines kept in order, parsed; milter_listeners checked against listen. */
static void test_milter(struct tap *t)
{
	struct mtad_config c;
	char err[256];
	int r = parse(&c, "listen = 127.0.0.1:25\nlisten = [::1]:587\n"
		      "milter = dkim inet:127.0.0.1:8891\n"
		      "milter = clam unix:/run/c.sock content_timeout=60 default_action=accept\n"
		      "milter_listeners = 127.0.0.1:25 [::1]:587 local\n", err, sizeof(err));

	TAP_OK(t, r == 0, "milter lines parse: %s", r ? err : "ok");
	TAP_OK(t, c.nmilters == 2 && strcmp(c.milters[0].name, "dkim") == 0 &&
	       c.milters[0].port == 8891 && c.milters[1].unix_socket &&
	       c.milters[1].content_timeout == 60 && c.milters[1].default_action == MILTER_ACCEPT,
	       "... in order, with their options");
	TAP_OK(t, strcmp(c.milter_text[1], "clam unix:/run/c.sock content_timeout=60 default_action=accept") == 0,
	       "... the text kept for mtad -n");
	r = parse(&c, "hostname = mx.test\n", err, sizeof(err));
	TAP_OK(t, r == 0 && c.nmilters == 0 && strcmp(c.milter_listeners, "all") == 0,
	       "no milter by default; milter_listeners = all");
}

/* test_hostport - mtad_hostport_parse, the replication addresses' parser. */
static void test_hostport(struct tap *t)
{
	static const struct { const char *in; const char *host; unsigned port; } good[] = {
		{ "10.0.0.1:7001", "10.0.0.1", 7001 }, { "[::1]:1", "::1", 1 },
		{ "mx-2.campus.test:65535", "mx-2.campus.test", 65535 },
		{ "[2001:db8::5]:5025", "2001:db8::5", 5025 },
	};
	static const char *const bad[] = {
		"", ":25", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "::1:25",
		"[::1]25", "[::1", "a b:25", "host:25x", "host:-1", "x:99999999999999999999",
		"h_st:25", "[]:25",
	};
	char host[64];
	unsigned port;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int r = mtad_hostport_parse(good[i].in, host, sizeof(host), &port);

		TAP_OK(t, r == 0 && strcmp(host, good[i].host) == 0 && port == good[i].port,
		       "hostport \"%s\" -> %s %u", good[i].in, good[i].host, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_OK(t, mtad_hostport_parse(bad[i], host, sizeof(host), &port) != 0,
		       "hostport \"%s\" refused", bad[i]);
	TAP_OK(t, mtad_hostport_parse("abcdefghij:25", host, 10, &port) != 0,
	       "a host longer than the buffer is refused");
}

/* test_replication - the group's keys, their defaults and relations. */
static void test_replication(struct tap *t)
{
	struct mtad_config c;
	char err[256];
	int r = parse(&c, "hostname = mx.test\n", err, sizeof(err));

	TAP_OK(t, r == 0 && c.replication_local[0] == '\0' && c.nreplication_peers == 0 &&
	       c.replication_priority == 100 && strcmp(c.replication_ack, "one") == 0 &&
	       c.replication_ack_timeout == 5 && strcmp(c.replication_two_site_strict, "no") == 0,
	       "replication defaults: none, priority 100, ack one, 5 s, not strict");
	r = parse(&c, "replication_local = 10.0.0.1:7001\nreplication_peer = 10.0.0.2:7001\n"
		  "replication_peer = [fd00::3]:7001\nreplication_ack = quorum\n"
		  "replication_ack_timeout = 2m\nreplication_priority = 0\n", err, sizeof(err));
	TAP_OK(t, r == 0 && c.nreplication_peers == 2 &&
	       strcmp(c.replication_peers[1], "[fd00::3]:7001") == 0 &&
	       strcmp(c.replication_ack, "quorum") == 0 && c.replication_ack_timeout == 120 &&
	       c.replication_priority == 0, "a group of three: %s", r ? err : "ok");
	r = parse(&c, "replication_local = 10.0.0.1:7001\n", err, sizeof(err));
	TAP_OK(t, r != 0 && strstr(err, "a group of one"), "a group of one is an error");
}

/* test_listen_roles - the words after ADDRESS:PORT, and how -n prints them. */
static void test_listen_roles(struct tap *t)
{
	static const char text[] =
		"tls_cert_file = /etc/mtad/cert.pem\n"
		"tls_key_file = /etc/mtad/key.pem\n"
		"listen = 127.0.0.1:25 starttls\n"
		"listen = 127.0.0.1:465 tls\n"
		"listen = [::1]:587\tstarttls  submission\n"
		"listen = 127.0.0.1:2525 auth_plaintext\n";
	struct mtad_config c;
	char err[256], *out = NULL;
	size_t outlen = 0;
	FILE *f;
	int r = parse(&c, text, err, sizeof(err));

	TAP_OK(t, r == 0, "listener roles parse (%s)", r ? err : "ok");
	TAP_OK(t, c.nlisten == 4, "four listeners");
	TAP_OK(t, c.listen[0].tls == MTAD_TLS_STARTTLS && !c.listen[0].submission, "starttls");
	TAP_OK(t, c.listen[1].tls == MTAD_TLS_IMPLICIT, "tls");
	TAP_OK(t, c.listen[2].tls == MTAD_TLS_STARTTLS && c.listen[2].submission &&
		  !c.listen[2].auth_plaintext, "starttls submission");
	TAP_OK(t, c.listen[3].tls == MTAD_TLS_NONE && c.listen[3].auth_plaintext,
	       "auth_plaintext");
	f = open_memstream(&out, &outlen);
	if (!f)
		return;
	mtad_config_print_nondefault(&c, &checks, f);
	fclose(f);
	TAP_OK(t, strstr(out, "listen = [::1]:587 starttls submission\n") != NULL &&
		  strstr(out, "listen = 127.0.0.1:465 tls\n") != NULL,
	       "-n prints the roles back");
	free(out);
}

/*
 * test_print_helo_reject - -n printed a helo_reject_at=ehlo listener
 * without it (t/fuzz/corpus/config/regress-helo-reject, fuzz_config).
 */
static void test_print_helo_reject(struct tap *t)
{
	static const char text[] = "listen=0.0.0.2:5\thelo_reject_at=ehlo";
	struct mtad_config c, again;
	char err[256], *out = NULL;
	size_t outlen = 0;
	FILE *f;
	int r = parse(&c, text, err, sizeof(err));

	TAP_OK(t, r == 0 && c.listen[0].helo_reject_ehlo, "helo_reject_at=ehlo parses (%s)",
	       r ? err : "ok");
	f = open_memstream(&out, &outlen);
	if (!f)
		return;
	mtad_config_print_nondefault(&c, &checks, f);
	fclose(f);
	TAP_OK(t, strcmp(out, "listen = 0.0.0.2:5 helo_reject_at=ehlo\n") == 0,
	       "-n prints helo_reject_at=ehlo");
	if (strcmp(out, "listen = 0.0.0.2:5 helo_reject_at=ehlo\n") != 0)
		printf("#   got \"%s\"\n", out);
	r = parse(&again, out, err, sizeof(err));
	TAP_OK(t, r == 0 && again.nlisten == 1 && again.listen[0].helo_reject_ehlo,
	       "and it reads back (%s)", r ? err : "ok");
	free(out);
}

/* test_policy_keys - the HELO policy and relay settings, and how -n prints them. */
static void test_policy_keys(struct tap *t)
{
	static const char text[] =
		"helo_policy = strict\n"
		"helo_rule.non-fqdn = off\n"
		"helo_rule.no-rdns = on\n"
		"local_domains = Campus.Test, other.test\n"
		"relay_domains = dept.campus.test M\xc3\xbcnchen.test\n"
		"relay_networks = 10.0.0.0/8, 2001:db8::/32 192.0.2.7\n"
		"auth_ip_exempt = 198.51.100.0/24 2001:db8:1::/48\n"
		"max_policy_rejections = 5\n"
		"dns_servers = 127.0.0.1:5353\n"
		"listen = 127.0.0.1:25 helo_reject_at=ehlo\n";
	struct mtad_config c;
	char err[256], *out = NULL;
	size_t outlen = 0;
	FILE *f;
	int r = parse(&c, text, err, sizeof(err));

	TAP_OK(t, r == 0, "policy keys parse (%s)", r ? err : "ok");
	TAP_OK(t, strcmp(c.helo_policy, "strict") == 0, "helo_policy");
	TAP_OK(t, c.helo_rule[POLICY_NON_FQDN] == 0 && c.helo_rule[POLICY_NO_RDNS] == 1 &&
		  c.helo_rule[POLICY_OWN_NAME] == -1, "helo_rule overrides, the rest as the mode says");
	TAP_OK(t, c.nlocal_domains == 2 && strcmp(c.local_domains[0], "campus.test") == 0,
	       "local_domains, lower-cased");
	TAP_OK(t, c.nrelay_domains == 2 && strcmp(c.relay_domains[1], "xn--mnchen-3ya.test") == 0,
	       "relay_domains, a U-label kept as its A-label");
	TAP_OK(t, c.nrelay_networks == 3 && c.relay_networks[1].prefix == 32 &&
		  c.relay_networks[2].prefix == 32, "relay_networks with and without prefix");
	TAP_OK(t, c.nauth_ip_exempt == 2 && c.auth_ip_exempt[0].prefix == 24 &&
		  c.auth_ip_exempt[1].prefix == 48 && c.nrelay_networks == 3,
	       "auth_ip_exempt: its own list, relay_networks untouched");
	TAP_OK(t, c.max_policy_rejections == 5 && c.listen[0].helo_reject_ehlo,
	       "max_policy_rejections and helo_reject_at=ehlo");
	f = open_memstream(&out, &outlen);
	if (!f)
		return;
	mtad_config_print_nondefault(&c, &checks, f);
	fclose(f);
	TAP_OK(t, strstr(out, "helo_rule.no-rdns = on\n") && strstr(out, "helo_rule.non-fqdn = off\n") &&
		  strstr(out, "relay_networks = 10.0.0.0/8 2001:db8::/32 192.0.2.7\n") &&
		  strstr(out, "auth_ip_exempt = 198.51.100.0/24 2001:db8:1::/48\n") &&
		  strstr(out, "local_domains = campus.test other.test\n"),
	       "-n prints rules, networks and domains");
	free(out);
}

/* test_limits - long lines, NUL bytes, tiny error buffers, NULL file name. */
static void test_limits(struct tap *t)
{
	struct mtad_config c;
	char *text = malloc(5000), err[256], tiny[8];
	int r;

	if (text == NULL)
		return;
	memset(text, ' ', 5000);
	memcpy(text + 4096 - 12, "max_errors=3", 12);	/* exactly 4096 bytes */
	text[4096] = '\n';
	mtad_config_defaults(&c);
	r = mtad_config_parse(&c, &checks, text, 4097, "f", err, sizeof(err));
	TAP_OK(t, r == 0 && c.max_errors == 3, "4096-byte line is fine");
	memcpy(text + 4097 - 12, "max_errors=3", 12);
	text[4097] = '\n';
	r = mtad_config_parse(&c, &checks, text, 4098, "f", err, sizeof(err));
	TAP_OK(t, r == -1 && strcmp(err, "f:1: line too long (more than 4096 bytes)") == 0,
	       "4097-byte line is an error (%s)", err);
	free(text);
	r = mtad_config_parse(&c, &checks, "max_errors = 1\0 x\n", 18, "f", err, sizeof(err));
	TAP_OK(t, r == -1 && strcmp(err, "f:1: NUL byte in line") == 0, "NUL byte (%s)", err);
	r = mtad_config_parse(&c, &checks, "nosuch = 1\n", 11, NULL, err, sizeof(err));
	TAP_OK(t, r == -1 && strcmp(err, "(config):1: unknown parameter \"nosuch\"") == 0,
	       "NULL file name (%s)", err);
	r = mtad_config_parse(&c, &checks, "nosuch = 1\n", 11, "etc/mtad.conf", tiny, sizeof(tiny));
	TAP_OK(t, r == -1 && strlen(tiny) < sizeof(tiny), "tiny error buffer stays terminated");
	r = mtad_config_parse(&c, &checks, "nosuch = 1\n", 11, "etc/mtad.conf", NULL, 0);
	TAP_OK(t, r == -1, "no error buffer at all");
	r = mtad_config_parse(&c, &checks, "", 0, "f", err, sizeof(err));
	TAP_OK(t, r == 0 && err[0] == '\0', "empty text");
	r = mtad_config_parse(&c, &checks, "a#b = 1\n", 8, "f", err, sizeof(err));
	TAP_OK(t, r == -1 && strcmp(err, "f:1: unknown parameter \"a#b\"") == 0,
	       "'#' inside a word is not a comment (%s)", err);
}

/* capture - print_nondefault into a string (caller frees). */
static char *capture(const struct mtad_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	mtad_config_print_nondefault(c, &checks, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* test_print - `mtad -n` shows exactly the changed settings, in table order. */
static void test_print(struct tap *t)
{
	struct mtad_config c;
	char err[256], *out;

	mtad_config_defaults(&c);
	out = capture(&c);
	TAP_OK(t, out && strcmp(out, "") == 0, "defaults print nothing");
	free(out);
	TAP_OK(t, parse(&c, "max_errors = 20\nmessage_size_limit = 50M\nlisten = 0.0.0.0:25\n",
			err, sizeof(err)) == 0, "settings equal to defaults parse");
	out = capture(&c);
	TAP_OK(t, out && strcmp(out, "listen = 0.0.0.0:25\n") == 0,
	       "values equal to defaults are not printed, configured listen is");
	free(out);
	TAP_OK(t, parse(&c, "checkpoint_interval = 7\nlisten = [::1]:2525\nhostname = mx.example.invalid\n"
			"listen = 127.0.0.1:2525\nspool_directory = /srv/q\nmessage_size_limit = 1k\n",
			err, sizeof(err)) == 0, "non-default settings parse");
	out = capture(&c);
	TAP_OK(t, out && strcmp(out, "hostname = mx.example.invalid\nspool_directory = /srv/q\n"
			       "listen = [::1]:2525\nlisten = 127.0.0.1:2525\n"
			       "message_size_limit = 1024\ncheckpoint_interval = 7\n") == 0,
	       "print_nondefault output");
	free(out);
}

/*
 * test_minfree - queue_minfree: unset is max(2 x message_size_limit,
 * 256 MB), 0 is no reserve, an explicit value is taken as it is and
 * printed by -n; the sentinel itself cannot be written.
 */
static void test_minfree(struct tap *t)
{
	struct mtad_config c;
	char err[256], *out;

	mtad_config_defaults(&c);
	TAP_OK(t, c.queue_minfree == MTAD_MINFREE_AUTO && mtad_config_minfree(&c) == 256ull << 20,
	       "queue_minfree unset: 256 MB with the default message_size_limit");
	TAP_OK(t, parse(&c, "message_size_limit = 200M\n", err, sizeof(err)) == 0 &&
	       mtad_config_minfree(&c) == 400ull << 20,
	       "queue_minfree unset, message_size_limit 200M: twice the limit, 400 MB");
	TAP_OK(t, parse(&c, "message_size_limit = 128M\n", err, sizeof(err)) == 0 &&
	       mtad_config_minfree(&c) == 256ull << 20, "exactly at the floor: 256 MB");
	TAP_OK(t, parse(&c, "queue_minfree = 0\n", err, sizeof(err)) == 0 &&
	       mtad_config_minfree(&c) == 0, "queue_minfree = 0: no reserve");
	out = capture(&c);
	TAP_OK(t, out && strcmp(out, "queue_minfree = 0\n") == 0, "-n prints queue_minfree = 0");
	free(out);
	TAP_OK(t, parse(&c, "queue_minfree = 10M\nmessage_size_limit = 1G\n", err, sizeof(err)) == 0 &&
	       mtad_config_minfree(&c) == 10ull << 20, "an explicit queue_minfree wins over the limit");
	TAP_OK(t, parse(&c, "queue_minfree = 18446744073709551615\n", err, sizeof(err)) == -1 &&
	       strcmp(err, "etc/mtad.conf:1: queue_minfree = 18446744073709551615 is out of range "
		      "(0..1099511627776)") == 0, "the auto sentinel is out of range (%s)", err);
}

/* test_service_keys - user (may be empty), log, syslog_socket: parsed, printed, read back. */
static void test_service_keys(struct tap *t)
{
	static const char *const users[] = { "nobody", "Debian-exim", "mail.owner", "_mtad", "host$" };
	struct mtad_config c, back;
	char err[256], text[128], *out;

	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		snprintf(text, sizeof(text), "user = %s\n", users[i]);
		TAP_OK(t, parse(&c, text, err, sizeof(err)) == 0 && strcmp(c.user, users[i]) == 0,
		       "user = %s (%s)", users[i], err);
	}
	TAP_OK(t, parse(&c, "user =\n", err, sizeof(err)) == 0 && c.user[0] == '\0',
	       "user = (nothing): stay as started (%s)", err);
	TAP_OK(t, parse(&c, "user = # stay root in a test\n", err, sizeof(err)) == 0 &&
	       c.user[0] == '\0', "user = with only a comment is empty too (%s)", err);
	TAP_OK(t, parse(&c, "user = mtad\nlog = stderr\nsyslog_socket = /dev/log\n",
			err, sizeof(err)) == 0, "the defaults, spelt out (%s)", err);
	out = capture(&c);
	TAP_OK(t, out && strcmp(out, "") == 0, "defaults of user, log, syslog_socket print nothing");
	free(out);
	TAP_OK(t, parse(&c, "syslog_socket = /run/systemd/journal/dev-log\nlog = syslog\n"
			"user =\n", err, sizeof(err)) == 0, "log = syslog, another socket, no user");
	out = capture(&c);
	TAP_OK(t, out && strcmp(out, "user =\nlog = syslog\n"
			       "syslog_socket = /run/systemd/journal/dev-log\n") == 0,
	       "-n prints them after hostname, an empty user as \"user =\"");
	TAP_OK(t, out && parse(&back, out, err, sizeof(err)) == 0 && back.user[0] == '\0' &&
	       strcmp(back.log, "syslog") == 0 &&
	       strcmp(back.syslog_socket, "/run/systemd/journal/dev-log") == 0,
	       "what -n prints reads back the same (%s)", err);
	free(out);
}

/* test_load - a real file, a missing file. */
static void test_load(struct tap *t)
{
	char path[] = "/tmp/mtad-config-test-XXXXXX", err[512], want[600];
	struct mtad_config c;
	int fd = mkstemp(path);
	static const char text[] = "max_errors = 9\nbogus = 1\n";

	if (fd < 0 || write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1)) {
		TAP_OK(t, 0, "temporary file");
		return;
	}
	close(fd);
	snprintf(want, sizeof(want), "%s:2: unknown parameter \"bogus\"", path);
	TAP_OK(t, mtad_config_load(&c, &checks, path, err, sizeof(err)) == -1 && strcmp(err, want) == 0,
	       "load names the file in errors (%s)", err);
	TAP_OK(t, c.max_errors == 9, "load applied the lines before the error");
	unlink(path);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	TAP_OK(t, mtad_config_load(&c, &checks, path, err, sizeof(err)) == -1 && strcmp(err, want) == 0,
	       "missing file (%s)", err);
}


/* What a parse reported: the lines, errors and warnings apart. */
struct findings {
	char text[4096];
	size_t len;
	int errors, warnings;
};

static void collect(void *arg, enum mtad_config_severity sev, const char *msg)
{
	struct findings *f = arg;
	int n = snprintf(f->text + f->len, sizeof(f->text) - f->len, "%s%s\n",
			 sev == MTAD_CONFIG_WARNING ? "W " : "E ", msg);

	if (n > 0 && (size_t)n < sizeof(f->text) - f->len)
		f->len += (size_t)n;
	*(sev == MTAD_CONFIG_WARNING ? &f->warnings : &f->errors) += 1;
}

/* parse_all - defaults, then text, every finding into f; returns the error count. */
static int parse_all(struct mtad_config *cfg, const char *text, struct findings *f)
{
	struct mtad_config_report report = { collect, f };

	memset(f, 0, sizeof(*f));
	mtad_config_defaults(cfg);
	return mtad_config_parse_all(cfg, &checks, &report, text, strlen(text), "m.conf");
}

/* has - the findings hold this line. */
static bool has(const struct findings *f, const char *line)
{
	return strstr(f->text, line) != NULL;
}

/* test_all_errors - the parse goes on after an error: every one is reported, with its line. */
static void test_all_errors(struct tap *t)
{
	struct mtad_config c;
	struct findings f;
	char err[256], *text;
	int r;

	r = parse_all(&c, "bogus = 1\nmax_errors = x\n# fine\nmax_recipients = 7\n"
		      "listen = 1.2.3.4\n", &f);
	TAP_OK(t, r == 3 && f.errors == 3, "three errors counted (%d)", r);
	TAP_OK(t, has(&f, "E m.conf:1: unknown parameter \"bogus\"\n") &&
	       has(&f, "E m.conf:2: bad number \"x\" for max_errors\n") &&
	       has(&f, "E m.conf:5: bad listen \"1.2.3.4\""), "each at its line");
	TAP_OK(t, c.max_recipients == 7, "the good lines between are applied");
	mtad_config_defaults(&c);
	r = mtad_config_parse(&c, &checks, "a = 1\nb = 2\n", 12, "f", err, sizeof(err));
	TAP_OK(t, r == -1 && strcmp(err, "f:1: unknown parameter \"a\"") == 0,
	       "mtad_config_parse keeps the first error (%s)", err);
	text = malloc(200 * 8 + 1);
	if (text == NULL)
		return;
	for (int i = 0; i < 200; i++)
		memcpy(text + i * 8, "bad = 1\n", 8);
	text[200 * 8] = '\0';
	r = parse_all(&c, text, &f);
	TAP_OK(t, r == 200 && f.errors == MTAD_CONFIG_ERRORS_MAX + 1 &&
	       has(&f, "E m.conf: more than 100 errors: the rest are not shown"),
	       "200 errors: counted, %d reported, then one line", MTAD_CONFIG_ERRORS_MAX);
	free(text);
	r = parse_all(&c, "max_errors = 3\n", &f);
	TAP_OK(t, r == 0 && mtad_config_line(&c, "max_errors") == 1 &&
	       mtad_config_line(&c, "max_recipients") == 0, "mtad_config_line: set 1, default 0");
}

/* test_time_units - delay_warning_time takes Postfix's units; the default is 4h. */
static void test_time_units(struct tap *t)
{
	struct mtad_config c;
	struct findings f;

	TAP_OK(t, parse_all(&c, "", &f) == 0 && c.delay_warning_time == 4 * 3600,
	       "delay_warning_time defaults to 4h");
	TAP_OK(t, parse_all(&c, "delay_warning_time = 30s\n", &f) == 0 && c.delay_warning_time == 30,
	       "delay_warning_time = 30s");
	TAP_OK(t, parse_all(&c, "delay_warning_time = 90\n", &f) == 0 && c.delay_warning_time == 90,
	       "delay_warning_time = 90 (seconds)");
	TAP_OK(t, parse_all(&c, "delay_warning_time = 2h\n", &f) == 0 &&
	       c.delay_warning_time == 7200, "delay_warning_time = 2h");
	TAP_OK(t, parse_all(&c, "delay_warning_time = 1w\n", &f) == 0 &&
	       c.delay_warning_time == 7 * 86400, "delay_warning_time = 1w");
	TAP_OK(t, parse_all(&c, "delay_warning_time = 0\n", &f) == 0 && c.delay_warning_time == 0,
	       "delay_warning_time = 0: none");
	TAP_OK(t, parse_all(&c, "delay_warning_time = 4H\n", &f) == 1 &&
	       has(&f, "E m.conf:1: bad number \"4H\" for delay_warning_time (seconds, or digits "
		   "with s, m, h, d or w)"), "delay_warning_time = 4H: an error at its line");
	TAP_OK(t, parse_all(&c, "max_queue_lifetime = 3600\ndelay_warning_time = 1h\n", &f) == 0 &&
	       has(&f, "W m.conf:2: delay_warning_time = 3600 is not below max_queue_lifetime = 3600"),
	       "delay_warning_time >= max_queue_lifetime: a warning at the later line");
	TAP_OK(t, parse_all(&c, "max_queue_lifetime = 3600\ndelay_warning_time = 0\n", &f) == 0 &&
	       f.warnings == 0, "delay_warning_time = 0 with a short lifetime: no warning");
	TAP_OK(t, parse_all(&c, "delay_warning_time = 53w\n", &f) == 1 &&
	       has(&f, "E m.conf:1: delay_warning_time = 53w is out of range"),
	       "delay_warning_time over a year: out of range");
}

/* test_relations - the rules between settings, each at the later setting's line. */
static void test_relations(struct tap *t)
{
	struct mtad_config c;
	struct findings f;

	TAP_OK(t, parse_all(&c, "retry_min = 50000\nretry_max = 10\n", &f) == 1 &&
	       has(&f, "E m.conf:2: retry_min = 50000 is above retry_max = 10"),
	       "retry_min > retry_max: an error at the later line");
	TAP_OK(t, parse_all(&c, "retry_min = 50000\n", &f) == 1 &&
	       has(&f, "E m.conf:1: retry_min = 50000 is above retry_max = 14400"),
	       "retry_min above the default retry_max: at its own line");
	TAP_OK(t, parse_all(&c, "retry_min = 600\nretry_max = 600\n", &f) == 0 && f.warnings == 0,
	       "retry_min = retry_max is fine");
	TAP_OK(t, parse_all(&c, "max_queue_lifetime = 100\nretry_min = 100\nretry_max = 200\n", &f) == 0 &&
	       has(&f, "W m.conf:2: retry_min = 100 is not below max_queue_lifetime = 100"),
	       "retry_min >= max_queue_lifetime: a warning");
	TAP_OK(t, parse_all(&c, "listen = 127.0.0.1:587 submission\n", &f) == 1 &&
	       has(&f, "E m.conf:1: a submission listener needs AUTH, and AUTH needs TLS"),
	       "submission without TLS: an error");
	TAP_OK(t, parse_all(&c, "listen = 127.0.0.1:587 submission auth_plaintext\n", &f) == 0,
	       "submission with auth_plaintext: allowed");
	TAP_OK(t, parse_all(&c, "listen = 127.0.0.1:25 auth_plaintext\nsasl_mechanisms = none\n", &f) == 0 &&
	       has(&f, "W m.conf:1: auth_plaintext, but sasl_mechanisms = none"),
	       "auth_plaintext without mechanisms: a warning");
	TAP_OK(t, parse_all(&c, "message_size_limit = 100M\nqueue_minfree = 10M\n", &f) == 0 &&
	       has(&f, "W m.conf:2: queue_minfree = 10485760 is below message_size_limit = 104857600"),
	       "queue_minfree below message_size_limit: a warning");
	TAP_OK(t, parse_all(&c, "queue_minfree = 0\n", &f) == 0 && f.warnings == 0,
	       "queue_minfree = 0 (no reserve): no warning");
	TAP_OK(t, parse_all(&c, "max_connections = 10\n", &f) == 0 &&
	       has(&f, "W m.conf:1: max_connections_per_ip = 50 is above max_connections = 10"),
	       "max_connections_per_ip above max_connections: a warning");
	TAP_OK(t, parse_all(&c, "delivery_concurrency = 5\n", &f) == 0 &&
	       has(&f, "W m.conf:1: destination_concurrency = 20 is above delivery_concurrency = 5"),
	       "destination_concurrency above delivery_concurrency: a warning");
	TAP_OK(t, parse_all(&c, "smtp_tls = none\nsmtp_tls_ca_file = /etc/ssl/ca.pem\n", &f) == 0 &&
	       has(&f, "W m.conf:2: smtp_tls_ca_file is set, but smtp_tls = none"),
	       "a CA file without outbound TLS: a warning");
	TAP_OK(t, parse_all(&c, "listen = 127.0.0.1:25 starttls\nlisten = 127.0.0.1:465 tls\n", &f) == 1 &&
	       has(&f, "E m.conf:1: a starttls or tls listener needs tls_cert_file"),
	       "TLS listeners without a certificate: one error, at the first");
	TAP_OK(t, parse_all(&c, "retry_min = 5000\nretry_max = 10\nlisten = 127.0.0.1:1 submission\n"
			    "bogus = 1\n", &f) == 3, "a parse error and two rule errors: all three");
}

/* print_keys - mtad_config_print_keys into a string; *unknown its count. */
static char *print_keys(const struct mtad_config *c, const char *const *keys, size_t n,
			size_t *unknown)
{
	char *out = NULL, *errs = NULL;
	size_t outlen = 0, errlen = 0;
	FILE *o = open_memstream(&out, &outlen), *e = open_memstream(&errs, &errlen);

	*unknown = 0;
	if (o && e)
		*unknown = mtad_config_print_keys(c, &checks, keys, n, o, e);
	if (o)
		fclose(o);
	if (e)
		fclose(e);
	free(errs);
	return out;
}

/* test_print_keys - -n KEY and -d: values in force, defaults, unknown keys. */
static void test_print_keys(struct tap *t)
{
	static const char *const keys[] = { "retry_min", "loops", "local_domains", "route",
					    "helo_rule.non-fqdn", "queue_minfree", "user" };
	static const char *const bad[] = { "retry_min", "nosuch", "helo_rule.", "helo_rule.no-helo" };
	struct mtad_config c;
	struct findings f;
	size_t unknown;
	char *out;

	parse_all(&c, "retry_min = 60\nlocal_domains = a.test b.test\nroute = a.test [10.0.0.1]:25\n"
		  "route = b.test [10.0.0.2]:25\nhelo_policy = strict\nmessage_size_limit = 200M\n"
		  "user =\n", &f);
	out = print_keys(&c, keys, 7, &unknown);
	TAP_OK(t, out && unknown == 0 && strcmp(out, "retry_min = 60\nloops = auto\n"
	       "local_domains = a.test b.test\nroute = a.test [10.0.0.1]:25\n"
	       "route = b.test [10.0.0.2]:25\nhelo_rule.non-fqdn = on\n"
	       "queue_minfree = 419430400\nuser =\n") == 0, "-n KEY values in force");
	free(out);
	out = print_keys(&c, bad, 4, &unknown);
	TAP_OK(t, out && unknown == 3 && strcmp(out, "retry_min = 60\n") == 0,
	       "unknown keys counted, a rule always on is no key (%zu)", unknown);
	free(out);
	mtad_config_defaults(&c);
	out = print_keys(&c, NULL, 0, &unknown);
	TAP_OK(t, out && strstr(out, "helo_rule.non-fqdn = off\n") && strstr(out, "route =\n") &&
	       strstr(out, "listen = 0.0.0.0:25\n") && strstr(out, "queue_minfree = 268435456\n"),
	       "-d: every row, defaults");
	free(out);
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_defaults(&t);
	test_every_key(&t);
	test_sizes(&t);
	test_listen(&t);
	test_max_listen(&t);
	test_listen_roles(&t);
	test_print_helo_reject(&t);
	test_policy_keys(&t);
	test_errors(&t);
	test_milter(&t);
	test_hostport(&t);
	test_replication(&t);
	test_limits(&t);
	test_print(&t);
	test_minfree(&t);
	test_service_keys(&t);
	test_load(&t);
	test_all_errors(&t);
	test_relations(&t);
	test_time_units(&t);
	test_print_keys(&t);
	return tap_done(&t);
}
