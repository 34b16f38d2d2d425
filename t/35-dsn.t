# 35-dsn.t - delivery status notifications (RFC 3461-3464) end to end:
#   EHLO offers DSN; MAIL's RET= and ENVID=, RCPT's NOTIFY= and ORCPT=
#        are accepted, and bad or repeated ones refused with exact replies;
#        MAIL and RCPT lines may be 515 octets over 512 (RFC 3461 §4)
#   a next hop that offers DSN gets them passed on, byte for byte (ENVID
#        and ORCPT as xtext), and mtad sends no notice of its own
#   a next hop without DSN: nothing passed on; NOTIFY=SUCCESS gets mtad's
#        own "relayed" notice (Action, Status, Original-Recipient,
#        Final-Recipient, Original-Envelope-Id, Remote-MTA)
#   a 550 with RET=HDRS returns the headers, with RET=FULL the whole
#        message (headers only over 50000 bytes); NOTIFY=NEVER: no bounce
#   delay_warning_time (4s here): one "delayed" notice, only for the
#        recipients whose NOTIFY allows it, never a second one; the
#        message is still delivered once the peer takes it
#   LMTP (a scripted server) with NOTIFY=SUCCESS: our "delivered" notice
#   an alias (a second mtad with alias_maps): each address it expands to
#        keeps the RCPT's NOTIFY, and its ORCPT is the address given
#   mtaq show prints RET, ENVID, NOTIFY and ORCPT
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use POSIX qw(_exit);
use Test::More;
use MtadTest;
use Sink;

my $QID = qr/[0-9A-Z]{14}/;

my $dsnhop = Sink->new(ext => ['DSN']);		# dsn.test: offers DSN
my $plain = Sink->new(rcpt => { 'bad@plain.test' => '550 5.1.1 no such user' });	# plain.test
my $senders = Sink->new;			# sender.test: where notices go
my $refuser = Sink->new(greeting => '554 5.3.2 no mail here');	# refuse.test
my ($pd, $pp, $ps) = ($dsnhop->port, $plain->port, $senders->port);

# lmtp_peer - a forked LMTP server (RFC 2033) on a free loopback port:
# LHLO without DSN, 250 to everything, one 250 per recipient after the
# data. Stopped (by PID) at the end.
my @peer_pids;
sub lmtp_peer {
	my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
					   Listen => 5, ReuseAddr => 1) or die "listen: $!";
	my $port = $listen->sockport;
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		alarm 300;
		while (my $c = $listen->accept) {
			$c->autoflush(1);
			my $say = sub { print $c map { "$_\r\n" } @_ };
			$say->('220 lmtp.test LMTP ready');
			my $n = 0;
			while (defined(my $line = <$c>)) {
				my ($verb) = uc($line) =~ /\A(\w+)/;
				$verb //= '';
				if ($verb eq 'QUIT') { $say->('221 2.0.0 bye'); last }
				elsif ($verb eq 'LHLO') { $say->('250-lmtp.test', '250-ENHANCEDSTATUSCODES', '250 PIPELINING') }
				elsif ($verb eq 'MAIL') { $n = 0; $say->('250 2.1.0 OK') }
				elsif ($verb eq 'RCPT') { $n++; $say->('250 2.1.5 OK') }
				elsif ($verb eq 'DATA') {
					$say->('354 go ahead');
					while (defined(my $b = <$c>)) { last if $b eq ".\r\n" }
					$say->('250 2.0.0 Saved') for 1 .. $n;
				}
				else { $say->('250 2.0.0 OK') }
			}
			close $c;
		}
		_exit(0);
	}
	close $listen;
	push @peer_pids, $pid;
	return $port;
}
END { local $?; for my $p (@peer_pids) { kill 'TERM', $p; waitpid $p, 0 } }
my $pl = lmtp_peer();

my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 1, retry_max => 2,
		      delay_warning_time => '4s', extra => <<"END");
route = dsn.test [127.0.0.1]:$pd
route = plain.test [127.0.0.1]:$pp
route = sender.test [127.0.0.1]:$ps
route = lmtp.test lmtp:[127.0.0.1]:$pl
route = refuse.test [127.0.0.1]:${\ $refuser->port}
END

# notices(SUBJECT) - the DSNs at the senders' sink about the message SUBJECT.
sub notices {
	my ($subject) = @_;
	return grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m } $senders->messages;
}

# wait_notice(SUBJECT) - the first DSN about SUBJECT, parsed ({} after 30 s).
sub wait_notice {
	my ($subject) = @_;
	my @n;
	MtadTest::wait_for(30, sub { @n = notices($subject) });
	return @n ? ($n[0], Sink::parse_dsn($n[0]{data})) : ({ to => [], data => '' }, { recipients => [], parts => [], headers => {}, message => {} });
}

# at_sink(SINK, SUBJECT) - the message SUBJECT as the sink got it (undef after 30 s).
sub at_sink {
	my ($sink, $subject) = @_;
	my @got;
	MtadTest::wait_for(30, sub { @got = grep { $_->{data} =~ /^Subject: \Q$subject\E\r?$/m }
					    $sink->messages });
	return $got[0];
}

# send_dsn(MAIL_PARAMS, [[RCPT, PARAMS], ...], SUBJECT, BODY) - one
# transaction with DSN parameters; the queue id or 'NONE'.
sub send_dsn {
	my ($mp, $rcpts, $subject, $body) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $s = $m->raw;
	my $script = "> EHLO client.example\n" . MtadTest::ehlo_script('client.example')
		. "> MAIL FROM:<a\@sender.test>$mp\n< 250 2.1.0 Ok\n";
	$script .= "> RCPT TO:<$_->[0]>$_->[1]\n< 250 2.1.5 Ok\n" for @$rcpts;
	$script .= "> DATA\n< 354 *\n> Subject: $subject\n> From: <a\@sender.test>\n>\n"
		. join('', map { "> $_\n" } split /\n/, $body)
		. "> .\n< 250 2.0.0 Ok: queued as *\n> QUIT\n< 221 2.0.0 Bye\n";
	my @r = $m->dialog($s, $script);
	my ($qid) = map { /queued as ($QID)/ ? $1 : () } @r;
	return $qid // 'NONE';
}

# by_rcpt(DSN) - its per-recipient field groups by Final-Recipient address.
sub by_rcpt {
	my ($d) = @_;
	my %r;
	for my $g (@{ $d->{recipients} }) {
		my ($a) = ($g->{'final-recipient'} // '') =~ /\Arfc822;\s*(\S+)\z/i;
		$r{lc($a // '?')} = $g;
	}
	return %r;
}

# ---- the parameters at the server ----

{
	my $s = $m->raw;
	$m->ehlo($s, 'client.example');
	$m->dialog($s, <<'END');
	> MAIL FROM:<a@sender.test> RET=HDRS ENVID=QQ314159
	< 250 2.1.0 Ok
	> RCPT TO:<b@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@dsn.test
	< 250 2.1.5 Ok
	> RCPT TO:<c@dsn.test> NOTIFY=NEVER
	< 250 2.1.5 Ok
	> RCPT TO:<d@dsn.test> notify=delay,success ORCPT=rfc822;d+2Bx@dsn.test
	< 250 2.1.5 Ok
	> RCPT TO:<e@dsn.test> NOTIFY=NEVER,SUCCESS
	< 501 5.5.4 Bad NOTIFY parameter
	> RCPT TO:<e@dsn.test> NOTIFY=NEVER NOTIFY=NEVER
	< 501 5.5.4 Duplicate NOTIFY parameter
	> RCPT TO:<e@dsn.test> NOTIFY=SOMETIMES
	< 501 5.5.4 Bad NOTIFY parameter
	> RCPT TO:<e@dsn.test> ORCPT=e@dsn.test
	< 501 5.5.4 Bad ORCPT parameter
	> RCPT TO:<e@dsn.test> ORCPT=rfc822;e+0A@dsn.test
	< 501 5.5.4 Bad ORCPT parameter
	> RCPT TO:<e@dsn.test> ORCPT=rfc822;a ORCPT=rfc822;b
	< 501 5.5.4 Duplicate ORCPT parameter
	> RCPT TO:<e@dsn.test> RET=HDRS
	< 555 5.5.4 Unsupported parameter
	> RSET
	< 250 2.0.0 Ok
	> MAIL FROM:<a@sender.test> RET=ALL
	< 501 5.5.4 Bad RET parameter
	> MAIL FROM:<a@sender.test> RET=FULL RET=HDRS
	< 501 5.5.4 Duplicate RET parameter
	> MAIL FROM:<a@sender.test> ENVID=a+2
	< 501 5.5.4 Bad ENVID parameter
	> MAIL FROM:<a@sender.test> ENVID=x ENVID=y
	< 501 5.5.4 Duplicate ENVID parameter
	> MAIL FROM:<a@sender.test> NOTIFY=NEVER
	< 555 5.5.4 Unsupported parameter
	> QUIT
	< 221 2.0.0 Bye
END
	my $long = 'e' x 101;
	$s = $m->raw;
	$m->ehlo($s, 'client.example');
	$m->dialog($s, <<"END");
	> MAIL FROM:<a\@sender.test> ENVID=$long
	< 501 5.5.4 Bad ENVID parameter
	> MAIL FROM:<a\@sender.test> ENVID=${\ substr($long, 1)}
	< 250 2.1.0 Ok
	> QUIT
	< 221 2.0.0 Bye
END
}

# RFC 3461 §4: MAIL and RCPT may be 515 octets longer than 512 with DSN's
# parameters; past that, or for other commands, 500 5.5.2.
{
	my $addr = 'o' x 240 . '@dsn.test';
	my $orcpt = 'rfc822;' . ('+2B' x 80) . $addr;	# 496 characters
	my $rcpt = "RCPT TO:<b\@dsn.test> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=$orcpt";
	my $s = $m->raw;
	$m->ehlo($s, 'client.example');
	ok length($rcpt) + 2 > 512, 'a RCPT line over 512 octets: ' . (length($rcpt) + 2) . ' octets';
	$m->dialog($s, <<"END");
	> MAIL FROM:<a\@sender.test> RET=HDRS ENVID=${\ ('e' x 100)}
	< 250 2.1.0 Ok
	> $rcpt
	< 250 2.1.5 Ok
	> RCPT TO:<c\@dsn.test> ORCPT=rfc822;${\ ('x' x 1100)}
	< 500 5.5.2 Error: line too long
	> NOOP ${\ ('n' x 600)}
	< 500 5.5.2 Error: line too long
	> QUIT
	< 221 2.0.0 Bye
END
}

# ---- a next hop with DSN: the parameters passed on, no notice of ours ----

my $qid_dsn = send_dsn(' RET=HDRS ENVID=QQ+2B314',
		       [['b@dsn.test', ' NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@dsn.test'],
			['c@dsn.test', '']], 'to a DSN hop', "hello");
my $got = at_sink($dsnhop, 'to a DSN hop') // {};
like $got->{mail_line} // '', qr/\AMAIL FROM:<a\@sender\.test> SIZE=\d+ RET=HDRS ENVID=QQ\+2B314\z/,
	'the DSN hop sees MAIL FROM:<a@sender.test> SIZE=N RET=HDRS ENVID=QQ+2B314'
	or diag $got->{mail_line};
is_deeply $got->{rcpt_lines}, ['RCPT TO:<b@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@dsn.test',
			       'RCPT TO:<c@dsn.test>'],
	'... and RCPT TO:<b@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@dsn.test, '
	. 'RCPT TO:<c@dsn.test> without parameters';

# ---- a next hop without DSN: nothing passed on; our own "relayed" ----

my $qid_rel = send_dsn(' ENVID=ENV+2B1',
		       [['c@plain.test', ' NOTIFY=SUCCESS ORCPT=rfc822;orig+2Bc@plain.test']],
		       'relayed notice', "hello");
$got = at_sink($plain, 'relayed notice') // {};
like $got->{mail_line} // '', qr/\AMAIL FROM:<a\@sender\.test> SIZE=\d+\z/,
	'a hop without DSN: MAIL FROM without RET or ENVID' or diag $got->{mail_line};
is_deeply $got->{rcpt_lines}, ['RCPT TO:<c@plain.test>'], '... RCPT TO without NOTIFY or ORCPT';
my ($n, $d) = wait_notice('relayed notice');
is $n->{from}, '', 'the relayed notice: MAIL FROM:<>';
is_deeply $n->{to}, ['a@sender.test'], '... to the sender';
is $d->{headers}{subject}, 'Successful Mail Delivery Report', '... Subject: Successful Mail Delivery Report';
is $d->{report_type}, 'delivery-status', '... report-type=delivery-status';
is $d->{message}{'original-envelope-id'}, 'ENV+1', '... Original-Envelope-Id: ENV+1 (xtext decoded)';
like $d->{message}{'reporting-mta'} // '', qr/\Adns;\s*mx\.campus\.test\z/, '... Reporting-MTA: dns; mx.campus.test';
my %r = by_rcpt($d);
is_deeply [sort keys %r], ['c@plain.test'], '... Final-Recipient: rfc822; c@plain.test';
my $g = $r{'c@plain.test'} // {};
is $g->{action}, 'relayed', '... Action: relayed';
is $g->{status}, '2.0.0', '... Status: 2.0.0';
is $g->{'original-recipient'}, 'rfc822; orig+c@plain.test', '... Original-Recipient: rfc822; orig+c@plain.test';
is $g->{'remote-mta'}, 'dns; 127.0.0.1', '... Remote-MTA: dns; 127.0.0.1';
is $g->{'diagnostic-code'}, 'smtp; 250 2.0.0 Ok: queued', '... Diagnostic-Code: smtp; 250 2.0.0 Ok: queued';
ok((grep { $_->{type} eq 'text/rfc822-headers' } @{ $d->{parts} }), '... the headers, not the message')
	or diag join ' ', map { $_->{type} } @{ $d->{parts} };

# ---- LMTP: "delivered" ----

my $qid_lmtp = send_dsn(' ENVID=L1', [['u@lmtp.test', ' NOTIFY=SUCCESS,FAILURE']], 'lmtp delivered', "hi");
($n, $d) = wait_notice('lmtp delivered');
is $d->{headers}{subject}, 'Successful Mail Delivery Report', 'LMTP: a success report';
%r = by_rcpt($d);
is_deeply [sort keys %r], ['u@lmtp.test'], '... Final-Recipient: rfc822; u@lmtp.test';
$g = $r{'u@lmtp.test'} // {};
is $g->{action}, 'delivered', '... Action: delivered';
is $g->{status}, '2.0.0', '... Status: 2.0.0';
is $g->{'remote-mta'}, 'dns; 127.0.0.1', '... Remote-MTA: dns; 127.0.0.1';
is $g->{'diagnostic-code'}, 'smtp; 250 2.0.0 Saved', '... Diagnostic-Code: smtp; 250 2.0.0 Saved';
ok !exists $g->{'original-recipient'}, '... no Original-Recipient (no ORCPT)';
is $d->{message}{'original-envelope-id'}, 'L1', '... Original-Envelope-Id: L1';

# ---- failures: RET=HDRS, RET=FULL, NOTIFY=NEVER ----

my $qid_hdrs = send_dsn(' RET=HDRS', [['bad@plain.test', '']], 'failed hdrs',
			"a body line for HDRS");
($n, $d) = wait_notice('failed hdrs');
is $d->{headers}{subject}, 'Undelivered Mail Returned to Sender', 'RET=HDRS: a bounce';
%r = by_rcpt($d);
$g = $r{'bad@plain.test'} // {};
is $g->{action}, 'failed', '... Action: failed';
is $g->{status}, '5.1.1', '... Status: 5.1.1';
is $g->{'remote-mta'}, 'dns; 127.0.0.1', '... Remote-MTA: dns; 127.0.0.1';
is $g->{'diagnostic-code'}, 'smtp; 550 5.1.1 no such user', '... Diagnostic-Code: smtp; 550 5.1.1 no such user';
ok !exists $g->{'original-recipient'}, '... no Original-Recipient (none given)';
ok !exists $d->{message}{'original-envelope-id'}, '... no Original-Envelope-Id (none given)';
my @types = map { $_->{type} } @{ $d->{parts} };
is_deeply \@types, ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
	'... parts: text/plain, message/delivery-status, text/rfc822-headers';
like $d->{rfc822_headers} // '', qr/^Subject: failed hdrs$/m, '... the original headers';
unlike $n->{data}, qr/a body line for HDRS/, '... not the body';

my $qid_full = send_dsn(' RET=FULL ENVID=FULL1', [['bad@plain.test', ' NOTIFY=FAILURE']],
			'failed full', "a body line for FULL");
($n, $d) = wait_notice('failed full');
@types = map { $_->{type} } @{ $d->{parts} };
is_deeply \@types, ['text/plain', 'message/delivery-status', 'message/rfc822'],
	'RET=FULL: parts: text/plain, message/delivery-status, message/rfc822';
my ($whole) = map { $_->{body} } grep { $_->{type} eq 'message/rfc822' } @{ $d->{parts} };
like $whole // '', qr/^Subject: failed full\n(?:.*\n)*\na body line for FULL\n/m,
	'... the whole message: its headers, the blank line, its body';
is $d->{message}{'original-envelope-id'}, 'FULL1', '... Original-Envelope-Id: FULL1';

# A peer that refuses the session: its reply and its name in the bounce.
send_dsn('', [['u@refuse.test', '']], 'refused greeting', "x");
($n, $d) = wait_notice('refused greeting');
%r = by_rcpt($d);
$g = $r{'u@refuse.test'} // {};
is $g->{action}, 'failed', 'a 554 greeting: Action: failed';
is $g->{status}, '5.3.2', '... Status: 5.3.2';
is $g->{'remote-mta'}, 'dns; 127.0.0.1', '... Remote-MTA: dns; 127.0.0.1';
is $g->{'diagnostic-code'}, 'smtp; 554 5.3.2 no mail here', '... Diagnostic-Code: smtp; 554 5.3.2 no mail here';

# Over Postfix's bounce_size_limit (50000 bytes): the headers only.
my $qid_big = send_dsn(' RET=FULL', [['bad@plain.test', '']], 'failed big',
		       join("\n", map { "line $_ " . ('z' x 990) } 1 .. 60));
($n, $d) = wait_notice('failed big');
@types = map { $_->{type} } @{ $d->{parts} };
is_deeply \@types, ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
	'RET=FULL over 50000 bytes: the headers only';
unlike $n->{data}, qr/line 1 zzz/, '... not the body';
ok length($n->{data}) < 20000, '... a small bounce (' . length($n->{data}) . ' bytes)';

my $off = length $m->log_text;
my $qid_never = send_dsn('', [['bad@plain.test', ' NOTIFY=NEVER']], 'never told', "x");
ok $m->delivery_log($qid_never, 'bad@plain.test', 'bounced', $off), 'NOTIFY=NEVER: the recipient bounced';
ok $m->wait_log(qr/\b\Q$qid_never\E: no non-delivery notification: 1 recipient\(s\) with NOTIFY without FAILURE/, $off, 30),
	'... log: no non-delivery notification';

# ---- a delay warning, once; delivered later ----

$plain->set(rcpt => { 'slow@plain.test' => '450 4.2.0 try later',
		      'slow2@plain.test' => '450 4.2.0 try later',
		      'bad@plain.test' => '550 5.1.1 no such user' });
$off = length $m->log_text;
my $qid_slow = send_dsn(' ENVID=SLOW1', [['slow@plain.test', ''],
					['slow2@plain.test', ' NOTIFY=FAILURE ORCPT=rfc822;s2@plain.test']],
			'slow one', "hello");
my ($rc, $show) = $m->mtaq('show', $qid_slow);
like $show, qr/^envid: SLOW1$/m, 'mtaq show: envid: SLOW1';
like $show, qr/^recipient: slow2\@plain\.test .*\n(?:  .*\n)*  notify: FAILURE\n  dsn_orcpt: rfc822;s2\@plain\.test\n/m,
	'mtaq show: notify: FAILURE, dsn_orcpt: rfc822;s2@plain.test' or diag $show;
($n, $d) = wait_notice('slow one');
is $d->{headers}{subject}, 'Delayed Mail (still being retried)', 'a delay warning: Subject: Delayed Mail (still being retried)';
%r = by_rcpt($d);
is_deeply [sort keys %r], ['slow@plain.test'], '... only for slow@plain.test (slow2 said NOTIFY=FAILURE)';
$g = $r{'slow@plain.test'} // {};
is $g->{action}, 'delayed', '... Action: delayed';
is $g->{status}, '4.2.0', '... Status: 4.2.0';
is $g->{'remote-mta'}, 'dns; 127.0.0.1', '... Remote-MTA: dns; 127.0.0.1';
is $g->{'diagnostic-code'}, 'smtp; 450 4.2.0 try later', '... Diagnostic-Code: smtp; 450 4.2.0 try later';
is $d->{message}{'original-envelope-id'}, 'SLOW1', '... Original-Envelope-Id: SLOW1';
($rc, $show) = $m->mtaq('show', $qid_slow);
like $show, qr/^delay_warning: sent$/m, 'mtaq show: delay_warning: sent';
# Two more deferrals after the warning, and still one warning.
my $after = length $m->log_text;
my $tries = MtadTest::wait_for(30, sub {
	my @l = substr($m->log_text, $after) =~ /\b\Q$qid_slow\E: to=<slow\@plain\.test>, .*status=deferred/g;
	@l >= 2 });
ok $tries, 'two more attempts after the warning';
is scalar(notices('slow one')), 1, '... and still exactly one delay warning';
$plain->set(rcpt => { 'bad@plain.test' => '550 5.1.1 no such user' });
ok $m->delivery_log($qid_slow, 'slow@plain.test', 'sent', $off), 'the peer takes it now: slow@plain.test sent';
ok $m->delivery_log($qid_slow, 'slow2@plain.test', 'sent', $off), '... slow2@plain.test sent';
ok at_sink($plain, 'slow one'), '... the message arrives';
ok MtadTest::wait_for(30, sub { !grep { $_ eq $qid_slow } $m->queue_ids }), "$qid_slow leaves the queue";
sleep 1;
is scalar(notices('slow one')), 1, '... no other notice about it';

# ---- an alias: NOTIFY copied, the address given as ORCPT ----
{
	my $dir = $m->dir;
	open my $fh, '>', "$dir/aliases" or die "aliases: $!";
	print $fh "staff: b2\@dsn.test, c2\@plain.test\n";
	close $fh;
	my $m2 = MtadTest->new(start => 0, alias_maps => "$dir/aliases", relay_networks => '127.0.0.0/8',
			       retry_min => 1, retry_max => 2, extra => <<"END");
route = dsn.test [127.0.0.1]:$pd
route = plain.test [127.0.0.1]:$pp
route = sender.test [127.0.0.1]:$ps
END
	my ($arc, undef, $aerr) = MtadTest::run("$ENV{MTAD_BUILD}/newaliases", '-C', $m2->conf_path);
	is $arc, 0, 'newaliases for the second mtad' or diag $aerr;
	$m2->start;
	my $s = $m2->raw;
	$m2->ehlo($s, 'client.example');
	$m2->dialog($s, <<'END');
	> MAIL FROM:<a@sender.test> ENVID=AL1
	< 250 2.1.0 Ok
	> RCPT TO:<staff@campus.test> NOTIFY=SUCCESS,FAILURE
	< 250 2.1.5 Ok
	> DATA
	< 354 *
	> Subject: alias expanded
	>
	> hi
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 Bye
END
	$got = at_sink($dsnhop, 'alias expanded') // {};
	is_deeply $got->{rcpt_lines}, ['RCPT TO:<b2@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;staff@campus.test'],
		'an alias target at a DSN hop: its NOTIFY, and ORCPT=rfc822;staff@campus.test';
	like $got->{mail_line} // '', qr/ ENVID=AL1\z/, '... and the ENVID';
	($n, $d) = wait_notice('alias expanded');
	%r = by_rcpt($d);
	is_deeply [sort keys %r], ['c2@plain.test'], 'the other target: our relayed notice for it alone';
	$g = $r{'c2@plain.test'} // {};
	is $g->{action}, 'relayed', '... Action: relayed';
	is $g->{'original-recipient'}, 'rfc822; staff@campus.test', '... Original-Recipient: rfc822; staff@campus.test';
	$m2->stop;
}

# ---- what never came ----
is scalar(notices('to a DSN hop')), 0, 'no notice of ours for the DSN hop (it reports itself)';
is scalar(notices('never told')), 0, 'no bounce for NOTIFY=NEVER';
is scalar(notices('failed hdrs')), 1, 'one bounce for RET=HDRS';

done_testing;
