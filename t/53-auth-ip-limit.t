# 53-auth-ip-limit.t - the per-client-address AUTH failure limit: after
# auth_ip_max_failures failures from one address within auth_ip_window
# seconds, across connections and accounts, AUTH from that address gets
# 454 4.7.0 - even with the right password, for any account. It is a limit
# per address, not an account lockout, and failures age out.
#
# Attempts in flight count too: 20 parallel connections that all start
# guessing before any failure is back get no more than the limit's
# number of password checks. auth_ip_exempt networks are not counted.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use MtadTest qw(auth_plain b64);

my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
my ($ALICE, $BOB) = (auth_plain('alice', 'secret'), auth_plain('bob', 'hunter2'));

my $m = MtadTest->new(listeners => ['tls', 'starttls'],
		      users => {alice => 'secret', bob => 'hunter2'},
		      auth_ip_max_failures => 4);

sub session {
	my $s = $m->tls_raw(0);
	$m->dialog($s, "> EHLO client.example\n$EHLO_TLS");
	return $s;
}
my $BAD = "< 535 5.7.8 *\n";
my $BYE = "> QUIT\n< 221 2.0.0 *\n";

# failures 1 and 2 (two accounts), connection 1
$m->dialog(session(), "> " . auth_plain('alice', 'wrong') . "\n$BAD> " . auth_plain('bob', 'wrong') . "\n$BAD$BYE");
# failure 3 (an unknown user), connection 2; below the limit the right
# password still works
$m->dialog(session(), "> " . auth_plain('nobody', 'x') . "\n$BAD> $BOB\n< 235 2.7.0 Authentication successful\n$BYE");
# failure 4, connection 3: now the address is refused, in this session too
$m->dialog(session(), <<"END");
	> AUTH LOGIN
	< 334 VXNlcm5hbWU6
	> ${\ b64('alice')}
	< 334 UGFzc3dvcmQ6
	> ${\ b64('wrong')}
	$BAD
	> $ALICE
	< 454 4.7.0 *
	$BYE
END

# new connections: the right password of either account gets 454 4.7.0
$m->dialog(session(), <<"END");
	> $ALICE
	< 454 4.7.0 *
	> $BOB
	< 454 4.7.0 *
	> AUTH LOGIN
	< 454 4.7.0 *
	# the session itself goes on
	> NOOP
	< 250 2.0.0 *
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	$BYE
END

# ... and over STARTTLS on the other listener (the limit is the address's)
my $s = $m->raw(port => $m->port(1));
$m->starttls_ehlo($s, 'client.example');
$m->dialog($s, <<"END");
	> $ALICE
	< 454 4.7.0 *
	$BYE
END

# swaks sees the 454 too
my ($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
	'--tls-on-connect', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'secret',
	'--from', 'a@b.test', '--to', 'u@campus.test', '--helo', 'client.example', '--timeout', '60');
isnt $rc, 0, 'swaks with the right password while the address is limited fails';
like $out, qr/^<~\*?\s+454 4\.7\.0 /m, '... on 454 4.7.0' or diag $out;
is $m->queue_count, 0, 'nothing was queued';
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# ---- failures age out after auth_ip_window seconds ----
$m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		   auth_ip_max_failures => 2, auth_ip_window => 2);
$m->dialog(session(), "> " . auth_plain('alice', 'wrong') . "\n$BAD> " . auth_plain('alice', 'wrong') . "\n$BAD"
	. "> $ALICE\n< 454 4.7.0 *\n$BYE");
sleep 4.5;	# well past the 2 s window (which may be counted in whole seconds)
$m->dialog(session(), "> $ALICE\n< 235 2.7.0 Authentication successful\n$BYE");
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# ---- parallel connections cannot overshoot the limit ----
# fail_lines(M, FROM) - the fail2ban lines (one per failed password check) since FROM.
sub fail_lines {
	my ($mt, $from) = @_;
	my @l = substr($mt->log_text, $from) =~ /SASL \S+ authentication failed:/g;
	return scalar @l;
}
# sessions(N, %ssl) - N implicit-TLS sessions past EHLO.
sub sessions {
	my ($n, %ssl) = @_;
	my @s;
	for (1 .. $n) {
		my $c = $m->tls_raw(0, %ssl);
		my $r = $m->send_recv($c, "EHLO client.example\r\n") // '';
		$r =~ /^250 HELP\r\n\z/m or BAIL_OUT("EHLO: $r");
		push @s, $c;
	}
	return @s;
}

# LOGIN, the deterministic case: 20 connections each start AUTH LOGIN
# (no password sent yet, so no failure can be known) - only 5 get their
# 334, the other 15 get 454 at once; the 5 then fail, and that is all.
$m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		   auth_ip_max_failures => 5, auth_failure_delay => 0, auth_max_failures => 1);
my @c = sessions(20);
$m->send_bytes($_, "AUTH LOGIN\r\n") for @c;
my @r = map { $m->read_reply($_) // '' } @c;
my @in = grep { $r[$_] =~ /^334 VXNlcm5hbWU6\r\n\z/ } 0 .. $#c;
is scalar @in, 5, '20 parallel AUTH LOGIN, limit 5: 5 get 334' or diag join '', @r;
is scalar(grep { /^454 4\.7\.0 / } @r), 15, '... and 15 get 454 4.7.0 at once';
my $off = 0;
for my $i (@in) {
	$m->send_bytes($c[$i], b64('alice') . "\r\n");
}
for my $i (@in) {
	is $m->read_reply($c[$i]), "334 UGFzc3dvcmQ6\r\n", "connection $i: Password:";
	$m->send_bytes($c[$i], b64("guess$i") . "\r\n");
}
like $m->read_reply($c[$_]) // '', qr/^535 5\.7\.8 /, "connection $_: 535" for @in;
ok defined $m->wait_log(qr/SASL LOGIN authentication failed/, 0), 'failures logged';
is fail_lines($m, 0), 5, 'exactly 5 failed password checks';
# the 15 refused ones try again now: refused, the failures are recorded
my @again = grep { my $i = $_; !grep { $_ == $i } @in } 0 .. $#c;
$m->send_bytes($c[$_], "$ALICE\r\n") for @again;
is scalar(grep { ($m->read_reply($c[$_]) // '') =~ /^454 4\.7\.0 / } @again), 15,
	'the 15 try again, even with the right password: 454';
is fail_lines($m, 0), 5, 'still 5 failed password checks';
ok defined $m->wait_log(qr/refused: too many failures from this address \(127\.0\.0\.1\)/, 0),
	'the refusal is logged with the counted address';
close $_ for @c;
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# An attempt that never ends well still ends: clients that leave at the
# 334, or abort with "*", give their place back (no failure recorded).
$m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		   auth_ip_max_failures => 2, auth_failure_delay => 0);
@c = sessions(3);
$m->dialog($c[0], "> AUTH LOGIN\n< 334 VXNlcm5hbWU6\n");
$m->dialog($c[1], "> AUTH LOGIN\n< 334 VXNlcm5hbWU6\n");
$m->dialog($c[2], "> AUTH LOGIN\n< 454 4.7.0 *\n");
close $c[0];
$m->dialog($c[1], "> *\n< 501 5.0.0 Authentication aborted\n");
ok defined $m->wait_log(qr/disconnect from /, 0), 'the first client has gone';
$m->dialog($c[2], "> AUTH LOGIN\n< 334 VXNlcm5hbWU6\n> ${\ b64('alice')}\n< 334 UGFzc3dvcmQ6\n"
	. "> ${\ b64('secret')}\n< 235 2.7.0 Authentication successful\n$BYE");
$m->dialog($c[1], "> $ALICE\n< 235 2.7.0 Authentication successful\n$BYE");
is fail_lines($m, 0), 0, 'no failure was recorded for them';
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# PLAIN with an initial response, the racy case: 20 connections send a
# wrong password in the same instant, twice; whatever the order, no
# more than 5 password checks fail and every other attempt gets 454.
$m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		   auth_ip_max_failures => 5, auth_failure_delay => 0);
@c = sessions(20);
my ($n535, $n454) = (0, 0);
for my $round (1, 2) {
	$m->send_bytes($c[$_], auth_plain('alice', "wrong$_") . "\r\n") for 0 .. $#c;
	for my $c (@c) {
		my $r = $m->read_reply($c) // '';
		$n535++ if $r =~ /^535 /;
		$n454++ if $r =~ /^454 4\.7\.0 /;
	}
}
cmp_ok $n535, '<=', 5, "40 parallel wrong passwords from 20 connections: $n535 535s, at most 5";
cmp_ok $n535, '>=', 1, '... and at least one was checked';
is $n535 + $n454, 40, '... and the rest got 454 4.7.0';
sleep 0.5;
cmp_ok fail_lines($m, 0), '<=', 5, 'at most 5 failed password checks in the log';
is fail_lines($m, 0), $n535, '... one per 535';
close $_ for @c;
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# ---- an IPv6 client is counted by its /64 ----
SKIP: {
	skip 'no IPv6 loopback (::1) here', 8 unless MtadTest::ipv6_loopback();
	my $port6 = MtadTest::free_port('::1');
	$m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
			   auth_ip_max_failures => 2, auth_failure_delay => 0,
			   extra => "listen = [::1]:$port6 tls\n");
	my $v6 = sub {
		my $c = IO::Socket::SSL->new(PeerHost => '::1', PeerPort => $port6, Timeout => 30,
					     SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE())
			or BAIL_OUT("TLS connect to [::1]:$port6: $IO::Socket::SSL::SSL_ERROR");
		$m->read_reply($c);
		$m->send_recv($c, "EHLO client.example\r\n");
		return $c;
	};
	$m->dialog($v6->(), "> " . auth_plain('alice', 'wrong') . "\n$BAD> " . auth_plain('alice', 'wrong')
		. "\n$BAD> $ALICE\n< 454 4.7.0 *\n$BYE");
	ok defined $m->wait_log(qr/refused: too many failures from this address \(::\/64\)/, 0),
		'::1 is counted as ::/64';
	# the IPv4 loopback is another client
	$m->dialog((sessions(1))[0], "> $ALICE\n< 235 2.7.0 Authentication successful\n$BYE");
	is $m->stop, 0, 'mtad exits 0 on SIGTERM';
}

# ---- auth_ip_exempt: a shared NAT is not counted ----
# 127.0.0.1 is the "NAT" (exempt); 127.0.0.2 is an ordinary client.
$m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		   auth_ip_max_failures => 2, auth_failure_delay => 0,
		   auth_ip_exempt => '192.0.2.0/24 127.0.0.1/32');
for my $i (1 .. 3) {
	$m->dialog((sessions(1))[0], "> " . auth_plain('alice', "wrong$i") . "\n$BAD> " . auth_plain('alice', "again$i")
		. "\n$BAD$BYE");
}
# an exempt address: 6 failures, still 535 (not 454), and the right password works
$m->dialog((sessions(1))[0], "> $ALICE\n< 235 2.7.0 Authentication successful\n$BYE");
# a non-exempt address is limited after 2 failures
my @other = sessions(1, LocalAddr => '127.0.0.2');
$m->dialog($other[0], "> " . auth_plain('alice', 'wrong') . "\n$BAD> " . auth_plain('alice', 'wrong')
	. "\n$BAD> $ALICE\n< 454 4.7.0 *\n$BYE");
($rc, $out) = MtadTest::run("$MtadTest::BUILD/mtad", "-n", "-c", $m->conf_path);
like $out, qr/^auth_ip_exempt = 192\.0\.2\.0\/24 127\.0\.0\.1\/32$/m, 'mtad -n prints auth_ip_exempt'
	or diag $out;
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# a bad network in auth_ip_exempt is a configuration error
$m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		   auth_ip_exempt => '10.0.0.0/33', start => 0);
($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-n', '-c', $m->conf_path);
isnt $rc, 0, 'auth_ip_exempt = 10.0.0.0/33 is refused';
like $out . $err, qr/auth_ip_exempt: bad network "10\.0\.0\.0\/33"/, '... naming the key and the network';

done_testing;
