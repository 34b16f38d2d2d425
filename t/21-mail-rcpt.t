# 21-mail-rcpt.t - MAIL FROM and RCPT TO: paths, ESMTP parameters
# (SIZE RFC 1870, BODY RFC 6152), the recipient limit, and addresses
# that carry shell syntax (OpenSMTPD CVE-2020-7247).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

# Many refusals per session here: max_errors must not cut them short.
my $m = MtadTest->new(max_recipients => 5, max_errors => 100);
my $ehlo = "> EHLO client.example\n" . MtadTest::ehlo_script('client.example');

my $s = $m->raw;
$m->dialog($s, $ehlo . <<'END');
	# the null reverse-path
	> MAIL FROM:<>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	# SIZE= over the limit, at the limit
	> MAIL FROM:<a@b.test> SIZE=52428801
	< 552 5.3.4 *
	# too big for any counter: too big, or a syntax error
	> MAIL FROM:<a@b.test> SIZE=99999999999999999999999999
	<~ (552 5\.3\.4|501 5\.5\.4|555 5\.5\.4) .*
	> MAIL FROM:<a@b.test> SIZE=52428800
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> MAIL FROM:<a@b.test> BODY=8BITMIME
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> MAIL FROM:<a@b.test> BODY=7BIT SIZE=1000
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	> mail from:<a@b.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
	# parameters and syntax
	> MAIL FROM:<a@b.test> FROB=1
	< 555 5.5.4 *
	> MAIL FROM:<a@b.test> BODY=BINARYMIME
	<~ (555|501|504) 5\.5\.4 .*
	> MAIL FROM:a@b.test
	<~ 501 5\.\d\.\d .*
	> MAIL FROM:<a@b.test
	<~ 501 5\.\d\.\d .*
	> MAIL FROM:<a b@b.test>
	<~ 501 5\.\d\.\d .*
	> MAIL TO:<a@b.test>
	<~ 50[01] 5\.\d\.\d .*
	# a transaction is open: a second MAIL is out of order
	> MAIL FROM:<a@b.test>
	< 250 2.1.0 *
	> MAIL FROM:<c@d.test>
	< 503 5.5.1 *
	# recipients
	> RCPT TO:<>
	<~ 501 5\.\d\.\d .*
	> RCPT TO:u@campus.test
	<~ 501 5\.\d\.\d .*
	> RCPT TO:<u@campus.test> FROB=1
	<~ 555 5\.5\.4 .*
	> RCPT TO:<r1@campus.test>
	< 250 2.1.5 *
	> rcpt to:<r2@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<r3@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<r4@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<r5@campus.test>
	< 250 2.1.5 *
	# max_recipients = 5
	> RCPT TO:<r6@campus.test>
	< 452 4.5.3 *
	> RCPT TO:<r7@campus.test>
	< 452 4.5.3 *
	> DATA
	< 354 *
	> Subject: five recipients
	>
	> body
	> .
	<~ 250 2\.0\.0 Ok: queued as [0-9A-Z]{14}
	> QUIT
	< 221 2.0.0 *
END

# The message went to the five accepted recipients only.
my ($rc, $list) = $m->mtaq('list');
is $rc, 0, 'mtaq list';
for my $r (1 .. 5) {
	like $list, qr/\br$r\@campus\.test\b/, "recipient r$r is queued";
}
for my $r (6, 7) {
	unlike $list, qr/\br$r\@campus\.test\b/, "recipient r$r is not queued";
}

# Addresses that would do something if they ever reached a shell. Each
# must be refused (5xx with an enhanced code) and none may run.
my $pwned = $m->dir . '/pwned';
my @evil = (
	'<a|b@x.test>',
	'<a;b@x.test>',
	'<;touch${IFS}' . $pwned . ';@x.test>',
	'<`touch${IFS}' . $pwned . '`@x.test>',
	'<$(touch${IFS}' . $pwned . ')@x.test>',
	'<a&b@x.test>',
	'<a>b@x.test>',
	'<a\\b@x.test>',
	"<a\x01b\@x.test>",
	"<a\x1bb\@x.test>",
	"<a\x7fb\@x.test>",
);
$s = $m->raw;
$m->dialog($s, $ehlo);
for my $addr (@evil) {
	(my $shown = $addr) =~ s/([\x00-\x1f\x7f])/sprintf '\\x%02x', ord $1/ge;
	my $r = $m->send_recv($s, "MAIL FROM:$addr\r\n");
	like $r, qr/\A5\d\d 5\.\d\.\d /, "MAIL FROM:$shown is refused" or diag $r;
	$m->send_recv($s, "RSET\r\n");
}
is $m->send_recv($s, "MAIL FROM:<ok\@b.test>\r\n") =~ s/ .*//sr, '250', 'a clean MAIL FROM after them';
for my $addr (@evil) {
	(my $shown = $addr) =~ s/([\x00-\x1f\x7f])/sprintf '\\x%02x', ord $1/ge;
	my $r = $m->send_recv($s, "RCPT TO:$addr\r\n");
	like $r, qr/\A5\d\d 5\.\d\.\d /, "RCPT TO:$shown is refused" or diag $r;
}
$m->dialog($s, <<'END');
	> DATA
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
END
ok !-e $pwned, 'no address was executed';
is $m->queue_count, 1, 'only the first message is queued';

done_testing;
