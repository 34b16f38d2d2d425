# 61-helo-auth.t - the HELO rules are for unauthenticated sessions only.
# The seed's user could only send over port 465 once the campus relay
# judged HELO names: in mtad a client that authenticates sends mail
# whatever name its software says (localhost, the server's own name,
# Outlook's dotless name, Eudora's name under ours), on a STARTTLS
# listener after STARTTLS+AUTH and on an implicit TLS listener. The same
# names without AUTH are still refused, and a submission listener asks
# for AUTH (530) before any HELO rule.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $ALICE = MtadTest::auth_plain('alice', 'secret');
my %REPLY = (
	'own-name'       => '550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.',
	'own-address'    => '550 5.7.1 Invalid HELO. HELO/EHLO with my address.',
	'localhost'      => '550 5.7.1 Invalid HELO. HELO/EHLO as localhost.',
	'non-fqdn'       => '550 5.7.1 Invalid HELO. HELO/EHLO needs a fully qualified host name.',
	'under-own-name' => '550 5.7.1 Invalid HELO. HELO/EHLO with a name under my domain name.',
);
#           name                      rule (strict, unauthenticated)
my @NAMES = (['localhost',             'localhost'],
	     ['mx.campus.test',        'own-name'],
	     ['benderclmsuedu',        'non-fqdn'],
	     ['nibbler.mx.campus.test','under-own-name'],
	     ['[127.0.0.1]',           'own-address']);

# listener 0: starttls (port 25 style), 1: implicit TLS, 2: starttls submission
my $m = MtadTest->new(listeners => ['starttls', 'tls', 'starttls submission'],
		      users => {alice => 'secret'},
		      local_domains => 'campus.test', helo_policy => 'strict');

# send_one(SOCK, NAME) - one message, expected to be accepted; returns its id.
sub send_one { $m->queue_message(@_, from => 'alice@campus.test') }

for my $n (@NAMES) {
	my ($name, $rule) = @$n;
	my $EHLO_START = MtadTest::ehlo_script($name, starttls => 1);
	my $EHLO_TLS = MtadTest::ehlo_script($name, auth => 'PLAIN LOGIN');

	# ---- STARTTLS listener ----
	note "starttls listener, EHLO $name";
	my $s = $m->raw(port => $m->port(0));
	$m->dialog($s, <<"END");
	> EHLO $name
	$EHLO_START
	# plaintext, no AUTH: the rule applies
	> MAIL FROM:<alice\@campus.test>
	< $REPLY{$rule}
END
	$m->starttls($s) or next;
	$m->dialog($s, <<"END");
	> EHLO $name
	$EHLO_TLS
	# TLS alone is not authentication
	> MAIL FROM:<alice\@campus.test>
	< $REPLY{$rule}
	> RCPT TO:<u\@campus.test>
	< $REPLY{$rule}
	> $ALICE
	< 235 2.7.0 Authentication successful
END
	my $qid = send_one($s, "starttls+auth as $name");
	# and a second transaction in the same session
	send_one($s, "starttls+auth as $name, again");
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
	like $m->received_of($qid), qr/\bwith ESMTPSA id \Q$qid\E\b/,
		"... Received: with ESMTPSA (EHLO $name)";

	# ---- implicit TLS listener ----
	note "tls listener, EHLO $name";
	$s = $m->tls_raw(1);
	$m->dialog($s, <<"END");
	> EHLO $name
	$EHLO_TLS
	> MAIL FROM:<alice\@campus.test>
	< $REPLY{$rule}
	> $ALICE
	< 235 2.7.0 Authentication successful
END
	send_one($s, "tls+auth as $name");
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");

	# HELO (not EHLO) after AUTH is judged alike: still authenticated
	$s = $m->tls_raw(1);
	$m->ehlo($s, 'client.example', auth => 'PLAIN LOGIN');
	$m->dialog($s, <<"END");
	> $ALICE
	< 235 2.7.0 Authentication successful
	> HELO $name
	< 250 mx.campus.test
END
	send_one($s, "tls+auth, then HELO $name");
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");

	# ---- submission: AUTH first, before any HELO rule ----
	note "submission listener, EHLO $name";
	$s = $m->raw(port => $m->port(2));
	$m->dialog($s, <<"END");
	> EHLO $name
	$EHLO_START
	> MAIL FROM:<alice\@campus.test>
	< 530 5.7.0 *
END
	$m->starttls($s) or next;
	$m->dialog($s, <<"END");
	> EHLO $name
	$EHLO_TLS
	> MAIL FROM:<alice\@campus.test>
	< 530 5.7.0 *
	> RCPT TO:<u\@campus.test>
	< 503 5.5.1 *
	> $ALICE
	< 235 2.7.0 Authentication successful
END
	send_one($s, "submission as $name");
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
}

# Nothing an authenticated client did was logged as a policy rejection
# for MAIL after AUTH: count the rejections, exactly the unauthenticated
# MAIL and RCPT above (starttls: 1 plaintext MAIL + 1 MAIL + 1 RCPT under
# TLS; tls: 1 MAIL) per name.
my @rej;
for (1 .. 50) {
	@rej = grep { /NOQUEUE: reject: (?:MAIL|RCPT) from .*; from=.* rule=/ } split /\n/, $m->log_text;
	last if @rej >= 4 * @NAMES;
	select undef, undef, undef, 0.2;
}
is scalar(@rej), 4 * @NAMES, 'log: exactly the unauthenticated commands were refused'
	or diag join("\n", @rej);

done_testing;
