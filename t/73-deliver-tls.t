# 73-deliver-tls.t - STARTTLS to the peer. The peer is a second mtad
# (hostname peer.tls.test, a STARTTLS listener, a self-signed certificate
# for mx.campus.test, local_domains = tls.test) which passes what it gets
# on to a sink (t/lib/Sink.pm); the first Received: header there is the
# peer's and says how the message came to it:
#   smtp_tls = may (the default), the peer offers STARTTLS  -> with ESMTPS
#   smtp_tls = none                                           -> with ESMTP
#   smtp_tls = may, route ... tls=none                        -> with ESMTP
#   route ... tls=verify, the system's CAs (the certificate is
#     self-signed): never sent in the clear, deferred
#   route tls.test [mx.campus.test]:PORT tls=verify with smtp_tls_ca_file
#     = the peer's certificate, mx.campus.test -> 127.0.0.1 in fake-dns:
#     verified, with ESMTPS
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use FakeDNS;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

my $sink = Sink->new();
my $ps = $sink->port;
my $peer = MtadTest->new(hostname => 'peer.tls.test', listeners => ['starttls'], sasl_mechanisms => 'none',
			 local_domains => 'tls.test', retry_min => 1, retry_max => 2,
			 extra => "route = tls.test [127.0.0.1]:$ps\n");
my $pp = $peer->port;
my $dns = FakeDNS->new(records => ['A mx.campus.test 127.0.0.1']);

# sender(NAME, %config) - an mtad that routes tls.test to the peer.
sub sender {
	my ($route, %conf) = @_;
	return MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
			     extra => "route = tls.test $route\n", %conf);
}

sub submit {
	my ($mt, $to, $subject) = @_;
	my $smtp = $mt->smtp;
	my $r = $mt->send_message($smtp, 'a@sender.test', [$to],
		"Subject: $subject\nFrom: <a\@sender.test>\n\nhello over $subject\n");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject" or return 'NONE';
	return ($r =~ $QUEUED)[0];
}

# at_peer(SUBJECT, SECS) - the first Received: header (unfolded) of the
# message with that subject that the peer passed on to the sink (waits up
# to SECS, default 30), or undef.
sub at_peer {
	my ($subject, $secs) = @_;
	return MtadTest::wait_for($secs // 30, sub {
		for my $m ($sink->messages) {
			my $d = $m->{data} =~ s/\r\n/\n/gr;
			next unless $d =~ /^Subject: \Q$subject\E$/m;
			my ($r) = $d =~ /\A(Received:[^\n]*(?:\n[ \t][^\n]*)*)/;
			return ($r // 'no Received: header first') =~ s/\n[ \t]+/ /gr;
		}
		return undef;
	});
}

# case(SENDER, SUBJECT, WITH) - a message to u@tls.test arrives at the
# peer, its Received: says "with WITH", and it leaves the sender's queue.
sub case {
	my ($s, $subject, $with) = @_;
	my $off = length $s->log_text;
	my $qid = submit($s, 'u@tls.test', $subject);
	my $log = $s->delivery_log($qid, 'u@tls.test', 'sent', $off);
	ok $log, "$subject: status=sent" or diag substr($s->log_text, $off);
	my $rcvd = at_peer($subject) // '';
	ok length $rcvd, "$subject: the peer has the message (and passed it on)";
	like $rcvd, qr/\bfrom mx\.campus\.test \([^()]*\[127\.0\.0\.1\]\) .*\bby peer\.tls\.test\b.* with \Q$with\E id /,
		"$subject: the peer's Received: from mx.campus.test ... with $with" or diag $rcvd;
	if ($with eq 'ESMTP') {
		unlike $rcvd, qr/\busing TLS/, "$subject: ... and no TLS in it";
	} else {
		like $rcvd, qr/\(using TLSv1\.[23] with cipher \S+/, "$subject: ... and it names the TLS version and cipher"
			or diag $rcvd;
	}
	ok MtadTest::wait_for(30, sub { $s->queue_count == 0 }), "$subject: the sender's queue empties";
	return $rcvd;
}

my $may = sender("[127.0.0.1]:$pp");
case($may, 'smtp_tls may', 'ESMTPS');

my $none = sender("[127.0.0.1]:$pp", smtp_tls => 'none');
case($none, 'smtp_tls none', 'ESMTP');

my $rnone = sender("[127.0.0.1]:$pp tls=none");
case($rnone, 'route tls=none', 'ESMTP');

# verify against the system's CAs: the self-signed certificate fails
my $bad = sender("[127.0.0.1]:$pp tls=verify");
my $off = length $bad->log_text;
my $qid = submit($bad, 'u@tls.test', 'unverifiable');
my $log = $bad->delivery_log($qid, 'u@tls.test', 'deferred|bounced|sent', $off);
is $log && $log->{status}, 'deferred', 'tls=verify, an untrusted certificate: status=deferred'
	or diag $log ? $log->{line} : substr($bad->log_text, $off);
like $log && $log->{dsn}, qr/\A4\./, '... with a 4.x.x code';
ok !at_peer('unverifiable', 3), '... and the peer got nothing';
is $bad->queue_count, 1, '... the message stays in the queue';

# verify with the peer's certificate as the CA, by the name in it
my $good = sender("[mx.campus.test]:$pp tls=verify", smtp_tls_ca_file => $peer->cert_path,
		  dns_servers => $dns->servers, dns_timeout => 3);
case($good, 'tls=verify', 'ESMTPS');

$_->stop for $may, $none, $rnone, $bad, $good, $peer, $sink;
$dns->stop;
done_testing;
