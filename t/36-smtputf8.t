# 36-smtputf8.t - SMTPUTF8 (RFC 6531) end to end: a real client (Python's
# smtplib, mail_options=['SMTPUTF8']) sends from and to UTF-8 addresses;
# mtad stores them and relays them unchanged to a next hop that offers
# SMTPUTF8 (byte-exact MAIL/RCPT and body), bounces them (5.6.7, alone:
# an ASCII message on the same connection is delivered) at a next hop that
# does not, refuses non-ASCII without SMTPUTF8 (553 5.6.7), treats a
# Cyrillic look-alike of the local domain as foreign (relay denied), and
# looks up an IDN's MX under its A-label (t/lib/FakeDNS.pm).
#
#   campus.test (local)          -> sink U (offers SMTPUTF8): bounces land here
#   παράδειγμα.test (relay_domains as xn--hxajbheg2az3al.test) -> sink U
#   bücher.test (xn--bcher-kva.test) -> sink N (no SMTPUTF8)
#   münchen.test, a route written with U-labels, by MX -> sink U's port
# 127.0.0.1 is not in relay_networks: relay control applies.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;
use FakeDNS;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;

# UTF-8 octets (the test file is ASCII): Perl strings of bytes throughout.
my $JOSE = "jos\xc3\xa9\@campus.test";
my $GREEK_LOCAL = "\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae";	# δοκιμή
my $GREEK_DOM = "\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc\xce\xb1.test";
my $GREEK = "$GREEK_LOCAL\@$GREEK_DOM";				# δοκιμή@παράδειγμα.test
my $BUCHER = "b\xc3\xbccher.test";					# bücher.test
my $MUNCHEN = "m\xc3\xbcnchen.test";					# münchen.test
my $LOOKALIKE = "c\xd0\xb0mpus.test";					# Cyrillic а

my $U = Sink->new(smtputf8 => 1, data => '250 2.0.0 Ok: queued as UTF8');
my $N = Sink->new(greeting => '421 4.3.2 not yet', data => '250 2.0.0 Ok: queued as SEVEN');
my ($pu, $pn) = ($U->port, $N->port);
my $dns = FakeDNS->new(records => [
	'MX   xn--mnchen-3ya.test        10 mx.xn--mnchen-3ya.test',
	'A    mx.xn--mnchen-3ya.test     127.0.0.1',
]);

# destination_concurrency 1: the two messages for sink N share one connection.
my $m = MtadTest->new(retry_min => 3600, retry_max => 3600, dns_servers => $dns->servers,
		      dns_timeout => 3, destination_concurrency => 1,
		      relay_domains => 'xn--hxajbheg2az3al.test, xn--bcher-kva.test, xn--mnchen-3ya.test',
		      extra => <<"END");
route = campus.test [127.0.0.1]:$pu
route = xn--hxajbheg2az3al.test [127.0.0.1]:$pu
route = xn--bcher-kva.test [127.0.0.1]:$pn
route = $MUNCHEN $MUNCHEN:$pu
END

# py_send(FROM, [TO...], MESSAGE, [OPTIONS]) - one message over Python's
# smtplib; returns "ok" or "refused CODE TEXT" (hex on the command line
# so no locale decides what the bytes are).
my $PY = <<'EOF';
import json, smtplib, sys
h = lambda s: bytes.fromhex(s).decode('utf-8')
port, frm, tos, msg, opts = sys.argv[1:6]
s = smtplib.SMTP('127.0.0.1', int(port), local_hostname='client.example', timeout=60)
try:
    r = s.sendmail(h(frm), [h(t) for t in tos.split(',')], bytes.fromhex(msg),
                   mail_options=[o for o in opts.split(',') if o])
    print('ok' if not r else 'partial ' + json.dumps({k: [v[0], v[1].decode()] for k, v in r.items()}))
except smtplib.SMTPRecipientsRefused as e:
    print('refused ' + ' '.join('%d %s' % (c, t.decode('utf-8', 'replace')) for c, t in e.recipients.values()))
except smtplib.SMTPSenderRefused as e:
    print('refused %d %s' % (e.smtp_code, e.smtp_error.decode('utf-8', 'replace')))
except smtplib.SMTPResponseException as e:
    print('refused %d %s' % (e.smtp_code, e.smtp_error.decode('utf-8', 'replace')))
s.quit()
EOF
sub py_send {
	my ($from, $to, $msg, $opts) = @_;
	my ($rc, $out, $err) = MtadTest::run('python3', '-c', $PY, $m->port, unpack('H*', $from),
		join(',', map { unpack('H*', $_) } @$to), unpack('H*', $msg),
		join(',', @{ $opts // ['SMTPUTF8'] }));
	chomp $out;
	diag "python3: $err" if $rc != 0;
	return $out;
}

# message(SUBJECT) - a message with UTF-8 in its header and body, CRLF.
sub message {
	my ($subject) = @_;
	return "From: Jos\xc3\xa9 <$JOSE>\r\nTo: <$GREEK>\r\nSubject: $subject\r\n"
		. "Message-ID: <$subject\@campus.test>\r\nMIME-Version: 1.0\r\n"
		. "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		. "\xce\x93\xce\xb5\xce\xb9\xce\xac \xcf\x83\xce\xbf\xcf\x85 \xe2\x80\x94 caf\xc3\xa9\r\n"
		. ".a dot line\r\nlast\r\n";
}

# queued_id - the queue id of the newest "queued as" in the log after OFF.
sub queued_ids {
	my ($off) = @_;
	return substr($m->log_text, $off) =~ /\b([0-9A-Z]{14}): client=/g;
}

sub with_subject {
	my ($sink, $subject) = @_;
	return grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $sink->messages;
}

sub arrived {
	my ($sink, $subject) = @_;
	my @m;
	MtadTest::wait_for(30, sub { @m = with_subject($sink, $subject) });
	return @m;
}

# after_received(DATA) - the message without mtad's Received: header.
sub after_received {
	my ($data) = @_;
	$data =~ s/\AReceived: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*//;
	return $data;
}

# ---- EHLO ----
my $s = $m->raw;
my $ehlo = $m->send_recv($s, "EHLO client.example\r\n") // '';
like $ehlo, qr/^250-SMTPUTF8\r$/m, 'EHLO advertises SMTPUTF8';
like $ehlo, qr/^250-8BITMIME\r$/m, '... and 8BITMIME';

# ---- no SMTPUTF8: non-ASCII addresses are refused as Postfix does ----
is $m->send_recv($s, "MAIL FROM:<$JOSE>\r\n"),
	"553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n",
	'MAIL FROM:<josé@campus.test> without SMTPUTF8: 553 5.6.7';
is $m->send_recv($s, "MAIL FROM:<a\@sender.test>\r\n"), "250 2.1.0 Ok\r\n", 'MAIL FROM ASCII: 250';
is $m->send_recv($s, "RCPT TO:<$GREEK_LOCAL\@campus.test>\r\n"),
	"553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n",
	'RCPT TO:<δοκιμή@campus.test> in a transaction without SMTPUTF8: 553 5.6.7';
is $m->send_recv($s, "RCPT TO:<u\@campus.test>\r\n"), "250 2.1.5 Ok\r\n",
	'... an ASCII RCPT in it still works';
is $m->send_recv($s, "RSET\r\n"), "250 2.0.0 Ok\r\n", 'RSET';
is $m->send_recv($s, "MAIL FROM:<jos\xc3\@campus.test> SMTPUTF8\r\n"),
	"500 5.5.2 Error: bad UTF-8 syntax\r\n", 'a truncated UTF-8 sequence: 500 5.5.2';
is $m->send_recv($s, "MAIL FROM:<jos\xc0\xa9\@campus.test> SMTPUTF8\r\n"),
	"500 5.5.2 Error: bad UTF-8 syntax\r\n", 'an overlong UTF-8 sequence: 500 5.5.2';

# ---- the Cyrillic look-alike of campus.test is a foreign domain ----
is $m->send_recv($s, "MAIL FROM:<a\@sender.test> SMTPUTF8\r\n"), "250 2.1.0 Ok\r\n",
	'MAIL FROM:<a@sender.test> SMTPUTF8: 250';
is $m->send_recv($s, "RCPT TO:<u\@$LOOKALIKE>\r\n"),
	"554 5.7.1 <u\@$LOOKALIKE>: Relay access denied\r\n",
	'RCPT TO:<u@cаmpus.test> (Cyrillic а): 554 5.7.1 Relay access denied';
is $m->send_recv($s, "RCPT TO:<u\@$GREEK_LOCAL.test>\r\n"),
	"554 5.7.1 <u\@$GREEK_LOCAL.test>: Relay access denied\r\n",
	'RCPT TO a foreign U-label domain: 554 5.7.1 Relay access denied';
is $m->send_recv($s, "RCPT TO:<u\@CAMPUS.test>\r\n"), "250 2.1.5 Ok\r\n",
	'RCPT TO:<u@CAMPUS.test>: the local domain, any case: 250';
is $m->send_recv($s, "RCPT TO:<$GREEK_LOCAL\@$GREEK_DOM>\r\n"), "250 2.1.5 Ok\r\n",
	'RCPT TO:<δοκιμή@παράδειγμα.test>: its A-label is in relay_domains: 250';
is $m->send_recv($s, "QUIT\r\n"), "221 2.0.0 Bye\r\n", 'QUIT';
close $s;

# ---- relayed unchanged to a next hop that offers SMTPUTF8 ----
my $off = length $m->log_text;
my $msg = message('greek');
is py_send($JOSE, [$GREEK], $msg), 'ok', 'smtplib SMTPUTF8: josé@campus.test -> δοκιμή@παράδειγμα.test';
my ($qid) = queued_ids($off);
my @got = arrived($U, 'greek');
is scalar(@got), 1, 'it arrives at the SMTPUTF8 sink once';
my $g = $got[0] // { to => [], data => '', mail_line => '' };
like $g->{mail_line}, qr/\AMAIL FROM:<\Q$JOSE\E> SIZE=\d+ BODY=8BITMIME SMTPUTF8\z/,
	'... MAIL FROM:<josé@campus.test> SIZE=n BODY=8BITMIME SMTPUTF8, byte for byte (the body is 8-bit)'
	or diag $g->{mail_line};
is $g->{from}, $JOSE, '... the sender unchanged';
is_deeply $g->{to}, [$GREEK], '... RCPT TO:<δοκιμή@παράδειγμα.test>, the U-labels unchanged';
is after_received($g->{data}), $msg, '... header and body byte for byte behind our Received:';
ok $m->delivery_log($qid // 'NONE', $GREEK, 'sent', $off), "log: $qid to=<δοκιμή@...> status=sent";
my $rc;

# ---- an IDN's MX is looked up under its A-label ----
$off = length $m->log_text;
is py_send($JOSE, ["u\@$MUNCHEN"], message('munchen')), 'ok', 'smtplib SMTPUTF8: to u@münchen.test';
@got = arrived($U, 'munchen');
is scalar(@got), 1, '... it arrives through the MX of xn--mnchen-3ya.test';
is_deeply $got[0]{to} // [], ["u\@$MUNCHEN"], '... RCPT TO:<u@münchen.test> as the client wrote it';
my @q = $dns->queries;
ok((grep { /^(?:udp|tcp) xn--mnchen-3ya\.test MX$/ } @q), 'DNS was asked for the MX of xn--mnchen-3ya.test')
	or diag "@q";
ok(!(grep { /[\x80-\xff]/ } @q), '... and never for a name with 8-bit octets') or diag "@q";

# ---- a next hop without SMTPUTF8: that message bounces, the ASCII one goes ----
$off = length $m->log_text;
is py_send($JOSE, ["$GREEK_LOCAL\@$BUCHER"], message('to-seven')), 'ok',
	'smtplib SMTPUTF8: to δοκιμή@bücher.test (a next hop without SMTPUTF8)';
is py_send('a@sender.test', ['plain@xn--bcher-kva.test'],
	   "From: <a\@sender.test>\r\nSubject: plain\r\n\r\nascii only\r\n", []), 'ok',
	'smtplib, no SMTPUTF8: a@sender.test -> plain@xn--bcher-kva.test';
my ($q8, $q7) = queued_ids($off);
ok $m->delivery_log($q8 // 'NONE', "$GREEK_LOCAL\@$BUCHER", 'deferred', $off),
	'the next hop says 421 at first: deferred';
ok $m->delivery_log($q7 // 'NONE', 'plain@xn--bcher-kva.test', 'deferred', $off), '... both';
my ($src, $show8) = $m->mtaq('show', $q8 // 'NONE');
like $show8, qr/^sender: \Q$JOSE\E$/m, 'mtaq show: the UTF-8 sender as it came';
like $show8, qr/^smtputf8: yes/m, 'mtaq show: smtputf8: yes (the flag in the envelope)';
my (undef, $show7) = $m->mtaq('show', $q7 // 'NONE');
unlike $show7, qr/^smtputf8:/m, '... not for the ASCII message';
$N->set(greeting => undef);
my $before = $N->connections;
$off = length $m->log_text;
($rc) = $m->mtaq('flush', 'ALL');
is $rc, 0, 'mtaq flush ALL: both due now';
my $log = $m->delivery_log($q8 // 'NONE', "$GREEK_LOCAL\@$BUCHER", 'bounced', $off) // {};
is $log->{dsn}, '5.6.7', 'the SMTPUTF8 message bounces: dsn=5.6.7' or diag $log->{line};
like $log->{reply} // '', qr/SMTPUTF8 is required, but was not offered by host 127\.0\.0\.1\[127\.0\.0\.1\]/,
	'... "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]"' or diag $log->{line};
@got = arrived($N, 'plain');
is scalar(@got), 1, 'the ASCII message is delivered to the same next hop';
is $got[0]{mail_line} // '', 'MAIL FROM:<a@sender.test> SIZE=' . ($got[0]{mail_line} =~ /SIZE=(\d+)/)[0],
	'... MAIL without SMTPUTF8 or BODY=';
is scalar(with_subject($N, 'to-seven')), 0, 'the SMTPUTF8 message never reached it';
my $conns = $N->connections - $before;
is $conns, 1, '... over one connection (destination_concurrency 1): the bounce did not close it'
	or diag "connections: $conns";
my @b = ();
MtadTest::wait_for(30, sub { @b = grep { $_->{from} eq '' } $U->messages });
is scalar(@b), 1, 'a bounce goes to josé@campus.test';
my $bounce = $b[0] // { to => [], data => '', mail_line => '' };
is_deeply $bounce->{to}, [$JOSE], '... RCPT TO:<josé@campus.test>';
like $bounce->{mail_line}, qr/\AMAIL FROM:<> SIZE=\d+ SMTPUTF8\z/,
	'... sent with SMTPUTF8, its recipient being UTF-8' or diag $bounce->{mail_line};
my $dsn = Sink::parse_dsn($bounce->{data});
my ($r0) = @{ $dsn->{recipients} // [] };
is $r0->{status}, '5.6.7', '... Status: 5.6.7';
is $r0->{action}, 'failed', '... Action: failed';
like $r0->{'diagnostic-code'} // '', qr/SMTPUTF8 is required, but was not offered by host/,
	'... Diagnostic-Code: SMTPUTF8 is required, ...';

MtadTest::wait_for(30, sub { $m->queue_count == 0 });
is $m->queue_count, 0, 'the queue is empty';
done_testing;
