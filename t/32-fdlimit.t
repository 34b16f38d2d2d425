# 32-fdlimit.t - the descriptor limit: mtad raises its soft limit and
# says so in the log; started under a hard limit too low for
# max_connections it warns and refuses the connections it has no room
# for with 421; and when it does run out of descriptors (its limit
# lowered under it with prlimit) it neither spins nor dies, and serves
# again as soon as descriptors are free. Loopback only; no assertion
# depends on timing except generous upper bounds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use MtadTest;

my $REAL_BUILD = $MtadTest::BUILD;

# which(PROG) - the program's path, or undef.
sub which {
	my ($prog) = @_;
	for my $d (split /:/, $ENV{PATH} // '/usr/bin:/bin') {
		return "$d/$prog" if -x "$d/$prog";
	}
	return undef;
}

# proc_field(PATH, REGEX) - the first capture of REGEX in a /proc file.
sub proc_field {
	my ($path, $re) = @_;
	open my $fh, '<', $path or return undef;
	while (<$fh>) { return $1 if $_ =~ $re }
	return undef;
}

# nofile(PID) - (soft, hard) "Max open files" of a process.
sub nofile {
	my ($pid) = @_;
	my $line = proc_field("/proc/$pid/limits", qr/^(Max open files.*)$/) // return;
	my ($soft, $hard) = $line =~ /^Max open files\s+(\S+)\s+(\S+)/;
	return ($soft, $hard);
}

# fds(PID) - the process's open descriptors: (count, sockets).
sub fds {
	my ($pid) = @_;
	opendir my $d, "/proc/$pid/fd" or return (0, 0);
	my ($n, $sock) = (0, 0);
	for my $f (grep { /^\d+$/ } readdir $d) {
		$n++;
		my $t = readlink "/proc/$pid/fd/$f" // next;
		$sock++ if $t =~ /^socket:/;
	}
	return ($n, $sock);
}

# cpu_ticks(PID) - user + system time used so far, in clock ticks.
sub cpu_ticks {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or return undef;
	my $stat = <$fh>;
	my @f = split ' ', ($stat =~ /\)\s+(.*)$/)[0];
	return $f[11] + $f[12];	# utime, stime (fields 14 and 15)
}

# start_limited(M, SOFT, HARD, DROP) - starts M's mtad under prlimit
# --nofile=SOFT:HARD (through a wrapper that execs, so the PID stays
# mtad's); DROP also takes CAP_SYS_RESOURCE away, so root cannot raise
# the hard limit again.
sub start_limited {
	my ($m, $soft, $hard, $drop) = @_;
	my $wrap = tempdir('mtad-fdlimit-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my $pre = $drop ? 'setpriv --bounding-set -sys_resource ' : '';
	open my $fh, '>', "$wrap/mtad" or die "$wrap/mtad: $!";
	print $fh "#!/bin/sh\nexec ${pre}prlimit --nofile=$soft:$hard $REAL_BUILD/mtad \"\$@\"\n";
	close $fh or die "$wrap/mtad: $!";
	chmod 0755, "$wrap/mtad" or die "chmod: $!";
	local $MtadTest::BUILD = $wrap;
	return $m->start;
}

# connection - a TCP connection to M, nothing read yet.
sub connection {
	my ($m) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $m->port, Timeout => 30)
		or die "connect to 127.0.0.1:" . $m->port . ": $@";
	$s->autoflush(1);
	return $s;
}

# no_connections(M) - waits until mtad holds no client socket, only its
# listener: a connection's descriptor is closed in the same loop turn
# that stops counting it.
# (The tests' mtads have no local socket: the listener is their one socket.)
sub no_connections {
	my ($m) = @_;
	return MtadTest::wait_for(30, sub { (fds($m->pid))[1] == 1 });
}

# a full transaction on a fresh connection: mtad serves normally.
sub serves {
	my ($m, $what) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, 'a@b.test', ['u@campus.test'], "Subject: $what\n\nbody\n");
	$smtp->quit;
	like $r, qr/\A250 2\.0\.0 Ok: queued as /, "after that a whole transaction works ($what)";
}

my $prlimit = which('prlimit');
my $setpriv = which('setpriv');
plan skip_all => 'needs prlimit (util-linux) and /proc' unless $prlimit && -r "/proc/$$/limits";
my (undef, $hard) = nofile($$);
my $capeff = proc_field("/proc/$$/status", qr/^CapEff:\s+([0-9a-f]+)/) // '0';
my $can_raise_hard = $> == 0 && (hex(substr($capeff, -8)) >> 24) & 1;	# CAP_SYS_RESOURCE

# ---- the log line at start, and the soft limit raised to the hard one ----
SKIP: {
	# max_connections 1000 + delivery_concurrency 20 + the reserve 64
	skip "hard descriptor limit $hard is below 1084", 3
		unless $hard eq 'unlimited' || $hard >= 1084;
	my $cap = $hard eq 'unlimited' || $hard > 4096 ? 4096 : $hard;
	my $m = MtadTest->new(start => 0, max_connections => 1000, delivery_concurrency => 20,
			      local_socket => '');
	start_limited($m, 256, $cap, 0);
	my ($soft) = nofile($m->pid);
	is $soft, $cap, "the soft limit 256 is raised to the hard limit $cap";
	my $line = $m->wait_log(qr/: descriptor limit \d+/, 0, 10) // '';
	like $line, qr/: descriptor limit \Q$cap\E \(raised from 256\), room for (\d+) connections\z/,
		'one info line says so' or diag $m->log_text;
	my ($room) = $line =~ /room for (\d+) connections/;
	cmp_ok $room // 0, '>=', 1000, '... with room for max_connections';
	$m->stop;
}

# ---- a hard limit too low for max_connections ----
SKIP: {
	my $drop = $can_raise_hard;
	skip 'needs setpriv to take CAP_SYS_RESOURCE from root', 6
		if $drop && !($setpriv && system("$setpriv --bounding-set -sys_resource true") == 0);
	my $m = MtadTest->new(start => 0, delivery_concurrency => 1, local_socket => '',
			      max_connections_per_ip => 1000);
	start_limited($m, 100, 100, $drop);
	my $warn = $m->wait_log(qr/warning: descriptor limit/, 0, 10) // '';
	like $warn, qr/warning: descriptor limit 100 is too low for max_connections = 1000: at most (\d+) connections will be served; raise the hard limit .* to 1065\z/,
		'a limit of 100 with max_connections 1000: a warning with the real number';
	my ($room) = $warn =~ /at most (\d+) connections/;
	$room //= 35;
	is $room, 100 - 1 - 64, '... which is the limit minus deliveries and the reserve';
	ok no_connections($m), '(the start-up probe connection is gone)';
	my (@held, $greeted);
	for (1 .. $room) {
		my $s = connection($m);
		push @held, $s;
		$greeted++ if ($m->read_reply($s, 30) // '') =~ /^220 /;
	}
	is $greeted, $room, "$room connections are greeted";
	my $s = connection($m);
	like $m->read_reply($s, 30) // 'nothing',
		qr/\A421 4\.7\.0 mx\.campus\.test Error: too many connections \(descriptor limit\)\r\n\z/,
		'one more gets 421, it is not left hanging';
	close $_ for $s, @held;
	ok no_connections($m), 'they close';
	serves($m, 'after the 421');
	$m->stop;
}

# ---- out of descriptors for real: EMFILE on accept ----
{
	my $m = MtadTest->new(max_connections_per_ip => 1000, local_socket => '');
	my $pid = $m->pid;
	ok no_connections($m), '(the start-up probe connection is gone)';
	my @held = map { scalar $m->raw } 1 .. 3;
	my ($n) = fds($pid);
	my ($soft0, $hard0) = nofile($pid);
	my $log_from = length $m->log_text;
	# No descriptor left: every accept from now on fails with EMFILE.
	# (Only the soft limit: a lowered hard limit could not be restored.)
	is system($prlimit, '--pid', $pid, "--nofile=$n:$hard0"), 0,
		"prlimit lowers mtad's soft limit to the $n descriptors it uses";
	my @waiting = map { connection($m) } 1 .. 5;
	my $line = $m->wait_log(qr/warning: accept on 127\.0\.0\.1:\d+: Too many open files/, $log_from, 30);
	like $line // 'no log line', qr/with \d+ connections open: new connections wait until one closes\z/,
		'EMFILE: one warning line';
	# A loop retrying accept at once would burn a whole CPU second per second.
	my $t0 = cpu_ticks($pid);
	sleep 2;
	my $used = cpu_ticks($pid) - $t0;
	cmp_ok $used, '<', 100, "mtad does not spin while out of descriptors ($used ticks in 2 s)";
	ok kill(0, $pid), '... and is still running';
	# A freed descriptor is used at once, for the client waiting longest.
	my $q = shift @held;
	$m->dialog($q, "> QUIT\n< 221 2.0.0 *\n");
	close $q;
	like $m->read_reply($waiting[0], 30) // 'nothing', qr/\A220 /,
		'a connection closes: the first waiting client is greeted';
	# Room again: everyone waiting is served, and normal sessions work.
	is system($prlimit, '--pid', $pid, "--nofile=$soft0:$hard0"), 0, 'the limit is restored';
	close $_ for @held;
	my $greeted = 0;
	for my $s (@waiting[1 .. $#waiting]) {
		$greeted++ if ($m->read_reply($s, 30) // '') =~ /\A220 /;
	}
	is $greeted, 4, 'the other waiting clients are greeted';
	close $_ for @waiting;
	serves($m, 'after EMFILE');
	is $m->stop, 0, 'mtad stops cleanly (exit 0)';
}

done_testing;
