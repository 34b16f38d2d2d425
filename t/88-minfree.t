# 88-minfree.t - the free-space reserve of the spool (queue_minfree): the
# disk never fills under the database.
#
# The spool is a tmpfs this test mounts (root only; skipped otherwise),
# filled by a filler file the test grows and shrinks so that the free
# space is just below or just above the reserve. What must hold:
#
#   - below the reserve, MAIL gets 452 4.3.1 (RFC 5321 §4.5.3.1.10,
#     RFC 1870 §6.1), and so does DATA of a transaction begun above it,
#     before any body byte is read;
#   - just above it, MAIL with a SIZE= that would cross it gets 452,
#     while a MAIL without SIZE (or with a small one) gets 250;
#   - a burst of messages within one measuring interval stops near the
#     reserve (mtad lowers its estimate after each 250);
#   - nothing that got 250 is lost (mtaq count, mtaq show --body exact);
#   - with the disk below the reserve, delivery still drains the queue
#     to a sink (t/lib/Sink.pm), deleting as it goes;
#   - once the filler is gone, mail is accepted again.
#
# Size: as in t/80-disk-full.t, Berkeley DB's regions take ~75 MB with a
# 16 MB cache; log files are 10 MB each (grown as written). The
# reserve (16 MB) is above one log file, as it must be for deletes at
# the reserve to be able to start a new one.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use List::Util qw(max);
use Time::HiRes qw(sleep);
use MtadTest;
use Sink;

my $TMPFS = '128m';
my $MB = 1024 * 1024;
my $RESERVE = 16 * $MB;
my $LIMIT = 2 * $MB;	# message_size_limit

# The mail stays queued (450 at RCPT) until the sink is told to take it.
my $sink = Sink->new(rcpt_default => '450 4.2.0 try later');
my $m = MtadTest->new(start => 0, db_cache_size => '16m', queue_minfree => $RESERVE,
		      message_size_limit => $LIMIT, retry_min => 1, retry_max => 2,
		      smtp_tls => 'none',
		      extra => "route = campus.test [127.0.0.1]:" . $sink->port . "\n");
if (my $why = MtadTest::mount_tmpfs($m->spool, $TMPFS)) {
	plan skip_all => "cannot mount a small filesystem for the spool: $why";
}
my $filler = $m->spool . '/filler';
$m->start;

my %sent;	# queue id -> md5 of the body sent

sub body_of {
	my ($tag, $size) = @_;
	my $line = "$tag " . ('x' x 60) . "\n";
	return "Subject: $tag\nMessage-ID: <$tag\@minfree.test>\n\n"
		. ($line x int($size / length $line));
}

# unreceived(TEXT) - a message as sent: CRLF -> LF, mtad's Received: removed.
sub unreceived {
	my ($text) = @_;
	$text =~ s/\r\n/\n/g;
	$text =~ s/\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*//;
	return $text;
}

sub stored {
	my ($qid) = @_;
	my ($rc, $out) = $m->mtaq('show', '--body', $qid);
	return $rc == 0 ? unreceived($out) : undef;
}

# avail - free bytes in the spool's filesystem for an unprivileged user (df).
sub avail {
	my ($rc, $out) = MtadTest::run('df', '-B1', '--output=avail', $m->spool);
	die "df failed" if $rc != 0;
	return (split ' ', $out)[1];
}

# set_free(BYTES) - grows (writing zeros) or shrinks (truncating) the filler
# until about BYTES are free.
sub set_free {
	my ($want) = @_;
	my $delta = avail() - $want;
	my $size = -s $filler // 0;
	if ($delta < 0) {
		truncate $filler, max(0, $size + $delta) or die "truncate $filler: $!";
	} elsif ($delta > 0) {
		open my $fh, '>>', $filler or die "open $filler: $!";
		my $block = "\0" x 65536;
		print $fh substr($block, 0, $delta % 65536);
		print $fh $block for 1 .. int($delta / 65536);
		close $fh or die "close $filler: $!";
	}
	note sprintf "filler %.1f MB: %.2f MB free, the reserve is %.0f MB",
		(-s $filler) / $MB, avail() / $MB, $RESERVE / $MB;
}

# mail_reply(ARGS) - the reply to one MAIL FROM on a new connection.
sub mail_reply {
	my ($args) = @_;
	my $s = $m->raw;
	$m->send_recv($s, "EHLO client.example\r\n");
	my $r = $m->send_recv($s, "MAIL FROM:<a\@b.test>$args\r\n") // '';
	$m->send_recv($s, "QUIT\r\n");
	close $s;
	return $r =~ s/\r\n\z//r;
}

# wait_mail(REGEX) - until mtad's measure (every second) makes MAIL answer so.
sub wait_mail {
	my ($re) = @_;
	my $r;
	MtadTest::wait_for(10, sub { ($r = mail_reply('')) =~ $re });
	return $r;
}

# queue_one(SMTP, TAG, SIZE) - sends one message; its id when it got 250.
sub queue_one {
	my ($smtp, $tag, $size) = @_;
	my $b = body_of($tag, $size);
	my $r = $m->send_message($smtp, 'a@b.test', ['u@campus.test'], $b);
	return (undef, $r) unless $r =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)\z/;
	$sent{$1} = md5_hex($b);
	return ($1, $r);
}

# check_queue(WHAT) - every 250 is listed and reads back byte-exact.
sub check_queue {
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is $m->queue_count, scalar(keys %sent), "$what: mtaq count is the number of 250s";
	my @bad = grep { md5_hex(stored($_) // '') ne $sent{$_} } sort keys %sent;
	is scalar(@bad), 0, "$what: every message reads back intact (mtaq show --body)"
		or diag "damaged or missing: @bad";
}

my $insufficient = qr/\A452 4\.3\.1 Insufficient system storage\z/;

# ---- mail queued while there is room ----
{
	my $smtp = $m->smtp;
	for my $size (2000, 300_000, 1_000_000) {
		my ($qid, $r) = queue_one($smtp, "early-$size", $size);
		ok $qid, "a $size-byte message is queued while there is room" or diag $r;
	}
	$smtp->quit;
}

# ---- below the reserve: 452 at MAIL ----
my $from = length $m->log_text;
set_free($RESERVE - $MB);
like wait_mail(qr/\A452 /), $insufficient, 'below the reserve: MAIL gets 452 4.3.1';
like mail_reply(' SIZE=1000'), $insufficient, '... also with a small SIZE=';
ok $m->wait_log(qr/warning: spool .*MB free, below queue_minfree \(16 MB\)/, $from),
	'... and the log says once that the spool is below queue_minfree';
ok $m->wait_log(qr/reject: MAIL from .*452 4\.3\.1 Insufficient system storage/, $from),
	'... and logs each refusal';
ok !$m->wait_log(qr/No space left|ENOSPC/i, $from, 0), '... and nothing met ENOSPC';

# ---- just above it: SIZE= decides; then DATA below it ----
$from = length $m->log_text;
set_free($RESERVE + $MB);
like wait_mail(qr/\A250 /), qr/\A250 2\.1\.0 /, 'just above the reserve: MAIL gets 250 again';
ok $m->wait_log(qr/above queue_minfree \(16 MB\) again: accepting mail/, $from),
	'... and the log says so';
{
	my $s = $m->raw;
	$m->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example',
		   size => $LIMIT) . <<'END');
	# 1.5 MB would cross the reserve 1 MB away; the limit (2 MB) allows it
	> MAIL FROM:<a@b.test> SIZE=1500000
	< 452 4.3.1 Insufficient system storage
	> MAIL FROM:<a@b.test>
	< 250 2.1.0 Ok
	> RSET
	< 250 2.0.0 Ok
	> MAIL FROM:<a@b.test> SIZE=100000
	< 250 2.1.0 Ok
	> RCPT TO:<u@campus.test>
	< 250 2.1.5 Ok
END
	# The disk fills while the transaction waits; DATA checks again.
	set_free($RESERVE - $MB);
	like wait_mail(qr/\A452 /), $insufficient, 'the disk fills meanwhile (a new MAIL gets 452)';
	$m->dialog($s, <<'END');
	> DATA
	< 452 4.3.1 Insufficient system storage
	> RSET
	< 250 2.0.0 Ok
	> QUIT
	< 221 2.0.0 Bye
END
	close $s;
}
check_queue('at the reserve');

# ---- a burst within one measuring interval stops near the reserve ----
set_free($RESERVE + $MB);
wait_mail(qr/\A250 /);
{
	my $smtp = $m->smtp;
	my ($acked, $refusal) = (0, '');
	for my $i (1 .. 10) {
		my ($qid, $r) = queue_one($smtp, "burst-$i", 600_000);
		if (!$qid) {
			$refusal = $r;
			last;
		}
		$acked++;
	}
	$smtp->quit;
	note "$acked burst messages of 600 KB got 250 with 1 MB above the reserve";
	ok $acked >= 1 && $acked <= 3, "a burst of 600 KB messages 1 MB above the reserve: "
		. "1 to 3 accepted (got $acked), not all 10";
	like $refusal, $insufficient, '... then 452 4.3.1 at MAIL';
	ok avail() > $RESERVE - 3 * $MB, '... and the disk is not far below the reserve'
		or diag avail() . " bytes free";
}
check_queue('after the burst');

# ---- delivery drains the queue with the disk below the reserve ----
set_free($RESERVE - $MB);
like wait_mail(qr/\A452 /), $insufficient, 'below the reserve again';
$from = length $m->log_text;
$sink->set(rcpt_default => '250 2.1.5 Ok');
ok MtadTest::wait_for(60, sub { $m->queue_count == 0 }),
	'delivery drains the queue while the disk is below the reserve'
	or diag "still queued: " . $m->queue_count;
my %arrived = map { md5_hex(unreceived($_->{data})) => 1 } $sink->messages;
my @lost = grep { !$arrived{$sent{$_}} } sort keys %sent;
is scalar(@lost), 0, '... and every message arrived at the sink intact'
	or diag "not arrived (or damaged): @lost";
ok !$m->wait_log(qr/No space left|ENOSPC|queue: .*(?:failed|error)/i, $from, 0),
	'... with no storage error in the log';
%sent = ();
check_queue('drained');

# ---- the disk full to its last block: delivery goes on, but never in a loop ----
# Another program (not mtad) takes the last free block: now even the
# delete of a delivered message may not be logged. The message is then
# still due; during the issue 11 work it once went out again at once, in
# a tight loop (about 5 times a second each, duplicates at the next hop;
# this phase did not reproduce that loop on the code before the fix, so
# it is a bound, not a reproduction). mtad waits retry_min (1 s here)
# before it tries such a message again; with room, everything arrives.
$sink->set(rcpt_default => '450 4.2.0 try later');
set_free($RESERVE + 8 * $MB);
like wait_mail(qr/\A250 /), qr/\A250 /, 'room for a few more messages';
{
	my $smtp = $m->smtp;
	for my $i (1 .. 5) {
		my ($qid, $r) = queue_one($smtp, "zero-$i", 20000);
		ok $qid, "message zero-$i queued" or diag $r;
	}
	$smtp->quit;
}
set_free(0);
$sink->set(rcpt_default => '250 2.1.5 Ok');
sleep 8;
my %times;
$times{$_}++ for map { $_->{data} =~ /^Subject: (zero-\d)\r?$/m ? $1 : () } $sink->messages;
my $most = max(0, values %times);
note 'outcomes that could not be recorded meanwhile: '
	. scalar(() = $m->log_text =~ /cannot record the delivery outcome/g);
ok $most <= 12, "with no block left, a message goes out at most about once a second "
	. "($most times in 8 s)" or diag explain \%times;
set_free($RESERVE + 8 * $MB);
ok MtadTest::wait_for(60, sub { $m->queue_count == 0 }), 'with room again the queue drains'
	or diag 'still queued: ' . $m->queue_count;
my %got_zero = map { $_->{data} =~ /^Subject: (zero-\d)\r?$/m ? ($1 => 1) : () } $sink->messages;
my @never = grep { !$got_zero{$_} } map { "zero-$_" } 1 .. 5;
is scalar(@never), 0, '... and each of them arrived' or diag "@never";
%sent = ();

# ---- room again ----
unlink $filler or die "unlink $filler: $!";
like wait_mail(qr/\A250 /), qr/\A250 2\.1\.0 /, 'the filler removed: MAIL gets 250';
{
	my $smtp = $m->smtp;
	my ($qid, $r) = queue_one($smtp, 'room-again', 2000);
	ok $qid, '... and a message is queued' or diag $r;
	$smtp->quit;
}
is $m->stop, 0, 'mtad stops cleanly';
$sink->stop;

done_testing;
