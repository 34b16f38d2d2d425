# 27-sender-login.t - sender ownership (sender_login, sender_login_map):
# an authenticated login sends only as addresses it owns, in MAIL FROM
# and in the From: header (checked at the end of DATA, before the 250;
# nothing of a refused message is queued). By default alice owns
# alice@D for each local domain; a map line replaces that for its login;
# <> is always allowed; unauthenticated clients are not affected. Real
# clients too: swaks, Net::SMTP, Python's smtplib.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest qw(auth_plain);

my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
my %users = (alice => 'secret', bob => 'hunter2', carol => 'pw3');

sub login {
	my ($m, $user) = @_;
	my $s = $m->tls_raw(0);
	$m->dialog($s, "> EHLO client.example\n$EHLO_TLS> " . auth_plain($user, $users{$user})
		   . "\n< 235 2.7.0 Authentication successful\n");
	return $s;
}

my $m = MtadTest->new(listeners => ['tls', ''], users => \%users,
		      local_domains => 'campus.test lists.campus.test',
		      relay_networks => '127.0.0.0/8');
my $before = $m->queue_count;

# ---- the envelope sender ----
my $s = login($m, 'alice');
$m->dialog($s, <<'END');
	> MAIL FROM:<president@campus.test>
	< 553 5.7.1 <president@campus.test>: sender address not owned by user alice
	> MAIL FROM:<bob@campus.test>
	< 553 5.7.1 <bob@campus.test>: sender address not owned by user alice
	> MAIL FROM:<alice@other.example>
	< 553 5.7.1 <alice@other.example>: sender address not owned by user alice
	> MAIL FROM:<Alice@Campus.Test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> MAIL FROM:<alice@lists.campus.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> MAIL FROM:<>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
END
like $m->log_text, qr/NOQUEUE: reject: MAIL from .*553 5\.7\.1 <president\@campus\.test>: sender address not owned by user alice/,
	'the refusal is logged as a Postfix-shaped reject line';

# ---- the From: header, checked at the end of DATA ----
sub message_from {
	my ($s, $from_header, $want) = @_;
	$m->dialog($s, <<"END");
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	> RCPT TO:<u\@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> $from_header
	> Subject: from test
	>
	> body
	> .
	< $want
END
}
message_from($s, 'From: president@campus.test',
	     '553 5.7.1 <president@campus.test>: sender address not owned by user alice');
message_from($s, "From: \"Alice A.\" <alice\@campus.test>", '250 2.0.0 Ok: queued as *');
message_from($s, "From: alice\@campus.test (Alice),\n> \tThe Boss <boss\@campus.test>",
	     '553 5.7.1 <boss@campus.test>: sender address not owned by user alice');
message_from($s, "fRoM: \"x, y\" <alice\@campus.test>, team: bob\@campus.test;",
	     '553 5.7.1 <bob@campus.test>: sender address not owned by user alice');
message_from($s, 'From-Display: president@campus.test', '250 2.0.0 Ok: queued as *');
message_from($s, 'From: a@campus.test, ' . join(', ', map { "alice$_\@x.test" } 1 .. 40),
	     '553 5.7.1 From: header has more addresses than can be checked for user alice');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
is $m->queue_count, $before + 2, 'only the two messages with owned From: were queued';

# ---- not authenticated: not affected (relay_networks) ----
$s = $m->raw(port => $m->port(1));
$m->ehlo($s, 'client.example');
$m->queue_message($s, 'trusted', from => 'president@campus.test');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");

# ---- real clients ----
my ($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port(0),
	'--tls-on-connect', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'secret',
	'--from', 'president@campus.test', '--to', 'u@campus.test', '--helo', 'client.example',
	'--timeout', '60');
isnt $rc, 0, 'swaks as alice with --from president@: fails';
like $out, qr/^<~\* 553 5\.7\.1 <president\@campus\.test>: sender address not owned by user alice/m,
	'... with the 553' or diag $out;

SKIP: {
	skip 'no python3', 2 unless -x '/usr/bin/python3';
	my $py = <<'PY';
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[1]), context=ctx, timeout=30)
s.login('alice', 'secret')
msg = "From: Dean <dean@campus.test>\r\nTo: u@campus.test\r\nSubject: forged\r\n\r\nhi\r\n"
try:
    s.sendmail('alice@campus.test', ['u@campus.test'], msg)
    print("accepted")
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
PY
	($rc, $out, $err) = MtadTest::run('/usr/bin/python3', '-c', $py, $m->port(0));
	is $rc, 0, 'smtplib ran' or diag $err;
	like $out, qr/^553 5\.7\.1 <dean\@campus\.test>: sender address not owned by user alice$/m,
		'smtplib: a forged From: with a good envelope gets 553 at the end of DATA' or diag $out;
}

# ---- sender_login_map, and SIGHUP ----
my $map = $m->dir . '/sender_logins';
open my $fh, '>', $map or die;
print $fh "# who may send as what\nalice: alice\@campus.test, \@lists.campus.test\ncarol: helpdesk\@campus.test\n";
close $fh;
$m->set_config(sender_login_map => $map);
kill 'HUP', $m->pid;
$m->wait_log(qr/reload: configuration .* loaded/) or diag $m->log_text;
$s = login($m, 'carol');
$m->dialog($s, <<'END');
	> MAIL FROM:<helpdesk@campus.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> MAIL FROM:<carol@campus.test>
	< 553 5.7.1 <carol@campus.test>: sender address not owned by user carol
	> QUIT
	< 221 2.0.0 *
END
$s = login($m, 'alice');
$m->dialog($s, <<'END');
	> MAIL FROM:<news@lists.campus.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> MAIL FROM:<helpdesk@campus.test>
	< 553 5.7.1 *
	> QUIT
	< 221 2.0.0 *
END
$s = login($m, 'bob');
$m->dialog($s, "> MAIL FROM:<bob\@campus.test>\n< 250 2.1.0 *\n> QUIT\n< 221 2.0.0 *\n");

# a broken map: mtad -n says where; a reload keeps the old one
open $fh, '>>', $map or die;
print $fh "dave helpdesk\@campus.test\n";
close $fh;
my $mtad = ($ENV{MTAD_BUILD} // "$FindBin::Bin/../build") . '/mtad';
($rc, $out, $err) = MtadTest::run($mtad, '-n', '-c', $m->conf_path);
isnt $rc, 0, 'mtad -n refuses a bad sender_login_map';
like $err, qr/sender_logins:4: expected "login: address/, '... naming file:line' or diag $err;
my $off = length $m->log_text;
kill 'HUP', $m->pid;
ok defined $m->wait_log(qr/reload: keeping the old configuration: .*sender_logins:4:/, $off),
	'SIGHUP with a bad map keeps the old configuration';
$s = login($m, 'carol');
$m->dialog($s, "> MAIL FROM:<helpdesk\@campus.test>\n< 250 2.1.0 *\n> QUIT\n< 221 2.0.0 *\n");
$m->stop;

# ---- warn and off ----
for my $mode (qw(warn off)) {
	my $w = MtadTest->new(listeners => ['tls'], users => \%users, sender_login => $mode);
	my $s = login($w, 'alice');
	$w->queue_message($s, "sender_login $mode", from => 'president@campus.test');
	$w->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
	if ($mode eq 'warn') {
		like $w->log_text, qr/warning: .*sasl_username=alice\S* sends as <president\@campus\.test> in MAIL, which it does not own/,
			'sender_login = warn: accepted, and a warning in the log';
	} else {
		unlike $w->log_text, qr/does not own/, 'sender_login = off: accepted, nothing said';
	}
	$w->stop;
}

done_testing;
