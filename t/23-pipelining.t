# 23-pipelining.t - RFC 2920: commands sent in one write are answered in
# order. In these transcripts consecutive `>` lines go out in ONE write.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $m = MtadTest->new;
my $EHLO = MtadTest::ehlo_script('client.example');

# The envelope in one write, then body, end and QUIT in one write.
my $s = $m->raw;
my @r = $m->dialog($s, <<"END");
	> EHLO client.example
$EHLO
	> MAIL FROM:<a\@b.test>
	> RCPT TO:<u1\@campus.test>
	> RCPT TO:<u2\@campus.test>
	> DATA
	< 250 2.1.0 *
	< 250 2.1.5 *
	< 250 2.1.5 *
	< 354 *
	> Subject: pipelined
	>
	> one
	> .
	> QUIT
	< 250 2.0.0 Ok: queued as *
	< 221 2.0.0 *
	< [closed]
END
is $m->queue_count, 1, 'one message queued';

# A whole session, two messages, in a single write.
$s = $m->raw;
@r = $m->dialog($s, <<"END");
	> EHLO client.example
	> MAIL FROM:<a\@b.test>
	> RCPT TO:<first\@campus.test>
	> DATA
	> Subject: first
	>
	> 1
	> .
	> MAIL FROM:<a\@b.test>
	> RCPT TO:<second\@campus.test>
	> DATA
	> Subject: second
	>
	> 2
	> .
	> QUIT
$EHLO
	< 250 2.1.0 *
	< 250 2.1.5 *
	< 354 *
	< 250 2.0.0 Ok: queued as *
	< 250 2.1.0 *
	< 250 2.1.5 *
	< 354 *
	< 250 2.0.0 Ok: queued as *
	< 221 2.0.0 *
	< [closed]
END
my @qids = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
is scalar(@qids), 2, 'two queue ids';
isnt $qids[0], $qids[1], '... that differ';
is $m->queue_count, 3, 'three messages queued';

# RSET inside a pipelined group drops the first envelope.
$s = $m->raw;
@r = $m->dialog($s, <<"END");
	> EHLO client.example
$EHLO
	> MAIL FROM:<dropped\@b.test>
	> RCPT TO:<dropped\@campus.test>
	> RSET
	> MAIL FROM:<kept\@b.test>
	> RCPT TO:<kept\@campus.test>
	> DATA
	< 250 2.1.0 *
	< 250 2.1.5 *
	< 250 2.0.0 *
	< 250 2.1.0 *
	< 250 2.1.5 *
	< 354 *
	> Subject: after RSET
	>
	> x
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
my ($rc, $list) = $m->mtaq('list');
like $list, qr/\bkept\@campus\.test\b/, 'the recipient after RSET is queued';
unlike $list, qr/dropped\@/, 'the envelope before RSET is not';

# Errors in the middle of a group do not desynchronise the replies.
$s = $m->raw;
$m->dialog($s, <<"END");
	> EHLO client.example
	> MAIL FROM:<a\@b.test>
	> RCPT TO:<>
	> FROBNICATE
	> RCPT TO:<ok\@campus.test>
	> NOOP
	> QUIT
$EHLO
	< 250 2.1.0 *
	<~ 501 5\\.\\d\\.\\d .*
	< 500 5.5.2 *
	< 250 2.1.5 *
	< 250 2.0.0 *
	< 221 2.0.0 *
	< [closed]
END

# A client that half-closes (shutdown SHUT_WR) right after ".", QUIT,
# while mtad commits the message, still reads every reply: the EOF waits
# until the 250 and the 221 are out (mtad keeps reading while the writer
# commits, so it sees the EOF early). Then with no QUIT: 250, then closed.
for my $quit ("QUIT\r\n", '') {
	my $what = $quit ? 'with QUIT' : 'without QUIT';
	my $before = $m->queue_count;
	$s = $m->raw;
	is $m->send_recv($s, "EHLO client.example\r\n") =~ /^250 HELP\r\n\z/m ? 1 : 0, 1,
		"half-close $what: EHLO";
	$m->send_bytes($s, "MAIL FROM:<a\@b.test>\r\nRCPT TO:<half\@campus.test>\r\nDATA\r\n");
	like $m->read_reply($s), qr/^250 2\.1\.0 /, "half-close $what: MAIL";
	like $m->read_reply($s), qr/^250 2\.1\.5 /, "half-close $what: RCPT";
	like $m->read_reply($s), qr/^354 /, "half-close $what: DATA";
	$m->send_bytes($s, "Subject: half-close\r\n\r\nbody\r\n.\r\n$quit");
	shutdown($s, 1) or die "shutdown: $!";
	like $m->read_reply($s) // '', qr/^250 2\.0\.0 Ok: queued as /, "half-close $what: the 250 comes";
	like $m->read_reply($s) // '', qr/^221 2\.0\.0 /, "half-close $what: then the 221" if $quit;
	ok $m->closed($s), "half-close $what: then mtad closes";
	is $m->queue_count, $before + 1, "half-close $what: the message is queued";
}

done_testing;
