# 66-policy-stats.t - `mtaq stats` and `mtaq stats --json` count what the
# policy did, so the admin can say "yesterday we rejected ~260k delivery
# attempts via ~1.5k independent connections" (the seed): per rule the
# rejections, the connections and the distinct clients they came from,
# today and over the kept period; messages accepted with and without
# AUTH; the most refused HELO names. The counters reach the database
# within about a second (polled here for up to ~10 s) and survive a
# restart of mtad.
#
# The clients: 127.0.0.1, 127.0.0.2, 127.0.0.3 (all loopback).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);
use MtadTest;

my $OWN = '550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.';
my $LOCALHOST = '550 5.7.1 Invalid HELO. HELO/EHLO as localhost.';

# listener 0: plain, 1: implicit TLS with AUTH
my $m = MtadTest->new(listeners => ['', 'tls'], users => {alice => 'secret'},
		      local_domains => 'campus.test');

# refused(FROM, NAME, REPLY, N) - a connection from FROM says EHLO NAME
# and sends MAIL N times, each refused with REPLY.
sub refused {
	my ($from, $name, $reply, $n) = @_;
	my $s = $m->raw(local => $from);
	my $r = $m->send_recv($s, "EHLO $name\r\n") // '';
	like $r, qr/(?:\A|\n)250 HELP\r\n\z/, "from $from: EHLO $name -> 250";
	$m->dialog($s, "> MAIL FROM:<a\@b.example>\n< $reply\n" x $n . "> QUIT\n< 221 2.0.0 *\n");
}

# stats() - `mtaq stats --json` decoded, or undef (with a diagnostic).
sub stats {
	my ($quiet) = @_;
	my ($rc, $out, $err) = $m->mtaq('stats', '--json');
	my $j = eval { JSON::PP->new->decode($out) };
	return $j if $rc == 0 && ref $j eq 'HASH';
	diag "mtaq stats --json: exit $rc, stdout '$out', stderr '$err' " . ($@ // '')
		unless $quiet;
	return undef;
}

# wait_stats(CHECK) - polls stats() for up to ~10 s until CHECK(json) is
# true; returns the last json.
sub wait_stats {
	my ($check) = @_;
	my $deadline = time + 10;
	my $j;
	while (1) {
		$j = stats(1);
		return $j if $j && $check->($j);
		return $j // stats() if time > $deadline;
		sleep 0.25;
	}
}

sub counts {
	my ($j, $rule, $when) = @_;
	my $c = $j->{rules}{$rule}{$when} // {};
	return [map { $c->{$_} // 0 } qw(rejected connections clients)];
}

# ---- what happens ----
# own-name: 3 refusals from 2 connections, 2 clients
refused('127.0.0.1', 'mx.campus.test', $OWN, 2);
refused('127.0.0.2', 'mx.campus.test', $OWN, 1);
# localhost: 3 refusals from 2 connections, 2 clients (not the same two)
refused('127.0.0.3', 'localhost', $LOCALHOST, 2);
refused('127.0.0.2', 'localhost', $LOCALHOST, 1);
# relay: 1 refusal; and one message accepted without AUTH
my $s = $m->raw;
$m->ehlo($s, 'client.example');
$m->dialog($s, <<'END');
	> MAIL FROM:<a@b.example>
	< 250 2.1.0 *
	> RCPT TO:<x@y.example>
	< 554 5.7.1 <x@y.example>: Relay access denied
	> RCPT TO:<u@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: unauthenticated
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
# one message with AUTH, from a client whose name is refused without it
$s = $m->tls_raw(1);
$m->ehlo($s, 'localhost', auth => 'PLAIN LOGIN');
$m->dialog($s, '> ' . MtadTest::auth_plain('alice', 'secret') . "\n< 235 2.7.0 Authentication successful\n");
$m->queue_message($s, 'authenticated', from => 'alice@campus.test', body => 'hello');
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");

# ---- the numbers ----
my %WANT = (
	'own-name'  => [3, 2, 2],
	'localhost' => [3, 2, 2],
	'relay'     => [1, 1, 1],
);
my %ACCEPTED = (authenticated => 1, unauthenticated => 1);

# check_all(J, LABEL, EXTRA) - every number, today and over the period.
sub check_all {
	my ($j, $label, $want, $accepted) = @_;
	ok $j, "$label: mtaq stats --json gives a JSON object" or return;
	my $today_local = strftime('%Y-%m-%d', localtime);
	my $today_utc = strftime('%Y-%m-%d', gmtime);
	ok(($j->{today} // '') eq $today_local || ($j->{today} // '') eq $today_utc,
	   "$label: today is $today_local") or diag "today: " . ($j->{today} // 'undef');
	like $j->{days} // '', qr/^[1-9]\d*$/, "$label: days is a positive number";
	for my $when ('today', 'period') {
		for my $rule (sort keys %$want) {
			is_deeply counts($j, $rule, $when), $want->{$rule},
				"$label: $rule $when: rejected, connections, clients";
		}
		for my $rule (sort keys %{ $j->{rules} // {} }) {
			next if $want->{$rule};
			is counts($j, $rule, $when)->[0], 0, "$label: $rule $when: nothing rejected";
		}
		for my $k (sort keys %$accepted) {
			is $j->{accepted}{$when}{$k}, $accepted->{$k}, "$label: accepted $when $k";
		}
	}
	# the most refused HELO names first
	my @top = @{ $j->{top_helo} // [] };
	my %top = map { ($_->{name} // '') => $_->{count} } @top;
	is $top{'mx.campus.test'}, $want->{'own-name'}[0], "$label: top_helo mx.campus.test";
	is $top{'localhost'}, $want->{'localhost'}[0], "$label: top_helo localhost";
	my @counts = map { $_->{count} // 0 } @top;
	is_deeply \@counts, [sort { $b <=> $a } @counts], "$label: top_helo sorted by count";
	ok !exists $top{'client.example'} || $top{'client.example'} <= 1,
		"$label: the accepted name is not among the refused ones (at most its relay refusal)";
}

my $done = sub {
	my ($j, $want, $accepted) = @_;
	for my $rule (keys %$want) {
		return 0 unless join(',', @{ counts($j, $rule, 'today') }) eq join(',', @{ $want->{$rule} });
	}
	for my $k (keys %$accepted) {
		return 0 unless ($j->{accepted}{today}{$k} // -1) == $accepted->{$k};
	}
	return ($j->{group_commit}{today}{messages} // -1) == 2;
};

# check_commit(J, LABEL) - the two accepted messages went through the
# group commit: 1 or 2 log syncs, and the batch-size buckets add up.
sub check_commit {
	my ($j, $label) = @_;
	my $g = $j->{group_commit} // {};
	for my $when ('today', 'period') {
		is $g->{$when}{messages}, 2, "$label: group commit $when: 2 messages";
		like $g->{$when}{syncs} // '', qr/^[12]$/, "$label: ... in 1 or 2 log syncs";
	}
	my $by = $g->{period_syncs_by_batch} // {};
	is_deeply [sort keys %$by], [sort qw(1 2-3 4-7 8-15 16-31 32-63 64+)],
		"$label: syncs by batch size has the seven buckets";
	my $sum = 0;
	$sum += $_ for values %$by;
	is $sum, $g->{period}{syncs}, "$label: ... and they add up to the syncs";
}

my $j = wait_stats(sub { $done->($_[0], \%WANT, \%ACCEPTED) });
check_all($j, 'running', \%WANT, \%ACCEPTED);
check_commit($j, 'running');

my ($rc, $text, $err) = $m->mtaq('stats');
is $rc, 0, 'mtaq stats exits 0' or diag $err;
like $text, qr/own-name/, 'mtaq stats names own-name';
like $text, qr/localhost/, '... localhost';
like $text, qr/relay/, '... relay';
like $text, qr/\b3\b/, '... and shows the count 3';
like $text, qr/group commit .*\n  today: +2 messages in [12] log syncs, [12]\.\d per sync\n/,
	'... and the group commit: messages per log sync';
note $text;

# ---- the numbers survive a restart ----
is $m->stop, 0, 'mtad stops cleanly';
like $m->log_text, qr/mtad\[\d+\]: queue: group commit: 2 messages in [12] log syncs, [12]\.\d per sync$/m,
	'at stop the log sums up the group commit';
check_all(stats(), 'mtad stopped', \%WANT, \%ACCEPTED);
check_commit(stats(), 'mtad stopped');
$m->start;
check_all(stats(), 'restarted', \%WANT, \%ACCEPTED);

# ... and go on from there: one more refusal from a new client
refused('127.0.0.3', 'mx.campus.test', $OWN, 1);
my %WANT2 = (%WANT, 'own-name' => [4, 3, 3]);
$j = wait_stats(sub { $done->($_[0], \%WANT2, \%ACCEPTED) });
check_all($j, 'after the restart', \%WANT2, \%ACCEPTED);

done_testing;
