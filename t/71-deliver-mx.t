# 71-deliver-mx.t - delivery by MX lookup, against t/lib/fake-dns and
# test SMTP servers on loopback. MX targets are names, and one port is
# used for all of a domain's MX hosts, so every domain here has a route
# "DOMAIN DOMAIN:PORT" (MX lookup of DOMAIN, that port) and its MX hosts
# are told apart by address (127.0.0.1, 127.0.0.2):
#   mx.test    MX 10 mx1 (127.0.0.2, nobody listens), MX 20 mx2 (127.0.0.1,
#              the sink): connection refused by mx1 -> delivered via mx2
#   pref.test  MX 20 hi (127.0.0.2, a sink), MX 10 lo (127.0.0.1, another
#              sink), listed high first: the lowest preference is tried first
#   amx.test   no MX, an A record: delivered to that address
#   nullmx.test  "MX 0 ." (RFC 7505): fails at once, 5.1.10, a DSN to the
#              sender (whose domain is routed to a sink)
# retry_min is an hour: whatever happens here happens in the first attempt.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use MtadTest;
use FakeDNS;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

my $sink = Sink->new(data => '250 2.0.0 Ok: queued as MX');	# 127.0.0.1
my $p1 = $sink->port;
my $lo = Sink->new(data => '250 2.0.0 Ok: queued as LO');
my $p2 = $lo->port;
my $hi = Sink->new(host => '127.0.0.2', port => $p2, data => '250 2.0.0 Ok: queued as HI');
my $senders = Sink->new();	# DSNs for @sender.test
my $ps = $senders->port;

# nobody may listen on 127.0.0.2:$p1, or mx1 would not fail
my $probe = IO::Socket::INET->new(PeerAddr => '127.0.0.2', PeerPort => $p1, Timeout => 5);
ok !$probe, "nothing listens on 127.0.0.2:$p1 (mx1.mx.test)";
close $probe if $probe;

my $dns = FakeDNS->new(records => [
	'MX   mx.test          10 mx1.mx.test',
	'MX   mx.test          20 mx2.mx.test',
	'A    mx1.mx.test      127.0.0.2',
	'A    mx2.mx.test      127.0.0.1',
	'MX   pref.test        20 hi.pref.test',
	'MX   pref.test        10 lo.pref.test',
	'A    hi.pref.test     127.0.0.2',
	'A    lo.pref.test     127.0.0.1',
	'A    amx.test         127.0.0.1',
	'MX   nullmx.test      0 .',
]);

my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600,
		      dns_servers => $dns->servers, dns_timeout => 3, extra => <<"END");
route = mx.test mx.test:$p1
route = pref.test pref.test:$p2
route = amx.test amx.test:$p1
route = sender.test [127.0.0.1]:$ps
END

sub submit {
	my ($from, $to, $subject) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, $from, $to,
		"Subject: $subject\nFrom: <$from>\nMessage-ID: <$subject\@sender.test>\n\nhello\n");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject" or return 'NONE';
	return ($r =~ $QUEUED)[0];
}

sub with_subject {
	my ($sink, $subject) = @_;
	return grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $sink->messages;
}

sub arrived {
	my ($sink, $subject) = @_;
	my @m;
	MtadTest::wait_for(30, sub { @m = with_subject($sink, $subject) });
	return @m;
}

sub gone {
	my ($qid) = @_;
	return MtadTest::wait_for(30, sub { !grep { $_ eq $qid } $m->queue_ids });
}

# ---- the first MX refuses the connection: the next one ----
my $off = length $m->log_text;
my $qid = submit('a@sender.test', ['u@mx.test'], 'mx fallback');
my @got = arrived($sink, 'mx fallback');
is scalar(@got), 1, 'u@mx.test: mx1 refuses, the message arrives via mx2';
is_deeply $got[0]{to} // [], ['u@mx.test'], '... for u@mx.test';
my $log = $m->delivery_log($qid, 'u@mx.test', 'sent', $off) // {};
is $log->{relay}, "mx2.mx.test[127.0.0.1]:$p1", "log: relay=mx2.mx.test[127.0.0.1]:$p1"
	or diag $log->{line} // substr($m->log_text, $off);
is $log->{reply}, '250 2.0.0 Ok: queued as MX', 'log: the reply of mx2';
ok gone($qid), "$qid leaves the queue";
my @q = $dns->queries;
ok((grep { /^(?:udp|tcp) mx\.test MX$/ } @q), 'mtad asked for the MX of mx.test') or diag "@q";

# ---- the lowest preference first ----
$qid = submit('a@sender.test', ['u@pref.test'], 'pref');
@got = arrived($lo, 'pref');
is scalar(@got), 1, 'u@pref.test arrives at lo.pref.test (preference 10)';
is scalar(with_subject($hi, 'pref')), 0, '... not at hi.pref.test (preference 20)';
is $hi->connections, 0, '... which was never even connected to';
$log = $m->delivery_log($qid, 'u@pref.test', 'sent', $off) // {};
is $log->{relay}, "lo.pref.test[127.0.0.1]:$p2", "log: relay=lo.pref.test[127.0.0.1]:$p2"
	or diag $log->{line};
ok gone($qid), "$qid leaves the queue";

# ---- no MX: the A record of the domain ----
$qid = submit('a@sender.test', ['u@amx.test'], 'no mx');
@got = arrived($sink, 'no mx');
is scalar(@got), 1, 'u@amx.test (no MX, an A record) arrives at that address';
$log = $m->delivery_log($qid, 'u@amx.test', 'sent', $off) // {};
is $log->{relay}, "amx.test[127.0.0.1]:$p1", "log: relay=amx.test[127.0.0.1]:$p1"
	or diag $log->{line};
ok gone($qid), "$qid leaves the queue";

# ---- Null MX: no delivery is possible, at once ----
$off = length $m->log_text;
$qid = submit('a@sender.test', ['u@nullmx.test'], 'null mx');
$log = $m->delivery_log($qid, 'u@nullmx.test', 'bounced', $off);
ok $log, "log: $qid: to=<u\@nullmx.test>, ... status=bounced, in the first attempt"
	or diag substr($m->log_text, $off);
is $log && $log->{dsn}, '5.1.10', 'log: dsn=5.1.10' or diag $log && $log->{line};
@got = arrived($senders, 'Undelivered Mail Returned to Sender');
is scalar(@got), 1, 'a DSN arrives at the sender\'s domain';
my $msg = $got[0] // { to => [], data => '' };
is $msg->{from}, '', '... from the null sender <>';
is_deeply $msg->{to}, ['a@sender.test'], '... to the original sender';
my $dsn = Sink::parse_dsn($msg->{data});
is $dsn->{report_type}, 'delivery-status', '... multipart/report; report-type=delivery-status'
	or diag $dsn->{headers}{'content-type'};
like $dsn->{headers}{from} // '', qr/\bMAILER-DAEMON\@mx\.campus\.test\b/, '... From: MAILER-DAEMON@mx.campus.test';
is scalar(@{ $dsn->{recipients} }), 1, '... about one recipient';
my $r = $dsn->{recipients}[0] // {};
like $r->{'final-recipient'} // '', qr/\Arfc822;\s*u\@nullmx\.test\z/i, '... Final-Recipient: rfc822; u@nullmx.test';
is $r->{action}, 'failed', '... Action: failed';
is $r->{status}, '5.1.10', '... Status: 5.1.10' or diag $msg->{data};
like $dsn->{rfc822_headers} // '', qr/^Subject: null mx$/m, '... the original headers are returned';
ok gone($qid), "$qid leaves the queue";

MtadTest::wait_for(30, sub { $m->queue_count == 0 });
is $m->queue_count, 0, 'the queue is empty (the DSN was delivered too)';

$m->stop;
$_->stop for $sink, $lo, $hi, $senders;
$dns->stop;
done_testing;
