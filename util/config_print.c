/*
 * config_print.c - the configuration's defaults (mtad_config_defaults,
 * the hostname from the machine) and its printers: `mtad -n`, every
 * setting that differs from its default, printed so that it parses back
 * the same; `mtad -n KEY...` and `mtad -d [KEY...]`, the value in force
 * (or the default) of each key named, or of every key, as postconf does.
 *
 * Must not: print a value the parser would read differently (the fuzz
 * target t/fuzz/fuzz_config.c parses the output again and compares), or
 * keep global mutable state.
 *
 * Follows: RFC 1123 §2.1 (the FQDN default of hostname).
 */
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/config_int.h"

/* default_hostname - the FQDN: gethostname(), canonicalised when it has no dot. */
static void default_hostname(char *out, size_t size)
{
	struct addrinfo hints = { .ai_flags = AI_CANONNAME, .ai_family = AF_UNSPEC };
	struct addrinfo *res = NULL;
	char name[MTAD_HOSTNAME_MAX + 1];

	/* Truncated or missing names are useless in a greeting: fall back. */
	if (gethostname(name, sizeof(name)) != 0 || memchr(name, '\0', sizeof(name)) == NULL)
		snprintf(name, sizeof(name), "localhost");
	if (strchr(name, '.') == NULL && getaddrinfo(name, NULL, &hints, &res) == 0) {
		if (res->ai_canonname && strchr(res->ai_canonname, '.') &&
		    strlen(res->ai_canonname) < sizeof(name))
			snprintf(name, sizeof(name), "%s", res->ai_canonname);
		freeaddrinfo(res);
	}
	snprintf(out, size, "%s", name);
}

/* mtad_config_defaults - every row's default; see util.h. */
void mtad_config_defaults(struct mtad_config *cfg)
{
	const struct param *p;

	memset(cfg, 0, sizeof(*cfg));
	for (p = config_params; p < config_params + config_nparams; p++) {
		if (p->type == P_HOSTNAME)
			default_hostname(config_field(cfg, p), p->size);
		else if (p->type == P_PATH || p->type == P_OPT_PATH || p->type == P_STRING ||
			 p->type == P_CHOICE || p->type == P_USER || p->type == P_HOSTPORT)
			snprintf(config_field(cfg, p), p->size, "%s", p->def_str);
		else if (p->type == P_SIZE)
			*(uint64_t *)config_field(cfg, p) = p->def_num;
		else if (p->type == P_UNSIGNED || p->type == P_AUTO || p->type == P_TIME)
			*(unsigned *)config_field(cfg, p) = (unsigned)p->def_num;
	}
	memset(cfg->helo_rule, -1, sizeof(cfg->helo_rule));
	/* Until a listen line says otherwise: all IPv4 addresses, port 25. */
	snprintf(cfg->listen[0].address, sizeof(cfg->listen[0].address), "0.0.0.0");
	cfg->listen[0].port = 25;
	cfg->nlisten = 1;
	cfg->listen_configured = false;
}

/* print_listen - the configured listen entries, in the syntax they were given in. */
static void print_listen(const struct mtad_config *cfg, FILE *out)
{
	size_t i;

	if (!cfg->listen_configured)
		return;
	for (i = 0; i < cfg->nlisten; i++) {
		const struct mtad_listen *l = &cfg->listen[i];

		fprintf(out, strchr(l->address, ':') ? "listen = [%s]:%d" : "listen = %s:%d",
			l->address, l->port);
		fprintf(out, "%s%s%s%s\n",
			l->tls == MTAD_TLS_STARTTLS ? " starttls" :
			l->tls == MTAD_TLS_IMPLICIT ? " tls" : "",
			l->submission ? " submission" : "", l->auth_plaintext ? " auth_plaintext" : "",
			l->helo_reject_ehlo ? " helo_reject_at=ehlo" : "");
	}
}

/* print_list - domain and network lists and the rule switches, when set. */
static void print_list(const struct mtad_config *cfg, const struct mtad_config_checks *checks,
		       const struct param *p, FILE *out)
{
	if (p->type == P_RULE) {
		for (int r = 0; r < MTAD_MAX_RULES; r++)
			if (cfg->helo_rule[r] >= 0 && checks && checks->helo_rule_name)
				fprintf(out, "helo_rule.%s = %s\n", checks->helo_rule_name(r),
					cfg->helo_rule[r] ? "on" : "off");
		return;
	}
	if (p->type == P_NETWORKS) {
		struct mtad_addr *nets;
		size_t *count;
		char *text;

		config_networks_of((struct mtad_config *)cfg, p, &nets, &count, &text);
		if (*count > 0)
			fprintf(out, "%s = %s\n", p->name, text);
		return;
	}
	{
		char (*list)[MTAD_HOSTNAME_MAX + 1];
		size_t *count;

		config_domains_of((struct mtad_config *)cfg, p, &list, &count);
		if (*count == 0)
			return;
		fprintf(out, "%s =", p->name);
		for (size_t i = 0; i < *count; i++)
			fprintf(out, " %s", list[i]);
		fprintf(out, "\n");
	}
}

static void print_value(const struct mtad_config *cfg, const struct mtad_config_checks *checks,
			const struct param *p, FILE *out);

/* print_param - one row if its value differs from the default; a
 * differing value is printed as print_value prints any value in force. */
static void print_param(const struct mtad_config *cfg, const struct mtad_config *def,
			const struct mtad_config_checks *checks, const struct param *p, FILE *out)
{
	switch (p->type) {
	case P_HOSTNAME:
	case P_PATH:
	case P_OPT_PATH:
	case P_STRING:
	case P_CHOICE:
	case P_USER:
	case P_HOSTPORT:
		/* An empty user prints as "user =", which reads back the same. */
		if (strcmp(config_cfield(cfg, p), config_cfield(def, p)) != 0)
			fprintf(out, "%s =%s%s\n", p->name, *(const char *)config_cfield(cfg, p) ? " " : "",
				(const char *)config_cfield(cfg, p));
		break;
	case P_SIZE:
		if (*(const uint64_t *)config_cfield(cfg, p) != *(const uint64_t *)config_cfield(def, p))
			fprintf(out, "%s = %" PRIu64 "\n", p->name, *(const uint64_t *)config_cfield(cfg, p));
		break;
	case P_UNSIGNED: case P_TIME:
		if (*(const unsigned *)config_cfield(cfg, p) != *(const unsigned *)config_cfield(def, p))
			fprintf(out, "%s = %u\n", p->name, *(const unsigned *)config_cfield(cfg, p));
		break;
	case P_AUTO:
		if (*(const unsigned *)config_cfield(cfg, p) != *(const unsigned *)config_cfield(def, p))
			print_value(cfg, checks, p, out);
		break;
	case P_LISTEN:
		print_listen(cfg, out);
		break;
	case P_DOMAINS:
	case P_NETWORKS:
	case P_RULE:
		print_list(cfg, checks, p, out);
		break;
	case P_DKIM:
		if (cfg->ndkim_sign > 0)	/* none: the default, not printed */
			print_value(cfg, checks, p, out);
		break;
	case P_MILTER:
		if (cfg->nmilters > 0)
			print_value(cfg, checks, p, out);
		break;
	case P_PEER:
		if (cfg->nreplication_peers > 0)
			print_value(cfg, checks, p, out);
		break;
	case P_ROUTE:
		if (p->offset == OFF(routes))
			for (size_t i = 0; i < cfg->nroutes; i++)
				fprintf(out, "route = %s\n", cfg->routes[i]);
		else if (cfg->relayhost[0])
			fprintf(out, "relayhost = %s\n", cfg->relayhost);
		break;
	}
}

/*
 * mtad_config_minfree - the free-space reserve in force: queue_minfree
 * when set, else twice message_size_limit, but at least 256 MB (see
 * etc/mtad.conf for why).
 */
uint64_t mtad_config_minfree(const struct mtad_config *cfg)
{
	const uint64_t floor = 256 * MB;
	uint64_t twice;

	if (cfg->queue_minfree != MTAD_MINFREE_AUTO)
		return cfg->queue_minfree;
	twice = cfg->message_size_limit > UINT64_MAX / 2 ? UINT64_MAX : 2 * cfg->message_size_limit;
	return twice > floor ? twice : floor;
}

/* mtad_config_print_nondefault - `mtad -n`: a loop over the table. */
void mtad_config_print_nondefault(const struct mtad_config *cfg,
				  const struct mtad_config_checks *checks, FILE *out)
{
	struct mtad_config def;
	const struct param *p;

	mtad_config_defaults(&def);
	for (p = config_params; p < config_params + config_nparams; p++)
		print_param(cfg, &def, checks, p, out);
}

/* print_string - "key = value", or "key =" for an empty value (it reads back the same). */
static void print_string(const char *name, const char *value, FILE *out)
{
	fprintf(out, "%s =%s%s\n", name, value[0] ? " " : "", value);
}

/* print_rule - helo_rule.NAME with its value in force: its own setting, else the mode's. */
static void print_rule(const struct mtad_config *cfg, const struct mtad_config_checks *checks,
		       int r, FILE *out)
{
	int on = cfg->helo_rule[r] >= 0 ? cfg->helo_rule[r]
		 : checks->helo_rule_default(r, cfg->helo_policy);

	fprintf(out, "helo_rule.%s = %s\n", checks->helo_rule_name(r), on ? "on" : "off");
}

/* rule_switchable - r is a rule helo_rule.NAME can set (policy/ says). */
static bool rule_switchable(const struct mtad_config_checks *checks, int r)
{
	return checks && checks->helo_rule_name && checks->helo_rule_default &&
	       checks->helo_rule_name(r) && checks->helo_rule_default(r, "relaxed") >= 0;
}

/* print_all_listen - every listener in force, the built-in default included. */
static void print_all_listen(const struct mtad_config *cfg, FILE *out)
{
	struct mtad_config shown = *cfg;

	shown.listen_configured = true;
	print_listen(&shown, out);
}

/* print_value - one row's value in force, in the syntax the parser reads. */
static void print_value(const struct mtad_config *cfg, const struct mtad_config_checks *checks,
			const struct param *p, FILE *out)
{
	char (*domains)[MTAD_HOSTNAME_MAX + 1];
	struct mtad_addr *nets;
	size_t *count;
	char *text;

	switch (p->type) {
	case P_HOSTNAME: case P_PATH: case P_OPT_PATH: case P_STRING: case P_CHOICE: case P_USER:
	case P_HOSTPORT:
		print_string(p->name, config_cfield(cfg, p), out);
		break;
	case P_PEER:
		if (cfg->nreplication_peers == 0)
			print_string(p->name, "", out);
		for (size_t i = 0; i < cfg->nreplication_peers; i++)
			print_string(p->name, cfg->replication_peers[i], out);
		break;
	case P_SIZE:
		/* queue_minfree unset: the reserve it stands for (mtad_config_minfree). */
		fprintf(out, "%s = %" PRIu64 "\n", p->name, p->offset == OFF(queue_minfree)
			? mtad_config_minfree(cfg) : *(const uint64_t *)config_cfield(cfg, p));
		break;
	case P_UNSIGNED: case P_TIME:
		fprintf(out, "%s = %u\n", p->name, *(const unsigned *)config_cfield(cfg, p));
		break;
	case P_AUTO:
		if (*(const unsigned *)config_cfield(cfg, p) == 0)
			fprintf(out, "%s = auto\n", p->name);
		else
			fprintf(out, "%s = %u\n", p->name, *(const unsigned *)config_cfield(cfg, p));
		break;
	case P_LISTEN:
		print_all_listen(cfg, out);
		break;
	case P_DOMAINS:
		config_domains_of((struct mtad_config *)cfg, p, &domains, &count);
		fprintf(out, "%s =", p->name);
		for (size_t i = 0; i < *count; i++)
			fprintf(out, " %s", domains[i]);
		fprintf(out, "\n");
		break;
	case P_NETWORKS:
		config_networks_of((struct mtad_config *)cfg, p, &nets, &count, &text);
		print_string(p->name, *count > 0 ? text : "", out);
		break;
	case P_RULE:
		for (int r = 0; r < MTAD_MAX_RULES; r++)
			if (rule_switchable(checks, r))
				print_rule(cfg, checks, r, out);
		break;
	case P_DKIM:
		if (cfg->ndkim_sign == 0)
			print_string(p->name, "", out);
		for (size_t i = 0; i < cfg->ndkim_sign; i++) {
			char line[MTAD_PATH_MAX + 400];

			snprintf(line, sizeof(line), "%s %s %s %s", cfg->dkim_sign[i].domain,
				 cfg->dkim_sign[i].selector, cfg->dkim_sign[i].key_file,
				 cfg->dkim_sign[i].algorithm);
			print_string(p->name, line, out);
		}
		break;
	case P_MILTER:
		if (cfg->nmilters == 0)
			print_string(p->name, "", out);
		for (size_t i = 0; i < cfg->nmilters; i++)
			print_string(p->name, cfg->milter_text[i], out);
		break;
	case P_ROUTE:
		if (p->offset != OFF(routes))
			print_string(p->name, cfg->relayhost, out);
		else if (cfg->nroutes == 0)
			print_string(p->name, "", out);
		for (size_t i = 0; p->offset == OFF(routes) && i < cfg->nroutes; i++)
			print_string(p->name, cfg->routes[i], out);
		break;
	}
}

/* print_one_rule - `helo_rule.NAME` asked for by name: -1 when NAME is no switchable rule. */
static int print_one_rule(const struct mtad_config *cfg, const struct mtad_config_checks *checks,
			  const char *name, FILE *out)
{
	char why[200];
	int r;

	if (!checks || !checks->helo_rule)
		return -1;
	r = checks->helo_rule(name, why, sizeof(why));
	if (r < 0 || r >= MTAD_MAX_RULES || !rule_switchable(checks, r))
		return -1;
	print_rule(cfg, checks, r, out);
	return 0;
}

/* mtad_config_print_keys - `mtad -n KEY...`, `mtad -d [KEY...]`; see util.h. */
size_t mtad_config_print_keys(const struct mtad_config *cfg, const struct mtad_config_checks *checks,
			      const char *const *keys, size_t nkeys, FILE *out, FILE *errout)
{
	const size_t prefix = strlen("helo_rule.");
	size_t unknown = 0;

	if (nkeys == 0) {
		for (const struct param *p = config_params; p < config_params + config_nparams; p++)
			print_value(cfg, checks, p, out);
		return 0;
	}
	for (size_t i = 0; i < nkeys; i++) {
		const struct param *p = config_find(keys[i], strlen(keys[i]));
		bool known = p != NULL;

		if (known && p->type == P_RULE)
			known = print_one_rule(cfg, checks, keys[i] + prefix, out) == 0;
		else if (known)
			print_value(cfg, checks, p, out);
		if (known)
			continue;
		fprintf(errout, "mtad: unknown parameter \"%s\"\n", keys[i]);
		unknown++;
	}
	return unknown;
}
