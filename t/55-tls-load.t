# 55-tls-load.t - 200 TLS sessions at once, one per client
# (MTAD_TLS_LOAD=CxS for C clients with S sessions each):
# every session does EHLO, STARTTLS, EHLO, AUTH PLAIN and one message.
# Every message gets 250 and a queue id, and mtaq counts all of them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use POSIX qw(_exit);
use MtadTest;

# MTAD_TLS_LOAD=20x10 runs 20 clients with ten sessions each instead.
my ($CLIENTS, $SESSIONS) = ($ENV{MTAD_TLS_LOAD} // '200x1') =~ /\A(\d+)x(\d+)\z/
	or die "MTAD_TLS_LOAD must look like 20x10\n";
my $TOTAL = $CLIENTS * $SESSIONS;

# Only the load is tested here: allow every client from 127.0.0.1. That
# includes the AUTH limiter, which counts attempts in flight from one
# address as possible failures (t/53): 200 logins at once from one
# address are what auth_ip_exempt is for (a shared NAT).
my $m = MtadTest->new(listeners => ['starttls'], users => {alice => 'secret'},
		      max_connections_per_ip => 4 * $CLIENTS, max_connections => 4 * $CLIENTS,
		      auth_ip_exempt => '127.0.0.0/8');
my $out = $m->dir . '/clients';
mkdir $out;

# session(N, I) - one STARTTLS + AUTH + message session: a queue id or "FAIL ...".
sub session {
	my ($n, $i) = @_;
	my $smtp = Net::SMTP->new('127.0.0.1', Port => $m->port, Hello => "c$n.example",
				  Timeout => 120)
		or return "FAIL connect: $@";
	my $why = sub { "FAIL $_[0]: " . ($smtp->code // '') . ' ' . join(' ', $smtp->message) };
	$smtp->starttls(SSL_verify_mode => SSL_VERIFY_NONE)
		or return $why->("starttls $IO::Socket::SSL::SSL_ERROR");
	$smtp->auth('alice', 'secret') or return $why->('auth');
	my $r = $m->send_message($smtp, "client$n\@b.test", ["u$n-$i\@campus.test"],
		"Subject: tls load $n/$i\n\n" . ("line $i of client $n\n" x 20));
	$smtp->quit;
	return $r =~ /\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/ ? $1 : "FAIL $r";
}

sub client {
	my ($n) = @_;
	$SIG{PIPE} = 'IGNORE';
	open my $fh, '>', "$out/$n" or _exit(2);
	$fh->autoflush(1);
	for my $i (1 .. $SESSIONS) {
		my $r = eval { session($n, $i) } // "FAIL died: $@";
		print $fh "$r\n";
	}
	close $fh;
	_exit(0);
}

sub first10 { grep { defined } @_[0 .. 9] }

my @pids;
for my $n (1 .. $CLIENTS) {
	my $pid = fork // die "fork: $!";
	client($n) if $pid == 0;
	push @pids, $pid;
}
my $bad_exit = 0;
for my $pid (@pids) {
	waitpid $pid, 0;
	$bad_exit++ if $? != 0;
}
is $bad_exit, 0, "all $CLIENTS clients finished cleanly";

my (@qids, @fails);
for my $n (1 .. $CLIENTS) {
	open my $fh, '<', "$out/$n" or do { push @fails, "client $n wrote nothing"; next };
	while (<$fh>) {
		chomp;
		next if $_ eq '';	# the tail of a multi-line FAIL reply
		/\A[0-9A-Z]{14}\z/ ? push(@qids, $_) : push(@fails, "client $n: $_");
	}
}
is scalar(@qids), $TOTAL, "all $TOTAL STARTTLS + AUTH sessions got 250 with a queue id"
	or diag join "\n", first10(@fails);
my %seen;
my @dups = grep { $seen{$_}++ } @qids;
is scalar(@dups), 0, 'queue ids are unique' or diag join ' ', first10(@dups);
is $m->queue_count, $TOTAL, "mtaq count = $TOTAL";
my %listed = map { $_ => 1 } $m->queue_ids;
my @missing = grep { !$listed{$_} } @qids;
is scalar(@missing), 0, 'every queue id is in mtaq list' or diag join ' ', 'missing:', first10(@missing);

# a sample of the messages says ESMTPSA
for my $qid (grep { defined } @qids[0 .. 2]) {
	like $m->received_of($qid), qr/\bwith ESMTPSA id \Q$qid\E\b/, "$qid: Received: with ESMTPSA";
}
is $m->stop, 0, 'mtad exits 0 on SIGTERM after the load';

done_testing;
