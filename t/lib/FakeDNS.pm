# FakeDNS - runs t/lib/fake-dns on a free loopback port for one test.
#
#   use FakeDNS;
#   my $dns = FakeDNS->new(records => [
#       'A    client.example           127.0.0.1',
#       'PTR  1.0.0.127.in-addr.arpa   client.example',
#       'SERVFAIL broken.example',
#   ]);
#   $dns->port;        # 45123
#   $dns->servers;     # "127.0.0.1:45123", for mtad.conf's dns_servers
#   $dns->queries;     # ("udp client.example A", ...) asked so far
#   $dns->stop;        # or let DESTROY / END do it
#
# The record lines are those of t/lib/fake-dns (see its header). The
# server's stdin is a pipe held here, so it also exits if this process
# dies without running END. It is always stopped by its PID, never by
# name.
package FakeDNS;

use strict;
use warnings;

use Carp qw(croak);
use File::Basename ();
use File::Temp qw(tempdir);
use IO::Handle;
use IO::Select;
use POSIX qw(:sys_wait_h _exit);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

our $PROGRAM = File::Basename::dirname(__FILE__) . '/fake-dns';
our $START_TIMEOUT = 15;	# seconds

my %live;	# running servers, for the END block

# new(records => [LINE, ...]) - writes the records, starts, waits for the port.
sub new {
	my ($class, %opt) = @_;
	my $self = bless { owner => $$ }, $class;
	$self->{dir} = tempdir('fake-dns-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my $file = "$self->{dir}/records";
	open my $fh, '>', $file or croak "$file: $!";
	print $fh "$_\n" for @{$opt{records} // []};
	close $fh or croak "$file: $!";
	$self->{log} = "$self->{dir}/queries";
	$self->_spawn($file);
	return $self;
}

# _spawn(FILE) - fork/exec fake-dns with pipes on stdin and stdout.
sub _spawn {
	my ($self, $file) = @_;
	pipe(my $in_r, my $in_w) or croak "pipe: $!";
	pipe(my $out_r, my $out_w) or croak "pipe: $!";
	my $pid = fork // croak "fork: $!";
	if ($pid == 0) {
		open STDIN, '<&', $in_r or _exit(127);
		open STDOUT, '>&', $out_w or _exit(127);
		{ exec $^X, $PROGRAM, '--port', 0, '--records', $file,
			'--log', $self->{log}, '--stdin' };
		_exit(127);
	}
	close $in_r;
	close $out_w;
	$self->{pid} = $pid;
	$self->{stdin} = $in_w;
	$live{"$self"} = $self;
	weaken($live{"$self"});		# so DESTROY still runs when the test drops it
	my $line = '';
	my $sel = IO::Select->new($out_r);
	my $deadline = time + $START_TIMEOUT;
	while ($line !~ /\n/ && $sel->can_read($deadline - time)) {
		sysread($out_r, $line, 256, length $line) or last;
	}
	close $out_r;
	unless ($line =~ /^port (\d+)\n/) {
		$self->stop;
		croak "fake-dns did not start (said: '$line')";
	}
	$self->{port} = $1;
}

sub port { $_[0]{port} }

sub servers { "127.0.0.1:$_[0]{port}" }

# queries - the queries seen so far, one "PROTO QNAME QTYPE" string each.
sub queries {
	my ($self) = @_;
	open my $fh, '<', $self->{log} or return ();
	chomp(my @q = <$fh>);
	return @q;
}

# stop - SIGTERM by PID, then SIGKILL if it is still there after 5 s.
sub stop {
	my ($self) = @_;
	my $pid = delete $self->{pid} or return;
	delete $live{"$self"};
	close $self->{stdin} if $self->{stdin};
	kill 'TERM', $pid;
	my $deadline = time + 5;
	while (waitpid($pid, WNOHANG) == 0) {
		if (time > $deadline) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
			last;
		}
		sleep 0.02;
	}
}

sub DESTROY {
	my ($self) = @_;
	$self->stop if $self->{pid} && $$ == $self->{owner};
}

END {
	for my $s (values %live) {
		$s->stop if $s && $$ == $s->{owner};
	}
}

1;
