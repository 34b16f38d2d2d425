# 17-pflogsumm.t - a scripted day of mail through a real mtad that logs to
# a syslog socket (as t/12-syslog.t), read back by Postfix's own tools:
# the lines, written as rsyslog writes mail.log ("Dec  4 10:00:00 host
# mtad/smtpd[123]: ..."), go through Debian's pflogsumm, whose received,
# delivered, deferred, bounced and rejected counts must be what the
# script did; and through fail2ban-regex, with the shipped filter
# (etc/fail2ban/filter.d/mtad.conf) and with Debian's stock
# postfix[mode=auth] filter given only _daemon, each of which must find
# every failed AUTH, with its address.
#
# The day: three messages from an unauthenticated client (one delivered,
# one deferred by a 450, one bounced by a 550, whose bounce is delivered),
# one over implicit TLS and one over submission, both authenticated, one
# from sendmail (pickup); rejected: a relay attempt, a HELO with our own
# name (at MAIL and again at RCPT), MAIL without AUTH on submission (530);
# three failed AUTH from two addresses.
#
# Lines the syslog socket did not take at once go to mtad's stderr (util/
# log.c; the kernel queues only net.unix.max_dgram_qlen datagrams, 10 by
# default): they are taken from there too, so the day is complete.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use POSIX ();
use Socket qw(SOCK_DGRAM);
use MtadTest qw(auth_plain);
use Sink;

my $PFLOGSUMM = '/usr/sbin/pflogsumm';
my $F2B = '/usr/bin/fail2ban-regex';
plan skip_all => "$PFLOGSUMM is not installed (etc/packages: pflogsumm)" unless -x $PFLOGSUMM;
plan skip_all => "$F2B is not installed (etc/packages: fail2ban)" unless -x $F2B;

my $dir = tempdir(CLEANUP => 1);
my $sockpath = "$dir/log";
my $collected = "$dir/datagrams";

# ---- a syslog daemon: a child that appends every datagram to a file ----
my $syslog = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $sockpath)
	or die "bind $sockpath: $!";
my $reader = fork // die "fork: $!";
if ($reader == 0) {
	open my $out, '>>', $collected or POSIX::_exit(1);
	$out->autoflush(1);
	while (defined $syslog->recv(my $d, 65536)) {
		print $out "$d\n";
	}
	POSIX::_exit(0);
}
close $syslog;

my $ok = Sink->new;						# ok.test, sender.test
my $later = Sink->new(rcpt_default => '450 4.2.0 try later');	# later.test
my $bad = Sink->new(rcpt_default => '550 5.1.1 no such user');	# bad.test
my ($po, $pl, $pb) = ($ok->port, $later->port, $bad->port);

# listener 0: port 25 (no AUTH); 1: implicit TLS (465); 2: submission (587).
# retry_min of an hour: the deferred message is tried once today.
my $m = MtadTest->new(log => 'syslog', syslog_socket => $sockpath,
		      listeners => ['', 'tls', 'starttls submission'],
		      users => { alice => 'secret' }, auth_failure_delay => 0,
		      relay_domains => 'ok.test later.test bad.test sender.test',
		      retry_min => 3600, retry_max => 7200, extra => <<"END");
route = ok.test [127.0.0.1]:$po
route = sender.test [127.0.0.1]:$po
route = later.test [127.0.0.1]:$pl
route = bad.test [127.0.0.1]:$pb
END

# cmd(SOCK, LINE, REGEX, NAME) - one command, its reply checked.
sub cmd {
	my ($s, $line, $re, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = $m->send_recv($s, "$line\r\n") // '';
	like $r, $re, $name;
	return $r;
}

# message(SOCK, FROM, TO, HEADER) - one accepted transaction; its queue id.
sub message {
	my ($s, $from, $to, $header) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	cmd($s, "MAIL FROM:<$from>", qr/^250 /, "MAIL FROM:<$from>");
	cmd($s, "RCPT TO:<$to>", qr/^250 /, "RCPT TO:<$to>");
	cmd($s, 'DATA', qr/^354 /, 'DATA');
	my $r = cmd($s, "${header}Subject: to $to\r\n\r\nhello\r\n.", qr/^250 2\.0\.0 Ok: queued as /,
		    "the message to $to is queued");
	return $r =~ /queued as ($MtadTest::QID)/ ? $1 : 'NONE';
}

# login(SOCK, PASSWORD, REPLY) - AUTH PLAIN as alice.
sub login {
	my ($s, $password, $want) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	cmd($s, auth_plain('alice', $password), $want, "AUTH PLAIN alice: $want");
}

my %did = (received => 0, delivered => 0, deferred => 0, bounced => 0, rejected => 0,
	   auth_failed => {});

# ---- port 25: three messages, a relay attempt ----
my $s = $m->raw(port => $m->port(0));
cmd($s, 'EHLO client.example', qr/^250-.*^250 HELP\r?\n\z/ms, 'EHLO client.example');
message($s, 'a@sender.test', 'u1@ok.test', 'Message-ID: <one@sender.test>' . "\r\n");
message($s, 'a@sender.test', 'u2@later.test', '');
message($s, 'a@sender.test', 'u3@bad.test', '');
$did{received} += 3;
$did{delivered} += 2;	# u1, and the bounce of u3 to a@sender.test
$did{deferred}++;
$did{bounced}++;
cmd($s, 'MAIL FROM:<a@sender.test>', qr/^250 /, 'MAIL');
cmd($s, 'RCPT TO:<x@elsewhere.example>', qr/^554 5\.7\.1 <x\@elsewhere\.example>: Relay access denied/,
    'relay refused');
$did{rejected}++;
cmd($s, 'QUIT', qr/^221 /, 'QUIT');

# ---- port 25: a bot with our own name: MAIL and RCPT refused ----
$s = $m->raw(port => $m->port(0), local => '127.0.0.2');
cmd($s, 'EHLO mx.campus.test', qr/^250-.*^250 HELP\r?\n\z/ms, 'EHLO mx.campus.test is answered');
cmd($s, 'MAIL FROM:<bot@spam.example>', qr/^550 5\.7\.1 Invalid HELO/, '... MAIL is refused');
cmd($s, 'RCPT TO:<u1@ok.test>', qr/^550 5\.7\.1 Invalid HELO/, '... and RCPT');
$did{rejected} += 2;
cmd($s, 'QUIT', qr/^221 /, 'QUIT');

# ---- implicit TLS: two failed logins from 127.0.0.5, then alice sends ----
$s = $m->tls_raw(1, LocalAddr => '127.0.0.5');
cmd($s, 'EHLO laptop.example', qr/^250-.*^250 HELP\r?\n\z/ms, 'EHLO over implicit TLS');
login($s, 'wrong', qr/^535 5\.7\.8 /);
login($s, 'wrong again', qr/^535 5\.7\.8 /);
$did{auth_failed}{'127.0.0.5'} += 2;
login($s, 'secret', qr/^235 /);
my $auth_qid = message($s, 'alice@campus.test', 'u4@ok.test',
		       'Message-ID: <auth-1@campus.test>' . "\r\n");
$did{received}++;
$did{delivered}++;
cmd($s, 'QUIT', qr/^221 /, 'QUIT');

# ---- submission: MAIL before AUTH (530), a failed login, then a message without Message-ID ----
$s = $m->raw(port => $m->port(2), local => '127.0.0.6');
cmd($s, 'EHLO laptop.example', qr/^250-.*^250 HELP\r?\n\z/ms, 'EHLO on submission');
cmd($s, 'MAIL FROM:<alice@campus.test>', qr/^530 5\.7\.0 Authentication required/,
    'MAIL without AUTH: 530');
$did{rejected}++;
$m->starttls($s) or BAIL_OUT('STARTTLS failed');
cmd($s, 'EHLO laptop.example', qr/^250-.*^250 HELP\r?\n\z/ms, 'EHLO under TLS');
login($s, 'guess', qr/^535 5\.7\.8 /);
$did{auth_failed}{'127.0.0.6'}++;
login($s, 'secret', qr/^235 /);
my $sub_qid = message($s, 'alice@campus.test', 'u5@ok.test', '');
$did{received}++;
$did{delivered}++;
cmd($s, 'QUIT', qr/^221 /, 'QUIT');

# ---- sendmail: pickup ----
my ($rc, $out, $err) = MtadTest::run_input("Subject: local\n\nfrom cron\n",
	"$MtadTest::BUILD/sendmail", '-C', $m->conf_path, 'u6@ok.test');
is $rc, 0, 'sendmail u6@ok.test' or diag $err;
$did{received}++;
$did{delivered}++;

# ---- the day's log ----
# syslog_lines() - every line so far, as rsyslog writes mail.log: from
# the datagrams and from stderr (what the socket did not take).
sub syslog_lines {
	my @lines;
	for (split /\n/, MtadTest::slurp($collected) // '') {
		push @lines, "$2 mx $3" if /\A<(\d+)>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (.*)\z/;
	}
	for (split /\n/, $m->log_text // '') {
		push @lines, "$1 mx $2" if /\A(\w{3} [ \d]\d \d\d:\d\d:\d\d) (.*)\z/;
	}
	return @lines;
}
sub count { my $re = shift; scalar grep { /$re/ } @_ }

my @day;
MtadTest::wait_for(60, sub {
	@day = syslog_lines();
	count(qr/ status=sent /, @day) >= $did{delivered}
	    && count(qr/ status=deferred /, @day) >= $did{deferred}
	    && count(qr/ status=bounced /, @day) >= $did{bounced}
	    && count(qr/: removed$/, @day) >= $did{delivered} + $did{bounced} - 1;
});
is count(qr/ status=sent /, @day), $did{delivered}, "the log has $did{delivered} deliveries"
	or diag join "\n", @day;

# The program names, as Postfix's.
my %prog;
/^\w{3} [ \d]\d \d\d:\d\d:\d\d mx ([^\[]+)\[\d+\]: / and $prog{$1}++ for @day;
for my $name (qw(mtad mtad/smtpd mtad/smtps/smtpd mtad/submission/smtpd mtad/pickup
		 mtad/cleanup mtad/qmgr mtad/smtp mtad/bounce)) {
	ok $prog{$name}, "lines from $name" or diag explain \%prog;
}
is_deeply [grep { !m{^mtad(?:/(?:smtpd|smtps/smtpd|submission/smtpd|pickup|cleanup|qmgr|smtp|bounce))?$} }
	   sort keys %prog], [], 'no other program name';
ok count(qr{ mtad/cleanup\[\d+\]: \w+: message-id=<one\@sender\.test>$}, @day),
	'cleanup: message-id= of the first message';
ok count(qr{ mtad/cleanup\[\d+\]: \Q$auth_qid\E: message-id=<auth-1\@campus\.test>$}, @day),
	'cleanup: message-id= of the authenticated one';
ok count(qr{ mtad/cleanup\[\d+\]: \Q$sub_qid\E: message-id=<\Q$sub_qid\E\.\d+\@mx\.campus\.test>$}, @day),
	'cleanup: the Message-ID mtad added to the submission';
ok count(qr{ mtad/submission/smtpd\[\d+\]: NOQUEUE: reject: MAIL from unknown\[127\.0\.0\.6\]: 530 5\.7\.0 Authentication required; from=<alice\@campus\.test> proto=ESMTP helo=<laptop\.example>$}, @day),
	'the 530 names the sender the client gave';
ok count(qr{ NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <x\@elsewhere\.example>: Relay access denied; from=<a\@sender\.test> to=<x\@elsewhere\.example> proto=ESMTP helo=<client\.example>}, @day),
	'the relay reject in Postfix\'s shape, with to=<>';
ok count(qr{ mtad/smtp\[\d+\]: \w+: to=<u1\@ok\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$po, delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(250 }, @day),
	'a delivery line in Postfix\'s shape';
ok count(qr{ mtad/qmgr\[\d+\]: \w+: from=<a\@sender\.test>, size=\d+, nrcpt=1 \(queue active\)$}, @day),
	'qmgr: (queue active)';
ok count(qr{ mtad/bounce\[\d+\]: \w+: sender non-delivery notification: \w+$}, @day),
	'bounce: sender non-delivery notification';

my $file = "$dir/mail.log";
open my $fh, '>', $file or die "$file: $!";
print $fh map { "$_\n" } @day;
close $fh;

# ---- pflogsumm ----
# Debian's pflogsumm 1.1.5 reads (?:postfix|SYSLOGNAME)(?:/(?:smtps|submission))?/NAME.
($rc, $out, $err) = MtadTest::run($PFLOGSUMM, '--syslog-name=mtad', $file);
is $rc, 0, 'pflogsumm --syslog-name=mtad runs' or diag $err;
my %got;
$got{$2} = $1 while $out =~ /^\s*(\d+)\s+(received|delivered|deferred|bounced|rejected)\b/mg;
for my $what (qw(received delivered deferred bounced rejected)) {
	is $got{$what}, $did{$what}, "pflogsumm: $did{$what} $what" or diag $out;
}
# ... and what grep counts in the same file.
is $got{delivered}, count(qr/ status=sent /, @day), 'pflogsumm delivered = grep status=sent';
is $got{bounced}, count(qr/ status=bounced /, @day), 'pflogsumm bounced = grep status=bounced';
is $got{rejected}, count(qr/: reject: /, @day), 'pflogsumm rejected = grep reject:';
is $got{received}, count(qr/: client=|: uid=\d+ from=/, @day), 'pflogsumm received = grep client=, uid=';

# ---- fail2ban ----
my %failed_ip;
/SASL \S+ authentication failed: .*/ && /\[([\d.]+)\]: SASL/ and $failed_ip{$1}++ for @day;
is_deeply \%failed_ip, $did{auth_failed}, 'one "authentication failed" line per failed AUTH';
my $nfailed = 0;
$nfailed += $_ for values %failed_ip;

# f2b(FILTER) - (matched count, {ip => count}) of fail2ban-regex on the day.
sub f2b {
	my ($filter) = @_;
	my ($rc, $out, $err) = MtadTest::run($F2B, '--out', 'ip', $file, $filter);
	my %ip;
	$ip{$_}++ for grep { /^[\d.]+$/ } split /\n/, $out;
	return ($rc, \%ip, "$out$err");
}
mkdir "$dir/filter.d";
MtadTest::run('/bin/cp', "$FindBin::Bin/../etc/fail2ban/filter.d/mtad.conf",
	      '/etc/fail2ban/filter.d/common.conf', "$dir/filter.d/");
my ($frc, $ips, $fout) = f2b("$dir/filter.d/mtad.conf");
is $frc, 0, 'fail2ban-regex with the shipped filter runs' or diag $fout;
is_deeply $ips, $did{auth_failed}, "... it finds the $nfailed failed logins, with their addresses"
	or diag $fout;
($frc, $ips, $fout) = f2b('postfix[mode=auth, _daemon="mtad/\S+"]');
is $frc, 0, 'fail2ban-regex with Debian\'s postfix[mode=auth], _daemon="mtad/\S+"' or diag $fout;
is_deeply $ips, $did{auth_failed}, '... finds them all too' or diag $fout;

is $m->stop, 0, 'mtad stops';
kill 'TERM', $reader;
waitpid $reader, 0;
done_testing;
