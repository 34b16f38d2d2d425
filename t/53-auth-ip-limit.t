# 53-auth-ip-limit.t - the per-client-address AUTH failure limit: after
# auth_ip_max_failures failures from one address within auth_ip_window
# seconds, across connections and accounts, AUTH from that address gets
# 454 4.7.0 - even with the right password, for any account. It is a limit
# per address, not an account lockout, and failures age out.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep);
use MtadTest;

sub b64 { encode_base64($_[0], '') }
sub plain { "AUTH PLAIN " . b64("\0$_[0]\0$_[1]") }
my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
my ($ALICE, $BOB) = (plain('alice', 'secret'), plain('bob', 'hunter2'));

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
$m->dialog(session(), "> " . plain('alice', 'wrong') . "\n$BAD> " . plain('bob', 'wrong') . "\n$BAD$BYE");
# failure 3 (an unknown user), connection 2; below the limit the right
# password still works
$m->dialog(session(), "> " . plain('nobody', 'x') . "\n$BAD> $BOB\n< 235 2.7.0 Authentication successful\n$BYE");
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
$m->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example', starttls => 1));
$m->starttls($s);
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
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
$m->dialog(session(), "> " . plain('alice', 'wrong') . "\n$BAD> " . plain('alice', 'wrong') . "\n$BAD"
	. "> $ALICE\n< 454 4.7.0 *\n$BYE");
sleep 4.5;	# well past the 2 s window (which may be counted in whole seconds)
$m->dialog(session(), "> $ALICE\n< 235 2.7.0 Authentication successful\n$BYE");
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

done_testing;
