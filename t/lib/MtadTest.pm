# MtadTest - runs one mtad for a black-box test and talks SMTP to it.
#
#   my $m = MtadTest->new(max_recipients => 5);   # config, start, wait
#   my $s = $m->raw;                               # greeting already read
#   $m->dialog($s, <<'END');                       # a transcript, see dialog()
#     > EHLO client.example
#     < 250-mx.campus.test Hello client.example [127.0.0.1]
#     ...
#   END
#   my ($rc, $out, $err) = $m->mtaq('list');
#
#   # TLS and AUTH: one port per listener, a self-signed certificate, a sasldb
#   my $t = MtadTest->new(listeners => ['starttls', 'tls', 'starttls submission'],
#                         users => {alice => 'secret'});
#   my $s = $t->raw(port => $t->port(0));          # plaintext, then
#   $t->starttls($s);                              # STARTTLS + handshake
#   $t->starttls_ehlo($s, 'client.example');       # EHLO, STARTTLS, EHLO
#   $t->dialog($s, '> ' . MtadTest::auth_plain('alice', 'secret') . "\n< 235 *\n");
#   my $u = $t->tls_raw(1);                        # implicit TLS, greeting read
#
# Each object owns a temporary directory (mtad.conf, spool/, mtad.log)
# removed at exit, and one mtad child process that is always stopped by
# its PID: by stop(), by DESTROY, or by the END block below. Nothing here
# depends on timing except generous upper bounds for waiting.
package MtadTest;

use strict;
use warnings;

use Carp qw(croak);
use Cwd ();
use File::Basename ();
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::IP;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use MIME::Base64 ();
use Net::SMTP;
use POSIX qw(:sys_wait_h _exit);
use Socket qw(IPPROTO_TCP);
use Time::HiRes qw(sleep time);
use Test::More ();

# The functions a test may import: use MtadTest qw(auth_plain b64);
use Exporter 'import';
our @EXPORT_OK = qw(auth_plain b64 ehlo_script);

# `make check` sets MTAD_BUILD; a bare `prove t/` uses ./build.
our $BUILD = $ENV{MTAD_BUILD}
	// Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../../build');
our $START_TIMEOUT = $ENV{MTAD_START_TIMEOUT} || 15;	# seconds
our $REPLY_TIMEOUT = 60;				# seconds, per reply
our $QID = qr/[0-9A-Z]{14}/;

my %live;	# objects with a running mtad, for the END block

# A test killed by a signal would skip END and leave mtad running: turn
# the usual ones into an exit. (SIGPIPE from a dead peer included.)
sub _stop_all {
	for my $m (values %live) {
		$m->stop if $$ == $m->{owner};
	}
}
$SIG{$_} = sub {
	$SIG{PIPE} = 'IGNORE';
	_stop_all();
	exit 1;
} for qw(INT TERM HUP PIPE);

# free_port(ADDR) - a TCP port nobody listens on now, from the kernel.
sub free_port {
	my ($addr) = @_;
	my $s = IO::Socket::IP->new(LocalHost => $addr // '127.0.0.1',
				    LocalPort => 0, Listen => 1, ReuseAddr => 1)
		or croak "cannot bind a free port on " . ($addr // '127.0.0.1') . ": $@";
	my $port = $s->sockport;
	close $s;
	return $port;
}

# ipv6_loopback - true when ::1 can be bound here.
sub ipv6_loopback {
	my $s = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
	return defined $s;
}

# run(ARGV...) - runs a program, returns (exit code, stdout, stderr).
sub run { return run_input(undef, @_) }

# run_input(STDIN_TEXT, ARGV...) - the same, with STDIN_TEXT on stdin.
sub run_input {
	my ($input, @argv) = @_;
	my $dir = tempdir(CLEANUP => 1);
	if (defined $input) {
		open my $fh, '>', "$dir/in" or croak "write $dir/in: $!";
		print $fh $input;
		close $fh;
	}
	my $pid = fork // croak "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', defined $input ? "$dir/in" : '/dev/null';
		open STDOUT, '>', "$dir/out" or _exit(126);
		open STDERR, '>', "$dir/err" or _exit(126);
		exec @argv or _exit(127);
	}
	waitpid $pid, 0;
	my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
	return ($rc, slurp("$dir/out"), slurp("$dir/err"));
}

sub slurp {
	my ($path) = @_;
	open my $fh, '<:raw', $path or return '';
	local $/;
	my $text = <$fh>;
	return $text // '';
}

# new(%config) - writes mtad.conf and starts mtad. Keys are mtad
# settings, except: extra (text appended verbatim), listen (array of
# listen values, replacing the default 127.0.0.1:FREEPORT), start (0 to
# only write the config), and:
#   listeners => ['starttls', 'tls', 'starttls submission', '']
#       one 127.0.0.1:FREEPORT listener per entry, with those options;
#       $m->port($i) is the port of entry $i (port() is entry 0)
#   tls => 1|0    a self-signed certificate for mx.campus.test in the
#       temp dir as tls_cert_file/tls_key_file (default: when a listener
#       says starttls or tls)
#   users => {alice => 'secret'}   a sasldb (sasl_database) with them
#   hostname => NAME   mtad's name (default mx.campus.test; a second
#       mtad talking to the first needs another, or it is "my own name")
sub new {
	my ($class, %opt) = @_;
	my $self = bless { owner => $$, pid => undef }, $class;
	$self->{dir} = tempdir('mtad-test-XXXXXX', TMPDIR => 1,
			       CLEANUP => !$ENV{MTAD_KEEP});
	my $start = delete $opt{start} // 1;
	my $extra = delete $opt{extra} // '';
	my $listeners = delete $opt{listeners} // [''];
	my $users = delete $opt{users};
	my $hostname = delete $opt{hostname} // 'mx.campus.test';
	my $tls = delete $opt{tls} // grep { /\b(?:starttls|tls)\b/ } @$listeners;
	my %used;
	for my $flags (@$listeners) {
		my $port;
		do { $port = free_port('127.0.0.1') } while $used{$port}++;
		push @{ $self->{listeners} }, { port => $port, flags => $flags };
	}
	$self->{port} = $self->{listeners}[0]{port};
	my $listen = delete $opt{listen}
		// [map { "127.0.0.1:$_->{port}" . ($_->{flags} =~ /\S/ ? " $_->{flags}" : '') }
		       @{ $self->{listeners} }];
	mkdir $self->spool;
	if ($tls) {
		$self->make_cert;
		$opt{tls_cert_file} //= $self->cert_path;
		$opt{tls_key_file} //= $self->key_path;
	}
	if ($users) {
		$self->add_user($_, $users->{$_}) for sort keys %$users;
		$opt{sasl_database} //= $self->sasldb_path;
	}
	# Tests never ask the system's resolver: no DNS unless a test starts
	# its own server on loopback (t/lib/FakeDNS.pm) and names it here.
	$opt{dns_servers} //= 'none';
	# Mail for campus.test is local, as in the development runtime.
	$opt{local_domains} //= 'campus.test';
	# mtad stays the user that runs the tests (`user =`; under make check
	# that is often root), as in the development runtime; the switch to an
	# unprivileged user has its own test, t/11-privilege.t.
	$opt{user} //= '';
	# The sending quotas (30 messages a minute per login) would stop the
	# load tests, which send hundreds as one login or from one trusted
	# address: off unless a test sets them (t/28-send-quota.t does).
	# (A test that passes undef gets mtad's default.)
	exists $opt{$_} or $opt{$_} = 0 for qw(send_rate_limit send_recipient_limit);
	# sendmail's socket in the test's own directory, never /run/mtad;
	# no aliases unless a test writes its own (never the system's).
	$opt{local_socket} //= $self->local_socket;
	$opt{alias_maps} //= '';

	my $conf = "# written by t/lib/MtadTest.pm\n"
		. "hostname = $hostname\n"
		. "spool_directory = " . $self->spool . "\n";
	$conf .= "listen = $_\n" for @$listen;
	$conf .= "$_ = $opt{$_}\n" for grep { defined $opt{$_} } sort keys %opt;
	$conf .= $extra;
	$conf .= "\n" if length $extra && $extra !~ /\n\z/;
	open my $fh, '>', $self->conf_path or croak "write config: $!";
	print $fh $conf;
	close $fh;

	$self->start if $start;
	return $self;
}

# port(I) - the port of listener I (default 0, the one start() waits for).
sub port {
	my ($self, $i) = @_;
	return $self->{port} unless $i;
	my $l = $self->{listeners}[$i] or croak "no listener $i";
	return $l->{port};
}
# implicit_tls(I) - listener I says `tls`: the handshake comes first.
sub implicit_tls { ($_[0]{listeners}[$_[1] // 0]{flags} // '') =~ /(?:^|\s)tls\b/ }
sub cert_path   { "$_[0]{dir}/cert.pem" }
sub key_path    { "$_[0]{dir}/key.pem" }
sub sasldb_path { "$_[0]{dir}/sasldb2" }
sub dir       { $_[0]{dir} }
sub spool     { "$_[0]{dir}/spool" }
sub conf_path { "$_[0]{dir}/mtad.conf" }
sub local_socket { "$_[0]{dir}/submit" }
sub log_path  { "$_[0]{dir}/mtad.log" }
sub log_text  { slurp($_[0]->log_path) }
sub pid       { $_[0]{pid} }

# spawn(PREFIX...) - forks `mtad -c mtad.conf` (under PREFIX, e.g.
# valgrind, when given) with stdin /dev/null and stdout and stderr
# appended to mtad.log. Returns its PID; nothing waits for it or stops
# it: start/try_start do, or the caller, by that PID.
sub spawn {
	my ($self, @prefix) = @_;
	my $pid = fork // croak "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $self->log_path or _exit(126);
		open STDERR, '>&', \*STDOUT or _exit(126);
		exec @prefix, "$BUILD/mtad", '-c', $self->conf_path or _exit(127);
	}
	return $pid;
}

# start - runs mtad and waits until the port answers with a greeting
# (try_start); dies, with the log, when mtad exits during start-up.
sub start {
	my ($self) = @_;
	return $self if $self->try_start(greeting_timeout => 10);
	$self->_die_with_log("mtad exited during start-up (wait status $self->{exit_status})");
}

# start_closed - runs mtad without waiting for a greeting: a replica of
# a replication group keeps its listeners closed (t/96-replication.t).
# It is stopped by stop, DESTROY or END as any other.
sub start_closed {
	my ($self) = @_;
	croak "mtad already running" if $self->{pid};
	$self->{pid} = $self->spawn;
	$live{"$self"} = $self;
	delete $self->{exit_status};
	return $self;
}

# try_start(prefix => [ARGV...], timeout => SECS, greeting_timeout => SECS)
# - runs mtad (under PREFIX, e.g. valgrind, when given) and waits up to
# TIMEOUT (default $START_TIMEOUT) for its greeting, each attempt reading
# for up to GREETING_TIMEOUT (default 30) seconds. A mtad that exits
# during start-up is no error here: returns 1 when it greets, 0 when it
# exited (its wait status in $self->{exit_status}). One that neither
# greets nor exits in time is stopped and the test dies with the log.
sub try_start {
	my ($self, %o) = @_;
	croak "mtad already running" if $self->{pid};
	my $pid = $self->spawn(@{ $o{prefix} // [] });
	$self->{pid} = $pid;
	$live{"$self"} = $self;
	delete $self->{exit_status};
	my $deadline = time + ($o{timeout} // $START_TIMEOUT);
	while (time < $deadline) {
		if (waitpid($pid, WNOHANG) == $pid) {
			$self->{exit_status} = $self->_reaped;
			return 0;
		}
		return 1 if $self->_greets($o{greeting_timeout} // 30);
		sleep 0.1;
	}
	$self->stop;
	$self->_die_with_log("mtad did not accept connections on 127.0.0.1:$self->{port} within "
		. ($o{timeout} // $START_TIMEOUT) . "s");
}

# _greets(TIMEOUT) - true when listener 0 answers a new connection with
# a 220 greeting within TIMEOUT seconds; then says QUIT, so that the
# connection is gone quickly.
sub _greets {
	my ($self, $timeout) = @_;
	my $s = $self->implicit_tls(0)
		? IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $self->{port},
				       SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 5)
		: IO::Socket::INET->new(PeerAddr => '127.0.0.1',
					PeerPort => $self->{port}, Timeout => 5);
	return 0 unless $s;
	my $g = $self->read_reply($s, $timeout);
	my $ok = defined $g && $g =~ /^220 /;
	if ($ok) {
		print $s "QUIT\r\n";
		$self->read_reply($s, $timeout);
	}
	close $s;
	return $ok;
}

sub _die_with_log {
	my ($self, $what) = @_;
	my $conf = slurp($self->conf_path);
	Test::More::diag("$what\n--- mtad.conf\n$conf--- mtad.log\n" . $self->log_text . "---");
	croak $what;
}

# stop - SIGTERM, then SIGKILL after a while. Returns the wait status.
# mtad must exit 0 on SIGTERM (a sanitizer report makes it exit 23);
# when it does not, the log is shown and the test's exit code is 1.
my $unclean = 0;
sub stop {
	my ($self, $grace) = @_;
	my $pid = $self->{pid} or return;
	return if $$ != $self->{owner};
	kill 'TERM', $pid;
	my $deadline = time + ($grace // 10);
	my $st;
	while (time < $deadline) {
		if (waitpid($pid, WNOHANG) == $pid) {
			$st = $self->_reaped;
			last;
		}
		sleep 0.05;
	}
	if (!defined $st) {
		Test::More::diag("mtad $pid did not exit within 10 s of SIGTERM; killing it");
		kill 'KILL', $pid;
		waitpid $pid, 0;
		$st = $self->_reaped;
	}
	if ($st != 0) {
		$unclean++;
		my @log = split /\n/, $self->log_text;
		splice @log, 0, @log - 60 if @log > 60;
		Test::More::diag("mtad $pid stopped with wait status $st\n--- mtad.log\n"
			. join("\n", @log) . "\n---");
	}
	return $st;
}

# wait_exit(SECS) - waits up to SECS for mtad to exit by itself; its
# wait status, or undef when it still runs.
sub wait_exit {
	my ($self, $secs) = @_;
	my $pid = $self->{pid} or return undef;
	my $deadline = time + $secs;
	while (time < $deadline) {
		return $self->_reaped if waitpid($pid, WNOHANG) == $pid;
		sleep 0.1;
	}
	return undef;
}

# kill9 - SIGKILL now, as a crash would.
sub kill9 {
	my ($self) = @_;
	my $pid = $self->{pid} or return;
	kill 'KILL', $pid;
	waitpid $pid, 0;
	return $self->_reaped;
}

sub _reaped {
	my ($self) = @_;
	my $st = $?;
	delete $self->{pid};
	delete $live{"$self"};
	return $st;
}

sub restart {
	my ($self) = @_;
	$self->stop;
	return $self->start;
}

sub DESTROY {
	my ($self) = @_;
	local ($?, $@, $!);
	$self->stop if $self->{pid} && $$ == $self->{owner};
}

END {
	my $exit = $?;	# waitpid below changes $?
	for my $m (values %live) {
		next if $$ != $m->{owner};
		my $tb = Test::More->builder;
		if (!$tb->is_passing) {
			my @log = split /\n/, $m->log_text;
			splice @log, 0, @log - 60 if @log > 60;
			Test::More::diag("--- last lines of mtad.log\n" . join("\n", @log) . "\n---");
		}
	}
	_stop_all();
	$? = $exit || ($unclean ? 1 : 0);
}

# mtaq(ARGS...) - runs mtaq on this spool: (exit code, stdout, stderr).
sub mtaq {
	my ($self, @args) = @_;
	return run("$BUILD/mtaq", '-c', $self->conf_path, @args);
}

# queue_ids - the queue ids `mtaq list` shows, in its order.
sub queue_ids {
	my ($self) = @_;
	my ($rc, $out, $err) = $self->mtaq('list');
	croak "mtaq list failed ($rc): $err" if $rc != 0;
	return $out =~ /^($QID)\b/mg;
}

# queue_count - the number `mtaq count` prints.
sub queue_count {
	my ($self) = @_;
	my ($rc, $out, $err) = $self->mtaq('count');
	croak "mtaq count failed ($rc): $err" if $rc != 0;
	$out =~ /^\s*(\d+)\s*$/ or croak "mtaq count printed '$out'";
	return $1;
}

# received_of(QID) - the message's first Received: header, unfolded
# (folds become one space); '' when there is none.
sub received_of {
	my ($self, $qid) = @_;
	my ($rc, $out) = $self->mtaq('show', $qid);
	$out =~ s/\r\n/\n/g;
	return $out =~ /^(Received:[^\n]*(?:\n[ \t][^\n]*)*)/m ? $1 =~ s/\n[ \t]+/ /gr : '';
}

# make_cert - a self-signed P-256 certificate for mx.campus.test and its
# key, in the temp dir (cert_path, key_path). Made once per object.
sub make_cert {
	my ($self) = @_;
	return if -s $self->cert_path;
	my ($rc, $out, $err) = run('openssl', 'req', '-x509', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=mx.campus.test',
		'-days', '2', '-keyout', $self->key_path, '-out', $self->cert_path);
	croak "openssl req failed ($rc): $err" if $rc != 0;
}

# add_user(NAME, PASSWORD) - a user in the sasldb, in the realm
# mx.campus.test (mtad's hostname).
sub add_user {
	my ($self, $user, $password) = @_;
	my ($rc, $out, $err) = run_input($password, 'saslpasswd2', '-p', '-c',
		'-f', $self->sasldb_path, '-u', 'mx.campus.test', $user);
	croak "saslpasswd2 $user failed ($rc): $err" if $rc != 0;
}

# wait_log(REGEX, FROM, SECS) - the first log line after byte offset FROM
# that matches, waiting up to SECS (default 10) for it to be written;
# undef if none.
sub wait_log {
	my ($self, $re, $from, $secs) = @_;
	my $deadline = time + ($secs // 10);
	while (1) {
		my $text = substr($self->log_text, $from // 0);
		for my $line (split /\n/, $text) {
			return $line if $line =~ $re;
		}
		return undef if time > $deadline;
		sleep 0.1;
	}
}

# wait_for(SECS, CODE) - calls CODE every 0.2 s until it returns true or
# SECS have passed; returns its last value.
sub wait_for {
	my ($secs, $code) = @_;
	my $deadline = time + $secs;
	while (1) {
		my $v = $code->();
		return $v if $v || time > $deadline;
		sleep 0.2;
	}
}

# delivery_log(QID, RCPT, STATUS, FROM, SECS) - waits (default 30 s) for
# the log line of a delivery attempt of QID to RCPT with that status
# (a regex: 'sent', 'deferred|bounced', ...) after byte offset FROM:
#   QID: to=<RCPT>, relay=HOST[IP]:PORT, delay=N, delays=a/b/c/d, dsn=X.Y.Z, status=STATUS (REPLY)
# Returns {relay, delay, delays, dsn, status, reply, line}, or undef.
sub delivery_log {
	my ($self, $qid, $rcpt, $status, $from, $secs) = @_;
	my $line = $self->wait_log(qr/\b\Q$qid\E: to=<\Q$rcpt\E>, .*\bstatus=(?:$status)\b/,
				   $from, $secs // 30) // return undef;
	my %f = (line => $line);
	@f{qw(relay delay delays dsn status reply)} = $line =~
		/\b\Q$qid\E: to=<\Q$rcpt\E>, relay=(\S+), delay=(\d+(?:\.\d+)?), delays=((?:\d+(?:\.\d+)?\/){3}\d+(?:\.\d+)?), dsn=(\d\.\d{1,3}\.\d{1,3}), status=(\w+) \((.*)\)\z/;
	return \%f;
}

# ---- talking SMTP ----

# raw(host => ADDR, port => N, local => ADDR) - a connected socket with
# the greeting read; local binds the client end (e.g. 127.0.0.2, to be
# another client). In list context also returns the greeting.
sub raw {
	my ($self, %o) = @_;
	my $host = $o{host} // '127.0.0.1';
	my $port = $o{port} // $self->{port};
	my @local = defined $o{local} ? (LocalAddr => $o{local}) : ();
	my $s = $host =~ /:/
		? IO::Socket::IP->new(PeerHost => $host, PeerPort => $port, Timeout => 30, @local)
		: IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 30, @local);
	croak "connect to $host port $port: $@" unless $s;
	$s->autoflush(1);
	my $greeting = $self->read_reply($s);
	return wantarray ? ($s, $greeting) : $s;
}

# tls_raw(I, SSL_OPTIONS...) - a connection to implicit-TLS listener I
# (default 0), the handshake done and the greeting read. In list context
# also returns the greeting. Dies when the handshake fails.
sub tls_raw {
	my ($self, $i, %ssl) = @_;
	my $port = $self->port($i);
	my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $port,
				     SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 30, %ssl)
		or croak "TLS connect to port $port: $IO::Socket::SSL::SSL_ERROR";
	$s->autoflush(1);
	my $greeting = $self->read_reply($s);
	return wantarray ? ($s, $greeting) : $s;
}

# starttls($sock, pipelined => BYTES, SSL_OPTIONS...) - sends STARTTLS
# (and BYTES in the same write), tests that the reply is exactly
# "220 2.0.0 Ready to start TLS" with nothing after it, and upgrades the
# socket in place. Returns the socket, or undef (test failed) on failure.
sub starttls {
	my ($self, $s, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $extra = delete $o{pipelined} // '';
	my $r = $self->send_recv($s, "STARTTLS\r\n$extra");
	Test::More::is($r, "220 2.0.0 Ready to start TLS\r\n", 'STARTTLS -> 220 2.0.0 Ready to start TLS')
		or return undef;
	my $left = ${*$s}{mtad_buf} // '';
	Test::More::is($left, '', '... and no plaintext after the 220') or return undef;
	my $ok = IO::Socket::SSL->start_SSL($s, SSL_verify_mode => SSL_VERIFY_NONE,
					    Timeout => 30, %o);
	Test::More::ok($ok, '... and the TLS handshake succeeds')
		or Test::More::diag("handshake: $IO::Socket::SSL::SSL_ERROR");
	return $ok ? $s : undef;
}

# tls_info($sock) - ("TLSv1.3", "TLS_AES_256_GCM_SHA384") of a TLS socket
# (or Net::SMTP after starttls), as mtad should write them in Received:.
sub tls_info {
	my ($self, $s) = @_;
	my $ssl = $s->_get_ssl_object or return ('', '');
	return (Net::SSLeay::get_version($ssl), Net::SSLeay::get_cipher($ssl));
}

# ehlo_script(NAME, starttls => 1, auth => 'PLAIN LOGIN', size => N) - the
# expected EHLO reply as dialog() lines.
sub ehlo_script {
	my ($name, %o) = @_;
	my @l = ("250-mx.campus.test Hello $name [127.0.0.1]",
		 '250-SIZE ' . ($o{size} // 52428800),
		 '250-PIPELINING', '250-8BITMIME', '250-DSN', '250-SMTPUTF8', '250-ENHANCEDSTATUSCODES',
		 '250-CHUNKING');
	push @l, '250-STARTTLS' if $o{starttls};
	push @l, "250-AUTH $o{auth}" if $o{auth};
	push @l, '250 HELP';
	return join '', map { "< $_\n" } @l;
}

# ehlo($sock, NAME, starttls => 1, auth => 'PLAIN LOGIN', size => N) -
# sends EHLO NAME and tests (one test) that the reply is exactly
# ehlo_script(NAME, ...). Returns the reply.
sub ehlo {
	my ($self, $s, $name, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($r) = $self->dialog($s, "> EHLO $name\n" . ehlo_script($name, %o));
	return $r;
}

# starttls_ehlo($sock, NAME, auth => MECHS, SSL_OPTIONS...) - the usual way
# into a STARTTLS session: EHLO NAME offering STARTTLS, starttls() (its
# three tests), then EHLO NAME again offering AUTH MECHS (default PLAIN
# LOGIN; '' for a server without SASL) and no STARTTLS. Returns the
# socket, or undef when STARTTLS failed.
sub starttls_ehlo {
	my ($self, $s, $name, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $auth = exists $o{auth} ? delete $o{auth} : 'PLAIN LOGIN';
	$self->ehlo($s, $name, starttls => 1);
	$self->starttls($s, %o) or return undef;
	$self->ehlo($s, $name, auth => $auth);
	return $s;
}

# b64(BYTES) - base64 on one line, as SMTP AUTH wants it.
sub b64 { MIME::Base64::encode_base64($_[0], '') }

# auth_plain(USER, PASSWORD, AUTHZID) - the command line (no CRLF)
# "AUTH PLAIN <base64 of AUTHZID NUL USER NUL PASSWORD>" (RFC 4616),
# AUTHZID empty unless given.
sub auth_plain {
	my ($user, $pass, $authz) = @_;
	return 'AUTH PLAIN ' . b64(($authz // '') . "\0$user\0$pass");
}

# smtp(%opts) - a Net::SMTP client that has said EHLO client.example.
sub smtp {
	my ($self, %o) = @_;
	my $smtp = Net::SMTP->new($o{host} // '127.0.0.1',
				  Port => $o{port} // $self->{port},
				  Hello => $o{hello} // 'client.example',
				  Timeout => $REPLY_TIMEOUT)
		or croak "Net::SMTP cannot connect: $@";
	return $smtp;
}

# send_message($smtp, FROM, [TO...], BODY) - one transaction over a
# Net::SMTP client. Returns the reply to the end of data as one line
# ("250 2.0.0 Ok: queued as ...") or the first failing reply.
sub send_message {
	my ($self, $smtp, $from, $to, $body) = @_;
	my $last = sub { $smtp->code . ' ' . join(' ', map { s/\s+\z//r } $smtp->message) };
	$smtp->mail($from) or return $last->();
	for my $r (@$to) {
		$smtp->to($r) or return $last->();
	}
	$smtp->data or return $last->();
	$smtp->datasend($body);
	$smtp->dataend;
	return $last->();
}

# send_bytes($sock, BYTES) - writes everything.
sub send_bytes {
	my ($self, $s, $bytes) = @_;
	local $SIG{PIPE} = 'IGNORE';
	while (length $bytes) {
		my $n = syswrite $s, $bytes;
		return 0 unless defined $n;
		substr($bytes, 0, $n, '');
	}
	return 1;
}

# send_recv($sock, BYTES) - writes the bytes and reads one reply.
sub send_recv {
	my ($self, $s, $bytes) = @_;
	$self->send_bytes($s, $bytes);
	return $self->read_reply($s);
}

# read_line($sock, TIMEOUT) - one line including its CRLF, or what came
# before EOF, or undef on EOF / timeout. Buffered per socket.
sub read_line {
	my ($self, $s, $timeout) = @_;
	my $buf = \${*$s}{mtad_buf};
	$$buf //= '';
	my $deadline = time + ($timeout // $REPLY_TIMEOUT);
	my $sel = IO::Select->new($s);
	my $ssl = $s->isa('IO::Socket::SSL');
	while ($$buf !~ /\n/) {
		my $left = $deadline - time;
		if ($left <= 0) {
			${*$s}{mtad_why} = 'timeout';
			return undef;
		}
		# a TLS socket may hold decrypted bytes select() cannot see
		next unless ($ssl && $s->pending) || $sel->can_read($left);
		my $n;
		if ($ssl) {
			# readable may be only a TLS 1.3 session ticket: do
			# not block in SSL_read waiting for application data
			$s->blocking(0);
			$n = sysread $s, $$buf, 65536, length $$buf;
			my $again = !defined $n && ($!{EAGAIN} || $!{EWOULDBLOCK});
			$s->blocking(1);
			next if $again;
		} else {
			$n = sysread $s, $$buf, 65536, length $$buf;
		}
		if (!$n) {
			${*$s}{mtad_why} = defined $n ? 'eof' : "error: $!";
			return length $$buf ? substr($$buf, 0, length $$buf, '') : undef;
		}
	}
	$$buf =~ s/\A(.*?\n)//s;
	return $1;
}

# read_reply($sock, TIMEOUT) - one complete reply ("250-a\r\n250 b\r\n"),
# or undef when the connection closed or nothing came in time.
sub read_reply {
	my ($self, $s, $timeout) = @_;
	my $reply = '';
	while (defined(my $line = $self->read_line($s, $timeout))) {
		$reply .= $line;
		return $reply if $line =~ /^\d{3}(?: |\r?\n)/ || $line !~ /\n\z/;
	}
	return length $reply ? $reply : undef;
}

# closed($sock) - true when the server closed the connection (waits).
sub closed {
	my ($self, $s, $timeout) = @_;
	my $extra = $self->read_line($s, $timeout // $REPLY_TIMEOUT);
	return 0 if defined $extra;
	return (${*$s}{mtad_why} // '') ne 'timeout';
}

# start_data($sock, from => ADDR, to => ADDR) - MAIL FROM (default
# a@b.test), RCPT TO (default u@campus.test) and DATA in an open session,
# played by dialog() and expected to get 250 2.1.0, 250 2.1.5 and 354.
# The message itself is the caller's.
sub start_data {
	my ($self, $s, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($from, $to) = ($o{from} // 'a@b.test', $o{to} // 'u@campus.test');
	return $self->dialog($s, <<"END");
	> MAIL FROM:<$from>
	< 250 2.1.0 *
	> RCPT TO:<$to>
	< 250 2.1.5 *
	> DATA
	< 354 *
END
}

# queue_message($sock, SUBJECT, from => ADDR, to => ADDR, body => LINE) -
# one transaction in an open session, played by dialog() (a test per
# reply) and expected to be accepted. Returns the queue id, or 'NONE'.
sub queue_message {
	my ($self, $s, $subject, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$self->start_data($s, %o);
	my $body = $o{body} // 'body';
	my @r = $self->dialog($s, <<"END");
	> Subject: $subject
	>
	> $body
	> .
	< 250 2.0.0 Ok: queued as *
END
	my ($qid) = map { /queued as ($QID)/ ? $1 : () } @r;
	return $qid // 'NONE';
}

# dialog($sock, SCRIPT) - plays a transcript, one test per reply.
#
#   > TEXT      a line sent with CRLF; consecutive > lines go in one write
#   < TEXT      a reply line expected; `*` matches any text
#   <~ REGEX    a reply line matching a Perl regex
#   < [closed]  the server closes the connection
#   # ...       a comment
#
# Expected lines group into replies the way SMTP does: `250-` continues,
# `250 ` ends. Returns the replies received, in order.
sub dialog {
	my ($self, $s, $script) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 3;	# report the .t line
	my (@out, @expect, @replies);
	my $last_sent = '(greeting)';
	my $flush_out = sub {
		return unless @out;
		$self->send_bytes($s, join('', map { "$_\r\n" } @out));
		$last_sent = $out[-1];
		$last_sent = substr($last_sent, 0, 40) . '...' if length $last_sent > 43;
		@out = ();
	};
	my $check = sub {
		while (@expect) {
			my @group;
			while (@expect) {
				my $e = shift @expect;
				push @group, $e;
				last unless $e->[0] eq '<' && $e->[1] =~ /^\d{3}-/;
			}
			push @replies, $self->_expect_reply($s, \@group, $last_sent);
		}
	};
	for my $line (split /\n/, $script) {
		$line =~ s/^\s+//;
		next if $line eq '' || $line =~ /^#/;
		if ($line =~ /^> ?(.*)$/) {
			$check->();
			push @out, $1;
		} elsif ($line =~ /^(<~?) ?(.*)$/) {
			$flush_out->();
			push @expect, [$1, $2];
		} else {
			croak "dialog: bad script line '$line'";
		}
	}
	$flush_out->();
	$check->();
	return @replies;
}

sub _expect_reply {
	my ($self, $s, $group, $sent) = @_;
	my $want = join("\n", map { $_->[0] eq '<~' ? "~/$_->[1]/" : $_->[1] } @$group);
	my $name = "$sent -> " . ($group->[-1][1] =~ s/\s*(?:\*|\.\*)$//r);

	if ($group->[0][1] eq '[closed]') {
		Test::More::ok($self->closed($s), "$sent -> connection closed")
			or Test::More::diag("the connection is still open");
		return '';
	}
	my $got = $self->read_reply($s);
	my @lines = defined $got ? split(/\r\n/, $got) : ();
	my $ok = defined $got && $got =~ /\r\n\z/ && @lines == @$group;
	for my $i (0 .. $#lines) {
		last unless $ok;
		my ($kind, $pat) = @{ $group->[$i] };
		my $re = $kind eq '<~' ? qr/$pat/
			: join('.*', map { quotemeta } split(/\*/, $pat, -1));
		$ok = $lines[$i] =~ /\A$re\z/;
	}
	Test::More::ok($ok, $name) or Test::More::diag(
		"expected:\n$want\ngot:\n"
		. (defined $got ? $got =~ s/\r\n/\\r\\n\n/gr
			: "nothing (" . (${*$s}{mtad_why} // '?') . ")"));
	return $got // '';
}

# ---- fault injection (t/8N-*.t) ----

# set_config(KEY => VALUE, ...) - changes (or adds) settings in
# mtad.conf for the next start; VALUE undef removes the key.
sub set_config {
	my ($self, %kv) = @_;
	my $conf = slurp($self->conf_path);
	for my $k (sort keys %kv) {
		$conf =~ s/^\Q$k\E = [^\n]*\n//mg;
		$conf .= "$k = $kv{$k}\n" if defined $kv{$k};
	}
	open my $fh, '>', $self->conf_path or croak "write config: $!";
	print $fh $conf;
	close $fh;
}

# rss_kb - mtad's resident set size (VmRSS, kB) now; undef if unknown.
sub rss_kb {
	my ($self) = @_;
	my $pid = $self->{pid} or return undef;
	my $st = slurp("/proc/$pid/status");
	return $st =~ /^VmRSS:\s+(\d+)\s+kB/m ? $1 : undef;
}

# nofile_limit - this process's RLIMIT_NOFILE soft limit (undef: unknown).
sub nofile_limit {
	my $l = slurp('/proc/self/limits');
	return $l =~ /^Max open files\s+(\d+|unlimited)\s/m ? ($1 eq 'unlimited' ? 1 << 30 : $1) : undef;
}

# raise_nofile(N) - raises this process's RLIMIT_NOFILE to at least N
# when it can (prlimit(1); above the hard limit only as root), so it and
# the mtad it starts next can hold N descriptors. Returns the soft limit
# in force afterwards.
sub raise_nofile {
	my ($want) = @_;
	my $l = slurp('/proc/self/limits');
	my ($soft, $hard) = $l =~ /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)\s/m
		or return undef;
	$_ = $_ eq 'unlimited' ? 1 << 30 : $_ for $soft, $hard;
	return $soft if $soft >= $want;
	my $new_hard = $hard >= $want ? $hard : $> == 0 ? $want : $hard;
	my $new_soft = $want < $new_hard ? $want : $new_hard;
	run('prlimit', '--pid', $$, "--nofile=$new_soft:$new_hard");
	return nofile_limit();
}

# world_reachable(PATH) - true when any user can reach PATH: every
# directory on the way is searchable by others (a checkout under /root,
# mode 0700, is not) and PATH itself is readable by them.
sub world_reachable {
	my ($path) = @_;
	$path = Cwd::abs_path($path) // return 0;
	my @st = stat $path or return 0;
	return 0 unless $st[2] & 0004;
	for (my $dir = File::Basename::dirname($path); ; $dir = File::Basename::dirname($dir)) {
		my @d = stat $dir or return 0;
		return 0 unless $d[2] & 0001;
		last if $dir eq '/';
	}
	return 1;
}

# programs_for_others() - a directory with mtad and mtaq that any user
# can run: the build itself when it is reachable, else copies in a
# temporary directory (mode 0755, removed at exit). Tests that run the
# programs as another user (nobody) take them from here.
my $others_dir;
sub programs_for_others {
	return $BUILD if world_reachable("$BUILD/mtad") && world_reachable("$BUILD/mtaq");
	return $others_dir if $others_dir;
	my $dir = tempdir('mtad-bin-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	chmod 0755, $dir or croak "chmod $dir: $!";
	for my $prog (qw(mtad mtaq)) {
		system('cp', "$BUILD/$prog", "$dir/$prog") == 0 or croak "cp $prog to $dir failed";
		chmod 0755, "$dir/$prog" or croak "chmod $dir/$prog: $!";
	}
	return $others_dir = $dir;
}

# mount_tmpfs(DIR, SIZE) - mounts a tmpfs of SIZE (e.g. '96m') on DIR,
# unmounted at exit (after the mtads of this process are stopped), also
# when the test dies. Returns undef on success, else why not (not root,
# no mount permission in a container...): a reason to skip.
my @mounts;
sub mount_tmpfs {
	my ($dir, $size) = @_;
	return 'mounting needs root' if $> != 0;
	my ($rc, $out, $err) = run('mount', '-t', 'tmpfs', '-o', "size=$size,mode=0700",
				   'tmpfs', $dir);
	return "mount -t tmpfs failed: " . ($err =~ s/\s+\z//r || "exit $rc") if $rc != 0;
	push @mounts, { dir => $dir, owner => $$ };
	return undef;
}

# umount_all - stops this process's mtads (showing their logs when the
# test is failing, as the END block below does) and unmounts what
# mount_tmpfs mounted; lazily when a plain umount is refused.
sub umount_all {
	my @mine = grep { $_->{owner} == $$ } @mounts or return;
	for my $m (values %live) {
		next if $$ != $m->{owner};
		if (!Test::More->builder->is_passing) {
			my @log = split /\n/, $m->log_text;
			splice @log, 0, @log - 60 if @log > 60;
			Test::More::diag("--- last lines of mtad.log\n" . join("\n", @log) . "\n---");
		}
		$m->stop;
	}
	for my $mt (reverse @mine) {
		my ($rc) = run('umount', $mt->{dir});
		($rc) = run('umount', '-l', $mt->{dir}) if $rc != 0;
		Test::More::diag("could not unmount $mt->{dir}") if $rc != 0;
	}
	@mounts = grep { $_->{owner} != $$ } @mounts;
}

# Runs before the END block above (END blocks run last-defined first):
# the mounts go first, their mtads stopped beforehand.
END {
	my $exit = $?;
	umount_all();
	$? = $exit || ($unclean ? 1 : 0);
}

# asan_build - true when $BUILD/mtad is built with a sanitizer (make
# check-asan): memory figures then include ASAN's quarantine.
sub asan_build {
	return $BUILD =~ /asan/ || (run('ldd', "$BUILD/mtad"))[1] =~ /lib[at]san/;
}

# valgrind_usable - why mtad cannot run under valgrind here (undef when
# it can): valgrind missing, or a sanitizer build (ASAN and valgrind do
# not mix).
sub valgrind_usable {
	my ($rc, $out) = run('valgrind', '--version');
	return 'valgrind is not installed' if $rc != 0;
	return 'an ASAN build ($MTAD_BUILD): valgrind cannot run it' if asan_build();
	return undef;
}

# lsan_suppress(PATTERN...) - LeakSanitizer ignores leaks matching the
# patterns (its suppression syntax without "leak:", e.g. libdb-5.3.so)
# in every mtad started from now on by this test; for a test that makes
# mtad leave something unfreed on purpose. No effect without ASAN.
sub lsan_suppress {
	my ($self, @patterns) = @_;
	my $file = "$self->{dir}/lsan.supp";
	open my $fh, '>>', $file or croak "write $file: $!";
	print $fh "leak:$_\n" for @patterns;
	close $fh;
	$ENV{LSAN_OPTIONS} = join ':', grep { length } ($ENV{LSAN_OPTIONS} // ''), "suppressions=$file"
		unless ($ENV{LSAN_OPTIONS} // '') =~ /\Q$file\E/;
}

1;
