# 83-slow-clients.t - 1,000 connections that send almost nothing must
# not slow down a normal client, and command_timeout must close them.
#
# 1,000 connections from ten loopback addresses (127.0.0.2-11, 100 each)
# say one byte right after the greeting; half of them then one byte every
# 10 s, the other half one byte every 2 s, never a whole line (the
# "slowloris" way of keeping a connection: each byte is activity, none is
# a command). command_timeout is 6 s here: both halves must get
# "421 4.4.2 ... timeout exceeded" and be closed within it (plus a
# generous margin for a loaded machine), since a command is due 6 s after
# the last one, however many bytes of the next dribble in.
#
# A normal session (EHLO, MAIL, RCPT, DATA, QUIT) is timed with and
# without them; the figures are printed, and only a generous bound (1 s)
# is asserted: this runs on shared, noisy machines.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Poll qw(POLLIN POLLHUP POLLERR);
use IO::Socket::INET;
use List::Util qw(max sum);
use Time::HiRes qw(sleep time);
use MtadTest;

my $SLOW = 1000;
my $ADDRS = 10;		# 127.0.0.2 ... 127.0.0.11
my $TIMEOUT = 6;	# command_timeout
my $MARGIN = 30;	# seconds allowed beyond it, on a loaded machine

my $limit = MtadTest::raise_nofile(3 * $SLOW);
plan skip_all => "cannot have $SLOW connections open: descriptor limit $limit"
	if !$limit || $limit < $SLOW + 200;

my $m = MtadTest->new(max_connections => 2 * $SLOW, max_connections_per_ip => $SLOW,
		      command_timeout => $TIMEOUT);

# session - one normal session on a fresh connection; its duration (s).
sub session {
	my $t0 = time;
	my $s = $m->raw;
	my @r;
	push @r, $m->send_recv($s, "EHLO client.example\r\n");
	push @r, $m->send_recv($s, "MAIL FROM:<a\@b.test>\r\n");
	push @r, $m->send_recv($s, "RCPT TO:<u\@campus.test>\r\n");
	push @r, $m->send_recv($s, "DATA\r\n");
	push @r, $m->send_recv($s, "Subject: timed\r\n\r\na normal message\r\n.\r\n");
	push @r, $m->send_recv($s, "QUIT\r\n");
	my $t = time - $t0;
	close $s;
	my $codes = join ' ', map { defined $_ ? substr($_, 0, 3) : 'none' } @r;
	die "a normal session failed: $codes" unless $codes eq '250 250 250 354 250 221';
	return $t;
}

sub figures { sprintf 'median %.1f ms, max %.1f ms', 1000 * (sort { $a <=> $b } @_)[@_ / 2], 1000 * max(@_) }

session() for 1 .. 3;	# warm up
my @quiet = map { session() } 1 .. 10;
note "normal session alone: " . figures(@quiet);

# ---- the slow clients ----
my (@slow, %by_fh);
my $t_open = time;
for my $i (0 .. $SLOW - 1) {
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $m->port,
				      LocalAddr => '127.0.0.' . (2 + $i % $ADDRS), Timeout => 30)
		or die "slow connection $i: $!";
	$s->blocking(0);
	my $c = { s => $s, i => $i, every => $i % 2 ? 2 : 10, buf => '', sent => 0,
		  next => time + ($i % 2 ? 2 : 10) };
	syswrite $s, 'N';	# of a NOOP that never ends
	$c->{last_byte} = time;
	push @slow, $c;
	$by_fh{fileno $s} = $c;
}
my $t_opened = time - $t_open;
note sprintf '%d slow connections opened in %.1f s', $SLOW, $t_opened;

# read_slow(WAIT) - what the server said to the slow ones; marks closes.
my $poll = IO::Poll->new;
$poll->mask($_->{s} => POLLIN) for @slow;
sub read_slow {
	my ($wait) = @_;
	return unless $poll->handles;
	$poll->poll($wait);
	for my $fh ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
		my $c = $by_fh{fileno $fh};
		my $n = sysread $fh, $c->{buf}, 4096, length $c->{buf};
		next if !defined $n && $!{EAGAIN};
		next if $n;
		$c->{closed} = time;	# EOF or error
		$poll->remove($fh);
		close $fh;
	}
}

read_slow(0);
my $open_now = grep { !$_->{closed} } @slow;
my @busy = map { session() } 1 .. 10;
read_slow(0);
my $still_open = grep { !$_->{closed} } @slow;
note "normal session with $still_open slow connections open: " . figures(@busy);
diag sprintf 'normal session: %s alone, %s beside %d slow connections',
	figures(@quiet), figures(@busy), $still_open;
is $open_now, $SLOW, 'all slow connections were open while the normal sessions ran'
	or diag "only $open_now";
cmp_ok max(@busy), '<', 1, 'a normal session beside them takes less than 1 s';
note 'mtad RSS with them: ' . ($m->rss_kb // '?') . ' kB';

# ---- command_timeout closes them ----
my $deadline = $t_open + $t_opened + $TIMEOUT + $MARGIN;
local $SIG{PIPE} = 'IGNORE';
while (time < $deadline && grep { !$_->{closed} } @slow) {
	read_slow(0.2);
	my $now = time;
	for my $c (grep { !$_->{closed} && $_->{next} <= $now } @slow) {
		syswrite $c->{s}, 'x';	# a byte of the endless line
		$c->{sent}++;
		$c->{last_byte} = $now;
		$c->{next} = $now + $c->{every};
	}
}
for my $every (10, 2) {
	my @g = grep { $_->{every} == $every } @slow;
	my @closed = grep { $_->{closed} } @g;
	my @said = grep { $_->{buf} =~ /^421 4\.4\.2 [^\r\n]*timeout[^\r\n]*\r\n\z/m } @g;
	my @after = map { $_->{closed} - $t_open } @closed;
	is scalar(@closed), scalar(@g), "one byte every $every s: all " . scalar(@g)
		. " connections closed by command_timeout ($TIMEOUT s)"
		or diag scalar(@g) - scalar(@closed) . ' still open after '
		. sprintf('%.0f s', time - $t_open) . '; bytes sent to one: '
		. max(map { $_->{sent} } @g);
	is scalar(@said), scalar(@g), '... each after 421 4.4.2 timeout exceeded'
		or diag 'one of them got: ' . ((grep { $_->{buf} !~ /^421 4\.4\.2 /m } @g)[0]{buf} // '');
	note sprintf 'one byte every %d s: closed %.1f-%.1f s after the first connection',
		$every, (sort { $a <=> $b } @after)[0] // -1, max(@after) // -1 if @after;
}
close $_->{s} for grep { !$_->{closed} } @slow;

my $after = session();
note sprintf 'a normal session afterwards: %.1f ms', 1000 * $after;
pass 'mtad still serves normal clients';
is $m->stop, 0, 'mtad stops cleanly';

done_testing;
