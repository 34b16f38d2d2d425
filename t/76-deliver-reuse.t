# 76-deliver-reuse.t - several messages to one destination share a
# connection: with destination_concurrency = 1, ten messages queued
# together reach the sink over fewer than ten connections, all intact.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $sink = Sink->new;
my $port = $sink->port;
# One connection slot for the destination: the groups that find it taken
# wait and are handed the connection when the message before them is done.
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', destination_concurrency => 1,
		      retry_min => 3600, extra => "route = campus.test [127.0.0.1]:$port\n");
my @qids;
my $smtp = $m->smtp;
for my $n (1 .. 10) {
	my $r = $m->send_message($smtp, 'a@b.example', ["u$n\@campus.test"],
				 "Subject: reuse $n\n\nbody $n\n");
	push @qids, $1 if $r =~ /queued as ([0-9A-Z]{14})/;
}
$smtp->quit;
is scalar(@qids), 10, 'ten messages queued';

ok MtadTest::wait_for(30, sub { scalar($sink->messages) >= 10 }), 'all ten arrive';
my %subjects = map { ($_->{data} =~ /^Subject: (reuse \d+)/m)[0] => 1 } $sink->messages;
is scalar(keys %subjects), 10, 'each message once, intact';
my $conns = $sink->connections;
cmp_ok $conns, '<', 10, "fewer connections than messages ($conns for 10)";
ok MtadTest::wait_for(30, sub { !$m->queue_ids }), 'the queue is empty';
is $m->stop, 0, 'mtad exits 0 on SIGTERM';
done_testing;
