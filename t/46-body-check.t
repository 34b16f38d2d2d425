# 46-body-check.t - a body chunk damaged inside the queue is caught by
# the end-to-end check and the message is held, never delivered.
#
# Berkeley DB's page checksums catch damage on the disk; this is the
# other kind: a chunk missing, cut short or changed by a write that the
# database itself accepted (a bug, a stray tool, a reused page). Four
# 200 KB messages (four chunks each) are queued and held; with mtad
# stopped, the test changes body.db through Berkeley DB itself (Perl's
# BerkeleyDB module, a real transaction in the spool's environment):
#   A loses its chunk 1, B's last chunk is cut by 10 bytes, C gets one
#   byte flipped in chunk 2; D is left alone.
# Then mtad starts and they are released. What must hold (issue 11):
#   - D arrives at the next hop byte-exact; A, B and C never arrive, not
#     even in part (the sink keeps only messages whose DATA ended);
#   - A, B and C stay in the queue, held and marked damaged, each with
#     one log line that says so;
#   - mtaq verify names exactly those three and exits 1; mtaq show --body
#     of one fails and says why.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use BerkeleyDB;
use MtadTest;
use Sink;

my $sink = Sink->new;
my $m = MtadTest->new(retry_min => 1, retry_max => 2, relay_networks => '127.0.0.0/8',
		      extra => 'route = x.test [127.0.0.1]:' . $sink->port . "\n");

my (%qid, %sent);
{
	my $smtp = $m->smtp;
	for my $tag (qw(A B C D)) {
		my $body = "Subject: message $tag\nMessage-ID: <$tag\@check.test>\n\n"
			. join('', map { sprintf "%s line %06d %s\n", $tag, $_, 'b' x 60 } 1 .. 2800);
		my $r = $m->send_message($smtp, 'a@b.test', ["u$tag\@x.test"], $body);
		like $r, qr/\A250 /, "message $tag queued" or die 'cannot queue';
		($qid{$tag}) = $r =~ /($MtadTest::QID)/;
		$sent{$tag} = $body;
	}
	$smtp->quit;
}
my ($rc, $out, $err) = $m->mtaq('hold', values %qid);
is $rc, 0, 'all four held' or diag $err;
$m->stop;

# ---- the damage, through Berkeley DB ----
{
	my $env = BerkeleyDB::Env->new(-Home => $m->spool,
		-Flags => DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL)
		or die "open environment: $BerkeleyDB::Error";
	my $txn = $env->txn_begin or die "txn: $BerkeleyDB::Error";
	my $db = BerkeleyDB::Btree->new(-Filename => 'body.db', -Env => $env, -Txn => $txn)
		or die "open body.db: $BerkeleyDB::Error";
	my $key = sub { $qid{ $_[0] } . pack('N', $_[1]) };
	my $v;
	ok $db->db_get($key->('A', 3), $v) == 0, 'A has four chunks';
	ok $db->db_get($key->('A', 4), $v) == DB_NOTFOUND, '... not five';
	ok $db->db_del($key->('A', 1)) == 0, "A's chunk 1 removed";
	ok $db->db_get($key->('B', 3), $v) == 0, "B's last chunk read";
	ok $db->db_put($key->('B', 3), substr($v, 0, length($v) - 10)) == 0, '... and cut by 10 bytes';
	ok $db->db_get($key->('C', 2), $v) == 0, "C's chunk 2 read";
	substr($v, 1000, 1) ^= "\x01";
	ok $db->db_put($key->('C', 2), $v) == 0, '... and one byte of it flipped';
	ok $txn->txn_commit == 0, 'the damage committed';
	undef $db;
	$env->txn_checkpoint(0, 0, 0);
	undef $env;
}

$m->start;
($rc, $out, $err) = $m->mtaq('release', values %qid);
is $rc, 0, 'all four released' or diag $err;

my @got = $sink->wait_messages(1);
my $deadline = time + 30;
my @held;
while (time < $deadline) {
	my ($lrc, $list) = $m->mtaq('list');
	@held = sort grep { my $q = $qid{$_}; $list =~ /^\Q$q\E!/m } qw(A B C);
	last if @held == 3 && $m->log_text =~ /\Q$qid{C}\E: held: the queued body is damaged/;
	sleep 0.2;
}
is_deeply \@held, [qw(A B C)], 'A, B and C are held again';
sleep 2;	# a second round of due scans: nothing more may go out
@got = $sink->messages;
is scalar(@got), 1, 'the next hop got exactly one message';
# what arrived: the Received: header mtad added at arrival, then D as sent
my $want = $sent{D} =~ s/\n/\r\n/gr;
ok @got && $got[0]{data} =~ /\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*\Q$want\E\z/,
	'... D, byte-exact';
my $log = $m->log_text;
for my $tag (qw(A B C)) {
	my @lines = $log =~ /^.*\Q$qid{$tag}\E: held: the queued body is damaged.*$/mg;
	is scalar(@lines), 1, "one log line says $tag is damaged and held" or diag $log;
}
like $log, qr/\Q$qid{B}\E: held: .*envelope says/, "B's line says the length is wrong";
like $log, qr/\Q$qid{C}\E: held: .*SHA-256/, "C's line says the digest is wrong";

($rc, $out) = $m->mtaq('verify');
is $rc, 1, 'mtaq verify exits 1';
my @named = sort map { my $q = $_; grep { $qid{$_} eq $q } keys %qid } $out =~ /^($MtadTest::QID): damaged: /mg;
is_deeply \@named, [qw(A B C)], '... naming A, B and C' or diag $out;
like $out, qr/^3 messages verified, 3 damaged$/m, '... of the three left';
($rc, $out, $err) = $m->mtaq('show', $qid{C});
like $out, qr/^status: held \(damaged body/m, 'mtaq show says C is damaged';
($rc, $out, $err) = $m->mtaq('show', '--body', $qid{C});
isnt $rc, 0, 'mtaq show --body of C fails';
like $err, qr/SHA-256/, '... saying why';
$m->stop;
done_testing;
