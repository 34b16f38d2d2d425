# 81-crash-loop.t - SIGKILL at random moments under load, 20 times in a
# row on the same spool (t/41-crash.t does it once).
#
# Each round starts mtad (recovering from the previous kill by itself),
# runs a few clients that send messages as fast as they can, each with a
# sender address no other message has, kills mtad with SIGKILL at a
# random moment, and checks the queue with `mtaq list --json`: every
# message that got 250 is there under the queue id it was given, with its
# sender; no sender is in the queue twice; a message that got no 250 may
# or may not be there, but not twice. Some rounds also kill mtad while it
# is starting (during recovery) before the real start.
#
# The seed of the random moments is printed; MTAD_SEED=N repeats a run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(sleep time);
use MtadTest;
use MtadLoad;

my $ROUNDS = 20;
my $CLIENTS = 6;
my $seed = $ENV{MTAD_SEED} // int(time * 1000) % 1000000;
srand $seed;
note "MTAD_SEED=$seed";

my $m = MtadTest->new(max_connections_per_ip => 4 * $CLIENTS, start => 0);
# clients(ROUND) - the load of one round: each client sends messages until
# the server goes away; before each one "try SENDER", after its 250 "QID
# SENDER".
sub clients {
	my ($round) = @_;
	return MtadLoad->start($CLIENTS, sub {
		my ($n, $say) = @_;
		my $smtp = eval { $m->smtp } or return;
		for my $i (1 .. 100000) {
			my $sender = "r$round-c$n-m$i\@b.test";
			$say->("try $sender");
			my $r = $m->send_message($smtp, $sender, ["u$n\@campus.test"],
				"Subject: round $round client $n message $i\n"
				. "Message-ID: <r$round.c$n.m$i\@crash.test>\n\n"
				. ("line $i of client $n in round $round\n" x (1 + $i % 40)));
			last unless $r =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\z/;
			$say->("$1 $sender");
		}
	});
}

# results(LOAD) - (acked: {sender => qid}, tried: {sender => 1}).
sub results {
	my ($load) = @_;
	my (%acked, %tried);
	for (map { $_->[1] } $load->lines) {
		if (/^try (\S+)$/) { $tried{$1} = 1 }
		elsif (/^($MtadTest::QID) (\S+)$/) { $acked{$2} = $1 }
	}
	return (\%acked, \%tried);
}

# the queue as mtaq sees it: [[qid, sender], ...]
sub queue_now {
	my ($rc, $json, $err) = $m->mtaq('list', '--json');
	die "mtaq list --json failed ($rc): $err" if $rc != 0;
	return map { [$_->{queue_id}, $_->{sender}] } @{ JSON::PP::decode_json($json) };
}

# kill_during_start - runs mtad and kills it a moment later, while it
# recovers or opens its listeners (not through MtadTest: no wait).
sub kill_during_start {
	my $pid = $m->spawn;
	my $after = 0.01 + rand(0.2);
	sleep $after;
	kill 'KILL', $pid;
	waitpid $pid, 0;
	return $after;
}

my %all_acked;	# sender -> qid, over every round

sub first10 { my @l = @_; splice @l, 10 if @l > 10; return "@l" }

# check_queue(NAME) - one test: every acknowledged message is listed
# under its queue id, no sender and no queue id twice. Returns the count
# listed.
sub check_queue {
	my ($name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my (%by_sender, %ids);
	my @q = queue_now();
	push @{ $by_sender{$_->[1]} }, $_->[0] for @q;
	my @lost = grep { my $s = $_; !grep { $_ eq $all_acked{$s} } @{ $by_sender{$s} // [] } }
		sort keys %all_acked;
	my @twice = grep { @{ $by_sender{$_} } > 1 } sort keys %by_sender;
	my @dup_ids = map { $_->[0] } grep { $ids{$_->[0]}++ } @q;
	ok !@lost && !@twice && !@dup_ids, sprintf('%s: the %d messages acknowledged so far are '
		. 'in the queue (%d listed), none twice', $name, scalar(keys %all_acked), scalar(@q))
		or diag 'lost: ' . first10(@lost) . "\ntwice: " . first10(@twice, @dup_ids);
	return scalar @q;
}

my ($total_acked, $total_tried, $killed_starting) = (0, 0, 0);
for my $round (1 .. $ROUNDS) {
	if ($round > 1 && $round % 4 == 0) {
		kill_during_start();
		$killed_starting++;
	}
	$m->start;	# dies, with the log, when mtad cannot start by itself

	# after the restart: everything acknowledged so far is there, once
	check_queue("round $round: after the kill of round " . ($round - 1)) if $round > 1;

	my $load = clients($round);
	sleep 0.2 + rand(1.0);
	$m->kill9;
	$load->wait(60);	# they notice the dead server; those left are killed
	my ($acked, $tried) = results($load);
	$all_acked{$_} = $acked->{$_} for keys %$acked;
	$total_acked += keys %$acked;
	$total_tried += keys %$tried;
}

# the last round's kill, checked after one more start
$m->start;
my $listed = check_queue("after the last kill");
ok $total_acked >= $ROUNDS, "the load was real: $total_acked of $total_tried messages acknowledged "
	. "over $ROUNDS kills ($killed_starting more during start-up)";
is $m->queue_count, $listed, 'mtaq count agrees with mtaq list';

# a sample of bodies: complete
my @sample = (sort keys %all_acked)[0, int(keys(%all_acked) / 2), -1];
for my $sender (grep { defined } @sample) {
	my ($rc, $body) = $m->mtaq('show', '--body', $all_acked{$sender});
	like $body, qr/line \d+ of client \d+ in round \d+\r?\n\z/, "the body of $all_acked{$sender} is complete";
}

my $smtp = $m->smtp;
like $m->send_message($smtp, 'a@b.test', ['u@campus.test'], "Subject: after\n\nrecovered\n"),
	qr/\A250 2\.0\.0 Ok: queued as /, 'mtad works after all that';
$smtp->quit;

done_testing;
