# 50-starttls.t - STARTTLS (RFC 3207): what EHLO offers before and after,
# the STARTTLS replies, the session starting over after the handshake,
# plaintext pipelined behind STARTTLS being thrown away, messages from
# swaks and Net::SMTP over STARTTLS, the Received: header, and a listener
# with starttls but no certificate being a config error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use MtadTest;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\r?\n?\z/;

# listener 0: starttls, 1: plain, 2: implicit TLS
my $m = MtadTest->new(listeners => ['starttls', '', 'tls'], users => {alice => 'secret'});
my $EHLO_PLAIN = MtadTest::ehlo_script('client.example', starttls => 1);
my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');

# ---- before and after STARTTLS ----
my ($s, $greeting) = $m->raw;
is $greeting, "220 mx.campus.test ESMTP mtad\r\n", 'plaintext greeting on a starttls listener';
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_PLAIN
	> STARTTLS now
	< 501 5.5.4 *
END
ok $m->starttls($s), 'STARTTLS upgrade';
is $s->peer_certificate('commonName'), 'mx.campus.test', 'the certificate is the configured one';
$m->dialog($s, <<"END");
	# the session starts over: EHLO is needed again
	> MAIL FROM:<a\@b.test>
	< 503 5.5.1 *
	> EHLO client.example
	$EHLO_TLS
	> STARTTLS
	< 503 5.5.1 *
	> NOOP
	< 250 2.0.0 *
	> QUIT
	< 221 2.0.0 *
	< [closed]
END

# After a transaction was begun and reset in plaintext, the TLS session
# still begins with nothing: no HELO, no transaction. (STARTTLS inside an
# open transaction is left out: the spec does not say what it gives.)
$s = $m->raw;
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_PLAIN
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
END
ok $m->starttls($s), 'STARTTLS after an RSET';
$m->dialog($s, <<"END");
	> RCPT TO:<u\@campus.test>
	< 503 5.5.1 *
	> MAIL FROM:<a\@b.test>
	< 503 5.5.1 *
	> HELO client.example
	< 250 mx.campus.test
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	> QUIT
	< 221 2.0.0 *
END

# ---- plaintext pipelined behind STARTTLS is discarded ----
$s = $m->raw;
$m->ehlo($s, 'client.example', starttls => 1);
ok $m->starttls($s, pipelined => "RSET\r\n"), 'STARTTLS\r\nRSET\r\n in one write: the handshake works';
my $stray = $m->read_reply($s, 2);
ok !defined $stray, 'nothing arrives over TLS before the client speaks'
	or diag "got: $stray";
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	> QUIT
	< 221 2.0.0 *
END

# A whole injected transaction must not be acted on either.
$s = $m->raw;
$m->ehlo($s, 'client.example', starttls => 1);
ok $m->starttls($s, pipelined => "MAIL FROM:<evil\@b.test>\r\nRCPT TO:<u\@campus.test>\r\n"),
	'STARTTLS with MAIL and RCPT behind it: the handshake works';
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_TLS
	# no transaction was carried over from the plaintext part
	> RCPT TO:<u\@campus.test>
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
END

# ---- STARTTLS where it is not offered ----
$s = $m->raw(port => $m->port(1));
$m->ehlo($s, 'client.example');		# no STARTTLS offered
$m->dialog($s, <<"END");
	> STARTTLS
	< 502 5.5.1 *
	> NOOP
	< 250 2.0.0 *
	> QUIT
	< 221 2.0.0 *
END

# ---- a plaintext message on the starttls listener: ESMTP, no TLS line ----
my $smtp = $m->smtp;
my $reply = $m->send_message($smtp, 'a@b.test', ['u@campus.test'], "Subject: plain\n\nplain\n");
like $reply, $QUEUED, 'a message without STARTTLS is accepted';
my ($qid0) = $reply =~ $QUEUED;
$smtp->quit;
my $rcvd = $m->received_of($qid0 // 'NONE');
like $rcvd, qr/\bwith ESMTP id \Q${\($qid0 \/\/ '')}\E\b/, 'Received: with ESMTP (no S) without TLS' or diag $rcvd;
unlike $rcvd, qr/\(using TLS/, '... and no (using TLS...) part' or diag $rcvd;

# ---- raw message over STARTTLS: Received: with ESMTPS and the cipher ----
$s = $m->raw;
$m->starttls_ehlo($s, 'client.example');
my ($ver, $cipher) = $m->tls_info($s);
my $qid1 = $m->queue_message($s, 'over starttls', body => 'secret body');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
$rcvd = $m->received_of($qid1);
like $rcvd, qr/\bwith ESMTPS id \Q$qid1\E\b/, 'Received: with ESMTPS' or diag $rcvd;
like $rcvd, qr/\(using \Q$ver\E with cipher \Q$cipher\E\b/, "Received: (using $ver with cipher $cipher" or diag $rcvd;
like $rcvd, qr/\(using TLSv1\.[23] with cipher \S+ [^)]*\)/, 'the (using ...) part is closed' or diag $rcvd;

# ---- swaks --tls ----
my ($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
	'--tls', '--from', 'a@b.test', '--to', 'u@campus.test', '--helo', 'client.example',
	'--timeout', '60');
is $rc, 0, 'swaks --tls exits 0' or diag "$out$err";
like $out, qr/^<-\s+220 2\.0\.0 Ready to start TLS/m, 'swaks saw 220 2.0.0 Ready to start TLS' or diag $out;
my ($qid2) = $out =~ /^<~\s+250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})/m;
ok defined $qid2, 'swaks got a queue id over TLS' or diag $out;
$qid2 //= 'NONE';
like $m->received_of($qid2), qr/\bwith ESMTPS id \Q$qid2\E\b/,
	'swaks message: Received: with ESMTPS';
like $m->received_of($qid2), qr/\(using TLSv1\.[23] with cipher \S+/, 'swaks message: (using TLSv1.x with cipher ...)';

# ---- Net::SMTP starttls() ----
$smtp = $m->smtp;
ok defined $smtp->supports('STARTTLS'), 'Net::SMTP sees STARTTLS in EHLO';
ok !defined $smtp->supports('AUTH'), '... and no AUTH before TLS';
ok $smtp->starttls(SSL_verify_mode => SSL_VERIFY_NONE), 'Net::SMTP starttls()'
	or diag $smtp->code . ' ' . join(' ', $smtp->message) . " $IO::Socket::SSL::SSL_ERROR";
ok !defined $smtp->supports('STARTTLS'), 'after TLS, no STARTTLS in EHLO';
is +($smtp->supports('AUTH') // '') =~ s/\s+\z//r, 'PLAIN LOGIN', 'after TLS, AUTH PLAIN LOGIN';
($ver, $cipher) = $m->tls_info($smtp);
$reply = $m->send_message($smtp, 'a@b.test', ['u@campus.test', 'v@campus.test'],
	"Subject: net-smtp starttls\n\nbody\n");
like $reply, $QUEUED, 'Net::SMTP message over STARTTLS queued';
my ($qid3) = $reply =~ $QUEUED;
$smtp->quit;
$qid3 //= 'NONE';
$rcvd = $m->received_of($qid3);
like $rcvd, qr/\bwith ESMTPS id \Q$qid3\E\b/, 'Net::SMTP message: Received: with ESMTPS' or diag $rcvd;
like $rcvd, qr/\(using \Q$ver\E with cipher \Q$cipher\E\b/, "Net::SMTP message: (using $ver with cipher $cipher" or diag $rcvd;
my ($src, $show) = $m->mtaq('show', '--body', $qid3);
like $show, qr/^body\r?$/m, 'the body arrived';

is $m->queue_count, 4, 'mtaq count: 4';
$m->stop;

# ---- starttls or tls without tls_cert_file: mtad -n names file:line ----
for my $flags ('starttls', 'tls', 'starttls submission') {
	my $c = MtadTest->new(listeners => ['', $flags], tls => 0, start => 0);
	my @lines = split /\n/, MtadTest::slurp($c->conf_path);
	my ($line) = grep { $lines[$_ - 1] =~ /^listen = .*\b\Q$flags\E$/ } 1 .. @lines;
	my ($crc, $cout, $cerr) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $c->conf_path, '-n');
	isnt $crc, 0, "listen ... $flags without tls_cert_file: mtad -n fails";
	like $cerr, qr/\Q${\ $c->conf_path }\E:$line\b/, "... naming mtad.conf:$line" or diag $cerr;
}

done_testing;
