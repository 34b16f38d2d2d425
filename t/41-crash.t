# 41-crash.t - `250 Ok: queued as` means durable: mtad is killed with
# SIGKILL in the middle of a load, restarted on the same spool (recovery),
# and every queue id a client was given must still be in the queue.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use MtadTest;
use MtadLoad;

my $CLIENTS = 20;

my $m = MtadTest->new(max_connections_per_ip => 2 * $CLIENTS);
# Each client sends messages until the server goes away, saying each
# queue id the moment the 250 arrives.
my $load = MtadLoad->start($CLIENTS, sub {
	my ($n, $say) = @_;
	my $smtp = eval { $m->smtp } or return;
	for my $i (1 .. 100000) {
		my $r = $m->send_message($smtp, "client$n\@b.test", ["u$n-$i\@campus.test"],
			"Subject: crash $n/$i\n\n" . ("line $i of client $n\n" x 20));
		last unless $r =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\z/;
		$say->($1);
	}
});

sub recorded { grep { /\A$MtadTest::QID\z/ } map { $_->[1] } $load->lines }

# Let the load run: until some messages are queued, then a bit more.
my $t0 = time;
sleep 0.1 while recorded() < 20 && time < $t0 + 60;
sleep 1.5;
my $before = recorded();
ok $before >= 20, "load is flowing ($before messages acknowledged) when mtad is killed";
$m->kill9;

# The clients notice the dead server and stop; any that do not are ours
# to kill.
$load->wait(60);

my @acked = recorded();
note scalar(@acked) . ' messages were acknowledged with 250';

# Recovery: mtad starts on the same spool and port.
$m->start;
my @ids = $m->queue_ids;
my %in_queue;
my @dups = grep { $in_queue{$_}++ } @ids;
is scalar(@dups), 0, 'no queue id is listed twice' or diag "@dups";
my @lost = grep { !$in_queue{$_} } @acked;
is scalar(@lost), 0, 'every acknowledged message survived the crash'
	or diag 'lost: ' . join ' ', grep { defined } @lost[0 .. 19];
is $m->queue_count, scalar(@ids), 'mtaq count agrees with mtaq list';
for my $q (grep { defined } @acked[0, -1]) {
	my ($rc, $body) = $m->mtaq('show', '--body', $q);
	like $body, qr/line \d+ of client \d+\r?\n\z/, "the body of $q is complete";
}

my $smtp = $m->smtp;
like $m->send_message($smtp, 'a@b.test', ['u@campus.test'], "Subject: after\n\nrecovered\n"),
	qr/\A250 2\.0\.0 Ok: queued as [0-9A-Z]{14}\z/, 'after recovery a new message is accepted';
$smtp->quit;
is $m->queue_count, scalar(@ids) + 1, 'and counted';

done_testing;
