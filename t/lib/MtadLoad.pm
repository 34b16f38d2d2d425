# MtadLoad - N client processes at once against one mtad, for the load
# and crash tests (t/40, t/41, t/55, t/81, t/89).
#
#   my $load = MtadLoad->start(20, sub {
#       my ($n, $say) = @_;             # client number 1..N, a line writer
#       my $smtp = eval { $m->smtp } or return;
#       ...; $say->($qid);              # written and flushed at once
#   });
#   my $bad = $load->wait;              # or ->wait(60): then KILL the rest
#   my @lines = $load->lines;           # ([n, line], ...) of every client
#   $load->check_queued($m, 1000, 'every message');   # t/40, t/55
#
# Each client writes what it learns to its own file the moment it learns
# it, so what a client was told survives mtad's (or its own) death. A
# client that dies writes "FAIL died: ..." and exits 1. Clients end with
# _exit, so they never run the parent's END blocks or stop its mtad; the
# parent stops only its own children, by PID.
package MtadLoad;

use strict;
use warnings;

use File::Temp qw(tempdir);
use POSIX qw(_exit WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);
use MtadTest ();

# start(N, CODE) - forks clients 1..N, each running CODE->(n, say)
sub start {
	my ($class, $n, $code) = @_;
	my $self = bless { dir => tempdir(CLEANUP => 1), n => $n, pids => [] }, $class;
	for my $i (1 .. $n) {
		my $pid = fork // die "fork: $!";
		$self->_client($i, $code) if $pid == 0;
		push @{$self->{pids}}, $pid;
	}
	return $self;
}

sub _client {
	my ($self, $i, $code) = @_;
	$SIG{PIPE} = 'IGNORE';
	open my $fh, '>', "$self->{dir}/$i" or _exit(2);
	$fh->autoflush(1);
	my $say = sub { print $fh map { s/\n/ /gr . "\n" } @_ };
	my $ok = eval { $code->($i, $say); 1 };
	$say->('FAIL died: ' . ($@ // '?')) unless $ok;
	close $fh;
	_exit($ok ? 0 : 1);
}

# wait([SECONDS]) - waits for every client (at most SECONDS, then kills
# those left); returns how many did not exit 0.
sub wait {
	my ($self, $seconds) = @_;
	my %left = map { $_ => 1 } @{$self->{pids}};
	my $deadline = defined $seconds ? time + $seconds : undef;
	my $bad = 0;
	while (%left) {
		for my $pid (keys %left) {
			my $got = waitpid $pid, defined $deadline ? WNOHANG : 0;
			next unless $got == $pid || $got == -1;
			$bad++ if $got == -1 || $? != 0;
			delete $left{$pid};
		}
		last if defined $deadline && time >= $deadline;
		sleep 0.05 if %left && defined $deadline;
	}
	for my $pid (keys %left) {	# ours; they should have ended by now
		kill 'KILL', $pid;
		waitpid $pid, 0;
		$bad++;
	}
	$self->{pids} = [];
	return $bad;
}

# lines() - ([client number, line], ...) written so far; a client that
# wrote nothing gives [n, "FAIL wrote nothing"]
sub lines {
	my ($self) = @_;
	my @lines;
	for my $i (1 .. $self->{n}) {
		open my $fh, '<', "$self->{dir}/$i" or do { push @lines, [$i, 'FAIL wrote nothing']; next };
		chomp(my @l = <$fh>);
		push @lines, map { [$i, $_] } @l;
	}
	return @lines;
}

# check_queued(M, TOTAL, WHAT) - four tests: every line is a queue id and
# there are TOTAL, no id twice, mtaq counts TOTAL and lists every id.
# Returns the queue ids. Call after wait().
sub check_queued {
	my ($self, $m, $total, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my (@qids, @fails);
	for ($self->lines) {
		my ($i, $line) = @$_;
		$line =~ /\A$MtadTest::QID\z/ ? push(@qids, $line) : push(@fails, "client $i: $line");
	}
	Test::More::is(scalar(@qids), $total, "$what got 250 with a queue id ($total)")
		or Test::More::diag(join "\n", first10(@fails));
	my %seen;
	my @dups = grep { $seen{$_}++ } @qids;
	Test::More::is(scalar(@dups), 0, 'queue ids are unique') or Test::More::diag("@{[first10(@dups)]}");
	Test::More::is($m->queue_count, $total, "mtaq count = $total");
	my %listed = map { $_ => 1 } $m->queue_ids;
	my @missing = grep { !$listed{$_} } @qids;
	Test::More::is(scalar(@missing), 0, 'every queue id is in mtaq list')
		or Test::More::diag("missing: @{[first10(@missing)]}");
	return @qids;
}

# first10(LIST) - the first ten, for a diagnostic
sub first10 { my @l = @_; splice @l, 10 if @l > 10; return @l }

1;
