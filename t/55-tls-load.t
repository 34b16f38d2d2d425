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
use MtadTest;
use MtadLoad;

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
	my $r = $m->send_message($smtp, "alice\@campus.test", ["u$n-$i\@campus.test"],
		"Subject: tls load $n/$i\n\n" . ("line $i of client $n\n" x 20));
	$smtp->quit;
	return $r =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\z/ ? $1 : "FAIL $r";
}

my $load = MtadLoad->start($CLIENTS, sub {
	my ($n, $say) = @_;
	$say->(eval { session($n, $_) } // "FAIL died: $@") for 1 .. $SESSIONS;
});
is $load->wait, 0, "all $CLIENTS clients finished cleanly";
my @qids = $load->check_queued($m, $TOTAL, "all $TOTAL STARTTLS + AUTH sessions");

# a sample of the messages says ESMTPSA
for my $qid (grep { defined } @qids[0 .. 2]) {
	like $m->received_of($qid), qr/\bwith ESMTPSA id \Q$qid\E\b/, "$qid: Received: with ESMTPSA";
}
is $m->stop, 0, 'mtad exits 0 on SIGTERM after the load';

done_testing;
