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
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(_exit);
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

# ---- CHUNKING without PIPELINING: MAIL, RCPT one by one, then the chunks ----
{
	$CH->set(pipelining => 0);
	my ($before) = arrived($CH, 'mid-1');
	sleep 3;	# past the 2 s a spare connection is kept: a new EHLO
	my ($qid, $stored) = submit($m, 'u@chunk.test', "Subject: nopipe\r\nX-Tag: nopipe-1\r\n\r\n.x\r\n");
	my @got = arrived($CH, 'nopipe-1');
	is scalar(@got), 1, 'no PIPELINING: arrived once';
	is_deeply(($got[0] // {})->{bdat}, [length($stored) . ' LAST'], 'no PIPELINING: BDAT N LAST');
	is(($got[0] // {})->{data}, $stored, 'no PIPELINING: bytes exact');
	cmp_ok(($got[0] // {})->{conn} // 0, '>', ($before // {})->{conn} // 0,
	       'no PIPELINING: on a new connection, which saw the EHLO without it');
	$CH->set(pipelining => 1);
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

# ---- a refused chunk that is not the last: deferred with its reply, RSET, the connection goes on ----
{
	$CH->set(bdat_chunk => '452 4.3.1 Insufficient system storage');
	my $line = ('0123456789' x 9) . "\r\n";
	my ($qid) = submit($m, 'u@chunk.test', "Subject: mid\r\nX-Tag: mid-1\r\n\r\n" . ($line x 3000));
	ok $m->wait_log(qr/\Q$qid\E: to=<u\@chunk\.test>.*status=deferred \(452 4\.3\.1 Insufficient system storage\)/),
		'refused chunk: deferred with the peer\'s reply to that chunk';
	$CH->set(bdat_chunk => undef);
	ok $m->wait_log(qr/\Q$qid\E: to=<u\@chunk\.test>.*status=sent/, 0, 60),
		'refused chunk: sent on a later try';
	is scalar(arrived($CH, 'mid-1')), 1, 'refused chunk: arrived once, whole';
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

# ---- mtad to mtad: our client's BDAT into our server, chunk by chunk ----
{
	my $b = MtadTest->new(local_domains => 'far.test', hostname => 'mx.far.test');
	my $a = MtadTest->new(relay_networks => '127.0.0.0/8',
			      extra => "route = far.test [127.0.0.1]:${\ $b->port}\n");
	my $line = ('abcdefghi.' x 9) . "\r\n";
	my $bytes = "Subject: m2m\r\n\r\n.dot\r\nbare\nlf and bare\rcr\r\n" . ($line x 2000);
	my ($qid, $stored) = submit($a, 'u@far.test', $bytes);
	ok $qid, 'mtad to mtad: queued at the first';
	my @ids;
	MtadTest::wait_for(30, sub { @ids = $b->queue_ids });
	is scalar(@ids), 1, 'mtad to mtad: one message at the second';
	my (undef, $far) = $b->mtaq('show', '--body', $ids[0] // 'NONE');
	(my $after = $far) =~ s/\AReceived: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*//;
	ok $after eq $stored, 'mtad to mtad: the second stored the first\'s bytes exactly (bare CR/LF too)';
	ok $b->wait_log(qr/disconnect from .* bdat=(\d+) quit=1/) && $b->log_text =~ /bdat=([2-9]|\d\d+) /,
		'mtad to mtad: it came in more than one BDAT';
	unlike $b->log_text, qr/ data=/, 'mtad to mtad: no DATA';
}

# ---- LMTP with CHUNKING: a reply per recipient after BDAT LAST (RFC 3030 §3) ----
my @peer_pids;
END { local $?; for my $p (@peer_pids) { kill "TERM", $p; waitpid $p, 0 } }

# lmtp_peer(DOT => [REPLY...]) - a forked LMTP server offering CHUNKING,
# one connection after another; what it reads goes to a transcript
# (commands as lines, chunks as "<N bytes>"), each message's bytes to
# msg-N. Returns (port, dir).
sub lmtp_peer {
	my (@dot) = @_;
	my $dir = tempdir('lmtp-chunk-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});
	my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
					   Listen => 5, ReuseAddr => 1) or die "listen: $!";
	my $port = $listen->sockport;
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		alarm 300;
		my $n = 0;
		while (my $c = $listen->accept) {
			$c->autoflush(1);
			open my $t, '>>', "$dir/transcript" or _exit(1);
			$t->autoflush(1);
			print $c "220 peer.test LMTP ready\r\n";
			my ($rcpts, $data) = (0, '');
			while (defined(my $line = <$c>)) {
				$line =~ s/\r?\n\z//;
				print $t "$line\n";
				my ($verb) = uc($line) =~ /\A(\w+)/;
				$verb //= '';
				if ($verb eq 'QUIT') { print $c "221 2.0.0 bye\r\n"; last }
				elsif ($verb eq 'LHLO') {
					print $c "250-peer.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
						. "250 ENHANCEDSTATUSCODES\r\n";
				}
				elsif ($verb eq 'MAIL') { ($rcpts, $data) = (0, ''); print $c "250 2.1.0 OK\r\n" }
				elsif ($verb eq 'RCPT') { $rcpts++; print $c "250 2.1.5 OK\r\n" }
				elsif ($verb eq 'RSET') { print $c "250 2.0.0 OK\r\n" }
				elsif ($verb eq 'BDAT' && $line =~ /\ABDAT (\d+)( LAST)?\z/) {
					my ($size, $last) = ($1, $2);
					my $got = '';
					while (length $got < $size) {
						my $r = read $c, $got, $size - length $got, length $got;
						last unless $r;
					}
					print $t "<", length($got), " bytes>\n";
					$data .= $got;
					if (!$last) { print $c "250 2.0.0 $size octets\r\n"; next }
					$n++;
					if (open my $fh, '>:raw', "$dir/msg-$n") { print $fh $data; close $fh }
					print $c ($dot[$_] // '250 2.0.0 Saved') . "\r\n" for 0 .. $rcpts - 1;
				}
				else { print $c "500 5.5.1 unknown command\r\n" }
			}
			close $c;
		}
		_exit(0);
	}
	close $listen;
	push @peer_pids, $pid;
	return ($port, $dir);
}

{
	my ($port, $dir) = lmtp_peer('250 2.0.0 <ok@lchunk.test> Saved',
				     '452 4.2.2 <later@lchunk.test> Mailbox full',
				     '552 5.2.2 <bad@lchunk.test> Quota exceeded');
	my $m3 = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600,
			       extra => "route = lchunk.test lmtp:[127.0.0.1]:$port\n");
	my $s = $m3->raw;
	my $bytes = "Subject: lmtp\r\nX-Tag: lmtp-1\r\n\r\n.dot\r\nbare\nlf\r\n";
	$m3->send_bytes($s, "EHLO client.example\r\nMAIL FROM:<a\@sender.test>\r\n"
		. "RCPT TO:<ok\@lchunk.test>\r\nRCPT TO:<later\@lchunk.test>\r\nRCPT TO:<bad\@lchunk.test>\r\n"
		. 'BDAT ' . length($bytes) . " LAST\r\n" . $bytes);
	my @r = map { $m3->read_reply($s) // '' } 1 .. 6;
	my ($qid) = $r[5] =~ /queued as ($QID)/;
	ok $qid, 'lmtp: queued';
	my (undef, $stored) = $m3->mtaq('show', '--body', $qid // 'NONE');
	$m3->send_bytes($s, "QUIT\r\n");
	my %want = (ok => 'sent', later => 'deferred', bad => 'bounced');
	for my $u (sort keys %want) {
		ok $m3->delivery_log($qid, "$u\@lchunk.test", $want{$u}), "lmtp: $u is $want{$u}, by its own reply";
	}
	my $t = MtadTest::slurp("$dir/transcript");
	like $t, qr/^BDAT \d+ LAST\n<\d+ bytes>\n/m, 'lmtp: the message went as BDAT LAST';
	unlike $t, qr/^DATA$/m, 'lmtp: no DATA';
	is MtadTest::slurp("$dir/msg-1"), $stored, 'lmtp: the peer got the stored bytes exactly';
}

done_testing;
