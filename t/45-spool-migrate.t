# 45-spool-migrate.t - a spool made by mtad 0.1 is refused at start, and
# `mtaq migrate` moves it to the current format, byte for byte.
#
# mtad 0.1 kept bodies in 64 KB pages (torn by a crash between their
# 4 KB block writes) without page checksums or a body digest (issue 11).
# t/data/spool-0.1/ holds db5.3_dump output of a spool that mtad 0.1
# (commit 4670282) wrote: three messages to two recipients each, one of
# them 180 KB (several body chunks). db5.3_load puts them back as they
# were, 64 KB body pages and all. What must hold:
#   - mtad refuses to start on it, with one line naming `mtaq migrate`;
#     mtaq refuses too, so nothing writes a new-format page into it;
#   - mtaq migrate copies every message; afterwards the databases have
#     4 KB pages and checksums, the FORMAT file exists, mtaq verify finds
#     nothing damaged, and every body reads back as 0.1 stored it;
#   - a second migrate has nothing to do; mtad starts and delivers every
#     message, byte-exact, to the next hop;
#   - a current spool that lost its FORMAT file (restored from
#     db_hotbackup, which copies only databases and logs) is recognised.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $DATA = "$FindBin::Bin/data/spool-0.1";
my $sink = Sink->new;
my $m = MtadTest->new(start => 0, retry_min => 1,
		      extra => 'route = x.test [127.0.0.1]:' . $sink->port . "\n");
my $spool = $m->spool;

for my $db (qw(envelope body stats)) {
	my ($rc, $out, $err) = MtadTest::run('db5.3_load', '-h', $spool, '-f', "$DATA/$db.dump",
					     "$db.db");
	is $rc, 0, "db5.3_load $db.db from the 0.1 dump" or diag $err;
}
unlink glob("$spool/__db.*");

# The bodies as 0.1 stored them: chunks of each queue id in key order.
my %body;
{
	open my $fh, '<', "$DATA/body.dump" or die "$DATA/body.dump: $!";
	my $key;
	while (my $line = <$fh>) {
		next unless $line =~ /^ ([0-9a-f]*)$/;
		if (!defined $key) { $key = pack 'H*', $1; next }
		$body{substr $key, 0, 14} .= pack 'H*', $1;
		undef $key;
	}
}
my @qids = sort keys %body;
is scalar(@qids), 3, 'the fixture holds three bodies';

sub pagesize {
	my ($db) = @_;
	my ($rc, $out) = MtadTest::run('db5.3_stat', '-h', $spool, '-d', $db);
	return $out =~ /^(\d+)\s+Underlying database page size/m ? $1 : 'unknown';
}
is pagesize('body.db'), 65536, 'body.db has the 64 KB pages of 0.1';

ok !$m->try_start, 'mtad refuses to start on the 0.1 spool';
like $m->log_text, qr/made by mtad 0\.1 .*run `mtaq migrate`/, '... and says to run mtaq migrate';
my ($rc, $out, $err) = $m->mtaq('list');
isnt $rc, 0, 'mtaq list refuses it too';
like $err, qr/mtaq migrate/, '... naming the same command';

($rc, $out, $err) = $m->mtaq('migrate');
is $rc, 0, 'mtaq migrate succeeds' or diag $err;
like $out, qr/migrated 3 messages \(0 damaged, held\)/, '... and says what it moved';
ok -f "$spool/FORMAT", 'the spool has its FORMAT file';
is pagesize($_), 4096, "$_ has 4 KB pages now" for qw(envelope.db body.db stats.db);
{
	my ($drc, $dump) = MtadTest::run('db5.3_dump', '-h', $spool, 'body.db');
	like $dump, qr/^chksum=1$/m, 'body.db pages carry checksums';
}
($rc, $out, $err) = $m->mtaq('verify');
is $rc, 0, 'mtaq verify finds nothing damaged' or diag "$out$err";
like $out, qr/^3 messages verified, 0 damaged$/m, '... in all three';
for my $q (@qids) {
	my ($src, $got) = $m->mtaq('show', '--body', $q);
	is $src, 0, "mtaq show --body $q works";
	ok $got eq $body{$q}, "... and gives the bytes 0.1 stored (" . length($body{$q}) . ')';
}
($rc, $out) = $m->mtaq('migrate');
is $rc, 0, 'a second migrate succeeds';
like $out, qr/current format already: nothing to do/, '... with nothing to do';

$m->start;
my @got = $sink->wait_messages(3);
is scalar(@got), 3, 'mtad delivers the three migrated messages';
my %seen;
for my $msg (@got) {
	my ($q) = grep { $msg->{data} eq $body{$_} } @qids;
	$seen{$q} += @{ $msg->{to} } if $q;
}
is_deeply [map { $seen{$_} // 0 } @qids], [2, 2, 2],
	'each arrived byte-exact, to both of its recipients' or diag explain \%seen;
is $m->queue_count, 0, 'the queue is empty afterwards';
$m->stop;

# A restore from db_hotbackup brings databases and logs, not the FORMAT
# file (INSTALL, section 14): 4 KB checksummed pages say it is current.
unlink "$spool/FORMAT" or die "unlink FORMAT: $!";
$m->start;
ok -f "$spool/FORMAT", 'a current spool without FORMAT (a restored backup) starts, and gets it back';
$m->stop;
done_testing;
