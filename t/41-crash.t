# 41-crash.t - `250 Ok: queued as` means durable: mtad is killed with
# SIGKILL in the middle of a load, restarted on the same spool (recovery),
# and every queue id a client was given must still be in the queue.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(_exit :sys_wait_h);
use Time::HiRes qw(sleep time);
use MtadTest;

my $CLIENTS = 20;

my $m = MtadTest->new(max_connections_per_ip => 2 * $CLIENTS);
my $out = $m->dir . '/clients';
mkdir $out;

# client(N) - sends messages until the server goes away, writing each
# queue id to its file the moment the 250 arrives.
sub client {
	my ($n) = @_;
	$SIG{PIPE} = 'IGNORE';
	open my $fh, '>', "$out/$n" or _exit(2);
	$fh->autoflush(1);
	my $smtp = eval { $m->smtp } or _exit(0);
	for my $i (1 .. 100000) {
		my $r = $m->send_message($smtp, "client$n\@b.test", ["u$n-$i\@campus.test"],
			"Subject: crash $n/$i\n\n" . ("line $i of client $n\n" x 20));
		last unless $r =~ /\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;
		print $fh "$1\n";
	}
	_exit(0);
}

sub recorded {
	my @q;
	for my $n (1 .. $CLIENTS) {
		open my $fh, '<', "$out/$n" or next;
		push @q, grep { /^[0-9A-Z]{14}$/ } map { chomp; $_ } <$fh>;
	}
	return @q;
}

my @pids;
for my $n (1 .. $CLIENTS) {
	my $pid = fork // die "fork: $!";
	client($n) if $pid == 0;
	push @pids, $pid;
}

# Let the load run: until some messages are queued, then a bit more.
my $t0 = time;
sleep 0.1 while recorded() < 20 && time < $t0 + 60;
sleep 1.5;
my $before = recorded();
ok $before >= 20, "load is flowing ($before messages acknowledged) when mtad is killed";
$m->kill9;

# The clients notice the dead server and stop; any that do not are ours
# to kill.
my $deadline = time + 60;
my %left = map { $_ => 1 } @pids;
while (%left && time < $deadline) {
	for my $pid (keys %left) {
		delete $left{$pid} if waitpid($pid, WNOHANG) == $pid;
	}
	sleep 0.1;
}
for my $pid (keys %left) {
	kill 'KILL', $pid;
	waitpid $pid, 0;
}

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
