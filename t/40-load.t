# 40-load.t - 50 clients at once, 20 messages each over one connection:
# every message gets its own queue id and every id is in the queue.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(_exit);
use MtadTest;

my $CLIENTS = 50;
my $MESSAGES = 20;

# Only the load is tested here: allow every client from 127.0.0.1.
my $m = MtadTest->new(max_connections_per_ip => 2 * $CLIENTS);
my $out = $m->dir . '/clients';
mkdir $out;

# client(N) - one connection, $MESSAGES transactions; writes one line per
# message to its file: the queue id, or "FAIL reply".
sub client {
	my ($n) = @_;
	$SIG{PIPE} = 'IGNORE';
	open my $fh, '>', "$out/$n" or _exit(2);
	$fh->autoflush(1);
	my $smtp = eval { $m->smtp };
	if (!$smtp) {
		print $fh "FAIL connect: $@\n";
		_exit(1);
	}
	for my $i (1 .. $MESSAGES) {
		my $r = $m->send_message($smtp, "client$n\@b.test", ["u$n-$i\@campus.test"],
			"Subject: load $n/$i\n\n" . ("line $i of client $n\n" x 20));
		print $fh $r =~ /\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/ ? "$1\n" : "FAIL $r\n";
	}
	$smtp->quit;
	close $fh;
	_exit(0);
}

sub first10 { grep { defined } @_[0 .. 9] }

my @pids;
for my $n (1 .. $CLIENTS) {
	my $pid = fork // die "fork: $!";
	client($n) if $pid == 0;
	push @pids, $pid;
}
my $bad_exit = 0;
for my $pid (@pids) {
	waitpid $pid, 0;
	$bad_exit++ if $? != 0;
}
is $bad_exit, 0, "all $CLIENTS clients finished cleanly";

my (@qids, @fails);
for my $n (1 .. $CLIENTS) {
	open my $fh, '<', "$out/$n" or do { push @fails, "client $n wrote nothing"; next };
	while (<$fh>) {
		chomp;
		/^FAIL/ ? push(@fails, "client $n: $_") : push(@qids, $_);
	}
}
is scalar(@qids), $CLIENTS * $MESSAGES, 'every message got 250 with a queue id'
	or diag join "\n", first10(@fails);
my %seen;
my @dups = grep { $seen{$_}++ } @qids;
is scalar(@dups), 0, 'queue ids are unique' or diag join ' ', first10(@dups);

is $m->queue_count, $CLIENTS * $MESSAGES, "mtaq count = " . $CLIENTS * $MESSAGES;
my %listed = map { $_ => 1 } $m->queue_ids;
my @missing = grep { !$listed{$_} } @qids;
is scalar(@missing), 0, 'every queue id is in mtaq list' or diag join ' ', 'missing:', first10(@missing);

done_testing;
