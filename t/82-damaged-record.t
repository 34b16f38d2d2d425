# 82-damaged-record.t - a byte of one message's envelope record flips
# on disk while mtad is stopped.
#
# The byte is changed through Berkeley DB, so the page checksums hold and
# the flipped byte reaches the record decoder (queue/record.c), whose CRC
# catches it. (A byte flipped in the file on disk is caught by the page
# checksums before any decoder sees it: the end of this test.) What must
# hold: mtaq list/count/show report that message as damaged and go on
# with the others; mtad starts, delivers the others, keeps the damaged
# one and says so in its log (not once a second); and an operator can
# delete it with mtaq, after which deliveries go on.
#
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use BerkeleyDB;
use MtadTest;
use Sink;

my $sink = Sink->new(rcpt_default => '450 4.2.0 not yet');
my $m = MtadTest->new(retry_min => 1, retry_max => 2, relay_networks => '127.0.0.0/8',
		      extra => 'route = x.test [127.0.0.1]:' . $sink->port . "\n");

my (@qids, %sender_of);
my $smtp = $m->smtp;
for my $i (1 .. 5) {
	my $from = "sender$i-" . ('s' x 20) . '@b.test';
	my $r = $m->send_message($smtp, $from, ["u$i\@x.test"],
		"Subject: message $i\nMessage-ID: <m$i\@damage.test>\n\nbody of message $i\n");
	like $r, qr/\A250 2\.0\.0 Ok: queued as /, "message $i queued" or die 'cannot queue';
	my ($q) = $r =~ /($MtadTest::QID)/;
	push @qids, $q;
	$sender_of{$q} = $from;
}
$smtp->quit;
my $victim = $qids[2];
# deferred at least once (so the record was rewritten), then stopped
ok $m->delivery_log($victim, 'u3@x.test', 'deferred'), 'the messages were tried and deferred';
$m->stop;

# The byte is flipped through Berkeley DB itself (Perl's BerkeleyDB
# module, a transaction in the spool's environment): the page checksums
# (DB_CHKSUM) are then right, and only the record's own CRC can tell.
# envelope.db is opened without its schedule index, as a stray tool
# would: the index keeps the entry made from the record as it was.
{
	my $env = BerkeleyDB::Env->new(-Home => $m->spool,
		-Flags => DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL)
		or die "open environment: $BerkeleyDB::Error";
	my $txn = $env->txn_begin or die "txn: $BerkeleyDB::Error";
	my $db = BerkeleyDB::Btree->new(-Filename => 'envelope.db', -Env => $env, -Txn => $txn)
		or die "open envelope.db: $BerkeleyDB::Error";
	my $rec;
	ok $db->db_get($victim, $rec) == 0, "the victim's record is in envelope.db";
	my $pos = index($rec, $sender_of{$victim});
	ok $pos >= 0, '... with its sender';
	substr($rec, $pos + 3, 1) ^= "\x01";	# 'd' of "sender" -> 'e'
	ok $db->db_put($victim, $rec) == 0, '... which gets one byte flipped';
	ok $txn->txn_commit == 0, '... committed';
	undef $db;
	$env->txn_checkpoint(0, 0, 0);
	undef $env;
}

# ---- mtaq, mtad stopped ----
my ($rc, $out, $err) = $m->mtaq('list');
isnt $rc, 0, 'mtaq list exits non-zero: there is a damaged record';
like $err, qr/^mtaq: damaged record \Q$victim\E: .*(?:checksum|CRC|crc)/m,
	'... and names it on stderr, with the reason' or diag $err;
my %listed = map { $_ => 1 } $out =~ /^($MtadTest::QID)\b/mg;
is_deeply [sort keys %listed], [sort grep { $_ ne $victim } @qids], '... after listing the 4 others';
($rc, $out, $err) = $m->mtaq('count');
like $out, qr/^4$/m, 'mtaq count counts the 4 good ones';
like $err, qr/damaged record \Q$victim\E/, '... and reports the damaged one';
($rc, $out, $err) = $m->mtaq('show', $victim);
isnt $rc, 0, 'mtaq show of the damaged one fails';
like $err, qr/damaged record \Q$victim\E/, '... saying it is damaged';
($rc, $out) = $m->mtaq('show', '--body', $qids[0]);
like $out, qr/body of message 1\r?\n\z/, 'mtaq show --body of another works';

# ---- mtad: delivers the others, keeps and logs the damaged one ----
$sink->set(rcpt_default => '250 2.1.5 Ok');
my $from = length $m->log_text;
$m->start;
my @got = $sink->wait_messages(4);
is scalar(@got), 4, 'mtad starts and delivers the 4 good messages';
# mtaq list with a damaged record exits 1: read what it lists anyway
sub listed { return (($m->mtaq('list'))[1] =~ /^($MtadTest::QID)\b/mg) }
ok MtadTest::wait_for(30, sub { my @q = listed(); !@q }),
	'... which leave the queue (only the damaged one is left, not listed)';
my $line = $m->wait_log(qr/\b\Q$victim\E\b.*damaged/, $from, 15);
ok $line, 'mtad logs the damaged record' or diag substr($m->log_text, $from);
note $line // '';
sleep 4;	# the schedule is scanned every second
my $times = () = substr($m->log_text, $from) =~ /\b\Q$victim\E\b[^\n]*damaged/g;
ok $times <= 2, "... not every second ($times times in ~5 s)";
($rc, $out, $err) = $m->mtaq('list');
like $err, qr/damaged record \Q$victim\E/, 'mtaq list still reports it while mtad runs';

# ---- the operator deletes it; the queue keeps working ----
($rc, $out, $err) = $m->mtaq('delete', $victim);
is $rc, 0, 'mtaq delete removes the damaged message' or diag $err;
($rc, $out, $err) = $m->mtaq('list');
is $rc, 0, 'mtaq list is clean again' or diag $err;
like $out, qr/Mail queue is empty/, '... and empty';
$smtp = $m->smtp;
my $r = $m->send_message($smtp, 'a@b.test', ['after@x.test'], "Subject: after\n\nafter the damage\n");
like $r, qr/\A250 /, 'a new message is queued';
$smtp->quit;
ok scalar($sink->wait_messages(5)) == 5, '... and delivered: the schedule is not broken';
$from = length $m->log_text;
sleep 2;
unlike substr($m->log_text, $from), qr/schedule\.db|SECONDARY/i, 'no schedule errors in the log';
$m->stop;
$m->start;
is $m->queue_count, 0, 'after a restart the queue is empty and clean';

# ---- a byte flipped in the file on disk: the page checksum ----
$sink->set(rcpt_default => '450 4.2.0 not yet');	# it stays queued
$smtp = $m->smtp;
my $victim2_from = 'disk-' . ('d' x 30) . '@b.test';
$r = $m->send_message($smtp, $victim2_from, ['held@x.test'], "Subject: disk\n\nbody\n");
like $r, qr/\A250 /, 'one more message queued';
$smtp->quit;
$m->stop;
unlink glob($m->spool . '/__db.0*');	# no cached pages: read from the file
my $file = $m->spool . '/envelope.db';
my $bytes = MtadTest::slurp($file);
my $at = index($bytes, $victim2_from);
ok $at > 0, 'its record is in envelope.db on disk';
substr($bytes, $at + 5, 1) ^= "\x01";
{
	open my $fh, '+<:raw', $file or die "open $file: $!";
	print $fh $bytes;
	close $fh or die "close $file: $!";
}
($rc, $out, $err) = $m->mtaq('list');
isnt $rc, 0, 'mtaq list fails on the damaged page';
like $err, qr/checksum error/, '... saying a page checksum failed';
unlike $out, qr/\Q$victim2_from\E|disk-/, '... and prints nothing read from that page';

done_testing;
