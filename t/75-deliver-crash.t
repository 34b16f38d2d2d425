# 75-deliver-crash.t - a crash in the middle of delivery loses nothing:
# 30 messages for a slow peer (1 s before its reply to the end of DATA,
# destination_concurrency = 2), mtad killed with SIGKILL while some have
# arrived and others not, restarted on the same spool: every message
# arrives at the sink at least once, intact, and the queue empties.
# Duplicates are allowed (a message the peer took just before the kill
# may be sent again). Before the kill, no more than destination_concurrency
# (2) connections may be waiting for the sink's reply to DATA at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $N = 30;
my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

my $sink = Sink->new(data_sleep => 1);
my $px = $sink->port;
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      destination_concurrency => 2, extra => "route = x.test [127.0.0.1]:$px\n");

sub body { my ($i) = @_; return join '', map { "message $i line $_\n" } 1 .. 50 }

# Queue them all over one connection, as fast as mtad takes them.
my $smtp = $m->smtp;
my %qid;
for my $i (1 .. $N) {
	my $r = $m->send_message($smtp, 'a@sender.test', ["u$i\@x.test"],
		"Subject: crash $i\nFrom: <a\@sender.test>\n\n" . body($i));
	$qid{$i} = $1 if $r =~ $QUEUED;
}
$smtp->quit;
is scalar(keys %qid), $N, "$N messages queued";

# subjects(SINK) - how often each "crash N" arrived, and whether intact.
sub arrivals {
	my (%count, %bad);
	for my $msg ($sink->messages) {
		my ($i) = $msg->{data} =~ /^Subject: crash (\d+)\r?$/m or next;
		$count{$i}++;
		my ($h, $b) = Sink::header_block($msg->{data});
		$bad{$i}++ if $b ne body($i) || "@{ $msg->{to} }" ne "u$i\@x.test"
			|| $msg->{from} ne 'a@sender.test';
	}
	return (\%count, \%bad);
}

my $some = MtadTest::wait_for(30, sub { keys %{ (arrivals())[0] } >= 3 });
my ($count) = arrivals();
my $before = keys %$count;
ok $some, "delivery is under way ($before of $N arrived) when mtad is killed";
my $busy = $sink->max_busy;
$m->kill9;
cmp_ok $busy, '<=', 2, "destination_concurrency = 2: at most 2 connections in DATA at once (saw $busy)";
($count) = arrivals();
cmp_ok scalar(keys %$count), '<', $N, 'some messages had not arrived yet'
	or diag 'the sink was too fast for the test';

$m->start;
my $bad;
MtadTest::wait_for(90, sub {
	($count, $bad) = arrivals();
	keys %$count == $N && $m->queue_count == 0;
});
is_deeply [grep { !$count->{$_} } 1 .. $N], [], "after the restart all $N messages arrived"
	or diag 'missing: ' . join(' ', grep { !$count->{$_} } 1 .. $N);
is_deeply [sort { $a <=> $b } keys %$bad], [], 'each of them intact (envelope and body)';
my $dups = grep { $_ > 1 } values %$count;
note "$dups messages arrived twice or more";
is $m->queue_count, 0, 'the queue is empty';
my $log = $m->log_text;
my @unsent = grep { $log !~ /\b\Q$qid{$_}\E: to=<u$_\@x\.test>, .*\bstatus=sent\b/ } 1 .. $N;
is_deeply \@unsent, [], 'the log has a status=sent line for every message';

$m->stop;
$sink->stop;
done_testing;
