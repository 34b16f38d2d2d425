# 38-dsn-prefix.t - a bounce quotes the original header section as
# delivery sends it: the envelope's header_prefix (here the
# DKIM-Signature field mtad added, queue/queue.h) in front of the stored
# header (deliver/outcome.c headers_arrived, deliver/dsn.c
# smtp_dsn_headers). A message without a prefix is quoted as before. A
# milter that edits the header leaves the whole header section (its empty
# line too) in the prefix and the body alone in the queue: the bounce
# quotes that header and none of the body.
#
# A trusted client (relay_networks) sends From: alice@campus.test, which
# has a key (mtaq dkim-keygen), to a recipient the peer refuses with
# 550; the DSN goes to the envelope sender's sink (t/lib/Sink.pm) and
# its text/rfc822-headers part is read with Sink::parse_dsn.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use MtadTest;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;
my $keys = tempdir('dkim-keys-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});
my $cfg = MtadTest->new(start => 0);
my ($rc, $out, $err) = $cfg->mtaq('dkim-keygen', 'campus.test', 'sel', '--dir', $keys);
is $rc, 0, 'dkim-keygen campus.test sel' or diag $err;
my ($line) = $out =~ /^dkim_sign = (.*)$/m;

my $peer = Sink->new(rcpt => { 'bad@x.test' => '550 5.1.1 no such user' });
my $senders = Sink->new();
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      dkim_sign => $line, extra => <<"END");
route = x.test [127.0.0.1]:${\ $peer->port}
route = sender.test [127.0.0.1]:${\ $senders->port}
END

# bounce_of(SUBJECT, FROM) - submits a message from FROM (header) to
# bad@x.test and returns the parsed DSN that comes back for it.
sub bounce_of {
	my ($subject, $from) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, 'a@sender.test', ['bad@x.test'],
		"From: $from\nTo: bad\@x.test\nSubject: $subject\nMessage-ID: <$subject\@sender.test>\n\n"
		. "the body line\n");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject";
	my $msg = MtadTest::wait_for(30, sub {
		(grep { $_->{data} =~ /^Subject: Undelivered Mail Returned to Sender\r$/m
			&& $_->{data} =~ /^Subject: \Q$subject\E\r$/m } $senders->messages)[0] });
	ok $msg, "a DSN for '$subject' came back" or return {};
	return Sink::parse_dsn($msg->{data});
}

my $d = bounce_of('signed', 'Alice <alice@campus.test>');
my $h = $d->{rfc822_headers} // '';
like $h, qr/\ADKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=campus\.test; s=sel;/,
	'signed: the rfc822-headers part starts with the DKIM-Signature field' or diag $h;
like $h, qr/[ \t]b=[A-Za-z0-9+\/]{40}/, '... with its b= value';
like $h, qr/\ADKIM-Signature: .*?\nReceived: from .*?\nFrom: Alice <alice\@campus\.test>\n(?:.*\n)*?Subject: signed\n/s,
	'... then our Received: and the stored header, in the order delivery sends them';
is scalar(() = $h =~ /^DKIM-Signature:/mg), 1, '... once';
unlike $h, qr/the body line/, '... and not the body';

my $u = bounce_of('unsigned', 'someone@elsewhere.test');
my $uh = $u->{rfc822_headers} // '';
like $uh, qr/\AReceived: from /, 'not signed: the quoted header starts with our Received:' or diag $uh;
unlike $uh, qr/^DKIM-Signature:/m, '... no DKIM-Signature field';
like $uh, qr/^Subject: unsigned$/m, '... the stored header is quoted';

# ---- a milter's header: the whole header section is the prefix ----
# A milter that edits the header makes the queue keep the body alone and
# the header section, with its empty line, in header_prefix
# (session_milter.c); the bounce must quote that header, and none of
# the body. (Needs Debian's python3-milter, as t/37-milter.t.)
SKIP: {
	my $PY = '/usr/bin/python3';
	skip 'python3-milter (pymilter) is not installed', 6
		unless system("$PY -c 'import Milter' 2>/dev/null") == 0;
	my $dir = tempdir('mtad-milter-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});
	my $sock = "$dir/test.sock";
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', "$dir/milter.log";
		open STDERR, '>&', \*STDOUT;
		exec $PY, "$FindBin::Bin/lib/testmilter.py", "unix:$sock" or POSIX::_exit(127);
	}
	ok MtadTest::wait_for(15, sub { -S $sock }), 'the scripted milter listens';
	$m->set_config(milter => "test unix:$sock command_timeout=10 content_timeout=5");
	my $off = length $m->log_text;
	kill 'HUP', $m->pid;
	ok $m->wait_log(qr/reload: configuration .* loaded/, $off), 'mtad reloaded with the milter';
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, 'a@sender.test', ['bad@x.test'],
		"From: Alice <alice\@campus.test>\nTo: bad\@x.test\nSubject: milter-headers\n"
		. "Message-ID: <edited\@sender.test>\n\nfirst body line: not a header\n\nsecond\n");
	$smtp->quit;
	like $r, $QUEUED, 'queued: a message whose header the milter edits';
	my $msg = MtadTest::wait_for(30, sub {
		(grep { $_->{data} =~ /^Subject: Undelivered Mail Returned to Sender\r$/m
			&& $_->{data} =~ /^Message-ID: <edited\@sender\.test>\r$/m } $senders->messages)[0] });
	my $eh = $msg ? Sink::parse_dsn($msg->{data})->{rfc822_headers} // '' : '';
	like $eh, qr/\ADKIM-Signature: v=1; a=rsa-sha256;.*?\nX-Inserted: first\n(?:.*\n)*?Subject: changed by milter\n/s,
		'the DSN quotes the signature, then the header as the milter left it' or diag $eh;
	like $eh, qr/^X-Test-Milter: added$/m, '... the field the milter added included';
	unlike $eh, qr/not a header|^second$/m, '... and no line of the body';
	kill 'TERM', $pid;
	waitpid $pid, 0;
}

done_testing;
