# 12-syslog.t - `log = syslog`: every line is one RFC 3164 datagram on
# syslog_socket (here a socket the test listens on, as syslogd or
# journald does on /dev/log): "<PRI>Mon DD HH:MM:SS mtad[PID]: text",
# or mtad/smtpd[PID] etc. for a service's lines (log_tag and
# log_services change the name),
# facility mail, severity info, warning or err, the "warning: " and
# "error: " prefixes kept, no newline; nothing of it on stderr. When the
# socket goes away the lines go to stderr, and back to the socket once
# it is there again. A socket nobody listens on stops the start with a
# message on stderr; a failed start says why on stderr and in syslog.
# mtad -e logs to stderr whatever the file says. mtad -n shows the keys.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use Time::HiRes qw(time sleep);
use MtadTest;

my $dir = tempdir(CLEANUP => 1);
my $path = "$dir/log";
my $TS = qr/[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d/;

# syslogd() - a datagram socket at $path, as /dev/log is.
sub syslogd {
	unlink $path;
	my $sock = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path)
		or die "bind $path: $!";
	return $sock;
}

# datagrams($sock, REGEX, SECS) - the datagrams read until one matches
# REGEX (or SECS, default 10, pass).
sub datagrams {
	my ($sock, $re, $secs) = @_;
	my $sel = IO::Select->new($sock);
	my $deadline = time + ($secs // 10);
	my @got;
	while ((my $left = $deadline - time) > 0) {
		next unless $sel->can_read($left);
		my $d;
		defined $sock->recv($d, 65536) or last;
		push @got, $d;
		last if $d =~ $re;
	}
	return @got;
}

my $syslog = syslogd();
my $m = MtadTest->new(log => 'syslog', syslog_socket => $path);
my $pid = $m->pid;
my @start = datagrams($syslog, qr/daemon started/);
ok @start >= 2, 'the start-up lines arrive as datagrams' or diag explain \@start;
like $start[0] // '', qr/\A<22>$TS mtad\[$pid\]: descriptor limit \d+/,
	'the first one: <22> (mail.info), the syslog time, mtad[PID], the text';
like $start[-1] // '', qr/\A<22>$TS mtad\[$pid\]: daemon started -- version \S+, configuration \Q${\ $m->conf_path}\E\z/,
	'"daemon started", no newline at the end';
if ($> == 0) {
	ok((grep { /\A<20>$TS mtad\[$pid\]: warning: user is empty in the configuration: mtad keeps running as root/ } @start),
	   'a warning is <20> (mail.warning) and keeps its "warning: " prefix') or diag explain \@start;
}

# a message: its lines come by syslog too
my $smtp = $m->smtp;
my $r = $m->send_message($smtp, 'alice@example.org', ['bob@campus.test'], "Subject: x\n\nhi\n");
like $r, qr/^250 /, 'mail is accepted';
my ($qid) = $r =~ /queued as ($MtadTest::QID)/;
$smtp->quit;
my @mail = datagrams($syslog, qr/\Q$qid\E: from=<alice\@example\.org>/);
ok((grep { /\A<22>$TS mtad\/smtpd\[$pid\]: \Q$qid\E: from=<alice\@example\.org>/ } @mail),
   'the queue id line is a datagram, from mtad/smtpd') or diag explain \@mail;
ok((grep { /\A<22>$TS mtad\/cleanup\[$pid\]: \Q$qid\E: message-id=<>\z/ } @mail),
   '... and the cleanup line: no Message-ID: in this one') or diag explain \@mail;
my @bad = grep { !/\A<(?:19|20|22)>$TS mtad(?:\/smtpd|\/cleanup)?\[$pid\]: [^\n]*\z/ } @start, @mail;
is "@bad", '', 'every datagram: facility mail, info/warning/err, one line';
is $m->log_text, '', 'nothing on stderr';

# a reload refused: a warning by syslog
my $conf = $m->conf_path;
my $good = MtadTest::slurp($conf);
open my $fh, '>>', $conf or die "$conf: $!";
print $fh "this is not a setting\n";
close $fh;
my $n = () = MtadTest::slurp($conf) =~ /\n/g;
kill 'HUP', $pid;
my @hup = datagrams($syslog, qr/reload/);
like $hup[-1] // '', qr/\A<20>$TS mtad\[$pid\]: warning: reload: keeping the old configuration: \Q$conf\E:$n: missing "=" in "this is not a setting"\z/,
	'SIGHUP with a broken file: the warning by syslog, with file:line';
open $fh, '>', $conf or die "$conf: $!";
print $fh $good;
close $fh;

# the syslog daemon goes away (a restart): lines go to stderr meanwhile
close $syslog;
unlink $path;
my $s = $m->raw;
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
ok $m->wait_log(qr/^$TS mtad\/smtpd\[$pid\]: connect from \S*\[127\.0\.0\.1\] to /),
	'no socket: the lines go to stderr, in the stderr shape' or diag $m->log_text;
ok $m->wait_log(qr/^$TS mtad\/smtpd\[$pid\]: disconnect from /), '... all of that session\'s';
# ... and to the new socket once it is there
$syslog = syslogd();
my $from = length $m->log_text;
$s = $m->raw;
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
my @back = datagrams($syslog, qr/disconnect from/);
ok((grep { /\A<22>$TS mtad\/smtpd\[$pid\]: connect from \S*\[127\.0\.0\.1\] to / } @back),
   'a new socket at the path gets the lines again') or diag explain \@back;
is substr($m->log_text, $from), '', '... and stderr none';

is $m->stop, 0, 'SIGTERM: exit 0';
my @stop = datagrams($syslog, qr/terminating on signal 15/, 5);
like $stop[-1] // '', qr/\A<22>$TS mtad\[$pid\]: terminating on signal 15\z/, 'the stop is logged by syslog';

# ---- a socket nobody listens on: no start ----
my $gone = "$dir/nobody-here";
my $q = MtadTest->new(start => 0, log => 'syslog', syslog_socket => $gone);
my ($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $q->conf_path);
is $rc, 1, 'log = syslog with nobody at the socket: exit 1';
is $err, "mtad: error: cannot log to the syslog socket $gone: No such file or directory "
	. "(is a syslog daemon or journald running? or set log = stderr)\n",
	'... saying so on stderr';

# ---- a failed start: stderr and syslog both say why ----
my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
	or die "listen: $!";
my $port = $busy->sockport;
$q = MtadTest->new(start => 0, log => 'syslog', syslog_socket => $path,
		   listen => ["127.0.0.1:$port"]);
($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $q->conf_path);
is $rc, 1, 'a port in use: exit 1';
like $err, qr/\Amtad: error: listen 127\.0\.0\.1:$port: address already in use\n\z/,
	'... the reason on stderr, for whoever started it';
my @fail = datagrams($syslog, qr/error:/, 5);
like $fail[-1] // '', qr/\A<19>$TS mtad\[\d+\]: error: listen 127\.0\.0\.1:$port: address already in use\z/,
	'... and by syslog as <19> (mail.err)';

# ---- -e: stderr whatever the file says (a run by hand) ----
$q = MtadTest->new(start => 0, log => 'syslog', syslog_socket => $gone,
		   listen => ["127.0.0.1:$port"]);
($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-e', '-c', $q->conf_path);
is $rc, 1, '-e, nobody at the socket, a port in use: exit 1 for the port';
like $err, qr/^$TS mtad\[\d+\]: error: listen 127\.0\.0\.1:$port: address already in use$/m,
	'-e: the log is on stderr, in its stderr shape, and the socket is not needed';
unlike $err, qr/syslog socket/, '... nothing about the syslog socket';

# ---- log_tag and log_services ----
# log_tag replaces "mtad" in every name; log_services = no keeps one plain
# name for every line (an admin whose tools expect one program).
for my $case (['mail', 'yes', 'mail/smtpd', 'mail/cleanup', 'mail'],
	      ['mail', 'no', 'mail', 'mail', 'mail']) {
	my ($tag, $svc, $smtpd, $cleanup, $daemon) = @$case;
	my $t = MtadTest->new(log => 'syslog', syslog_socket => $path, log_tag => $tag,
			      log_services => $svc);
	my $tpid = $t->pid;
	my @up = datagrams($syslog, qr/daemon started/);
	ok((grep { /\A<22>$TS \Q$daemon\E\[$tpid\]: daemon started/ } @up),
	   "log_tag = $tag, log_services = $svc: the daemon's lines are $daemon\[PID\]")
		or diag explain \@up;
	my $c = $t->smtp;
	my $reply = $t->send_message($c, 'alice@example.org', ['bob@campus.test'],
				     "Subject: x\nMessage-ID: <tag-$svc\@example.org>\n\nhi\n");
	$c->quit;
	my @lines = datagrams($syslog, qr/message-id=/);
	ok((grep { /\A<22>$TS \Q$smtpd\E\[$tpid\]: connect from / } @lines),
	   "... a session's lines are $smtpd\[PID\]") or diag explain \@lines;
	ok((grep { /\A<22>$TS \Q$cleanup\E\[$tpid\]: $MtadTest::QID: message-id=<tag-$svc\@example\.org>\z/ } @lines),
	   "... the cleanup line is $cleanup\[PID\], with the Message-ID") or diag explain \@lines;
	is $t->stop, 0, '... and it stops';
	datagrams($syslog, qr/terminating/, 5);
}
($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-n', '-c',
	MtadTest->new(start => 0, extra => "log_tag = mtad/x\n")->conf_path);
isnt $rc, 0, 'log_tag with a "/" is refused';
like $err, qr/:\d+: bad log_tag "mtad\/x"/, '... as file:line' or diag $err;

# ---- mtad -n ----
($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $q->conf_path, '-n');
is $rc, 0, 'mtad -n' or diag $err;
like $out, qr/^user =\nlog = syslog\nsyslog_socket = \Q$gone\E\n/m, 'mtad -n prints user, log and syslog_socket';

done_testing;
