# 86-db-panic.t - a Berkeley DB panic under a running mtad is not a
# silent outage.
#
# A panic (DB_RUNRECOVERY) makes every later Berkeley DB call fail. mtaq
# can no longer cause one (t/87-mtaq-kill.t), but an operator can: here
# db_recover runs on the spool under the live mtad, which panics its
# environment (a process that died inside Berkeley DB, found by mtad's
# failchk, or a fatal I/O error end the same way). Before, mtad then
# answered 451 to every message and delivered nothing until someone
# restarted it; it never exited, so systemd never did.
#
# What must hold: mtad says once in its log what happened; a session
# open at the time gets 421 4.3.0; mtad exits with a non-zero status
# promptly (so that Restart=on-failure in etc/mtad.service brings it
# back); a start recovers, and every message mtad said 250 for is
# there, intact. (mtaq after a crash of mtad: t/87-mtaq-kill.t.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use MtadTest;

my $recover = (grep { -x } '/usr/bin/db5.3_recover', '/usr/bin/db_recover')[0];
plan skip_all => 'db5.3_recover (db5.3-util) is not installed' unless $recover;

my $m = MtadTest->new(start => 0, relay_networks => '127.0.0.0/8');
# The exit after the panic leaves the environment handle open on purpose
# (queue/env.c: the next start must recover): not a leak to report.
$m->lsan_suppress('libdb-5.3.so');
$m->start;

# Messages that stay queued: nothing routes nowhere.test (no DNS).
my (%body, @qids);
my $smtp = $m->smtp;
for my $i (1 .. 5) {
	my $body = "Subject: before the panic $i\n\n" . ("line $i of the message body, some bytes.\n" x (2000 * $i));
	my $r = $m->send_message($smtp, 'a@b.test', ['u@nowhere.test'], $body);
	like $r, qr/\A250 2\.0\.0 Ok: queued as /, "message $i is queued" or next;
	my ($qid) = $r =~ /($MtadTest::QID)/;
	push @qids, $qid;
	$body{$qid} = $body;
}
$smtp->quit;

# A session that is open (after EHLO) when the panic comes.
my ($s, $g) = $m->raw;
like $g, qr/\A220 /, 'a client connects';
like $m->send_recv($s, "EHLO client.example\r\n"), qr/\A250[ -]/, '... and says EHLO';

my $from = length $m->log_text;
my $pid = $m->pid;
my ($rc, $out, $err) = MtadTest::run($recover, '-h', $m->spool);
is $rc, 0, 'db_recover runs on the spool under the live mtad' or diag $err;

my $t0 = time;
my $exited = MtadTest::wait_for(20, sub { waitpid($pid, WNOHANG) == $pid });
my $status = $exited ? $m->_reaped : undef;
ok $exited, sprintf('mtad exits after the panic (%.1f s)', time - $t0);
ok defined $status && ($status >> 8) != 0 && ($status & 127) == 0,
	'... with a non-zero exit status, so that systemd restarts it'
	or diag 'wait status ' . ($status // 'none');

my $reply = $m->read_reply($s, 5) // '';
like $reply, qr/\A421 4\.3\.0 /, 'the open session got 421 4.3.0' or diag $reply;
close $s;

my $log = substr($m->log_text, $from);
my @said = $log =~ /^.*\berror: queue: .*needs recovery.*$/mg;
is scalar(@said), 1, 'the log says once that the queue needs recovery' or diag $log;
like $log, qr/error: queue: stopping after a Berkeley DB panic/,
	'... and that mtad stops for a restart';

# What systemd does: start it again; the start recovers.
$m->start;
$smtp = $m->smtp;
like $m->send_message($smtp, 'a@b.test', ['u@nowhere.test'], "Subject: restarted\n\nok\n"),
	qr/\A250 2\.0\.0 Ok: queued as /, 'after the restart mtad accepts mail again';
$smtp->quit;
for my $qid (@qids) {
	($rc, $out) = $m->mtaq('show', '--body', $qid);
	$out =~ s/\r\n/\n/g;
	$out =~ s/\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*//;
	ok $rc == 0 && $out eq $body{$qid}, "$qid, acknowledged before the panic, is intact";
}
is $m->queue_count, @qids + 1, 'every acknowledged message is in the queue';

done_testing;
