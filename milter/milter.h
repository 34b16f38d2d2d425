/*
 * milter.h - the public header of milter/ (floor 0): the Sendmail milter
 * protocol, version 6, as a pure codec. Packets are encoded into and
 * decoded from caller-owned buffers; nothing here does I/O, allocates
 * without a bound or logs. The client that speaks it on a session's
 * event loop is smtp/session_milter.c.
 *
 * A packet on the wire: a 4-byte length in network order (counting the
 * command byte and the data), the command byte, the data.
 */
#ifndef MILTER_MILTER_H
#define MILTER_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MILTER_VERSION 6
/* The largest packet accepted from a milter: libmilter's body chunks are
 * 64 KB (MILTER_CHUNK_SIZE), a header change is bounded by our header
 * limits; anything longer is a broken or hostile milter. */
#define MILTER_PACKET_MAX (65536u + 1024)
#define MILTER_CHUNK_MAX 65535u	/* body bytes per SMFIC_BODY packet */
#define MILTER_NAME_MAX 64
#define MILTER_ADDR_MAX 256
#define MILTER_LINE_MAX 512	/* a `milter =` line's value */
#define MILTER_MAX 8		/* milters configured */

/* Commands, MTA to milter. */
enum {
	SMFIC_ABORT = 'A', SMFIC_BODY = 'B', SMFIC_CONNECT = 'C', SMFIC_MACRO = 'D',
	SMFIC_BODYEOB = 'E', SMFIC_HELO = 'H', SMFIC_QUIT_NC = 'K', SMFIC_HEADER = 'L',
	SMFIC_MAIL = 'M', SMFIC_EOH = 'N', SMFIC_OPTNEG = 'O', SMFIC_QUIT = 'Q',
	SMFIC_RCPT = 'R', SMFIC_DATA = 'T', SMFIC_UNKNOWN = 'U',
};

/* Replies and modifications, milter to MTA. */
enum {
	SMFIR_ADDRCPT = '+', SMFIR_DELRCPT = '-', SMFIR_ADDRCPT_PAR = '2',
	SMFIR_SHUTDOWN = '4', SMFIR_ACCEPT = 'a', SMFIR_REPLBODY = 'b',
	SMFIR_CONTINUE = 'c', SMFIR_DISCARD = 'd', SMFIR_CHGFROM = 'e',
	SMFIR_CONN_FAIL = 'f', SMFIR_ADDHEADER = 'h', SMFIR_INSHEADER = 'i',
	SMFIR_SETSYMLIST = 'l', SMFIR_CHGHEADER = 'm', SMFIR_PROGRESS = 'p',
	SMFIR_QUARANTINE = 'q', SMFIR_REJECT = 'r', SMFIR_SKIP = 's',
	SMFIR_TEMPFAIL = 't', SMFIR_REPLYCODE = 'y',
};

/* Actions a milter may take (SMFIF_*): offered by us, asked for by it. */
#define SMFIF_ADDHDRS 0x01u
#define SMFIF_CHGBODY 0x02u
#define SMFIF_ADDRCPT 0x04u
#define SMFIF_DELRCPT 0x08u
#define SMFIF_CHGHDRS 0x10u
#define SMFIF_QUARANTINE 0x20u
#define SMFIF_CHGFROM 0x40u
#define SMFIF_ADDRCPT_PAR 0x80u
#define SMFIF_SETSYMLIST 0x100u
#define MILTER_ACTIONS_OFFERED 0x1ffu

/* Protocol steps (SMFIP_*): stages skipped (NO*) and replies not sent (NR_*). */
#define SMFIP_NOCONNECT 0x1u
#define SMFIP_NOHELO 0x2u
#define SMFIP_NOMAIL 0x4u
#define SMFIP_NORCPT 0x8u
#define SMFIP_NOBODY 0x10u
#define SMFIP_NOHDRS 0x20u
#define SMFIP_NOEOH 0x40u
#define SMFIP_NR_HDR 0x80u
#define SMFIP_NOUNKNOWN 0x100u
#define SMFIP_NODATA 0x200u
#define SMFIP_SKIP 0x400u
#define SMFIP_RCPT_REJ 0x800u
#define SMFIP_NR_CONN 0x1000u
#define SMFIP_NR_HELO 0x2000u
#define SMFIP_NR_MAIL 0x4000u
#define SMFIP_NR_RCPT 0x8000u
#define SMFIP_NR_DATA 0x10000u
#define SMFIP_NR_UNKN 0x20000u
#define SMFIP_NR_EOH 0x40000u
#define SMFIP_NR_BODY 0x80000u
#define SMFIP_HDR_LEADSPC 0x100000u
/* What we offer: every step and no-reply flag above but RCPT_REJ (we
 * never show a milter a recipient we refused) and HDR_LEADSPC. */
#define MILTER_PROTOCOL_OFFERED 0xff7ffu

/* ---- the `milter = NAME ADDRESS [option=value ...]` line ---- */

enum milter_action { MILTER_TEMPFAIL, MILTER_ACCEPT, MILTER_REJECT };

struct milter_spec {
	char name[MILTER_NAME_MAX];
	bool unix_socket;		/* unix:/path, else inet:127.0.0.1:PORT */
	char path[MILTER_ADDR_MAX];	/* the socket path, or the numeric address */
	int port;
	unsigned connect_timeout;	/* seconds; Postfix's milter_*_timeout defaults */
	unsigned command_timeout;
	unsigned content_timeout;
	enum milter_action default_action;
};

/* milter_spec_parse - one line's value: 0, or -1 with err (no "file:line"). */
int milter_spec_parse(const char *value, struct milter_spec *out, char *err, size_t errlen);
const char *milter_action_name(enum milter_action a);

/* ---- encoding (MTA to milter) ---- */

/* An output buffer: encoders append; overflow is sticky and reported once. */
struct milter_buf {
	unsigned char *data;
	size_t len, cap;
	bool overflow;
};

void milter_buf_init(struct milter_buf *b, void *mem, size_t cap);
/* milter_put_packet - cmd with data (may be NULL when len is 0). */
void milter_put_packet(struct milter_buf *b, char cmd, const void *data, size_t len);
/* milter_put_optneg - SMFIC_OPTNEG: version, actions, protocol steps. */
void milter_put_optneg(struct milter_buf *b, uint32_t version, uint32_t actions,
		       uint32_t protocol);
/* milter_put_strings - cmd with n NUL-terminated strings (NULL is ""). */
void milter_put_strings(struct milter_buf *b, char cmd, const char *const *strs, size_t n);
/* milter_put_connect - SMFIC_CONNECT: name, family ('4', '6', 'L' a Unix socket, 'U' unknown), port, address. */
void milter_put_connect(struct milter_buf *b, const char *name, char family, uint16_t port,
			const char *addr);
/* milter_put_macros - SMFIC_MACRO for stage cmd: n pairs name, value (skipped when value is NULL). */
void milter_put_macros(struct milter_buf *b, char cmd, const char *const *pairs, size_t n);

/* ---- decoding (milter to MTA) ---- */

/*
 * A packet read incrementally: the caller feeds bytes, the decoder says
 * how many it took and whether a packet is complete. The data buffer is
 * the caller's and at least MILTER_PACKET_MAX bytes.
 */
struct milter_decoder {
	unsigned char hdr[4];
	size_t hdrlen;
	uint32_t len;		/* of cmd + data, once hdrlen is 4 */
	unsigned char *data;	/* data[0] is the command */
	size_t got;
	bool error;		/* a length of 0 or over MILTER_PACKET_MAX */
};

void milter_decoder_init(struct milter_decoder *d, void *mem);
/*
 * milter_decode - takes bytes from in; returns how many were used and
 * sets *complete when a packet is whole (cmd in d->data[0], its data in
 * d->data + 1, length d->len - 1). Call milter_decoder_reset before
 * feeding the next packet. On a bad length d->error is set and 0 taken.
 */
size_t milter_decode(struct milter_decoder *d, const void *in, size_t n, bool *complete);
void milter_decoder_reset(struct milter_decoder *d);

/* The OPTNEG reply: what the milter takes of what we offered. */
struct milter_optneg {
	uint32_t version, actions, protocol;
};
/* milter_parse_optneg - data of an SMFIC_OPTNEG reply; -1 when malformed. */
int milter_parse_optneg(const unsigned char *data, size_t len, struct milter_optneg *out);

/* A header modification: SMFIR_ADDHEADER, INSHEADER or CHGHEADER. */
struct milter_header_mod {
	uint32_t index;		/* INSHEADER: position; CHGHEADER: nth field of that name, from 1 */
	const char *name;	/* point into the packet */
	const char *value;
};
int milter_parse_header_mod(char cmd, const unsigned char *data, size_t len,
			    struct milter_header_mod *out);

/*
 * milter_parse_strings - up to max NUL-terminated strings of data into
 * out (pointing into data); returns how many, or -1 when the data does
 * not end with a NUL or holds more than max strings.
 */
int milter_parse_strings(const unsigned char *data, size_t len, const char **out, size_t max);

#define MILTER_REPLY_MAX 2048	/* a reply's text, every line */
#define MILTER_REPLY_LINES 20

/*
 * milter_parse_replycode - SMFIR_REPLYCODE's text "CODE X.Y.Z text", or
 * libmilter's multi-line form (smfi_setmlreply) "CODE-X.Y.Z one\r\n
 * CODE-X.Y.Z two\r\nCODE X.Y.Z last": the code (400..599) and in *text
 * what follows the first line's code and separator (checked: every line
 * starts with the same code, '-' before each line that follows and ' '
 * or nothing on the last, lines split by CRLF only, no other control
 * characters, at most MILTER_REPLY_LINES lines and MILTER_REPLY_MAX
 * octets). The lines after the first stay in *text as "\r\nCODE-...";
 * milter_reply_line walks them. -1 when malformed.
 */
int milter_parse_replycode(const unsigned char *data, size_t len, int *code, const char **text);

/*
 * milter_reply_line - the next line of a checked reply text: *p is
 * where it starts (a line's text, after its code and separator, as
 * milter_parse_replycode's *text), the line's length is returned, and
 * *next is set to the following line's text or NULL at the last.
 */
size_t milter_reply_line(const char *p, const char **next);


#endif
