# 26-loops.t - every core: `loops = N` event loops serve the sessions.
# Connections are handed round robin to the loops, and each loop's
# thread does the work (its context switches grow); messages from every
# loop get distinct queue ids and are all in the queue; the connection
# limits (in all, per address) and the AUTH failure limit stay exact
# over the loops; a reload reaches the sessions of every loop; a stop
# says 421 on every loop and exits 0. The setting itself: a number in
# 1..64 or auto, anything else an error with file:line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use MtadTest qw(auth_plain);

my $LOOPS = 4;

# ---- the setting ----
{
	my $mt = MtadTest->new(start => 0);
	my $mtad = ($ENV{MTAD_BUILD} // "$FindBin::Bin/../build") . '/mtad';
	for my $bad ('0', '65', 'many', '-1') {
		$mt->set_config(loops => $bad);
		my ($rc, $out, $err) = MtadTest::run($mtad, '-n', '-c', $mt->conf_path);
		isnt $rc, 0, "loops = $bad is refused";
		like $err, qr/mtad\.conf:\d+: .*loops/, '... with file:line';
	}
	$mt->set_config(loops => 'auto');
	my ($rc, $out) = MtadTest::run($mtad, '-n', '-c', $mt->conf_path);
	is $rc, 0, 'loops = auto is valid';
	unlike $out, qr/^loops/m, '... and the default';
	$mt->set_config(loops => 3);
	($rc, $out) = MtadTest::run($mtad, '-n', '-c', $mt->conf_path);
	like $out, qr/^loops = 3$/m, 'mtad -n shows loops = 3';
}

my $m = MtadTest->new(loops => $LOOPS, listeners => ['', 'tls'],
		      users => {alice => 'secret'}, auth_ip_max_failures => 3,
		      max_connections_per_ip => 6, max_connections => 8);
like $m->log_text, qr/: $LOOPS event loops for sessions$/m, "the log says $LOOPS loops";

# /proc: the workers' threads by name, and how often each has woken.
sub workers {
	my %w;
	for my $task (glob '/proc/' . $m->pid . '/task/*') {
		my $comm = MtadTest::slurp("$task/comm") // next;
		chomp $comm;
		my ($index) = $comm =~ /^mtad-loop(\d+)$/ or next;
		my ($sw) = (MtadTest::slurp("$task/status") // '') =~ /^voluntary_ctxt_switches:\s+(\d+)/m;
		$w{$index} = $sw // 0;
	}
	return \%w;
}
my $before = workers();
for (1 .. 50) {	# a thread names itself as it starts
	last if keys %$before == $LOOPS - 1;
	sleep 0.1;
	$before = workers();
}
is_deeply [sort keys %$before], [1 .. $LOOPS - 1], 'one thread per worker loop: mtad-loop1..' . ($LOOPS - 1);

# ---- sessions on every loop; queue ids distinct ----
my (@socks, %qid);
for my $i (1 .. $LOOPS + 2) {	# max_connections_per_ip
	my $s = $m->raw;
	$m->ehlo($s, "c$i.example");
	push @socks, $s;
}
for my $round (1 .. 3) {
	for my $i (0 .. $#socks) {
		my $q = $m->queue_message($socks[$i], "loop test $round.$i");
		$qid{$q}++;
	}
}
$m->dialog($_, "> QUIT\n< 221 2.0.0 *\n") for @socks;
close $_ for @socks;
is scalar(keys %qid), 3 * ($LOOPS + 2), 'every message got its own queue id';
ok !exists $qid{NONE}, '... and every one was accepted';
is $m->queue_count, 3 * ($LOOPS + 2), 'all of them are in the queue';
my $after = workers();
my @idle = grep { ($after->{$_} // 0) - $before->{$_} < 10 } sort keys %$before;
is "@idle", '', 'every worker loop served sessions (its thread woke for them)';

# ---- connection limits are exact over the loops ----
my @held = map { scalar $m->raw } 1 .. 6;	# spread round robin over the loops
my ($s7, $g7) = $m->raw;
like $g7, qr/\A421 4\.7\.0 .*too many connections from your address/,
	'the 7th connection from one address is refused, whichever loop holds the others';
$m->dialog($held[1], "> QUIT\n< 221 2.0.0 *\n");
close $held[1];
close $s7;
sleep 0.3;
my ($s8, $g8) = $m->raw;
like $g8, qr/\A220 /, 'after one QUIT on another loop, the next one is served';
push @held, $s8;
# 6 open from 127.0.0.1 and 2 from another address make 8: the limit
my @other = map { scalar $m->raw(local => '127.0.0.2') } 1 .. 2;
my ($s10, $g10) = $m->raw(local => '127.0.0.3');
like $g10 // '', qr/\A421 4\.7\.0 .*too many connections/, 'max_connections counts the connections of every loop';
close $_ for @held, @other, $s10;
sleep 0.5;

# ---- the AUTH failure limit is one over the loops ----
my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
for my $i (1 .. 3) {	# three connections, three loops
	my $s = $m->tls_raw(1);
	$m->dialog($s, "> EHLO client.example\n$EHLO_TLS> " . auth_plain('alice', "wrong$i")
		   . "\n< 535 5.7.8 *\n> QUIT\n< 221 2.0.0 *\n");
}
for my $i (1 .. $LOOPS) {
	my $s = $m->tls_raw(1);
	$m->dialog($s, "> EHLO client.example\n$EHLO_TLS> " . auth_plain('alice', 'secret')
		   . "\n< 454 4.7.0 *\n> QUIT\n< 221 2.0.0 *\n");
}

# ---- a reload reaches every loop ----
my @open = map { my $s = $m->raw; $m->ehlo($s, "r$_.example"); $s } 1 .. $LOOPS;
$m->set_config(max_recipients => 1);
kill 'HUP', $m->pid;
$m->wait_log(qr/reload: configuration .* loaded/) or diag $m->log_text;
# new sessions, one on each loop, take the new limit
for my $i (1 .. $LOOPS) {
	my $s = $m->raw;
	$m->ehlo($s, "n$i.example");
	$m->dialog($s, <<"END");
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	> RCPT TO:<u1\@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<u2\@campus.test>
	< 452 4.5.3 *
	> QUIT
	< 221 2.0.0 *
END
}

# ---- a stop says 421 on every loop ----
my $data = $m->raw;
$m->ehlo($data, 'd.example');
$m->start_data($data);
$m->send_bytes($data, "Subject: in flight\r\n\r\nbody\r\n");
kill 'TERM', $m->pid;
for my $i (0 .. $#open) {
	like $m->read_reply($open[$i]) // '', qr/\A421 4\.3\.2 /, "session $i gets 421 4.3.2 at the stop";
}
$m->send_bytes($data, ".\r\n");
like $m->read_reply($data) // '', qr/\A(?:250 2\.0\.0|421 4\.3\.2) /, 'a message in DATA ends with a reply';
is $m->stop, 0, 'mtad exits 0';
unlike $m->log_text, qr/still had handles|connection counts left|writer stopped with/,
	'nothing left behind at exit';

done_testing;
