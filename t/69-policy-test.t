# 69-policy-test.t - `mtaq policy-test` answers what a real session to
# mtad gets, without the client: for several HELO names (accepted, own
# name, localhost, a name without dots under relaxed and then strict) and
# a relay attempt, the MAIL and RCPT replies of a real session from
# 127.0.0.1 are compared with policy-test --json for the same facts;
# AUTH lifts the HELO rules, sender_login refuses a login's foreign
# sender with mtad's 553, a relay_networks client is trusted, a
# helo_reject_at=ehlo listener judges at EHLO; the text output names the
# rule, the reply and the DNS facts not looked up; bad usage exits 64.
#
# The harness writes dns_servers = none: mtad looks nothing up either.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MtadTest;

my $m = MtadTest->new(extra => "listen = 127.0.0.1:" . MtadTest::free_port('127.0.0.1')
			       . " helo_reject_at=ehlo\n");
my ($ehlo_listener) = MtadTest::slurp($m->conf_path) =~ /^listen = (\S+) helo_reject_at=ehlo$/m;

sub policy_test {
	my (@args) = @_;
	my ($rc, $out, $err) = $m->mtaq('policy-test', '--json', @args);
	is $rc, 0, "policy-test @args" or diag $err;
	return eval { decode_json($out) } // do { diag $out; {} };
}

sub chomped { my $r = shift // ''; $r =~ s/\r?\n\z//; return $r }

# session(HELO, FROM, RCPT) - a real session's replies to EHLO, MAIL, RCPT.
sub session {
	my ($helo, $from, $rcpt, %opt) = @_;
	my $s = $m->raw(port => $opt{port} // $m->port);
	my %r;
	$r{ehlo} = chomped($m->send_recv($s, "EHLO $helo\r\n"));
	$r{mail} = chomped($m->send_recv($s, "MAIL FROM:<$from>\r\n"));
	$r{rcpt} = chomped($m->send_recv($s, "RCPT TO:<$rcpt>\r\n")) if $r{mail} =~ /^250/;
	$m->send_recv($s, "QUIT\r\n");
	close $s;
	return \%r;
}

# same(CASE, HELO, FROM, RCPT) - policy-test says what the session got.
sub same {
	my ($case, $helo, $from, $rcpt) = @_;
	my $real = session($helo, $from, $rcpt);
	my $t = policy_test('--client', '127.0.0.1', '--helo', $helo, '--from', $from,
			    '--rcpt', $rcpt);
	note "$case: MAIL $real->{mail}; RCPT " . ($real->{rcpt} // '-');
	if ($real->{mail} =~ /^250/) {
		is $t->{mail}{verdict}, 'accept', "$case: MAIL accepted, as in the session";
		if ($real->{rcpt} =~ /^250/) {
			is $t->{rcpt}{verdict}, 'accept', "$case: RCPT accepted, as in the session";
		} else {
			is $t->{rcpt}{reply}, $real->{rcpt}, "$case: RCPT reply as in the session";
		}
	} else {
		is $t->{mail}{reply}, $real->{mail}, "$case: MAIL reply as in the session";
		is $t->{rcpt}, undef, "$case: RCPT not reached";
		is $t->{stage}, 'MAIL', "$case: decided at MAIL";
	}
	return $t;
}

# ---- relaxed (the default) ----
my $t = same('own name', 'mx.campus.test', 'a@b.example', 'u@campus.test');
is $t->{rule}, 'own-name', 'own name: rule own-name';
is $t->{verdict}, 'reject', '... verdict reject';
same('localhost', 'localhost', 'a@b.example', 'u@campus.test');
$t = same('a good name, local recipient', 'client.example', 'a@b.example', 'u@campus.test');
is $t->{verdict}, 'accept', '... verdict accept';
$t = same('relay attempt', 'client.example', 'a@b.example', 'u@elsewhere.example');
is $t->{rule}, 'relay', '... rule relay';
like $t->{reply}, qr/^554 5\.7\.1 <u\@elsewhere\.example>: /, '... 554 5.7.1';
same('no dots, relaxed', 'benderclmsuedu', 'a@b.example', 'u@campus.test');

# ---- strict, after a reload ----
$m->set_config(helo_policy => 'strict');
my $off = length $m->log_text;
kill 'HUP', $m->pid;
ok $m->wait_log(qr/reload: configuration .* loaded/, $off), 'reloaded: helo_policy = strict';
$t = same('no dots, strict', 'benderclmsuedu', 'a@b.example', 'u@campus.test');
is $t->{rule}, 'non-fqdn', '... rule non-fqdn';
is_deeply $t->{not_checked}, ['unresolvable'], '... unresolvable named as not checked (no DNS)';

# ---- what a session cannot show from here: AUTH, trust, EHLO listener ----
$t = policy_test('--client', '192.0.2.10', '--helo', 'mx.campus.test', '--auth', 'alice',
		 '--from', 'alice@campus.test', '--rcpt', 'u@elsewhere.example');
is $t->{verdict}, 'accept', 'authenticated: own name and relay accepted';
$t = policy_test('--client', '192.0.2.10', '--helo', 'client.example', '--auth', 'alice',
		 '--from', 'bob@campus.test', '--rcpt', 'u@campus.test');
is $t->{mail}{reply}, '553 5.7.1 <bob@campus.test>: sender address not owned by user alice',
	'sender_login = strict: the 553 mtad gives';
$m->set_config(relay_networks => '192.0.2.0/24');
$t = policy_test('--client', '192.0.2.10', '--helo', 'mx.campus.test', '--rcpt', 'u@elsewhere.example',
		 '--from', 'a@b.example');
ok $t->{trusted}, 'relay_networks: trusted';
is $t->{verdict}, 'accept', '... and accepted, HELO and relay';
$t = policy_test('--client', '198.51.100.7', '--helo', 'mx.campus.test', '--listener', $ehlo_listener);
is $t->{stage}, 'EHLO', 'helo_reject_at=ehlo listener: decided at EHLO';
is $t->{ehlo}{reply}, '550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.', '... with the reply';
$m->set_config(relay_networks => undef);
$off = length $m->log_text;
kill 'HUP', $m->pid;
ok $m->wait_log(qr/reload: configuration .* loaded/, $off), 'reloaded';
my $real = session('mx.campus.test', 'a@b.example', 'u@campus.test', port => (split /:/, $ehlo_listener)[1]);
is $real->{ehlo}, $t->{ehlo}{reply}, '... the reply a real session gets at EHLO there';

# ---- the text output, usage ----
my ($rc, $out, $err) = $m->mtaq('policy-test', '--client', '192.0.2.10', '--rdns',
				'host.example', '--helo', 'localhost');
is $rc, 0, 'policy-test (text)' or diag $err;
like $out, qr/^client: 192\.0\.2\.10 name host\.example$/m, 'text: the client and its given name';
like $out, qr/^MAIL: reject \(rule localhost\): 550 5\.7\.1 Invalid HELO\. HELO\/EHLO as localhost\.$/m,
	'text: MAIL, the rule, the exact reply';
like $out, qr/^verdict: reject at MAIL$/m, 'text: the verdict';
like $out, qr/^note: unresolvable not checked/m, 'text: the DNS fact not looked up';
($rc, undef, $err) = $m->mtaq('policy-test', '--helo', 'x.example');
is $rc, 64, 'no --client: usage error (64)';
($rc) = $m->mtaq('policy-test', '--client', 'not-an-ip');
is $rc, 64, 'a --client that is no address: 64';
($rc, undef, $err) = $m->mtaq('policy-test', '--client', '192.0.2.1', '--listener', '127.0.0.1:1');
is $rc, 1, 'an unknown --listener: 1';
like $err, qr/no such listen line/, '... said';

$m->stop;
done_testing;
