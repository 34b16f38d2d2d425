# 70-deliver-route.t - outbound delivery by route and relayhost, against
# test SMTP servers (t/lib/Sink.pm) on loopback, no DNS:
#   route = campus.test [127.0.0.1]:A    a local domain, no MX lookup
#   route = .sub.test [127.0.0.1]:C      sub.test and everything under it
#   route = exact.sub.test [127.0.0.1]:A the exact domain beats .sub.test
#   relayhost = [127.0.0.1]:B            everything else
# A delivered message arrives with mtad's Received: header and its body
# intact, is logged (status=sent, the peer's reply) and leaves the queue.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

my $A = Sink->new(data => '250 2.0.0 Ok: queued as AAA');
my $B = Sink->new(data => '250 2.0.0 Ok: queued as BBB');
my $C = Sink->new(data => '250 2.0.0 Ok: queued as CCC');
my ($pa, $pb, $pc) = ($A->port, $B->port, $C->port);

my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      relayhost => "[127.0.0.1]:$pb", extra => <<"END");
route = campus.test [127.0.0.1]:$pa
route = .sub.test [127.0.0.1]:$pc
route = exact.sub.test [127.0.0.1]:$pa
END

# submit(FROM, [TO...], SUBJECT, BODY) - one message through mtad; its id.
sub submit {
	my ($from, $to, $subject, $body) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, $from, $to,
		"Subject: $subject\nFrom: <$from>\nMessage-ID: <$subject\@sender.test>\n\n$body");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject" or return 'NONE';
	return ($r =~ $QUEUED)[0];
}

# arrived(SINK, SUBJECT) - the messages at SINK with that subject (waits
# up to 30 s for the first).
sub arrived {
	my ($sink, $subject) = @_;
	my @m;
	MtadTest::wait_for(30, sub {
		@m = grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $sink->messages;
	});
	return @m;
}

# gone(QID) - true when mtaq no longer lists QID (waits up to 30 s).
sub gone {
	my ($qid) = @_;
	return MtadTest::wait_for(30, sub { !grep { $_ eq $qid } $m->queue_ids });
}

# ---- a local domain through its route ----
my $off = length $m->log_text;
my $qid = submit('a@sender.test', ['u@campus.test'], 'to campus',
		 "first line\n.leading dot\nlast line\n");
my @got = arrived($A, 'to campus');
is scalar(@got), 1, 'u@campus.test: the message arrives at the route\'s sink, once';
my $msg = $got[0] // { to => [], data => '' };
is $msg->{from}, 'a@sender.test', '... MAIL FROM is the original sender';
is_deeply $msg->{to}, ['u@campus.test'], '... RCPT TO is the recipient';
is $msg->{helo}, 'mx.campus.test', '... mtad says EHLO mx.campus.test';
my ($h, $body) = Sink::header_block($msg->{data});
my $data = $msg->{data} =~ s/\r\n/\n/gr;
like $data, qr/\AReceived: /, '... the first header is a Received: header';
my ($rcvd) = $data =~ /\A(Received:[^\n]*(?:\n[ \t][^\n]*)*)/;
$rcvd = ($rcvd // '') =~ s/\n[ \t]+/ /gr;
for my $part ('from client.example', '[127.0.0.1]', 'by mx.campus.test', "id $qid") {
	ok index($rcvd, $part) >= 0, "... Received: names '$part'" or diag $rcvd;
}
is $h->{subject}, 'to campus', '... the headers are intact';
is $h->{'message-id'}, '<to campus@sender.test>', '... Message-ID too';
like $body, qr/(?:\A|\n)first line\n\.leading dot\nlast line\n\z/,
	'... the body is intact (a line starting with a dot included)';
unlike $msg->{data}, qr/(?<!\r)\n/, '... every line ends in CRLF';

my $log = $m->delivery_log($qid, 'u@campus.test', 'sent', $off);
ok $log, "log: $qid: to=<u\@campus.test>, ... status=sent" or diag substr($m->log_text, $off);
$log //= {};
is $log->{relay}, "127.0.0.1[127.0.0.1]:$pa", "log: relay=127.0.0.1[127.0.0.1]:$pa"
	or diag $log->{line};
is $log->{dsn}, '2.0.0', 'log: dsn=2.0.0';
like $log->{delay} // '', qr/\A\d+(?:\.\d+)?\z/, 'log: delay=N';
like $log->{delays} // '', qr/\A(?:\d+(?:\.\d+)?\/){3}\d+(?:\.\d+)?\z/, 'log: delays=a/b/c/d';
like substr($m->log_text, $off), qr/^.* mtad\/qmgr\[\d+\]: \Q$qid\E: from=<a\@sender\.test>, size=\d+, nrcpt=1 \(queue active\)$/m,
	'log: mtad/qmgr takes it: from=, size=, nrcpt= (queue active)';
like $log->{line} // '', qr/ mtad\/smtp\[\d+\]: /, 'log: the delivery line is mtad/smtp\'s';
is $log->{reply}, '250 2.0.0 Ok: queued as AAA', 'log: (the peer\'s reply to the end of DATA)'
	or diag $log->{line};
ok gone($qid), "$qid leaves the queue once delivered";
ok $m->wait_log(qr/ mtad\/qmgr\[\d+\]: \Q$qid\E: removed$/, $off), 'log: mtad/qmgr: removed';

# ---- the relayhost: everything without a route ----
$qid = submit('a@sender.test', ['x@elsewhere.test'], 'to elsewhere', "hello\n");
@got = arrived($B, 'to elsewhere');
is scalar(@got), 1, 'x@elsewhere.test goes to the relayhost';
is_deeply $got[0]{to} // [], ['x@elsewhere.test'], '... for x@elsewhere.test';
$log = $m->delivery_log($qid, 'x@elsewhere.test', 'sent', $off) // {};
is $log->{relay}, "127.0.0.1[127.0.0.1]:$pb", "log: relay=127.0.0.1[127.0.0.1]:$pb"
	or diag $log->{line};
ok gone($qid), "$qid leaves the queue";

# ---- .sub.test: the domain and its subdomains; exact routes win ----
my %want = ('y@sub.test' => $C, 'y@deep.a.sub.test' => $C, 'y@exact.sub.test' => $A,
	    'y@notsub.test' => $B, 'y@sub.test.example' => $B);
my %name = ("$A" => 'A (campus.test, exact.sub.test)', "$B" => 'B (relayhost)',
	    "$C" => 'C (.sub.test)');
my %qid;
for my $rcpt (sort keys %want) {
	$qid{$rcpt} = submit('a@sender.test', [$rcpt], "route $rcpt", "hello\n");
}
for my $rcpt (sort keys %want) {
	my $subject = "route $rcpt";
	@got = arrived($want{$rcpt}, $subject);
	is scalar(@got), 1, "$rcpt goes to sink $name{$want{$rcpt}}";
	for my $other (grep { $_ != $want{$rcpt} } $A, $B, $C) {
		is scalar(grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $other->messages), 0,
			"... and not to sink $name{$other}";
	}
}
ok gone($qid{$_}), "$qid{$_} ($_) leaves the queue" for sort keys %want;

# ---- one message, recipients on several routes ----
$off = length $m->log_text;
$qid = submit('a@sender.test', ['u1@campus.test', 'z@elsewhere.test', 'u2@campus.test'],
	      'split', "hello\n");
my @ga = arrived($A, 'split');
my @gb = arrived($B, 'split');
MtadTest::wait_for(30, sub {
	@ga = grep { $_->{data} =~ /^Subject: split\r?$/m } $A->messages;
	2 == map { @{ $_->{to} } } @ga;
});
is_deeply [sort map { @{ $_->{to} } } @ga], ['u1@campus.test', 'u2@campus.test'],
	'a message for two routes: u1 and u2@campus.test arrive at A, once each';
is_deeply [sort map { @{ $_->{to} } } @gb], ['z@elsewhere.test'],
	'... z@elsewhere.test at B, once';
for my $r ('u1@campus.test', 'u2@campus.test', 'z@elsewhere.test') {
	ok $m->delivery_log($qid, $r, 'sent', $off), "log: $qid: to=<$r>, ... status=sent";
}
ok gone($qid), "$qid leaves the queue when every recipient is done";

is $m->queue_count, 0, 'the queue is empty';
my ($rc, $out) = $m->mtaq('list');
like $out, qr/\AMail queue is empty\n\z/, 'mtaq list: Mail queue is empty';

$m->stop;
$_->stop for $A, $B, $C;
done_testing;
