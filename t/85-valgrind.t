# 85-valgrind.t - mtad under valgrind's memcheck: a few sessions (plain,
# STARTTLS + AUTH, implicit TLS + AUTH, a failed AUTH, a client that
# leaves in the middle of DATA, a refused connection), a delivery
# attempt, a SIGHUP reload, and a SIGTERM stop. What must hold: no
# memcheck error and no definitely lost block (--error-exitcode makes
# mtad's exit status say so; the report is shown when it does not).
#
# Skipped when valgrind is not installed, and under `make check-asan`
# (an ASAN build cannot run under valgrind).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest qw(auth_plain);

if (my $why = MtadTest::valgrind_usable()) {
	plan skip_all => $why;
}

my $m = MtadTest->new(start => 0, listeners => ['starttls', 'tls'],
		      users => {alice => 'secret'}, max_connections_per_ip => 4,
		      auth_failure_delay => 0);
my $vglog = $m->dir . '/valgrind.log';
my @valgrind = ('valgrind', '--tool=memcheck', '--error-exitcode=99', '--leak-check=full',
		'--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
		'--num-callers=30', '--track-origins=yes', "--log-file=$vglog");

ok $m->try_start(prefix => \@valgrind, timeout => 120), 'mtad starts under valgrind'
	or die "mtad exited under valgrind: status $m->{exit_status}\n" . MtadTest::slurp($vglog);

my $ALICE = auth_plain('alice', 'secret');

sub message { $m->queue_message(@_, from => 'alice@campus.test', body => 'a message sent to mtad under valgrind') }

# plain SMTP
my $s = $m->raw;
$m->ehlo($s, 'client.example', starttls => 1);
message($s, 'plain');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
close $s;

# STARTTLS, AUTH PLAIN
$s = $m->raw;
$m->starttls_ehlo($s, 'client.example') or die 'STARTTLS failed';
$m->dialog($s, "> $ALICE\n< 235 2.7.0 *\n");
message($s, 'starttls + auth');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
close $s;

# implicit TLS, a failed AUTH, then AUTH PLAIN
$s = $m->tls_raw(1);
$m->ehlo($s, 'client.example', auth => 'PLAIN LOGIN');
$m->dialog($s, '> ' . auth_plain('alice', 'wrong') . "\n<~ ^535 5\\.7\\.8 .*\n");
$m->dialog($s, "> $ALICE\n< 235 2.7.0 *\n");
message($s, 'implicit tls + auth');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
close $s;

# a client that leaves in the middle of DATA
$s = $m->raw;
$m->dialog($s, "> HELO client.example\n< 250 mx.campus.test\n");
$m->start_data($s);
$m->dialog($s, "> Subject: never finished\n");
close $s;

# a connection over max_connections_per_ip (4)
my @held = map { scalar $m->raw } 1 .. 4;
my ($r, $g) = $m->raw;
like $g, qr/\A421 4\.7\.0 /, 'the fifth connection from one address gets 421';
close $_ for $r, @held;

# the queue: three messages, tried and deferred (no route for campus.test)
ok MtadTest::wait_for(120, sub { $m->queue_count == 3 }), 'three messages are queued';
ok $m->wait_log(qr/status=deferred/, 0, 120), 'a delivery was attempted';

kill 'HUP', $m->pid;
ok $m->wait_log(qr/reload: configuration .* loaded/, 0, 60), 'SIGHUP reloads';

my $st = $m->stop(120);
is $st, 0, 'SIGTERM: mtad exits 0 under valgrind: no memcheck error, no definite leak'
	or diag MtadTest::slurp($vglog);
my $report = MtadTest::slurp($vglog);
like $report, qr/ERROR SUMMARY: 0 errors/, 'valgrind: ERROR SUMMARY: 0 errors';
unlike $report, qr/definitely lost: [1-9]/, 'valgrind: nothing definitely lost';
note join "\n", grep { /HEAP SUMMARY|in use at exit|total heap usage|lost:|reachable:|suppressed:|ERROR SUMMARY|All heap blocks/ } split /\n/, $report;

done_testing;
