# 62-relay.t - relay control. Mail for local_domains, relay_domains, our
# hostname and bare postmaster is taken from anyone; any other domain
# only from authenticated sessions or relay_networks, otherwise
# "554 5.7.1 <addr>: Relay access denied". For the others the old
# open-relay tricks that smuggle a foreign address behind a local domain
# are refused too: % and ! in the local part, a quoted local part holding
# @, source routes, [address] domain literals. An open-relay checker's
# session (many tricks in one connection) gets nothing through.
# Relay refusals count towards max_policy_rejections.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $ALICE = MtadTest::auth_plain('alice', 'secret');

sub denied { "554 5.7.1 <$_[0]>: Relay access denied" }

# helo(M, SOCK, NAME) - EHLO NAME must be accepted.
sub helo {
	my ($m, $s, $name) = @_;
	my $r = $m->send_recv($s, "EHLO $name\r\n") // '';
	like $r, qr/(?:\A|\n)250 [^\n]*\r\n\z/, "EHLO $name -> 250";
}

# listener 0: plain port 25 style, 1: starttls with AUTH.
# 127.0.0.2 is a trusted network; 127.0.0.1 is not.
my $m = MtadTest->new(listeners => ['', 'starttls'], users => {alice => 'secret'},
		      local_domains => 'campus.test, other.test',
		      relay_domains => 'partner.example',
		      relay_networks => '127.0.0.2/32 10.0.0.0/8');

# Recipients taken from anyone (the RCPT reply 250 2.1.5).
my @LOCAL = ('u@campus.test', 'U@CAMPUS.TEST', 'u@other.test', 'u@mx.campus.test',
	     'u@partner.example', 'postmaster@campus.test', 'postmaster', 'Postmaster',
	     '"john smith"@campus.test', 'first.last+tag@campus.test');

# Recipients refused to an unauthenticated, untrusted client. The 554
# names the path as written (for a source route: the whole path or the
# mailbox after the route, which mtad drops).
my @FOREIGN = (
	'x@y.example',
	'u@sub.other.example',
	'u@evilcampus.test',
	'u@campus.test.evil.example',
	'u@partner.example.evil.example',
	'user%other.example@campus.test',
	'a!b@campus.test',
	'other.example!user@campus.test',
	'"x@evil.example"@campus.test',
	'@a.example,@b.example:user@campus.test',
	'@campus.test:user@campus.test',
	'user@[127.0.0.1]',
	'user@[198.51.100.7]',
);

# expect(PATH) - the dialog line for the 554 to RCPT TO:<PATH>.
sub expect_denied {
	my ($path) = @_;
	if ($path =~ /^(@[^:]*):(.*)\z/) {
		my ($route, $box) = (quotemeta $1, quotemeta $2);
		return "<~ 554 5\\.7\\.1 <(?:$route:)?$box>: Relay access denied";
	}
	return '< ' . denied($path);
}

# ---- unauthenticated, untrusted: local recipients yes, others no ----
my $off = length $m->log_text;
my $s = $m->raw;
helo($m, $s, 'client.example');
my $script = "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n";
$script .= "> RCPT TO:<$_>\n< 250 2.1.5 *\n" for @LOCAL;
# after the first nine refusals the session is closed (max 10): a new one
my @first = @FOREIGN[0 .. 5];
my @second = @FOREIGN[6 .. $#FOREIGN];
$script .= "> RCPT TO:<$_>\n" . expect_denied($_) . "\n" for @first;
$script .= <<'END';
	# a refused recipient leaves the transaction as it was
	> DATA
	< 354 *
	> Subject: local recipients only
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
my @r = $m->dialog($s, $script);
my ($qid) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
my ($rc, $show) = $m->mtaq('show', $qid // 'NONE');
unlike $show, qr/y\.example|evil|sub\.other/, 'the queued message has no refused recipient'
	or diag $show;
like $show, qr/partner\.example/, '... and has the relay_domains one' or diag $show;

$s = $m->raw;
helo($m, $s, 'client.example');
$script = "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n";
$script .= "> RCPT TO:<$_>\n" . expect_denied($_) . "\n" for @second;
$script .= "> QUIT\n< 221 2.0.0 *\n";
$m->dialog($s, $script);

# the log line of a relay refusal
my $port = $m->port;
my $line = $m->wait_log(qr/NOQUEUE: reject: RCPT from .*x\@y\.example/, $off);
is +($line // '') =~ s/^.*?NOQUEUE:/NOQUEUE:/r =~ s/ listener=.*//r,
	'NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <x@y.example>: Relay access denied; from=<a@b.example> to=<x@y.example> proto=ESMTP helo=<client.example> rule=relay',
	'log: the relay refusal in Postfix\'s shape, with rule=relay';
like $line // '', qr/ mtad\/smtpd\[\d+\]: NOQUEUE: .* listener=127\.0\.0\.1:$port\z/, '... from mtad/smtpd, and the listener';

# ---- relay refusals count towards max_policy_rejections (10) ----
$s = $m->raw;
helo($m, $s, 'client.example');
$script = "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n";
$script .= "> RCPT TO:<r$_\@y.example>\n< " . denied("r$_\@y.example") . "\n" for 1 .. 9;
$script .= "> RCPT TO:<u\@campus.test>\n< 250 2.1.5 *\n";
$script .= "> RCPT TO:<r10\@y.example>\n< " . denied('r10@y.example') . "\n";
$script .= "< 421 4.7.0 mx.campus.test Error: too many rejected commands\n< [closed]\n";
$m->dialog($s, $script);

# ---- authenticated: anywhere, tricks included ----
my @ANYWHERE = ('x@y.example', 'user%other.example@campus.test', 'a!b@campus.test',
		'"x@evil.example"@campus.test', 'user@[198.51.100.7]', @LOCAL);
$s = $m->raw(port => $m->port(1));
helo($m, $s, 'client.example');
$m->starttls($s);
helo($m, $s, 'client.example');
$m->dialog($s, <<"END");
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	# TLS alone is not enough
	> RCPT TO:<x\@y.example>
	< ${\ denied('x@y.example')}
	> RSET
	< 250 2.0.0 *
	> $ALICE
	< 235 2.7.0 Authentication successful
END
$script = "> MAIL FROM:<alice\@campus.test>\n< 250 2.1.0 *\n";
$script .= "> RCPT TO:<$_>\n< 250 2.1.5 *\n" for @ANYWHERE;
$script .= <<'END';
	> DATA
	< 354 *
	> Subject: relayed for alice
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
@r = $m->dialog($s, $script);
($qid) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
($rc, $show) = $m->mtaq('show', $qid // 'NONE');
like $show, qr/x\@y\.example/, 'authenticated: the relayed recipient is queued' or diag $show;

# ---- trusted (relay_networks): anywhere, without AUTH ----
$s = $m->raw(local => '127.0.0.2');
helo($m, $s, 'client.example');
$script = "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n";
$script .= "> RCPT TO:<$_>\n< 250 2.1.5 *\n" for @ANYWHERE;
$script .= <<'END';
	> DATA
	< 354 *
	> Subject: relayed for a trusted network
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
@r = $m->dialog($s, $script);
($qid) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
($rc, $show) = $m->mtaq('show', $qid // 'NONE');
like $show, qr/x\@y\.example/, 'trusted: the relayed recipient is queued' or diag $show;

# ---- an open-relay checker: every trick in one session ----
my $c = MtadTest->new(local_domains => 'campus.test', max_policy_rejections => 100,
		      max_errors => 100);
my @TRICKS = (
	'relaytest@relay-check.example',
	'relaytest@RELAY-CHECK.EXAMPLE',
	'relaytest%relay-check.example@campus.test',
	'relaytest%relay-check.example@mx.campus.test',
	'relaytest%relay-check.example@[127.0.0.1]',
	'relaytest%relay-check.example%campus.test@campus.test',
	'"relaytest@relay-check.example"@campus.test',
	'"relaytest@relay-check.example"@mx.campus.test',
	'"relaytest@relay-check.example"@[127.0.0.1]',
	'"relaytest%relay-check.example"@campus.test',
	'relay-check.example!relaytest@campus.test',
	'relay-check.example!relaytest@[127.0.0.1]',
	'@campus.test:relaytest@relay-check.example',
	'@mx.campus.test:relaytest@relay-check.example',
	'@[127.0.0.1]:relaytest@relay-check.example',
	'@a.example,@b.example:relaytest@campus.test',
	'relaytest@[127.0.0.1]',
	'relaytest@[IPv6:::1]',
	'relaytest@[198.51.100.7]',
	'relaytest@campus.test.relay-check.example',
	'relaytest@mx.campus.test.relay-check.example',
	'relaytest@xcampus.test',
);
$s = $c->raw;
helo($c, $s, 'relay-check.example');
$script = '';
for my $from ('<>', '<spamtest@relay-check.example>', '<spamtest@campus.test>',
	      '<postmaster@campus.test>') {
	$script .= "> MAIL FROM:$from\n< 250 2.1.0 *\n";
	$script .= "> RCPT TO:<$_>\n" . expect_denied($_) . "\n" for @TRICKS;
	$script .= "> DATA\n< 503 5.5.1 *\n> RSET\n< 250 2.0.0 *\n";
}
$script .= <<'END';
	# the checker's control message to a local user goes through
	> MAIL FROM:<spamtest@relay-check.example>
	< 250 2.1.0 *
	> RCPT TO:<relaytest@relay-check.example>
	< 554 5.7.1 <relaytest@relay-check.example>: Relay access denied
	> RCPT TO:<postmaster@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: relay test
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
$c->dialog($s, $script);
is $c->queue_count, 1, 'the relay checker: one message queued';
my ($cq) = $c->queue_ids;
($rc, $show) = $c->mtaq('show', $cq // 'NONE');
unlike $show, qr/relaytest/, '... and no relaytest recipient in it' or diag $show;

done_testing;
