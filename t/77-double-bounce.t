# 77-double-bounce.t - a bounce that cannot be delivered: dropped with a
# log line by default; with double_bounce = postmaster reported once to
# postmaster@<hostname>, and a failed report is never reported again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $far = Sink->new(rcpt => { 'bad@far.test' => '550 5.1.1 no such user' });
my $home = Sink->new;
my ($pf, $ph) = ($far->port, $home->port);

# run(DOUBLE_BOUNCE) - a null-sender message to a failing recipient.
sub run {
	my ($mode) = @_;
	my $m = MtadTest->new(relay_networks => '127.0.0.0/8', double_bounce => $mode,
			      retry_min => 1, extra => <<"END");
route = far.test [127.0.0.1]:$pf
route = mx.campus.test [127.0.0.1]:$ph
END
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, '', ['bad@far.test'], "Subject: a bounce\n\nlost\n");
	$smtp->quit;
	like $r, qr/queued as/, "$mode: the null-sender message is queued";
	ok MtadTest::wait_for(30, sub { !$m->queue_ids }), "$mode: it leaves the queue";
	return $m;
}

my $m = run('drop');
like $m->log_text, qr/not bouncing a bounce \(null sender\)/, 'drop: a log line says so';
is scalar(grep { grep { /postmaster/ } @{ $_->{to} } } $home->messages), 0,
	'drop: postmaster hears nothing';
is $m->stop, 0, 'mtad exits 0';

$m = run('postmaster');
ok MtadTest::wait_for(30, sub {
	grep { grep { $_ eq 'postmaster@mx.campus.test' } @{ $_->{to} } } $home->messages }),
	'postmaster: the failure is reported to postmaster@mx.campus.test';
my ($report) = grep { grep { $_ eq 'postmaster@mx.campus.test' } @{ $_->{to} } } $home->messages;
is $report->{from}, '', '... from the null sender';
like $report->{data}, qr/^Final-Recipient: rfc822; bad\@far\.test\r?$/m, '... about bad@far.test';
is $m->stop, 0, 'mtad exits 0';

# The report itself fails: dropped, not reported again.
$home->set(rcpt => { 'postmaster@mx.campus.test' => '550 5.1.1 no postmaster here' });
my $before = () = $home->messages;
$m = run('postmaster');
ok MtadTest::wait_for(30, sub { $m->log_text =~ /not bouncing a bounce/ }),
	'a failed report to postmaster is dropped with a log line';
is scalar(() = $home->messages), $before, '... and nothing more arrives';
is $m->stop, 0, 'mtad exits 0';
done_testing;
