# 39-8bitmime.t - BODY=8BITMIME (RFC 6152) end to end. A real client
# (Python's smtplib, mail_options=['BODY=8BITMIME']) sends 8-bit mail:
#   - to a next hop that offers 8BITMIME: MAIL carries BODY=8BITMIME and
#     the body arrives byte for byte;
#   - to one that does not (Sink no8bitmime): a MIME message's 8-bit
#     parts arrive as quoted-printable (decoded here and compared with
#     the original text), multipart says 7bit, nothing 8-bit is left in
#     them, no BODY= on MAIL;
#   - a non-MIME 8-bit message (no MIME-Version) goes as it is, as
#     Postfix sends it by default;
#   - 8-bit mail sent without BODY=8BITMIME is 8BITMIME content all the
#     same (Postfix's cleanup sees it so); 7-bit mail is never touched.
#   campus.test -> sink E (8BITMIME)      seven.test -> sink S (7-bit)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::QuotedPrint ();
use MtadTest;
use Sink;

my $E = Sink->new(data => '250 2.0.0 Ok: queued as EIGHT');
my $S = Sink->new(no8bitmime => 1, data => '250 2.0.0 Ok: queued as SEVEN');
my ($pe, $ps) = ($E->port, $S->port);
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600, extra => <<"END");
route = campus.test [127.0.0.1]:$pe
route = seven.test [127.0.0.1]:$ps
END

my $PY = <<'EOF';
import smtplib, sys
port, frm, to, msg, opts = sys.argv[1:6]
s = smtplib.SMTP('127.0.0.1', int(port), local_hostname='client.example', timeout=60)
try:
    s.sendmail(frm, [to], bytes.fromhex(msg), mail_options=[o for o in opts.split(',') if o])
    print('ok')
except smtplib.SMTPException as e:
    print('refused %s' % (e,))
s.quit()
EOF
# py_send(FROM, TO, MESSAGE, [OPTIONS]) - "ok" or why not.
sub py_send {
	my ($from, $to, $msg, $opts) = @_;
	my ($rc, $out, $err) = MtadTest::run('python3', '-c', $PY, $m->port, $from, $to,
		unpack('H*', $msg), join(',', @{ $opts // ['BODY=8BITMIME'] }));
	chomp $out;
	diag "python3: $err" if $rc != 0;
	return $out;
}

sub arrived {
	my ($sink, $subject) = @_;
	my @m;
	MtadTest::wait_for(30, sub {
		@m = grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $sink->messages;
	});
	return @m;
}

# after_received(DATA) - the message without mtad's Received: header.
sub after_received {
	my ($data) = @_;
	$data =~ s/\AReceived: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*//;
	return $data;
}

my $TEXT = "Gr\xc3\xbc\xc3\x9fe aus M\xc3\xbcnchen = \xe2\x82\xac 5 \r\n"
	. ".ein Punkt am Anfang\r\n" . ("lang " x 30) . "\xc3\xa9\r\nEnde\t\r\n";
my $HTML = "<p>caf\xc3\xa9</p>\r\n";
my $B64 = "AAECAwQF\r\n";

# mime(SUBJECT) - multipart/mixed, 8bit: an 8bit text part, an unlabelled
# HTML part with 8-bit octets, a base64 part.
sub mime {
	my ($subject) = @_;
	return "From: <a\@sender.test>\r\nSubject: $subject\r\nMIME-Version: 1.0\r\n"
		. "Content-Type: multipart/mixed; boundary=\"=_b\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		. "This is a multipart message.\r\n"
		. "--=_b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		. $TEXT
		. "--=_b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" . $HTML
		. "--=_b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		. $B64 . "--=_b--\r\n";
}

# ---- a next hop with 8BITMIME: BODY=8BITMIME, the body as it came ----
my $msg = mime('to eight');
is py_send('a@sender.test', 'u@campus.test', $msg), 'ok', 'smtplib BODY=8BITMIME to u@campus.test';
my @got = arrived($E, 'to eight');
is scalar(@got), 1, 'it arrives at the 8BITMIME next hop';
like $got[0]{mail_line} // '', qr/\AMAIL FROM:<a\@sender\.test> SIZE=\d+ BODY=8BITMIME\z/,
	'... MAIL FROM:<a@sender.test> SIZE=n BODY=8BITMIME' or diag $got[0]{mail_line};
is after_received($got[0]{data} // ''), $msg, '... the body byte for byte';

# ---- a 7-bit next hop: the 8-bit parts as quoted-printable ----
$msg = mime('to seven');
is py_send('a@sender.test', 'u@seven.test', $msg), 'ok', 'smtplib BODY=8BITMIME to u@seven.test';
@got = arrived($S, 'to seven');
is scalar(@got), 1, 'it arrives at the 7-bit next hop';
my $g = $got[0] // { data => '', mail_line => '' };
like $g->{mail_line}, qr/\AMAIL FROM:<a\@sender\.test> SIZE=\d+\z/, '... MAIL without BODY=8BITMIME'
	or diag $g->{mail_line};
my $data = after_received($g->{data});
unlike $data, qr/[\x80-\xff]/, '... not one 8-bit octet left';
my ($top, $body) = Sink::header_block($data);
is $top->{'content-transfer-encoding'}, '7bit', '... the multipart says Content-Transfer-Encoding: 7bit';
is $top->{'content-type'}, 'multipart/mixed; boundary="=_b"', '... its Content-Type unchanged';
my @parts = split /^--=_b(?:--)?\r?$/m, $g->{data} =~ s/\r\n/\n/gr;
shift @parts;	# the header and preamble
pop @parts;	# the epilogue
is scalar(@parts), 3, '... three parts';
my @want = ([$TEXT, 'quoted-printable'], [$HTML, 'quoted-printable'], [$B64, 'base64']);
for my $i (0 .. 2) {
	my ($h, $b) = Sink::header_block($parts[$i] // '');
	$b =~ s/\A\n//;
	is $h->{'content-transfer-encoding'}, $want[$i][1], "part $i: Content-Transfer-Encoding: $want[$i][1]";
	my $lines_ok = !grep { length($_) > 76 } split /\n/, $b;
	ok $lines_ok, "part $i: no line over 76 octets";
	# decode_qp gives LF line ends: compare with LF on both sides
	my $decoded = $want[$i][1] eq 'base64' ? $b : MIME::QuotedPrint::decode_qp($b =~ s/\n/\r\n/gr);
	is $decoded =~ s/\r\n/\n/gr, $want[$i][0] =~ s/\r\n/\n/gr, "part $i: decodes to the original octets";
}

# ---- not MIME: as it is (Postfix's default) ----
$msg = "From: <a\@sender.test>\r\nSubject: no mime\r\n\r\nGr\xc3\xbc\xc3\x9fe = \r\n";
is py_send('a@sender.test', 'u@seven.test', $msg), 'ok', 'smtplib BODY=8BITMIME, no MIME-Version, to u@seven.test';
@got = arrived($S, 'no mime');
is scalar(@got), 1, 'it arrives at the 7-bit next hop';
is after_received($got[0]{data} // ''), $msg, '... unchanged, 8-bit octets and all (not MIME: not converted)';

# ---- 8-bit without BODY=8BITMIME: 8BITMIME content all the same (as Postfix) ----
$msg = mime('undeclared');
is py_send('a@sender.test', 'u@seven.test', $msg, []), 'ok', 'smtplib without BODY=, 8-bit MIME, to u@seven.test';
@got = arrived($S, 'undeclared');
is scalar(@got), 1, 'it arrives';
$data = after_received($got[0]{data} // '');
unlike $data, qr/[\x80-\xff]/, '... converted too: its content is 8-bit, declared or not';
like $data, qr/^Content-Transfer-Encoding: quoted-printable\r$/m, '... quoted-printable parts';
is py_send('a@sender.test', 'u@campus.test', mime('undeclared eight'), []), 'ok',
	'the same to the 8BITMIME next hop';
@got = arrived($E, 'undeclared eight');
like $got[0]{mail_line} // '', qr/ BODY=8BITMIME\z/, '... goes with BODY=8BITMIME';

# ---- 7-bit mail: no BODY=, never converted ----
$msg = "From: <a\@sender.test>\r\nSubject: ascii\r\nMIME-Version: 1.0\r\n"
	. "Content-Type: text/plain\r\n\r\nplain = text, a line longer than seventy-six octets "
	. "is fine as it is when nothing is 8-bit\r\n";
is py_send('a@sender.test', 'u@seven.test', $msg, []), 'ok', 'smtplib, a 7-bit MIME message, to u@seven.test';
@got = arrived($S, 'ascii');
is scalar(@got), 1, 'it arrives';
is after_received($got[0]{data} // ''), $msg, '... unchanged';
like $got[0]{mail_line} // '', qr/\AMAIL FROM:<a\@sender\.test> SIZE=\d+\z/, '... MAIL without BODY=';

MtadTest::wait_for(30, sub { $m->queue_count == 0 });
is $m->queue_count, 0, 'the queue is empty';
done_testing;
