# 68-rcpt-verify.t - issue 16, no backscatter: RCPT for a local domain
# checks that the recipient exists, so mail for a made-up name is
# refused at RCPT (550 5.1.1, logged as Postfix does) instead of being
# queued and bounced to a forged sender.
#   local_recipient_maps: known users and aliases pass, others 550;
#     SIGHUP reads the map again.
#   recipient_verify = yes: an RCPT probe to the domain's route (a
#     t/lib/Sink.pm peer): its 250 and 550 become ours, a next hop that
#     is down gives 450 4.1.1; answers are cached (a second RCPT makes
#     no second connection) and the cache keeps at most
#     recipient_verify_cache_size answers (the oldest goes). One loop:
#     each event loop has its own cache, and connections go round robin.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use MtadTest;
use Sink;

my $build = $ENV{MTAD_BUILD} // "$FindBin::Bin/../build";
my $dir = tempdir('rcptverify-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub write_file {
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh $text;
	close $fh or die "$path: $!";
}

my $UNKNOWN = qr/\A550 5\.1\.1 <(\S+)>: Recipient address rejected: User unknown\z/;

# rcpt(M, ADDR) - the reply to RCPT TO:<ADDR> in a fresh transaction.
sub rcpt {
	my ($m, $addr) = @_;
	my $smtp = $m->smtp;
	$smtp->mail('someone@example.org');
	$smtp->to($addr);
	my $r = $smtp->code . ' ' . join(' ', map { s/\s+\z//r } $smtp->message);
	$smtp->quit;
	return $r;
}

# ---- local_recipient_maps and aliases ----
my $map = "$dir/recipients";
my $aliases = "$dir/aliases";
write_file($map, "# who has a mailbox\nalice\ncarol\@campus.test  OK\n");
write_file($aliases, "staff: alice, carol\n");
my $m = MtadTest->new(start => 0, alias_maps => $aliases,
		      extra => "local_recipient_maps = $map\n");
my ($rc, $out, $err) = MtadTest::run("$build/newaliases", '-C', $m->conf_path);
is $rc, 0, 'newaliases' or diag $err;
$m->start;

my $off = length $m->log_text;
like rcpt($m, 'nosuchuser-xyz@campus.test'), $UNKNOWN, 'an unknown user: 550 5.1.1 at RCPT';
my $line = $m->wait_log(qr/reject: RCPT from .*nosuchuser-xyz/, $off);
like $line // '', qr/NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 550 5\.1\.1 <nosuchuser-xyz\@campus\.test>: Recipient address rejected: User unknown;.* from=<someone\@example\.org>.* helo=<client\.example>/,
	'... logged in Postfix\'s shape';
like rcpt($m, 'alice@campus.test'), qr/\A250 /, 'a local part in the map: accepted';
like rcpt($m, 'Carol@Campus.Test'), qr/\A250 /, 'a full address in the map, any case';
like rcpt($m, 'staff@campus.test'), qr/\A250 /, 'an alias name: accepted';
like rcpt($m, 'postmaster@campus.test'), qr/\A250 /, 'postmaster always';
like rcpt($m, 'bob@campus.test'), $UNKNOWN, 'bob is not there yet';
is $m->queue_count, 0, 'nothing queued';

write_file($map, "alice\nbob\n");
$off = length $m->log_text;
ok kill('HUP', $m->pid), 'SIGHUP';
ok defined $m->wait_log(qr/reload: configuration/, $off), '... reloaded';
like rcpt($m, 'bob@campus.test'), qr/\A250 /, 'after SIGHUP the new map knows bob';
like rcpt($m, 'carol@campus.test'), $UNKNOWN, '... and carol is gone';
$m->stop;

# ---- recipient_verify: probes to the next hop ----
my $sink = Sink->new(rcpt => { 'gone@campus.test' => '550 5.1.1 no such user here' });
my $port = $sink->port;
my $down = MtadTest::free_port();
my $v = MtadTest->new(alias_maps => '', local_domains => 'campus.test down.test',
		      extra => "recipient_verify = yes\nloops = 1\n"
			     . "recipient_verify_cache_size = 5\n"
			     . "route = campus.test [127.0.0.1]:$port\n"
			     . "route = down.test [127.0.0.1]:$down\n");

like rcpt($v, 'known@campus.test'), qr/\A250 /, 'the next hop takes it: 250';
is $sink->connections, 1, '... after one probe';
like rcpt($v, 'known@campus.test'), qr/\A250 /, 'again: 250';
is $sink->connections, 1, '... from the cache, no second probe';
is scalar($sink->messages), 0, 'a probe sends no message';
like rcpt($v, 'gone@campus.test'), $UNKNOWN, 'the next hop says 550: 550 5.1.1 at RCPT';
like rcpt($v, 'gone@campus.test'), $UNKNOWN, '... cached too';
is $sink->connections, 2, '... one probe for both';
like rcpt($v, 'someone@down.test'),
	qr/\A450 4\.1\.1 <someone\@down\.test>: Recipient address rejected: unverified address: /,
	'the next hop is down: 450 4.1.1';
like rcpt($v, 'ext@example.org'), qr/\A554 /, 'a foreign domain is relay control\'s business';

# The cache holds 5 answers: 10 new addresses push known@ out.
my $before = $sink->connections;
like rcpt($v, "user$_\@campus.test"), qr/\A250 /, "user$_ verified" for 1 .. 10;
is $sink->connections, $before + 10, 'ten new addresses, ten probes';
like rcpt($v, 'user10@campus.test'), qr/\A250 /, 'the newest is still cached';
is $sink->connections, $before + 10, '... no probe';
like rcpt($v, 'known@campus.test'), qr/\A250 /, 'the oldest was evicted';
is $sink->connections, $before + 11, '... and is probed again: the cache stays bounded';
is $v->queue_count, 0, 'nothing queued';
$v->stop;
$sink->stop;

done_testing;
