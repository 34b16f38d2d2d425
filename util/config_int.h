/*
 * config_int.h - private to util/: the parameter table that the parser
 * (config.c) and the defaults and printer (config_print.c) share.
 * Nothing outside util/ includes this file.
 */
#ifndef UTIL_CONFIG_INT_H
#define UTIL_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

enum param_type {
	P_HOSTNAME, P_PATH, P_STRING, P_CHOICE, P_SIZE, P_UNSIGNED, P_LISTEN,
	P_DOMAINS,	/* list of domain names: local_domains, relay_domains */
	P_NETWORKS,	/* list of CIDR networks: relay_networks, auth_ip_exempt */
	P_RULE,		/* helo_rule.NAME = on|off */
	P_ROUTE,	/* route = DOMAIN NEXTHOP [tls=...], repeatable; relayhost */
	P_DKIM,		/* dkim_sign = DOMAIN SELECTOR KEYFILE [ALGORITHM], repeatable */
	P_MILTER,	/* milter = NAME ADDRESS [option=value ...], repeatable */
	P_USER,		/* a login name, or empty: user */
	P_AUTO,		/* an unsigned, or "auto" (stored as 0): loops */
	P_OPT_PATH,	/* an absolute path, or empty: none (local_socket, alias_maps) */
	P_TIME,		/* seconds, or with Postfix's units s, m, h, d, w: delay_warning_time */
	P_HOSTPORT,	/* HOST:PORT, or empty: replication_local */
	P_PEER,		/* replication_peer = HOST:PORT, repeatable */
};

/*
 * One row per setting. Adding a setting is a field in struct mtad_config
 * and one row here; parsing, defaults and `mtad -n` follow from the row.
 */
struct param {
	const char *name;
	enum param_type type;
	size_t offset;		/* into struct mtad_config */
	size_t size;		/* of a string field */
	const char *def_str;	/* P_PATH default; P_HOSTNAME: NULL = FQDN */
	uint64_t def_num;
	uint64_t min, max;	/* P_SIZE, P_UNSIGNED, P_AUTO (other than auto), P_TIME */
	const char *choices;	/* P_CHOICE: "a|b|c" */
};

/* The table (config.c): one row per setting. */
extern const struct param config_params[];
extern const size_t config_nparams;

#define OFF(f) offsetof(struct mtad_config, f)

/* Sizes in the table and in defaults. */
#define KB 1024ULL
#define MB (1024ULL * KB)
#define GB (1024ULL * MB)
#define TB (1024ULL * GB)

/* config_field - the address of a parameter's field inside cfg. */
static inline void *config_field(struct mtad_config *cfg, const struct param *p)
{
	return (char *)cfg + p->offset;
}

/* config_cfield - the same, read-only. */
static inline const void *config_cfield(const struct mtad_config *cfg, const struct param *p)
{
	return (const char *)cfg + p->offset;
}

/* config_find - the table row for a key (helo_rule.NAME: the helo_rule. row), or NULL. */
const struct param *config_find(const char *key, size_t keylen);

/* The list field a P_DOMAINS / P_NETWORKS row points at, and its count. */
void config_domains_of(struct mtad_config *cfg, const struct param *p,
		       char (**list)[MTAD_HOSTNAME_MAX + 1], size_t **count);
void config_networks_of(struct mtad_config *cfg, const struct param *p,
			struct mtad_addr **list, size_t **count, char **text);

#endif
