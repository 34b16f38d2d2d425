# 67-policy-stats-bound.t - what clients choose cannot grow stats.db
# (issue 11). Before, each refused attempt stored a key named after the
# HELO name and one named after the client address, so `HELO [127.a.b.c]`
# (refused by the localhost rule) from ever new addresses filled the
# spool. Now both go into fixed-size sketches (queue/sketch.c).
#
# 100,000 attempts with distinct HELO names from 1,000 distinct client
# addresses (127.1.0.0 to 127.1.3.231: all of 127.0.0.0/8 is loopback
# on Linux), pipelined 100 HELO/MAIL pairs per connection; among them
# three names sent 3,000, 2,500 and 2,000 times from one address. Then:
# stats.db stays under 2 MB, `mtaq stats` names the three heavy names
# and the heavy address first with their counts bracketed, and estimates
# the 1,001 addresses within a few per cent, marked as estimated.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use MtadTest;

my $LOCALHOST = '550 5.7.1 Invalid HELO. HELO/EHLO as localhost.';
my $PAIRS = 100;			# HELO/MAIL pairs per connection
my $DISTINCT_CONNS = 1000;		# each from its own address, distinct names
my %HEAVY = ('[127.9.9.1]' => 3000, '[127.9.9.2]' => 2500, '[127.9.9.3]' => 2000);
my $HEAVY_IP = '127.200.0.1';
my $HEAVY_TOTAL = 0;
$HEAVY_TOTAL += $_ for values %HEAVY;
my $TOTAL = $DISTINCT_CONNS * $PAIRS + $HEAVY_TOTAL;
my $started = time;

# The per-connection limits would end each connection after 10
# refusals; this test is about what is stored, not about them.
my $m = MtadTest->new(max_policy_rejections => 1000000, max_errors => 1000000);

# attempts(FROM, NAMES) - one connection from FROM saying HELO NAME then
# MAIL for each name, pipelined; returns how many MAILs were refused
# with the localhost rule's reply.
sub attempts {
	my ($from, @names) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $m->port,
				      LocalAddr => $from, Timeout => 30)
		or die "connect from $from: $@";
	my $greeting = <$s>;
	die "no greeting from $from" unless defined $greeting && $greeting =~ /^220 /;
	# EHLO on the first pair, HELO (one reply line) after: both are
	# judged at MAIL, and either starts the session again.
	my $out = '';
	my $verb = 'EHLO';
	for my $name (@names) {
		$out .= "$verb $name\r\nMAIL FROM:<a\@b.example>\r\n";
		$verb = 'HELO';
	}
	$out .= "QUIT\r\n";
	print $s $out;
	my ($refused, $buf, $other) = (0, '', 0);
	while (1) {
		my $n = sysread($s, $buf, 65536, length $buf);
		die "read from $from: $!" unless defined $n;
		last if $n == 0;
		while ($buf =~ s/\A([^\n]*)\n//) {
			my $line = $1;
			$line =~ s/\r\z//;
			if ($line eq $LOCALHOST) { $refused++ }
			elsif ($line !~ /^(?:220|250|221)[ -]/) { $other++; diag "from $from: $line" if $other < 5 }
		}
	}
	close $s;
	return $refused;
}

# The heavy names, shuffled into connections of $PAIRS from one address.
my @heavy = map { ($_) x $HEAVY{$_} } sort keys %HEAVY;
srand(11);
for (my $i = $#heavy; $i > 0; $i--) {
	my $j = int rand($i + 1);
	@heavy[$i, $j] = @heavy[$j, $i];
}
my @heavy_conns;
push @heavy_conns, [splice @heavy, 0, $PAIRS] while @heavy;

# Distinct connections, a heavy one every so often, so both are spread
# over many of the writer's once-a-second merges.
my $refused = 0;
my $every = int($DISTINCT_CONNS / @heavy_conns);
for my $c (0 .. $DISTINCT_CONNS - 1) {
	my $from = sprintf '127.1.%d.%d', $c >> 8, $c & 255;
	my @names = map { my $i = $c * $PAIRS + $_;
			  sprintf '[127.%d.%d.%d]', 10 + ($i >> 16), ($i >> 8) & 255, $i & 255 }
		    0 .. $PAIRS - 1;
	$refused += attempts($from, @names);
	$refused += attempts($HEAVY_IP, @{ shift @heavy_conns }) if @heavy_conns && $c % $every == 0;
}
$refused += attempts($HEAVY_IP, @{ shift @heavy_conns }) while @heavy_conns;
is $refused, $TOTAL, "$TOTAL attempts refused by the localhost rule";
my $sent = time - $started;
note sprintf 'sending took %.1f s (%.0f attempts/s)', $sent, $TOTAL / $sent;

# stats() - `mtaq stats --json` decoded, or undef.
sub stats {
	my ($rc, $out, $err) = $m->mtaq('stats', '--json');
	my $j = eval { JSON::PP->new->decode($out) };
	return $rc == 0 && ref $j eq 'HASH' ? $j : undef;
}

my $j;
my $deadline = time + 20;
until (($j = stats()) && ($j->{rules}{localhost}{today}{rejected} // 0) == $TOTAL) {
	last if time > $deadline;
	sleep 0.25;
}
ok $j, 'mtaq stats --json gives a JSON object' or BAIL_OUT('no statistics');
my $today = $j->{rules}{localhost}{today} // {};
is $today->{rejected}, $TOTAL, "the counters have all $TOTAL refusals";
is $today->{connections}, $DISTINCT_CONNS + 75, '... from 1,075 connections';

my $size = -s $m->spool . '/stats.db';
ok defined $size && $size < 2 * 1024 * 1024, "stats.db is under 2 MB"
	or diag "stats.db: " . ($size // 'missing');
note sprintf 'stats.db: %.0f KB after %d refusals with distinct names and %d addresses',
	($size // 0) / 1024, $TOTAL, $DISTINCT_CONNS + 1;

# The distinct addresses: estimated, within 3 standard errors (4.9%).
my $clients = $today->{clients} // 0;
my $want = $DISTINCT_CONNS + 1;
ok abs($clients - $want) <= 0.049 * $want, "about $want client addresses: $clients";
ok $today->{clients_estimated}, '... marked as estimated';
is_deeply $j->{rules}{localhost}{period}, $today, 'the period is today';

# The heavy names first, each count an upper bound and count minus
# max_overcount a lower bound of what was sent.
my @top = @{ $j->{top_helo} // [] };
my @want = sort { $HEAVY{$b} <=> $HEAVY{$a} } keys %HEAVY;
is_deeply [map { $_->{name} } @top[0 .. 2]], \@want, 'the three heavy names lead top_helo'
	or diag explain \@top;
for my $t (@top[0 .. 2]) {
	my $sent = $HEAVY{ $t->{name} // '' } // 0;
	ok $t->{count} >= $sent && $t->{count} - $t->{max_overcount} <= $sent,
		"$t->{name}: $t->{count} - $t->{max_overcount} brackets $sent";
}
is $j->{top_kept_per_day}, 100, 'each day keeps 100 names';
my @ips = @{ $j->{top_clients} // [] };
is $ips[0]{name}, $HEAVY_IP, "the heavy address leads top_clients";
ok $ips[0]{count} >= $HEAVY_TOTAL && $ips[0]{count} - $ips[0]{max_overcount} <= $HEAVY_TOTAL,
	"... $ips[0]{count} - $ips[0]{max_overcount} brackets $HEAVY_TOTAL";

my ($rc, $text, $err) = $m->mtaq('stats');
is $rc, 0, 'mtaq stats exits 0' or diag $err;
like $text, qr/^localhost +$TOTAL +1075 +~\d+ +$TOTAL +1075 +~\d+$/m,
	'the text report marks the address counts ~';
like $text, qr/^\(~: estimated/m, '... and says what ~ means';
like $text, qr/top rejected HELO names \(period\)\n +count  at least  name\n +~?3\d{3} +(?:29\d\d|3000)  \[127\.9\.9\.1\]\n/,
	'the text report shows the top names, with the least each can be';
like $text, qr/^\(~: approximate: each day keeps only its 100 most frequent/m,
	'... and that counts are approximate beyond them';
note $text;

is $m->stop, 0, 'mtad stops cleanly';
$size = -s $m->spool . '/stats.db';
ok $size < 2 * 1024 * 1024, sprintf 'stats.db is still under 2 MB after the last flush (%.0f KB)',
	$size / 1024;

# ---- keys written before issue 11 are still read ----
# One key per address (ip/RULE/IP, value: its refusals) and per HELO
# name (helo/NAME), loaded with db_load while mtad is stopped: yesterday
# (own-name: 5,000 refusals, 2 connections, 2 addresses, one HELO
# name), and today two more
# for addresses the sketches already have.
sub be64 { join '', map { sprintf '\\%02x', $_ } unpack 'C8', pack 'Q>', $_[0] }
my @day = localtime(time - 86400);
my $yday = sprintf '%04d%02d%02d', $day[5] + 1900, $day[4] + 1, $day[3];
@day = localtime;
my $tday = sprintf '%04d%02d%02d', $day[5] + 1900, $day[4] + 1, $day[3];
my %old = ("$yday/reject/own-name" => 5000, "$yday/conn/own-name" => 2,
	   "$yday/ip/own-name/192.0.2.7" => 3000, "$yday/ip/own-name/192.0.2.8" => 2000,
	   "$yday/helo/old.example" => 5000, "$tday/ip/localhost/127.1.0.5" => 100,
	   "$tday/ip/localhost/$HEAVY_IP" => 10);
my $dump = join '', "VERSION=3\nformat=print\ntype=btree\nHEADER=END\n",
	(map { " $_\n " . be64($old{$_}) . "\n" } sort keys %old), "DATA=END\n";
open my $load, '|-', 'db_load', '-h', $m->spool, 'stats.db' or die "db_load: $!";
print $load $dump;
ok close($load), 'db_load added keys of the old scheme';
my $k = stats();
is_deeply [map { $k->{rules}{'own-name'}{period}{$_} } qw(rejected connections clients)],
	[5000, 2, 2], 'old keys: yesterday\'s own-name refusals, connections, addresses';
ok !$k->{rules}{'own-name'}{period}{clients_estimated}, '... the 2 addresses counted exactly';
my $first = $k->{top_helo}[0] // {};
ok $first->{name} eq 'old.example' && $first->{count} >= 5000
	&& $first->{count} - $first->{max_overcount} <= 5000,
	"... its HELO name leads the period's top names: $first->{count} - $first->{max_overcount}";
is $k->{rules}{localhost}{today}{clients}, $clients,
	'old keys: an address the sketch has is not counted twice (same hash key as mtad)';
is $k->{top_clients}[0]{count}, $j->{top_clients}[0]{count} + 10,
	'... and its refusals add to the top addresses';

note sprintf 'the whole test took %.1f s', time - $started;

done_testing;
