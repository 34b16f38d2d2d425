# 44-deliver-readtimeout.t - the delivery client's wait for a body chunk
# from the queue has a deadline (smtp_queue_read_timeout): when the read
# does not come back in time, the connection is dropped before the final
# dot, the recipient is deferred 451 4.3.0, and the read's late answer
# is dropped safely.
#
# The read is made slow the way it can be in production: the queue's
# thread waits for a Berkeley DB lock. t/lib/bodylock.c joins the queue
# as mtaq does and write-locks chunk 0 of the message; mtad's writer
# thread, reading that chunk, waits until the process is killed and
# mtad's failchk aborts its transaction. Run it under the ASan build too
# (MTAD_BUILD=build-asan): the late chunk arrives after its attempt has
# moved on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(_exit);
use MtadTest;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

# Refused at first, so the message waits in the queue (retry_min is an
# hour) while the lock is taken.
my $sink = Sink->new(greeting => '421 4.3.2 not now');
my $px = $sink->port;
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600,
		      smtp_queue_read_timeout => 2,
		      extra => "route = x.test [127.0.0.1]:$px\n");

my $holder = $m->dir . '/bodylock';
my ($crc, undef, $cerr) = MtadTest::run('cc', '-o', $holder, "$FindBin::Bin/lib/bodylock.c", '-ldb');
plan skip_all => "cannot build t/lib/bodylock.c: $cerr" if $crc != 0;

my $body = "Subject: behind a lock\nFrom: <a\@sender.test>\n\n" . join('', map { "line $_\n" } 1 .. 20);
my $smtp = $m->smtp;
my $r = $m->send_message($smtp, 'a@sender.test', ['u@x.test'], $body);
$smtp->quit;
like $r, $QUEUED, 'a message for x.test is queued';
my $qid = ($r =~ $QUEUED)[0] // 'NONE';
my $off = 0;
ok $m->delivery_log($qid, 'u@x.test', 'deferred', $off), '... and deferred by the 421 greeting'
	or diag $m->log_text;

# ---- the lock: the next read of chunk 0 waits ----
pipe(my $rd, my $wr) or die "pipe: $!";
my $hpid = fork // die "fork: $!";
if ($hpid == 0) {
	close $rd;
	open STDOUT, '>&', $wr or _exit(126);
	exec $holder, $m->spool, $qid or _exit(127);
}
close $wr;
my $said = <$rd> // '';
is $said, "locked\n", 'a process joins the queue and write-locks chunk 0 of the body';

$sink->set(greeting => undef);
$off = length $m->log_text;
my $conns = $sink->connections;
my ($rc, undef, $err) = $m->mtaq('flush', $qid);
is $rc, 0, "mtaq flush $qid" or diag $err;

my $warn = $m->wait_log(qr/\b\Q$qid\E: reading chunk 0 of the queued message took over 2 s; delivery deferred\z/,
			$off, 30);
ok $warn, 'log: reading chunk 0 ... took over 2 s; delivery deferred'
	or diag substr($m->log_text, $off);
my $log = $m->delivery_log($qid, 'u@x.test', 'deferred', $off) // {};
is $log->{dsn}, '4.3.0', 'the recipient is deferred with 4.3.0' or diag $log->{line};
is $log->{reply}, '451 4.3.0 error reading the queued message for 127.0.0.1[127.0.0.1]',
	'... "451 4.3.0 error reading the queued message for 127.0.0.1[127.0.0.1]"';
is $log->{relay}, "127.0.0.1[127.0.0.1]:$px", "... relay=127.0.0.1[127.0.0.1]:$px";
ok kill(0, $hpid), '... while the lock is still held: the deadline answered, not the lock';
is $sink->connections - $conns, 1, 'mtad had connected to the next hop';
is scalar(grep { $_->{data} =~ /^Subject: behind a lock\r?$/m } $sink->messages), 0,
	'... and dropped the connection before the final dot: nothing was delivered';

# ---- the lock goes: the late chunk is dropped, the outcome recorded ----
kill 'KILL', $hpid;
waitpid $hpid, 0;
# The attempt is in flight until the queue (behind the same lock) has
# recorded its outcome; the runner skips it until then.
ok MtadTest::wait_for(30, sub {
	my (undef, $out) = $m->mtaq('show', $qid);
	($out // '') =~ /error reading the queued message/;
}), 'once the process is dead, the queue records the deferral' or diag scalar $m->mtaq('show', $qid);
ok kill(0, $m->pid), 'mtad is still running';

($rc, undef, $err) = $m->mtaq('flush', $qid);
is $rc, 0, "mtaq flush $qid again" or diag $err;
my @got;
MtadTest::wait_for(30, sub {
	@got = grep { $_->{data} =~ /^Subject: behind a lock\r?$/m } $sink->messages;
});
is scalar(@got), 1, 'the message is delivered once the queue reads again';
my $sent = $got[0]{data} // '';
$sent =~ s/\A(?:Received:.*\r?\n(?:[ \t].*\r?\n)*)+//;	# mtad's own header in front
(my $want = $body) =~ s/\n/\r\n/g;
is $sent, $want, '... intact';
ok MtadTest::wait_for(30, sub { !grep { $_ eq $qid } $m->queue_ids }), "$qid leaves the queue";
unlike $m->log_text, qr/ERROR: AddressSanitizer|runtime error:|panic/i, 'no sanitizer report, no panic';
is $m->stop, 0, 'mtad exits 0 on SIGTERM';
$sink->stop;
done_testing;
