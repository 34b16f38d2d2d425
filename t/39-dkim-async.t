# 39-dkim-async.t - DKIM signatures are computed on libuv's thread pool,
# not on the event loop (smtp/session_dkim.c), and a SIGHUP that
# replaces the key while signatures are being computed frees the old
# key only after its last job (dkim_keys_ref/unref).
#
# Several connections on two loops finish their messages at the same
# moment, round after round; in the middle round SIGHUP brings a new key
# while those messages are being signed. Every message that got its 250
# must arrive at the sink (t/lib/Sink.pm) signed exactly once, and
# Debian's dkimpy (t/lib/dkim-verify) must verify it: with the old key
# before the reload, the new one after it, either for the round the
# reload met. One more client per round sends its final dot and hangs up
# at once: its signature may still be running, which must be harmless
# (and a message it did get queued is signed too). A stop while messages
# are being signed waits for them: 250, then 421. Run it under the ASan
# build as well (MTAD_BUILD=$PWD/build-asan): a job freeing or using a
# freed key set or session fails there, and so does a leak at the stop.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Socket qw(SOL_SOCKET SO_LINGER);
use MtadTest;
use Sink;

my $PY = '/usr/bin/python3';
plan skip_all => 'python3-dkim is not installed (etc/packages)'
	unless -x $PY && system($PY, '-c', 'import dkim') == 0;

my $VERIFY = "$FindBin::Bin/lib/dkim-verify";
my $CONNS = 6;		# clients that wait for their replies
my $ROUNDS = 8;
my $HUP_ROUND = 4;	# SIGHUP right after this round's final dots
my $keys = tempdir('dkim-keys-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});

my $cfg = MtadTest->new(start => 0);
my (%txt, %line);
for my $sel (qw(old new)) {
	my ($rc, $out, $err) = $cfg->mtaq('dkim-keygen', 'campus.test', $sel, '--dir', $keys);
	is $rc, 0, "dkim-keygen campus.test $sel" or diag $err;
	my ($name, $strings) = $out =~ /^(\S+)\. IN TXT \((.*)\)$/m;
	$txt{$name} = join '', $strings =~ /"([^"]*)"/g;
	($line{$sel}) = $out =~ /^dkim_sign = (.*)$/m;
}

# The clients that hang up send from slow.test, whose key is RSA 4096
# (several ms a signature), and mtad's thread pool has one thread: their
# connection often breaks while their job waits for the pool or runs.
my $SLOW = 1;
for my $i (1 .. $SLOW) {
	my $key = "$keys/slow$i.key";
	my ($rc, undef, $err) = MtadTest::run('openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt',
					    'rsa_keygen_bits:4096', '-out', $key);
	is $rc, 0, "an RSA 4096 key slow$i" or diag $err;
	my ($prc, $der) = MtadTest::run('sh', '-c', "openssl pkey -in '$key' -pubout -outform DER | base64 -w0");
	$txt{"slow$i._domainkey.slow.test"} = "v=DKIM1; k=rsa; p=$der";
	$line{old} .= "\ndkim_sign = slow.test slow$i $key";
}
$line{new} .= "\ndkim_sign = slow.test slow$_ $keys/slow$_.key" for 1 .. $SLOW;

my $sink = Sink->new();
local $ENV{UV_THREADPOOL_SIZE} = 1;	# libuv's pool, for the mtad started here
my $m = MtadTest->new(loops => 2, relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      dkim_sign => $line{old},
		      extra => "route = example.org [127.0.0.1]:${\ $sink->port}\n");

# verify(DATA) - dkim-verify's output and exit code.
sub verify {
	my ($data) = @_;
	my $dir = tempdir(CLEANUP => 1);
	open my $fh, '>:raw', "$dir/msg" or die "$dir/msg: $!";
	print $fh $data;
	close $fh;
	my ($rc, $out, $err) = MtadTest::run($VERIFY, "$dir/msg", map { "$_=$txt{$_}" } sort keys %txt);
	return ($out . $err, $rc);
}

sub message {
	my ($tag, $domain) = @_;
	$domain //= 'campus.test';
	return "From: Alice <alice\@$domain>\r\nTo: bob\@example.org\r\nSubject: $tag\r\n"
		. "X-Test: $tag\r\n\r\n" . ("line of $tag\r\n" x 20);
}

# Trusted clients (relay_networks): our users, so their mail is signed.
my @s = map { scalar $m->raw } 1 .. $CONNS;
$m->ehlo($_, 'client.example') for @s;

my (%queued, %quitter, $reloaded);
for my $r (1 .. $ROUNDS) {
	my $q = $m->raw;
	$m->ehlo($q, 'quitter.example');
	for my $c ($q, @s) {
		$m->send_bytes($c, "MAIL FROM:<alice\@campus.test>\r\nRCPT TO:<bob\@example.org>\r\nDATA\r\n");
	}
	my $ok = 1;
	for my $c ($q, @s) {
		for my $want (qr/^250 2\.1\.0/, qr/^250 2\.1\.5/, qr/^354 /) {
			my $reply = $m->read_reply($c) // '';
			$ok &&= $reply =~ $want or diag "round $r: $reply";
		}
	}
	ok $ok, "round $r: MAIL, RCPT, DATA on every connection";
	# The final dots together: every session signs at once.
	for my $i (0 .. $#s) {
		$m->send_bytes($s[$i], message("r$r-c$i") . ".\r\n");
	}
	$m->send_bytes($q, message("r$r-quit", 'slow.test') . ".\r\n");
	# Gone before its reply, perhaps while its signature runs: with a
	# reset (a broken connection) in odd rounds, a plain close in even.
	setsockopt($q, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) if $r % 2;
	close $q;
	my $off = length $m->log_text;
	if ($r == $HUP_ROUND) {
		$m->set_config(dkim_sign => $line{new});
		ok kill('HUP', $m->pid), "round $r: SIGHUP with a new key while the messages are signed";
	}
	my $n = 0;
	for my $i (0 .. $#s) {
		my $reply = $m->read_reply($s[$i]) // '';
		if ($reply =~ /^250 2\.0\.0 Ok: queued as (\w+)/) {
			$queued{"r$r-c$i"} = $1;
			$n++;
		} else {
			diag "round $r connection $i: $reply";
		}
	}
	is $n, $CONNS, "round $r: $CONNS messages queued (250 after their signature)";
	if ($r == $HUP_ROUND) {
		ok $m->wait_log(qr/reload: configuration .* loaded/, $off), 'the reload is done'
			or diag substr($m->log_text, $off);
	}
}
$m->dialog($_, "> QUIT\n< 221 *\n< [closed]\n") for @s;

# Every quitter's session has ended (whatever it committed was handed
# to the queue before), and mtad still serves.
ok MtadTest::wait_for(30, sub {
	(() = $m->log_text =~ /disconnect from \S+ ehlo=1 mail=1 rcpt=1 data=\S+ commands=/g)
		>= $ROUNDS }), "the $ROUNDS clients that left are gone";
my $after = $m->raw;
$m->ehlo($after, 'after.example');
$m->queue_message($after, 'after', from => 'alice@campus.test', to => 'bob@example.org');
$m->dialog($after, "> QUIT\n< 221 *\n< [closed]\n");

# Every message the sessions committed (theirs and what the quitters got
# queued), by the session's own log line, must reach the sink.
my $want = keys %queued;
my $committed_re = qr/: from=<alice\@campus\.test>, size=\d+, nrcpt=1, client=\S+, helo=<(?:client|quitter)/;
my ($committed, %data);
MtadTest::wait_for(60, sub {
	my $log = $m->log_text;
	# A session gone before its 250 logs only that it was queued.
	$committed = (() = $log =~ /$committed_re/g) + (() = $log =~ /: queued, but the client left/g);
	for my $msg ($sink->messages) {
		my ($tag) = $msg->{data} =~ /^X-Test: (\S+)\r$/m or next;
		$data{$tag} = $msg->{data};
	}
	return keys %data >= $committed && !grep { !$data{$_} } keys %queued;
});
is scalar(keys %data), $committed, "the sink got every committed message ($committed)";
my (%by, @bad);
for my $tag (sort keys %queued) {
	my $d = $data{$tag};
	if (!defined $d) {
		push @bad, "$tag: did not arrive";
		next;
	}
	my ($out, $rc) = verify($d);
	my ($r) = $tag =~ /^r(\d+)/;
	my $expect = $r < $HUP_ROUND ? qr/old/ : $r > $HUP_ROUND ? qr/new/ : qr/old|new/;
	if ($rc != 0 || $out !~ /\Apass d=campus\.test s=($expect) a=rsa-sha256\n\z/) {
		push @bad, "$tag: $out";
		next;
	}
	$by{$1}++;
}
is scalar(@bad), 0, "every one of the $want queued messages arrived, signed once and verified "
	. "(old key before the reload, new after)" or diag join "\n", @bad;
ok $by{old} && $by{new}, "both keys signed (old: " . ($by{old} // 0) . ", new: " . ($by{new} // 0) . ")";

# The clients that hung up: what got queued of theirs is signed, too.
my ($quits, $unsigned) = (0, 0);
for my $tag (grep { /-quit$/ } keys %data) {
	$quits++;
	my ($out, $rc) = verify($data{$tag});
	$unsigned++ if $rc != 0;
	diag "$tag: $out" if $rc != 0;
}
is $unsigned, 0, "the messages of clients that left before their reply: none unsigned "
	. "($quits of $ROUNDS queued)";

my $log = $m->log_text;
is scalar(() = $log =~ /DKIM-Signature field added \(s=(?:old|new), d=campus\.test\)/g), $want,
	'one "DKIM-Signature field added" line per queued message';
is scalar(() = $log =~ /DKIM-Signature field added \(s=slow$SLOW, d=slow\.test\)/g), $quits,
	'... and per key for each message of a client that left';
unlike $log, qr/DKIM signing failed/, 'no signing failed';

# ---- SIGTERM while messages are being signed ----
# Each client finishes its message and mtad is told to stop at once: a
# session whose signature (or commit) is under way gets its 250 first and
# then 421 (the stop waits for the pool); one that was still in DATA gets
# 421 only. No message that got its 250 is lost: it is at the sink or
# still in the queue after the stop. And the stop is clean (a leak fails
# an ASan build here).
my @t = map { scalar $m->raw } 1 .. 4;
$m->ehlo($_, 'stopping.example') for @t;
for my $c (@t) {
	$m->send_bytes($c, "MAIL FROM:<alice\@campus.test>\r\nRCPT TO:<bob\@example.org>\r\nDATA\r\n");
}
for my $c (@t) {
	$m->read_reply($c) for 1 .. 3;
}
for my $i (0 .. $#t) {
	$m->send_bytes($t[$i], message("stop$i", $i % 2 ? 'slow.test' : 'campus.test') . ".\r\n");
}
ok kill('TERM', $m->pid), 'SIGTERM while the last messages are signed';
my (%stopped, @odd);
for my $i (0 .. $#t) {
	my $first = $m->read_reply($t[$i]) // '';
	if ($first =~ /^250 2\.0\.0 Ok: queued as (\w+)/) {
		$stopped{"stop$i"} = $1;
		$first = $m->read_reply($t[$i]) // '';
	}
	push @odd, "stop$i: $first" unless $first =~ /^421 4\.3\.2 /;
}
is scalar(@odd), 0, 'each got its 250 (or was still in DATA) and then 421 4.3.2' or diag join "\n", @odd;
is $m->stop, 0, 'mtad stops cleanly';
my %left = map { $_ => 1 } $m->queue_ids;
my %at_sink = map { (($_->{data} =~ /^X-Test: (\S+)\r$/m)[0] // '') => 1 } $sink->messages;
my @lost = grep { !$at_sink{$_} && !$left{$stopped{$_}} } sort keys %stopped;
is scalar(@lost), 0, 'no message that got its 250 is lost (' . scalar(keys %stopped) . ' of '
	. scalar(@t) . ' got one)' or diag "@lost";

done_testing;
