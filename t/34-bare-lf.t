# 34-bare-lf.t - bare_newline: a bare LF in DATA. normalize (the
# default, Postfix 3.9's smtpd_forbid_bare_newline = normalize): a bare LF
# ends its line and is stored as CRLF, a bare CR stays data, a "." line
# next to a bare LF is dropped and never ends DATA, and a log line counts
# them. reject: 550 5.6.0 and nothing stored. The stored bytes are
# checked exactly; the smuggling sequences never make a second message.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $QID = qr/[0-9A-Z]{14}/;
my $EHLO = "> EHLO client.example\n" . MtadTest::ehlo_script('client.example');
my $ENV = "MAIL FROM:<a\@b.test>\r\nRCPT TO:<u\@campus.test>\r\nDATA\r\n";

# stored(M, QID) - the body after our Received: header, bytes exact.
sub stored {
	my ($m, $qid) = @_;
	my ($rc, $out) = $m->mtaq('show', '--body', $qid // 'NONE');
	return undef if $rc != 0;
	$out =~ s/\AReceived: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*// or return undef;
	return $out;
}

# send(M, BODY) - one transaction in one write; the DATA reply and QUIT's.
sub send_body {
	my ($m, $body) = @_;
	my $s = $m->raw;
	$m->dialog($s, $EHLO);
	$m->send_bytes($s, $ENV . $body . "QUIT\r\n");
	my @r;
	while (defined(my $x = $m->read_reply($s))) { push @r, $x }
	return @r;
}

# [name, DATA as sent (end included), stored bytes, bare LFs, "." lines dropped]
my @cases = (
	['bare LF lines', "Subject: lf\n\nline one\nline two\n.\r\n", undef, 0, 0],
	['bare LF lines, CRLF end', "Subject: lf\n\nline one\nline two\r\n.\r\n",
	 "Subject: lf\r\n\r\nline one\r\nline two\r\n", 3, 0],
	['bare CR kept', "Subject: cr\r\n\r\na\rb\r\n.\r\n", "Subject: cr\r\n\r\na\rb\r\n", 0, 0],
	['dot-stuffing after a bare LF', "Subject: d\r\n\r\nx\n..y\r\n.\r\n",
	 "Subject: d\r\n\r\nx\r\n.y\r\n", 1, 0],
	['<LF>.<LF> dropped', "Subject: s\r\n\r\nhello\n.\nMAIL FROM:<e\@x.test>\r\n.\r\n",
	 "Subject: s\r\n\r\nhello\r\nMAIL FROM:<e\@x.test>\r\n", 2, 1],
	['<LF>.<CRLF> dropped', "Subject: s\r\n\r\nhello\n.\r\nRCPT TO:<v\@campus.test>\r\n.\r\n",
	 "Subject: s\r\n\r\nhello\r\nRCPT TO:<v\@campus.test>\r\n", 1, 1],
	['<CRLF>.<LF> dropped', "Subject: s\r\n\r\nhello\r\n.\nDATA\r\n.\r\n",
	 "Subject: s\r\n\r\nhello\r\nDATA\r\n", 1, 1],
	['<CR>.<CR> is data', "Subject: s\r\n\r\nhello\r.\rQUIT\r\n.\r\n",
	 "Subject: s\r\n\r\nhello\r.\rQUIT\r\n", 0, 0],
);
# The first case never ends (its only "." line follows a bare LF): it is
# the client's stream that is wrong; the second ends it properly.
shift @cases;

{
	my $m = MtadTest->new;	# bare_newline = normalize by default
	my $n = 0;
	for my $c (@cases) {
		my ($name, $data, $want, $lfs, $dropped) = @$c;
		my @r = send_body($m, $data);
		like $r[3] // '', qr/\A250 2\.0\.0 Ok: queued as ($QID)\r\n\z/, "normalize $name: queued"
			or diag explain \@r;
		like $r[4] // '', qr/\A221 /, "normalize $name: then QUIT's 221 (one message)";
		my ($qid) = ($r[3] // '') =~ /($QID)/;
		is stored($m, $qid), $want, "normalize $name: stored bytes";
		$n++;
		if ($lfs) {
			ok $m->wait_log(qr/\Q$qid\E: bare <LF> received from unknown\[127\.0\.0\.1\]: $lfs normalized, $dropped "\." line\(s\) dropped/),
				"normalize $name: logged, with the count";
		}
	}
	is $m->queue_count, $n, 'normalize: one message per transaction, none smuggled';
	my (undef, $list) = $m->mtaq('list');
	unlike $list, qr/v\@campus|e\@x\.test/, 'normalize: no smuggled envelope';
	ok $m->wait_log(qr/disconnect from .* commands=\S+ notes=bare_lf$/),
		'normalize: the disconnect line notes bare_lf, as Postfix';

	# A message that never sees <CRLF>.<CRLF> after its bare-LF "." does not end.
	my $s = $m->raw;
	$m->dialog($s, $EHLO);
	$m->send_bytes($s, $ENV . "x\n.\n" . "QUIT\r\n");
	my @env = map { $m->read_reply($s) // '' } 1 .. 3;
	like $env[2], qr/\A354 /, 'normalize: MAIL, RCPT, DATA: 354';
	is $m->read_reply($s, 2), undef, 'normalize: x<LF>.<LF> and QUIT: no reply, still DATA';
	$m->send_bytes($s, "\r\n.\r\n");
	like $m->read_reply($s) // '', qr/\A250 2\.0\.0 Ok: queued as $QID/,
		'normalize: it ends at <CRLF>.<CRLF>';
	my $qid;
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
	is $m->queue_count, $n + 1, 'normalize: and it is one message';

	# BDAT chunks are data, not normalized.
	$s = $m->raw;
	$m->dialog($s, $EHLO);
	my $c = "a\nb\n.\n";
	$m->send_bytes($s, "MAIL FROM:<a\@b.test>\r\nRCPT TO:<u\@campus.test>\r\nBDAT "
		. length($c) . " LAST\r\n$c");
	my @r = map { $m->read_reply($s) } 1 .. 3;
	($qid) = ($r[2] // '') =~ /($QID)/;
	is stored($m, $qid), $c, 'normalize: a BDAT chunk is stored as sent';
}

{
	my $m = MtadTest->new(bare_newline => 'reject');
	for my $c (@cases) {
		my ($name, $data, $want, $lfs) = @$c;
		my @r = send_body($m, $data);
		if ($lfs || $data =~ /[^\r]\n|\r[^\n]/) {
			is $r[3] // '', "550 5.6.0 Error: bare <CR> or <LF> in message; lines must end with <CR><LF>\r\n",
				"reject $name: 550 5.6.0";
		} else {
			like $r[3] // '', qr/\A250 /, "reject $name: accepted";
		}
		like $r[4] // '', qr/\A221 /, "reject $name: then QUIT's 221";
	}
	is $m->queue_count, 0, 'reject: nothing queued';
	ok !$m->wait_log(qr/bare <LF> received/, 0, 0), 'reject: no normalize line';
}

# ---- a real client: swaks sending its data as it is (--no-data-fixup) ----
SKIP: {
	skip 'swaks is not installed (etc/packages)', 4 unless -x '/usr/bin/swaks';
	my $m = MtadTest->new;
	my $file = $m->dir . '/swaks-data';
	my $data = "Subject: swaks\nX-Tag: swaks-lf\n\nan old script\n..with a dot\nends right\r\n.";	# swaks adds the CRLF
	open my $fh, '>:raw', $file or die "$file: $!";
	print $fh $data;
	close $fh;
	my ($rc, $out, $err) = MtadTest::run('/usr/bin/swaks', '--server', '127.0.0.1:' . $m->port,
		'--helo', 'client.example', '--from', 'a@b.test', '--to', 'u@campus.test',
		'--data', $file, '--no-data-fixup');
	is $rc, 0, 'swaks: exit 0' or diag $out . $err;
	my ($qid) = $out =~ /<-  250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})/;
	ok $qid, 'swaks: queued' or diag $out;
	is stored($m, $qid), "Subject: swaks\r\nX-Tag: swaks-lf\r\n\r\nan old script\r\n.with a dot\r\nends right\r\n",
		'swaks: its bare LFs stored as CRLF, the stuffing dot removed';
	ok $m->wait_log(qr/\Q$qid\E: bare <LF> received from .*: 5 normalized/), 'swaks: logged';
}

# ---- the keys: mtad -n prints them, and a bad value is an error at its line ----
{
	my $t = MtadTest->new(start => 0);
	my ($rc, $out) = MtadTest::run("$MtadTest::BUILD/mtad", '-n', '-c', $t->conf_path, 'bare_newline');
	is $out, "bare_newline = normalize\n", 'mtad -n: bare_newline defaults to normalize';
	for my $k (['bare_newline', 'maybe', 'normalize|reject'], ['smtp_use_chunking', 'sometimes', 'yes|no']) {
		my $bad = MtadTest->new(start => 0, extra => "$k->[0] = $k->[1]\n");
		my $line = () = MtadTest::slurp($bad->conf_path) =~ /\n/g;
		my ($brc, $bout, $berr) = MtadTest::run("$MtadTest::BUILD/mtad", '-n', '-c', $bad->conf_path);
		isnt $brc, 0, "mtad -n refuses $k->[0] = $k->[1]";
		like $bout . $berr, qr/\Q${\ $bad->conf_path}\E:$line: .*\Q$k->[0]\E/, "... at its file:line"
			or diag $bout . $berr;
	}
}

done_testing;
