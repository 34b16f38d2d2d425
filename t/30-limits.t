# 30-limits.t - what a session and the server refuse: long lines, NUL
# bytes, idle clients, clients that only make errors, too many
# connections (overall and from one address).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use MtadTest;

# ---- long command lines and NUL ----
my $m = MtadTest->new;
my $s = $m->raw;
for my $len (600, 4096, 70000) {
	my $line = 'NOOP ' . ('x' x ($len - 5));
	my $r = $m->send_recv($s, "$line\r\n");
	like $r, qr/\A500 5\.5\.2 [^\r\n]*\r\n\z/, "a $len-byte command line -> 500 5.5.2";
	like $m->send_recv($s, "NOOP\r\n"), qr/\A250 2\.0\.0 /, "... and the session goes on";
}
$m->ehlo($s, 'client.example');
# 510 bytes + CRLF = 512: the longest allowed line (RFC 5321 4.5.3.1.4)
my $max = 'NOOP ' . ('y' x 505);
like $m->send_recv($s, "$max\r\n"), qr/\A250 2\.0\.0 /, 'a 512-byte line with CRLF is fine';
like $m->send_recv($s, "NOOP\0x\r\n"), qr/\A500 5\.5\.2 /, 'NUL in a command -> 500 5.5.2';
like $m->send_recv($s, "MAIL FROM:<a\0b\@b.test>\r\n"), qr/\A500 5\.5\.2 /,
	'NUL in MAIL FROM -> 500 5.5.2';
like $m->send_recv($s, "NOOP\r\n"), qr/\A250 2\.0\.0 /, 'the session goes on';
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
$m->stop;

# ---- command_timeout ----
$m = MtadTest->new(command_timeout => 3);
$s = $m->raw;
my $r = $m->read_reply($s, 60);
like $r, qr/\A421 4\.4\.2 [^\r\n]*\r\n\z/, 'idle client -> 421 4.4.2' or diag $r // 'nothing';
ok $m->closed($s), '... and the connection is closed';
# the timer restarts with every command: 4 x 1 s is longer than 3 s
$s = $m->raw;
for (1 .. 4) {
	sleep 1;
	like $m->send_recv($s, "NOOP\r\n"), qr/\A250 /, "a client that keeps talking is served ($_)";
}
$m->stop;

# ---- data_timeout: a client that stops in the middle of DATA ----
$m = MtadTest->new(data_timeout => 2);
$s = $m->raw;
$m->dialog($s, "> HELO client.example\n< 250 mx.campus.test\n");
$m->start_data($s);
$m->dialog($s, "> Subject: never finished\n>\n> half a message\n");
$r = $m->read_reply($s, 60);
like $r, qr/\A421 4\.4\.2 [^\r\n]*\r\n\z/, 'idle inside DATA -> 421 4.4.2' or diag $r // 'nothing';
ok $m->closed($s), '... and the connection is closed';
is $m->queue_count, 0, '... and the half message is not queued';
$m->stop;

# ---- max_errors ----
$m = MtadTest->new(max_errors => 3);
$s = $m->raw;
like $m->send_recv($s, "BOGUS1\r\n"), qr/\A500 5\.5\.2 /, 'error 1';
like $m->send_recv($s, "BOGUS2\r\n"), qr/\A500 5\.5\.2 /, 'error 2';
$m->send_bytes($s, "BOGUS3\r\n");
my @rest;
while (defined(my $x = $m->read_reply($s, 60))) { push @rest, $x }
my $all = join '', @rest;
like $all, qr/^421 4\.\d\.\d [^\r\n]*\r\n\z/m, 'the third error ends with 421' or diag $all;
like $all, qr/\A(500 5\.5\.2 [^\r\n]*\r\n)?421 /, '... the error reply, if any, comes first';
ok $m->closed($s), '... and the connection is closed';
$m->stop;

# ---- connection limits ----

# greeted(M) - a new connection and its greeting line.
sub greeted {
	my ($m) = @_;
	my ($s, $g) = $m->raw;
	return ($s, $g // '');
}

# served(M) - a connection that got 220. The server may still count a
# connection we closed a moment ago, so a 421 is retried for a while.
sub served {
	my ($m) = @_;
	my $deadline = time + 30;
	while (1) {
		my ($s, $g) = greeted($m);
		return ($s, $g) if $g =~ /^220 / || time > $deadline;
		close $s;
		sleep 0.2;
	}
}

for my $case (['max_connections_per_ip', 2], ['max_connections', 3]) {
	my ($key, $limit) = @$case;
	$m = MtadTest->new($key => $limit);
	my @open;
	for my $i (1 .. $limit) {
		my ($c, $g) = served($m);
		like $g, qr/\A220 /, "$key=$limit: connection $i is served";
		push @open, $c;
	}
	my ($c, $g) = greeted($m);
	like $g, qr/\A421 4\.7\.0 [^\r\n]*\r\n\z/, "$key=$limit: connection " . ($limit + 1) . " -> 421 4.7.0";
	ok $m->closed($c), '... and it is closed';
	# the ones already open still work
	like $m->send_recv($open[0], "NOOP\r\n"), qr/\A250 /, 'an open connection still works';
	# after one leaves, a new one is served again
	$m->send_recv($open[0], "QUIT\r\n");
	close shift @open;
	($c, $g) = served($m);
	like $g, qr/\A220 /, "$key=$limit: after one QUIT a new connection is served";
	close $_ for @open, $c;
	$m->stop;
}

done_testing;
