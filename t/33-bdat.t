# 33-bdat.t - CHUNKING (RFC 3030) in the server: BDAT in every pattern a
# client may use (one chunk, many, pipelined in one write, BDAT 0 LAST,
# chunks and writes split inside a CRLF), the chunk bytes stored exactly
# as sent (bare CR and LF, dot lines, command-like lines: data, never
# commands), and every refusal reading its chunk so the next command is
# found where it is: BDAT without MAIL, after a refused RCPT, over the
# size limit, DATA after BDAT, a bad size (501, closed), a timeout in the
# middle of a chunk.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $QID = qr/[0-9A-Z]{14}/;
my $m = MtadTest->new(message_size_limit => 1000);
my $EHLO = "> EHLO client.example\n" . MtadTest::ehlo_script('client.example', size => 1000);

# body_of(QID) - the message as stored, bytes exact.
sub body_of {
	my ($qid) = @_;
	my ($rc, $out) = $m->mtaq('show', '--body', $qid // 'NONE');
	return $rc == 0 ? $out : undef;
}

# stored_is(QID, BYTES, NAME) - the stored message is our Received:
# header and then exactly BYTES.
sub stored_is {
	my ($qid, $bytes, $name) = @_;
	my $body = body_of($qid) // '';
	(my $after = $body) =~ s/\AReceived: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*//;
	ok $after ne $body, "$name: our Received: header first";
	is $after, $bytes, "$name: the chunks stored byte for byte";
}

# session - a connection past EHLO.
sub session {
	my $s = $m->raw;
	$m->dialog($s, $EHLO);
	return $s;
}

# replies(SOCK, N) - the next N replies.
sub replies {
	my ($s, $n) = @_;
	my @r;
	for (1 .. $n) {
		my $r = $m->read_reply($s);
		last unless defined $r;
		push @r, $r;
	}
	return @r;
}

my $ENV = "MAIL FROM:<a\@b.test>\r\nRCPT TO:<u\@campus.test>\r\n";
my $count = 0;

# ---- one chunk ----
{
	my $s = session();
	my $msg = "Subject: one chunk\r\n\r\nhello\r\n";
	$m->send_bytes($s, $ENV);
	my @r = replies($s, 2);
	like $r[0] // '', qr/\A250 2\.1\.0 /, 'one chunk: MAIL';
	like $r[1] // '', qr/\A250 2\.1\.5 /, 'one chunk: RCPT';
	$m->send_bytes($s, 'BDAT ' . length($msg) . " LAST\r\n" . $msg);
	my $r = $m->read_reply($s) // '';
	like $r, qr/\A250 2\.0\.0 Ok: queued as ($QID)\r\n\z/, 'one chunk: queued after BDAT LAST';
	my ($qid) = $r =~ /queued as ($QID)/;
	stored_is($qid, $msg, 'one chunk');
	like $m->received_of($qid // 'NONE'), qr/ with ESMTP id $QID/, 'one chunk: Received: says ESMTP';
	$count++;
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
}

# ---- many chunks, one reply each, a CRLF split between two chunks ----
{
	my $s = session();
	my @chunks = ("Subject: many\r", "\n\r\nline one\r\nline", " two\r\n", "end\r\n");
	$m->send_bytes($s, $ENV);
	replies($s, 2);
	my $qid;
	for my $i (0 .. $#chunks) {
		my $last = $i == $#chunks ? ' LAST' : '';
		$m->send_bytes($s, 'BDAT ' . length($chunks[$i]) . "$last\r\n" . $chunks[$i]);
		my $r = $m->read_reply($s) // '';
		if ($last) {
			like $r, qr/\A250 2\.0\.0 Ok: queued as ($QID)\r\n\z/, 'many chunks: queued at LAST';
			($qid) = $r =~ /queued as ($QID)/;
		} else {
			is $r, '250 2.0.0 ' . length($chunks[$i]) . " octets received\r\n",
				"many chunks: chunk $i acknowledged with its size";
		}
	}
	stored_is($qid, join('', @chunks), 'many chunks');
	$count++;
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
}

# ---- pipelined: the whole transaction and two messages in one write ----
{
	my $s = session();
	my ($a1, $a2, $b1) = ("Subject: p1\r\n\r\n", "first\r\n", "Subject: p2\r\n\r\nsecond\r\n");
	$m->send_bytes($s, $ENV . 'BDAT ' . length($a1) . "\r\n$a1" . 'BDAT ' . length($a2)
		. " LAST\r\n$a2" . $ENV . 'BDAT ' . length($b1) . " LAST\r\n$b1" . "QUIT\r\n");
	my @r = replies($s, 8);
	is scalar(@r), 8, 'pipelined: eight replies' or diag explain \@r;
	like $r[0] // '', qr/\A250 2\.1\.0 /, 'pipelined: MAIL';
	like $r[1] // '', qr/\A250 2\.1\.5 /, 'pipelined: RCPT';
	is $r[2] // '', '250 2.0.0 ' . length($a1) . " octets received\r\n", 'pipelined: first chunk';
	like $r[3] // '', qr/\A250 2\.0\.0 Ok: queued as $QID\r\n\z/, 'pipelined: first message queued';
	like $r[6] // '', qr/\A250 2\.0\.0 Ok: queued as $QID\r\n\z/, 'pipelined: second message queued';
	like $r[7] // '', qr/\A221 /, 'pipelined: QUIT';
	my ($q1) = ($r[3] // '') =~ /($QID)/;
	my ($q2) = ($r[6] // '') =~ /($QID)/;
	stored_is($q1, $a1 . $a2, 'pipelined first');
	stored_is($q2, $b1, 'pipelined second');
	$count += 2;
}

# ---- BDAT 0 LAST: after chunks, and as the only one ----
{
	my $s = session();
	my $c = "Subject: zero\r\n\r\nbody\r\n";
	$m->send_bytes($s, $ENV . 'BDAT ' . length($c) . "\r\n$c" . "BDAT 0 LAST\r\n");
	my @r = replies($s, 4);
	like $r[3] // '', qr/\A250 2\.0\.0 Ok: queued as $QID\r\n\z/, 'BDAT 0 LAST ends the message';
	my ($q) = ($r[3] // '') =~ /($QID)/;
	stored_is($q, $c, 'BDAT 0 LAST');
	$m->send_bytes($s, $ENV . "BDAT 0 LAST\r\n");
	@r = replies($s, 3);
	like $r[2] // '', qr/\A250 2\.0\.0 Ok: queued as $QID\r\n\z/, 'an empty message: BDAT 0 LAST alone';
	($q) = ($r[2] // '') =~ /($QID)/;
	stored_is($q, '', 'empty message');
	# BDAT 0 without LAST: Postfix's 551, the message fails.
	$m->send_bytes($s, $ENV . "BDAT 0\r\nBDAT 2 LAST\r\nhiNOOP\r\n");
	@r = replies($s, 5);
	is $r[2] // '', "551 5.7.1 Null BDAT request\r\n", 'BDAT 0 (not LAST): 551 5.7.1';
	is $r[3] // '', "551 5.0.0 Discarded 2 bytes after earlier error\r\n",
		'the chunks after it are read and dropped';
	like $r[4] // '', qr/\A250 2\.0\.0 /, 'and the stream is in step (NOOP)';
	$count += 2;
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
}

# ---- chunk bytes are data: bare CR/LF, dots, command lines; writes split anywhere ----
{
	my $s = session();
	my $c = "Subject: raw\r\n\r\na\nb\rc\r\n.\r\n..\r\n\n.\n\r.\r"
		. "MAIL FROM:<evil\@x.test>\r\nRCPT TO:<victim\@campus.test>\r\nDATA\r\nx\r\n.\r\n";
	$m->send_bytes($s, $ENV);
	replies($s, 2);
	my $all = 'BDAT ' . length($c) . " LAST\r\n" . $c;
	# One byte at a time around the command line's CRLF and the first CR.
	for my $piece (unpack '(a3)*', $all) {
		$m->send_bytes($s, $piece);
	}
	my @r = replies($s, 1);
	like $r[0] // '', qr/\A250 2\.0\.0 Ok: queued as $QID\r\n\z/, 'raw bytes: one message queued'
		or diag explain \@r;
	my ($q) = ($r[0] // '') =~ /($QID)/;
	stored_is($q, $c, 'raw bytes (bare CR, bare LF, dots, commands)');
	$count++;
	$m->dialog($s, "> NOOP\n< 250 2.0.0 *\n> QUIT\n< 221 2.0.0 *\n");
	is $m->queue_count, $count, 'raw bytes: no second message was smuggled in';
	my (undef, $list) = $m->mtaq('list');
	unlike $list, qr/victim\@/, 'raw bytes: nothing for the smuggled recipient';
}

# ---- BDAT without MAIL, and after a refused RCPT: 503/554, chunk consumed ----
{
	my $s = session();
	my $c = "QUIT\r\nQUIT\r\n";
	$m->send_bytes($s, 'BDAT ' . length($c) . " LAST\r\n$c" . "NOOP\r\n");
	my @r = replies($s, 2);
	is $r[0] // '', "503 5.5.1 Error: need MAIL command\r\n", 'BDAT without MAIL: 503 5.5.1';
	like $r[1] // '', qr/\A250 2\.0\.0 /, 'BDAT without MAIL: the chunk was read, not run (NOOP)';
	$m->send_bytes($s, "MAIL FROM:<a\@b.test>\r\n" . 'BDAT ' . length($c) . " LAST\r\n$c" . "NOOP\r\n");
	@r = replies($s, 3);
	is $r[1] // '', "503 5.5.1 Error: need RCPT command\r\n", 'BDAT without RCPT: 503 5.5.1';
	like $r[2] // '', qr/\A250 2\.0\.0 /, 'BDAT without RCPT: the chunk was read (NOOP)';
	$m->send_bytes($s, "MAIL FROM:<a\@b.test>\r\nRCPT TO:<u\@elsewhere.example>\r\n"
		. 'BDAT ' . length($c) . "\r\n$c" . 'BDAT ' . length($c) . " LAST\r\n$c" . "NOOP\r\n");
	@r = replies($s, 5);
	like $r[1] // '', qr/\A5\d\d 5\.7\.1 /, 'the RCPT is refused (relay)';
	is $r[2] // '', "554 5.5.1 Error: no valid recipients\r\n", 'BDAT after it: 554 5.5.1';
	is $r[3] // '', "551 5.0.0 Discarded 12 bytes after earlier error\r\n",
		'the next chunk is dropped too';
	like $r[4] // '', qr/\A250 2\.0\.0 /, 'in step after both chunks (NOOP)';
	$m->dialog($s, "> RCPT TO:<u\@campus.test>\n< 503 5.5.1 *\n> QUIT\n< 221 2.0.0 *\n");
	is $m->queue_count, $count, 'nothing queued by the refused chunks';
}

# ---- size: a chunk over message_size_limit, and chunks that add up over it ----
{
	my $s = session();
	my $big = 'x' x 998 . "\r\n";
	$m->send_bytes($s, $ENV . 'BDAT 600' . "\r\n" . ('y' x 598) . "\r\n"
		. 'BDAT ' . length($big) . " LAST\r\n$big" . "NOOP\r\n");
	my @r = replies($s, 5);
	is $r[2] // '', "250 2.0.0 600 octets received\r\n", 'size: the first 600 octets taken';
	is $r[3] // '', "552 5.3.4 Chunk exceeds message size limit\r\n",
		'size: 552 5.3.4 when the chunks add up over the limit';
	like $r[4] // '', qr/\A250 2\.0\.0 /, 'size: the chunk was read (NOOP)';
	$big .= 'x';	# 1001 octets: over the limit on its own
	$m->send_bytes($s, $ENV . 'BDAT ' . length($big) . "\r\n$big" . "BDAT 3 LAST\r\nabcNOOP\r\n");
	@r = replies($s, 5);
	is $r[2] // '', "552 5.3.4 Chunk exceeds message size limit\r\n", 'size: one chunk over the limit';
	is $r[3] // '', "551 5.0.0 Discarded 3 bytes after earlier error\r\n", 'size: ... then 551';
	like $r[4] // '', qr/\A250 2\.0\.0 /, 'size: in step (NOOP)';
	# After the LAST that ends the failed message, a new one goes through.
	my $c = "Subject: after\r\n\r\nok\r\n";
	$m->send_bytes($s, $ENV . 'BDAT ' . length($c) . " LAST\r\n$c");
	@r = replies($s, 3);
	like $r[2] // '', qr/\A250 2\.0\.0 Ok: queued as $QID/, 'size: the next message is taken';
	$count++;
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
	is $m->queue_count, $count, 'size: nothing of the refused messages is queued';
}

# ---- DATA after BDAT, RCPT after BDAT, MAIL inside: 503; RSET ends it ----
{
	my $s = session();
	$m->send_bytes($s, $ENV . "BDAT 7\r\nhello\r\nDATA\r\nRCPT TO:<v\@campus.test>\r\n"
		. "MAIL FROM:<a\@b.test>\r\nBDAT 2 LAST\r\nok");
	my @r = replies($s, 7);
	is $r[2] // '', "250 2.0.0 7 octets received\r\n", 'mixed: the chunk';
	is $r[3] // '', "503 5.5.1 Error: DATA after BDAT\r\n", 'DATA after BDAT: 503 5.5.1';
	is $r[4] // '', "503 5.5.1 Error: RCPT after BDAT\r\n", 'RCPT after BDAT: 503 5.5.1';
	is $r[5] // '', "503 5.5.1 Error: nested MAIL command\r\n", 'MAIL after BDAT: 503 5.5.1';
	like $r[6] // '', qr/\A250 2\.0\.0 Ok: queued as $QID/, 'the message still ends with BDAT LAST';
	my ($q) = ($r[6] // '') =~ /($QID)/;
	stored_is($q, "hello\r\nok", 'mixed');
	$count++;
	$m->send_bytes($s, $ENV . "BDAT 5\r\nhelloRSET\r\n" . $ENV . "DATA\r\n");
	@r = replies($s, 7);
	like $r[3] // '', qr/\A250 2\.0\.0 /, 'RSET ends a BDAT transaction';
	like $r[6] // '', qr/\A354 /, 'and DATA works in the next one';
	$m->dialog($s, "> .\n< 250 2.0.0 Ok: queued as *\n> QUIT\n< 221 2.0.0 *\n");
	$count++;
	is $m->queue_count, $count, 'mixed: the RSET message is not queued';
}

# ---- a refused chunk over 1.5 times the size limit is not read: reply, closed (Postfix) ----
{
	my $s = session();
	$m->send_bytes($s, "BDAT 1501 LAST\r\nNOOP\r\n");
	is $m->read_reply($s) // '', "503 5.5.1 Error: need MAIL command\r\n", 'huge refused chunk: its reply';
	ok $m->closed($s), 'huge refused chunk: closed, not read';
	ok $m->wait_log(qr/NOQUEUE: too much BDAT content -- disabling further input from unknown/),
		'huge refused chunk: logged as Postfix';
	$s = session();
	$m->send_bytes($s, "BDAT 1500 LAST\r\n" . ('q' x 1500) . "NOOP\r\n");
	is $m->read_reply($s) // '', "503 5.5.1 Error: need MAIL command\r\n", '1.5 times: still read';
	like $m->read_reply($s) // '', qr/\A250 2\.0\.0 /, '1.5 times: in step (NOOP)';
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
}

# ---- a size that cannot be read: 501, and the session ends ----
for my $bad ('BDAT', 'BDAT abc', 'BDAT -1', 'BDAT 10 NOTLAST', 'BDAT 99999999999999999999999') {
	my $s = session();
	$m->send_bytes($s, "$bad\r\nNOOP\r\n");
	is $m->read_reply($s) // '', "501 5.5.4 Syntax: BDAT count [LAST]\r\n", "'$bad': 501 5.5.4";
	ok $m->closed($s), "'$bad': closed (where the chunk ends is unknown)";
}

# ---- the disconnect line counts BDAT as Postfix does ----
ok $m->wait_log(qr/disconnect from .* bdat=\d/), 'the disconnect line counts bdat=';
ok $m->wait_log(qr/malformed BDAT command syntax from unknown\[127\.0\.0\.1\]: abc$/),
	'the malformed BDAT is logged with its argument only';

# ---- a client silent in the middle of a chunk ----
{
	my $t = MtadTest->new(data_timeout => 2, command_timeout => 60);
	my $s = $t->raw;
	$t->dialog($s, "> EHLO client.example\n" . MtadTest::ehlo_script('client.example'));
	$t->send_bytes($s, $ENV . "BDAT 100 LAST\r\n" . ('z' x 10));
	my @r;
	push @r, $t->read_reply($s, 30) for 1 .. 3;
	like $r[2] // '', qr/\A421 4\.4\.2 .*timeout exceeded/, 'timeout mid-chunk: 421 4.4.2';
	ok $t->closed($s), 'timeout mid-chunk: closed';
	ok $t->wait_log(qr/timeout after BDAT from/), 'logged: timeout after BDAT';
	is $t->queue_count, 0, 'timeout mid-chunk: nothing queued';
}

done_testing;
