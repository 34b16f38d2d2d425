# 58-auth-security.t - what a login is worth across STARTTLS, and what a
# failed one leaves in the log.
#
# 1. RFC 3207 §4.2: after STARTTLS the server discards all knowledge
#    obtained from the client, the AUTH identity included. On a listener
#    with auth_plaintext, AUTH in the clear (235), then STARTTLS: the TLS
#    session is unauthenticated (relay refused; a submission listener
#    says 530 at MAIL) until the client authenticates again, which works.
# 2. A failed AUTH never logs the user name as typed (people type their
#    password there), neither mtad's own lines nor libsasl2's; the
#    fail2ban line keeps its shape (from mtad/smtpd) and the shipped
#    filter (etc/fail2ban/filter.d/mtad.conf) matches it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest qw(auth_plain b64);

my $ALICE = auth_plain('alice', 'secret');
my $BYE = "> QUIT\n< 221 2.0.0 *\n";

# listener 0: port 25 style with AUTH allowed in the clear;
# listener 1: submission (AUTH required) with AUTH allowed in the clear.
my $m = MtadTest->new(listeners => ['starttls auth_plaintext', 'starttls submission auth_plaintext'],
		      users => {alice => 'secret'}, auth_failure_delay => 0);

# ehlo(SOCK, WANT_STARTTLS) - EHLO, AUTH offered, STARTTLS as asked.
sub ehlo {
	my ($s, $starttls) = @_;
	my $r = $m->send_recv($s, "EHLO client.example\r\n") // '';
	like $r, qr/^250-AUTH PLAIN LOGIN\r$/m, 'EHLO offers AUTH';
	if ($starttls) {
		like $r, qr/^250-STARTTLS\r$/m, '... and STARTTLS';
	} else {
		unlike $r, qr/STARTTLS/, '... and no more STARTTLS';
	}
}

# ---- port 25 style: the clear-text login does not survive STARTTLS ----
my $s = $m->raw(port => $m->port(0));
ehlo($s, 1);
$m->dialog($s, <<"END");
	> $ALICE
	< 235 2.7.0 Authentication successful
	# authenticated in the clear: relaying works (the control)
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	> RCPT TO:<x\@y.example>
	< 250 2.1.5 *
	> RSET
	< 250 2.0.0 *
END
ok $m->starttls($s), 'STARTTLS after AUTH in the clear';
ehlo($s, 0);
$m->dialog($s, <<"END");
	# the TLS session has no login: relaying is refused
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	> RCPT TO:<x\@y.example>
	< 554 5.7.1 <x\@y.example>: Relay access denied
	> RSET
	< 250 2.0.0 *
	# and AUTH is not "already authenticated": it works again under TLS
	> $ALICE
	< 235 2.7.0 Authentication successful
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	> RCPT TO:<x\@y.example>
	< 250 2.1.5 *
	$BYE
END

# ---- submission: MAIL needs a login made under TLS ----
$s = $m->raw(port => $m->port(1));
ehlo($s, 1);
$m->dialog($s, <<"END");
	> $ALICE
	< 235 2.7.0 Authentication successful
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	> RSET
	< 250 2.0.0 *
END
ok $m->starttls($s), 'STARTTLS after AUTH in the clear (submission)';
ehlo($s, 0);
$m->dialog($s, <<"END");
	> MAIL FROM:<alice\@campus.test>
	< 530 5.7.0 *
	> $ALICE
	< 235 2.7.0 Authentication successful
	> MAIL FROM:<alice\@campus.test>
	< 250 2.1.0 *
	$BYE
END

# ---- a failed AUTH logs no user name ----
# The "user names" are passwords typed in the wrong field; each must
# appear nowhere in the log. Both mechanisms, known and unknown users,
# and an authorization identity (PLAIN's first field).
my $off = length $m->log_text;
my @typed = ('Tr0ub4dor-user', 'Correct.Horse.Login', 'zzAuthzSecret9');
$s = $m->raw(port => $m->port(0));
ehlo($s, 1);
$m->dialog($s, <<"END");
	> ${\ auth_plain($typed[0], 'x')}
	< 535 5.7.8 *
	> AUTH LOGIN ${\ b64($typed[1])}
	< 334 UGFzc3dvcmQ6
	> ${\ b64('wrong')}
	< 535 5.7.8 *
	> ${\ auth_plain('alice', 'wrong', $typed[2])}
	< 535 5.7.8 *
	< 421 4.7.0 *
	< [closed]
END
ok defined $m->wait_log(qr/disconnect from .* auth=0\/3/, $off), 'the session is over and logged';
my $log = substr($m->log_text, $off);
for my $t (@typed, 'alice') {
	unlike $log, qr/\Q$t\E/i, "the log does not name '$t' after failed logins";
}
my @failed = $log =~ /^(.*SASL \S+ authentication failed: authentication failure)$/mg;
is scalar @failed, 3, 'one fail2ban line per failure' or diag $log;
is scalar(grep { m{ mtad/smtpd\[\d+\]: warning: } } @failed), 3, '... each from mtad/smtpd'
	or diag join "\n", @failed;

# The shipped filter must match each failure line, in both shapes it
# meets: syslog's (log = syslog) and the journal's copy of a stderr line
# (log = stderr: mtad's own "Mon DD HH:MM:SS mtad/smtpd[PID]: " inside).
my @shapes = map { my $l = $_; (my $bare = $l) =~ s/^.*?(?=warning: )//;
		   ("Dec  3 22:40:05 mx mtad/smtpd[1234]: $bare", "Dec  3 22:40:05 mx mtad[1234]: $l") } @failed;
my $filter = MtadTest::slurp("$FindBin::Bin/../etc/fail2ban/filter.d/mtad.conf");
my ($failregex) = $filter =~ /^failregex = (.*)$/m;
my ($daemon) = $filter =~ /^_daemon = (.*)$/m;
ok defined $failregex && defined $daemon, 'the shipped filter has a failregex and _daemon';
# fail2ban strips the date first; %(__prefix_line)s then takes "HOST mtad/smtpd[PID]: ".
(my $re = $failregex) =~ s/\^%\(__prefix_line\)s/^\\s*(?:\\S+ )?$daemon(?:\\[\\d+\\])?:\\s+/;
$re =~ s/%\(_daemon\)s/$daemon/g;
$re =~ s/<HOST>/(?<host>[\\d.:a-fA-F]+)/;
for my $line (@shapes) {
	(my $undated = $line) =~ s/^\w{3} [ \d]\d \d\d:\d\d:\d\d //;
	ok $undated =~ qr/$re/ && $+{host} eq '127.0.0.1', "failregex finds 127.0.0.1 in: $line";
}
unlike $_, qr/$re/, "failregex does not count: $_"
	for grep { !/authentication failed/ && /SASL/ } split /\n/, $log;
SKIP: {
	skip 'fail2ban-regex is not installed', 1 unless -x '/usr/bin/fail2ban-regex';
	my $dir = $m->dir;
	mkdir "$dir/filter.d";
	open my $ff, '>', "$dir/filter.d/mtad.conf" or die;
	print $ff $filter;
	close $ff;
	MtadTest::run('/bin/cp', '/etc/fail2ban/filter.d/common.conf', "$dir/filter.d/");
	open my $lf, '>', "$dir/f2b.log" or die;
	print $lf map { "$_\n" } @shapes, grep { /SASL/ && !/authentication failed/ } split /\n/, $log;
	close $lf;
	my ($rc, $out) = MtadTest::run('/usr/bin/fail2ban-regex', "$dir/f2b.log", "$dir/filter.d/mtad.conf");
	like $out, qr/^Failregex: ${\ scalar @shapes} total/m,
		'fail2ban-regex with the filter from INSTALL counts each failure once' or diag $out;
}

is $m->stop, 0, 'mtad exits 0 on SIGTERM';
done_testing;
