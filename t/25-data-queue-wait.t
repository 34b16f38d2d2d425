# 25-data-queue-wait.t - a session that waited for the queue while its
# message came in reads on after the 250.
#
# Body bytes go to the queue's writer in 60 KB chunks, at most two in
# flight per message; when a third would go, queue_incoming_write says
# "wait" and the session stops reading until the writer has taken one.
# When the final dot arrived in the same read as the chunk that filled
# that window, the message was committed and answered 250 while the
# session still waited for a resume the queue no longer owed (a message
# that is committed has no chunks to wait for): the next command was
# never read, and the client hung until its timeout (t/86 met it under
# load, Net::SMTP's 421 Timeout on message 4). Each message here is
# about 120 KB written in one go with its dot, on one connection, with
# the chunk boundary at a different place each time; mtad before the fix
# stopped reading within the first few dozen messages.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $m = MtadTest->new;

# say_recv($sock, LINE) - one command and its reply, 20 s at most (a
# session that stopped reading never answers; a test must not hang).
sub say_recv {
	my ($s, $line) = @_;
	$m->send_bytes($s, $line);
	return $m->read_reply($s, 20) // 'nothing within 20 s';
}
my ($s, $g) = $m->raw;
like $g, qr/\A220 /, 'a client connects';
like $m->send_recv($s, "EHLO client.example\r\n"), qr/\A250[ -]/, 'EHLO';

my $n = 150;
my ($ok, @qids) = (0);
for my $i (1 .. $n) {
	# 120 KB and some: two full chunks, the second one close to the dot
	my $lines = int((120 * 1024 + ($i % 64) * 97 - 3000 * ($i % 2)) / 80);
	my $body = ("x" x 78 . "\r\n") x $lines;
	my $mail = say_recv($s, "MAIL FROM:<a\@b.test>\r\n");
	if ($mail !~ /\A250 /) {
		fail("message $i: MAIL is answered after the last 250 (got: $mail)");
		last;
	}
	my $rcpt = say_recv($s, "RCPT TO:<u\@campus.test>\r\n");
	my $data = say_recv($s, "DATA\r\n");
	unless ($rcpt =~ /\A250 / && $data =~ /\A354 /) {
		fail("message $i: RCPT and DATA ($rcpt / $data)");
		last;
	}
	$m->send_bytes($s, $body . ".\r\n");
	my $end = $m->read_reply($s, 20) // 'nothing';
	unless ($end =~ /\A250 2\.0\.0 Ok: queued as ($MtadTest::QID)/) {
		fail("message $i: 250 at the end of DATA (got: $end)");
		last;
	}
	push @qids, $1;
	$ok++;
}
is $ok, $n, "all $n messages of ~120 KB, each written with its dot in one go, got 250 on one connection";
like say_recv($s, "QUIT\r\n"), qr/\A221 /, 'and the session still answers QUIT';
close $s;
is $m->queue_count, $n, "the queue holds the $n messages (campus.test has no route: they stay)";
done_testing();
