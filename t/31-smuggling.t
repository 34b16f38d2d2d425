# 31-smuggling.t - SMTP smuggling (2023): only <CRLF>.<CRLF> ends DATA.
# A body with a bare-LF or bare-CR "end of data" followed by a second
# envelope must not become two messages, under both settings of
# bare_newline. reject: mtad refuses such a body (550 5.6.0; here any
# 5xx with an enhanced code will do, as long as nothing is queued).
# normalize (the default): the fake end is not an end, the message goes
# on to the real <CRLF>.<CRLF> and is one message to its one recipient,
# the "smuggled" commands inside it as text.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

for my $mode ('reject', 'normalize') {
	smuggling($mode);
}

done_testing;

# smuggling(MODE) - every case under bare_newline = MODE.
sub smuggling {
	my ($mode) = @_;
	my $m = MtadTest->new(bare_newline => $mode);
	my $EHLO = "> EHLO client.example\n" . MtadTest::ehlo_script('client.example');
	my $ENVELOPE = <<~'END';
		> MAIL FROM:<sender@b.test>
		< 250 2.1.0 *
		> RCPT TO:<u@campus.test>
		< 250 2.1.5 *
		> DATA
		< 354 *
	END
	my $SMUGGLED = "MAIL FROM:<evil\@x.test>\r\nRCPT TO:<victim\@campus.test>\r\n"
		. "DATA\r\nsmuggled\r\n";

	# [name, the fake end of data]
	my @fake_ends = (
		['<LF>.<CRLF>',   "\n.\r\n"],
		['<CRLF>.<LF>',   "\r\n.\n"],
		['<LF>.<LF>',     "\n.\n"],
		['<CR>.<CR>',     "\r.\r"],
		['<CRLF>.<CR>',   "\r\n.\r"],
		['<CR>.<CRLF>',   "\r.\r\n"],
		['<CRLF>.<CR><CRLF>', "\r\n.\r\r\n"],
	);

	for my $case (@fake_ends) {
		my ($name, $seq) = @$case;
		my $s = $m->raw;
		$m->dialog($s, $EHLO . $ENVELOPE);
		$m->send_bytes($s, "Subject: $name\r\n\r\nhello" . $seq . $SMUGGLED . "\r\n.\r\n" . "QUIT\r\n");
		my $r = $m->read_reply($s) // '';
		if ($mode eq 'reject') {
			like $r, qr/\A5\d\d 5\.\d\.\d [^\r\n]*\r\n\z/, "$mode $name: the body is refused";
			like $r, qr/\A550 5\.6\.0 /, "$mode $name: ... with 550 5.6.0";
		} else {
			like $r, qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\r\n\z/,
				"$mode $name: one message, ended by the real <CRLF>.<CRLF>";
			my ($qid) = $r =~ /queued as (\S+)/;
			my (undef, $show) = $m->mtaq('show', $qid // 'NONE');
			my (undef, $body) = $m->mtaq('show', '--body', $qid // 'NONE');
			like $body, qr/\r\nDATA\r\nsmuggled\r\n\r\n\z/, "$mode $name: the smuggled text is inside it";
			is join(',', $show =~ /^recipient: (\S+)/mg), 'u@campus.test',
				"$mode $name: its one recipient is the real one";
			my (undef, $del) = $m->mtaq('delete', $qid // 'NONE');
		}
		like $m->read_reply($s) // '', qr/\A221 /, "$mode $name: the next reply is QUIT's 221";
		ok $m->closed($s), "$mode $name: closed";
		is $m->queue_count, 0, "$mode $name: nothing else queued";
	}

	# The same, pipelined with the envelope in one write.
	for my $case (@fake_ends) {
		my ($name, $seq) = @$case;
		my $s = $m->raw;
		$m->dialog($s, $EHLO);
		$m->send_bytes($s, "MAIL FROM:<sender\@b.test>\r\nRCPT TO:<u\@campus.test>\r\nDATA\r\n"
			. "hello" . $seq . $SMUGGLED . "\r\n.\r\nQUIT\r\n");
		my @r;
		while (defined(my $x = $m->read_reply($s))) { push @r, $x }
		is scalar(@r), 5, "$mode $name pipelined: five replies" or diag explain \@r;
		if ($mode eq 'reject') {
			like $r[3] // '', qr/\A5\d\d 5\.\d\.\d /, "$mode $name pipelined: the body is refused";
		} else {
			like $r[3] // '', qr/\A250 2\.0\.0 Ok: queued as /, "$mode $name pipelined: one message";
			my ($qid) = ($r[3] // '') =~ /queued as (\S+)/;
			$m->mtaq('delete', $qid // 'NONE');
		}
		like $r[4] // '', qr/\A221 /, "$mode $name pipelined: then 221";
		is $m->queue_count, 0, "$mode $name pipelined: nothing else queued";
	}

	# Legitimate bodies: a line of two dots, and command-like text that is
	# only text because it is inside one message.
	my $s = $m->raw;
	my @r = $m->dialog($s, $EHLO . $ENVELOPE . <<~'END' . $ENVELOPE . <<~'END');
		> Subject: dots
		>
		> a
		> ..
		> b
		> .
		< 250 2.0.0 Ok: queued as *
	END
		> Subject: looks like commands
		>
		> hello
		> MAIL FROM:<evil@x.test>
		> RCPT TO:<victim@campus.test>
		> DATA
		> smuggled
		> .
		< 250 2.0.0 Ok: queued as *
		> QUIT
		< 221 2.0.0 *
	END
	my @qids = map { /queued as ([0-9A-Z]{14})/ ? $1 : () } @r;
	is scalar(@qids), 2, "$mode: two legitimate messages queued";
	is $m->queue_count, 2, "$mode: and only those two";
	my ($rc, $body) = $m->mtaq('show', '--body', $qids[0] // 'NONE');
	like $body =~ s/\r\n/\n/gr, qr/\na\n\.\nb\n\z/, "$mode: the .. line arrives as .";
	my ($list_rc, $list) = $m->mtaq('list');
	unlike $list, qr/victim\@/, "$mode: no message is addressed to the smuggled recipient";
}
