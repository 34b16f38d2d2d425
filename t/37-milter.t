# 37-milter.t - the milter client against real filters on loopback:
# a scripted milter written with Debian's python3-milter (pymilter, on
# libmilter; t/lib/testmilter.py) on a temporary Unix socket, and
# Debian's opendkim in signing mode on 127.0.0.1, whose signature
# python3-dkim (dkimpy) verifies with the test's key.
#
# Checked: a reject at MAIL, RCPT (the milter's 5.7.1 text, one line or
# smfi_setmlreply's several) and the end
# of DATA is the SMTP reply, logged as Postfix's milter-reject, never a
# bounce; tempfail; discard (250, nothing delivered); quarantine (held in
# the queue, logged milter-hold with the reason); header edits (added,
# inserted first, changed, deleted); recipients and sender changed; the
# body replaced (6.6 MB, streamed: mtad's peak memory stays small;
# a milter that stops half-way is a 451 whatever its default_action);
# header changes on a 4.55 MB message; the milter saw mtad's Received: and every header; a
# milter that sleeps past content_timeout gets default_action (tempfail
# 451 4.7.1 here, accept for a second, unreachable milter, which is then
# skipped). Messages go on to a t/lib/Sink.pm peer, so what was queued
# is what arrives.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);
use MtadTest;
use Sink;

my $PY = '/usr/bin/python3';
plan skip_all => 'python3-milter (pymilter) is not installed'
	unless system("$PY -c 'import Milter' 2>/dev/null") == 0;
my $have_opendkim = -x '/usr/sbin/opendkim' && -x '/usr/sbin/opendkim-genkey'
	&& system("$PY -c 'import dkim' 2>/dev/null") == 0;

my $dir = tempdir('mtad-milter-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});
my @pids;
END { for my $pid (@pids) { kill 'TERM', $pid; waitpid $pid, 0 } }

# spawn(CMD...) - a filter process of this test, its PID kept to stop it.
sub spawn {
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', "$dir/filters.log";
		open STDERR, '>&', \*STDOUT;
		exec @_ or POSIX::_exit(127);
	}
	push @pids, $pid;
	return $pid;
}

my $sock = "$dir/test.sock";
spawn($PY, "$FindBin::Bin/lib/testmilter.py", "unix:$sock");
ok MtadTest::wait_for(15, sub { -S $sock }), 'the scripted milter listens on its socket'
	or BAIL_OUT('no milter: ' . MtadTest::slurp("$dir/filters.log"));

my $dead_port = MtadTest::free_port('127.0.0.1');
my $sink = Sink->new;
my $sp = $sink->port;
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      relayhost => "[127.0.0.1]:$sp", extra => <<"END");
route = campus.test [127.0.0.1]:$sp
milter = test unix:$sock command_timeout=10 content_timeout=3
milter = gone inet:127.0.0.1:$dead_port connect_timeout=2 default_action=accept
END

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

# message(SUBJECT, EXTRA_HEADERS, BODY) - the message text.
sub message {
	my ($subject, $extra, $body) = @_;
	return "From: <a\@sender.test>\nTo: <u\@campus.test>\nSubject: $subject\n"
		. "Message-ID: <" . ($subject =~ s/\W/-/gr) . "\@sender.test>\n$extra\n$body";
}

# submit(FROM, [TO...], SUBJECT, EXTRA, BODY) - one transaction; the final reply.
sub submit {
	my ($from, $to, $subject, $extra, $body) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, $from, $to, message($subject, $extra // '', $body // "hello\n"));
	$smtp->quit;
	return $r;
}

# arrived(SUBJECT_RE) - the messages at the sink whose Subject matches (waits up to 30 s).
sub arrived {
	my ($re) = @_;
	my @got;
	MtadTest::wait_for(30, sub {
		@got = grep { $_->{data} =~ /^Subject: $re\r?$/m } $sink->messages;
	});
	return @got;
}

# ---- a plain message: the milter sees everything, its header lands ----
my $r = submit('a@sender.test', ['u@campus.test'], 'plain one', "X-Extra: folded\n\tline\n");
like $r, $QUEUED, 'a plain message is queued through the milters';
my ($got) = arrived(qr/plain one/);
ok $got, '... and arrives';
my ($h, $body) = Sink::header_block($got ? $got->{data} : '');
like $h->{'x-milter-saw'} // '', qr/\AReceived,From,To,Subject,Message-ID,X-Extra body=\d+\z/,
	'... the milter saw mtad\'s Received: and every field, then the body';
is $body, "hello\n", '... the body is intact';
like $got->{data} // '', qr/\AReceived: /, '... Received: is still first';
like $m->log_text, qr/warning: milter gone: inet:127\.0\.0\.1:$dead_port: .*; default_action=accept/,
	'... the unreachable milter is a warning (default_action=accept: skipped)';

# ---- the macros filters expect (Postfix's defaults and issue 17's list) ----
{
	my $r = submit('a@sender.test', ['u@campus.test'], 'milter-macros');
	my ($qid) = $r =~ $QUEUED;
	like $r, $QUEUED, 'a message for the macros is queued';
	my ($got) = arrived(qr/milter-macros/);
	my ($h) = Sink::header_block($got ? $got->{data} : '');
	my %mac = map { split /=/, $_, 2 } split /;/, $h->{'x-milter-macros'} // '';
	is $mac{'{daemon_name}'}, 'mtad', '{daemon_name}';
	like $mac{v} // '', qr/\Amtad \d+\.\d+/, 'v: the MTA and its version';
	is $mac{'{daemon_addr}'}, '127.0.0.1', '{daemon_addr}: the listener';
	is $mac{'{client_addr}'}, '127.0.0.1', '{client_addr}';
	ok length($mac{j} // '') && $mac{j} ne 'None', 'j: our host name';
	is $mac{'{if_name}'}, $mac{j}, '{if_name}';
	ok length($mac{'{client_name}'} // ''), '{client_name}';
	is $mac{'{mail_addr}'}, 'a@sender.test', '{mail_addr}';
	is $mac{'{rcpt_addr}'}, 'u@campus.test', '{rcpt_addr}';
	is $mac{i}, $qid, 'i: the queue id the client was told';
}

# ---- a body of several 64 KB chunks: the milter sees every byte, the queue too ----
{
	my $big = ('0123456789' x 9 . "\n") x 2000;
	my $r = submit('a@sender.test', ['u@campus.test'], 'big body', '', $big);
	like $r, $QUEUED, 'a 180 KB body is queued through the milters';
	my ($got) = arrived(qr/big body/);
	my ($h, $body) = Sink::header_block($got ? $got->{data} : '');
	like $h->{'x-milter-saw'} // '', qr/ body=184000\z/, '... the milter saw all 184000 bytes (CRLF)';
	ok $body eq $big, '... and it arrives intact';
}

# ---- a message bigger than any hold: header changes still apply (the body streams) ----
{
	my $off = length $m->log_text;
	my $huge = ('abcdefghij' x 9 . "\n") x 50000;	# 4.55 MB
	my $r = submit('a@sender.test', ['u@campus.test'], 'milter-headers huge', '', $huge);
	like $r, $QUEUED, 'a 4.55 MB message with header changes is queued';
	my ($got) = arrived(qr/changed by milter/);
	my ($h, $body) = Sink::header_block($got ? $got->{data} : '');
	is $h->{'x-test-milter'}, 'added', '... the header change is applied';
	ok $body eq $huge, '... the body arrives intact';
	unlike substr($m->log_text, $off), qr/not applied/, '... and nothing was skipped';
}

# ---- a 6.6 MB replacement body streams to the queue ----
{
	my $status = sub { MtadTest::slurp("/proc/" . $m->pid . "/status") // '' };
	my ($hwm0) = $status->() =~ /^VmHWM:\s+(\d+) kB/m;
	my $r = submit('a@sender.test', ['u@campus.test'], 'milter-bigbody', '', "small\n");
	like $r, $QUEUED, 'a milter replaces the body with 6.6 MB: queued';
	my ($hwm1) = $status->() =~ /^VmHWM:\s+(\d+) kB/m;
	my ($got) = arrived(qr/milter-bigbody/);
	my (undef, $body) = Sink::header_block($got ? $got->{data} : '');
	my $want = ('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-=' . "\n") x 100000;
	ok defined $body && $body eq $want, '... the whole replacement arrives, byte for byte';
	SKIP: {
		# ASan keeps freed memory in quarantine: the peak says nothing there.
		skip 'peak memory is not meaningful under ASan', 1 if ($ENV{MTAD_BUILD} // '') =~ /asan/;
		cmp_ok $hwm1 - $hwm0, '<', 4096,
			"... mtad's peak memory grew by less than 4 MB ($hwm0 -> $hwm1 kB): not held";
	}
}

# ---- PIPELINING: the commands behind one that waits for the milters wait too ----
{
	my $s = $m->raw;
	$m->send_recv($s, "EHLO client.example\r\n");
	$m->send_bytes($s, "MAIL FROM:<a\@sender.test>\r\nRCPT TO:<rcptreject\@campus.test>\r\n"
		. "RCPT TO:<u\@campus.test>\r\nDATA\r\n");
	my @r = map { $m->read_reply($s) // '' } 1 .. 4;
	like $r[0], qr/\A250 /, 'pipelined: MAIL 250';
	like $r[1], qr/\A550 5\.7\.1 Recipient refused/, '... the first RCPT refused by the milter';
	like $r[2], qr/\A250 /, '... the second accepted';
	like $r[3], qr/\A354 /, '... DATA 354, in order';
	my $q = $m->send_recv($s, message('pipelined', '', "x\n") =~ s/\n/\r\n/gr . ".\r\nQUIT\r\n");
	like $q, qr/\A250 2\.0\.0 Ok: queued as /, '... the message queued';
	close $s;
}

# ---- a multi-line reply from a milter (smfi_setmlreply) ----
{
	my $off = length $m->log_text;
	my $s = $m->raw;
	$m->send_recv($s, "EHLO client.example\r\n");
	$m->send_recv($s, "MAIL FROM:<a\@sender.test>\r\n");
	$m->send_recv($s, "RCPT TO:<u\@campus.test>\r\n");
	$m->send_recv($s, "DATA\r\n");
	my $q = $m->send_recv($s, message('milter-mlreply', '', "x\n") =~ s/\n/\r\n/gr . ".\r\n");
	is $q, "550-5.7.1 first line of the refusal\r\n550-5.7.1 second line\r\n"
		. "550 5.7.1 third line\r\n", "a milter's three-line reply is the SMTP reply, line by line";
	like $m->send_recv($s, "NOOP\r\n"), qr/\A250 /, '... and the session goes on';
	ok $m->wait_log(qr/milter-reject: END-OF-MESSAGE from \S+: 550 5\.7\.1 first line of the refusal  550-5\.7\.1 second line  550 5\.7\.1 third line;/, $off),
		'... logged on one line';
	close $s;
}

# ---- rejects at each stage: the SMTP reply ----
my $off = length $m->log_text;
$r = submit('mailreject@sender.test', ['u@campus.test'], 'no');
like $r, qr/\A550 5\.7\.1 /, 'a reject at MAIL is the reply to MAIL';
ok $m->wait_log(qr/NOQUEUE: milter-reject: MAIL from \S+: 550 5\.7\.1 .*; from=<mailreject\@sender\.test> proto=ESMTP helo=<client\.example>/, $off),
	'... logged as Postfix\'s milter-reject';

$r = submit('a@sender.test', ['rcptreject@campus.test'], 'no');
is $r, '550 5.7.1 Recipient refused by the test milter', 'a reject at RCPT: the milter\'s code and text';
ok $m->wait_log(qr/NOQUEUE: milter-reject: RCPT from .* to=<rcptreject\@campus\.test>/, $off),
	'... logged with to=<>';

$r = submit('a@sender.test', ['u@campus.test'], 'milter-reject', '', "spam spam\n");
is $r, '550 5.7.1 Message refused by the test milter', 'a reject at the end of DATA is the DATA reply';
ok $m->wait_log(qr/[0-9A-Z]{14}: milter-reject: END-OF-MESSAGE from .*: 550 5\.7\.1 Message refused/, $off),
	'... logged with the queue id';

$r = submit('a@sender.test', ['u@campus.test'], 'milter-tempfail');
like $r, qr/\A451 4\.7\.1 /, 'a tempfail at the end of DATA: 451 4.7.1';

$r = submit('a@sender.test', ['u@campus.test'], 'milter-discard');
like $r, $QUEUED, 'a discard is a 250 to the client';
ok $m->wait_log(qr/milter-discard: END-OF-MESSAGE from /, $off), '... logged milter-discard';

# ---- quarantine: held in the queue ----
$r = submit('a@sender.test', ['u@campus.test'], 'milter-quarantine');
like $r, $QUEUED, 'a quarantined message is queued';
my ($qqid) = $r =~ $QUEUED;
ok $m->wait_log(qr/\Q$qqid\E: milter-hold: END-OF-MESSAGE from .*: milter triggers HOLD action: test quarantine reason/, $off),
	'... logged milter-hold with the reason';
my ($rc, $out) = $m->mtaq('list');
like $out, qr/\Q$qqid\E.*hold|hold.*\Q$qqid\E|\Q$qqid\E!/s, '... and mtaq lists it held' or diag $out;

# ---- modifications ----
$r = submit('a@sender.test', ['u@campus.test'], 'milter-headers', "X-Remove: me\n");
like $r, $QUEUED, 'header edits: queued';
($got) = arrived(qr/changed by milter/);
ok $got, '... Subject changed';
($h) = Sink::header_block($got ? $got->{data} : '');
is $h->{'x-test-milter'}, 'added', '... a field added';
ok !exists $h->{'x-remove'}, '... a field deleted';
like $got->{data} // '', qr/\AX-Inserted: first\r\nReceived: /, '... a field inserted at index 0';

$r = submit('a@sender.test', ['u@campus.test', 'v@campus.test'], 'milter-rcpt');
like $r, $QUEUED, 'envelope edits: queued';
my @got = arrived(qr/milter-rcpt/);
is_deeply [sort map { @{ $_->{to} } } @got], ['added@campus.test', 'v@campus.test'],
	'... the first recipient deleted, one added';
is $got[0]{from}, 'changed@sender.test', '... the sender changed' if @got;

$r = submit('a@sender.test', ['u@campus.test'], 'milter-body', '', "original body\n");
like $r, $QUEUED, 'body replaced: queued';
($got) = arrived(qr/milter-body/);
(undef, $body) = Sink::header_block($got ? $got->{data} : '');
is $body, "replaced body line 1\nreplaced line 2\n", '... the replacement body arrives, not the original';

# ---- a milter past its timeout: default_action ----
$off = length $m->log_text;
$r = submit('a@sender.test', ['u@campus.test'], 'milter-sleep');
like $r, qr/\A451 4\.7\.1 /, 'a milter that sleeps past content_timeout: tempfail (its default_action)';
ok $m->wait_log(qr/warning: milter test: unix:\Q$sock\E: timeout; default_action=tempfail/, $off),
	'... a warning is logged';
$r = submit('a@sender.test', ['u@campus.test'], 'after the sleep');
like $r, $QUEUED, 'the next session connects to the milter again';

# ---- opendkim in signing mode ----
SKIP: {
	skip 'opendkim or python3-dkim is not installed', 4 unless $have_opendkim;
	my $kd = "$dir/dkim";
	mkdir $kd;
	is system('/usr/sbin/opendkim-genkey', '-D', $kd, '-d', 'sender.test', '-s', 'sel', '-b', '2048'), 0,
		'opendkim-genkey makes a key';
	my $dport = MtadTest::free_port('127.0.0.1');
	open my $fh, '>', "$kd/opendkim.conf" or die;
	print $fh "Domain sender.test\nSelector sel\nKeyFile $kd/sel.private\n"
		. "Socket inet:$dport\@127.0.0.1\nBackground no\nMode s\n"
		. "Canonicalization relaxed/relaxed\nInternalHosts 127.0.0.1\nSyslog no\n"
		. "PidFile $kd/pid\nUserID " . getpwuid($<) . "\nRequireSafeKeys no\n";
	close $fh;
	spawn('/usr/sbin/opendkim', '-f', '-x', "$kd/opendkim.conf");
	ok MtadTest::wait_for(15, sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$dport") }),
		'opendkim listens' or diag MtadTest::slurp("$dir/filters.log");
	$m->set_config(milter => "dkim inet:127.0.0.1:$dport");
	$m->restart;
	$r = submit('a@sender.test', ['u@campus.test'], 'signed by opendkim', "X-Odd:   spaces  \n",
		  "line one\n\nline three with trailing space \n");
	like $r, $QUEUED, 'a message through opendkim is queued';
	($got) = arrived(qr/signed by opendkim/);
	my $raw = $got ? $got->{data} : '';
	open $fh, '>', "$dir/signed.eml" or die;
	print $fh $raw;
	close $fh;
	my $txt = MtadTest::slurp("$kd/sel.txt");
	my $p = join '', $txt =~ /"([^"]*)"/g;
	open $fh, '>', "$dir/verify.py" or die;
	print $fh <<'PY';
import sys, dkim
msg = open(sys.argv[1], 'rb').read()
rec = open(sys.argv[2]).read().encode()
def dnsfunc(name, timeout=5):
    return rec if name == b'sel._domainkey.sender.test.' else None
print('pass' if dkim.verify(msg, dnsfunc=dnsfunc) else 'fail')
PY
	close $fh;
	open $fh, '>', "$dir/record" or die;
	print $fh $p;
	close $fh;
	my $v = `$PY $dir/verify.py $dir/signed.eml $dir/record 2>&1`;
	is $v, "pass\n", 'python3-dkim verifies the signature opendkim added through mtad'
		or diag "$v\n$raw";
}

# ---- built-in DKIM signs what the milters made (issue 17) ----
# The signer is fed after the milters: a header a milter changed and a
# body it replaced are what gets signed, and dkimpy verifies the result.
{
	my $keys = "$dir/dkim-builtin";
	mkdir $keys or die "$keys: $!";
	my ($krc, $kout, $kerr) = $m->mtaq('dkim-keygen', 'sender.test', 'mil', '--dir', $keys);
	is $krc, 0, 'dkim-keygen sender.test' or diag $kerr;
	my ($name, $strings) = $kout =~ /^(\S+)\. IN TXT \((.*)\)$/m;
	my $txt = join '', ($strings // '') =~ /"([^"]*)"/g;
	my $d = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
			      extra => "route = campus.test [127.0.0.1]:$sp\n"
				     . "milter = test unix:$sock command_timeout=10 content_timeout=5\n"
				     . "dkim_sign = sender.test mil $keys/sender.test.mil.key\n");
	for my $case (['milter-headers signed', "X-Remove: me\n", "hello\n"],
		      ['milter-body signed', '', "original body\n"]) {
		my ($subject, $extra, $body) = @$case;
		my $smtp = $d->smtp;
		my $r = $d->send_message($smtp, 'a@sender.test', ['u@campus.test'],
					 message($subject, $extra, $body));
		$smtp->quit;
		like $r, $QUEUED, "$subject: queued";
		my $mid = ($subject =~ s/\W/-/gr) . '@sender.test';
		my $got = MtadTest::wait_for(30, sub {
			(grep { $_->{data} =~ /^Message-ID: <\Q$mid\E>\r?$/m } $sink->messages)[0];
		});
		ok $got, "$subject: arrived" or next;
		my $data = $got->{data} =~ s/\r?\n/\r\n/gr;
		like $data, qr/^DKIM-Signature: .*d=sender\.test/m, "$subject: signed by mtad";
		open my $fh, '>:raw', "$dir/signed-$$.eml" or die;
		print $fh $data;
		close $fh;
		my ($vrc, $vout, $verr) = MtadTest::run("$FindBin::Bin/lib/dkim-verify",
							"$dir/signed-$$.eml", "$name=$txt");
		is $vrc, 0, "$subject: dkimpy verifies the signature over the milter's changes"
			or diag "$vout$verr\n$data";
	}
	ok $d->wait_log(qr/DKIM-Signature field added \(s=mil, d=sender\.test\)/, 0),
		'the signing is logged';
	is $d->stop, 0, 'the signing mtad stops';
}

# ---- default_action = reject for a filter that cannot be reached ----
$m->set_config(milter => "gone inet:127.0.0.1:$dead_port connect_timeout=2 default_action=reject");
$m->restart;
$off = length $m->log_text;
$r = submit('a@sender.test', ['u@campus.test'], 'unfiltered');
like $r, qr/\A550 5\.7\.1 /, 'an unreachable milter with default_action=reject: 550 5.7.1 at MAIL';
ok $m->wait_log(qr/NOQUEUE: milter-reject: MAIL from .*: 550 5\.7\.1 /, $off),
	'... logged as a milter-reject, nothing queued';

# ---- a milter that fails in the middle of its replacement body ----
# default_action=accept cannot keep the message: half its body is gone.
$m->set_config(milter => "test unix:$sock content_timeout=3 default_action=accept");
$m->restart;
$off = length $m->log_text;
$r = submit('a@sender.test', ['u@campus.test'], 'milter-halfbody', '', "original\n");
like $r, qr/\A451 4\.7\.1 /, 'a milter gone half-way through its replacement body: 451 despite accept';
ok $m->wait_log(qr/warning: milter test: unix:\Q$sock\E: timeout; default_action=accept/, $off),
	'... its timeout is logged';
$r = submit('a@sender.test', ['u@campus.test'], 'milter-sleep');
like $r, $QUEUED, '... while a timeout before any change gets default_action=accept';
my $n = grep { $_->{data} =~ /^Subject: milter-halfbody/m } $sink->messages;
is $n, 0, '... and the half-replaced message was never delivered';

done_testing;
