# 63-helo-ehlo-reject.t - the listener option helo_reject_at=ehlo: the
# HELO rules answer the HELO/EHLO command itself, as in the seed's
# transcript ("ehlo sys28.mail.msu.edu" -> "550 Invalid HELO. HELO/EHLO
# with my domain name."). The session stays open and a good EHLO
# afterwards works. Only on listeners that offer no AUTH (a client that
# was about to log in must not be locked out by its name): `mtad -n`
# refuses it on starttls/tls listeners (unless sasl_mechanisms = none),
# auth_plaintext and submission listeners, naming file:line.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my %REPLY = (
	'own-name'  => '550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.',
	'localhost' => '550 5.7.1 Invalid HELO. HELO/EHLO as localhost.',
	'non-fqdn'  => '550 5.7.1 Invalid HELO. HELO/EHLO needs a fully qualified host name.',
);

# listener 0: rules at EHLO; 1: the default (rules at MAIL).
# 127.0.0.2 is trusted; at most 3 policy refusals per connection.
my $m = MtadTest->new(listeners => ['helo_reject_at=ehlo', ''],
		      local_domains => 'campus.test', relay_networks => '127.0.0.2/32',
		      max_policy_rejections => 3);
my $EHLO_GOOD = MtadTest::ehlo_script('client.example');

# ---- the seed's transcript ----
my $off = length $m->log_text;
my ($s, $greeting) = $m->raw;
is $greeting, "220 mx.campus.test ESMTP mtad\r\n", 'greeting';
$m->dialog($s, <<"END");
	> ehlo mx.campus.test
	< 550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.
	# still open; no HELO accepted yet
	> MAIL FROM:<bender\@cl.msu.example>
	< 503 5.5.1 *
	> NOOP
	< 250 2.0.0 *
	> EHLO client.example
	$EHLO_GOOD
	> MAIL FROM:<bender\@cl.msu.example>
	< 250 2.1.0 *
	> RCPT TO:<u\@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: after a good EHLO
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
	< [closed]
END
my $port = $m->port(0);
my $line = $m->wait_log(qr/NOQUEUE: reject: (?:EHLO|HELO)\b/, $off);
like $line // '', qr/NOQUEUE: reject: EHLO from unknown\[127\.0\.0\.1\]: \Q$REPLY{'own-name'}\E; from=<> proto=ESMTP helo=<mx\.campus\.test> rule=own-name listener=127\.0\.0\.1:$port\b/,
	'log: the EHLO rejection with rule, HELO name and listener';

# HELO is judged alike, with the one-line HELO reply after a good name.
$s = $m->raw;
$m->dialog($s, <<"END");
	> HELO localhost
	< $REPLY{localhost}
	> HELO client.example
	< 250 mx.campus.test
	> MAIL FROM:<a\@b.example>
	< 250 2.1.0 *
	> QUIT
	< 221 2.0.0 *
END

# A refused EHLO after a good one: the bad name replaced the good one,
# so MAIL is not accepted (either no HELO, 503, or the rule's reply).
$s = $m->raw;
$m->dialog($s, <<"END");
	> EHLO client.example
	$EHLO_GOOD
	> EHLO [127.0.0.1]
	< 550 5.7.1 Invalid HELO. HELO/EHLO with my address.
	> MAIL FROM:<a\@b.example>
	<~ (?:503 5\\.5\\.1 .*|550 5\\.7\\.1 Invalid HELO\\. HELO/EHLO with my address\\.)
	> QUIT
	< 221 2.0.0 *
END

# Names the relaxed policy lets through are accepted at EHLO too.
for my $name ('benderclmsuedu', 'nibbler.mx.campus.test') {
	$s = $m->raw;
	$m->dialog($s, "> EHLO $name\n" . MtadTest::ehlo_script($name)
		. "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n> QUIT\n< 221 2.0.0 *\n");
}

# EHLO refusals count towards max_policy_rejections (3 here).
$s = $m->raw;
$m->dialog($s, <<"END");
	> EHLO mx.campus.test
	< $REPLY{'own-name'}
	> EHLO localhost
	< $REPLY{localhost}
	> EHLO campus.test
	< $REPLY{'own-name'}
	< 421 4.7.0 mx.campus.test Error: too many rejected commands
	< [closed]
END

# A trusted client is not judged by its name, at EHLO either.
$s = $m->raw(local => '127.0.0.2');
my $r = $m->send_recv($s, "EHLO mx.campus.test\r\n") // '';
like $r, qr/\A250-mx\.campus\.test Hello mx\.campus\.test \[127\.0\.0\.2\]\r\n.*250 HELP\r\n\z/s,
	'trusted client: EHLO mx.campus.test -> 250';
$m->dialog($s, "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n> QUIT\n< 221 2.0.0 *\n");

# The other listener of the same server judges at MAIL, not at EHLO.
$s = $m->raw(port => $m->port(1));
$m->dialog($s, "> EHLO mx.campus.test\n" . MtadTest::ehlo_script('mx.campus.test') . <<"END");
	> MAIL FROM:<a\@b.example>
	< $REPLY{'own-name'}
	> QUIT
	< 221 2.0.0 *
END

# strict on an EHLO-time listener: Outlook's name is refused at EHLO.
my $st = MtadTest->new(listeners => ['helo_reject_at=ehlo'], helo_policy => 'strict',
		       local_domains => 'campus.test');
$s = $st->raw;
$st->dialog($s, <<"END");
	> EHLO benderclmsuedu
	< $REPLY{'non-fqdn'}
	> EHLO bender.cl.msu.example
	${\ MtadTest::ehlo_script('bender.cl.msu.example')}
	> MAIL FROM:<a\@b.example>
	< 250 2.1.0 *
	> QUIT
	< 221 2.0.0 *
END

# ---- mtad -n: refused where the listener offers AUTH ----
# [listener options, extra settings, refused?]
my @CONFIGS = (
	['starttls helo_reject_at=ehlo',            {},                          1],
	['tls helo_reject_at=ehlo',                 {},                          1],
	['helo_reject_at=ehlo auth_plaintext',      {},                          1],
	['starttls submission helo_reject_at=ehlo', {},                          1],
	['tls submission helo_reject_at=ehlo',      {},                          1],
	['helo_reject_at=ehlo',                     {},                          0],
	['starttls helo_reject_at=ehlo',            {sasl_mechanisms => 'none'}, 0],
	['tls helo_reject_at=ehlo',                 {sasl_mechanisms => 'none'}, 0],
);
for my $c (@CONFIGS) {
	my ($flags, $extra, $refused) = @$c;
	my $t = MtadTest->new(start => 0, users => {alice => 'secret'},
			      listeners => ['', $flags], %$extra);
	my $conf = $t->conf_path;
	my @lines = split /\n/, MtadTest::slurp($conf);
	my ($n) = grep { $lines[$_ - 1] =~ /^listen\b.*helo_reject_at=ehlo/ } 1 .. @lines;
	my ($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $conf, '-n');
	my $what = "listen ... $flags" . (%$extra ? ' with ' . join(' ', %$extra) : '');
	if ($refused) {
		isnt $rc, 0, "mtad -n refuses $what";
		like $err, qr/^(?:mtad: )?\Q$conf\E:$n: \S/m, "... naming $conf:$n" or diag $err;
		like $err, qr/helo_reject_at/, '... and helo_reject_at' or diag $err;
	} else {
		is $rc, 0, "mtad -n accepts $what" or diag $err;
	}
}

done_testing;
