# 13-signals.t - running as a service: SIGTERM and SIGHUP.
#
# SIGTERM: mtad stops accepting at once; a session in the middle of DATA
# and an idle one get "421 4.3.2 ... Service shutting down" and are
# closed; mtad exits 0 within seconds; the half-received message is not
# queued. Messages whose end of data was sent just before the signal are
# each either 250'd and in the queue, or refused and not in it: the
# queue after the stop holds exactly the 250'd ones. SIGINT is the same.
#
# SIGHUP: a file with a syntax error is refused with file:line and the
# old settings stay; a good file takes effect for the next sessions, and
# an open session goes on (with the limits it started with); a changed
# user or log says it needs a restart.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use MtadTest;

my $SHUTDOWN = qr/\A421 4\.3\.2 mx\.campus\.test Service shutting down\r\n\z/;

# open_data($m, SUBJECT) - a session after DATA's 354 and a first line.
sub open_data {
	my ($m, $subject) = @_;
	my $s = $m->raw;
	$m->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example') . <<"END");
	> MAIL FROM:<a\@example.org>
	< 250 2.1.0 *
	> RCPT TO:<b\@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
END
	$m->send_bytes($s, "Subject: $subject\r\n\r\n" . ("half a message\r\n" x 1000));
	return $s;
}

# ---- SIGTERM in the middle of DATA ----

my $m = MtadTest->new;
my $port = $m->port;
my $data = open_data($m, 'interrupted');
my $idle = $m->raw;
$m->dialog($idle, "> EHLO idle.example\n" . MtadTest::ehlo_script('idle.example'));
my $pid = $m->pid;
my $t0 = time;
kill 'TERM', $pid;
like $m->read_reply($data, 10) // 'nothing', $SHUTDOWN, 'SIGTERM during DATA: 421 4.3.2 Service shutting down';
ok $m->closed($data, 10), '... and the connection is closed';
like $m->read_reply($idle, 10) // 'nothing', $SHUTDOWN, 'an idle session gets the same 421';
ok $m->closed($idle, 10), '... and is closed';
ok !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 2),
	'no new connection is accepted';
is $m->stop(10), 0, 'mtad exits 0';
cmp_ok time - $t0, '<', 5, '... within 5 seconds of SIGTERM';
like $m->log_text, qr/terminating on signal 15/, 'the log says why it stopped';
$m->start;
is $m->queue_count, 0, 'the interrupted message was not queued';

# ---- SIGTERM right after the end of data: 250 and queued, or neither ----

my $CLIENTS = 8;
my @s = map { open_data($m, "race $_") } 1 .. $CLIENTS;
# The rest of each message and its end: the first half a few
# milliseconds apart (likely committed by the signal), then three at
# once with the signal right after (likely in flight), then the last one
# once mtad has logged the signal (too late). Which is which does not
# matter, except for the last; that each gets a consistent answer does.
my $rest = ("the other half, a longer one\r\n" x 2000) . ".\r\n";
for my $i (0 .. $CLIENTS - 2) {
	$m->send_bytes($s[$i], $rest);
	sleep 0.02 if $i < $CLIENTS / 2;
}
my $off = length $m->log_text;
kill 'TERM', $m->pid;
$m->wait_log(qr/terminating on signal/, $off);
$m->send_bytes($s[-1], $rest);
my (@queued, @refused);
for my $i (0 .. $#s) {
	my $r = $m->read_reply($s[$i], 30) // 'nothing';
	if ($r =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\r\n\z/) {
		push @queued, $1;
		# the 250 first, then the 421 of the stop
		like $m->read_reply($s[$i], 10) // 'nothing', $SHUTDOWN, "client $i: 250, then 421";
	} else {
		like $r, $SHUTDOWN, "client $i: not 250, so 421 4.3.2";
		push @refused, $i;
	}
}
is $refused[-1] // -1, $#s, 'the end of data sent after the stop began is not taken';
is $m->stop(10), 0, 'mtad exits 0 with commits in flight';
note scalar(@queued) . ' queued, ' . scalar(@refused) . ' refused';
$m->start;
is join(' ', sort $m->queue_ids), join(' ', sort @queued),
	'the queue holds exactly the messages that got their 250';

# ---- SIGINT is a stop too ----

$m->stop;
$m->start;
my $int = $m->raw;
kill 'INT', $m->pid;
like $m->read_reply($int, 10) // 'nothing', $SHUTDOWN, 'SIGINT: 421 4.3.2 too';
is $m->stop(10), 0, '... and exit 0';

# ---- SIGHUP ----

my $h = MtadTest->new(max_recipients => 2);
my $conf = $h->conf_path;
my $base = MtadTest::slurp($conf);

# write_conf(TEXT) - replaces mtad.conf.
sub write_conf {
	open my $fh, '>', $conf or die "$conf: $!";
	print $fh $_[0];
	close $fh or die "$conf: $!";
}

# hup(REGEX) - SIGHUP, then the log line.
sub hup {
	my ($re) = @_;
	my $off = length $h->log_text;
	kill 'HUP', $h->pid;
	return $h->wait_log($re, $off);
}

# rcpts($s, N) - a transaction with N recipients: the replies to the RCPTs.
sub rcpts {
	my ($s, $n) = @_;
	my @r = map { $h->send_recv($s, "RCPT TO:<u$_\@campus.test>\r\n") // 'nothing' } 1 .. $n;
	$h->send_recv($s, "RSET\r\n");
	return map { substr($_, 0, 3) } @r;
}

my $open = $h->raw;	# stays open across the reloads
$h->dialog($open, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example'));
$h->dialog($open, "> MAIL FROM:<a\@example.org>\n< 250 2.1.0 *\n");
is join(' ', rcpts($open, 3)), '250 250 452', 'max_recipients = 2: the third RCPT gets 452';

write_conf($base =~ s/^max_recipients = 2$/max_recipients = 5/mr . "this line has no equals sign\n");
my $n = () = MtadTest::slurp($conf) =~ /\n/g;
like hup(qr/reload: keeping the old configuration/) // '',
	qr/warning: reload: keeping the old configuration: \Q$conf\E:$n: missing "=" in "this line has no equals sign"$/,
	'SIGHUP, a syntax error: refused, with file:line and the line';
ok kill(0, $h->pid), '... mtad runs on';
$h->dialog($open, "> MAIL FROM:<a\@example.org>\n< 250 2.1.0 *\n");
is join(' ', rcpts($open, 3)), '250 250 452', '... with the old max_recipients, in the open session';

write_conf($base =~ s/^max_recipients = 2$/max_recipients = 5/mr);
like hup(qr/reload: configuration .* loaded/) // '', qr/reload: configuration \Q$conf\E loaded/,
	'SIGHUP, a good file: loaded';
my $new = $h->raw;
$h->dialog($new, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example')
	. "> MAIL FROM:<a\@example.org>\n< 250 2.1.0 *\n");
is join(' ', rcpts($new, 3)), '250 250 250', '... a new session has max_recipients = 5';
$h->dialog($new, "> QUIT\n< 221 2.0.0 *\n");
$h->dialog($open, "> MAIL FROM:<a\@example.org>\n< 250 2.1.0 *\n");
is join(' ', rcpts($open, 3)), '250 250 452', '... the open session goes on, with the limit it started with';

write_conf($base =~ s/^user = $/user = nobody\nlog = syslog/mr);
like hup(qr/reload: user and log changes/) // '',
	qr/warning: reload: user and log changes take effect after a restart$/,
	'SIGHUP with a new user and log: a restart is needed, says the log';
ok $h->wait_log(qr/reload: configuration .* loaded/, length($h->log_text) - 400),
	'... the rest is loaded';
$h->dialog($open, "> QUIT\n< 221 2.0.0 *\n");
$off = length $h->log_text;
my $s = $h->raw;
$h->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
ok $h->wait_log(qr/connect from/, $off), '... and the log stays on stderr';
is $h->stop, 0, 'exit 0';

done_testing;
