# 22-data.t - DATA end to end: the queue id in the reply, what mtaq shows
# (envelope, Received: header, body with dot-stuffing removed), delete,
# JSON listing, and a body over message_size_limit.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MtadTest;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\r?\n?\z/;

# body_of(M, QID) - the stored message through `mtaq show --body`.
sub body_of {
	my ($m, $qid) = @_;
	my ($rc, $out, $err) = $m->mtaq('show', '--body', $qid);
	is $rc, 0, "mtaq show --body $qid" or diag $err;
	my ($rc2, $out2) = $m->mtaq('show', $qid, '--body');
	ok $rc2 == 0 && $out2 eq $out, "mtaq show $qid --body is the same";
	return $out =~ s/\r\n/\n/gr;
}

# received_of(TEXT) - the first Received: header, unfolded.
sub received_of {
	my ($text) = @_;
	$text =~ s/\r\n/\n/g;
	return $text =~ /^(Received:[^\n]*(?:\n[ \t][^\n]*)*)/m ? $1 =~ s/\n[ \t]+/ /gr : '';
}

my $m = MtadTest->new;

# ---- a message from Net::SMTP (which dot-stuffs for us) ----
my $smtp = $m->smtp;
my $reply = $m->send_message($smtp, 'a@b.test', ['u@campus.test'], <<'END');
Subject: test one
From: <a@b.test>
To: <u@campus.test>

first line
.leading dot
last line
END
like $reply, $QUEUED, 'Net::SMTP message: 250 2.0.0 Ok: queued as QID';
my ($qid1) = $reply =~ $QUEUED;
$qid1 //= 'NONE';
$smtp->quit;

my ($rc, $out, $err) = $m->mtaq('list');
is $rc, 0, 'mtaq list' or diag $err;
like $out, qr/^\Q$qid1\E\b/m, 'mtaq list shows the queue id at the start of a line';
like $out, qr/\ba\@b\.test\b/, 'mtaq list shows the sender';
like $out, qr/\bu\@campus\.test\b/, 'mtaq list shows the recipient';

($rc, $out, $err) = $m->mtaq('show', $qid1);
is $rc, 0, "mtaq show $qid1" or diag $err;
like $out, qr/^Subject: test one\r?$/m, 'mtaq show shows the headers';
my $rcvd = received_of($out);
ok length $rcvd, 'there is a Received: header' or diag $out;
for my $part ('from client.example', '[127.0.0.1]', 'by mx.campus.test', 'with ESMTP', "id $qid1") {
	ok index($rcvd, $part) >= 0, "Received: names '$part'" or diag $rcvd;
}
like $rcvd, qr/;\s*\S.*\d{4}/, 'Received: ends with a date';

my $body = body_of($m, $qid1);
like $body, qr/(?:\A|\n)first line\n\.leading dot\nlast line\n\z/,
	'the body arrives intact, dot-stuffing removed';

# ---- byte-exact DATA over a raw socket ----
my $s = $m->raw;
$m->ehlo($s, 'client.example');
my @r = $m->dialog($s, <<'END');
	> MAIL FROM:<>
	< 250 2.1.0 *
	> RCPT TO:<u@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: test two
	>
	> ..leading dot
	> ...two dots
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
	< [closed]
END
my ($qid2) = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
$qid2 //= 'NONE';
like $qid2, qr/\A[0-9A-Z]{14}\z/, 'raw message queued';
isnt $qid2, $qid1, 'queue ids differ';
$body = body_of($m, $qid2);
like $body, qr/(?:\A|\n)\.leading dot\n\.\.two dots\n\z/,
	'..leading dot arrives as .leading dot';
($rc, $out, $err) = $m->mtaq('show', $qid2);
like received_of($out), qr/\bwith ESMTP\b.*\bid \Q$qid2\E\b/, 'Received: of the raw message';

# ---- swaks, a real client ----
my ($src, $sout, $serr) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
	'--from', 'a@b.test', '--to', 'u@campus.test', '--helo', 'client.example',
	'--timeout', '60');
is $src, 0, 'swaks exits 0' or diag "$sout$serr";
my ($qid3) = $sout =~ /<-\s+250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})/;
ok defined $qid3, 'swaks got a queue id' or diag $sout;
$qid3 //= 'NONE';

is $m->queue_count, 3, 'mtaq count: 3';
my @ids = $m->queue_ids;
is_deeply [sort @ids], [sort $qid1, $qid2, $qid3], 'mtaq list: exactly the three ids';

# ---- JSON ----
($rc, $out, $err) = $m->mtaq('list', '--json');
is $rc, 0, 'mtaq list --json' or diag $err;
my $json = eval { JSON::PP->new->decode($out) };
ok defined $json, 'mtaq list --json parses' or diag "$@\n$out";
is ref($json), 'ARRAY', 'the JSON is an array of messages';
my %byid = map { ($_->{queue_id} // '') => $_ } grep { ref eq 'HASH' } @{ ref $json eq 'ARRAY' ? $json : [] };
is_deeply [sort keys %byid], [sort $qid1, $qid2, $qid3], 'JSON: queue_id of each message';
is $byid{$qid1}{sender}, 'a@b.test', 'JSON: sender';
is $byid{$qid2}{sender}, '', 'JSON: the null sender is ""';
is_deeply [map { $_->{address} } @{ $byid{$qid1}{recipients} // [] }], ['u@campus.test'],
	'JSON: recipients[].address';
is $byid{$qid1}{helo}, 'client.example', 'JSON: helo';
is $byid{$qid1}{client_ip}, '127.0.0.1', 'JSON: client_ip';

# ---- delete ----
($rc, $out, $err) = $m->mtaq('delete', $qid1);
is $rc, 0, "mtaq delete $qid1" or diag $err;
($rc, $out, $err) = $m->mtaq('show', $qid1);
is $rc, 1, 'mtaq show of a deleted message exits 1';
is $err, "mtaq: no such message: $qid1\n", '... saying no such message';
($rc, $out, $err) = $m->mtaq('delete', $qid1);
is $rc, 1, 'deleting it again exits 1';
is $m->queue_count, 2, 'mtaq count: 2 after delete';
($rc, $out, $err) = $m->mtaq('show', 'NOTAQUEUEID');
isnt $rc, 0, 'mtaq show of a malformed id fails';

# ---- a body over message_size_limit, without SIZE= ----
my $small = MtadTest->new(message_size_limit => 10000);
$s = $small->raw;
$small->ehlo($s, 'client.example', size => 10000);
$small->start_data($s);
$small->send_bytes($s, "Subject: too big\r\n\r\n" . (('x' x 98) . "\r\n") x 200);	# 20000 bytes
$small->dialog($s, <<'END');
	> .
	< 552 5.3.4 *
END
# the session goes on
$small->queue_message($s, 'small', body => 'fits');
$small->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
is $small->queue_count, 1, 'only the small message is queued';

done_testing;
