/*
 * qualify.c - the host name for the bare names in an address-list header
 * field (`To: root, Alice <alice>` becomes `To: root@HOST, Alice
 * <alice@HOST>`), as RFC 6409 §8.6 lets a submission agent do for mail
 * of its own users: a bare name means a user of this machine, and left
 * bare, every reply would go to a name of the recipient's machine.
 *
 * Pure: no I/O, no allocation. Must not: touch display names, quoted
 * strings, comments, group names or addresses that have a domain, or
 * write past out's size (then it says so and out is not to be used).
 *
 * Follows: RFC 5322 §3.4 (address lists: mailboxes, angle addresses,
 * groups), §3.2.2 (comments), §3.2.4 (quoted strings).
 */
#include <stdbool.h>
#include <string.h>

#include "local/local.h"

/* The mailbox being read: what decides whether it is a bare name. */
struct mailbox {
	bool angle_seen;	/* an angle address: only its inside counts */
	bool at_seen;		/* outside angle brackets */
	unsigned words;		/* words and quoted strings outside comments */
	bool in_word;
	bool word_atom;		/* the last word is atext and dots only */
	size_t word_end;	/* input index just after the last word */
};

struct qualify {
	const char *host;
	char *out;
	size_t size, n;
	bool overflow;
	int qualified;
};

static void put(struct qualify *q, const char *p, size_t len)
{
	if (q->n + len >= q->size) {
		q->overflow = true;
		return;
	}
	memcpy(q->out + q->n, p, len);
	q->n += len;
}

static void put_host(struct qualify *q)
{
	put(q, "@", 1);
	put(q, q->host, strlen(q->host));
	q->qualified++;
}

/* is_atext - RFC 5322 atext, and '.' (a dot-atom's dots). */
static bool is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

/*
 * mailbox_end - the mailbox that ends at input index i (a ',' or ';', or
 * the end): a bare name gets the host name just after its word. Bytes
 * of the value up to i that are still to be copied start at *from.
 */
static void mailbox_end(struct qualify *q, const char *value, size_t *from, struct mailbox *m)
{
	if (!m->angle_seen && !m->at_seen && m->words == 1 && m->word_atom) {
		put(q, value + *from, m->word_end - *from);
		put_host(q);
		*from = m->word_end;
	}
	*m = (struct mailbox){ 0 };
}

/* angle - the angle address starting at value[i] == '<': its end index
 * (at '>', or len), with the host name put before '>' when it has no
 * '@' and no route. */
static size_t angle(struct qualify *q, const char *value, size_t len, size_t i, size_t *from)
{
	size_t start = i + 1, j;
	bool at = false, quoted = false;

	for (j = start; j < len && (quoted || value[j] != '>'); j++) {
		if (value[j] == '\\' && j + 1 < len)
			j++;
		else if (value[j] == '"')
			quoted = !quoted;
		else if (!quoted && value[j] == '@')
			at = true;
	}
	if (j < len && j > start && !at && value[start] != ':') {
		put(q, value + *from, j - *from);
		put_host(q);
		*from = j;
	}
	return j;
}

/* skip_comment - past the comment at value[i] == '(' (nested, escapes). */
static size_t skip_comment(const char *value, size_t len, size_t i)
{
	unsigned depth = 0;

	for (; i < len; i++) {
		if (value[i] == '\\' && i + 1 < len)
			i++;
		else if (value[i] == '(')
			depth++;
		else if (value[i] == ')' && --depth == 0)
			return i;
	}
	return len;
}

/* skip_quoted - past the quoted string at value[i] == '"'. */
static size_t skip_quoted(const char *value, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (value[i] == '\\' && i + 1 < len)
			i++;
		else if (value[i] == '"')
			return i;
	}
	return len;
}

/* local_qualify_room - see local.h. */
size_t local_qualify_room(size_t len, const char *hostname)
{
	return len + (len / 2 + 1) * (strlen(hostname) + 1) + 1;
}

/* local_qualify_addresses - see local.h. */
int local_qualify_addresses(const char *value, size_t len, const char *hostname, char *out,
			    size_t size, size_t *outlen)
{
	struct qualify q = { .host = hostname, .out = out, .size = size };
	struct mailbox m = { 0 };
	size_t from = 0;

	for (size_t i = 0; i < len; i++) {
		char c = value[i];

		if (c == '(') {
			i = skip_comment(value, len, i);
			m.in_word = false;
		} else if (c == '"') {
			i = skip_quoted(value, len, i);
			m.words++;
			m.in_word = false;
			m.word_atom = false;
		} else if (c == '<') {
			m.angle_seen = true;
			i = angle(&q, value, len, i, &from);
			m.in_word = false;
		} else if (c == ',' || c == ';') {
			mailbox_end(&q, value, &from, &m);
		} else if (c == ':') {
			m = (struct mailbox){ 0 };	/* a group's name: not a mailbox */
		} else if (c == '@') {
			m.at_seen = true;
			m.in_word = false;
		} else if (is_atext(c)) {
			if (!m.in_word) {
				m.words++;
				m.word_atom = true;
			}
			m.in_word = true;
			m.word_end = i + 1;
		} else {
			m.in_word = false;	/* white space, folds */
		}
	}
	mailbox_end(&q, value, &from, &m);
	put(&q, value + from, len - from);
	if (q.overflow)
		return -1;
	out[q.n] = '\0';
	*outlen = q.n;
	return q.qualified;
}
