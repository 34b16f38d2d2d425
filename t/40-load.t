# 40-load.t - 50 clients at once, 20 messages each over one connection:
# every message gets its own queue id and every id is in the queue.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use MtadLoad;

my $CLIENTS = 50;
my $MESSAGES = 20;

# Only the load is tested here: allow every client from 127.0.0.1.
my $m = MtadTest->new(max_connections_per_ip => 2 * $CLIENTS);

# One connection, $MESSAGES transactions; a line per message: the queue
# id, or "FAIL reply".
my $load = MtadLoad->start($CLIENTS, sub {
	my ($n, $say) = @_;
	my $smtp = $m->smtp;
	for my $i (1 .. $MESSAGES) {
		my $r = $m->send_message($smtp, "client$n\@b.test", ["u$n-$i\@campus.test"],
			"Subject: load $n/$i\n\n" . ("line $i of client $n\n" x 20));
		$say->($r =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\z/ ? $1 : "FAIL $r");
	}
	$smtp->quit;
});
is $load->wait, 0, "all $CLIENTS clients finished cleanly";
$load->check_queued($m, $CLIENTS * $MESSAGES, 'every message');

done_testing;
