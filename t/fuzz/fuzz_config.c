/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 * (mtad_config_parse in util/config.c, which parses from a buffer; it
 * also reaches smtp_route_parse and mtad_addr_parse through route,
 * relayhost and relay_networks). The input is the text of an mtad.conf.
 * Defaults are computed once (they look up the host name), then each
 * input is parsed on top of a copy.
 *
 * Checks: an error is "fuzz.conf:LINE: ..." and NUL-terminated; an
 * accepted config has its counts within their arrays, NUL-terminated
 * strings, ports 1..65535, routes and relayhost that smtp_route_parse
 * takes; and what `mtad -n` prints of it (mtad_config_print_nondefault)
 * parses again into the same settings and prints the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "deliver/deliver.h"
#include "policy/policy.h"

/* The checks mtad itself passes to the parser (mtad/main.c). */
static const struct mtad_config_checks checks = {
	.route = deliver_config_route,
	.helo_rule = policy_config_rule,
	.helo_rule_name = policy_config_rule_name,
};

static struct mtad_config defaults;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mtad_config_defaults(&defaults);
	return 0;
}

/* terminated - a string field holds its NUL. */
static void terminated(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
}

/* check_config - what an accepted config promises its users. */
static void check_config(const struct mtad_config *c)
{
	struct smtp_route r;
	char err[256];

	terminated(c->hostname, sizeof(c->hostname));
	terminated(c->spool_directory, sizeof(c->spool_directory));
	terminated(c->dns_servers, sizeof(c->dns_servers));
	terminated(c->relayhost, sizeof(c->relayhost));
	if (c->nlisten < 1 || c->nlisten > MTAD_MAX_LISTEN || c->nlocal_domains > MTAD_MAX_DOMAINS ||
	    c->nrelay_domains > MTAD_MAX_DOMAINS || c->nrelay_networks > MTAD_MAX_NETWORKS ||
	    c->nroutes > MTAD_MAX_ROUTES)
		abort();
	for (size_t i = 0; i < c->nlisten; i++) {
		terminated(c->listen[i].address, sizeof(c->listen[i].address));
		if (c->listen[i].port < 1 || c->listen[i].port > 65535)
			abort();
	}
	for (size_t i = 0; i < c->nlocal_domains; i++)
		terminated(c->local_domains[i], sizeof(c->local_domains[i]));
	for (size_t i = 0; i < c->nrelay_domains; i++)
		terminated(c->relay_domains[i], sizeof(c->relay_domains[i]));
	for (size_t i = 0; i < c->nroutes; i++) {
		terminated(c->routes[i], sizeof(c->routes[i]));
		if (smtp_route_parse(c->routes[i], false, &r, err, sizeof(err)) != 0)
			abort();
	}
	if (c->relayhost[0] && smtp_route_parse(c->relayhost, true, &r, err, sizeof(err)) != 0)
		abort();
}

/* printed - mtad_config_print_nondefault into a malloc'd string. */
static char *printed(const struct mtad_config *c, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	if (f == NULL)
		abort();
	mtad_config_print_nondefault(c, &checks, f);
	if (fclose(f) != 0)
		abort();
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mtad_config cfg, again;
	char err[512];
	char *text1, *text2;
	size_t len1, len2;

	memcpy(&cfg, &defaults, sizeof(cfg));
	memset(err, 'x', sizeof(err));
	if (mtad_config_parse(&cfg, &checks, (const char *)data, size, "fuzz.conf", err, sizeof(err)) != 0) {
		if (memchr(err, '\0', sizeof(err)) == NULL || strncmp(err, "fuzz.conf:", 10) != 0)
			abort();
		return 0;
	}
	check_config(&cfg);

	/* `mtad -n` prints a config that reads back as itself. */
	text1 = printed(&cfg, &len1);
	memcpy(&again, &defaults, sizeof(again));
	if (mtad_config_parse(&again, &checks, text1, len1, "printed", err, sizeof(err)) != 0) {
		fprintf(stderr, "printed config does not parse: %s\n---\n%s---\n", err, text1);
		abort();
	}
	text2 = printed(&again, &len2);
	if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
		fprintf(stderr, "printed twice differently:\n---\n%s---\n%s---\n", text1, text2);
		abort();
	}
	/* ... and means the same: every setting equal, only the line numbers differ. */
	for (size_t i = 0; i < MTAD_MAX_LISTEN; i++)
		cfg.listen[i].line = again.listen[i].line = 0;
	memset(cfg.route_line, 0, sizeof(cfg.route_line));
	memset(again.route_line, 0, sizeof(again.route_line));
	memset(cfg.key_line, 0, sizeof(cfg.key_line));
	memset(again.key_line, 0, sizeof(again.key_line));
	if (memcmp(&cfg, &again, sizeof(cfg)) != 0) {
		fprintf(stderr, "printed config reads back as a different config:\n---\n%s---\n", text1);
		abort();
	}
	free(text1);
	free(text2);
	return 0;
}
