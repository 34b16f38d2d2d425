# 19-dkim.t - built-in DKIM signing (issue 17), checked by an independent
# verifier: keys made by `mtaq dkim-keygen` (RSA and Ed25519), messages
# submitted by an authenticated user over STARTTLS, relayed by mtad to a
# t/lib/Sink.pm peer, and each received message verified by Debian's
# dkimpy (t/lib/dkim-verify) with its DNS answered from keygen's own TXT
# records. Odd white space, folded headers, long lines, an empty body,
# 8-bit bytes, a body ending with or without CRLF: both signatures pass.
# Mail relayed from outside (unauthenticated, to a local domain) and a
# From: domain without a key are not signed. A key that cannot be read
# is an `mtad -n` error at its dkim_sign line, and mtad does not start.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use MtadTest;
use Sink;

my $PY = '/usr/bin/python3';
plan skip_all => 'python3-dkim is not installed (etc/packages)'
	unless -x $PY && system($PY, '-c', 'import dkim') == 0;

my $VERIFY = "$FindBin::Bin/lib/dkim-verify";
my $ALICE = MtadTest::auth_plain('alice', 'secret');
my $keys = tempdir('dkim-keys-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MTAD_KEEP});

# ---- mtaq dkim-keygen ----
my $cfg = MtadTest->new(start => 0);
my (%txt, @sign);
for my $k (['rsa1', []], ['ed1', ['--ed25519']]) {
	my ($sel, $opt) = @$k;
	my ($rc, $out, $err) = $cfg->mtaq('dkim-keygen', 'campus.test', $sel, '--dir', $keys, @$opt);
	is $rc, 0, "dkim-keygen campus.test $sel @$opt" or diag $err;
	my ($name, $strings) = $out =~ /^(\S+)\. IN TXT \((.*)\)$/m;
	is $name, "$sel._domainkey.campus.test", "$sel: the record's name";
	$txt{$name} = join '', $strings =~ /"([^"]*)"/g;
	my $k = @$opt ? 'ed25519' : 'rsa';
	like $txt{$name}, qr{\Av=DKIM1; k=$k; p=[A-Za-z0-9+/]+=*\z}, "$sel: v=DKIM1; k=$k; p=...";
	my ($line) = $out =~ /^dkim_sign = (.*)$/m;
	is $line, "campus.test $sel $keys/campus.test.$sel.key " . (@$opt ? 'ed25519-sha256' : 'rsa-sha256'),
		"$sel: the dkim_sign line to add";
	push @sign, $line;
	my $mode = (stat "$keys/campus.test.$sel.key")[2] & 07777;
	is sprintf('%04o', $mode), '0640', "$sel: the key file is 0640";
}
my ($rc, undef, $err) = $cfg->mtaq('dkim-keygen', 'campus.test', 'rsa1', '--dir', $keys);
isnt $rc, 0, 'dkim-keygen refuses to overwrite a key';
like $err, qr/File exists/, '... saying so';
is length(($txt{'ed1._domainkey.campus.test'} =~ /p=(.*)/)[0]), 44, 'ed25519: p= is the raw 32-byte key';

# ---- mtad signing ----
my $sink = Sink->new();
my $ps = $sink->port;
my $extra = join '', map { "dkim_sign = $_\n" } @sign;
$extra .= "route = example.org [127.0.0.1]:$ps\nroute = campus.test [127.0.0.1]:$ps\n";
my $m = MtadTest->new(listeners => ['starttls', ''], users => {alice => 'secret'},
		      sender_login => 'off', retry_min => 1, retry_max => 2, dkim_expire => 86400,
		      extra => $extra);

# session(AUTH) - a STARTTLS session, logged in as alice when AUTH.
sub session {
	my ($auth) = @_;
	my $s = $auth ? $m->raw : $m->raw(port => $m->port(1));
	if ($auth) {
		$m->starttls_ehlo($s, 'client.example');
		$m->dialog($s, "> $ALICE\n< 235 2.7.0 Authentication successful\n");
	} else {
		$m->ehlo($s, "outside.example");
	}
	return $s;
}

# send_raw(SOCK, FROM, TO, BYTES) - MAIL, RCPT, DATA, the bytes as they
# are (dot-stuffing is the caller's), then the end marker; the queue id.
sub send_raw {
	my ($s, $from, $to, $bytes) = @_;
	$m->start_data($s, from => $from, to => $to);
	my $sep = $bytes eq '' || $bytes =~ /\r\n\z/ ? '' : "\r\n";
	my $r = $m->send_recv($s, "$bytes$sep.\r\n") // '';
	like $r, qr/^250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})/, "queued: " . substr($bytes =~ s/\r\n.*//sr, 0, 40);
	return ($r =~ /queued as ([0-9A-Z]{14})/)[0] // 'NONE';
}

# arrived(TAG) - the raw message the sink got with X-Test: TAG.
sub arrived {
	my ($tag) = @_;
	return MtadTest::wait_for(30, sub {
		for my $msg ($sink->messages) {
			return $msg->{data} if $msg->{data} =~ /^X-Test: \Q$tag\E\r$/m;
		}
		return undef;
	});
}

# verify(DATA) - dkim-verify's lines and exit code.
sub verify {
	my ($data) = @_;
	my $dir = tempdir(CLEANUP => 1);
	open my $fh, '>:raw', "$dir/msg" or die "$dir/msg: $!";
	print $fh $data;
	close $fh;
	my ($rc, $out, $err) = MtadTest::run($VERIFY, "$dir/msg", map { "$_=$txt{$_}" } sort keys %txt);
	return ($out . $err, $rc);
}

my $long = 'x' x 1200;
my @cases = (
	[plain => "From: Alice <alice\@campus.test>\r\nTo: bob\@example.org\r\nSubject: plain\r\n"
		. "X-Test: plain\r\n\r\nhello\r\n"],
	[whitespace => "From:   alice\@campus.test  \r\nTo: bob\@example.org\r\nSubject:\t odd \t  white   space \t\r\n"
		. "X-Test: whitespace\r\n\r\n  lead  and trail \t \r\n\tTAB\t\tinside\r\n\r\n\r\n\r\n"],
	[folded => "From: \"Alice, A.\"\r\n <alice\@campus.test>\r\nTo: bob\@example.org,\r\n\tcarol\@example.org\r\n"
		. "Subject: a subject\r\n folded\r\n  twice\r\nCc: dave\@example.org\r\nReply-To: alice\@campus.test\r\n"
		. "MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nX-Test: folded\r\n\r\nbody\r\n"],
	[longlines => "From: alice\@campus.test\r\nTo: bob\@example.org\r\nSubject: long\r\nX-Test: longlines\r\n\r\n"
		. "$long\r\n$long $long\r\n"],
	[emptybody => "From: alice\@campus.test\r\nTo: bob\@example.org\r\nSubject: empty\r\nX-Test: emptybody\r\n\r\n"],
	[eightbit => "From: alice\@campus.test\r\nTo: bob\@example.org\r\nSubject: 8bit\r\n"
		. "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nX-Test: eightbit\r\n\r\n"
		. "gr\xc3\xbc\xc3\x9fe \xe2\x82\xac \xff\xfe\r\n"],
	[nocrlf => "From: alice\@campus.test\r\nTo: bob\@example.org\r\nSubject: no CRLF\r\nX-Test: nocrlf\r\n\r\n"
		. "the last line has no CRLF"],
	[upper => "FROM: alice\@CAMPUS.TEST\r\nto: bob\@example.org\r\nSUBJECT: case\r\nX-Test: upper\r\n\r\nx\r\n"],
);

my $s = session(1);
my %qid;
$qid{$_->[0]} = send_raw($s, 'alice@campus.test', 'bob@example.org', $_->[1]) for @cases;
$qid{forged} = send_raw($s, 'alice@campus.test', 'bob@example.org',
	"From: boss\@elsewhere.test\r\nTo: bob\@example.org\r\nSubject: forged\r\nX-Test: forged\r\n\r\nx\r\n");
# More signed fields than a signer keeps: queued unsigned, with a warning.
$qid{toobig} = send_raw($s, 'alice@campus.test', 'bob@example.org',
	"From: alice\@campus.test\r\n" . ("Cc: c\@example.org\r\n" x 101)
	. "Subject: too big\r\nX-Test: toobig\r\n\r\nx\r\n");

# To a domain with no way out (no DNS): it stays queued for mtaq show.
$qid{queued} = send_raw($s, 'alice@campus.test', 'z@nowhere.test',
	"From: alice\@campus.test\r\nTo: z\@nowhere.test\r\nSubject: stays\r\nX-Test: queued\r\n\r\nx\r\n");
$m->dialog($s, "> QUIT\n< 221 *\n< [closed]\n");

# Relayed from outside: unauthenticated, to a local domain, From: campus.test.
my $o = session(0);
$qid{outside} = send_raw($o, 'someone@outside.example', 'u@campus.test',
	"From: alice\@campus.test\r\nTo: u\@campus.test\r\nSubject: outside\r\nX-Test: outside\r\n\r\nx\r\n");
$m->dialog($o, "> QUIT\n< 221 *\n< [closed]\n");

# In BDAT chunks (RFC 3030): signed at BDAT LAST as at DATA's dot.
{
	my $bs = session(1);
	my $msg = "From: alice\@campus.test\r\nTo: bob\@example.org\r\nSubject: chunks\r\n"
		. "X-Test: bdat\r\n\r\nline one\r\n.dot\r\n" . (('y' x 100) . "\r\n") x 50;
	my @c = (substr($msg, 0, 50), substr($msg, 50, 2000), substr($msg, 2050));
	$bs->print("MAIL FROM:<alice\@campus.test>\r\nRCPT TO:<bob\@example.org>\r\n"
		. "BDAT " . length($c[0]) . "\r\n$c[0]BDAT " . length($c[1]) . "\r\n$c[1]"
		. "BDAT " . length($c[2]) . " LAST\r\n$c[2]");
	my @r = map { $m->read_reply($bs) // '' } 1 .. 5;
	like $r[4], qr/\A250 2\.0\.0 Ok: queued as /, 'bdat: queued after BDAT LAST';
	my $data = arrived('bdat');
	my ($out, $vrc) = verify($data // '');
	is $vrc, 0, 'bdat: a message in BDAT chunks is signed, and dkimpy verifies it' or diag $out;
	like $out, qr/^pass d=campus\.test s=ed1 a=ed25519-sha256$/m, 'bdat: ed25519-sha256 passes';
	$m->dialog($bs, "> QUIT\n< 221 *\n< [closed]\n");
}

for my $c (@cases) {
	my $tag = $c->[0];
	my $data = arrived($tag);
	ok defined $data, "$tag: arrived at the sink" or next;
	my ($out, $vrc) = verify($data);
	is $vrc, 0, "$tag: dkimpy verifies every signature" or diag $out;
	like $out, qr/^pass d=campus\.test s=rsa1 a=rsa-sha256$/m, "$tag: rsa-sha256 passes";
	like $out, qr/^pass d=campus\.test s=ed1 a=ed25519-sha256$/m, "$tag: ed25519-sha256 passes";
	my ($hdr) = split /\r\n\r\n/, $data, 2;
	ok !grep({ length > 78 } map { s/\r\z//r } grep { /^(?:DKIM-Signature:|\t)/ } split /\n/, $hdr),
		"$tag: the signature's lines are at most 78 octets";
	like $hdr, qr/^DKIM-Signature:.*(?:\r\n\t.*)*\bx=\d+;/m, "$tag: x= (dkim_expire)";
	like $m->log_text, qr/\Q$qid{$tag}\E: DKIM-Signature field added \(s=rsa1, d=campus\.test\)/,
		"$tag: logged as opendkim logs it";
}

# Changing a signed field breaks both signatures: the verifier can fail.
my $plain = arrived('plain') // '';
my ($bad) = verify($plain =~ s/^Subject: plain/Subject: changed/mr);
like $bad, qr/^fail d=campus\.test s=rsa1/m, 'a changed Subject: fails rsa-sha256';
like $bad, qr/^fail d=campus\.test s=ed1/m, '... and ed25519-sha256';
my ($added) = verify($plain =~ s/^From: /From: mallory\@campus.test\r\nFrom: /mr);
like $added, qr/^fail/m, 'a From: added on the way fails (From oversigned)';

like $m->log_text, qr/\Q$qid{toobig}\E: not DKIM-signed: more header than/, 'too much header: said in the log';
for my $tag (qw(forged outside toobig)) {
	my $data = arrived($tag);
	ok defined $data, "$tag: arrived at the sink" or next;
	unlike $data, qr/^DKIM-Signature:/mi, "$tag: not signed";
	unlike $m->log_text, qr/\Q$qid{$tag}\E: DKIM-Signature/, "$tag: no signing logged";
}

# mtaq show puts the signatures in front of the stored message, as delivery does.
my ($src, $shown) = $m->mtaq('show', '--body', $qid{queued});
is $src, 0, 'mtaq show --body of a queued signed message';
like $shown, qr/\ADKIM-Signature: v=1; a=rsa-sha256;.*^DKIM-Signature: v=1; a=ed25519-sha256;.*^Received: /ms,
	'... the DKIM-Signature fields first, then our Received:';
my ($vout, $vrc) = verify($shown);
is $vrc, 0, '... and what it shows verifies' or diag $vout;
($src, $shown) = $m->mtaq('show', $qid{queued});
like $shown, qr/^DKIM-Signature: /m, 'mtaq show (headers) shows them too';

# The local submission socket (sendmail(8), cron, mail(1)) is ours too.
my ($lrc, undef, $lerr) = MtadTest::run_input(
	"From: alice\@campus.test\nTo: bob\@example.org\nSubject: local\nX-Test: local\n\nfrom cron\n",
	"$MtadTest::BUILD/sendmail", '-C', $m->conf_path, 'bob@example.org');
is $lrc, 0, 'sendmail submits over the local socket' or diag $lerr;
my ($lout, $lvrc) = verify(arrived('local') // '');
is $lvrc, 0, 'local submission: signed and verified' or diag $lout;

# ---- SIGHUP: a new key is read; a key that cannot be read keeps the old ones ----
sub hup {
	my ($re, $name) = @_;
	my $off = length $m->log_text;
	ok kill('HUP', $m->pid), "SIGHUP: $name";
	ok $m->wait_log($re, $off), "... $name: logged" or diag substr($m->log_text, $off);
}
($rc, my $kout, $err) = $cfg->mtaq('dkim-keygen', 'campus.test', 'rsa2', '--dir', $keys);
is $rc, 0, 'dkim-keygen rsa2' or diag $err;
my ($kname, $kstrings) = $kout =~ /^(\S+)\. IN TXT \((.*)\)$/m;
$txt{$kname} = join '', $kstrings =~ /"([^"]*)"/g;
$m->set_config(dkim_sign => "campus.test rsa2 $keys/campus.test.rsa2.key");
hup(qr/reload: configuration .* loaded/, 'the new key');
$s = session(1);
send_raw($s, 'alice@campus.test', 'bob@example.org',
	"From: alice\@campus.test\r\nTo: bob\@example.org\r\nSubject: reloaded\r\nX-Test: reloaded\r\n\r\nx\r\n");
my $data = arrived('reloaded') // '';
my ($rout, $rrc) = verify($data);
is $rrc, 0, 'after SIGHUP: signed with the new key and verified' or diag $rout;
like $rout, qr/\Apass d=campus\.test s=rsa2 a=rsa-sha256\n\z/, '... one signature, s=rsa2';
$m->set_config(dkim_sign => "campus.test gone $keys/gone.key");
hup(qr/reload: keeping the old configuration: .*:\d+: dkim_sign campus\.test: cannot read/,
    'an unreadable key keeps the old configuration');
send_raw($s, 'alice@campus.test', 'bob@example.org',
	"From: alice\@campus.test\r\nTo: bob\@example.org\r\nSubject: kept\r\nX-Test: kept\r\n\r\nx\r\n");
($rout, $rrc) = verify(arrived('kept') // '');
like $rout, qr/\Apass d=campus\.test s=rsa2 /, '... and mail is still signed with it' or diag $rout;
$m->dialog($s, "> QUIT\n< 221 *\n< [closed]\n");

# ---- an unreadable key: mtad -n says where, mtad does not start ----
$m->stop;
my $bad_conf = MtadTest->new(start => 0, extra => "dkim_sign = campus.test x $keys/missing.key ed25519-sha256\n");
my ($nrc, $nout, $nerr) = MtadTest::run("$MtadTest::BUILD/mtad", '-n', '-c', $bad_conf->conf_path);
isnt $nrc, 0, 'mtad -n fails on a missing key';
my $line = () = (MtadTest::slurp($bad_conf->conf_path) =~ /\A(.*?)^dkim_sign/ms)[0] =~ /\n/g;
like $nout . $nerr, qr/\Q${\ $bad_conf->conf_path}\E:\Q${\ ($line + 1)}\E: dkim_sign campus\.test: cannot read \Q$keys\E\/missing\.key/,
	'... at the dkim_sign line, with the reason' or diag $nout . $nerr;
my $wrong = MtadTest->new(start => 0,
	extra => "dkim_sign = campus.test x $keys/campus.test.ed1.key rsa-sha256\n");
($nrc, $nout, $nerr) = MtadTest::run("$MtadTest::BUILD/mtad", '-n', '-c', $wrong->conf_path);
like $nout . $nerr, qr/dkim_sign campus\.test: .*not an RSA key/, 'mtad -n: a key of the wrong algorithm';
for my $c (["campus.test s $keys/k.key rsa-sha1", qr/unknown algorithm "rsa-sha1"/],
	   ["campus.test s relative.key", qr/must be an absolute path/],
	   ["campus.test", qr/dkim_sign wants DOMAIN SELECTOR KEYFILE/],
	   ["bad..domain s $keys/k.key", qr/bad domain/]) {
	my $t = MtadTest->new(start => 0, extra => "dkim_sign = $c->[0]\n");
	my ($crc, $cout, $cerr) = MtadTest::run("$MtadTest::BUILD/mtad", '-n', '-c', $t->conf_path);
	like $cout . $cerr, qr/\Q${\ $t->conf_path}\E:\d+: .*$c->[1]/, "config error as file:line: dkim_sign = $c->[0]";
}
ok !$bad_conf->try_start, 'mtad does not start with a key it cannot read';
like $bad_conf->log_text, qr/dkim_sign campus\.test: cannot read/, '... and says why';

done_testing;
