# 64-policy-reload.t - "Q: Can we turn these EHLO rules off? A: Easily."
# One line in mtad.conf (helo_policy = off, or helo_rule.NAME = on|off)
# and SIGHUP: new connections follow the new rules, logged as
# "reload: configuration ... loaded". A configuration with an error and
# SIGHUP: "reload: keeping the old configuration" with the error's
# file:line, and the old rules stay. Relay control is not a HELO rule:
# helo_policy = off does not make an open relay. no-helo and helo-syntax
# cannot be switched off (a config error).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $OWN = '550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.';
my $LOCALHOST = '550 5.7.1 Invalid HELO. HELO/EHLO as localhost.';
my $NONFQDN = '550 5.7.1 Invalid HELO. HELO/EHLO needs a fully qualified host name.';

my $m = MtadTest->new(local_domains => 'campus.test');
my $conf = $m->conf_path;
my $base = MtadTest::slurp($conf);

# write_conf(TEXT) - replaces mtad.conf.
sub write_conf {
	open my $fh, '>', $conf or die "$conf: $!";
	print $fh $_[0];
	close $fh or die "$conf: $!";
}

# hup(REGEX, NAME) - SIGHUP, then wait for the log line.
sub hup {
	my ($re, $name) = @_;
	my $off = length $m->log_text;
	ok kill('HUP', $m->pid), "SIGHUP to mtad $name";
	my $line = $m->wait_log($re, $off);
	ok defined $line, "... log: $re" or diag substr($m->log_text, $off);
	return $line;
}

# session(NAME, MAIL_REPLY) - EHLO NAME; MAIL gets MAIL_REPLY (a 250
# goes on to a message, and a foreign recipient still gets the 554).
sub session {
	my ($name, $reply) = @_;
	my $s = $m->raw;
	my $r = $m->send_recv($s, "EHLO $name\r\n") // '';
	like $r, qr/(?:\A|\n)250 HELP\r\n\z/, "EHLO $name -> 250";
	if ($reply ne 'ok') {
		$m->dialog($s, "> MAIL FROM:<a\@b.example>\n< $reply\n> QUIT\n< 221 2.0.0 *\n");
		return;
	}
	$m->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< 250 2.1.0 *
	> RCPT TO:<x\@y.example>
	< 554 5.7.1 <x\@y.example>: Relay access denied
	> RCPT TO:<u\@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: EHLO $name
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
}

# ---- relaxed (the default) ----
session('mx.campus.test', $OWN);
session('localhost', $LOCALHOST);
session('client.example', 'ok');

# ---- one line switches the rules off ----
write_conf($base . "helo_policy = off\n");
hup(qr/reload: configuration .*loaded/, '(helo_policy = off)');
session('mx.campus.test', 'ok');
session('localhost', 'ok');
session('[127.0.0.1]', 'ok');

# no-helo is not a HELO rule that can be off
my $s = $m->raw;
$m->dialog($s, "> MAIL FROM:<a\@b.example>\n< 503 5.5.1 *\n> QUIT\n< 221 2.0.0 *\n");

# ---- a broken configuration keeps the old one ----
my @broken = (
	# [what, text, error line]
	['an always-on rule switched off', "helo_policy = off\nhelo_rule.no-helo = off\n"],
	['an unknown policy',              "helo_policy = sometimes\n"],
	['an unknown rule',                "helo_policy = off\nhelo_rule.no-such-rule = on\n"],
	['a bad network',                  "helo_policy = off\nrelay_networks = 10.0.0.0/33\n"],
);
for my $b (@broken) {
	my ($what, $text) = @$b;
	my $full = "$base$text";
	my $n = () = $full =~ /\n/g;	# the error is on the last line
	write_conf($full);
	my ($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $conf, '-n');
	isnt $rc, 0, "mtad -n refuses $what";
	like $err, qr/\Q$conf\E:$n: \S/, "... naming $conf:$n" or diag $err;
	my $line = hup(qr/reload: keeping the old configuration/, "($what)");
	like $line // '', qr/\Q$conf\E:$n\b/, "... the log names $conf:$n";
	ok kill(0, $m->pid), '... mtad is still running';
	# still off
	session('mx.campus.test', 'ok');
}

# ---- back to relaxed: the rules are on again ----
write_conf($base);
hup(qr/reload: configuration .*loaded/, '(back to the default)');
session('mx.campus.test', $OWN);

# ---- one rule at a time ----
write_conf($base . "helo_rule.own-name = off\nhelo_rule.non-fqdn = on\n");
hup(qr/reload: configuration .*loaded/, '(helo_rule.own-name = off, helo_rule.non-fqdn = on)');
session('mx.campus.test', 'ok');
session('localhost', $LOCALHOST);
session('benderclmsuedu', $NONFQDN);
session('nibbler.mx.campus.test', 'ok');

# ---- relay_networks too: this client becomes trusted ----
write_conf($base . "relay_networks = 127.0.0.1/32\n");
hup(qr/reload: configuration .*loaded/, '(relay_networks = 127.0.0.1/32)');
$s = $m->raw;
my $r = $m->send_recv($s, "EHLO mx.campus.test\r\n") // '';
like $r, qr/(?:\A|\n)250 HELP\r\n\z/, 'EHLO mx.campus.test -> 250';
$m->dialog($s, <<'END');
	> MAIL FROM:<a@b.example>
	< 250 2.1.0 *
	> RCPT TO:<x@y.example>
	< 250 2.1.5 *
	> QUIT
	< 221 2.0.0 *
END

# helo-syntax and no-helo cannot be set at all, on or off (mtad -n only)
for my $text ("helo_rule.helo-syntax = off\n", "helo_rule.no-helo = on\n",
	      "helo_rule.helo-syntax = on\n") {
	write_conf($base . $text);
	my $n = () = MtadTest::slurp($conf) =~ /\n/g;
	my ($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', $conf, '-n');
	isnt $rc, 0, 'mtad -n refuses ' . ($text =~ s/\n//r);
	like $err, qr/\Q$conf\E:$n: \S/, "... naming $conf:$n" or diag $err;
}
write_conf($base);

done_testing;
