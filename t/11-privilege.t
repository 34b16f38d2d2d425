# 11-privilege.t - started as root with `user = nobody`, mtad binds its
# port and reads its key and sasldb as root, then runs as nobody before
# it opens the queue or reads a byte from the network: /proc shows uid,
# gid and groups of nobody and no capabilities; mail is accepted, AUTH
# works (the sasldb is group-readable), every file in the spool is
# nobody's; a key only root can read makes a warning at start and a
# refused reload, and the same key made 0640 root:nogroup reloads.
# Every unsafe or broken set-up is refused at start with the exact
# command that fixes it, before anything in the spool is created: a user
# that does not exist, user root, a spool that is missing, root's, open
# to everyone, unreachable for nobody, or holding a file of root's, and
# a sasldb nobody cannot read. A saslauthd socket nobody cannot reach,
# or none, is a warning. Started as nobody, mtad ignores `user` with an
# info line. Needs root (skipped otherwise).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h _exit);
use Time::HiRes qw(sleep time);
use MtadTest;

plan skip_all => 'needs root: mtad switches user only when started as root' if $> != 0;
my ($nobody, undef, $uid, $gid) = getpwnam('nobody') or plan skip_all => 'no user nobody';
my $group = getgrgid($gid) // $gid;

# prepare($m, spool_mode => M, dir_mode => M) - the tree as INSTALL has
# it: the test dir open to nobody, the spool nobody's, the sasldb (when
# there is one) 0640 root:GROUP; the key stays 0600 root.
sub prepare {
	my ($m, %o) = @_;
	chmod $o{dir_mode} // 0711, $m->dir or die "chmod: $!";
	chown $uid, $gid, $m->spool or die "chown: $!";
	chmod $o{spool_mode} // 0700, $m->spool or die "chmod: $!";
	if (-e $m->sasldb_path) {
		chown 0, $gid, $m->sasldb_path or die "chown: $!";
		chmod 0640, $m->sasldb_path or die "chmod: $!";
	}
	return $m;
}

# refused($m, NAME, FILES...) - mtad must exit 1 at start (within 15 s);
# returns its output. The spool must hold only FILES (those the test put
# there): nothing was made as root.
sub refused {
	my ($m, $name, @files) = @_;
	my $pid = $m->spawn;
	my $deadline = time + 15;
	while (waitpid($pid, WNOHANG) != $pid) {
		if (time > $deadline) {
			kill 'KILL', $pid;
			waitpid $pid, 0;
			fail "$name: mtad still runs after 15 s";
			return $m->log_text;
		}
		sleep 0.05;
	}
	is $? >> 8, 1, "$name: mtad refuses to start (exit 1)";
	my @made = -d $m->spool ? grep { !/^\.\.?\z/ } do {
		opendir my $d, $m->spool or die "opendir: $!";
		readdir $d;
	} : ();
	is join(' ', sort @made), join(' ', sort @files), "$name: ... and made nothing in the spool";
	return $m->log_text;
}

# as_nobody(CODE) - runs CODE in a child as nobody; returns its exit code.
sub as_nobody {
	my ($code) = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		POSIX::setgid($gid) && POSIX::setuid($uid) or _exit(125);
		$code->();
		_exit(127);
	}
	waitpid $pid, 0;
	return $? >> 8;
}

# status_field(PID, NAME) - a line of /proc/PID/status, after "NAME:".
sub status_field {
	my ($pid, $name) = @_;
	open my $fh, '<', "/proc/$pid/status" or return '';
	while (my $line = <$fh>) {
		return $1 =~ s/\s+/ /gr =~ s/ \z//r if $line =~ /^\Q$name\E:\s*(.*)$/;
	}
	return '';
}

# ---- the switch: as INSTALL sets it up ----

my $m = prepare(MtadTest->new(start => 0, user => 'nobody', listeners => ['starttls'],
			      users => {alice => 'secret'}));
$m->start;
my $pid = $m->pid;
my $ids = "$uid $uid $uid $uid";
is status_field($pid, 'Uid'), $ids, "/proc: real, effective, saved and fs uid are nobody's ($uid)";
is status_field($pid, 'Gid'), "$gid $gid $gid $gid", "/proc: every gid is nobody's group ($gid)";
my @want = sort { $a <=> $b } split ' ', `id -G nobody`;
is join(' ', sort { $a <=> $b } split ' ', status_field($pid, 'Groups')), "@want",
	"/proc: the groups are nobody's from /etc/group (@want), none of root's";
like status_field($pid, $_), qr/\A0+\z/, "/proc: $_ is empty" for qw(CapPrm CapEff);

my $log = $m->log_text;
my $key = $m->key_path;
like $log, qr/^.*mtad\[$pid\]: running as user nobody \(uid $uid, gid $gid, groups [\d,]+\)$/m,
	'log: running as user nobody (uid, gid, groups)';
like $log, qr/listening on 127\.0\.0\.1:\d+\n(?:.*\n)*.*running as user nobody(?:.*\n)*.*daemon started/,
	'log: bound as root first, then the switch, then started';
like $log, qr/warning: tls_key_file \Q$key\E is not readable by user nobody \(Permission denied\): a reload \(SIGHUP\) cannot load a renewed key; run: chown root:\Q$group\E \Q$key\E && chmod 0640 \Q$key\E$/m,
	'log: a key only root can read: a warning with the command that fixes it';
unlike $log, qr/sasl_database|spool directory/, 'log: nothing to say about the spool or the sasldb';

# mail, and AUTH against the sasldb that nobody reads through its group
my $s = $m->raw;
$m->starttls_ehlo($s, 'client.example');
$m->dialog($s, '> ' . MtadTest::auth_plain('alice', 'secret') . "\n< 235 2.7.0 Authentication successful\n");
my $qid = $m->queue_message($s, 'sent to an mtad that runs as nobody',
			    from => 'alice@campus.test', to => 'bob@campus.test', body => 'hello');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
ok $qid ne 'NONE', 'mail is accepted after AUTH, as nobody';
# nobody runs mtaq: from a copy when the build is out of its reach
# (a checkout under /root, mode 0700)
my $mtaq = MtadTest::programs_for_others() . '/mtaq';
my $conf = $m->conf_path;
is as_nobody(sub {
	open STDOUT, '>', '/dev/null';
	exec $mtaq, '-c', $conf, 'show', $qid;
}), 0, 'mtaq as nobody finds the message';
my @foreign = grep { (lstat)[4] != $uid } glob($m->spool . '/*');
is "@foreign", '', 'every file in the spool is nobody\'s';

# a reload as nobody: the config is readable, the 0600 key is not
my $from = length $m->log_text;
kill 'HUP', $pid;
ok $m->wait_log(qr/reload: configuration .* loaded/, $from), 'SIGHUP as nobody: the configuration reloads';
like $m->wait_log(qr/reload: keeping the old certificate/, $from) // '', qr/Permission denied|key/,
	'SIGHUP: a key only root can read is not reloaded, and the log says so';
chown 0, $gid, $key or die "chown: $!";
chmod 0640, $key or die "chmod: $!";
$from = length $m->log_text;
kill 'HUP', $pid;
ok $m->wait_log(qr/reload: TLS certificate and key loaded/, $from),
	'SIGHUP: the key made 0640 root:nogroup (as INSTALL says) reloads';
is $m->stop, 0, 'SIGTERM: mtad (as nobody) exits 0';

# restarting on that spool works: it is nobody's
$from = length $m->log_text;
$m->start;
is status_field($m->pid, 'Uid'), $ids, 'a restart on the same spool runs as nobody again';
is $m->stop, 0, '... and stops cleanly';
unlike substr($m->log_text, $from), qr/warning: tls_key_file/,
	'with the key 0640 root:nogroup no warning about it';

# ---- refusals: each says why and the command that fixes it ----

my $r = MtadTest->new(start => 0, user => 'mtad-test-no-such-user');
prepare($r);
like refused($r, 'a user that does not exist'),
	qr/error: user mtad-test-no-such-user does not exist, and mtad will not keep running as root: create it \(adduser --system --group --no-create-home --home \S+ mtad-test-no-such-user\)/,
	'... because the user does not exist';

$r = prepare(MtadTest->new(start => 0, user => 'root'));
like refused($r, 'user root'), qr/error: user root has uid 0: name an unprivileged account/,
	'... because root is no unprivileged user';

$r = MtadTest->new(start => 0, user => 'nobody');
chmod 0711, $r->dir;
my $spool = $r->spool;
like refused($r, 'a spool of root\'s'),
	qr/error: spool directory \Q$spool\E is owned by root, not by nobody; run: chown -R nobody:\Q$group\E \Q$spool\E && chmod 0700 \Q$spool\E$/m,
	'... because the spool is root\'s, with the chown and chmod to run';

$r = prepare(MtadTest->new(start => 0, user => 'nobody'));
rmdir $r->spool or die "rmdir: $!";
$spool = $r->spool;
like refused($r, 'no spool'),
	qr/error: spool directory \Q$spool\E does not exist; create it: install -d -o nobody -g \Q$group\E -m 0700 \Q$spool\E$/m,
	'... because the spool does not exist, with the install -d to run';

$r = prepare(MtadTest->new(start => 0, user => 'nobody'), spool_mode => 0777);
$spool = $r->spool;
like refused($r, 'a spool everyone may write'),
	qr/error: spool directory \Q$spool\E is writable by every user \(mode 0777\); run: chmod 0700 \Q$spool\E$/m,
	'... because everyone may write the spool';

$r = prepare(MtadTest->new(start => 0, user => 'nobody'), dir_mode => 0700);
$spool = $r->spool;
like refused($r, 'a spool nobody cannot reach'),
	qr/error: user nobody cannot use spool directory \Q$spool\E: Permission denied \(the directory and each one above it must be open to nobody\)/,
	'... because a directory above the spool is closed to nobody';

$r = prepare(MtadTest->new(start => 0, user => 'nobody'));
$spool = $r->spool;
{ open my $fh, '>', "$spool/log.0000000001" or die "$spool: $!"; }	# root made it
chown $uid, $gid, $spool;
like refused($r, 'a spool with a file of root\'s', 'log.0000000001'),
	qr/error: \Q$spool\E\/log\.0000000001 is owned by root, not by nobody; run: chown -R nobody:\Q$group\E \Q$spool\E$/m,
	'... because a file in the spool is root\'s';

$r = MtadTest->new(start => 0, user => 'nobody', listeners => ['starttls'], users => {alice => 'x'});
prepare($r);
chmod 0600, $r->sasldb_path or die "chmod: $!";
my $db = $r->sasldb_path;
like refused($r, 'a sasldb only root can read'),
	qr/error: sasl_database \Q$db\E is not readable by user nobody \(Permission denied\): every AUTH would fail; run: chown root:\Q$group\E \Q$db\E && chmod 0640 \Q$db\E$/m,
	'... because nobody could not read the sasldb';

# ---- saslauthd: a socket nobody cannot reach is a warning ----

$r = prepare(MtadTest->new(start => 0, user => 'nobody', listeners => ['starttls'],
			   sasl_pwcheck_method => 'saslauthd'));
my $closed = $r->dir . '/saslauthd';
mkdir $closed, 0700 or die "mkdir: $!";
{ open my $fh, '>>', $r->conf_path or die; print $fh "saslauthd_path = $closed/mux\n"; }
# the socket: a file will do, access(2) is what is asked
{ open my $fh, '>', "$closed/mux" or die "$closed/mux: $!"; }
$r->start;
like $r->log_text, qr/warning: user nobody cannot reach the saslauthd socket \Q$closed\E\/mux \(Permission denied\): every AUTH will fail; run: adduser nobody sasl, then restart mtad$/m,
	'saslauthd socket in a directory closed to nobody: a warning that says the adduser';
is $r->stop, 0, '... mtad runs anyway (saslauthd may be fixed later) and stops cleanly';
unlink "$closed/mux";
chmod 0711, $closed or die "chmod: $!";
$from = length $r->log_text;
$r->start;
like substr($r->log_text, $from), qr/warning: the saslauthd socket \Q$closed\E\/mux does not exist \(is saslauthd running\?\)$/m,
	'no saslauthd socket: a warning';
is $r->stop, 0, '... and a clean stop';

# ---- started as nobody: user does not apply ----

# (No local socket: nobody may not make one in the test's directory.)
$r = prepare(MtadTest->new(start => 0, user => 'mtad', local_socket => ''));
chmod 0644, $r->conf_path;
my $lp = $r->log_path;
my $cp = $r->conf_path;
my $port = $r->port;
my $mtad_for_nobody = MtadTest::programs_for_others() . '/mtad';
my $child = fork // die "fork: $!";
if ($child == 0) {
	open STDIN, '<', '/dev/null';
	open STDOUT, '>', $lp or _exit(126);
	open STDERR, '>&', \*STDOUT or _exit(126);
	POSIX::setgid($gid) && POSIX::setuid($uid) or _exit(125);
	exec $mtad_for_nobody, '-c', $cp or _exit(127);
}
my $up = MtadTest::wait_for(15, sub {
	my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 2)
		or return 0;
	return ($r->read_reply($c, 5) // '') =~ /^220 /;
});
ok $up, 'started as nobody with user = mtad: it serves';
like $r->log_text, qr/: not started as root: running as nobody \(uid $uid\); user = mtad applies only to a start as root$/m,
	'... and says that user = mtad does not apply';
kill 'TERM', $child;
waitpid $child, 0;
is $?, 0, '... and exits 0 on SIGTERM' or diag $r->log_text;

done_testing;
