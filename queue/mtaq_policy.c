/*
 * mtaq_policy.c - `mtaq policy-test`: what mtad's policy would answer a
 * client, without a connection from it (the answer to Exim's -bh and
 * Postfix's XCLIENT): the HELO rules (at EHLO on a helo_reject_at=ehlo
 * listener, else at MAIL), the submission listener's AUTH requirement,
 * sender ownership of a login (sender_login, sender_login_map) and relay
 * control at RCPT, each with its rule and the exact reply.
 *
 * The decisions are policy/'s pure functions, fed the settings that
 * policy_settings_build makes from the live configuration for mtad's
 * sessions too, in the order smtp/verbs.c applies them. The facts that
 * mtad gets from DNS are not looked up here: --rdns gives the client's
 * verified reverse name, and without it, and for the HELO name's A/AAAA,
 * the output says they were not looked up and which rules that leaves
 * undecided.
 *
 * Must not: change the queue or open it, send or resolve anything, or
 * print a given string raw (put_text, json_str).
 *
 * Follows: RFC 5321 §4.1.4 (HELO), §3.6 (relaying); RFC 6409 §4.3
 * (submission needs AUTH); RFC 8259 (--json).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "queue/mtaq_int.h"


/* One stage of the session and what it got. */
struct stage {
	const char *verb;	/* "EHLO", "MAIL", "RCPT" */
	bool reached;		/* an earlier stage did not refuse */
	bool refused;
	const char *rule;	/* policy_rule_name, or another rule's name */
	char reply[700];	/* the exact reply line, or "" when accepted */
};

/* The session to judge, from the command line and the configuration. */
struct test {
	struct mtaq *m;
	struct mtad_config *cfg;
	struct policy_settings set;
	const char *local[POLICY_MAX_DOMAINS], *relay[POLICY_MAX_DOMAINS];
	struct mtad_addr own[POLICY_MAX_ADDRS];
	const struct mtad_listen *listener;	/* NULL: no --listener */
	struct policy_sender_map *senders;
	bool trusted, authenticated;
	struct stage ehlo, mail, rcpt;
};

/* verdict_stage - a policy verdict into a stage; rcpt for RCPT's "<addr>: ". */
static void verdict_stage(struct stage *st, const struct policy_verdict *v, const char *rcpt)
{
	if (v->rule == POLICY_ACCEPT)
		return;
	st->refused = true;
	st->rule = policy_rule_name(v->rule);
	if (rcpt != NULL)
		snprintf(st->reply, sizeof(st->reply), "%d %s <%s>: %s", v->code, v->enhanced,
			 rcpt, v->text);
	else
		snprintf(st->reply, sizeof(st->reply), "%d %s %s", v->code, v->enhanced, v->text);
}

/* client_facts - what the policy is told, as smtp/session_policy.c tells it. */
static struct policy_client client_facts(const struct test *t, bool at_ehlo)
{
	return (struct policy_client){
		.helo = t->m->helo,
		.client_ip = t->m->client,
		.rdns = t->m->rdns != NULL ? POLICY_DNS_FOUND : POLICY_DNS_UNKNOWN,
		.helo_dns = POLICY_DNS_UNKNOWN,
		.authenticated = !at_ehlo && t->authenticated,
		.trusted = t->trusted,
	};
}

/* judge_ehlo - a helo_reject_at=ehlo listener judges the name at EHLO. */
static void judge_ehlo(struct test *t)
{
	struct policy_client c = client_facts(t, true);
	struct policy_verdict v;

	t->ehlo.reached = true;
	if (t->listener == NULL || !t->listener->helo_reject_ehlo || t->m->helo == NULL)
		return;
	v = policy_helo_verdict(&t->set, &c);
	verdict_stage(&t->ehlo, &v, NULL);
}

/* login_shown - the login as mtad's 553 names it: without "@realm" when
 * the realm is ours. */
static void login_shown(const struct test *t, char *out, size_t size)
{
	const char *realm = t->cfg->sasl_realm[0] ? t->cfg->sasl_realm : t->cfg->hostname;
	size_t local = policy_login_local(t->m->auth);

	if (t->m->auth[local] == '@' && strcasecmp(t->m->auth + local + 1, realm) == 0)
		snprintf(out, size, "%.*s", (int)local, t->m->auth);
	else
		snprintf(out, size, "%s", t->m->auth);
}

/* judge_sender - sender_login: may the login send as --from? */
static void judge_sender(struct test *t)
{
	char login[MTAD_USER_MAX + MTAD_HOSTNAME_MAX + 2];

	if (!t->authenticated || t->m->from == NULL || strcmp(t->cfg->sender_login, "off") == 0 ||
	    policy_sender_owned(t->senders, t->m->auth, t->m->from, t->set.local_domains,
				t->set.nlocal_domains))
		return;
	if (strcmp(t->cfg->sender_login, "strict") != 0) {
		t->mail.rule = "sender-login-warn";	/* accepted, with a warning logged */
		return;
	}
	login_shown(t, login, sizeof(login));
	t->mail.refused = true;
	t->mail.rule = "sender-login";
	snprintf(t->mail.reply, sizeof(t->mail.reply),
		 "553 5.7.1 <%s>: sender address not owned by user %s", t->m->from, login);
}

/* judge_mail - MAIL FROM, in smtp/verbs.c's order: submission needs AUTH,
 * the login's sender, then the HELO rules (not for AUTH or trusted). */
static void judge_mail(struct test *t)
{
	struct policy_client c = client_facts(t, false);
	struct policy_verdict v;

	if (t->ehlo.refused)
		return;
	t->mail.reached = true;
	if (t->listener != NULL && t->listener->submission && !t->authenticated) {
		t->mail.refused = true;
		t->mail.rule = "submission-auth";
		snprintf(t->mail.reply, sizeof(t->mail.reply), "530 5.7.0 Authentication required");
		return;
	}
	judge_sender(t);
	if (t->mail.refused || t->authenticated || t->trusted)
		return;
	v = policy_helo_verdict(&t->set, &c);
	verdict_stage(&t->mail, &v, NULL);
}

/* judge_rcpt - relay control for --rcpt. */
static void judge_rcpt(struct test *t)
{
	struct policy_verdict v;

	if (t->mail.refused || t->ehlo.refused || t->m->rcpt == NULL)
		return;
	t->rcpt.reached = true;
	v = policy_relay_verdict(&t->set, t->m->rcpt, false, t->authenticated, t->trusted);
	verdict_stage(&t->rcpt, &v, t->m->rcpt);
}

/* ---- set-up ---- */

/* load_senders - the sender_login_map as mtad parses it. 0 or -1 (said why). */
static int load_senders(struct test *t)
{
	char err[512];
	size_t len = 0;
	char *text;

	if (t->cfg->sender_login_map[0] == '\0')
		return 0;
	if (mtad_file_slurp("sender_login_map", t->cfg->sender_login_map, &text, &len, err,
			    sizeof(err)) != 0) {
		fprintf(stderr, "mtaq: %s\n", err);
		return -1;
	}
	t->senders = policy_sender_map_parse(text, len, t->cfg->sender_login_map, err, sizeof(err));
	free(text);
	if (t->senders == NULL) {
		fprintf(stderr, "mtaq: %s\n", err);
		return -1;
	}
	return 0;
}

/* find_listener - --listener ADDRESS:PORT as mtad.conf's listen line says it. */
static int find_listener(struct test *t)
{
	char name[128];

	if (t->m->listener == NULL)
		return 0;
	for (size_t i = 0; i < t->cfg->nlisten; i++) {
		const struct mtad_listen *l = &t->cfg->listen[i];

		snprintf(name, sizeof(name), strchr(l->address, ':') ? "[%s]:%d" : "%s:%d",
			 l->address, l->port);
		if (strcmp(name, t->m->listener) == 0) {
			t->listener = l;
			return 0;
		}
	}
	fprintf(stderr, "mtaq: --listener %s: no such listen line in %s\n", t->m->listener,
		t->m->config);
	return -1;
}

/* test_usage - the options policy-test needs. 0 or MTAQ_EXIT_USAGE. */
static int test_usage(const struct mtaq *m)
{
	struct mtad_addr a;

	if (m->client == NULL || mtad_addr_parse(m->client, strlen(m->client), false, &a) != 0) {
		fprintf(stderr, "mtaq: policy-test needs --client ADDRESS (an IPv4 or IPv6 "
			"address)\n");
		return MTAQ_EXIT_USAGE;
	}
	if (m->from != NULL && m->rcpt == NULL) {
		fprintf(stderr, "mtaq: policy-test: --from goes with --rcpt\n");
		return MTAQ_EXIT_USAGE;
	}
	if (m->login != NULL || m->domain != NULL) {
		fprintf(stderr, "mtaq: policy-test takes no --login or --domain\n");
		return MTAQ_EXIT_USAGE;
	}
	return 0;
}

/* test_setup - the configuration, the policy's settings, the facts. 0 or -1. */
static int test_setup(struct test *t)
{
	struct queue_options opt;
	size_t nown;

	if ((t->cfg = calloc(1, sizeof(*t->cfg))) == NULL) {
		fprintf(stderr, "mtaq: out of memory\n");
		return -1;
	}
	if (load_options(t->m, t->cfg, &opt) < 0 || find_listener(t) < 0 || load_senders(t) < 0)
		return -1;
	/* This machine's addresses: the own-address rule reads them, as in mtad. */
	nown = mtad_own_addresses(t->cfg, t->own, POLICY_MAX_ADDRS);
	policy_settings_build(&t->set, t->cfg, t->local, t->relay, t->own, nown);
	t->trusted = mtad_in_networks(t->set.trusted, t->set.ntrusted, t->m->client);
	t->authenticated = t->m->auth != NULL && t->m->auth[0] != '\0';
	t->ehlo.verb = "EHLO";
	t->mail.verb = "MAIL";
	t->rcpt.verb = "RCPT";
	return 0;
}

/* ---- output ---- */

/* dns_notes - the rules a missing DNS fact leaves undecided (they would
 * have been checked by mtad, with the answer it gets). */
static void dns_notes(const struct test *t, const char **rdns, const char **helo)
{
	*rdns = t->m->rdns == NULL && policy_rule_enabled(&t->set, POLICY_NO_RDNS) ?
		"no-rdns not checked: the client's reverse name was not looked up (--rdns)" : NULL;
	*helo = t->m->helo != NULL && policy_rule_enabled(&t->set, POLICY_UNRESOLVABLE) ?
		"unresolvable not checked: the HELO name's A/AAAA records were not looked up" : NULL;
}

/* final - the stage that decided: the first refusal, else the last reached. */
static const struct stage *final(const struct test *t)
{
	const struct stage *order[] = { &t->ehlo, &t->mail, &t->rcpt };
	const struct stage *last = &t->ehlo;

	for (size_t i = 0; i < 3; i++) {
		if (order[i]->refused)
			return order[i];
		if (order[i]->reached)
			last = order[i];
	}
	return last;
}

/* print_stage_text - one "VERB: accept" or "VERB: reject (rule): reply" line. */
static void print_stage_text(const struct stage *st)
{
	if (!st->reached)
		return;
	printf("%s: %s", st->verb, st->refused ? "reject" : "accept");
	if (st->rule != NULL) {
		fputs(" (rule ", stdout);
		put_text(stdout, st->rule);
		putchar(')');
	}
	if (st->refused) {
		fputs(": ", stdout);
		put_text(stdout, st->reply);
	}
	putchar('\n');
}

/* print_text - the verdict for a person. */
static void print_text(const struct test *t)
{
	const char *rdns_note, *helo_note;
	const struct stage *f = final(t);

	dns_notes(t, &rdns_note, &helo_note);
	fputs("client: ", stdout);
	put_text(stdout, t->m->client);
	fputs(t->m->rdns ? " name " : " name not looked up", stdout);
	if (t->m->rdns)
		put_text(stdout, t->m->rdns);
	printf("%s%s\n", t->trusted ? ", trusted (relay_networks)" : "",
	       t->authenticated ? ", authenticated" : "");
	fputs("helo: ", stdout);
	put_text(stdout, t->m->helo ? t->m->helo : "(none)");
	printf(" (helo_policy = %s)\n", policy_mode_name(t->set.mode));
	print_stage_text(&t->ehlo);
	print_stage_text(&t->mail);
	print_stage_text(&t->rcpt);
	if (rdns_note)
		printf("note: %s\n", rdns_note);
	if (helo_note)
		printf("note: %s\n", helo_note);
	printf("verdict: %s at %s\n", f->refused ? "reject" : "accept", f->verb);
}

/* json_stage - one stage as a JSON object (null when not reached). */
static void json_stage(const struct stage *st)
{
	if (!st->reached) {
		fputs("null", stdout);
		return;
	}
	printf("{\"verdict\":\"%s\",\"rule\":", st->refused ? "reject" : "accept");
	json_str(stdout, st->rule);
	fputs(",\"reply\":", stdout);
	json_str(stdout, st->refused ? st->reply : NULL);
	putchar('}');
}

/* print_json - the verdict as one object. */
static void print_json(const struct test *t)
{
	const char *rdns_note, *helo_note;
	const struct stage *f = final(t);

	dns_notes(t, &rdns_note, &helo_note);
	fputs("{\"client\":", stdout);
	json_str(stdout, t->m->client);
	fputs(",\"rdns\":", stdout);
	json_str(stdout, t->m->rdns);
	fputs(",\"helo\":", stdout);
	json_str(stdout, t->m->helo);
	printf(",\"helo_policy\":\"%s\",\"trusted\":%s,\"authenticated\":%s,\"ehlo\":",
	       policy_mode_name(t->set.mode), t->trusted ? "true" : "false",
	       t->authenticated ? "true" : "false");
	json_stage(&t->ehlo);
	fputs(",\"mail\":", stdout);
	json_stage(&t->mail);
	fputs(",\"rcpt\":", stdout);
	json_stage(&t->rcpt);
	printf(",\"verdict\":\"%s\",\"stage\":\"%s\",\"rule\":", f->refused ? "reject" : "accept",
	       f->verb);
	json_str(stdout, f->refused ? f->rule : NULL);
	fputs(",\"reply\":", stdout);
	json_str(stdout, f->refused ? f->reply : NULL);
	fputs(",\"not_checked\":[", stdout);
	if (rdns_note)
		json_str(stdout, "no-rdns");
	if (helo_note) {
		fputs(rdns_note ? "," : "", stdout);
		json_str(stdout, "unresolvable");
	}
	puts("]}");
}

/* cmd_policy_test - `mtaq policy-test --client IP [--rdns NAME] [--helo NAME]
 * [--listener ADDR:PORT] [--auth USER] [--from A] [--rcpt B]`. */
int cmd_policy_test(struct mtaq *m)
{
	struct test t = { .m = m };
	int rc;

	if ((rc = test_usage(m)) != 0)
		return rc;
	if (test_setup(&t) < 0) {
		policy_sender_map_free(t.senders);
		free(t.cfg);
		return 1;
	}
	judge_ehlo(&t);
	judge_mail(&t);
	judge_rcpt(&t);
	if (m->json)
		print_json(&t);
	else
		print_text(&t);
	policy_sender_map_free(t.senders);
	free(t.cfg);
	return 0;
}
