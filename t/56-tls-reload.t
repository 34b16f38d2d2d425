# 56-tls-reload.t - SIGHUP loads a renewed certificate for new
# connections, keeps existing ones working, and refuses a broken pair
# (the old certificate stays, a log line says why).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use MtadTest;

my $m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret'});

# peer_cn($sock) - the CN of the certificate mtad presented.
sub peer_cn {
	my ($s) = @_;
	return $s->peer_certificate('cn') // '';
}

# new_cert(CN) - replaces the cert and key files in place, as a renewal would.
sub new_cert {
	my ($cn) = @_;
	my ($rc, $out, $err) = MtadTest::run('openssl', 'req', '-x509', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', "/CN=$cn",
		'-days', '2', '-keyout', $m->key_path, '-out', $m->cert_path);
	die "openssl: $err" if $rc != 0;
}

my $old = $m->tls_raw(0);
is peer_cn($old), 'mx.campus.test', 'first certificate: mx.campus.test';

new_cert('mx2.campus.test');
my $from = length $m->log_text;
kill 'HUP', $m->{pid};
ok $m->wait_log(qr/reload: TLS certificate and key loaded/, $from), 'SIGHUP: reload logged';

my $new = $m->tls_raw(0);
is peer_cn($new), 'mx2.campus.test', 'a new connection gets the renewed certificate';
my $ehlo = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
$m->dialog($new, <<"END");
	> EHLO client.example
$ehlo
	> QUIT
	< 221 2.0.0 *
END
$m->dialog($old, <<"END");
	> EHLO client.example
$ehlo
	> NOOP
	< 250 2.0.0 *
	> QUIT
	< 221 2.0.0 *
END

# A key that does not belong to the certificate: refused, the old pair stays.
open my $fh, '>', $m->key_path or die;
print $fh "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
close $fh;
$from = length $m->log_text;
kill 'HUP', $m->{pid};
ok $m->wait_log(qr/warning: reload: keeping the old certificate: .*key/, $from),
	'a broken key is refused with a reason';
my $after = $m->tls_raw(0);
is peer_cn($after), 'mx2.campus.test', '... and the last good certificate stays in use';
close $after;

is $m->stop, 0, 'mtad exits 0 on SIGTERM';
done_testing;
