# 60-helo-policy.t - the HELO rules for unauthenticated sessions, checked
# at MAIL FROM (the seed: a campus relay's Exim rules, 2005): the seed's
# own-name transcript with its exact text; each rule under
# helo_policy = relaxed (the default) and strict, with the names real
# clients send (Outlook/Pegasus "benderclmsuedu", Eudora
# "nibbler.<our hostname>"); no-helo and helo-syntax; a second HELO/EHLO
# replaces the first; RCPT after a refused MAIL gets the rule's reply and
# DATA 503; max_policy_rejections then 421 and close; a relay_networks
# client is trusted and never judged by its HELO name; the log line.
#
# No DNS here (the harness writes dns_servers = none): the unresolvable
# and no-rdns rules are in 65-policy-dns.t.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my %REPLY = (
	'own-name'         => '550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.',
	'own-address'      => '550 5.7.1 Invalid HELO. HELO/EHLO with my address.',
	'localhost'        => '550 5.7.1 Invalid HELO. HELO/EHLO as localhost.',
	'non-fqdn'         => '550 5.7.1 Invalid HELO. HELO/EHLO needs a fully qualified host name.',
	'under-own-name'   => '550 5.7.1 Invalid HELO. HELO/EHLO with a name under my domain name.',
	'bare-ip'          => '550 5.7.1 Invalid HELO. HELO/EHLO with an IP address needs brackets.',
	'literal-mismatch' => '550 5.7.1 Invalid HELO. HELO/EHLO address literal is not your address.',
);

# The machine's own global IPv4 address (not loopback), when it has one:
# "own addresses" are the interface addresses, not only 127.0.0.1.
my ($IFADDR) = grep { !/^127\./ } map { m{\binet (\d+\.\d+\.\d+\.\d+)/} ? $1 : () }
	split /\n/, (MtadTest::run('ip', '-o', '-4', 'addr', 'show'))[1];
# An address that is certainly not ours (TEST-NET-2).
my $FOREIGN = '198.51.100.7';

# helo(M, SOCK, VERB, NAME) - HELO/EHLO NAME must be accepted (250).
sub helo {
	my ($m, $s, $verb, $name) = @_;
	my $r = $m->send_recv($s, "$verb $name\r\n") // '';
	like $r, qr/(?:\A|\n)250 [^\n]*\r\n\z/, "$verb $name -> 250";
}

# try(M, VERB, NAME, RULE, CASE) - a new session says VERB NAME; MAIL and
# RCPT must get RULE's reply (and DATA 503 5.5.1), or 250s when RULE is
# undef.
sub try {
	my ($m, $verb, $name, $rule, $case) = @_;
	my $s = $m->raw;
	note "$case: $verb $name -> " . ($rule // 'accepted');
	helo($m, $s, $verb, $name);
	if (defined $rule) {
		$m->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< $REPLY{$rule}
	> RCPT TO:<u\@campus.test>
	< $REPLY{$rule}
	> RCPT TO:<postmaster\@campus.test>
	< $REPLY{$rule}
	> DATA
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
END
	} else {
		$m->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< 250 2.1.0 *
	> RCPT TO:<u\@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: $case $verb $name
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
	}
}

# log_is(LINE, WANT, NAME) - the log line is WANT, maybe followed by more
# "key=value" fields (the spec's lines are examples of the shape).
sub log_is {
	my ($line, $want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	$line = ($line // '') =~ s/^.*?NOQUEUE:/NOQUEUE:/r;
	like $line, qr/\A\Q$want\E(?: [\w-]+=\S*)*\z/, $name;
}

my $relaxed = MtadTest->new(local_domains => 'campus.test, other.test');
my $strict = MtadTest->new(local_domains => 'campus.test other.test', helo_policy => 'strict');

# ---- the seed's transcript: the server's own name ----
# Accepted at EHLO (the rules run at MAIL FROM on a listener that could
# offer AUTH), refused at MAIL with the seed's words.
my $off = length $relaxed->log_text;
my $s = $relaxed->raw;
$relaxed->dialog($s, "> ehlo mx.campus.test\n" . MtadTest::ehlo_script('mx.campus.test') . <<'END');
	> MAIL FROM:<bender@cl.msu.example>
	< 550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.
	> RCPT TO:<someone@campus.test>
	< 550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.
	> DATA
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
	< [closed]
END
my $port = $relaxed->port;
my $line = $relaxed->wait_log(qr/NOQUEUE: reject: MAIL from /, $off);
log_is $line,
	"NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 550 5.7.1 Invalid HELO. HELO/EHLO with my domain name.;"
	. " from=<bender\@cl.msu.example> proto=ESMTP helo=<mx.campus.test> rule=own-name listener=127.0.0.1:$port",
	'log: the MAIL rejection, its rule, HELO name, listener and protocol';
$line = $relaxed->wait_log(qr/NOQUEUE: reject: RCPT from /, $off);
like $line // '', qr/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.7\.1 Invalid HELO\. HELO\/EHLO with my domain name\.; from=<bender\@cl\.msu\.example> to=<someone\@campus\.test> proto=ESMTP helo=<mx\.campus\.test> rule=own-name\b/,
	'log: the RCPT rejection too, with to=<>';

# ---- each rule, relaxed and strict ----
#  verb    name                       relaxed         strict
my @CASES = (
	# own-name: our hostname or a local domain, in any letter case
	['EHLO', 'mx.campus.test',          'own-name',       'own-name'],
	['HELO', 'mx.campus.test',          'own-name',       'own-name'],
	['EHLO', 'MX.Campus.TEST',          'own-name',       'own-name'],
	['EHLO', 'mx.campus.test.',         'own-name',       'own-name'],
	['EHLO', 'campus.test',             'own-name',       'own-name'],
	['HELO', 'other.test',              'own-name',       'own-name'],
	# own-address: ours, bracketed or bare (before the localhost rule)
	['EHLO', '[127.0.0.1]',             'own-address',    'own-address'],
	['HELO', '[127.0.0.1]',             'own-address',    'own-address'],
	['EHLO', '127.0.0.1',               'own-address',    'own-address'],
	($IFADDR ? (
	['EHLO', "[$IFADDR]",               'own-address',    'own-address'],
	['EHLO', $IFADDR,                   'own-address',    'own-address'],
	) : ()),
	(MtadTest::ipv6_loopback() ? (
	['EHLO', '[IPv6:::1]',              'own-address',    'own-address'],
	) : ()),
	# localhost
	['EHLO', 'localhost',               'localhost',      'localhost'],
	['HELO', 'localhost',               'localhost',      'localhost'],
	['EHLO', 'LOCALHOST',               'localhost',      'localhost'],
	['EHLO', 'localhost.localdomain',   'localhost',      'localhost'],
	# Outlook and Pegasus: the host name without its dots
	['EHLO', 'benderclmsuedu',          undef,            'non-fqdn'],
	['HELO', 'benderclmsuedu',          undef,            'non-fqdn'],
	# Eudora: a name made up under ours
	['EHLO', 'nibbler.mx.campus.test',  undef,            'under-own-name'],
	['HELO', 'nibbler.mx.campus.test',  undef,            'under-own-name'],
	# addresses that are not ours
	['EHLO', $FOREIGN,                  undef,            'bare-ip'],
	['EHLO', "[$FOREIGN]",              undef,            'literal-mismatch'],
	['HELO', "[$FOREIGN]",              undef,            'literal-mismatch'],
	# a proper name (no DNS here, so nothing to look up)
	['EHLO', 'client.example',          undef,            undef],
	['HELO', 'bender.cl.msu.example',   undef,            undef],
);
for my $c (@CASES) {
	my ($verb, $name, $r, $st) = @$c;
	try($relaxed, $verb, $name, $r, 'relaxed');
	try($strict, $verb, $name, $st, 'strict');
}

# ---- no-helo and helo-syntax: always, whatever the policy ----
for my $m ($relaxed, $strict) {
	$s = $m->raw;
	$m->dialog($s, <<'END');
	> MAIL FROM:<a@b.example>
	< 503 5.5.1 *
	> RCPT TO:<u@campus.test>
	< 503 5.5.1 *
	> EHLO foo@bar.example
	< 501 5.5.4 *
	> HELO a..b.example
	< 501 5.5.4 *
	> EHLO <client.example>
	< 501 5.5.4 *
	# still no valid HELO: MAIL is out of order
	> MAIL FROM:<a@b.example>
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
END
}

# ---- a second HELO/EHLO replaces the first ----
# bad, then good: accepted (also after a refused MAIL)
$s = $relaxed->raw;
helo($relaxed, $s, 'EHLO', 'mx.campus.test');
$relaxed->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< $REPLY{'own-name'}
END
helo($relaxed, $s, 'EHLO', 'client.example');
$relaxed->dialog($s, <<'END');
	> MAIL FROM:<a@b.example>
	< 250 2.1.0 *
	> RCPT TO:<u@campus.test>
	< 250 2.1.5 *
	> RSET
	< 250 2.0.0 *
END
# good, then bad: refused; HELO and EHLO judged alike
helo($relaxed, $s, 'HELO', 'localhost');
$relaxed->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< $REPLY{localhost}
	> RCPT TO:<u\@campus.test>
	< $REPLY{localhost}
END
helo($relaxed, $s, 'HELO', 'client.example');
$relaxed->dialog($s, <<'END');
	> MAIL FROM:<a@b.example>
	< 250 2.1.0 *
	> QUIT
	< 221 2.0.0 *
END

# strict: EHLO bad name, HELO good name, EHLO other bad name
$s = $strict->raw;
helo($strict, $s, 'EHLO', 'benderclmsuedu');
$strict->dialog($s, "> MAIL FROM:<a\@b.example>\n< $REPLY{'non-fqdn'}\n");
helo($strict, $s, 'HELO', 'bender.cl.msu.example');
$strict->dialog($s, "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n");
helo($strict, $s, 'EHLO', 'nibbler.mx.campus.test');
$strict->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< $REPLY{'under-own-name'}
	> RCPT TO:<u\@campus.test>
	< $REPLY{'under-own-name'}
	> QUIT
	< 221 2.0.0 *
END

# ---- the same reply to each RCPT until a MAIL is accepted ----
# (pipelined: the replies come in order)
$s = $strict->raw;
helo($strict, $s, 'EHLO', $FOREIGN);
$strict->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	> RCPT TO:<u1\@campus.test>
	> RCPT TO:<u2\@campus.test>
	> DATA
	< $REPLY{'bare-ip'}
	< $REPLY{'bare-ip'}
	< $REPLY{'bare-ip'}
	< 503 5.5.1 *
	> RSET
	< 250 2.0.0 *
	> RCPT TO:<u3\@campus.test>
	< $REPLY{'bare-ip'}
	> QUIT
	< 221 2.0.0 *
END

# ---- max_policy_rejections (default 10): the 10th refusal, then 421 ----
$s = $relaxed->raw;
helo($relaxed, $s, 'EHLO', 'mx.campus.test');
my $own = $REPLY{'own-name'};
$relaxed->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< $own
	> RCPT TO:<u\@campus.test>
	< $own
	> RCPT TO:<u\@campus.test>
	< $own
	# not a policy rejection: does not count
	> DATA
	< 503 5.5.1 *
	> MAIL FROM:<a\@b.example>
	< $own
	> RCPT TO:<u\@campus.test>
	< $own
	> MAIL FROM:<a\@b.example>
	< $own
	> MAIL FROM:<a\@b.example>
	< $own
	> RCPT TO:<u\@campus.test>
	< $own
	> RCPT TO:<u\@campus.test>
	< $own
	# the 10th
	> MAIL FROM:<a\@b.example>
	< $own
	< 421 4.7.0 mx.campus.test Error: too many rejected commands
	< [closed]
END

# The count is per connection: a new one starts again.
$s = $relaxed->raw;
helo($relaxed, $s, 'EHLO', 'mx.campus.test');
$relaxed->dialog($s, "> MAIL FROM:<a\@b.example>\n< $own\n> QUIT\n< 221 2.0.0 *\n");

# A lower limit: the 3rd refusal is the last.
my $low = MtadTest->new(local_domains => 'campus.test', max_policy_rejections => 3);
$s = $low->raw;
helo($low, $s, 'EHLO', 'localhost');
$low->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< $REPLY{localhost}
	> RCPT TO:<u\@campus.test>
	< $REPLY{localhost}
	> DATA
	< 503 5.5.1 *
	> NOOP
	< 250 2.0.0 *
	> RCPT TO:<u\@campus.test>
	< $REPLY{localhost}
	< 421 4.7.0 mx.campus.test Error: too many rejected commands
	< [closed]
END

# ---- relay_networks: a trusted client is never judged by its HELO name ----
my $trusted = MtadTest->new(local_domains => 'campus.test', helo_policy => 'strict',
			    relay_networks => '10.0.0.0/8 127.0.0.0/8');
for my $name ('mx.campus.test', 'localhost', '[127.0.0.1]', 'benderclmsuedu',
	      'nibbler.mx.campus.test', $FOREIGN, "[$FOREIGN]") {
	$s = $trusted->raw;
	helo($trusted, $s, 'EHLO', $name);
	$trusted->dialog($s, <<"END");
	> MAIL FROM:<a\@b.example>
	< 250 2.1.0 *
	> RCPT TO:<u\@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: trusted, EHLO $name
	>
	> hello
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
}

# Only the listed networks: 127.0.0.2/32 trusts 127.0.0.2, not 127.0.0.1.
my $one = MtadTest->new(local_domains => 'campus.test', relay_networks => '127.0.0.2/32');
$s = $one->raw(local => '127.0.0.2');
helo($one, $s, 'EHLO', 'mx.campus.test');
$one->dialog($s, "> MAIL FROM:<a\@b.example>\n< 250 2.1.0 *\n> QUIT\n< 221 2.0.0 *\n");
$s = $one->raw;
helo($one, $s, 'EHLO', 'mx.campus.test');
$one->dialog($s, "> MAIL FROM:<a\@b.example>\n< $own\n> QUIT\n< 221 2.0.0 *\n");

done_testing;
