# 72-deliver-retry.t - what the peer's replies do, per recipient:
#   4xx  deferred, tried again after retry_min (1 s here): delivered once
#        the peer says 250; the recipients already sent are not sent again
#   5xx  failed: an RFC 3464 DSN from <> to the sender (routed to a sink),
#        naming the recipient, Status and Diagnostic-Code
#   a message from <> that fails: no DSN (never a bounce for a bounce),
#        just the log line, and it leaves the queue; the same for a DSN
#        the sender's server refuses
#   a 421 greeting: every recipient deferred, delivered when it says 220
#   max_queue_lifetime (3 s) passed while the peer keeps saying 450: the
#        pending recipients fail, a DSN with Status 5.4.7
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;
my $BOUNCE_SUBJECT = 'Undelivered Mail Returned to Sender';

my $sink = Sink->new(data => '250 2.0.0 Ok: queued as X');	# x.test
my $senders = Sink->new(rcpt => { 'gone@sender.test' => '550 5.1.1 gone away' });
my $busy = Sink->new(greeting => '421 4.3.2 too busy, come back later');	# busy.test
my ($px, $ps, $pb) = ($sink->port, $senders->port, $busy->port);

my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      extra => <<"END");
route = x.test [127.0.0.1]:$px
route = sender.test [127.0.0.1]:$ps
route = busy.test [127.0.0.1]:$pb
END

sub submit {
	my ($mt, $from, $to, $subject) = @_;
	my $smtp = $mt->smtp;
	my $r = $mt->send_message($smtp, $from, $to,
		"Subject: $subject\nFrom: <$from>\nMessage-ID: <$subject\@sender.test>\n\nhello\n");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject" or return 'NONE';
	return ($r =~ $QUEUED)[0];
}

sub with_subject {
	my ($s, $subject) = @_;
	return grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $s->messages;
}

# bounces(SUBJECT) - the DSNs at the senders' sink that return SUBJECT.
sub bounces {
	my ($subject) = @_;
	return grep { $_->{data} =~ /^Subject: \Q$BOUNCE_SUBJECT\E\r?$/m
		      && $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $senders->messages;
}

sub gone {
	my ($mt, $qid) = @_;
	return MtadTest::wait_for(30, sub { !grep { $_ eq $qid } $mt->queue_ids });
}

# check_dsn(MSG, SUBJECT, TO, {RCPT => [STATUS, DIAG_REGEX]}) - the DSN's
# envelope, headers and per-recipient fields.
sub check_dsn {
	my ($msg, $subject, $to, $want) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$msg //= { to => [], data => '' };
	is $msg->{from}, '', "DSN for '$subject': MAIL FROM:<>";
	is_deeply $msg->{to}, [$to], "... RCPT TO:<$to>";
	my $d = Sink::parse_dsn($msg->{data});
	like $d->{headers}{from} // '', qr/\bMAILER-DAEMON\@mx\.campus\.test\b/,
		'... From: MAILER-DAEMON@mx.campus.test';
	like $d->{headers}{to} // '', qr/\Q$to\E/, "... To: $to";
	is $d->{headers}{subject}, $BOUNCE_SUBJECT, "... Subject: $BOUNCE_SUBJECT";
	like $d->{headers}{'content-type'} // '', qr{\Amultipart/report;}i, '... Content-Type: multipart/report';
	is $d->{report_type}, 'delivery-status', '... report-type=delivery-status';
	my @types = map { $_->{type} } @{ $d->{parts} };
	ok((grep { $_ eq 'message/delivery-status' } @types), '... a message/delivery-status part')
		or diag "parts: @types";
	ok((grep { $_ eq 'text/rfc822-headers' } @types), '... a text/rfc822-headers part')
		or diag "parts: @types";
	like $d->{message}{'reporting-mta'} // '', qr/\Adns;\s*mx\.campus\.test\z/i,
		'... Reporting-MTA: dns; mx.campus.test';
	my %rcpt;
	for my $r (@{ $d->{recipients} }) {
		my ($addr) = ($r->{'final-recipient'} // '') =~ /\Arfc822;\s*(\S+)\z/i;
		$rcpt{lc($addr // '?')} = $r;
	}
	is_deeply [sort keys %rcpt], [sort keys %$want], '... Final-Recipient: exactly '
		. join(', ', sort keys %$want) or diag $msg->{data};
	for my $a (sort keys %$want) {
		my $r = $rcpt{$a} // {};
		is $r->{action}, 'failed', "... $a: Action: failed";
		is $r->{status}, $want->{$a}[0], "... $a: Status: $want->{$a}[0]";
		like $r->{'diagnostic-code'} // '', $want->{$a}[1], "... $a: Diagnostic-Code"
			if $want->{$a}[1];
	}
	like $d->{rfc822_headers} // '', qr/^Subject: \Q$subject\E$/m,
		'... the original headers are returned';
	like $d->{rfc822_headers} // '', qr/^Message-ID: <\Q$subject\E\@sender\.test>$/m,
		'... Message-ID included';
	unlike $d->{parts}[-1]{body} // '', qr/^hello$/m, '... the body is not';
}

# ---- 450, then 250: delivered on a retry ----
$sink->set(rcpt => { 'later@x.test' => '450 4.2.0 try later' });
my $off = length $m->log_text;
my $qid = submit($m, 'a@sender.test', ['later@x.test'], 'deferred once');
my $log = $m->delivery_log($qid, 'later@x.test', 'deferred', $off);
ok $log, "log: $qid: to=<later\@x.test>, ... status=deferred" or diag substr($m->log_text, $off);
$log //= {};
is $log->{relay}, "127.0.0.1[127.0.0.1]:$px", "log: relay=127.0.0.1[127.0.0.1]:$px";
is $log->{dsn}, '4.2.0', 'log: dsn=4.2.0';
is $log->{reply}, '450 4.2.0 try later', 'log: (450 4.2.0 try later)';
# (a "(next attempt ...)" line stands between while the retry is ahead)
my $LISTED = qr/^\Q$qid\E .*\n(?:\s+\(next attempt [^\n]*\)\n)?\s+later\@x\.test\s+pending\b.*\n\s+\(.*450 4\.2\.0 try later.*\)$/m;
my $out;
MtadTest::wait_for(10, sub { (undef, $out) = $m->mtaq('list'); $out =~ $LISTED });
like $out, $LISTED, 'mtaq list: the recipient is pending, with the last reply' or diag $out;
$sink->set(rcpt => {});
$log = $m->delivery_log($qid, 'later@x.test', 'sent', $off);
ok $log, 'the peer says 250 now: delivered on a retry' or diag substr($m->log_text, $off);
is scalar(with_subject($sink, 'deferred once')), 1, '... the message arrives at the sink';
ok gone($m, $qid), "$qid leaves the queue";

# ---- 250, 550 and 450 in one message ----
$sink->set(rcpt => { 'bad@x.test' => '550 5.1.1 no such user',
		     'later2@x.test' => '450 4.2.0 try later' });
$off = length $m->log_text;
$qid = submit($m, 'a@sender.test', ['ok@x.test', 'bad@x.test', 'later2@x.test'], 'mixed');
ok $m->delivery_log($qid, 'ok@x.test', 'sent', $off), 'ok@x.test: status=sent';
$log = $m->delivery_log($qid, 'bad@x.test', 'bounced', $off);
ok $log, 'bad@x.test: status=bounced' or diag substr($m->log_text, $off);
is $log && $log->{dsn}, '5.1.1', 'log: dsn=5.1.1';
is $log && $log->{reply}, '550 5.1.1 no such user', 'log: (550 5.1.1 no such user)';
ok $m->delivery_log($qid, 'later2@x.test', 'deferred', $off), 'later2@x.test: status=deferred';

my @dsn;
MtadTest::wait_for(30, sub { @dsn = bounces('mixed') });
is scalar(@dsn), 1, 'one DSN arrives at the sender\'s domain';
check_dsn($dsn[0], 'mixed', 'a@sender.test',
	  { 'bad@x.test' => ['5.1.1', qr/\Asmtp;\s*550 5\.1\.1 no such user\z/i] });

$sink->set(rcpt => { 'bad@x.test' => '550 5.1.1 no such user' });
ok $m->delivery_log($qid, 'later2@x.test', 'sent', $off), 'later2@x.test: sent on a retry';
ok gone($m, $qid), "$qid leaves the queue when no recipient is pending";
my @to = map { @{ $_->{to} } } with_subject($sink, 'mixed');
is_deeply [sort @to], ['later2@x.test', 'ok@x.test'],
	'the sink got ok@x.test once (not again with the retry) and later2@x.test once';
is scalar(bounces('mixed')), 1, 'still one DSN: none for the deferred recipient';

# ---- a 421 greeting: the whole message waits ----
$off = length $m->log_text;
$qid = submit($m, 'a@sender.test', ['u1@busy.test', 'u2@busy.test'], 'busy');
for my $r ('u1@busy.test', 'u2@busy.test') {
	$log = $m->delivery_log($qid, $r, 'deferred|bounced|sent', $off);
	is $log && $log->{status}, 'deferred', "421 greeting: $r status=deferred"
		or diag $log ? $log->{line} : substr($m->log_text, $off);
	like $log && $log->{reply}, qr/421 4\.3\.2 too busy, come back later/, '... the greeting in the log'
		or diag $log && $log->{line};
}
ok $busy->connections >= 1, 'mtad did connect';
$busy->set(greeting => undef);
ok $m->delivery_log($qid, 'u1@busy.test', 'sent', $off), 'then a 220 greeting: u1@busy.test sent';
ok $m->delivery_log($qid, 'u2@busy.test', 'sent', $off), '... u2@busy.test sent';
@to = map { @{ $_->{to} } } grep { $_->{data} =~ /^Subject: busy\r?$/m } $busy->messages;
is_deeply [sort @to], ['u1@busy.test', 'u2@busy.test'], '... both arrive, once';
ok gone($m, $qid), "$qid leaves the queue";
is scalar(bounces('busy')), 0, '... no DSN';

# ---- never a bounce for a bounce ----
$off = length $m->log_text;
my $smtp = $m->smtp;
my $r = $m->send_message($smtp, '', ['bad@x.test'],
	"Subject: bounce of a bounce\nFrom: <MAILER-DAEMON\@elsewhere.test>\n\nhello\n");
$smtp->quit;
like $r, $QUEUED, 'a message from <> to a failing recipient is queued';
$qid = ($r =~ $QUEUED)[0] // 'NONE';
$log = $m->delivery_log($qid, 'bad@x.test', 'bounced', $off);
ok $log, "log: $qid: to=<bad\@x.test>, ... status=bounced" or diag substr($m->log_text, $off);
ok gone($m, $qid), "$qid leaves the queue";

# a DSN the sender's server refuses: dropped, no DSN about it
my $qid2 = submit($m, 'gone@sender.test', ['bad@x.test'], 'sender gone');
ok $m->delivery_log($qid2, 'bad@x.test', 'bounced', $off), "$qid2 to bad\@x.test: status=bounced";
$log = $m->wait_log(qr/\b[0-9A-Z]{14}: to=<gone\@sender\.test>, .*\bstatus=bounced\b/, $off, 30);
ok $log, 'its DSN to gone@sender.test is refused with 550: status=bounced' or diag substr($m->log_text, $off);
like $log // '', qr/\bdsn=5\.1\.1, status=bounced \(550 5\.1\.1 gone away\)/, '... dsn=5.1.1 (550 5.1.1 gone away)';
ok gone($m, $qid2), "$qid2 leaves the queue";
ok MtadTest::wait_for(30, sub { $m->queue_count == 0 }), 'and so does the DSN: the queue empties';
sleep 3;	# a bounce of a bounce would be queued by now
is $m->queue_count, 0, 'the queue stays empty (no DSN about a DSN)';
my @nulls = grep { $_->{data} =~ /^Subject: bounce of a bounce\r?$/m }
	($senders->messages, $sink->messages);
is scalar(@nulls), 0, 'no sink got anything about the message from <>';
my @about = grep { $_->{data} =~ /^Subject: sender gone\r?$/m } $senders->messages;
is scalar(@about), 0, 'nothing about the refused DSN reached anyone';
my $text = substr($m->log_text, $off);
my @new = $text =~ /\b([0-9A-Z]{14}): to=<[^>]*>/g;
my %ids = map { $_ => 1 } @new;
delete @ids{$qid, $qid2};
is scalar(keys %ids), 1, 'the log shows one DSN (for gone@sender.test), no other message'
	or diag $text;

# ---- max_queue_lifetime ----
my $short = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 1,
			  max_queue_lifetime => 3, extra => <<"END");
route = x.test [127.0.0.1]:$px
route = sender.test [127.0.0.1]:$ps
END
$sink->set(rcpt => { 'slow@x.test' => '450 4.2.0 try later' });
$off = length $short->log_text;
$qid = submit($short, 'a@sender.test', ['slow@x.test'], 'too old');
ok $short->delivery_log($qid, 'slow@x.test', 'deferred', $off), 'slow@x.test: deferred first';
MtadTest::wait_for(30, sub { @dsn = bounces('too old') });
is scalar(@dsn), 1, 'past max_queue_lifetime: a DSN arrives';
check_dsn($dsn[0], 'too old', 'a@sender.test', { 'slow@x.test' => ['5.4.7', undef] });
ok gone($short, $qid), "$qid leaves the queue";
is scalar(with_subject($sink, 'too old')), 0, 'the message itself never arrived';
ok MtadTest::wait_for(30, sub { $short->queue_count == 0 }), 'the queue empties';

$m->stop;
$short->stop;
$_->stop for $sink, $senders, $busy;
done_testing;
