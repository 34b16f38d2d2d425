/*
 * own_addr.c - this machine's own addresses: what the HELO rules call
 * "our address" and what delivery must never connect to on its own
 * listening port (a mail loop).
 *
 * Must not: be called per message or per connection (getifaddrs walks
 * every interface: at start and on SIGHUP only), or fail the caller when
 * the interfaces cannot be listed (the listen addresses still count).
 *
 * Follows: RFC 5321 §5.1 (do not deliver to yourself through an MX).
 */
#include <ifaddrs.h>
#include <string.h>

#include "util/util.h"

/* mtad_own_addresses - see util.h. */
size_t mtad_own_addresses(const struct mtad_config *cfg, struct mtad_addr *out, size_t max)
{
	struct ifaddrs *ifa, *i;
	size_t n = 0;

	if (getifaddrs(&ifa) == 0) {
		for (i = ifa; i && n < max; i = i->ifa_next)
			if (i->ifa_addr && mtad_addr_from_sockaddr(i->ifa_addr, &out[n]))
				n++;
		freeifaddrs(ifa);
	} else {
		mtad_log(MTAD_LOG_WARNING, "cannot list this machine's addresses: %m");
	}
	for (size_t l = 0; l < cfg->nlisten && n < max; l++) {
		const char *a = cfg->listen[l].address;

		if (strcmp(a, "0.0.0.0") != 0 && strcmp(a, "::") != 0 &&
		    mtad_addr_parse(a, strlen(a), false, &out[n]) == 0)
			n++;
	}
	return n;
}
