# 15-sendmail.t - build/sendmail (and mailq) against a test mtad over its
# local socket, as cron, mail(1) and scripts use them: -t with To, Cc and
# a Bcc that is removed but delivered; -f; -i keeps a lone "." and its
# absence ends the message there; bare names get the host name; a From:
# is added when missing; the Received: header says the submitting uid,
# and two users' messages carry their own uids; -bs speaks SMTP on
# stdio; -bp lists the queue; with mtad down sendmail exits 75 and says
# so. Delivery goes to a test SMTP server (t/lib/Sink.pm) on loopback.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Copy ();
use File::Temp qw(tempdir);
use POSIX ();
use MtadTest;
use Sink;

my $build = $MtadTest::BUILD;
plan skip_all => "$build/sendmail missing: run make first" unless -x "$build/sendmail";

my $sink = Sink->new;
my $port = $sink->port;
# The socket in a directory every user can reach, for the run as nobody.
my $pub = tempdir(CLEANUP => 1);
chmod 0755, $pub;
my $m = MtadTest->new(local_socket => "$pub/submit", retry_min => 1, retry_max => 2,
		      extra => "route = campus.test [127.0.0.1]:$port\n"
			     . "route = mx.campus.test [127.0.0.1]:$port\n"
			     . "route = example.org [127.0.0.1]:$port\n");

# sendmail(STDIN, ARGS...) - (exit code, stdout, stderr) of build/sendmail -C conf ARGS.
sub sendmail {
	my ($input, @args) = @_;
	return MtadTest::run_input($input, "$build/sendmail", '-C', $m->conf_path, @args);
}

# sendmail_as(PW, CONF, INPUT, ARGS...) - the exit code of a copy of
# sendmail in $pub (nobody may not reach the build, under /root) run as
# the user of getpwnam's list PW, with INPUT on stdin and -C CONF.
sub sendmail_as {
	my ($pw, $conf, $input, @args) = @_;
	File::Copy::copy("$build/sendmail", "$pub/sendmail") or die "copy: $!";
	chmod 0755, "$pub/sendmail";
	my $dir = tempdir(CLEANUP => 1);
	open my $in, '>', "$dir/in" or die $!;
	print $in $input;
	close $in;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', "$dir/in";
		open STDOUT, '>', '/dev/null';
		open STDERR, '>', '/dev/null';
		POSIX::setgid($pw->[3]) && POSIX::setuid($pw->[2]) or POSIX::_exit(125);
		{ exec "$pub/sendmail", '-C', $conf, @args };
		POSIX::_exit(127);
	}
	waitpid $pid, 0;
	return $? >> 8;
}

# by_subject(SUBJECT) - the message the sink got with that Subject (waits up to 30 s).
sub by_subject {
	my ($subject) = @_;
	for (1 .. 300) {
		my ($msg) = grep { $_->{data} =~ /^Subject: \Q$subject\E\r$/m } $sink->messages;
		return $msg if $msg;
		select undef, undef, undef, 0.1;
	}
	return undef;
}

# ---- -t: recipients from To, Cc and Bcc; Bcc removed ----
my ($rc, $out, $err) = sendmail(<<'END', '-t', '-i');
To: alice@campus.test, Root <root>
Cc: bob@example.org
Bcc: secret@example.org
Subject: with -t

Hello from cron.
.
still the message
END
is $rc, 0, 'sendmail -t -i exits 0' or diag $err;
my @got;
for (1 .. 300) {
	@got = grep { $_->{data} =~ /^Subject: with -t\r$/m } $sink->messages;
	my %seen = map { (lc($_) => 1) } map { @{ $_->{to} } } @got;
	last if keys %seen >= 4;
	select undef, undef, undef, 0.1;
}
my %to = map { (lc($_) => 1) } map { @{ $_->{to} } } @got;
is_deeply [sort keys %to],
	[qw(alice@campus.test bob@example.org root@mx.campus.test secret@example.org)],
	'To, Cc and Bcc all delivered; a bare "root" gets the host name' or diag explain \@got;
my $data = $got[0]{data} // '';
unlike $data, qr/^Bcc:/mi, 'the Bcc: header is gone';
like $data, qr/^To: alice\@campus\.test, Root <root\@mx\.campus\.test>\r$/m,
	'To: the bare name got the host name, the rest is as written (RFC 6409 8.6)';
like $data, qr/^Cc: bob\@example\.org\r$/m, 'Cc: as written';
like $data, qr/\r\n\.\r\nstill the message\r\n/, '-i: a lone "." is a line of the message';
like $data, qr/^From: root\@mx\.campus\.test\r$/m, 'a From: is added: the user at the host name';
is $got[0]{from}, 'root@mx.campus.test', 'the envelope sender is the login at the host name';
like $data, qr/\AReceived: by mx\.campus\.test \(mtad, from userid 0\)\r\n\tid [0-9A-Z]{14}; /,
	'Received: says the submitting uid';

# ---- recipients on the command line, -f, -F, no -i ----
($rc, $out, $err) = sendmail(<<'END', '-f', 'cron@campus.test', '-F', 'Cron Daemon', 'carol');
Subject: without -i

first part
.
never sent
END
is $rc, 0, 'sendmail -f -F carol exits 0' or diag $err;
my $msg = by_subject('without -i');
ok $msg, 'delivered';
is $msg->{from}, 'cron@campus.test', '-f sets the envelope sender';
is_deeply $msg->{to}, ['carol@mx.campus.test'], 'a bare recipient on the command line';
like $msg->{data}, qr/^From: Cron Daemon <cron\@campus\.test>\r$/m, '-F names the added From:';
like $msg->{data}, qr/first part\r\n\z/, 'without -i a lone "." ends the message';
unlike $msg->{data}, qr/never sent/, '... and nothing after it is sent';

# ---- options that are accepted and ignored ----
($rc, $out, $err) = sendmail("Subject: ignored options\n\nx\n", '-oem', '-oee', '-odb', '-oi',
			     '-N', 'never', '-B', '8BITMIME', 'dave@campus.test');
is $rc, 0, '-oem -oee -odb -oi -N -B are accepted' or diag $err;
ok by_subject('ignored options'), 'and the message is delivered';

# ---- mistakes ----
($rc, $out, $err) = sendmail("Subject: x\n\nx\n", '-t');
is $rc, 64, 'no recipients: exit 64 (EX_USAGE)';
like $err, qr/no recipient addresses found in the message header/, '... and says so';
($rc, $out, $err) = sendmail("Subject: x\n\nx\n", '-bv', 'a@b.test');
is $rc, 64, 'an unsupported mode: exit 64';
($rc, $out, $err) = sendmail("Subject: x\n\nx\n", '-f', 'bad sender@campus.test', 'a@campus.test');
is $rc, 65, 'a sender mtad refuses: exit 65 (EX_DATAERR)' or diag $err;

# ---- another user: the uid in Received: is theirs ----
SKIP: {
	my @pw = getpwnam('nobody') or skip 'no user nobody', 3;
	skip 'not root: cannot run as nobody', 3 if $> != 0;
	# A copy of the configuration nobody can read (the checkout may be
	# under /root, mode 0700).
	File::Copy::copy($m->conf_path, "$pub/mtad.conf") or die "copy: $!";
	chmod 0644, "$pub/mtad.conf";
	is sendmail_as(\@pw, "$pub/mtad.conf", "Subject: from nobody\n\nhello\n", 'erin@campus.test'), 0,
		'sendmail as nobody exits 0';
	$msg = by_subject('from nobody');
	like $msg->{data} // '', qr/\AReceived: by mx\.campus\.test \(mtad, from userid $pw[2]\)/,
		"its Received: says uid $pw[2]";
	is $msg->{from} // '', "nobody\@mx.campus.test", 'the sender is nobody at the host name';
}

# ---- Debian's mail(1) (bsd-mailx) and a cron job, through sendmail ----
SKIP: {
	skip 'bsd-mailx is not installed (etc/packages lists it)', 4 unless -x '/usr/bin/bsd-mailx';
	# As installed: programs call "sendmail"; here it is a wrapper in the
	# test's PATH that names the test's mtad.conf.
	my $bin = tempdir(CLEANUP => 1);
	open my $w, '>', "$bin/sendmail" or die $!;
	print $w "#!/bin/sh\nexec $build/sendmail -C " . $m->conf_path . " \"\$@\"\n";
	close $w;
	chmod 0755, "$bin/sendmail";
	open my $rc_fh, '>', "$bin/mailrc" or die $!;
	print $rc_fh "set sendmail=$bin/sendmail\n";
	close $rc_fh;
	local $ENV{MAILRC} = "$bin/mailrc";
	local $ENV{PATH} = "$bin:$ENV{PATH}";
	($rc, $out, $err) = MtadTest::run_input("hello from mail(1)\n", '/usr/bin/bsd-mailx',
						'-s', 'from mailx', 'root');
	is $rc, 0, 'mail -s "from mailx" root exits 0' or diag $err;
	$msg = by_subject('from mailx');
	is_deeply $msg->{to} // [], ['root@mx.campus.test'], 'mail(1) reached root at the host name';
	# What cron does with a job's output (cron's do_command): its own
	# headers, sendmail -FCronDaemon -i -B8BITMIME -oem USER.
	($rc, $out, $err) = MtadTest::run_input(
		"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root\@mx> /usr/local/bin/job\n"
		. "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\njob output\n",
		'sendmail', '-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'root');
	is $rc, 0, 'a cron job\'s mail: sendmail -FCronDaemon -i -B8BITMIME -oem root' or diag $err;
	$msg = by_subject('Cron <root@mx> /usr/local/bin/job');
	like $msg->{data} // '', qr/\r\n\r\njob output\r\n\z/, '... delivered with its output';
}

# ---- Date: and Message-ID: for local mail that has none ----
$msg = by_subject('with -t');
like $msg->{data} // '', qr/^Date: \w\w\w, \d+ \w\w\w \d{4} [\d:]{8} [-+]\d{4}\r$/m, 'a Date: was added';
like $msg->{data} // '', qr/^Message-ID: <[0-9A-Z]{14}\.\d+\@mx\.campus\.test>\r$/m,
	'a Message-ID: was added';
($rc, $out, $err) = sendmail("Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <own\@x>\n"
			     . "Subject: has both\n\nx\n", 'ivy@campus.test');
$msg = by_subject('has both');
is scalar(() = ($msg->{data} // '') =~ /^Date:/mg), 1, 'a message with its own Date: keeps one';
is scalar(() = ($msg->{data} // '') =~ /^Message-ID:/mg), 1, '... and one Message-ID:';

# ---- -bs: SMTP on stdin and stdout ----
($rc, $out, $err) = sendmail(<<"END", '-bs');
EHLO localhost\r
MAIL FROM:<script>\r
RCPT TO:<frank>\r
DATA\r
Subject: over -bs\r
\r
hi\r
.\r
QUIT\r
END
is $rc, 0, 'sendmail -bs exits 0' or diag $err;
like $out, qr/\A220 mx\.campus\.test ESMTP mtad\r\n/, '-bs: the greeting';
like $out, qr/^250 2\.0\.0 Ok: queued as [0-9A-Z]{14}\r$/m, '-bs: the message is queued';
like $out, qr/^221 /m, '-bs: QUIT';
unlike $out, qr/^[45]\d\d /m, '-bs: no HELO or relay rule refused the local session';
$msg = by_subject('over -bs');
ok $msg, '-bs: and it is delivered';
is $msg->{from} // '', 'script@mx.campus.test', '-bs: MAIL FROM:<script> gets the host name';
is_deeply $msg->{to} // [], ['frank@mx.campus.test'], '-bs: RCPT TO:<frank> too (RFC 6409 8.1)';

# ---- -bp and mailq: the queue ----
$sink->set(rcpt_default => '450 4.2.0 not now');
($rc, $out, $err) = sendmail("Subject: waits\n\nx\n", 'grace@campus.test');
is $rc, 0, 'a message that will wait' or diag $err;
$m->wait_log(qr/to=<grace\@campus\.test>.*status=deferred/);
($rc, $out, $err) = sendmail('', '-bp');
is $rc, 0, 'sendmail -bp exits 0' or diag $err;
like $out, qr/^[0-9A-Z]{14}\s+\d+ .* root\@mx\.campus\.test$/m, '-bp lists the message';
like $out, qr/grace\@campus\.test/, '... with its recipient';
($rc, my $out2) = MtadTest::run("$build/mailq", '-C', $m->conf_path);
# The same listing, but for the "(next attempt ...)" line, which shows
# only while that time is still ahead.
s/^\s*\(next attempt [^)]*\)\n//mg for $out, $out2;
is $out2, $out, 'mailq prints the same';
$sink->set(rcpt_default => '250 2.1.5 Ok');
($rc, $out, $err) = sendmail('', '-q');
is $rc, 0, 'sendmail -q (flush) exits 0' or diag $err;
ok by_subject('waits'), '-q: the waiting message is delivered now';

# ---- mtad down: exit 75, nothing lost silently ----
$m->stop;
($rc, $out, $err) = sendmail("Subject: down\n\nx\n", 'henry@campus.test');
is $rc, 75, 'mtad not running: exit 75 (EX_TEMPFAIL)';
like $err, qr/cannot reach mtad at .*: is mtad running\? The message was not sent; try again later/,
	'... with a clear message';

# ---- sending quotas: none for local mail, unless send_limit_map names the uid ----
{
	my $map = tempdir(CLEANUP => 1);
	open my $fh, '>', "$map/limits" or die $!;
	print $fh "# the web server's PHP, say\nuid=65534: 2 -\n";
	close $fh;
	chmod 0755, $map;
	chmod 0644, "$map/limits";
	my $q = MtadTest->new(send_rate_limit => 2, send_limit_map => "$map/limits",
			      local_socket => "$pub/qsubmit",
			      extra => "route = campus.test [127.0.0.1]:$port\n");
	my @rcs = map { (MtadTest::run_input("Subject: cron $_\n\nx\n", "$build/sendmail", '-C',
					      $q->conf_path, 'kim@campus.test'))[0] } 1 .. 4;
	is_deeply \@rcs, [0, 0, 0, 0], 'four messages a minute from root: no quota for local mail';
	SKIP: {
		my @pw = getpwnam('nobody') or skip 'no user nobody', 2;
		skip 'not root', 2 if $> != 0;
		File::Copy::copy($q->conf_path, "$pub/q.conf") or die $!;
		chmod 0644, "$pub/q.conf";
		my @got = map { sendmail_as(\@pw, "$pub/q.conf", '', 'kim@campus.test') } 1 .. 3;
		is_deeply \@got, [0, 0, 75], 'send_limit_map names uid=65534: its third message this minute waits (75)';
		like $q->log_text, qr/rate limit exceeded: 3 messages in 60 s/, '... and the log says why';
	}
	$q->stop;
}

done_testing;
