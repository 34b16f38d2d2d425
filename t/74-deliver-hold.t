# 74-deliver-hold.t - mtaq hold / release / flush against the runner:
#   a held message is never tried (not even when due, not even on flush);
#   mtaq list shows it with `!` after the id, and each recipient's state
#   and last reply; release makes it eligible again, flush makes it due
#   now (retry_min is an hour in the second mtad, so only flush helps).
# The sink answers 450 first, so the message waits in the queue; then it
# answers 250 and only what mtaq allows may arrive.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;
my $LATER = '450 4.2.0 try later';

my $sink = Sink->new();
my $px = $sink->port;

sub submit {
	my ($mt, $to, $subject) = @_;
	my $smtp = $mt->smtp;
	my $r = $mt->send_message($smtp, 'a@sender.test', [$to],
		"Subject: $subject\nFrom: <a\@sender.test>\n\nhello\n");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject" or return 'NONE';
	return ($r =~ $QUEUED)[0];
}

sub arrived {
	my ($subject, $secs) = @_;
	my @m;
	MtadTest::wait_for($secs // 30, sub {
		@m = grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $sink->messages;
	});
	return @m;
}

sub mtaq_ok {
	my ($mt, @args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $mt->mtaq(@args);
	is $rc, 0, "mtaq @args" or diag $err;
	return $out;
}

# ---- hold, then release (retry_min = 1) ----
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 1,
		      extra => "route = x.test [127.0.0.1]:$px\n");
$sink->set(rcpt => { 'later@x.test' => $LATER });
my $off = length $m->log_text;
my $qid = submit($m, 'later@x.test', 'held');
ok $m->delivery_log($qid, 'later@x.test', 'deferred', $off), 'first attempt: deferred (450)';
mtaq_ok($m, 'hold', $qid);

my $LISTED = qr/^\Q$qid\E! .*\n\s+later\@x\.test\s+pending\b.*\n\s+\(.*\Q$LATER\E.*\)$/m;
my $out;
MtadTest::wait_for(10, sub { (undef, $out) = $m->mtaq('list'); $out =~ $LISTED });
like $out, $LISTED, "mtaq list: $qid! (held), later\@x.test pending, ($LATER)" or diag $out;
(undef, $out) = $m->mtaq('list', '--json');
like $out, qr/"queue_id":"\Q$qid\E","held":true/, 'mtaq list --json: "held":true';

# From now on the sink takes it: only the hold keeps it back. The runner
# may be in an attempt that started before the hold; wait for that to end.
sleep 2;
$sink->set(rcpt => {});
my $held_from = length $m->log_text;
sleep 5;	# retry_min is 1 s: several scans would have tried it
is scalar(arrived('held', 0)), 0, 'held: not delivered while held (5 s, retry_min = 1)';
is $m->wait_log(qr/\b\Q$qid\E: to=/, $held_from, 0), undef, '... not even tried (no log line)';
is $m->queue_count, 1, '... still queued';

# flush does not override a hold
mtaq_ok($m, 'flush', $qid);
sleep 3;
is scalar(arrived('held', 0)), 0, 'mtaq flush of a held message: still not delivered';
mtaq_ok($m, 'flush');
sleep 3;
is scalar(arrived('held', 0)), 0, 'mtaq flush (all): still not delivered';

mtaq_ok($m, 'release', $qid);
(undef, $out) = $m->mtaq('list');
# The runner may deliver and remove it before mtaq lists (seen under ASAN).
ok $out =~ /^\Q$qid\E /m || $out !~ /\Q$qid\E/,
	"mtaq list: $qid without ! once released (or already delivered)" or diag $out;
is scalar(arrived('held')), 1, 'released: delivered';
ok $m->delivery_log($qid, 'later@x.test', 'sent', $held_from), "log: $qid ... status=sent";
ok MtadTest::wait_for(30, sub { $m->queue_count == 0 }), 'the queue empties';

# unknown ids
for my $cmd ('hold', 'release', 'flush') {
	my ($rc, $o, $err) = $m->mtaq($cmd, '00000000000000');
	isnt $rc, 0, "mtaq $cmd of an unknown id fails";
	like $err, qr/no such message: 00000000000000/, '... no such message' or diag $err;
}

# ---- flush: due now (retry_min = 3600) ----
my $slow = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600,
			 extra => "route = x.test [127.0.0.1]:$px\n");
$sink->set(rcpt => { 'later@x.test' => $LATER });
$off = length $slow->log_text;
my $q1 = submit($slow, 'later@x.test', 'flush one');
my $q2 = submit($slow, 'later@x.test', 'flush all');
ok $slow->delivery_log($q1, 'later@x.test', 'deferred', $off), "$q1: deferred";
ok $slow->delivery_log($q2, 'later@x.test', 'deferred', $off), "$q2: deferred";
sleep 1;
$sink->set(rcpt => {});
sleep 3;
is scalar(arrived('flush one', 0)), 0, 'retry_min = 3600: not tried again by itself';
mtaq_ok($slow, 'flush', $q1);
is scalar(arrived('flush one')), 1, "mtaq flush $q1: delivered now";
is scalar(arrived('flush all', 0)), 0, "... and only $q1";
mtaq_ok($slow, 'flush');
is scalar(arrived('flush all')), 1, "mtaq flush: $q2 delivered too";
ok MtadTest::wait_for(30, sub { $slow->queue_count == 0 }), 'the queue empties';

# hold, release, flush (release alone says nothing about when)
$sink->set(rcpt => { 'later@x.test' => $LATER });
$off = length $slow->log_text;
my $q3 = submit($slow, 'later@x.test', 'hold release flush');
ok $slow->delivery_log($q3, 'later@x.test', 'deferred', $off), "$q3: deferred";
mtaq_ok($slow, 'hold', $q3);
sleep 1;
$sink->set(rcpt => {});
mtaq_ok($slow, 'flush', $q3);
sleep 3;
is scalar(arrived('hold release flush', 0)), 0, 'held and flushed: not sent';
mtaq_ok($slow, 'release', $q3);
mtaq_ok($slow, 'flush', $q3);
is scalar(arrived('hold release flush')), 1, 'released and flushed: delivered';
ok MtadTest::wait_for(30, sub { $slow->queue_count == 0 }), 'the queue empties';

$_->stop for $m, $slow, $sink;
done_testing;
