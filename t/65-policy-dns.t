# 65-policy-dns.t - the rules that need DNS, against t/lib/fake-dns on
# loopback (never the system's resolver):
#   unresolvable (strict): a HELO name without A/AAAA -> 550; a DNS
#     failure (SERVFAIL, no answer) -> 450, try again later;
#   no-rdns (off unless helo_rule.no-rdns = on): a client address without
#     a forward-confirmed PTR -> 450; with one the client is accepted and
#     its name shows in the log and in Received:.
# The log line of a rejection names the client's reverse name. The
# clients are 127.0.0.1 .. 127.0.0.4, each with its own DNS story.
# dns_timeout = 3: a loaded machine's fake-dns still answers in time,
# and the TIMEOUT name costs a few seconds, not minutes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use FakeDNS;

my $NORESOLVE = '550 5.7.1 Invalid HELO. HELO/EHLO name does not resolve.';
my $DNSFAIL = '450 4.7.1 Invalid HELO. HELO/EHLO name cannot be checked now, try again later.';
my $NORDNS = '450 4.7.1 Client host rejected: cannot find your reverse hostname';

my $dns = FakeDNS->new(records => [
	# HELO names
	'A        good.example              192.0.2.1',
	'AAAA     v6only.example            2001:db8::1',
	'MX       mxonly.example            10 mx.campus.test',
	'SERVFAIL broken.example',
	'TIMEOUT  slow.example',
	# 127.0.0.1: a PTR that forward-confirms
	'PTR      1.0.0.127.in-addr.arpa    client.example',
	'A        client.example            127.0.0.1',
	# 127.0.0.2: no PTR at all (NXDOMAIN)
	# 127.0.0.3: a PTR whose name points elsewhere
	'PTR      3.0.0.127.in-addr.arpa    liar.example',
	'A        liar.example              192.0.2.99',
	# 127.0.0.4: a PTR to a name without addresses
	'PTR      4.0.0.127.in-addr.arpa    dangling.example',
]);

# helo(M, SOCK, NAME) - EHLO NAME must be accepted (250).
sub helo {
	my ($m, $s, $name) = @_;
	my $r = $m->send_recv($s, "EHLO $name\r\n") // '';
	like $r, qr/(?:\A|\n)250 HELP\r\n\z/, "EHLO $name -> 250";
}

# try(M, FROM_ADDR, NAME, REPLY) - a session from FROM_ADDR with EHLO
# NAME; MAIL and RCPT get REPLY, or 250s (and a queued message, whose
# id is returned) when REPLY is 'ok'.
sub try {
	my ($m, $from, $name, $reply) = @_;
	note "from $from, EHLO $name -> $reply";
	my $s = $m->raw(local => $from);
	helo($m, $s, $name);
	if ($reply ne 'ok') {
		$m->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< $reply
	> RCPT TO:<u\@campus.test>
	< $reply
	> DATA
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
END
		return;
	}
	my @r = $m->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< 250 2.1.0 *
	> RCPT TO:<u\@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: from $from, EHLO $name
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
	my ($qid) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
	return $qid // 'NONE';
}

# log_is(LINE, WANT, NAME) - the log line is WANT, maybe followed by more
# "key=value" fields (the spec's lines are examples of the shape).
sub log_is {
	my ($line, $want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$line = ($line // '') =~ s/^.*?NOQUEUE:/NOQUEUE:/r;
	like $line, qr/\A\Q$want\E(?: [\w-]+=\S*)*\z/, $name;
}

my ($s, $qid);

# ---- unresolvable: strict ----
# Accepted mail must stay queued for mtaq show (Received:): campus.test
# goes to a loopback port where nothing listens, so delivery only defers
# (by MX the fake DNS would bounce it, and the bounce deletes it at once).
my $KEEP = "route = campus.test [127.0.0.1]:9\n";
my $strict = MtadTest->new(helo_policy => 'strict', local_domains => 'campus.test',
			   dns_servers => $dns->servers, dns_timeout => 3, extra => $KEEP);
my $off = length $strict->log_text;
try($strict, '127.0.0.1', 'good.example', 'ok');
try($strict, '127.0.0.1', 'v6only.example', 'ok');
try($strict, '127.0.0.1', 'nx.example', $NORESOLVE);
try($strict, '127.0.0.1', 'mxonly.example', $NORESOLVE);
try($strict, '127.0.0.1', 'broken.example', $DNSFAIL);
try($strict, '127.0.0.1', 'slow.example', $DNSFAIL);
# the other strict rules come first, and need no DNS
try($strict, '127.0.0.1', 'benderclmsuedu',
    '550 5.7.1 Invalid HELO. HELO/EHLO needs a fully qualified host name.');
# no-rdns is off by default: a client without a PTR is fine
try($strict, '127.0.0.2', 'good.example', 'ok');

# The rejection's log line names the client by its reverse name.
my $port = $strict->port;
my $line = $strict->wait_log(qr/NOQUEUE: reject: MAIL from .*helo=<nx\.example>/, $off);
log_is $line,
	"NOQUEUE: reject: MAIL from client.example[127.0.0.1]: $NORESOLVE; from=<a\@b.example> proto=ESMTP helo=<nx.example> rule=unresolvable listener=127.0.0.1:$port",
	'log: the unresolvable rejection names client.example[127.0.0.1]';
# Every refusal of 127.0.0.1 (MAIL and RCPT, 5 sessions) names it so: the
# name must not depend on whether the PTR answer came before the MAIL.
$strict->wait_log(qr/NOQUEUE: reject: MAIL from .*helo=<benderclmsuedu>/, $off);
my @from1 = grep { /NOQUEUE: reject: \w+ from \S*\[127\.0\.0\.1\]/ } split /\n/, substr($strict->log_text, $off);
is scalar(@from1), 10, 'log: 10 refusals of 127.0.0.1 (5 sessions, MAIL and RCPT)';
is_deeply [grep { !/ from client\.example\[127\.0\.0\.1\]: / } @from1], [],
	'... each naming client.example[127.0.0.1]';
$line = $strict->wait_log(qr/NOQUEUE: reject: MAIL from .*helo=<broken\.example>/, $off);
like $line // '', qr/: \Q$DNSFAIL\E; from=.* rule=unresolvable\b/, 'log: the DNS failure, rule=unresolvable';

my @q = $dns->queries;
ok((grep { /^(?:udp|tcp) nx\.example (?:A|AAAA)$/ } @q), 'mtad asked the fake DNS server for nx.example')
	or diag join("\n", @q);
ok((grep { /^(?:udp|tcp) 1\.0\.0\.127\.in-addr\.arpa PTR$/ } @q), '... and for the PTR of 127.0.0.1')
	or diag join("\n", @q);

# relaxed does not look HELO names up in order to refuse them
my $relaxed = MtadTest->new(local_domains => 'campus.test', dns_servers => $dns->servers,
			    dns_timeout => 3);
try($relaxed, '127.0.0.1', 'nx.example', 'ok');
try($relaxed, '127.0.0.1', 'broken.example', 'ok');

# ---- no-rdns ----
my $rdns = MtadTest->new(local_domains => 'campus.test', dns_servers => $dns->servers,
			 dns_timeout => 3, 'helo_rule.no-rdns' => 'on', extra => $KEEP);
$off = length $rdns->log_text;
$qid = try($rdns, '127.0.0.1', 'client.example', 'ok');
try($rdns, '127.0.0.2', 'good.example', $NORDNS);
try($rdns, '127.0.0.3', 'good.example', $NORDNS);
try($rdns, '127.0.0.4', 'good.example', $NORDNS);

like $rdns->received_of($qid), qr/\(client\.example \[127\.0\.0\.1\]\)/,
	'Received: names the confirmed reverse name: (client.example [127.0.0.1])'
	or diag $rdns->received_of($qid);
ok defined $rdns->wait_log(qr/\b\Q$qid\E: client=client\.example\[127\.0\.0\.1\]/, $off),
	'log: client=client.example[127.0.0.1]' or diag substr($rdns->log_text, $off);
$port = $rdns->port;
for my $ip ('127.0.0.2', '127.0.0.3', '127.0.0.4') {
	$line = $rdns->wait_log(qr/NOQUEUE: reject: MAIL from \S*\[\Q$ip\E\]/, $off);
	log_is $line,
		"NOQUEUE: reject: MAIL from unknown[$ip]: $NORDNS; from=<a\@b.example> proto=ESMTP helo=<good.example> rule=no-rdns listener=127.0.0.1:$port",
		"log: no-rdns for $ip, the client unknown (no confirmed name)";
}

# ---- the reverse name of accepted mail, no-rdns off ----
# "The client name is the forward-confirmed reverse name when DNS gives
# one": also when no rule needs it, and when the client sends its whole
# transaction at once, right after the greeting.
$off = length $strict->log_text;
$s = $strict->raw;
my @r = $strict->dialog($s, "> EHLO good.example\n> MAIL FROM:<a\@b.example>\n"
	. "> RCPT TO:<u\@campus.test>\n> DATA\n" . MtadTest::ehlo_script('good.example') . <<"END");
	< 250 2.1.0 *
	< 250 2.1.5 *
	< 354 *
	> Subject: at once
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
($qid) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
$qid //= 'NONE';
like $strict->received_of($qid), qr/\(client\.example \[127\.0\.0\.1\]\)/,
	'no-rdns off: Received: still names (client.example [127.0.0.1])'
	or diag $strict->received_of($qid);
ok defined $strict->wait_log(qr/\b\Q$qid\E: client=client\.example\[127\.0\.0\.1\]/, $off),
	'... and the log client=client.example[127.0.0.1]' or diag substr($strict->log_text, $off);

# ---- pipelined: MAIL waits for DNS, the commands behind it keep order ----
$s = $rdns->raw(local => '127.0.0.2');
helo($rdns, $s, 'good.example');
$rdns->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	> RCPT TO:<u1\@campus.test>
	> RCPT TO:<u2\@campus.test>
	> DATA
	> NOOP
	< $NORDNS
	< $NORDNS
	< $NORDNS
	< 503 5.5.1 *
	< 250 2.0.0 *
	> QUIT
	< 221 2.0.0 *
END
$s = $rdns->raw(local => '127.0.0.1');
helo($rdns, $s, 'client.example');
$rdns->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	> RCPT TO:<u1\@campus.test>
	> RCPT TO:<x\@y.example>
	> DATA
	< 250 2.1.0 *
	< 250 2.1.5 *
	< 554 5.7.1 <x\@y.example>: Relay access denied
	< 354 *
	> Subject: pipelined
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
$s = $strict->raw;
helo($strict, $s, 'slow.example');
$strict->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	> RCPT TO:<u1\@campus.test>
	> DATA
	< $DNSFAIL
	< $DNSFAIL
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
END

done_testing;
