# 43-deliver-chunking.t - the client's BDAT (RFC 3030): to a next hop
# that offers CHUNKING the message goes as BDAT chunks (one per queue
# chunk, the last with LAST, no dot-stuffing), byte for byte; to one that
# does not, DATA as before; smtp_use_chunking = no always sends DATA; a
# refused chunk is a failure for its recipients. Scripted sinks
# (t/lib/Sink.pm) on loopback, no DNS.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use Sink;

my $QID = qr/[0-9A-Z]{14}/;
my $CH = Sink->new(chunking => 1, data => '250 2.0.0 Ok: queued as CH');
my $NO = Sink->new(data => '250 2.0.0 Ok: queued as NO');
my ($pc, $pn) = ($CH->port, $NO->port);

my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      extra => "route = chunk.test [127.0.0.1]:$pc\nroute = plain.test [127.0.0.1]:$pn\n");

# submit(M, TO, BYTES) - one message sent to M with BDAT, bytes exact; its queue id and stored bytes.
sub submit {
	my ($mm, $to, $bytes) = @_;
	my $s = $mm->raw;
	$mm->send_bytes($s, "EHLO client.example\r\nMAIL FROM:<a\@sender.test>\r\nRCPT TO:<$to>\r\n"
		. 'BDAT ' . length($bytes) . " LAST\r\n" . $bytes);
	my @r = map { $mm->read_reply($s) // '' } 1 .. 4;
	my ($qid) = $r[3] =~ /queued as ($QID)/;
	my (undef, $stored) = $mm->mtaq('show', '--body', $qid // 'NONE');
	$mm->send_bytes($s, "QUIT\r\n");
	return ($qid, $stored);
}

# arrived(SINK, TAG) - the one message at SINK whose data holds TAG (waits up to 30 s).
sub arrived {
	my ($sink, $tag) = @_;
	my @m;
	MtadTest::wait_for(30, sub { @m = grep { index($_->{data}, $tag) >= 0 } $sink->messages });
	return @m;
}

# ---- a small message with dots, a CRLF.CRLF line and bare CR/LF: one BDAT LAST ----
{
	my $bytes = "Subject: small\r\nX-Tag: small-1\r\n\r\n.leading dot\r\n.\r\n..\r\nbare\rcr\nlf\r\nend\r\n";
	my ($qid, $stored) = submit($m, 'u@chunk.test', $bytes);
	ok $qid, 'small: queued';
	my @got = arrived($CH, 'small-1');
	is scalar(@got), 1, 'small: arrived once at the CHUNKING sink';
	my $msg = $got[0] // { data => '', bdat => [] };
	is_deeply $msg->{bdat}, [length($stored) . ' LAST'], 'small: one chunk, BDAT N LAST';
	is $msg->{data}, $stored, 'small: the bytes the peer got are the stored bytes, exactly';
	like $msg->{data}, qr/\r\n\r\n\Q.leading dot\E\r\n\.\r\n\.\.\r\nbare\rcr\nlf\r\nend\r\n\z/,
		'small: no dot-stuffing, bare CR/LF as sent';
	ok MtadTest::wait_for(30, sub { !grep { $_ eq ($qid // '') } $m->queue_ids }), 'small: left the queue';
	ok $m->wait_log(qr/\Q$qid\E: to=<u\@chunk\.test>.*status=sent \(250 2\.0\.0 Ok: queued as CH\)/),
		'small: logged as sent, with the peer\'s reply';
}

# ---- a large message: several queue chunks, several BDATs, the last with LAST ----
{
	my $line = ('0123456789' x 9) . "\r\n";
	my $bytes = "Subject: large\r\nX-Tag: large-1\r\n\r\n" . ($line x 3000) . ".\r\n";
	my ($qid, $stored) = submit($m, 'u@chunk.test', $bytes);
	ok $qid, 'large: queued';
	my @got = arrived($CH, 'large-1');
	is scalar(@got), 1, 'large: arrived once';
	my $msg = $got[0] // { data => '', bdat => [] };
	my @sizes = @{ $msg->{bdat} // [] };
	cmp_ok scalar(@sizes), '>', 1, 'large: more than one BDAT chunk (' . scalar(@sizes) . ')';
	like $sizes[-1] // '', qr/\A\d+ LAST\z/, 'large: the last is BDAT N LAST';
	is scalar(grep { /LAST/ } @sizes), 1, 'large: only the last says LAST';
	my $sum = 0;
	$sum += ($_ =~ /(\d+)/)[0] for @sizes;
	is $sum, length($stored), 'large: the chunk sizes add up to the message';
	ok $msg->{data} eq $stored, 'large: byte for byte';
}

# ---- a peer without CHUNKING: DATA, dot-stuffed ----
{
	my $bytes = "Subject: plain\r\nX-Tag: plain-1\r\n\r\n.leading dot\r\n.\r\nend\r\n";
	my ($qid, $stored) = submit($m, 'u@plain.test', $bytes);
	my @got = arrived($NO, 'plain-1');
	is scalar(@got), 1, 'plain: arrived once at the sink without CHUNKING';
	my $msg = $got[0] // { data => '' };
	ok !exists $msg->{bdat}, 'plain: no BDAT (DATA)';
	is $msg->{data}, $stored, 'plain: the same bytes after the peer removed the stuffing';
}

# ---- a refused chunk: the recipient hears the peer's reason ----
{
	$CH->set(data => '554 5.7.1 no thanks');
	my ($qid) = submit($m, 'u@chunk.test', "Subject: refused\r\nX-Tag: refused-1\r\n\r\nx\r\n");
	ok $m->wait_log(qr/\Q$qid\E: to=<u\@chunk\.test>.*status=bounced \(554 5\.7\.1 no thanks\)/),
		'refused: BDAT LAST refused, the recipient bounced with the peer\'s reply';
	$CH->set(data => '250 2.0.0 Ok: queued as CH');
}

# ---- smtp_use_chunking = no: DATA even to a peer that offers CHUNKING ----
{
	my $m2 = MtadTest->new(relay_networks => '127.0.0.0/8', smtp_use_chunking => 'no',
			       extra => "route = chunk.test [127.0.0.1]:$pc\n");
	my ($qid, $stored) = submit($m2, 'u@chunk.test', "Subject: off\r\nX-Tag: off-1\r\n\r\n..two\r\n");
	my @got = arrived($CH, 'off-1');
	is scalar(@got), 1, 'smtp_use_chunking = no: arrived';
	ok !exists(($got[0] // {})->{bdat}), 'smtp_use_chunking = no: sent with DATA';
	is(($got[0] // {})->{data}, $stored, 'smtp_use_chunking = no: bytes intact');
	my ($rc, $out) = MtadTest::run("$ENV{MTAD_BUILD}/mtad", '-n', '-c', $m2->conf_path, 'smtp_use_chunking');
	like $out, qr/\Asmtp_use_chunking = no\s*\z/, 'mtad -n prints the key';
}

done_testing;
