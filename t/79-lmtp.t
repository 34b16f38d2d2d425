# 79-lmtp.t - LMTP delivery (RFC 2033, issue 16): routes to a real
# Dovecot LMTP server (dovecot-lmtpd, started here on loopback with its
# own config, base_dir, users and Maildirs, stopped by its PID), over TCP
# and over a Unix socket. Checked: messages land in the Maildirs
# byte-exact (Dovecot only prepends its trace headers); an unknown user
# among several recipients is bounced alone, the others delivered;
# several messages share a connection; Dovecot stopped means deferral,
# and after it is back `mtaq flush` delivers; STARTTLS over TCP when
# offered, never over the socket. Then a tiny scripted LMTP
# peer: a 5xx greeting and a 5xx to LHLO are deferrals, never bounces
# (and no HELO after a refused LHLO); replies after the final dot are
# per recipient (sent, deferred, bounced), in RCPT order; tls=verify
# applies to LMTP routes as to SMTP ones.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(_exit);
use Test::More;
use MtadTest;
use Sink;

my $DOVECOT = '/usr/sbin/dovecot';
plan skip_all => "$DOVECOT is not installed (Debian: dovecot-lmtpd, etc/packages)"
	unless -x $DOVECOT && -e '/usr/lib/dovecot/lmtp';

# ---- Dovecot on loopback ----

my $dir = tempdir('mtad-lmtp-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});
# Dovecot's mail processes run as mail_uid and must reach the Maildirs.
chmod 0755, $dir or die "chmod $dir: $!";
my $lmtp_port = MtadTest::free_port('127.0.0.1');
my $socket = "$dir/lmtp.sock";
my ($mail_user, $mail_group) = dovecot_identity();
write_dovecot_config();

my $dovecot_pid;

# dovecot_identity - who delivers into the Maildirs: root may not, so nobody.
sub dovecot_identity {
	return ('nobody', 'nogroup') if $> == 0;
	my $user = getpwuid($>);
	my $group = getgrgid((split ' ', $))[0]);
	return ($user, $group);
}

sub write_dovecot_config {
	my $me = getpwuid($>);
	my $mygroup = getgrgid((split ' ', $))[0]);
	mkdir "$dir/$_" or die "mkdir $dir/$_: $!" for qw(run state mail);
	# STARTTLS on the TCP listener, as mailbox servers often offer it.
	my ($rc, $out, $err) = MtadTest::run('openssl', 'req', '-x509', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', "$dir/key.pem",
		'-out', "$dir/cert.pem", '-days', '2', '-subj', '/CN=localhost');
	$rc == 0 or die "openssl: $err";
	my (undef, undef, $uid, $gid) = getpwnam($mail_user);
	chown $uid, $gid, "$dir/mail" or die "chown $dir/mail: $!";
	open my $u, '>', "$dir/users" or die;
	print $u "$_:{PLAIN}unused::::::\n" for qw(alice bob carol);
	close $u;
	open my $c, '>', "$dir/dovecot.conf" or die;
	print $c <<"END";
# written by t/79-lmtp.t: an LMTP-only Dovecot in $dir
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = lmtp
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
listen = 127.0.0.1
default_internal_user = $me
default_internal_group = $mygroup
default_login_user = $me
first_valid_uid = 0
first_valid_gid = 0
mail_uid = $mail_user
mail_gid = $mail_group
mail_location = maildir:$dir/mail/%u/Maildir
# alice\@lmtp.test is the user alice
auth_username_format = %Ln
passdb {
  driver = passwd-file
  args = $dir/users
}
userdb {
  driver = passwd-file
  args = $dir/users
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp_port
  }
  unix_listener $socket {
    mode = 0666
  }
}
END
	close $c;
}

# dovecot_start - runs `dovecot -F` and waits until both listeners answer.
sub dovecot_start {
	$dovecot_pid = fork // die "fork: $!";
	if (!$dovecot_pid) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', "$dir/dovecot.out";
		open STDERR, '>&', \*STDOUT;
		exec $DOVECOT, '-F', '-c', "$dir/dovecot.conf" or _exit(127);
	}
	my $up = MtadTest::wait_for(30, sub {
		my $t = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$lmtp_port", Timeout => 2);
		my $u = IO::Socket::UNIX->new(Peer => $socket, Timeout => 2);
		return $t && $u;
	});
	$up or BAIL_OUT('dovecot did not start: ' . MtadTest::slurp("$dir/dovecot.log")
			. MtadTest::slurp("$dir/dovecot.out"));
}

# dovecot_stop - SIGTERM to its master, by PID, and wait for it.
sub dovecot_stop {
	return unless $dovecot_pid;
	kill 'TERM', $dovecot_pid;
	waitpid $dovecot_pid, 0;
	$dovecot_pid = undef;
}
END { dovecot_stop() }

# maildir - the messages in a user's Maildir (new/), as texts.
sub maildir {
	my ($user) = @_;
	my @texts;
	for my $f (sort glob("$dir/mail/$user/Maildir/new/*")) {
		push @texts, MtadTest::slurp($f);
	}
	return @texts;
}

# ends_with_original - Dovecot stores LF line ends and prepends its trace
# headers: what it stored must end with exactly the original message.
sub ends_with_original {
	my ($stored, $orig) = @_;
	$orig =~ s/\r\n/\n/g;
	return length($stored) > length($orig) && substr($stored, -length($orig)) eq $orig;
}

# ---- a scripted LMTP peer (for replies Dovecot would not give) ----

my @peer_pids;

# lmtp_peer(greeting => ..., lhlo => ..., dot => [REPLY...], drop_after => N)
# - a forked LMTP server on a free loopback port, one connection after the
# other (drop_after: close after N replies to the end of data);
# every line it receives is appended to TRANSCRIPT. Returns (port, transcript).
sub lmtp_peer {
	my (%o) = @_;
	my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
					   Listen => 5, ReuseAddr => 1) or die "listen: $!";
	my $port = $listen->sockport;
	my $transcript = "$dir/peer-$port.txt";
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		alarm 300;
		while (my $c = $listen->accept) {
			peer_session($c, \%o, $transcript);
			close $c;
		}
		_exit(0);
	}
	close $listen;
	push @peer_pids, $pid;
	return ($port, $transcript);
}
END { for my $p (@peer_pids) { kill 'TERM', $p; waitpid $p, 0 } }

sub peer_session {
	my ($c, $o, $transcript) = @_;
	my $say = sub { print $c map { "$_\r\n" } @_ };
	open my $t, '>>', $transcript or die;
	$t->autoflush(1);
	$c->autoflush(1);
	$say->($o->{greeting} // '220 peer.test LMTP ready');
	my $rcpts = 0;
	while (defined(my $line = <$c>)) {
		$line =~ s/\r?\n\z//;
		print $t "$line\n";
		my ($verb) = uc($line) =~ /\A(\w+)/;
		$verb //= '';
		if ($verb eq 'QUIT') { $say->('221 2.0.0 bye'); return }
		elsif ($verb eq 'LHLO') {
			$say->($o->{lhlo} ? $o->{lhlo} : ('250-peer.test', '250-ENHANCEDSTATUSCODES',
							    '250 PIPELINING'));
		}
		elsif ($verb eq 'MAIL') { $rcpts = 0; $say->('250 2.1.0 OK') }
		elsif ($verb eq 'RCPT') { $rcpts++; $say->('250 2.1.5 OK') }
		elsif ($verb eq 'RSET') { $say->('250 2.0.0 OK') }
		elsif ($verb eq 'DATA') {
			$say->('354 go ahead');
			while (defined(my $body = <$c>)) { last if $body eq ".\r\n" }
			print $t ".\n";
			for my $i (0 .. $rcpts - 1) {
				return if defined $o->{drop_after} && $i == $o->{drop_after};
				$say->($o->{dot}[$i] // '250 2.0.0 Saved');
			}
		}
		else { $say->('500 5.5.1 unknown command') }
	}
}

# ---- mtad ----

dovecot_start();
my $sink = Sink->new;	# where bounces to sender@bounce.test go
my ($greet_port, $greet_log) = lmtp_peer(greeting => '554 5.3.2 not today');
my ($lhlo_port, $lhlo_log) = lmtp_peer(lhlo => '500 5.5.1 Error: unknown command');
my ($plain_port, $plain_log) = lmtp_peer();
my ($drop_port, $drop_log) = lmtp_peer(drop_after => 1);
my ($mixed_port, $mixed_log) = lmtp_peer(dot => ['250 2.0.0 <ok@mixed.test> Saved',
						 '452 4.2.2 <later@mixed.test> Mailbox full',
						 '552 5.2.2 <bad@mixed.test> Quota exceeded']);
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600,
		      destination_concurrency => 1, extra => <<"END");
route = lmtp.test lmtp:[127.0.0.1]:$lmtp_port
route = unix.test lmtp:unix:$socket
route = bounce.test [127.0.0.1]:${\ $sink->port}
route = greet.test lmtp:[127.0.0.1]:$greet_port
route = lhlo.test lmtp:[127.0.0.1]:$lhlo_port
route = mixed.test lmtp:[127.0.0.1]:$mixed_port
route = tlsreq.test lmtp:[127.0.0.1]:$plain_port tls=verify
route = drop.test lmtp:[127.0.0.1]:$drop_port
END

# send - one message over SMTP to mtad; returns its queue id.
sub queue_mail {
	my ($to, $body) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, 'sender@bounce.test', $to, $body);
	$smtp->quit;
	my ($qid) = $r =~ /queued as ([0-9A-Z]{14})/;
	ok $qid, "queued for @$to" or diag $r;
	return $qid;
}

# A body with what must survive: a dot-started line, a long line, a
# blank line, 8-bit text, no trailing newline trouble.
my $orig = "From: Sender <sender\@bounce.test>\r\nTo: alice\@lmtp.test\r\n"
	. "Subject: over LMTP\r\nMessage-ID: <lmtp-1\@bounce.test>\r\n\r\n"
	. "first line\r\n.a line that starts with a dot\r\n..two dots\r\n\r\n"
	. ('x' x 1500) . "\r\nGr\xfc\xdfe\r\nlast\r\n";

# ---- TCP: three recipients, one unknown ----
my $log_from = length $m->log_text;
my $qid = queue_mail(['alice@lmtp.test', 'nosuch@lmtp.test', 'bob@lmtp.test'], $orig);
for my $u (qw(alice bob)) {
	my $d = $m->delivery_log($qid, "$u\@lmtp.test", 'sent', $log_from);
	ok $d, "$u\@lmtp.test sent over LMTP/TCP";
	is $d && $d->{relay}, "127.0.0.1[127.0.0.1]:$lmtp_port", "$u: relay=host[ip]:port";
}
my $d = $m->delivery_log($qid, 'nosuch@lmtp.test', 'bounced', $log_from);
ok $d, 'the unknown user is bounced';
like $d && $d->{reply}, qr/^550 5\.1\.1 .*nosuch/, "... with Dovecot's reply";
ok MtadTest::wait_for(30, sub { maildir('alice') && maildir('bob') }), 'in both Maildirs';
ok ends_with_original((maildir($_))[0], $orig), "$_: the original headers and body, byte-exact"
	for qw(alice bob);
like +(maildir('alice'))[0], qr/\AReturn-Path: <sender\@bounce\.test>\n/,
	'Dovecot got the envelope sender';
like +(maildir('alice'))[0], qr/^\t\(using TLS.*\n\tby .* with LMTPS\n/m,
	'over TCP, STARTTLS was used (smtp_tls = may), as Dovecot offered it';
my @dsn = $sink->wait_messages(1);
is scalar(@dsn), 1, 'one bounce to the sender';
my $report = Sink::parse_dsn($dsn[0]{data});
is_deeply [map { $_->{'final-recipient'} } @{ $report->{recipients} }],
	['rfc822; nosuch@lmtp.test'], '... about the unknown user alone';
is $report->{recipients}[0]{status}, '5.1.1', '... status 5.1.1';

# ---- Unix socket, and connection reuse ----
$log_from = length $m->log_text;
my $connects = () = MtadTest::slurp("$dir/dovecot.log") =~ /Connect from local/g;
my $smtp = $m->smtp;
my @qids;
for my $n (1 .. 4) {
	my $r = $m->send_message($smtp, 'sender@bounce.test', ['carol@unix.test'],
				 "Subject: unix $n\r\n\r\nover the socket $n\r\n");
	push @qids, $1 if $r =~ /queued as ([0-9A-Z]{14})/;
}
$smtp->quit;
is scalar(@qids), 4, 'four messages for the Unix socket route';
for my $q (@qids) {
	my $r = $m->delivery_log($q, 'carol@unix.test', 'sent', $log_from);
	ok $r, "$q sent over the Unix socket";
	is $r && $r->{relay}, $socket, '... relay=the socket path';
}
ok MtadTest::wait_for(30, sub { maildir('carol') == 4 }), "carol's Maildir has all four";
my %subjects = map { /^Subject: (unix \d)$/m ? ($1 => 1) : () } maildir('carol');
is scalar(keys %subjects), 4, 'each once, intact';
ok +(grep { /^\tby .* with LMTP\n/m } maildir('carol')) == 4, 'no STARTTLS over the socket';
my $now = () = MtadTest::slurp("$dir/dovecot.log") =~ /Connect from local/g;
cmp_ok $now - $connects, '<', 4, 'fewer connections than messages (' . ($now - $connects) . ')';

# ---- Dovecot stopped: deferred; back again + mtaq flush: delivered ----
dovecot_stop();
$log_from = length $m->log_text;
$qid = queue_mail(['bob@lmtp.test', 'bob@unix.test'], "Subject: while down\r\n\r\nlater\r\n");
for my $r (qw(bob@lmtp.test bob@unix.test)) {
	ok $m->delivery_log($qid, $r, 'deferred', $log_from), "$r deferred while Dovecot is down";
}
is_deeply [$m->queue_ids], [$qid], 'the message waits in the queue';
is scalar($sink->messages), 1, 'no bounce for the deferral';
dovecot_start();
$log_from = length $m->log_text;
my ($rc) = $m->mtaq('flush');
is $rc, 0, 'mtaq flush';
ok $m->delivery_log($qid, $_, 'sent', $log_from), "$_ sent after the flush"
	for qw(bob@lmtp.test bob@unix.test);
ok MtadTest::wait_for(30, sub { (grep { /^Subject: while down$/m } maildir('bob')) == 2 }),
	'both copies in bob\'s Maildir';
ok MtadTest::wait_for(30, sub { !$m->queue_ids }), 'the queue is empty';

# ---- a 5xx greeting or LHLO: deferred, not bounced ----
$log_from = length $m->log_text;
$qid = queue_mail(['u@greet.test'], "Subject: greet\r\n\r\nx\r\n");
$d = $m->delivery_log($qid, 'u@greet.test', 'deferred|bounced', $log_from);
is $d && $d->{status}, 'deferred', 'a 554 greeting from an LMTP server: deferred';
like $d && $d->{reply}, qr/^451 4\.3\.5 .*refused the greeting: 554 5\.3\.2 not today/,
	'... saying what the server said';
my $qid2 = queue_mail(['u@lhlo.test'], "Subject: lhlo\r\n\r\nx\r\n");
$d = $m->delivery_log($qid2, 'u@lhlo.test', 'deferred|bounced', $log_from);
is $d && $d->{status}, 'deferred', 'a 500 to LHLO: deferred';
like $d && $d->{reply}, qr/^451 4\.3\.5 .*refused LHLO: 500 5\.5\.1 Error: unknown command/,
	'... saying what the server said';
my $said = MtadTest::slurp($lhlo_log);
like $said, qr/\ALHLO mx\.campus\.test\n/, 'LMTP starts with LHLO';
unlike $said, qr/^(?:HELO|EHLO|MAIL)/m, 'no HELO or EHLO fallback, no transaction';
is_deeply [sort $m->queue_ids], [sort $qid, $qid2], 'both wait in the queue';
is scalar($sink->messages), 1, 'no bounce for either';

# ---- tls=verify on an LMTP route to a server without STARTTLS ----
$qid = queue_mail(['u@tlsreq.test'], "Subject: tls\r\n\r\nx\r\n");
$d = $m->delivery_log($qid, 'u@tlsreq.test', 'deferred|bounced', $log_from);
is $d && $d->{status}, 'deferred', 'tls=verify and no STARTTLS: deferred';
like $d && $d->{reply}, qr/^450 4\.7\.5 .*TLS required but .* does not offer STARTTLS/,
	'... TLS required';
unlike MtadTest::slurp($plain_log), qr/^MAIL/m, 'nothing was sent in the clear';

# ---- replies after the final dot: one per recipient ----
$log_from = length $m->log_text;
$qid = queue_mail(['ok@mixed.test', 'later@mixed.test', 'bad@mixed.test'],
	    "Subject: mixed\r\n\r\nx\r\n");
my %want = ('ok@mixed.test' => 'sent', 'later@mixed.test' => 'deferred',
	    'bad@mixed.test' => 'bounced');
for my $r (sort keys %want) {
	$d = $m->delivery_log($qid, $r, 'sent|deferred|bounced', $log_from);
	is $d && $d->{status}, $want{$r}, "$r: $want{$r} on its own reply";
}
like MtadTest::slurp($mixed_log), qr/^LHLO .*\nMAIL FROM:<sender\@bounce\.test>\n(?:RCPT TO:.*\n){3}DATA\n\.\n/m,
	'one transaction for the three';
@dsn = $sink->wait_messages(2);
$report = Sink::parse_dsn($dsn[1]{data});
is_deeply [map { $_->{'final-recipient'} } @{ $report->{recipients} }],
	['rfc822; bad@mixed.test'], 'the bounce names bad@mixed.test alone';
my ($left) = grep { $_ eq $qid } $m->queue_ids;
ok $left, 'the message stays queued for later@mixed.test';

# ---- the connection lost between two replies to the end of data ----
$log_from = length $m->log_text;
$qid = queue_mail(['first@drop.test', 'second@drop.test'], "Subject: drop\r\n\r\nx\r\n");
$d = $m->delivery_log($qid, 'first@drop.test', 'sent|deferred|bounced', $log_from);
is $d && $d->{status}, 'sent', 'the recipient answered before the peer left: sent';
$d = $m->delivery_log($qid, 'second@drop.test', 'sent|deferred|bounced', $log_from);
is $d && $d->{status}, 'deferred', 'the one still waiting for its reply: deferred';
like $d && $d->{reply}, qr/lost connection .* while sending end of data/, '... saying why';
my ($rc2, $show) = $m->mtaq('show', $qid);
like $show, qr/second\@drop\.test/, 'the message stays queued for it';

is $m->stop, 0, 'mtad exits 0 on SIGTERM';

# ---- configuration: LMTP errors name the file and line ----
for my $bad (['relayhost = lmtp:[mailstore.test]:24', qr/LMTP is for routes to mailbox servers/],
	     ['route = x.test lmtp:mailstore.test', qr/LMTP needs lmtp:\[host\]/],
	     ['route = x.test lmtp:unix:run/lmtp', qr/must be absolute/],
	     ["route = x.test lmtp:unix:$socket tls=verify", qr/tls= does not apply to a Unix socket/]) {
	my $conf = "$dir/bad.conf";
	open my $fh, '>', $conf or die;
	print $fh "hostname = mx.campus.test\nalias_maps =\n$bad->[0]\n";
	close $fh;
	my ($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $conf, '-n');
	isnt $rc, 0, "mtad -n refuses \"$bad->[0]\"";
	like $err, qr/\Q$conf\E:3: .*$bad->[1]/, '... with file:line and why' or diag $err;
}
done_testing;
