# 59-tls-resume.t - a mail client that reconnects resumes its TLS session
# with the ticket it got, instead of a full handshake: openssl s_client
# -sess_out on the first connection, -sess_in on the next ("Reused"),
# TLS 1.3 and TLS 1.2, on the implicit TLS listener and after STARTTLS;
# a ticket from one listener works on the other; tickets from before a
# SIGHUP reload (renewed certificate) still resume, while a client
# without a ticket gets the new certificate; after a restart they do not
# (the ticket keys live only in mtad's memory).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use Test::More;
use MtadTest;

# listener 0: implicit TLS, 1: STARTTLS
my $m = MtadTest->new(listeners => ['tls', 'starttls'], users => {alice => 'secret'});
my $dir = tempdir(CLEANUP => 1);
my @LISTENERS = ([0, 'implicit TLS'], [1, 'STARTTLS']);

# connect_once(LISTENER, VERSION, IN, OUT) - one s_client connection that
# says QUIT, offering the session in file IN (undef: none) and writing the
# session it ends with to OUT. Returns ("New"|"Reused"|why not, output).
sub connect_once {
	my ($i, $version, $in, $out) = @_;
	my @argv = ('timeout', '30', 'openssl', 's_client', '-connect',
		    '127.0.0.1:' . $m->port($i), "-$version", '-crlf', '-ign_eof',
		    '-sess_out', $out);
	push @argv, '-starttls', 'smtp' unless $m->implicit_tls($i);
	push @argv, '-sess_in', $in if defined $in;
	unlink $out;
	my ($rc, $text, $err) = MtadTest::run_input("QUIT\n", @argv);
	return ("no 221 to QUIT (exit $rc): $err", $text) unless $text =~ /^221 /m;
	my ($how) = $text =~ /^(New|Reused), TLSv1\.[23], Cipher is /m;
	return ($how // "no New/Reused line (exit $rc)", $text);
}

# subject_cn(OUTPUT) - the CN of the certificate s_client was shown.
sub subject_cn {
	my ($text) = @_;
	return $text =~ /^subject=.*CN\s*=\s*([^,\s]+)/m ? $1 : '';
}

my %ticket;	# "$version/$listener" => the first connection's session file
for my $version ('tls1_3', 'tls1_2') {
	for my $l (@LISTENERS) {
		my ($i, $name) = @$l;
		my $first = "$dir/$version-$i-first.pem";
		my ($how, $text) = connect_once($i, $version, undef, $first);
		is $how, 'New', "$name $version: first connection, full handshake";
		ok -s $first, "$name $version: the client kept a session with a ticket";
		($how, $text) = connect_once($i, $version, $first, "$dir/$version-$i-again.pem");
		is $how, 'Reused', "$name $version: the next connection resumes it"
			or diag $text;
		$ticket{"$version/$i"} = $first;
	}
	# Both listeners share one TLS configuration and one set of keys.
	my ($how) = connect_once(1, $version, $ticket{"$version/0"}, "$dir/$version-cross.pem");
	is $how, 'Reused', "$version: a ticket from the implicit TLS port resumes after STARTTLS";
}

# A renewed certificate, loaded by SIGHUP: a new SSL_CTX, the same ticket keys.
my ($rc, $out, $err) = MtadTest::run('openssl', 'req', '-x509', '-newkey', 'ec',
	'-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=mx2.campus.test',
	'-days', '2', '-keyout', $m->key_path, '-out', $m->cert_path);
is $rc, 0, 'renewed certificate made' or diag $err;
my $from = length $m->log_text;
kill 'HUP', $m->pid;
ok $m->wait_log(qr/reload: TLS certificate and key loaded/, $from), 'SIGHUP: reload logged';
my ($how, $text) = connect_once(0, 'tls1_3', undef, "$dir/after-new.pem");
ok $how eq 'New' && subject_cn($text) eq 'mx2.campus.test',
	'after the reload a client without a ticket gets the renewed certificate'
	or diag "$how\n$text";
for my $version ('tls1_3', 'tls1_2') {
	for my $l (@LISTENERS) {
		my ($i, $name) = @$l;
		($how, $text) = connect_once($i, $version, $ticket{"$version/$i"},
					     "$dir/$version-$i-reload.pem");
		is $how, 'Reused', "$name $version: a ticket from before the reload still resumes"
			or diag $text;
	}
}

# A restart makes new keys: the old tickets lead to full handshakes.
$m->restart;
for my $version ('tls1_3', 'tls1_2') {
	($how, $text) = connect_once(0, $version, $ticket{"$version/0"}, "$dir/$version-restart.pem");
	is $how, 'New', "$version: after a restart an old ticket gets a full handshake";
}

is $m->stop, 0, 'mtad exits 0 on SIGTERM';
done_testing;
