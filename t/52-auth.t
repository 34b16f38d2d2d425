# 52-auth.t - SMTP AUTH (RFC 4954) with PLAIN and LOGIN against a sasldb:
# command order, every reply code, the per-session failure limit, the
# failure delay (as a lower bound), the log lines, the authenticated user
# in mtaq show and in Received: (ESMTPSA / ESMTPA), AUTH refused without
# TLS (538) unless the listener says auth_plaintext; sasl_mechanisms,
# auth_max_failures and auth_failure_delay set in mtad.conf.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use MtadTest qw(auth_plain b64);

my $PLAIN = b64("\0alice\0secret");
my $FAILED_LOG = qr/warning: unknown\[127\.0\.0\.1\]: SASL (?:PLAIN|LOGIN) authentication failed/;
my $AUTH_FIELD = qr/^[\w-]*(?:auth|sasl)[\w-]*\s*:.*\balice\b/mi;
my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');

# listener 0: implicit TLS, 1: starttls, 2: plain with auth_plaintext, 3: plain.
# The per-address limit is out of the way here (53-auth-ip-limit.t tests it).
my $m = MtadTest->new(listeners => ['tls', 'starttls', 'auth_plaintext', ''],
		      users => {alice => 'secret', bob => 'hunter2'},
		      auth_ip_max_failures => 1000);
my $failures = 0;	# 535 replies seen: each must have its log line

# failed(SOCK, BYTES, NAME) - BYTES must get 535 5.7.8 after >= 0.1 s.
sub failed {
	my ($s, $bytes, $name) = @_;
	my $t0 = time;
	my $r = $m->send_recv($s, $bytes) // '';
	my $took = time - $t0;
	$failures++ if $r =~ /^535 /;
	like $r, qr/\A535 5\.7\.8 [^\r\n]*\r\n\z/, "$name -> 535 5.7.8";
	cmp_ok $took, '>=', 0.1, "... after at least 0.1 s (auth_failure_delay)";
	return $r;
}

# queue(SOCK, SUBJECT, USER) - one message in an open session, sent as
# USER's own address (sender_login = strict); returns the queue id.
sub queue { my ($s, $subject, $user) = @_; $m->queue_message($s, $subject, from => ($user // 'alice') . '@campus.test') }

# ---- order and bad input (over implicit TLS) ----
my $s = $m->tls_raw(0);
$m->dialog($s, <<"END");
	> AUTH PLAIN $PLAIN
	< 503 5.5.1 *
	> EHLO client.example
	$EHLO_TLS
	> AUTH CRAM-MD5
	< 504 5.5.4 *
	> AUTH X-UNKNOWN $PLAIN
	< 504 5.5.4 *
	> AUTH PLAIN !!not-base64!!
	< 501 5.5.2 *
	> AUTH PLAIN
	<~ 334\\x20
	> *
	< 501 5.0.0 *
	> AUTH LOGIN
	< 334 VXNlcm5hbWU6
	> *
	< 501 5.0.0 *
	> AUTH PLAIN
	<~ 334\\x20
	> %%%%
	< 501 5.5.2 *
	# malformed or cancelled exchanges are not failed authentications:
	# the session is still open and AUTH still works
	> AUTH PLAIN $PLAIN
	< 235 2.7.0 Authentication successful
	> QUIT
	< 221 2.0.0 *
END

# ---- failures, then success and a message ----
$s = $m->tls_raw(0);
$m->dialog($s, "> EHLO client.example\n$EHLO_TLS");
failed($s, auth_plain('alice', 'wrong') . "\r\n", 'wrong password');
failed($s, auth_plain('nobody', 'secret') . "\r\n", 'unknown user');
$m->dialog($s, <<"END");
	# two failures: the session goes on, and the right password works
	> AUTH PLAIN $PLAIN
	< 235 2.7.0 Authentication successful
	> AUTH PLAIN $PLAIN
	< 503 5.5.1 *
	> AUTH LOGIN
	< 503 5.5.1 *
END
my $off = length $m->log_text;
my $qid1 = queue($s, 'authenticated over TLS');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n< [closed]\n");

my $rcvd = $m->received_of($qid1);
like $rcvd, qr/\bwith ESMTPSA id \Q$qid1\E\b/, 'Received: with ESMTPSA' or diag $rcvd;
like $rcvd, qr/\(using TLSv1\.[23] with cipher \S+/, 'Received: (using TLSv1.x with cipher ...)' or diag $rcvd;
my ($rc, $show, $err) = $m->mtaq('show', $qid1);
like $show, $AUTH_FIELD, 'mtaq show: an auth field names alice' or diag $show;
# the user as typed, or with the realm (the spec's example has no realm;
# Cyrus reports alice@mx.campus.test): both are accepted
my $line = $m->wait_log(qr/\bsasl_method=PLAIN, sasl_username=alice(?:\@mx\.campus\.test)?(?=[,\s]|\z)/, $off);
ok defined $line, 'log: sasl_method=PLAIN, sasl_username=alice' or diag substr($m->log_text, $off);
like $line // '', qr/\Q$qid1\E|127\.0\.0\.1/, '... on a line with the queue id or the client';

# ---- AUTH PLAIN without an initial response: "334 " then the response ----
$s = $m->tls_raw(0);
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> AUTH PLAIN
	<~ 334\\x20
	> $PLAIN
	< 235 2.7.0 Authentication successful
	> QUIT
	< 221 2.0.0 *
END

# ---- AUTH LOGIN: Username:, Password: ----
$s = $m->tls_raw(0);
my $login_user = b64('bob');
my $login_pass = b64('hunter2');
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> AUTH LOGIN
	< 334 VXNlcm5hbWU6
	> $login_user
	< 334 UGFzc3dvcmQ6
	> $login_pass
	< 235 2.7.0 Authentication successful
END
$off = length $m->log_text;
my $qid2 = queue($s, 'auth login', 'bob');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
($rc, $show) = $m->mtaq('show', $qid2);
like $show, qr/^[\w-]*(?:auth|sasl)[\w-]*\s*:.*\bbob\b/mi, 'mtaq show: an auth field names bob' or diag $show;
ok defined $m->wait_log(qr/\bsasl_method=LOGIN, sasl_username=bob(?:\@mx\.campus\.test)?(?=[,\s]|\z)/, $off),
	'log: sasl_method=LOGIN, sasl_username=bob' or diag substr($m->log_text, $off);

# ---- LOGIN with a wrong password; PLAIN with an empty initial response ----
$s = $m->tls_raw(0);
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> AUTH LOGIN
	< 334 VXNlcm5hbWU6
	> $login_user
	< 334 UGFzc3dvcmQ6
END
failed($s, b64('wrong') . "\r\n", 'AUTH LOGIN with a wrong password');
# "=" is an empty initial response: an empty PLAIN message. The spec
# accepts a failure (535 5.7.8) or a 334 asking again; after a 334, "*".
my $t0 = time;
my $r = $m->send_recv($s, "AUTH PLAIN =\r\n") // '';
if ($r =~ /^535 /) {
	$failures++;
	like $r, qr/\A535 5\.7\.8 [^\r\n]*\r\n\z/, 'AUTH PLAIN = -> 535 5.7.8';
	cmp_ok time - $t0, '>=', 0.1, '... after at least 0.1 s';
} else {
	like $r, qr/\A334 \r\n\z/, 'AUTH PLAIN = -> 535 5.7.8 or 334';
	$m->dialog($s, "> *\n< 501 5.0.0 *\n");
}
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");

# ---- AUTH inside a mail transaction ----
$s = $m->tls_raw(0);
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	> AUTH PLAIN $PLAIN
	< 503 5.5.1 *
	> RSET
	< 250 2.0.0 *
	> AUTH PLAIN $PLAIN
	< 235 2.7.0 Authentication successful
	> QUIT
	< 221 2.0.0 *
END

# ---- an AUTH line longer than 512 bytes (RFC 4954 §4: up to 12288) ----
$s = $m->tls_raw(0);
$m->dialog($s, "> EHLO client.example\n$EHLO_TLS");
my $long = b64("\0" . ('x' x 3000) . "\0secret");
failed($s, "AUTH PLAIN $long\r\n", 'AUTH PLAIN with a 4 kB initial response (unknown user)');
$m->dialog($s, "> AUTH PLAIN\n<~ 334\\x20\n");
failed($s, "$long\r\n", 'a 4 kB response to 334 (unknown user)');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");

# ---- auth_max_failures = 3: the third 535 is followed by 421 and close ----
$s = $m->tls_raw(0);
$m->dialog($s, "> EHLO client.example\n$EHLO_TLS");
failed($s, auth_plain('alice', 'wrong1') . "\r\n", 'session failure 1');
failed($s, auth_plain('alice', 'wrong2') . "\r\n", 'session failure 2');
failed($s, auth_plain('alice', 'wrong3') . "\r\n", 'session failure 3');
$m->dialog($s, <<"END");
	< 421 4.7.0 *
	< [closed]
END

# ---- no AUTH without TLS ----
# starttls listener: no AUTH in EHLO before TLS, 538; after STARTTLS it works.
$s = $m->raw(port => $m->port(1));
$m->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example', starttls => 1) . <<"END");
	> AUTH PLAIN $PLAIN
	< 538 5.7.11 *
	> AUTH LOGIN
	< 538 5.7.11 *
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
END
$m->starttls($s);
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> AUTH PLAIN $PLAIN
	< 235 2.7.0 Authentication successful
	> QUIT
	< 221 2.0.0 *
END

# plain listener without auth_plaintext: 538 too.
$s = $m->raw(port => $m->port(3));
$m->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example') . <<"END");
	> AUTH PLAIN $PLAIN
	< 538 5.7.11 *
	> QUIT
	< 221 2.0.0 *
END

# auth_plaintext: AUTH is offered and works in plaintext; Received: says
# ESMTPA (RFC 3848: authenticated, no TLS), without a (using ...) part.
$s = $m->raw(port => $m->port(2));
$m->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN') . <<"END");
	> AUTH PLAIN $PLAIN
	< 235 2.7.0 Authentication successful
END
my $qid3 = queue($s, 'auth_plaintext');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
$rcvd = $m->received_of($qid3);
like $rcvd, qr/\bwith ESMTPA id \Q$qid3\E\b/, 'auth_plaintext: Received: with ESMTPA' or diag $rcvd;
unlike $rcvd, qr/\(using /, '... and no (using ...) part' or diag $rcvd;
($rc, $show) = $m->mtaq('show', $qid3);
like $show, $AUTH_FIELD, '... mtaq show names alice' or diag $show;

# A message over TLS without AUTH: ESMTPS, and no authenticated user.
$s = $m->tls_raw(0);
$m->dialog($s, "> EHLO client.example\n$EHLO_TLS");
my $qid4 = queue($s, 'tls, no auth');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
like $m->received_of($qid4), qr/\bwith ESMTPS id \Q$qid4\E\b/, 'TLS without AUTH: Received: with ESMTPS';
($rc, $show) = $m->mtaq('show', $qid4);
unlike $show, $AUTH_FIELD, '... and mtaq show names no user';

# swaks with AUTH over STARTTLS
($rc, my $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port(1),
	'--tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'secret',
	'--from', 'alice@campus.test', '--to', 'u@campus.test', '--helo', 'client.example', '--timeout', '60');
is $rc, 0, 'swaks --tls --auth PLAIN exits 0' or diag "$out$err";
my ($qid5) = $out =~ /^<~\s+250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})/m;
like $m->received_of($qid5 // 'NONE'), qr/\bwith ESMTPSA\b/, 'swaks STARTTLS + AUTH: with ESMTPSA';

# swaks with a wrong password fails
($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port(0),
	'--tls-on-connect', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'nope',
	'--from', 'a@b.test', '--to', 'u@campus.test', '--helo', 'client.example', '--timeout', '60');
isnt $rc, 0, 'swaks with a wrong password fails';
like $out, qr/^<~\*?\s+535 5\.7\.8 /m, '... on 535 5.7.8' or diag $out;
$failures++ if $out =~ /^<~\*?\s+535 /m;

is $m->queue_count, 5, 'mtaq count: 5';

# ---- one log line per failure ----
my $count = sub { scalar(() = $m->log_text =~ /$FAILED_LOG/g) };
my $deadline = time + 10;
sleep 0.1 while $count->() < $failures && time < $deadline;
is $count->(), $failures, "one 'SASL ... authentication failed' warning per 535 ($failures)"
	or diag join "\n", grep { /SASL|auth/i } split /\n/, $m->log_text;
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# ---- auth_failure_delay is configurable (lower bound only) ----
my $d = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		      auth_failure_delay => 400);
$s = $d->tls_raw(0);
$d->dialog($s, "> EHLO client.example\n$EHLO_TLS");
$t0 = time;
$r = $d->send_recv($s, auth_plain('alice', 'wrong') . "\r\n");
my $took = time - $t0;
like $r, qr/\A535 5\.7\.8 /, 'auth_failure_delay = 400: wrong password -> 535 5.7.8';
cmp_ok $took, '>=', 0.4, '... after at least 0.4 s';
$d->dialog($s, "> AUTH PLAIN $PLAIN\n< 235 2.7.0 Authentication successful\n");
is $d->stop, 0, 'mtad exits 0 on SIGTERM';

# ---- sasl_mechanisms and auth_max_failures are configurable ----
my $k = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'},
		      sasl_mechanisms => 'PLAIN', auth_max_failures => 1);
$s = $k->tls_raw(0);
$k->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example', auth => 'PLAIN') . <<"END");
	> AUTH LOGIN
	< 504 5.5.4 *
	> ${\ auth_plain('alice', 'wrong')}
	< 535 5.7.8 *
	< 421 4.7.0 *
	< [closed]
END
is $k->stop, 0, 'mtad exits 0 on SIGTERM';

done_testing;
