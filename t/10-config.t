# 10-config.t - `mtad -c FILE -n` checks a configuration: it prints the
# settings that differ from their defaults and exits 0, or names the
# file and line of every error and exits non-zero. (The files a
# configuration names, -n KEY and -d: t/14-config-check.t.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Basename ();
use File::Temp qw(tempdir);
use MtadTest;

my $dir = tempdir(CLEANUP => 1);
my $n = 0;

# -n reads alias_maps' .db, by default /etc/aliases.db: not the
# machine's here, but one compiled in the test's directory.
{
	open my $fh, '>', "$dir/aliases" or die "$dir/aliases: $!";
	print $fh "postmaster: root\n";
	close $fh;
	open $fh, '>', "$dir/aliases.conf" or die $!;
	print $fh "alias_maps = $dir/aliases\n";
	close $fh;
	my ($rc, undef, $err) = MtadTest::run("$MtadTest::BUILD/newaliases", '-C', "$dir/aliases.conf");
	die "newaliases: $err" if $rc != 0;
}

# check(TEXT) - writes TEXT to a new file, runs mtad -n: (rc, out, err, file)
sub check {
	my ($text) = @_;
	my $file = "$dir/mtad" . ++$n . ".conf";
	open my $fh, '>', $file or die "$file: $!";
	print $fh $text;
	print $fh "alias_maps = $dir/aliases\n" unless $text =~ /^alias_maps\b/m;
	# mtad -n checks the user a root start becomes: stay who runs the test.
	print $fh "user =\n" unless $text =~ /^user\b/m;
	close $fh;
	return (MtadTest::run("$MtadTest::BUILD/mtad", '-c', $file, '-n'), $file);
}

# ---- a good configuration ----

my ($rc, $out, $err) = check(<<"END");
# mtad test configuration
hostname = mx.campus.test

spool_directory = $dir/spool
listen = 127.0.0.1:2525
listen = [::1]:2526
message_size_limit   =   10000
max_recipients = 5
# explicitly the default: not printed
max_errors = 20
END
is $rc, 0, 'good config: exit 0' or diag $err;
# As root, `user =` keeps mtad root: a warning, as at start; nothing else.
is join('', grep { !/^mtad: warning: \S+: user is empty/ } split /^/, $err), '',
	'good config: nothing on stderr but that warning';
my @lines = split /\n/, $out;
for my $want ('hostname = mx.campus.test', "spool_directory = $dir/spool",
	      'listen = 127.0.0.1:2525', 'listen = [::1]:2526',
	      'message_size_limit = 10000', 'max_recipients = 5') {
	ok((grep { $_ eq $want } @lines), "-n prints '$want'") or diag $out;
}
for my $default (qw(max_errors max_connections max_connections_per_ip
		    command_timeout data_timeout)) {
	ok(!(grep { /^\Q$default\E\s*=/ } @lines), "-n does not print default $default")
		or diag $out;
}
is scalar(grep { !/^[a-z_]+ = \S/ && $_ ne 'user =' } @lines), 0, 'every printed line is `key = value`'
	or diag $out;

# Every setting in mtad.h is a known key.
($rc, $out, $err) = check(<<"END");
hostname = mx.campus.test
spool_directory = $dir/spool
listen = 127.0.0.1:2525
message_size_limit = 52428800
max_recipients = 100
max_errors = 20
max_connections = 1000
max_connections_per_ip = 50
command_timeout = 300
data_timeout = 600
db_cache_size = 16777216
db_log_buffer_size = 4194304
checkpoint_interval = 60
END
is $rc, 0, 'every documented key is accepted' or diag $err;
for my $default (qw(message_size_limit max_recipients max_errors max_connections
		    max_connections_per_ip command_timeout data_timeout)) {
	unlike $out, qr/^\Q$default\E\s*=/m, "the default value of $default is not printed";
}

# ---- errors: each names FILE:LINE ----

# [what, configuration text, line of the error]
my @bad = (
	['unknown key',                "hostname = a.test\n\n# c\nbogus_key = 1\n",  4],
	['line without =',             "hostname = a.test\nmax_errors\n",            2],
	['listen without port',        "listen = 127.0.0.1\n",                       1],
	['listen port out of range',   "# x\nlisten = 127.0.0.1:70000\n",            2],
	['listen host name',           "listen = localhost:25\n",                    1],
	['listen bad IPv4',            "listen = 127.0.0.300:25\n",                  1],
	['listen unclosed bracket',    "listen = [::1:2525\n",                       1],
	['listen bad IPv6',            "listen = [::1::2]:2525\n",                   1],
	['listen empty',               "listen =\n",                                 1],
	['number with letters',        "\nmax_recipients = abc\n",                   2],
	['number with suffix garbage', "message_size_limit = 12abc\n",               1],
	['negative number',            "command_timeout = -5\n",                     1],
	['number overflow',            "max_connections = 99999999999999999999999\n", 1],
	['empty number',               "max_errors =\n",                             1],
	['replication_local no port',  "replication_local = 10.0.0.1\nreplication_peer = 10.0.0.2:7001\n", 1],
	['replication_peer bad port',  "replication_local = 10.0.0.1:7001\nreplication_peer = 10.0.0.2:0\n", 2],
	['replication_peer twice',     "replication_local = 10.0.0.1:7001\nreplication_peer = 10.0.0.2:7001\nreplication_peer = 10.0.0.2:7001\n", 3],
	['replication_peer is local',  "replication_local = 10.0.0.1:7001\n\nreplication_peer = 10.0.0.1:7001\n", 3],
	['replication_peer alone',     "\nreplication_peer = 10.0.0.2:7001\n",     2],
	['replication_local alone',    "replication_local = [::1]:7001\n",          1],
	['replication_ack unknown',    "replication_ack = two\n",                   1],
);
for my $case (@bad) {
	my ($what, $text, $line) = @$case;
	my ($rc, $out, $err, $file) = check("# $what\n$text");
	$line++;	# the comment line above
	isnt $rc, 0, "$what: exit non-zero";
	like $err, qr/^(?:mtad: )?\Q$file\E:$line: \S/m, "$what: error names $file:$line"
		or diag "stderr: $err";
}

($rc, $out, $err) = MtadTest::run("$MtadTest::BUILD/mtad", '-c', "$dir/missing.conf", '-n');
isnt $rc, 0, 'missing file: exit non-zero';
like $err, qr/\Q$dir\E\/missing\.conf/, 'missing file: error names the file';

# The sample production config is valid once the files it names exist:
# its certificate, key, sasldb, user and spool are the machine's, so they
# are pointed at a test instance's (t/14 checks what -n says without them).
my $top = File::Basename::dirname(__FILE__) . '/..';
my $inst = MtadTest->new(start => 0, tls => 1, users => {alice => 'secret'});
my $sample = MtadTest::slurp("$top/etc/mtad.conf");
my %ours = (user => '', spool_directory => $inst->spool, tls_cert_file => $inst->cert_path,
	    tls_key_file => $inst->key_path);
for my $key (sort keys %ours) {
	$sample =~ s/^\Q$key\E = .*$/$key =@{[ length $ours{$key} ? " $ours{$key}" : '' ]}/m
		or die "etc/mtad.conf has no $key line";
}
($rc, $out, $err) = check($sample . "sasl_database = " . $inst->sasldb_path . "\n");
is $rc, 0, 'etc/mtad.conf passes mtad -n' or diag $err;
like $out, qr/^listen = 0\.0\.0\.0:587 starttls submission$/m, '... with the submission listener';

done_testing;
