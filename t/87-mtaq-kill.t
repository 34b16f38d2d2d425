# 87-mtaq-kill.t - mtaq can never wedge mtad (queue/env.c).
#
# An mtaq killed with SIGKILL in the middle of `show --body` of a 2 MB
# message (its output piped into something that does not read, so it is
# blocked mid-body: `mtaq show --body ID | sleep 20`, then `kill -9`, as
# `timeout -k`, the OOM killer or a crash would), and the next mtaq runs
# (count, list), all while a client keeps sending: mtad goes on
# answering 250 and delivering to the next hop (t/lib/Sink.pm, by route),
# and nothing needs recovery. Before, every opener used
# DB_REGISTER|DB_RECOVER, the next mtaq ran recovery under the live mtad,
# and mtad answered 451 until restarted.
#
# A process killed while it holds a lock mtad's writer waits for is
# cleaned up by mtad's failchk within a second (t/lib/lockholder.c).
#
# Then the other side: with mtad killed (a crash), mtaq says the queue
# needs recovery and changes nothing; `mtaq recover` recovers; mtaq
# works again; mtad starts; `mtaq recover` refuses while mtad runs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(_exit WNOHANG);
use Time::HiRes qw(sleep time);
use MtadTest;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\z/;

my $sink = Sink->new;
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 60, retry_max => 120,
		      extra => "route = campus.test [127.0.0.1]:" . $sink->port . "\n");

# The big message goes where nothing routes (no DNS, no route): it stays
# queued, deferred, for mtaq to read.
my $big = "Subject: big\n\n" . ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n" x 33000);
my $smtp = $m->smtp;
my $r = $m->send_message($smtp, 'a@sender.test', ['u@nowhere.test'], $big);
$smtp->quit;
like $r, $QUEUED, 'a 2 MB message is queued' or BAIL_OUT("no big message: $r");
my ($bigqid) = $r =~ $QUEUED;

# ---- a client that keeps sending, and writes each reply to a file ----
my $replies = $m->dir . '/load-replies';
my $stopfile = $m->dir . '/load-stop';
my $loader = fork // die "fork: $!";
if ($loader == 0) {
	# Told to stop by a file, not a signal: a signal would cut a
	# transaction short and look like a failure.
	open my $out, '>>', $replies or _exit(1);
	$out->autoflush(1);
	my $i = 0;
	while (!-e $stopfile) {
		my $c = eval { $m->smtp } or do { print $out "connect failed\n"; sleep 0.2; next };
		for (1 .. 5) {
			$i++;
			my $r = $m->send_message($c, 'load@sender.test', ['u@campus.test'],
						 "Subject: load $i\n\nmessage $i\n");
			print $out "$i $r\n";
		}
		$c->quit;
	}
	_exit(0);
}

# load_replies - the replies the loader got so far.
sub load_replies {
	return grep { length } split /\n/, MtadTest::slurp($replies);
}

ok MtadTest::wait_for(20, sub { load_replies() >= 10 }), 'the loader is sending';
my $from = length $m->log_text;

# kill_mid_body - an mtaq in `show --body` of the big message, its
# output into a pipe nobody reads; SIGKILL once it is blocked there.
sub kill_mid_body {
	my ($round) = @_;
	pipe(my $rd, my $wr) or die "pipe: $!";
	my $slow = fork // die "fork: $!";
	if ($slow == 0) {	# `| sleep 20`: holds the pipe, never reads
		close $wr;
		open STDIN, '<&', $rd or _exit(126);
		exec 'sleep', '20' or _exit(127);
	}
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		close $rd;
		open STDOUT, '>&', $wr or _exit(126);
		open STDERR, '>', '/dev/null';
		exec "$MtadTest::BUILD/mtaq", '-c', $m->conf_path, 'show', '--body', $bigqid
			or _exit(127);
	}
	close $rd;
	close $wr;
	my $blocked = MtadTest::wait_for(20, sub {
		MtadTest::slurp("/proc/$pid/wchan") =~ /pipe/;
	});
	ok $blocked, "round $round: mtaq is blocked mid-body on the pipe"
		or diag 'wchan: ' . MtadTest::slurp("/proc/$pid/wchan");
	kill 'KILL', $pid;
	waitpid $pid, 0;
	is $? & 127, 9, "round $round: ... and killed with SIGKILL";
	kill 'KILL', $slow;
	waitpid $slow, 0;
}

for my $round (1 .. 3) {
	kill_mid_body($round);
	my ($rc, $out, $err) = $m->mtaq('count');
	is $rc, 0, "round $round: the next mtaq count works" or diag $err;
	like $out, qr/\A\d+\n\z/, "round $round: ... and prints a number";
	($rc, $out, $err) = $m->mtaq('list');
	is $rc, 0, "round $round: mtaq list works" or diag $err;
	like $out, qr/^\Q$bigqid\E\b/m, "round $round: ... and lists the big message";
	my $n = grep { / 250 / } load_replies();
	ok MtadTest::wait_for(10, sub { (grep { / 250 / } load_replies()) >= $n + 5 }),
		"round $round: mtad keeps saying 250 to the loader";
}

# Under load, after the kills: a fresh message is still accepted and
# delivered through the route.
$smtp = $m->smtp;
$r = $m->send_message($smtp, 'a@sender.test', ['u@campus.test'], "Subject: after the kills\n\nok\n");
$smtp->quit;
like $r, $QUEUED, 'after the kills mtad says 250';
ok MtadTest::wait_for(30, sub {
	grep { $_->{data} =~ /^Subject: after the kills\r?$/m } $sink->messages;
}), '... and delivers it to the next hop';

MtadTest::run('touch', $stopfile);
waitpid $loader, 0;
my @replies = load_replies();
my @bad = grep { !/\A\d+ 250 2\.0\.0 Ok: queued as / } @replies;
ok @replies >= 20, scalar(@replies) . ' messages sent by the loader';
is scalar(@bad), 0, 'every one of them got 250' or diag join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)];
my %sent = map { /\A(\d+) 250/ ? ($1 => 1) : () } @replies;
ok MtadTest::wait_for(60, sub {
	my %got = map { $_->{data} =~ /^Subject: load (\d+)\r?$/m ? ($1 => 1) : () } $sink->messages;
	!grep { !$got{$_} } keys %sent;
}), 'every message the loader got 250 for reached the next hop';
my $log = substr($m->log_text, $from);
unlike $log, qr/needs recovery|DB_RUNRECOVERY|PANIC/i, 'mtad never needed recovery'
	or diag $log;

# ---- a process killed while it holds a lock the writer needs ----
#
# mtaq holds no lock while it prints, so the kills above leave none. A
# process that dies inside a transaction does (t/lib/lockholder.c: it
# joins as mtaq does and write-locks today's commit counter in
# stats.db, which mtad's writer updates every second). While it lives,
# mtad's writer waits for it; once it is killed, mtad's failchk aborts
# its transaction within a second and the waiting message gets its 250.
SKIP: {
	my $holder = $m->dir . '/lockholder';
	my ($crc, undef, $cerr) = MtadTest::run('cc', '-o', $holder, "$FindBin::Bin/lib/lockholder.c", '-ldb');
	skip "cannot build t/lib/lockholder.c: $cerr", 5 if $crc != 0;
	my @t = localtime;
	my $day = sprintf '%04d%02d%02d', $t[5] + 1900, $t[4] + 1, $t[3];
	pipe(my $rd, my $wr) or die "pipe: $!";
	my $hpid = fork // die "fork: $!";
	if ($hpid == 0) {
		close $rd;
		open STDOUT, '>&', $wr or _exit(126);
		exec $holder, $m->spool, "$day/commit/messages" or _exit(127);
	}
	close $wr;
	my $said = <$rd> // '';
	is $said, "locked\n", 'a process joins and holds a write lock in stats.db';
	# One more message for the counter; the writer's next statistics
	# flush (within a second) then waits for that lock.
	$smtp = $m->smtp;
	like $m->send_message($smtp, 'a@sender.test', ['u@campus.test'], "Subject: counted\n\nok\n"),
		$QUEUED, '... a message is queued (its count goes to stats.db)';
	$smtp->quit;
	sleep 2;
	my $t0 = time;
	my $killer = fork // die "fork: $!";
	if ($killer == 0) {
		sleep 3;
		kill 'KILL', $hpid;
		_exit(0);
	}
	$smtp = $m->smtp;
	$r = $m->send_message($smtp, 'a@sender.test', ['u@campus.test'], "Subject: behind the lock\n\nok\n");
	my $took = time - $t0;
	$smtp->quit;
	waitpid $killer, 0;
	waitpid $hpid, 0;
	like $r, $QUEUED, sprintf('a message behind the dead process\'s lock gets 250 (after %.1f s)', $took);
	cmp_ok $took, '>=', 2, '... not before the process was killed (the writer really waited)';
	cmp_ok $took, '<', 10, '... but within seconds of its death (failchk)';
}

# ---- mtad crashes: mtaq says so, `mtaq recover` fixes it ----
is $m->kill9 & 127, 9, 'mtad killed with SIGKILL (a crash)';
my ($rc, $out, $err) = $m->mtaq('count');
isnt $rc, 0, 'with mtad dead, mtaq count refuses';
like $err, qr/needs recovery.*mtaq recover/, '... saying the queue needs `mtaq recover`'
	or diag $err;
($rc, $out, $err) = $m->mtaq('recover');
is $rc, 0, 'mtaq recover succeeds' or diag $err;
like $out, qr/recovered/, '... and says so';
($rc, $out, $err) = $m->mtaq('count');
is $rc, 0, 'mtaq count works after the recovery' or diag $err;
chomp $out;
cmp_ok $out, '>=', 1, "... ($out messages)";
($rc, $out, $err) = $m->mtaq('show', '--body', $bigqid);
$out =~ s/\r\n/\n/g;
$out =~ s/\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*//;
ok $rc == 0 && $out eq $big, 'the big message is intact';

$m->start;
($rc, $out, $err) = $m->mtaq('recover');
isnt $rc, 0, 'mtaq recover refuses while mtad runs';
like $err, qr/mtad is running/, '... saying why' or diag $err;
$smtp = $m->smtp;
like $m->send_message($smtp, 'a@sender.test', ['u@campus.test'], "Subject: last\n\nok\n"),
	$QUEUED, '... and mtad is unharmed';
$smtp->quit;
is $m->stop, 0, 'mtad stops cleanly';
($rc, $out, $err) = $m->mtaq('count');
is $rc, 0, 'after a clean stop mtaq joins without recovery' or diag $err;

done_testing;
