/*
 * dkim.h - built-in DKIM signing (RFC 6376, RFC 8463), floor 1: the
 * one public header of dkim/. Includes nothing of mtad but util/.
 *
 *   canon.c    relaxed header and body canonicalization, streamed in
 *              chunks split anywhere; the From: domain. Pure.
 *   sign.c     a signer fed one message (header fields, then body
 *              chunks) that ends in the DKIM-Signature fields to put in
 *              front of it, one per key. No I/O. The end comes in three
 *              steps so the private-key work can leave the event loop:
 *              prepare (on the loop), run (any thread), result (loop).
 *   key.c      keys: loaded from PEM files (start, SIGHUP, mtad -n),
 *              generated for `mtaq dkim-keygen`, their DNS TXT record.
 */
#ifndef DKIM_DKIM_H
#define DKIM_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- canonicalization (canon.c, pure) ---- */

/*
 * dkim_canon_header - the relaxed form (RFC 6376 §3.4.2) of one header
 * field (name, colon, value, folded or not, with or without its final
 * CRLF) into out, which must hold len + 3 bytes: "name:value\r\n" with
 * the name in lower case, the value unfolded, every run of white space
 * one SP, none at its ends. crlf false leaves the CRLF off (the
 * DKIM-Signature field itself is hashed so). Returns the length, or 0
 * when the field has no colon.
 */
size_t dkim_canon_header(const char *field, size_t len, char *out, bool crlf);

/* Where relaxed body canonicalization's output goes. */
typedef void (*dkim_out_fn)(void *arg, const void *data, size_t len);

/*
 * The relaxed body canonicalization (RFC 6376 §3.4.4), streamed: any
 * split of the same body into chunks gives the same output. Trailing
 * white space of a line goes, runs of it become one SP, empty lines at
 * the end go, and a last line without CRLF gets one (an empty body
 * stays empty). A CR not followed by LF is an ordinary byte.
 */
struct dkim_body_canon {
	dkim_out_fn out;
	void *arg;
	uint64_t blank_lines;	/* empty lines seen and not yet written */
	bool wsp;		/* white space seen in the line, not yet written */
	bool cr;		/* a CR was the last byte */
	bool content;		/* the line has bytes other than white space */
};

void dkim_body_canon_init(struct dkim_body_canon *c, dkim_out_fn out, void *arg);
void dkim_body_canon_feed(struct dkim_body_canon *c, const void *data, size_t len);
/* dkim_body_canon_finish - the end of the body (writes the last line's CRLF). */
void dkim_body_canon_finish(struct dkim_body_canon *c);

/*
 * dkim_from_domain - the domain of the one address in a From: field's
 * value (after the colon, folded or not), lower case, into out (size
 * bytes). -1 when there is no address, more than one, or the domain is
 * not a plain dot-separated name (then nothing is signed).
 */
int dkim_from_domain(const char *value, size_t len, char *out, size_t size);

/* ---- keys (key.c) ---- */

enum dkim_alg { DKIM_RSA_SHA256 = 0, DKIM_ED25519_SHA256 = 1 };

#define DKIM_DOMAIN_MAX 253
#define DKIM_SELECTOR_MAX 63
#define DKIM_MAX_KEYS 32	/* dkim_sign lines (util/util.h MTAD_MAX_DKIM) */

struct dkim_key;	/* one loaded private key, its domain and selector */
struct dkim_keys;	/* every key of a configuration; read-only once loaded */

/* dkim_alg_name - "rsa-sha256" or "ed25519-sha256". */
const char *dkim_alg_name(enum dkim_alg alg);
/* dkim_alg_parse - the reverse; -1 when name is neither. */
int dkim_alg_parse(const char *name, enum dkim_alg *alg);

/*
 * dkim_keys_new - an empty set holding one reference (the caller's);
 * NULL when out of memory.
 * dkim_keys_add - loads one key (PEM private key: RSA of at least 1024
 * bits for rsa-sha256, Ed25519 for ed25519-sha256) for domain and
 * selector. -1 with the reason in err ("cannot read ...", "not an
 * Ed25519 key", ...) when the file cannot be read or does not fit.
 * Blocks on the file: start, SIGHUP and mtad -n only; never on a set
 * already shared.
 * dkim_keys_ref - one more reference (returns ks); the caller must
 * already hold one. dkim_keys_unref - drops one; the last frees the set
 * and its keys. Both atomic: any thread, NULL ignored. A set is
 * read-only once shared, so a signing job on another thread may use the
 * keys of a set it holds a reference to while SIGHUP replaces it.
 */
struct dkim_keys *dkim_keys_new(void);
int dkim_keys_add(struct dkim_keys *ks, const char *domain, const char *selector,
		  const char *path, enum dkim_alg alg, char *err, size_t errlen);
struct dkim_keys *dkim_keys_ref(struct dkim_keys *ks);
void dkim_keys_unref(struct dkim_keys *ks);
size_t dkim_keys_count(const struct dkim_keys *ks);

/*
 * dkim_keys_find - the keys of exactly domain (lower case, no parent
 * domain: a key for example.org does not sign mail from a.example.org),
 * at most max into out. Returns how many.
 */
size_t dkim_keys_find(const struct dkim_keys *ks, const char *domain,
		      const struct dkim_key **out, size_t max);
const char *dkim_key_domain(const struct dkim_key *k);
const char *dkim_key_selector(const struct dkim_key *k);

/*
 * dkim_keygen - a new private key (RSA 2048 or Ed25519) written as PEM
 * to path, created with mode 0640 (an existing file is refused), and the
 * TXT record's value ("v=DKIM1; k=rsa; p=...") into txt (malloc'd, the
 * caller frees it). -1 with err.
 */
int dkim_keygen(const char *path, enum dkim_alg alg, char **txt, char *err, size_t errlen);

/* ---- signing (sign.c) ---- */

#define DKIM_HEADER_KEEP_MAX (64 * 1024)	/* bytes of signed fields a signer keeps */
#define DKIM_HEADER_FIELDS_MAX 100		/* signed fields a signer keeps */

struct dkim_signer;

/* dkim_signer_new - for one message; NULL when out of memory. */
struct dkim_signer *dkim_signer_new(void);
void dkim_signer_free(struct dkim_signer *sg);

/*
 * dkim_signer_header - one complete header field (folded lines and
 * final CRLF included), in message order. Fields not in the signed set
 * are ignored; past DKIM_HEADER_* the signer refuses to sign.
 */
void dkim_signer_header(struct dkim_signer *sg, const char *field, size_t len);
/* dkim_signer_body - the next body bytes (after the empty line), any split. */
void dkim_signer_body(struct dkim_signer *sg, const void *data, size_t len);

/*
 * dkim_signer_feed - the whole message as it streams (header section,
 * empty line, body), split anywhere: fields go to dkim_signer_header
 * and the rest to dkim_signer_body. A session that already has the
 * fields separately (a milter's changes) calls those two instead.
 */
void dkim_signer_feed(struct dkim_signer *sg, const void *data, size_t len);

/* dkim_signer_in_body - the header section is over (dkim_signer_feed saw the empty line). */
bool dkim_signer_in_body(const struct dkim_signer *sg);
/* dkim_signer_too_big - more signed header than DKIM_HEADER_* allow: not signable. */
bool dkim_signer_too_big(const struct dkim_signer *sg);

/*
 * dkim_signer_from_domain - the From: domain (lower case) once the
 * header is complete, or NULL when the message has none, several From:
 * fields, several addresses in it, or more header than the signer
 * keeps: such a message is not signed.
 */
const char *dkim_signer_from_domain(const struct dkim_signer *sg);

/*
 * dkim_signer_finish - the body is complete: one DKIM-Signature field
 * per key (in the order given), folded to lines of at most 78 octets,
 * each ending in CRLF, all in one malloc'd string *out (the caller
 * frees it) of *outlen bytes. t= is now, x= now + expire when expire
 * > 0. Call once, after the last body byte. -1 with err when a key
 * fails to sign (out of memory), no From: domain was found or nkeys is
 * 0. The three steps below in one call, on the caller's thread (tests,
 * tools); mtad's sessions use the steps, the signing off the loop.
 */
int dkim_signer_finish(struct dkim_signer *sg, const struct dkim_key *const *keys, size_t nkeys,
		       time_t now, uint32_t expire, char **out, size_t *outlen, char *err,
		       size_t errlen);

/*
 * The same end in three steps, so the private-key operations (about
 * 0.4 ms for RSA 2048) run off the event loop:
 *
 * dkim_signer_prepare - on the loop, after the last body byte: the body
 * hash, and for each key of ks for the message's From: domain the
 * DKIM-Signature field without b='s value and the header data its
 * signature covers, all copied into a new job; the signer is done with
 * (free it). The job holds its own reference to ks (taken here) until
 * dkim_sign_job_free. NULL with err when no From: domain was found, the
 * domain has no key in ks, or out of memory.
 *
 * dkim_sign_job_run - the private-key operations, one per key: pure and
 * thread-safe, it touches only the job and its keys (read-only,
 * OpenSSL 3 keys may be shared by threads, each with its own contexts).
 * Any thread; once.
 *
 * dkim_sign_job_result - after run, on the loop: the folded fields, one
 * per key, as dkim_signer_finish gives them (*out malloc'd). -1 with
 * err naming the key that failed to sign (or when run never ran).
 *
 * dkim_sign_job_keys / dkim_sign_job_key - the job's keys, in order (for
 * the log). dkim_sign_job_free - frees the job and drops its reference.
 */
struct dkim_sign_job;

struct dkim_sign_job *dkim_signer_prepare(struct dkim_signer *sg, struct dkim_keys *ks,
					  time_t now, uint32_t expire, char *err, size_t errlen);
void dkim_sign_job_run(struct dkim_sign_job *job);
int dkim_sign_job_result(struct dkim_sign_job *job, char **out, size_t *outlen, char *err,
			 size_t errlen);
size_t dkim_sign_job_keys(const struct dkim_sign_job *job);
const struct dkim_key *dkim_sign_job_key(const struct dkim_sign_job *job, size_t i);
void dkim_sign_job_free(struct dkim_sign_job *job);

/*
 * dkim_fold - tag=value pairs into a header field folded at tag
 * boundaries (and inside long base64 values) so no line passes 78
 * octets; lines after the first start with a TAB. Pure, for sign.c and
 * the unit test: appends to buf (size bytes), returns the new length or
 * -1 when it does not fit. col is the column the text starts at.
 */
long dkim_fold(char *buf, size_t size, size_t used, size_t *col, const char *tag,
	       const char *value, bool last);

#endif
