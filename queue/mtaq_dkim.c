/*
 * mtaq_dkim.c - `mtaq dkim-keygen DOMAIN SELECTOR [--ed25519] [--dir DIR]`:
 * a new DKIM signing key in DIR/DOMAIN.SELECTOR.key (PEM, mode 0640;
 * run as root: owner root, group of mtad.conf's `user`, so mtad reads
 * it at start and on SIGHUP as that user and nobody else can), and what
 * to do with it: the DNS TXT record to publish and the dkim_sign line
 * for mtad.conf.
 *
 * Must not: overwrite an existing key (a published selector would stop
 * verifying), leave a key readable by others, touch the queue, or print
 * the private key.
 *
 * Follows: RFC 6376 §3.6.1 and §3.6.2.2 (the record at
 * SELECTOR._domainkey.DOMAIN; TXT strings of at most 255 octets, RFC
 * 1035 §3.3.14), RFC 8463 §4.2 (k=ed25519), RFC 8301 (RSA 2048).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dkim/dkim.h"
#include "queue/mtaq_int.h"

#define KEYGEN_DEFAULT_DIR "/etc/mtad/dkim"
#define TXT_STRING_MAX 255

/* keygen_name_ok - a domain or selector fit for a file name and DNS. */
static bool keygen_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || strstr(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* keygen_group - as root: the group of the configuration's `user`
 * (-1: none to give, the user is root or not set). -2 on an error (said). */
static long keygen_group(struct mtaq *m)
{
	struct mtad_config *cfg;
	struct queue_options opt;
	struct passwd *pw;
	long gid = -1;

	if (geteuid() != 0)
		return -1;
	if ((cfg = malloc(sizeof(*cfg))) == NULL)
		return -2;
	if (load_options(m, cfg, &opt) != 0) {	/* said why */
		free(cfg);
		return -2;
	}
	if (cfg->user[0] != '\0') {
		if ((pw = getpwnam(cfg->user)) == NULL) {
			fprintf(stderr, "mtaq: user %s (mtad.conf): no such user\n", cfg->user);
			gid = -2;
		} else if (pw->pw_uid != 0) {
			gid = (long)pw->pw_gid;
		}
	}
	free(cfg);
	return gid;
}

/* print_record - the zone file line, p= cut into strings of at most 255 octets. */
static void print_record(const char *selector, const char *domain, const char *txt)
{
	size_t len = strlen(txt);

	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (size_t off = 0; off < len; off += TXT_STRING_MAX)
		printf(" \"%.*s\"", (int)(len - off < TXT_STRING_MAX ? len - off : TXT_STRING_MAX),
		       txt + off);
	printf(" )\n");
}

/* cmd_dkim_keygen - see mtaq_int.h. */
int cmd_dkim_keygen(struct mtaq *m)
{
	const char *dir = m->dir ? m->dir : KEYGEN_DEFAULT_DIR;
	enum dkim_alg alg = m->ed25519 ? DKIM_ED25519_SHA256 : DKIM_RSA_SHA256;
	char path[MTAD_PATH_MAX], err[MTAD_PATH_MAX + 200], *txt = NULL;
	long gid;

	if (m->nargs != 2 || !keygen_name_ok(m->args[0], DKIM_DOMAIN_MAX) ||
	    !keygen_name_ok(m->args[1], DKIM_SELECTOR_MAX)) {
		fprintf(stderr, "mtaq: dkim-keygen wants DOMAIN SELECTOR (letters, digits, '-', '_', '.')\n");
		return MTAQ_EXIT_USAGE;
	}
	if (dir[0] != '/') {
		fprintf(stderr, "mtaq: --dir must be an absolute path (mtad.conf names the key by it)\n");
		return MTAQ_EXIT_USAGE;
	}
	if ((gid = keygen_group(m)) == -2)
		return 1;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		fprintf(stderr, "mtaq: cannot create %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s.key", dir, m->args[0], m->args[1]) >=
	    sizeof(path)) {
		fprintf(stderr, "mtaq: %s: path too long\n", dir);
		return 1;
	}
	if (dkim_keygen(path, alg, &txt, err, sizeof(err)) != 0) {
		fprintf(stderr, "mtaq: %s\n", err);
		return 1;
	}
	if (gid >= 0 && chown(path, 0, (gid_t)gid) != 0) {
		fprintf(stderr, "mtaq: chown %s: %s (the key is left root-only)\n", path,
			strerror(errno));
		free(txt);
		return 1;
	}
	printf("# %s key written to %s\n# Publish in DNS:\n", dkim_alg_name(alg), path);
	print_record(m->args[1], m->args[0], txt);
	printf("# Add to mtad.conf, then kill -HUP mtad:\ndkim_sign = %s %s %s %s\n", m->args[0],
	       m->args[1], path, dkim_alg_name(alg));
	free(txt);
	return 0;
}
