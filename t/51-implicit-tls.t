# 51-implicit-tls.t - implicit TLS (RFC 8314): the greeting comes only
# after the handshake, EHLO offers AUTH and no STARTTLS, messages from a
# raw TLS client, swaks --tls-on-connect and Net::SMTP SSL => 1 with AUTH,
# tls_min_version / tls_ciphers / tls_ciphersuites, and handshakes that
# fail: plaintext to the TLS port, a ClientHello that stops halfway
# (tls_handshake_timeout). mtad keeps serving and exits 0 on SIGTERM.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use Time::HiRes qw(time);
use MtadTest;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\r?\n?\z/;
my $ALICE = MtadTest::auth_plain('alice', 'secret');
my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');

# drain(SOCK, TIMEOUT) - raw bytes until EOF: (bytes, 'eof'|'timeout'|'error: ...').
sub drain {
	my ($s, $timeout) = @_;
	my ($buf, $sel, $deadline) = ('', IO::Select->new($s), time + $timeout);
	while ((my $left = $deadline - time) > 0) {
		next unless $sel->can_read($left);
		my $n = sysread $s, $buf, 65536, length $buf;
		return ($buf, defined $n ? 'eof' : "error: $!") unless $n;
	}
	return ($buf, 'timeout');
}

sub plain_connect {
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 30)
		or die "connect: $@";
	$s->autoflush(1);
	return $s;
}

# The first 5 + 60 bytes of a ClientHello whose record says 512 bytes follow.
my $HALF_HELLO = "\x16\x03\x01\x02\x00" . "\x01\x00\x01\xfc\x03\x03" . ("\x5a" x 32)
	. "\x20" . ("\x11" x 22);

# listener 0: implicit TLS, 1: starttls
my $m = MtadTest->new(listeners => ['tls', 'starttls'], users => {alice => 'secret'},
		      tls_handshake_timeout => 2);

# ---- nothing in plaintext before the handshake ----
# A client that connects and says nothing gets no greeting, and is closed
# after tls_handshake_timeout (2 s; 15 s is far above that and below the
# default of 30 s).
my $p = plain_connect($m->port);
my ($bytes, $why) = drain($p, 15);
unlike $bytes, qr/220/, 'a TLS port sends no greeting before the handshake';
isnt $why, 'timeout', '... and closes a silent client after tls_handshake_timeout';
close $p;

# ---- a session over implicit TLS ----
my ($s, $greeting) = $m->tls_raw(0);
is $greeting, "220 mx.campus.test ESMTP mtad\r\n", 'the greeting comes after the handshake';
is $s->peer_certificate('commonName'), 'mx.campus.test', 'the certificate is the configured one';
my ($ver, $cipher) = $m->tls_info($s);
like $ver, qr/\ATLSv1\.[23]\z/, "negotiated $ver";
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	# TLS is on, and this listener does not offer STARTTLS: the spec
	# gives 503 for the one and 502 for the other; either is accepted
	> STARTTLS
	<~ 50[23] 5\\.5\\.1 .*
	> $ALICE
	< 235 2.7.0 Authentication successful
END
my $qid1 = $m->queue_message($s, 'implicit tls', from => 'alice@campus.test');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n< [closed]\n");
my $rcvd = $m->received_of($qid1);
like $rcvd, qr/\bwith ESMTPSA id \Q$qid1\E\b/, 'Received: with ESMTPSA' or diag $rcvd;
like $rcvd, qr/\(using \Q$ver\E with cipher \Q$cipher\E\b/, "Received: (using $ver with cipher $cipher" or diag $rcvd;

# ---- swaks --tls-on-connect with AUTH PLAIN ----
my ($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
	'--tls-on-connect', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'secret',
	'--from', 'alice@campus.test', '--to', 'u@campus.test', '--helo', 'client.example', '--timeout', '60');
is $rc, 0, 'swaks --tls-on-connect --auth PLAIN exits 0' or diag "$out$err";
like $out, qr/^<~\s+235 2\.7\.0 Authentication successful/m, 'swaks: 235 2.7.0' or diag $out;
my ($qid2) = $out =~ /^<~\s+250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})/m;
ok defined $qid2, 'swaks got a queue id' or diag $out;
$qid2 //= 'NONE';
like $m->received_of($qid2), qr/\bwith ESMTPSA id \Q$qid2\E\b/, 'swaks message: with ESMTPSA';

# swaks with AUTH LOGIN too
($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
	'--tls-on-connect', '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password', 'secret',
	'--from', 'alice@campus.test', '--to', 'u@campus.test', '--helo', 'client.example', '--timeout', '60');
is $rc, 0, 'swaks --tls-on-connect --auth LOGIN exits 0' or diag "$out$err";

# ---- Net::SMTP with SSL => 1 and auth() ----
my $smtp = Net::SMTP->new('127.0.0.1', Port => $m->port, SSL => 1,
			  SSL_verify_mode => SSL_VERIFY_NONE, Hello => 'client.example',
			  Timeout => 60);
ok $smtp, 'Net::SMTP SSL => 1 connects' or diag "$@ $IO::Socket::SSL::SSL_ERROR";
SKIP: {
	skip 'no Net::SMTP connection', 4 unless $smtp;
	is +($smtp->supports('AUTH') // '') =~ s/\s+\z//r, 'PLAIN LOGIN', 'Net::SMTP sees AUTH PLAIN LOGIN';
	ok $smtp->auth('alice', 'secret'), 'Net::SMTP auth()' or diag $smtp->code . ' ' . join ' ', $smtp->message;
	my $reply = $m->send_message($smtp, 'alice@campus.test', ['u@campus.test'], "Subject: net-smtp ssl\n\nbody\n");
	like $reply, $QUEUED, 'Net::SMTP message over implicit TLS queued';
	my ($qid3) = $reply =~ $QUEUED;
	like $m->received_of($qid3 // 'NONE'), qr/\bwith ESMTPSA\b/, 'Net::SMTP message: with ESMTPSA';
	$smtp->quit;
}

# ---- plaintext SMTP sent to the TLS port ----
my $off = length $m->log_text;
$p = plain_connect($m->port);
$m->send_bytes($p, "EHLO x\r\n");
($bytes, $why) = drain($p, 60);
isnt $why, 'timeout', 'plaintext EHLO to the TLS port: mtad closes the connection';
unlike $bytes, qr/220|250/, '... without an SMTP reply in plaintext';
close $p;
my $line = $m->wait_log(qr/TLS.*127\.0\.0\.1|127\.0\.0\.1.*TLS/, $off);
ok defined $line, '... and logs a line with TLS and the client address' or diag substr($m->log_text, $off);

# ---- a ClientHello that stops halfway: tls_handshake_timeout = 2 ----
$off = length $m->log_text;
$p = plain_connect($m->port);
$m->send_bytes($p, $HALF_HELLO);
# 15 s: far above the configured 2 s, below the default of 30 s
($bytes, $why) = drain($p, 15);
isnt $why, 'timeout', 'half a ClientHello: mtad closes the connection after tls_handshake_timeout';
unlike $bytes, qr/220/, '... without a greeting';
close $p;
$line = $m->wait_log(qr/TLS.*127\.0\.0\.1|127\.0\.0\.1.*TLS/, $off);
ok defined $line, '... and logs a line with TLS and the client address' or diag substr($m->log_text, $off);

# While a handshake is stalled, other clients are served.
$p = plain_connect($m->port);
$m->send_bytes($p, $HALF_HELLO);
# and one that stalls in the handshake after STARTTLS
my $p2 = $m->raw(port => $m->port(1));
like $m->send_recv($p2, "EHLO x\r\n"), qr/\A250-/, 'EHLO on the starttls listener';
is $m->send_recv($p2, "STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n", 'STARTTLS, then half a ClientHello';
$m->send_bytes($p2, $HALF_HELLO);
($s, $greeting) = $m->tls_raw(0);
is $greeting, "220 mx.campus.test ESMTP mtad\r\n", 'a TLS client is served while another handshake is stalled';
$m->dialog($s, "> EHLO client.example\n$EHLO_TLS> QUIT\n< 221 2.0.0 *\n");
($bytes, $why) = drain($p, 15);
isnt $why, 'timeout', 'the stalled handshake is closed';
($bytes, $why) = drain($p2, 15);
isnt $why, 'timeout', 'the handshake stalled after STARTTLS is closed too';
unlike $bytes, qr/\A\d{3}[ -]/, '... with no plaintext reply';
close $p;
close $p2;

# ---- after all that, mtad still serves both listeners ----
($s, $greeting) = $m->tls_raw(0);
is $greeting, "220 mx.campus.test ESMTP mtad\r\n", 'implicit TLS still works';
$m->dialog($s, "> EHLO client.example\n$EHLO_TLS> QUIT\n< 221 2.0.0 *\n");
$s = $m->raw(port => $m->port(1));
ok $m->starttls_ehlo($s, 'client.example'), 'STARTTLS still works';
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
is $m->queue_count, 4, 'mtaq count: 4';
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# ---- tls_min_version ----
my $v12 = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'});
($s, $greeting) = eval { $v12->tls_raw(0, SSL_version => 'TLSv1_2') };
like $greeting // $@, qr/\A220 /, 'default tls_min_version: a TLSv1.2-only client is served';
is(($v12->tls_info($s))[0], 'TLSv1.2', '... with TLSv1.2') if $s;
$v12->stop;

my $v13 = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		       tls_min_version => 'TLSv1.3');
my $bad = eval { $v13->tls_raw(0, SSL_version => 'TLSv1_2') };
ok !$bad, 'tls_min_version = TLSv1.3: a TLSv1.2-only client fails the handshake';
($s, $greeting) = eval { $v13->tls_raw(0, SSL_version => 'TLSv1_3') };
like $greeting // $@, qr/\A220 /, '... a TLSv1.3 client is served';
is $v13->stop, 0, '... and mtad exits 0';

# ---- tls_ciphers (TLS 1.2) and tls_ciphersuites (TLS 1.3) ----
my $c = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		      tls_ciphers => 'ECDHE-ECDSA-AES128-GCM-SHA256',
		      tls_ciphersuites => 'TLS_CHACHA20_POLY1305_SHA256');
$s = eval { $c->tls_raw(0, SSL_version => 'TLSv1_2') };
is $s ? ($c->tls_info($s))[1] : $@, 'ECDHE-ECDSA-AES128-GCM-SHA256', 'tls_ciphers decides the TLS 1.2 cipher';
$s = eval { $c->tls_raw(0, SSL_version => 'TLSv1_3') };
is $s ? ($c->tls_info($s))[1] : $@, 'TLS_CHACHA20_POLY1305_SHA256', 'tls_ciphersuites decides the TLS 1.3 suite';
is $c->stop, 0, '... and mtad exits 0';

done_testing;
