# 42-ipv6.t - two listen lines, IPv4 and IPv6 loopback; mail over both.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

plan skip_all => 'no IPv6 loopback (::1) here' unless MtadTest::ipv6_loopback();

my $port6 = MtadTest::free_port('::1');
my $m = MtadTest->new(extra => "listen = [::1]:$port6\n");

my ($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $m->conf_path, '-n');
like $out, qr/^listen = \[::1\]:$port6$/m, 'mtad -n prints the IPv6 listener';

my %qid;
for my $case (['127.0.0.1', $m->port, qr/\[127\.0\.0\.1\]/],
	      ['::1', $port6, qr/\[(?:IPv6:)?::1\]/]) {
	my ($host, $port, $literal) = @$case;
	my ($s, $greeting) = $m->raw(host => $host, port => $port);
	is $greeting, "220 mx.campus.test ESMTP mtad\r\n", "$host: greeting";
	my $ehlo = $m->send_recv($s, "EHLO client.example\r\n") // '';
	like $ehlo, qr/\A250-mx\.campus\.test Hello client\.example $literal\r\n/,
		"$host: EHLO names the client address";
	$m->send_recv($s, "QUIT\r\n");

	my $smtp = $m->smtp(host => $host, port => $port);
	my $r = $m->send_message($smtp, 'a@b.test', ['u@campus.test'], "Subject: over $host\n\nhi\n");
	like $r, qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/, "$host: message queued";
	$qid{$host} = $r =~ /([0-9A-Z]{14})\z/ ? $1 : 'NONE';
	$smtp->quit;

	($rc, $out) = $m->mtaq('show', $qid{$host});
	like $out =~ s/\r?\n[ \t]+/ /gr, qr/^Received: from client\.example .*$literal/m,
		"$host: Received: names the client address";
}
is $m->queue_count, 2, 'two messages queued';

done_testing;
