# 14-config-check.t - `mtad -n` checks what a start would need, not only
# the syntax: every file the configuration names (certificate, key, the
# key matching the certificate, sasldb, maps, aliases, spool, user), read
# as the daemon reads it (as root at start, the rest as `user`), and the
# rules between settings. It reports every error at once, each as
# FILE:LINE, and exits non-zero; warnings apart. Also `mtad -n KEY...`
# (values in force) and `mtad -d [KEY...]` (defaults, as postconf -d).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Basename ();
use File::Temp qw(tempdir);
use MtadTest;

my $mtad = "$MtadTest::BUILD/mtad";
my $dir = tempdir(CLEANUP => 1);
# The `user` cases below run the user stage as nobody: the path to the
# test's files must be open to it (as /etc/mtad is to mtad).
chmod 0755, $dir or die "chmod $dir: $!";
my $n = 0;

# Two test instances: their certificates and keys (A's key does not
# match B's certificate), a sasldb with a user, a spool.
my $a = MtadTest->new(start => 0, tls => 1, users => {alice => 'secret'});
my $b = MtadTest->new(start => 0, tls => 1);
chmod 0755, $a->dir, $b->dir or die "chmod: $!";
chmod 0644, $a->cert_path, $b->cert_path or die "chmod: $!";

# Aliases compiled by newaliases, as -n reads them.
{
	open my $fh, '>', "$dir/aliases" or die "$dir/aliases: $!";
	print $fh "postmaster: root\n";
	close $fh;
	open $fh, '>', "$dir/aliases.conf" or die $!;
	print $fh "alias_maps = $dir/aliases\nuser =\n";
	close $fh;
	my ($rc, undef, $err) = MtadTest::run("$MtadTest::BUILD/newaliases", '-C', "$dir/aliases.conf");
	die "newaliases: $err" if $rc != 0;
	chmod 0644, "$dir/aliases", "$dir/aliases.db";
}

# write_conf(LINES) - a config of these lines (plus what every case
# needs, after them): its path.
sub write_conf {
	my (@lines) = @_;
	my $file = "$dir/c" . ++$n . '.conf';
	my $text = join('', map { "$_\n" } @lines);
	$text .= "user =\n" unless $text =~ /^user\b/m;
	$text .= "spool_directory = $dir/spool$n\n" unless $text =~ /^spool_directory\b/m;
	$text .= "alias_maps = $dir/aliases\n" unless $text =~ /^alias_maps\b/m;
	$text .= "dns_servers = none\n";
	open my $fh, '>', $file or die "$file: $!";
	print $fh $text;
	close $fh;
	return $file;
}

# line_of(FILE, RE) - the number of the first line of FILE matching RE.
sub line_of {
	my ($file, $re) = @_;
	my @lines = split /\n/, MtadTest::slurp($file);
	for my $i (0 .. $#lines) {
		return $i + 1 if $lines[$i] =~ $re;
	}
	die "$file: no line matches $re";
}

my $tls = 'listen = 127.0.0.1:2525 starttls';
my $cert = 'tls_cert_file = ' . $a->cert_path;
my $key = 'tls_key_file = ' . $a->key_path;
my $sasldb = 'sasl_database = ' . $a->sasldb_path;

# ---- a good configuration: exit 0, nothing but the settings ----

{
	my $file = write_conf('hostname = mx.campus.test', $tls, $cert, $key, $sasldb);
	my ($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	is $rc, 0, 'a config whose files are all there passes' or diag $err;
	unlike $err, qr/^mtad: (?!warning:)/m, '... with no error' or diag $err;
	like $out, qr/^tls_cert_file = \Q${\ $a->cert_path}\E$/m, '... and prints its settings';
}

# ---- broken configurations: each error names FILE:LINE ----

# [what, config lines, the line the error is on (a regex), what it says]
my @BROKEN = (
	['missing certificate file',
	 [$tls, "tls_cert_file = $dir/missing-cert.pem", $key, $sasldb],
	 qr/^tls_cert_file/, qr/tls_cert_file \S*missing-cert\.pem: No such file/],
	['key that does not match the certificate',
	 [$tls, 'tls_cert_file = ' . $b->cert_path, $key, $sasldb],
	 qr/^tls_key_file/, qr/key_file \S+ .*(?:does not match|mismatch)/i],
	['retry_min above retry_max',
	 ['retry_min = 50000', 'retry_max = 10'],
	 qr/^retry_max/, qr/retry_min = 50000 is above retry_max = 10/],
	['unknown key',
	 ['# a comment', 'max_recpients = 5'],
	 qr/^max_recpients/, qr/unknown parameter "max_recpients"/],
	['bad value type',
	 ['max_errors = twenty'],
	 qr/^max_errors/, qr/bad number "twenty" for max_errors/],
	['listener option',
	 ['listen = 127.0.0.1:2525 starttsl'],
	 qr/^listen/, qr/starttsl/],
	['submission listener without TLS',
	 ['listen = 127.0.0.1:2587 submission'],
	 qr/^listen/, qr/submission listener needs AUTH, and AUTH needs TLS/],
	['missing sasldb with AUTH on',
	 [$tls, $cert, $key, "sasl_database = $dir/missing-sasldb2"],
	 qr/^sasl_database/, qr/sasl_database \S*missing-sasldb2 is not readable by user \S+ \(No such file/],
	['missing sasldb by default: the listener that offers AUTH',
	 [$tls, $cert, $key],
	 qr/^listen/, qr{sasl_database /etc/mtad/sasldb2 \(the default\) is not readable}],
	['map file that does not exist',
	 ["sender_login_map = $dir/missing-map"],
	 qr/^sender_login_map/, qr/sender_login_map \S*missing-map: No such file/],
	['send_limit_map that does not exist',
	 ["send_limit_map = $dir/missing-limits"],
	 qr/^send_limit_map/, qr/send_limit_map \S*missing-limits: No such file/],
	['local_recipient_maps that does not exist',
	 ["local_recipient_maps = $dir/missing-rcpts"],
	 qr/^local_recipient_maps/, qr/local_recipient_maps \S*missing-rcpts: No such file/],
	['aliases without their .db',
	 ["alias_maps = $dir/no-db-aliases"],
	 qr/^alias_maps/, qr/no-db-aliases\.db/],
	['user that does not exist',
	 ['user = no-such-mtad-user'],
	 qr/^user/, qr/user no-such-mtad-user does not exist/],
	['spool that is a file',
	 ["spool_directory = $dir/aliases"],
	 qr/^spool_directory/, qr/is not a directory/],
	['auth_block file that does not exist',
	 ["auth_block = $dir/missing-blocklist"],
	 qr/^auth_block/, qr/missing-blocklist: No such file/],
);
# A map with a mistake inside: both files' lines are named.
{
	open my $fh, '>', "$dir/bad-senders" or die $!;
	print $fh "alice: alice\@campus.test\nthis line has no colon\n";
	close $fh;
	chmod 0644, "$dir/bad-senders";
	push @BROKEN, ['map with a syntax error', ["sender_login_map = $dir/bad-senders"],
		       qr/^sender_login_map/, qr/bad-senders:2:/];
}
{
	open my $fh, '>', "$dir/no-db-aliases" or die $!;
	print $fh "postmaster: root\n";
	close $fh;
}

for my $case (@BROKEN) {
	my ($what, $lines, $at, $says) = @$case;
	my $file = write_conf('# ' . $what, @$lines);
	my $line = line_of($file, $at);
	my ($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	isnt $rc, 0, "$what: exit non-zero";
	like $err, qr/^mtad: \Q$file\E:$line: .*$says/m, "$what: named at $file:$line" or diag $err;
	is $out, '', "$what: no settings printed";
}

# ---- every error at once ----

{
	my $file = write_conf('hostname = mx.campus.test', 'bogus_key = 1', $tls,
			      "tls_cert_file = $dir/missing-cert.pem", $key,
			      "sasl_database = $dir/missing-sasldb2", 'retry_min = 50000',
			      'retry_max = 10', "sender_login_map = $dir/missing-map",
			      'max_errors = twenty');
	my ($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	isnt $rc, 0, 'a file with six errors: exit non-zero';
	for my $want ([qr/^bogus_key/, qr/unknown parameter/], [qr/^tls_cert_file/, qr/missing-cert/],
		      [qr/^sasl_database/, qr/missing-sasldb2/], [qr/^retry_max/, qr/retry_min/],
		      [qr/^sender_login_map/, qr/missing-map/], [qr/^max_errors/, qr/twenty/]) {
		my $line = line_of($file, $want->[0]);
		like $err, qr/^mtad: \Q$file\E:$line: .*$want->[1]/m, "... line $line reported"
			or diag $err;
	}
	like $err, qr/^mtad: \Q$file\E: 6 errors$/m, '... and counted: 6 errors' or diag $err;
}

# ---- warnings: reported apart, the exit status stays 0 ----

{
	my $file = write_conf('local_domains = campus.test', 'max_connections = 10',
			      'max_connections_per_ip = 20');
	my ($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	is $rc, 0, 'warnings only: exit 0' or diag $err;
	my $ld = line_of($file, qr/^local_domains/);
	my $mc = line_of($file, qr/^max_connections_per_ip/);
	like $err, qr/^mtad: warning: \Q$file\E:$ld: local domain campus\.test has no route/m,
		'a local domain without a route: a warning at its line' or diag $err;
	like $err, qr/^mtad: warning: \Q$file\E:$mc: max_connections_per_ip = 20 is above max_connections = 10/m,
		'max_connections_per_ip above max_connections: a warning' or diag $err;
	unlike $err, qr/^mtad: (?!warning:)/m, '... and no error' or diag $err;
}

# ---- as `user`: a root start reads some files as root, the rest as user ----

SKIP: {
	skip 'the user stage needs root (to become nobody)', 8 if $> != 0;
	my $nobody_uid = getpwnam('nobody');
	skip 'no user nobody', 8 unless defined $nobody_uid;
	my $spool = "$dir/nobody-spool";
	mkdir $spool, 0700 or die "$spool: $!";
	chown $nobody_uid, -1, $spool or die "chown $spool: $!";
	# A key and a sasldb only root can read.
	my $rootkey = "$dir/root-only-key.pem";
	my $rootdb = "$dir/root-only-sasldb2";
	for ([$a->key_path, $rootkey], [$a->sasldb_path, $rootdb]) {
		my ($from, $to) = @$_;
		open my $in, '<', $from or die "$from: $!";
		binmode $in;
		local $/;
		my $bytes = <$in>;
		open my $out, '>', $to or die "$to: $!";
		binmode $out;
		print $out $bytes;
		close $out;
		chmod 0600, $to;
	}
	my @base = ('user = nobody', "spool_directory = $spool", $tls, $cert);

	# The key: read as root at start, so it works until a reload: a warning.
	my $file = write_conf(@base, "tls_key_file = $rootkey", 'sasl_mechanisms = none');
	my ($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	my $line = line_of($file, qr/^tls_key_file/);
	is $rc, 0, 'key only root can read, user nobody: no error (root reads it at start)'
		or diag $err;
	like $err, qr/^mtad: warning: \Q$file\E:$line: tls_key_file \S+ is not readable by user nobody/m,
		'... but a warning at its line: a reload as nobody cannot read it' or diag $err;

	# The sasldb: read as the user at every login: an error.
	$file = write_conf(@base, $key, "sasl_database = $rootdb");
	chmod 0644, $a->key_path;
	($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	$line = line_of($file, qr/^sasl_database/);
	isnt $rc, 0, 'sasldb only root can read, user nobody: an error';
	like $err, qr/^mtad: \Q$file\E:$line: sasl_database \S+ is not readable by user nobody/m,
		'... at its line' or diag $err;

	# The same files open to nobody: valid.
	chmod 0644, $rootdb;
	($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	is $rc, 0, 'the same, readable by nobody: valid' or diag $err;
	chmod 0600, $rootdb;

	# The spool must be the user's.
	$file = write_conf(@base[0, 2, 3], "spool_directory = $dir", $key, 'sasl_mechanisms = none');
	($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n');
	$line = line_of($file, qr/^spool_directory/);
	isnt $rc, 0, 'spool owned by root, user nobody: an error';
	like $err, qr/^mtad: \Q$file\E:$line: spool_directory \S+ is not owned by user nobody/m,
		'... at its line' or diag $err;
	opendir my $dh, $spool or die "$spool: $!";
	is scalar(grep { !/^\.\.?$/ } readdir $dh), 0, '-n created nothing in the spool';
}

# ---- mtad -n KEY...: the values in force ----

{
	my $file = write_conf('retry_min = 60', 'listen = 127.0.0.1:2525',
			      'listen = [::1]:2526 starttls', $cert, $key);
	my ($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n', 'retry_min', 'retry_max',
					     'listen', 'relayhost', 'helo_rule.no-rdns', 'queue_minfree');
	is $rc, 0, '-n KEY...: exit 0' or diag $err;
	is $out, "retry_min = 60\nretry_max = 14400\nlisten = 127.0.0.1:2525\n"
		. "listen = [::1]:2526 starttls\nrelayhost =\nhelo_rule.no-rdns = off\n"
		. "queue_minfree = 268435456\n",
		'... set, default, repeated, empty, a rule and the reserve in force';
	($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n', 'retry_min', 'no_such_key');
	isnt $rc, 0, '-n with an unknown KEY: exit non-zero';
	like $err, qr/unknown parameter "no_such_key"/, '... naming it' or diag $err;
	is $out, "retry_min = 60\n", '... the known one still printed';
	($rc, $out, $err) = MtadTest::run($mtad, '-c', $file, '-n', 'helo_rule.no-such-rule');
	isnt $rc, 0, '-n helo_rule.NAME with an unknown rule: exit non-zero';
}

# ---- mtad -d: every key of the table with its default ----

{
	my $top = File::Basename::dirname(__FILE__) . '/..';
	my @rows = MtadTest::slurp("$top/util/config.c") =~ /^\s*\{ "([a-z_.]+)", P_[A-Z_]+,/mg;
	cmp_ok scalar(@rows), '>', 50, 'the parameter table has its rows';
	my ($rc, $out, $err) = MtadTest::run($mtad, '-c', "$dir/does-not-exist.conf", '-d');
	is $rc, 0, '-d: exit 0, without reading the config' or diag $err;
	my %keys;
	for my $l (split /\n/, $out) {
		like $l, qr/^[a-z_]+(?:\.[a-z-]+)? =(?: \S.*)?$/, "-d line '$l' is `key = value`"
			or next;
		my ($k) = $l =~ /^(\S+) =/;
		$k = 'helo_rule.' if $k =~ /^helo_rule\./;
		$keys{$k}++;
	}
	is_deeply [sort keys %keys], [sort @rows], '-d lists every key of the table, and only those';
	like $out, qr/^retry_min = 300$/m, '... retry_min = 300';
	like $out, qr/^listen = 0\.0\.0\.0:25$/m, '... listen = 0.0.0.0:25';
	like $out, qr/^user = mtad$/m, '... user = mtad';
	($rc, $out) = MtadTest::run($mtad, '-d', 'retry_max', 'sasl_database');
	is $out, "retry_max = 14400\nsasl_database = /etc/mtad/sasldb2\n", '-d KEY...';
	($rc, $out, $err) = MtadTest::run($mtad, '-d', 'bogus');
	isnt $rc, 0, '-d with an unknown KEY: exit non-zero';
	($rc) = MtadTest::run($mtad, '-d', '-n');
	is $rc, 2, '-d and -n together: usage error';
	($rc) = MtadTest::run($mtad, '-c', "$dir/c1.conf", 'retry_min');
	is $rc, 2, 'a KEY without -n or -d: usage error';
}

done_testing;
