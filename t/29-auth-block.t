# 29-auth-block.t - auth_block: the admin's answer to a stolen password
# until it is reset. A listed login gets 535 5.7.8 with the right
# password, for PLAIN and LOGIN, with the initial response or after 334,
# without its password being checked at all (shown with a password
# checker that cannot answer: a blocked name gets 535, any other 454);
# the log names it; the list is inline or a file, reloaded on SIGHUP.
# And the sign of a stolen password: one login from more than
# auth_login_max_addresses client addresses within an hour warns, once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest qw(auth_plain b64);

my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
my %users = (alice => 'secret', carol => 'pw3');
my $m = MtadTest->new(listeners => ['tls'], users => \%users, auth_block => 'carol, dave',
		      auth_max_failures => 10);

sub session { my $s = $m->tls_raw(0); $m->dialog($s, "> EHLO client.example\n$EHLO_TLS"); $s }

my $s = session();
$m->dialog($s, "> " . auth_plain('carol', 'pw3') . "\n< 535 5.7.8 Authentication credentials invalid\n");
$m->dialog($s, "> AUTH PLAIN\n< 334 \n> " . b64("\0carol\0pw3") . "\n< 535 5.7.8 *\n");
$m->dialog($s, "> AUTH LOGIN " . b64('carol') . "\n< 535 5.7.8 *\n");
$m->dialog($s, "> AUTH LOGIN\n< 334 VXNlcm5hbWU6\n> " . b64('carol') . "\n< 535 5.7.8 *\n");
$m->dialog($s, "> " . auth_plain('Carol@mx.campus.test', 'pw3') . "\n< 535 5.7.8 *\n");
$m->dialog($s, "> " . auth_plain('alice', 'secret') . "\n< 235 2.7.0 Authentication successful\n");
$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
like $m->log_text, qr/warning: .*SASL PLAIN login refused: carol is in auth_block/,
	'the log names the blocked login';

# a file, and SIGHUP
my $file = $m->dir . '/blocked';
open my $fh, '>', $file or die;
print $fh "# compromised 2026-12-04\nalice\n";
close $fh;
$m->set_config(auth_block => $file);
kill 'HUP', $m->pid;
$m->wait_log(qr/reload: configuration .* loaded/) or diag $m->log_text;
$s = session();
$m->dialog($s, "> " . auth_plain('alice', 'secret') . "\n< 535 5.7.8 *\n");
$m->dialog($s, "> " . auth_plain('carol', 'pw3') . "\n< 235 2.7.0 *\n> QUIT\n< 221 2.0.0 *\n");
$m->stop;

# ---- a login from more than auth_login_max_addresses addresses in an hour ----
$m = MtadTest->new(listeners => ['tls'], users => \%users, auth_login_max_addresses => 10);
for my $i (1 .. 11) {
	my $s = $m->tls_raw(0, LocalAddr => "127.0.0.$i");
	$m->dialog($s, "> EHLO client.example\n" . ($EHLO_TLS =~ s/127\.0\.0\.1/127.0.0.$i/r)
		   . "> " . auth_plain('alice', 'secret')
		   . "\n< 235 2.7.0 *\n> QUIT\n< 221 2.0.0 *\n");
	if ($i == 10) {
		unlike $m->log_text, qr/may be stolen/, 'ten addresses in an hour: nothing said';
	}
}
my @stolen = $m->log_text =~ /(warning: sasl_username=alice\S* logged in from 11 client addresses within an hour \(auth_login_max_addresses = 10\), now from 127\.0\.0\.11: the password may be stolen)/g;
is scalar(@stolen), 1, 'the eleventh address: one warning' or diag $m->log_text;
my $s2 = $m->tls_raw(0, LocalAddr => '127.0.0.12');
$m->dialog($s2, "> EHLO client.example\n" . ($EHLO_TLS =~ s/127\.0\.0\.1/127.0.0.12/r)
	   . "> " . auth_plain('alice', 'secret')
	   . "\n< 235 2.7.0 *\n> QUIT\n< 221 2.0.0 *\n");
@stolen = $m->log_text =~ /may be stolen/g;
is scalar(@stolen), 1, '... and only one in that hour';
$m->stop;

# no password check: a checker that cannot answer (454) is never asked
my $n = MtadTest->new(listeners => ['tls'], tls => 1, sasl_pwcheck_method => 'saslauthd',
		      saslauthd_path => '/nonexistent/mux', auth_block => 'carol');
$s = $n->tls_raw(0);
$n->dialog($s, "> EHLO client.example\n$EHLO_TLS");
$n->dialog($s, "> " . auth_plain('alice', 'x') . "\n< 454 4.7.0 *\n");
$n->dialog($s, "> " . auth_plain('carol', 'x') . "\n< 535 5.7.8 *\n> QUIT\n< 221 2.0.0 *\n");
$n->stop;

done_testing;
