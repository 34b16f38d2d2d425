# Sink - a small SMTP server for the delivery tests, on loopback.
#
#   use Sink;
#   my $sink = Sink->new(rcpt => { 'bad@x.test'   => '550 5.1.1 no such user',
#                                  'later@x.test' => '450 4.2.0 try later' });
#   $sink->port;            # 45123 (on 127.0.0.1 unless host => '127.0.0.2')
#   $sink->messages;        # ({from => 'a@b.test', to => ['u@x.test'],
#                           #   data => "Received: ...\r\n...", helo => ...,
#                           #   tls => 0|1, conn => N}, ...) in arrival order
#   $sink->wait_messages(2);    # waits up to 30 s until there are 2; returns them
#   $sink->connections;     # connections accepted so far
#   $sink->max_busy;        # most connections waiting in data_sleep at once
#   $sink->set(rcpt => {...});  # changes the behaviour for the next commands
#   $sink->stop;            # or let DESTROY / END do it
#
# Options (new and set; set replaces only the keys it is given):
#   host => '127.0.0.1'      the address to listen on (new only)
#   port => N                a port to listen on (new only; default: free)
#   name => 'sink.test'      the name in the greeting and EHLO reply
#   rcpt => {ADDR => REPLY}  per-recipient replies (lower case addresses);
#                            the others get rcpt_default
#   rcpt_default => '250 2.1.5 Ok'
#   mail => '250 2.1.0 Ok'   the reply to MAIL FROM
#   data => '250 2.0.0 Ok: queued'   the reply to the end of DATA
#                            (the message is stored only when it is 2xx)
#   greeting => '220 ...'    a greeting that is not 2xx is sent, then the
#                            connection is closed
#   refuse => 1              accept and close at once, without a greeting
#   greeting_sleep => SECS   wait before the greeting
#   data_sleep => SECS       wait before the reply to the end of DATA
#   starttls => 1            offer STARTTLS (a self-signed certificate for
#                            the name, made with openssl at new)
#   smtputf8 => 1            offer SMTPUTF8 (RFC 6531)
#   no8bitmime => 1          do not offer 8BITMIME (a 7-bit next hop)
# Each message also keeps the MAIL FROM command line as sent (mail_line,
# without CRLF), for tests of its parameters.
#   ext => ['DSN']           more EHLO keywords offered
#
# Each stored message also has mail_line and rcpt_lines: the MAIL command
# and the accepted RCPT commands exactly as the client sent them (no CRLF).
#   chunking => 1            offer CHUNKING and take BDAT (RFC 3030): the
#                            message record then has bdat => [chunk sizes,
#                            the last as "N LAST"]; DATA still works
#   pipelining => 0          do not offer PIPELINING (offered by default)
#   bdat_chunk => REPLY      the reply to a BDAT that is not LAST
#                            (default "250 2.0.0 N octets received")
#
# The listener is a forked child; every connection is served by a child
# of that one, which the listener stops (by PID) when it is stopped
# itself. Each accepted message is one file in a directory the test
# reads; the behaviour lives in a file the children read before every
# command, so set() takes effect at once, also in open connections.
package Sink;

use strict;
use warnings;

use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(:sys_wait_h _exit);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

our $START_TIMEOUT = 15;	# seconds
our $WAIT = 30;			# seconds, wait_messages
our $IDLE = 120;		# seconds a connection may be silent

my %live;	# running sinks, for the END block
my $JSON = JSON::PP->new->canonical->utf8(0);

my %DEFAULTS = (
	name => 'sink.test',
	rcpt => {},
	rcpt_default => '250 2.1.5 Ok',
	mail => '250 2.1.0 Ok',
	data => '250 2.0.0 Ok: queued',
	greeting => undef,
	refuse => 0,
	greeting_sleep => 0,
	data_sleep => 0,
	starttls => 0,
	smtputf8 => 0,
	no8bitmime => 0,
	ext => [],
	chunking => 0,
	bdat_chunk => undef,
	pipelining => 1,
);

sub new {
	my ($class, %opt) = @_;
	my $self = bless { owner => $$ }, $class;
	$self->{dir} = tempdir('sink-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});
	mkdir "$self->{dir}/msg" or croak "mkdir: $!";
	mkdir "$self->{dir}/busy" or croak "mkdir: $!";
	$self->{host} = delete $opt{host} // '127.0.0.1';
	my $port = delete $opt{port} // 0;
	for (keys %opt) {
		croak "Sink: unknown option $_" unless exists $DEFAULTS{$_};
	}
	$self->{conf} = { %DEFAULTS, %opt };
	$self->_lc_rcpt;
	$self->_write_conf;
	$self->_make_cert if $self->{conf}{starttls};

	my $listen = IO::Socket::INET->new(LocalAddr => $self->{host}, LocalPort => $port,
					   Listen => 64, ReuseAddr => 1, Proto => 'tcp')
		or croak "Sink: cannot listen on $self->{host}:$port: $@";
	$self->{port} = $listen->sockport;
	my $pid = fork // croak "fork: $!";
	if ($pid == 0) {
		%live = ();
		eval { $self->_serve($listen) };
		_exit(0);
	}
	close $listen;
	$self->{pid} = $pid;
	$live{"$self"} = $self;
	weaken($live{"$self"});
	return $self;
}

sub port { $_[0]{port} }
sub host { $_[0]{host} }
sub dir  { $_[0]{dir} }
sub pid  { $_[0]{pid} }
sub cert_path { "$_[0]{dir}/cert.pem" }
sub key_path  { "$_[0]{dir}/key.pem" }

# set(%opt) - changes the behaviour (see the options above).
sub set {
	my ($self, %opt) = @_;
	for (keys %opt) {
		croak "Sink: option $_ cannot be changed" if /^(?:host|port)$/;
		croak "Sink: unknown option $_" unless exists $DEFAULTS{$_};
	}
	croak "Sink: starttls needs it at new" if $opt{starttls} && !-s $self->cert_path;
	$self->{conf} = { %{ $self->{conf} }, %opt };
	$self->_lc_rcpt;
	$self->_write_conf;
}

sub _lc_rcpt {
	my ($self) = @_;
	my $r = $self->{conf}{rcpt};
	$self->{conf}{rcpt} = { map { lc($_) => $r->{$_} } keys %$r };
}

sub _write_conf {
	my ($self) = @_;
	my $tmp = "$self->{dir}/conf.tmp";
	open my $fh, '>', $tmp or croak "$tmp: $!";
	print $fh $JSON->encode($self->{conf});
	close $fh or croak "$tmp: $!";
	rename $tmp, "$self->{dir}/conf" or croak "rename: $!";
}

sub _read_conf {
	my ($self) = @_;
	open my $fh, '<', "$self->{dir}/conf" or return $self->{conf};
	local $/;
	my $text = <$fh>;
	my $c = eval { $JSON->decode($text) };
	return $self->{conf} = $c // $self->{conf};
}

sub _make_cert {
	my ($self) = @_;
	my $pid = fork // croak "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>', '/dev/null';
		open STDERR, '>', "$self->{dir}/openssl.err";
		{ exec 'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
			'ec_paramgen_curve:P-256', '-nodes', '-subj', "/CN=$self->{conf}{name}",
			'-days', '2', '-keyout', $self->key_path, '-out', $self->cert_path; }
		_exit(127);
	}
	waitpid $pid, 0;
	croak "Sink: openssl req failed" if $? != 0 || !-s $self->cert_path;
}

# connections - connections accepted so far.
sub connections {
	my ($self) = @_;
	opendir my $dh, $self->{dir} or return 0;
	return scalar grep { /^conn-\d+$/ } readdir $dh;
}

# max_busy - the most sessions that were in data_sleep at the same time:
# each of those has sent a whole message and waits for the reply, so it
# is surely a live connection of the client (a lower bound of how many
# connections it had open at once). 0 without data_sleep.
sub max_busy {
	my ($self) = @_;
	opendir my $dh, "$self->{dir}/busy" or return 0;
	my $max = 0;
	for (readdir $dh) {
		$max = $1 if /^hw-\d+-(\d+)$/ && $1 > $max;
	}
	return $max;
}

# messages - every message accepted so far, oldest first.
sub messages {
	my ($self) = @_;
	my $d = "$self->{dir}/msg";
	opendir my $dh, $d or return ();
	my @names = sort grep { /^\d+-\d+-\d+\.json$/ } readdir $dh;
	my @out;
	for my $n (@names) {
		open my $fh, '<:raw', "$d/$n" or next;
		local $/;
		my $m = eval { $JSON->decode(<$fh>) } or next;
		push @out, $m;
	}
	return @out;
}

# wait_messages(N, SECS) - waits until at least N messages arrived (up to
# SECS, default 30); returns all of them.
sub wait_messages {
	my ($self, $n, $secs) = @_;
	my $deadline = time + ($secs // $WAIT);
	my @m;
	while (1) {
		@m = $self->messages;
		return @m if @m >= $n || time > $deadline;
		sleep 0.1;
	}
}

# stop - SIGTERM to the listener, which stops its connection children.
sub stop {
	my ($self) = @_;
	my $pid = delete $self->{pid} or return;
	return if $$ != $self->{owner};
	delete $live{"$self"};
	kill 'TERM', $pid;
	my $deadline = time + 10;
	while (time < $deadline) {
		return if waitpid($pid, WNOHANG) == $pid;
		sleep 0.05;
	}
	kill 'KILL', $pid;
	waitpid $pid, 0;
}

sub DESTROY {
	my ($self) = @_;
	local ($?, $@, $!);
	$self->stop if $self->{pid} && $$ == $self->{owner};
}

END {
	my $exit = $?;
	for my $s (values %live) {
		$s->stop if $s && $$ == $s->{owner};
	}
	$? = $exit;
}

# ---- reading what arrived ----

# header_block(TEXT) - (\%fields, BODY): the header section of a message
# or MIME part, names lower-cased, folds unfolded (a name seen twice keeps
# the first), and what follows the blank line. CRLF become LF.
sub header_block {
	my ($text) = @_;
	$text =~ s/\r\n/\n/g;
	my ($head, $body) = split /\n\n/, $text, 2;
	$head =~ s/\n[ \t]+/ /g;
	my %h;
	for my $line (split /\n/, $head // '') {
		my ($k, $v) = $line =~ /\A([^:\s]+):[ \t]*(.*?)\s*\z/ or next;
		$h{lc $k} //= $v;
	}
	return (\%h, $body // '');
}

# parse_dsn(DATA) - a delivery status notification taken apart:
#   { headers => {from => ..., subject => ..., 'content-type' => ...},
#     report_type => 'delivery-status', parts => [{type, headers, body}],
#     message => {reporting-mta => ...},         # per-message fields
#     recipients => [{final-recipient => 'rfc822; u@x.test',
#                     action => 'failed', status => '5.1.1',
#                     diagnostic-code => 'smtp; 550 ...'}, ...],
#     rfc822_headers => TEXT }                    # the returned headers
# Fields not found are simply missing.
sub parse_dsn {
	my ($data) = @_;
	my ($h, $body) = header_block($data);
	my %d = (headers => $h, parts => [], recipients => [], message => {});
	my $ct = $h->{'content-type'} // '';
	($d{report_type}) = $ct =~ /\breport-type="?([\w-]+)"?/i;
	my ($b) = $ct =~ /\bboundary="([^"]+)"/i;
	($b) = $ct =~ /\bboundary=([^;\s]+)/i unless defined $b;
	return \%d unless defined $b;
	my @chunks = split /^--\Q$b\E(?:--)?[ \t]*\n/m, $body;
	shift @chunks;	# the preamble
	for my $chunk (@chunks) {
		my ($ph, $pb) = header_block($chunk);
		my ($type) = ($ph->{'content-type'} // 'text/plain') =~ /\A\s*([\w.+-]+\/[\w.+-]+)/;
		push @{ $d{parts} }, { type => lc($type // ''), headers => $ph, body => $pb };
	}
	for my $p (@{ $d{parts} }) {
		if ($p->{type} eq 'message/delivery-status') {
			my $text = $p->{body} =~ s/\n[ \t]+/ /gr;
			my @groups = grep { /\S/ } split /\n\s*\n/, $text;
			my $first = 1;
			for my $g (@groups) {
				my %f;
				for my $line (split /\n/, $g) {
					my ($k, $v) = $line =~ /\A([^:\s]+):[ \t]*(.*?)\s*\z/ or next;
					$f{lc $k} //= $v;
				}
				if ($first && !exists $f{'final-recipient'}) {
					$d{message} = \%f;
				} else {
					push @{ $d{recipients} }, \%f;
				}
				$first = 0;
			}
		} elsif ($p->{type} eq 'text/rfc822-headers') {
			$d{rfc822_headers} = $p->{body};
		}
	}
	return \%d;
}

# ---- the server side (children) ----

# _serve(LISTEN) - the listener: accepts, forks one child per connection.
sub _serve {
	my ($self, $listen) = @_;
	my %kids;
	my $stop = 0;
	$SIG{TERM} = $SIG{INT} = $SIG{HUP} = sub { $stop = 1 };
	$SIG{PIPE} = 'IGNORE';
	my $ppid = getppid;
	my $n = 0;
	my $sel = IO::Select->new($listen);
	until ($stop) {
		while ((my $k = waitpid(-1, WNOHANG)) > 0) {
			delete $kids{$k};
		}
		last if getppid != $ppid;	# the test is gone
		next unless $sel->can_read(0.2);
		my $c = $listen->accept or next;
		$n++;
		if (open my $fh, '>', "$self->{dir}/conn-$n") {
			print $fh $c->peerhost, ':', $c->peerport, "\n";
			close $fh;
		}
		my $pid = fork;
		if (!defined $pid) {
			close $c;
			next;
		}
		if ($pid == 0) {
			close $listen;
			$SIG{TERM} = $SIG{INT} = $SIG{HUP} = 'DEFAULT';
			eval { $self->_session($c, $n) };
			_exit(0);
		}
		$kids{$pid} = 1;
		close $c;
	}
	close $listen;
	kill 'TERM', $_ for keys %kids;
	for my $k (keys %kids) {
		my $deadline = time + 5;
		sleep 0.05 while waitpid($k, WNOHANG) == 0 && time < $deadline;
		if (kill 0, $k) {
			kill 'KILL', $k;
			waitpid $k, 0;
		}
	}
}

# _readline(SOCK, \BUF) - one line with its LF, or undef at EOF / idle.
sub _readline {
	my ($s, $buf) = @_;
	my $sel = IO::Select->new($s);
	while ($$buf !~ /\n/) {
		my $ssl = $s->isa('IO::Socket::SSL');
		unless (($ssl && $s->pending) || $sel->can_read($IDLE)) {
			return undef;
		}
		my $r = sysread $s, $$buf, 65536, length $$buf;
		if (!defined $r && $ssl && ($!{EAGAIN} || $!{EWOULDBLOCK})) {
			next;
		}
		return undef unless $r;
	}
	$$buf =~ s/\A(.*?\n)//s;
	return $1;
}

sub _send {
	my ($s, $text) = @_;
	$text .= "\r\n" unless $text =~ /\n\z/;
	while (length $text) {
		my $w = syswrite $s, $text;
		return 0 unless $w;
		substr($text, 0, $w, '');
	}
	return 1;
}

# _readn(SOCK, \BUF, N) - exactly N bytes, or undef at EOF / idle.
sub _readn {
	my ($s, $buf, $n) = @_;
	my $sel = IO::Select->new($s);
	while (length $$buf < $n) {
		my $ssl = $s->isa('IO::Socket::SSL');
		return undef unless ($ssl && $s->pending) || $sel->can_read($IDLE);
		my $r = sysread $s, $$buf, 65536, length $$buf;
		next if !defined $r && $ssl && ($!{EAGAIN} || $!{EWOULDBLOCK});
		return undef unless $r;
	}
	return substr($$buf, 0, $n, '');
}

# _store(SELF, CONN, \SEQ, RECORD) - an accepted message, one file, by arrival.
sub _store {
	my ($self, $conn, $seq, $rec) = @_;
	$$seq++;
	my ($sec, $usec) = Time::HiRes::gettimeofday();
	my $name = sprintf '%011d%06d-%d-%d', $sec, $usec, $conn, $$seq;
	my $tmp = "$self->{dir}/msg/.$name.tmp";
	open my $fh, '>:raw', $tmp or return 0;
	print $fh $JSON->encode($rec);
	close $fh or return 0;
	return rename $tmp, "$self->{dir}/msg/$name.json";
}

# _session(SOCK, N) - one SMTP conversation.
sub _session {
	my ($self, $s, $conn) = @_;
	my $c = $self->_read_conf;
	return if $c->{refuse};
	sleep $c->{greeting_sleep} if $c->{greeting_sleep};
	my $greeting = $c->{greeting} // "220 $c->{name} ESMTP Sink";
	_send($s, $greeting);
	return unless $greeting =~ /^2/;

	my $buf = '';
	my ($helo, $from, @to) = ('', undef);
	my ($mail_line, @rcpt_lines) = ('');
	my ($tls, $seq) = (0, 0);
	while (defined(my $line = _readline($s, \$buf))) {
		$c = $self->_read_conf;
		$line =~ s/\r?\n\z//;
		my ($verb, $arg) = $line =~ /\A(\S*)\s*(.*)\z/;
		$verb = uc($verb // '');
		if ($verb eq 'EHLO') {
			$helo = $arg;
			($from, @to) = (undef);
			my @ext = ('PIPELINING', 'SIZE 52428800', '8BITMIME', 'ENHANCEDSTATUSCODES');
			shift @ext unless $c->{pipelining};
			push @ext, 'STARTTLS' if $c->{starttls} && !$tls;
			push @ext, 'SMTPUTF8' if $c->{smtputf8};
			@ext = grep { $_ ne '8BITMIME' } @ext if $c->{no8bitmime};
			push @ext, @{ $c->{ext} // [] };
			push @ext, 'CHUNKING' if $c->{chunking};
			my @l = ("$c->{name} Hello $arg", @ext);
			_send($s, join '', map { ($_ == $#l ? '250 ' : '250-') . "$l[$_]\r\n" } 0 .. $#l);
		} elsif ($verb eq 'HELO') {
			$helo = $arg;
			($from, @to) = (undef);
			_send($s, "250 $c->{name}");
		} elsif ($verb eq 'STARTTLS' && $c->{starttls} && !$tls) {
			_send($s, '220 2.0.0 Ready to start TLS');
			return if length $buf;	# plaintext after STARTTLS: refuse
			require IO::Socket::SSL;
			IO::Socket::SSL->start_SSL($s, SSL_server => 1,
				SSL_cert_file => $self->cert_path, SSL_key_file => $self->key_path,
				Timeout => 30) or return;
			$tls = 1;
			($helo, $from, @to) = ('', undef);
		} elsif ($verb eq 'MAIL' && $arg =~ /\AFROM:\s*<([^>]*)>/i) {
			my $addr = $1;
			my $r = $c->{mail};
			$from = $addr if $r =~ /^2/;
			$mail_line = $line;
			@to = ();
			($mail_line, @rcpt_lines) = ($line);
			_send($s, $r);
		} elsif ($verb eq 'RCPT' && $arg =~ /\ATO:\s*<([^>]*)>/i) {
			my $addr = $1;
			if (!defined $from) {
				_send($s, '503 5.5.1 MAIL first');
				next;
			}
			my $r = $c->{rcpt}{lc $addr} // $c->{rcpt_default};
			push @to, $addr if $r =~ /^2/;
			push @rcpt_lines, $line if $r =~ /^2/;
			_send($s, $r);
		} elsif ($verb eq 'DATA') {
			if (!defined $from || !@to) {
				_send($s, '554 5.5.1 No valid recipients');
				next;
			}
			_send($s, '354 End data with <CR><LF>.<CR><LF>');
			my $data = '';
			my $ended = 0;
			while (defined(my $l = _readline($s, \$buf))) {
				if ($l eq ".\r\n" || $l eq ".\n") {
					$ended = 1;
					last;
				}
				$l =~ s/\A\.//;
				$data .= $l;
			}
			return unless $ended;
			$c = $self->_read_conf;
			if ($c->{data_sleep}) {
				# mark this session busy, note how many are, sleep, unmark
				my $b = "$self->{dir}/busy";
				if (open my $fh, '>', "$b/on-$$") {
					close $fh;
					my $n = 0;
					if (opendir my $dh, $b) {
						$n = grep { /^on-\d+$/ } readdir $dh;
						closedir $dh;
					}
					close $fh if open $fh, '>', "$b/hw-$$-$n";
				}
				sleep $c->{data_sleep};
				unlink "$b/on-$$";
			}
			my $r = $c->{data};
			if ($r =~ /^2/) {
				$seq++;
				# names sort by arrival: seconds and microseconds first
				my ($sec, $usec) = Time::HiRes::gettimeofday();
				my $name = sprintf '%011d%06d-%d-%d', $sec, $usec, $conn, $seq;
				my $tmp = "$self->{dir}/msg/.$name.tmp";
				open my $fh, '>:raw', $tmp or return;
				print $fh $JSON->encode({ from => $from, to => [@to], data => $data,
							  helo => $helo, tls => $tls, conn => $conn,
							  mail_line => $mail_line,
							  rcpt_lines => [@rcpt_lines] });
				close $fh or return;
				rename $tmp, "$self->{dir}/msg/$name.json" or return;
			}
			_send($s, $r);
			($from, @to) = (undef);
		} elsif ($verb eq 'BDAT' && $c->{chunking}) {
			my ($n, $last) = $arg =~ /\A(\d+)( LAST)?\z/i or return;
			my $chunk = _readn($s, \$buf, $n);
			return unless defined $chunk;
			if (!defined $from || !@to) {
				_send($s, '554 5.5.1 No valid recipients');
				next;
			}
			$self->{bdat_data} .= $chunk;
			push @{ $self->{bdat_sizes} }, $last ? "$n LAST" : $n;
			if (!$last) {
				_send($s, $c->{bdat_chunk} // "250 2.0.0 $n octets received");
				next;
			}
			my $r = $c->{data};
			if ($r =~ /^2/) {
				_store($self, $conn, \$seq, { from => $from, to => [@to],
					data => $self->{bdat_data}, helo => $helo, tls => $tls,
					conn => $conn, bdat => $self->{bdat_sizes} }) or return;
			}
			_send($s, $r);
			($from, @to) = (undef);
			($self->{bdat_data}, $self->{bdat_sizes}) = ('', []);
		} elsif ($verb eq 'RSET') {
			($from, @to) = (undef);
			($self->{bdat_data}, $self->{bdat_sizes}) = ('', []);
			_send($s, '250 2.0.0 Ok');
		} elsif ($verb eq 'NOOP') {
			_send($s, '250 2.0.0 Ok');
		} elsif ($verb eq 'QUIT') {
			_send($s, '221 2.0.0 Bye');
			return;
		} else {
			_send($s, '502 5.5.2 Command not recognized');
		}
	}
}

1;
