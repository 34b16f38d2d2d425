# 89-torn-write.t - SIGKILL while pages of large bodies are being
# written, again and again: no acknowledged message may come back
# damaged, short, or with another message's bytes.
#
# Before issue 11, body.db had 64 KB pages: one page was 16 block writes,
# and a kill between two of them left a page whose header (and LSN) was
# new and whose tail was old, possibly another message's bytes, which
# recovery then trusted. Now every page is 4 KB (one block), checksummed,
# and every body carries its SHA-256. To make the kills land on page
# writes, the cache is small (pages are written out to make room all the
# time) and mtad checkpoints every second, while clients send 150-400 KB
# messages, each made of lines that name it, so a stray page of another
# message cannot pass for its own.
#
# What must hold after every round and at the end: every message that
# got 250 is in the queue and `mtaq show --body` gives it back byte for
# byte (its MD5 as sent); mtaq verify finds nothing damaged; and once the
# next hop accepts mail, everything arrives byte-exact, nothing else.
#
# The seed of the random moments is printed; MTAD_SEED=N repeats a run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(sleep time);
use MtadTest;
use MtadLoad;
use Sink;

my $ROUNDS = 8;
my $CLIENTS = 2;
my $seed = $ENV{MTAD_SEED} // int(time * 1000) % 1000000;
srand $seed;
note "MTAD_SEED=$seed";

my $sink = Sink->new(rcpt_default => '450 4.2.0 not yet');
my $m = MtadTest->new(start => 0, db_cache_size => '1m', checkpoint_interval => 1,
		      retry_min => 3600, retry_max => 7200,
		      extra => 'route = campus.test [127.0.0.1]:' . $sink->port . "\n");

# body_of(TAG, SEED) - 100 to 200 KB of lines that each name TAG.
sub body_of {
	my ($tag, $n) = @_;
	my $lines = 1500 + $n % 1500;
	return "Subject: $tag\nMessage-ID: <$tag\@torn.test>\n\n"
		. join('', map { "$tag line $_ " . ('x' x (40 + $_ % 37)) . "\n" } 1 .. $lines);
}

# clients(ROUND) - the load of one round: big messages until mtad goes
# away; "QID MD5" per 250.
sub clients {
	my ($round) = @_;
	return MtadLoad->start($CLIENTS, sub {
		my ($n, $say) = @_;
		my $smtp = eval { $m->smtp } or return;
		for my $i (1 .. 100000) {
			my $body = body_of("r$round.c$n.m$i", $round * 7919 + $n * 104729 + $i * 31);
			my $r = $m->send_message($smtp, "r$round-c$n\@b.test", ["u$n\@campus.test"], $body);
			last unless $r =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\z/;
			$say->("$1 " . md5_hex($body =~ s/\n/\r\n/gr));
		}
	});
}

my %acked;	# qid -> md5 of the body as sent (CRLF)

sub collect {
	my ($load) = @_;
	for (map { $_->[1] } $load->lines) {
		$acked{$1} = $2 if /^($MtadTest::QID) ([0-9a-f]{32})$/;
	}
}

# stored(QID) - the body mtaq gives back, the Received: header removed.
sub stored {
	my ($qid) = @_;
	my ($rc, $body) = $m->mtaq('show', '--body', $qid);
	return undef if $rc != 0;
	$body =~ s/\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*//;
	return $body;
}

sub check_bodies {
	my ($name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @bad = grep { md5_hex(stored($_) // '') ne $acked{$_} } sort keys %acked;
	is scalar(@bad), 0, "$name: the " . scalar(keys %acked) . ' acknowledged bodies read back '
		. 'byte-exact' or diag "bad: @bad[0 .. ($#bad < 9 ? $#bad : 9)]";
	my ($rc, $text) = $m->mtaq('verify');
	is $rc, 0, "$name: mtaq verify finds nothing damaged" or diag $text;
}

for my $round (1 .. $ROUNDS) {
	$m->start;
	check_bodies("round $round, after the kill of round " . ($round - 1))
		if $round == 5;
	my $load = clients($round);
	sleep 1.1 + rand(0.6);	# past at least one checkpoint
	$m->kill9;
	$load->wait(60);	# they notice the dead server; those left are killed
	collect($load);
}

$m->start;
ok keys(%acked) >= $ROUNDS, 'the load was real: ' . scalar(keys %acked)
	. " large messages acknowledged over $ROUNDS kills";
my %listed = map { $_ => 1 } $m->queue_ids;
my @lost = grep { !$listed{$_} } sort keys %acked;
is scalar(@lost), 0, 'every acknowledged message is in the queue' or diag "lost: @lost";
check_bodies('after the last kill');

# ---- the next hop takes mail: everything arrives, byte-exact ----
$sink->set(rcpt_default => '250 2.1.5 Ok');
my ($rc, $text, $err) = $m->mtaq('flush');
is $rc, 0, 'mtaq flush' or diag $err;
my $want = keys(%listed);
local $Sink::WAIT = 180;	# hundreds of large messages through a Perl sink
my @got = $sink->wait_messages($want);
ok @got >= $want, "the next hop got all $want queued messages" or diag scalar(@got) . ' arrived';
my %arrived;
for my $msg (@got) {
	(my $body = $msg->{data}) =~ s/\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*//;
	my $md5 = md5_hex($body);
	$arrived{$md5} = 1;


}
my @missing = grep { !$arrived{$acked{$_}} } sort keys %acked;
is scalar(@missing), 0, 'every acknowledged message arrived byte-exact' or diag "@missing";
# A message that got no 250 (killed before it) may arrive too, but whole:
# its body must be the one its Subject names.
my @mixed;
for my $msg (@got) {
	my ($tag) = $msg->{data} =~ /^Subject: (r\d+\.c\d+\.m\d+)\r?$/m or next;
	my @foreign = grep { !/^\Q$tag\E line / } grep { /^r\d+\.c\d+\.m\d+ line / }
		split /\r\n/, $msg->{data};
	push @mixed, $tag if @foreign;
}
is scalar(@mixed), 0, "no message arrived with another message's lines" or diag "@mixed";
$m->stop;
done_testing;
