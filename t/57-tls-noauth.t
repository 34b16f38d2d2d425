# 57-tls-noauth.t - a relay that offers STARTTLS but takes no logins
# (sasl_mechanisms = none): no sasldb needed, no AUTH in EHLO, AUTH 502.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $m = MtadTest->new(listeners => ['starttls'], sasl_mechanisms => 'none',
		      sasl_database => '/nonexistent/sasldb2');
my $s = $m->raw;
ok $m->starttls_ehlo($s, 'client.example', auth => ''), 'STARTTLS works without any SASL set-up';
$m->dialog($s, <<"END");
	# no AUTH offered in EHLO (above), and none taken
	> ${\ MtadTest::auth_plain('alice', 'secret')}
	< 502 5.5.1 *
	> MAIL FROM:<a\@b.test>
	< 250 2.1.0 *
	> RCPT TO:<u\@campus.test>
	< 250 2.1.5 *
	> QUIT
	< 221 2.0.0 *
END
is $m->stop, 0, 'mtad exits 0 on SIGTERM';
done_testing;
