# 78-deliver-loop.t - mail whose next hop is one of mtad's own listeners
# (a route, or a stale MX, naming this machine) is not handed to mtad
# itself, forever: it fails at once with 554 5.4.6 "loops back to
# myself", and the sender gets a bounce saying so.
#   route = loop.test [127.0.0.1]:P1     P1 is mtad's second listener
#   route = sender.test [127.0.0.1]:S    a sink, where the bounce arrives
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $home = Sink->new;
my $ph = $home->port;

my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      listeners => ['', ''], start => 0);
my $own = $m->port(1);
open my $fh, '>>', $m->conf_path or die "append to the config: $!";
print $fh "route = loop.test [127.0.0.1]:$own\nroute = sender.test [127.0.0.1]:$ph\n";
close $fh or die "close the config: $!";
$m->start;

my $smtp = $m->smtp;
my $r = $m->send_message($smtp, 'a@sender.test', ['u@loop.test'],
			 "Subject: round and round\n\nhello\n");
$smtp->quit;
like $r, qr/queued as ([0-9A-Z]{14})/, 'the message to u@loop.test is queued';
my ($qid) = $r =~ /queued as ([0-9A-Z]{14})/;
$qid //= 'NONE';

ok MtadTest::wait_for(30, sub { $m->log_text =~ /\Q$qid\E: to=<u\@loop\.test>.*status=bounced/ }),
	'it fails at once, without a retry';
my ($line) = $m->log_text =~ /^(.*\Q$qid\E: to=<u\@loop\.test>.*)$/m;
$line //= '';
like $line, qr/dsn=5\.4\.6/, '... with 5.4.6' or diag $line;
like $line, qr/554 5\.4\.6 mail for loop\.test loops back to myself/, '... saying why'
	or diag $line;
unlike $m->log_text, qr/connect from .* to 127\.0\.0\.1:$own\b/,
	'... and mtad never connected to itself';

ok MtadTest::wait_for(30, sub {
	grep { grep { $_ eq 'a@sender.test' } @{ $_->{to} } } $home->messages }),
	'the sender gets a bounce';
my ($bounce) = grep { grep { $_ eq 'a@sender.test' } @{ $_->{to} } } $home->messages;
$bounce //= { data => '', from => 'NONE' };
is $bounce->{from}, '', '... from the null sender';
like $bounce->{data}, qr/^Final-Recipient: rfc822; u\@loop\.test\r?$/m, '... about u@loop.test';
like $bounce->{data}, qr/^Status: 5\.4\.6\r?$/m, '... with status 5.4.6';
ok MtadTest::wait_for(30, sub { !grep { $_ eq $qid } $m->queue_ids }),
	'the message leaves the queue';
is $m->stop, 0, 'mtad exits 0';
done_testing;
