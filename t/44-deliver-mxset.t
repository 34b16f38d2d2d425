# 44-deliver-mxset.t - delivery destinations are keyed by the resolved
# set of next-hop hosts (deliver/group.c, group_key): domains whose MX
# records name the same hosts share connections, one transaction and one
# destination_concurrency; the TLS policy is part of the key.
#
# As in t/71-deliver-mx.t, MX targets are names on one port, so every
# domain has a route "DOMAIN DOMAIN:PORT" (MX lookup of DOMAIN, that port)
# and t/lib/fake-dns answers:
#   a.test, b.test   MX 10 mx.shared.test (127.0.0.1: the sink $shared)
#   c.test           MX 10 mx.other.test  (127.0.0.2: the sink $other)
# and two routes name one host:port under two TLS policies:
#   t1.test [127.0.0.1]:T tls=none, t2.test [127.0.0.1]:T tls=verify
#   (the sink $tls offers STARTTLS with a self-signed certificate)
# destination_concurrency = 1; retry_min is an hour, so only mtaq flush
# makes a deferred message due again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use MtadTest;
use FakeDNS;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

my $shared = Sink->new(data => '250 2.0.0 Ok: queued as SHARED');
my $p = $shared->port;
my $other = Sink->new(host => '127.0.0.2', port => $p, data => '250 2.0.0 Ok: queued as OTHER');
my $tls = Sink->new(starttls => 1, data => '250 2.0.0 Ok: queued as TLS');
my $pt = $tls->port;

my $dns = FakeDNS->new(records => [
	'MX   a.test           10 mx.shared.test',
	'MX   b.test           10 mx.shared.test',
	'A    mx.shared.test   127.0.0.1',
	'MX   c.test           10 mx.other.test',
	'A    mx.other.test    127.0.0.2',
]);

my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600,
		      destination_concurrency => 1,
		      dns_servers => $dns->servers, dns_timeout => 3, extra => <<"END");
route = a.test a.test:$p
route = b.test b.test:$p
route = c.test c.test:$p
route = t1.test [127.0.0.1]:$pt tls=none
route = t2.test [127.0.0.1]:$pt tls=verify
END

sub submit {
	my ($to, $subject) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, 'a@sender.test', $to,
		"Subject: $subject\nFrom: <a\@sender.test>\nMessage-ID: <$subject\@sender.test>\n\nhello\n");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject" or return 'NONE';
	return ($r =~ $QUEUED)[0];
}

sub with_subject {
	my ($sink, $subject) = @_;
	return grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $sink->messages;
}

sub gone {
	my ($qid) = @_;
	return MtadTest::wait_for(30, sub { !grep { $_ eq $qid } $m->queue_ids });
}

# ---- concurrency 1 across both domains, and one connection for all ----
# Six messages, alternately to a.test and b.test, are deferred first (a
# greeting of 421), then made due together by mtaq flush: under one
# destination they wait for its one slot and are handed the connection
# in turn. Each transaction holds the sink a second (data_sleep), so two
# connections at once would be seen (max_busy). This comes first: no
# connection to mx.shared.test is kept from before.
$shared->set(greeting => '421 4.3.2 not now');
my $off = length $m->log_text;
my @batch;
for my $n (1 .. 6) {
	my $rcpt = $n % 2 ? "x$n\@a.test" : "x$n\@b.test";
	push @batch, [submit([$rcpt], "batch $n"), $rcpt];
}
for my $b (@batch) {
	my $log = $m->delivery_log($b->[0], $b->[1], 'deferred', $off);
	ok $log, "$b->[1]: deferred at first (421 greeting)" or diag substr($m->log_text, $off);
}
$shared->set(greeting => undef, data_sleep => 1);
my $before = $shared->connections;
my ($rc, undef, $err) = $m->mtaq('flush', 'ALL');
is $rc, 0, 'mtaq flush ALL' or diag $err;
my @arrived;
MtadTest::wait_for(60, sub {
	@arrived = grep { $_->{data} =~ /^Subject: batch \d\r?$/m } $shared->messages;
	@arrived >= 6;
});
is scalar(@arrived), 6, 'the six messages arrive';
is_deeply [sort map { @{ $_->{to} } } @arrived], [sort map { $_->[1] } @batch],
	'... each for its own recipient';
is $shared->connections - $before, 1,
	'... over exactly one connection (a.test and b.test are one destination)';
my %conns = map { $_->{conn} => 1 } @arrived;
is scalar(keys %conns), 1, '... the same connection for every message';
is $shared->max_busy, 1, '... and never two sessions at once (destination_concurrency = 1)';
ok gone($_->[0]), "$_->[0] leaves the queue" for @batch;

# ---- one message, three domains: a.test and b.test in one transaction ----
# (The connection of the batch may still be kept: the counts are of
# transactions, by the sink's connection number.)
$shared->set(data_sleep => 0);
$off = length $m->log_text;
my $qid = submit(['u@a.test', 'v@b.test', 'w@c.test'], 'three domains');
ok gone($qid), "$qid is delivered and leaves the queue";
my @got = with_subject($shared, 'three domains');
is scalar(@got), 1, 'mx.shared.test gets the message once';
is_deeply $got[0]{to} // [], ['u@a.test', 'v@b.test'],
	'... one MAIL with the RCPTs of both a.test and b.test (same MX host set)';
@got = with_subject($other, 'three domains');
is scalar(@got), 1, 'mx.other.test (another host, same address) gets it too';
is_deeply $got[0]{to} // [], ['w@c.test'], '... for w@c.test alone';
for my $rcpt ('u@a.test', 'v@b.test') {
	my $log = $m->delivery_log($qid, $rcpt, 'sent', $off) // {};
	is $log->{relay}, "mx.shared.test[127.0.0.1]:$p", "log: $rcpt relay=mx.shared.test[127.0.0.1]:$p"
		or diag $log->{line} // substr($m->log_text, $off);
	is $log->{reply}, '250 2.0.0 Ok: queued as SHARED', "log: $rcpt gets the end-of-data reply";
}
my @q = $dns->queries;
ok((grep { /^(?:udp|tcp) a\.test MX$/ } @q) && (grep { /^(?:udp|tcp) b\.test MX$/ } @q),
   'both domains\' MX records were looked up') or diag "@q";

# ---- the TLS policy is part of the key ----
# t1.test (tls=none) and t2.test (tls=verify) name the same host:port:
# the connection made in the clear for t1.test is never reused for
# t2.test, which makes its own, where the certificate does not verify.
$off = length $m->log_text;
$qid = submit(['u@t1.test', 'v@t2.test'], 'two policies');
my $log = $m->delivery_log($qid, 'u@t1.test', 'sent', $off) // {};
is $log->{relay}, "127.0.0.1[127.0.0.1]:$pt", 'u@t1.test is sent (tls=none)'
	or diag $log->{line} // substr($m->log_text, $off);
$log = $m->delivery_log($qid, 'v@t2.test', 'deferred', $off) // {};
is $log->{dsn}, '4.7.5', 'v@t2.test is deferred 4.7.5: TLS required, not sent in the clear'
	or diag $log->{line} // substr($m->log_text, $off);
like $log->{reply} // '', qr/\A450 4\.7\.5 .*\bTLS required but the certificate of 127\.0\.0\.1\[127\.0\.0\.1\] did not verify/,
	'... because the certificate does not verify' or diag $log->{line};
@got = with_subject($tls, 'two policies');
is scalar(@got), 1, 'the sink got the message once';
is_deeply $got[0]{to} // [], ['u@t1.test'], '... for u@t1.test only';
is $got[0]{tls}, 0, '... in the clear, as tls=none says';
is $tls->connections, 2, 'two connections: one per TLS policy';

is $m->stop, 0, 'mtad exits 0 on SIGTERM';
$_->stop for $shared, $other, $tls;
$dns->stop;
done_testing;
