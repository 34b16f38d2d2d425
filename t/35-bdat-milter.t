# 35-bdat-milter.t - a message that comes in BDAT chunks goes through the
# same end of data as DATA's final dot: the milters see its header and
# every body byte, their changes land, their reject at the end is the
# reply to BDAT LAST, and commands pipelined behind a chunk that waits
# for them wait too. The scripted milter of t/37 (t/lib/testmilter.py,
# Debian's python3-milter) on a temporary Unix socket; what is queued
# goes on to a t/lib/Sink.pm peer, byte for byte.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use MtadTest;
use Sink;

my $PY = '/usr/bin/python3';
plan skip_all => 'python3-milter (pymilter) is not installed'
	unless system("$PY -c 'import Milter' 2>/dev/null") == 0;

my $dir = tempdir('mtad-bdat-milter-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});
my @pids;
END { local $?; for my $pid (@pids) { kill 'TERM', $pid; waitpid $pid, 0 } }

my $pid = fork // die "fork: $!";
if ($pid == 0) {
	open STDIN, '<', '/dev/null';
	open STDOUT, '>>', "$dir/filters.log";
	open STDERR, '>&', \*STDOUT;
	exec $PY, "$FindBin::Bin/lib/testmilter.py", "unix:$dir/test.sock" or POSIX::_exit(127);
}
push @pids, $pid;
ok MtadTest::wait_for(15, sub { -S "$dir/test.sock" }), 'the scripted milter listens'
	or BAIL_OUT('no milter: ' . MtadTest::slurp("$dir/filters.log"));

my $sink = Sink->new;
my $sp = $sink->port;
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      extra => "route = campus.test [127.0.0.1]:$sp\n"
			. "milter = test unix:$dir/test.sock command_timeout=10 content_timeout=5\n");
my $QID = qr/[0-9A-Z]{14}/;

# bdat(SOCK, CHUNKS...) - the chunks as BDAT commands, the last with LAST, in one write.
sub bdat {
	my ($s, @chunks) = @_;
	my $out = '';
	for my $i (0 .. $#chunks) {
		$out .= 'BDAT ' . length($chunks[$i]) . ($i == $#chunks ? ' LAST' : '') . "\r\n$chunks[$i]";
	}
	$m->send_bytes($s, $out);
}

my $ENV = "MAIL FROM:<a\@sender.test>\r\nRCPT TO:<u\@campus.test>\r\n";

# ---- header changes on a message in three chunks ----
{
	my $s = $m->raw;
	$m->send_recv($s, "EHLO client.example\r\n");
	my $body = "line one\r\n.dot line\r\n" . ('z' x 70 . "\r\n") x 1000;
	my $msg = "From: <a\@sender.test>\r\nTo: <u\@campus.test>\r\nSubject: milter-headers\r\n"
		. "X-Remove: yes\r\n\r\n" . $body;
	$m->send_bytes($s, $ENV);
	my @r = map { $m->read_reply($s) // '' } 1 .. 2;
	bdat($s, substr($msg, 0, 40), substr($msg, 40, 30000), substr($msg, 30040));
	push @r, map { $m->read_reply($s) // '' } 1 .. 3;
	is $r[2], "250 2.0.0 40 octets received\r\n", 'chunk 1 acknowledged';
	is $r[3], "250 2.0.0 30000 octets received\r\n", 'chunk 2 acknowledged';
	like $r[4], qr/\A250 2\.0\.0 Ok: queued as $QID\r\n\z/, 'BDAT LAST: queued after the milter';
	my @got;
	MtadTest::wait_for(30, sub { @got = grep { $_->{data} =~ /^X-Test-Milter:/m } $sink->messages });
	is scalar(@got), 1, 'the message arrives with the milter\'s header';
	my ($h, $b) = Sink::header_block($got[0] ? $got[0]{data} : '');
	like $h->{'x-milter-saw'} // '', qr/\AReceived,From,To,Subject,X-Remove body=(\d+)\z/,
		'the milter saw Received: and every field, then the body';
	my ($n) = ($h->{'x-milter-saw'} // '') =~ /body=(\d+)/;
	is $n, length($body), 'the milter saw every body byte';
	is $h->{subject}, 'changed by milter', 'its Subject change landed';
	ok !exists $h->{'x-remove'}, 'its delete landed';
	is $b, $body =~ s/\r\n/\n/gr, 'the body is intact';
	$m->send_bytes($s, "QUIT\r\n");
	ok $m->wait_log(qr/disconnect from .* ehlo=1 mail=1 rcpt=1 bdat=3 quit=1 commands=7\/7$/),
		'the first BDAT, which waited for the milters, counts as a bdat';
}

# ---- a reject at the end: the reply to BDAT LAST; the stream stays in step ----
{
	my $s = $m->raw;
	$m->send_recv($s, "EHLO client.example\r\n");
	my $msg = "From: <a\@sender.test>\r\nSubject: milter-reject\r\n\r\nspam\r\n";
	$m->send_bytes($s, $ENV);
	bdat($s, $msg);
	$m->send_bytes($s, "NOOP\r\n");
	my @r = map { $m->read_reply($s) // '' } 1 .. 4;
	is $r[2], "550 5.7.1 Message refused by the test milter\r\n", 'a reject at EOM is the reply to BDAT LAST';
	like $r[3], qr/\A250 2\.0\.0 /, 'the next command is read as a command';
	ok $m->wait_log(qr/$QID: milter-reject: END-OF-MESSAGE from .*: 550 5\.7\.1 Message refused/),
		'logged as Postfix\'s milter-reject';
	$m->send_bytes($s, "QUIT\r\n");
}

# ---- a recipient refused by the milter, then BDAT: 554, chunk read ----
{
	my $s = $m->raw;
	$m->send_recv($s, "EHLO client.example\r\n");
	$m->send_bytes($s, "MAIL FROM:<a\@sender.test>\r\nRCPT TO:<rcptreject\@campus.test>\r\n"
		. "BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n");
	my @r = map { $m->read_reply($s) // '' } 1 .. 4;
	like $r[1], qr/\A550 5\.7\.1 Recipient refused/, 'the milter refuses the only RCPT';
	is $r[2], "554 5.5.1 Error: no valid recipients\r\n", 'BDAT: 554 5.5.1';
	like $r[3], qr/\A250 2\.0\.0 /, 'the chunk was read, QUIT inside it was not run';
	$m->send_bytes($s, "QUIT\r\n");
}

done_testing;
