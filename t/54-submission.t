# 54-submission.t - a `submission` listener (RFC 6409): MAIL needs AUTH
# (530 5.7.0 before it), with STARTTLS and with implicit TLS; Net::SMTP
# with starttls() and auth(); other listeners of the same server are not
# affected.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use MtadTest;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\r?\n?\z/;
my $ALICE = MtadTest::auth_plain('alice', 'secret');
my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
my $EHLO_START = MtadTest::ehlo_script('client.example', starttls => 1);

# listener 0: starttls submission, 1: tls submission, 2: plain port 25 style
my $m = MtadTest->new(listeners => ['starttls submission', 'tls submission', ''],
		      users => {alice => 'secret'});

# ---- STARTTLS submission ----
my $s = $m->raw;
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_START
	# before TLS: no AUTH possible, and MAIL needs it
	> MAIL FROM:<alice\@campus.test>
	< 530 5.7.0 *
END
$m->starttls($s);
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> MAIL FROM:<alice\@campus.test>
	< 530 5.7.0 *
	> RCPT TO:<u\@campus.test>
	< 503 5.5.1 *
	> ${\ MtadTest::auth_plain('alice', 'wrong')}
	< 535 5.7.8 *
	> MAIL FROM:<alice\@campus.test>
	< 530 5.7.0 *
	> $ALICE
	< 235 2.7.0 Authentication successful
END
my $qid1 = $m->queue_message($s, 'submitted', from => 'alice@campus.test');
# RFC 6409 §8.6: bare names in the address fields get the host name;
# everything else in the header, and the body, stays as it came.
$m->start_data($s, from => 'alice@campus.test');
my @bare = $m->dialog($s, <<'END');
	> From: Alice <alice@campus.test>
	> To: root, Bob <bob> (the boss),
	>  "Carol, C." <carol@example.org>
	> Subject: To: root in the subject stays
	>
	> To: root in the body stays
	> .
	< 250 2.0.0 Ok: queued as *
END
my ($qid_bare) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @bare;
{
	my ($rc, $body) = $m->mtaq('show', '--body', $qid_bare // 'NONE');
	$body =~ s/\r\n/\n/g;
	like $body, qr/^To: root\@mx\.campus\.test, Bob <bob\@mx\.campus\.test> \(the boss\),\n "Carol, C\." <carol\@example\.org>\n/m,
		'a submission: bare names in To: get the host name, folds and the rest kept' or diag $body;
	like $body, qr/^Subject: To: root in the subject stays\n/m, 'Subject: untouched';
	like $body, qr/\n\nTo: root in the body stays\n\z/, 'the body untouched';
}
# A header longer than mtad holds back (16 KB) goes as it came, and
# still gets its Date: and Message-ID: before the empty line.
{
	my $long = join '', map { sprintf "> X-Filler-%03d: %s\n", $_, 'x' x 100 } 1 .. 200;
	$m->start_data($s, from => 'alice@campus.test');
	my @r = $m->dialog($s, "> To: root\n$long> Subject: long\n>\n> body\n> .\n< 250 2.0.0 Ok: queued as *\n");
	my ($qid) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
	my ($rc, $body) = $m->mtaq('show', '--body', $qid // 'NONE');
	$body =~ s/\r\n/\n/g;
	like $body, qr/^To: root\nX-Filler-001: /m, 'a header over 16 KB: not rewritten';
	like $body, qr/^X-Filler-200: x+\nSubject: long\nDate: [^\n]+\nMessage-ID: <[^\n]+>\n\nbody\n\z/m,
		'... but Date: and Message-ID: are added before the empty line' or diag substr($body, -400);
}
$m->dialog($s, <<"END");
	# still authenticated for the next transaction
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> QUIT
	< 221 2.0.0 *
END
like $m->received_of($qid1), qr/\bwith ESMTPSA id \Q$qid1\E\b/, 'submitted message: Received: with ESMTPSA';
# RFC 6409 §8: the submission had no Date: or Message-ID:; mtad added
# them at the end of its header section, before the empty line.
{
	my ($rc, $body) = $m->mtaq('show', '--body', $qid1);
	$body =~ s/\r\n/\n/g;
	like $body, qr/^Subject: submitted\nDate: \w\w\w, \d+ \w\w\w \d{4} \d\d:\d\d:\d\d [-+]\d{4}\nMessage-ID: <\Q$qid1\E\.\d+\@mx\.campus\.test>\n\nbody\n\z/m,
		'a submission without Date: and Message-ID: gets both, before the empty line' or diag $body;
	like $m->log_text, qr/\Q$qid1\E: added Date: Message-ID: to a submission from /,
		'... and the log says so';
}

# ---- implicit TLS submission ----
$s = $m->tls_raw(1);
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> MAIL FROM:<alice\@campus.test>
	< 530 5.7.0 *
	> $ALICE
	< 235 2.7.0 Authentication successful
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	> QUIT
	< 221 2.0.0 *
END

# ---- the plain listener of the same server does not need AUTH ----
$s = $m->raw(port => $m->port(2));
$m->ehlo($s, 'client.example');		# no STARTTLS, no AUTH
$m->dialog($s, <<"END");
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	> QUIT
	< 221 2.0.0 *
END

# ---- Net::SMTP: starttls() then auth() ----
my $smtp = $m->smtp;
my $last = sub { $smtp->code . ' ' . join(' ', map { s/\s+\z//r } $smtp->message) };
ok !$smtp->mail('alice@campus.test'), 'Net::SMTP: MAIL before AUTH fails';
is $smtp->code, 530, '... with 530';
ok $smtp->starttls(SSL_verify_mode => SSL_VERIFY_NONE), 'Net::SMTP starttls()'
	or diag $last->() . " $IO::Socket::SSL::SSL_ERROR";
ok $smtp->auth('alice', 'secret'), 'Net::SMTP auth()' or diag $last->();
my $reply = $m->send_message($smtp, 'alice@campus.test', ['u@campus.test'],
	"Subject: net-smtp submission\n\nbody\n");
like $reply, $QUEUED, 'Net::SMTP message over STARTTLS + AUTH queued';
my ($qid2) = $reply =~ $QUEUED;
$smtp->quit;
like $m->received_of($qid2 // 'NONE'), qr/\bwith ESMTPSA\b/, '... Received: with ESMTPSA';
my ($rc, $show) = $m->mtaq('show', $qid2 // 'NONE');
like $show, qr/^[\w-]*(?:auth|sasl)[\w-]*\s*:.*\balice\b/mi, '... mtaq show names alice' or diag $show;

# Net::SMTP with a wrong password: auth() fails and MAIL still gets 530
$smtp = $m->smtp;
$smtp->starttls(SSL_verify_mode => SSL_VERIFY_NONE);
ok !$smtp->auth('alice', 'wrong'), 'Net::SMTP auth() with a wrong password fails';
ok !$smtp->mail('alice@campus.test'), '... and MAIL is refused';
is $smtp->code, 530, '... with 530';
$smtp->quit;

# ---- swaks: submission on 587-style STARTTLS ----
($rc, my $out, my $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
	'--tls', '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password', 'secret',
	'--from', 'alice@campus.test', '--to', 'u@campus.test', '--helo', 'client.example',
	'--timeout', '60');
is $rc, 0, 'swaks --tls --auth LOGIN on the submission port exits 0' or diag "$out$err";
($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
	'--tls', '--from', 'alice@campus.test', '--to', 'u@campus.test', '--helo', 'client.example',
	'--timeout', '60');
isnt $rc, 0, 'swaks without --auth on the submission port fails';
like $out, qr/^<~\*?\s+530 5\.7\.0 /m, '... on 530 5.7.0' or diag $out;

is $m->queue_count, 5, 'mtaq count: 5 (with the one to bare names and the long one)';
is $m->stop, 0, 'mtad exits 0 on SIGTERM';

done_testing;
