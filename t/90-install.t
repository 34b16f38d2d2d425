# 90-install.t - `make install DESTDIR=... PREFIX=/usr` with the binaries
# already built in MTAD_BUILD: every file lands where INSTALL says, with
# sane modes; the installed mtad and mtaq run; a second install keeps a
# changed mtad.conf and puts the new sample beside it; the installed unit
# passes `systemd-analyze verify` and the man pages render without
# warnings (each when the tool is here); `make uninstall` leaves the
# configuration. Everything happens under a temporary DESTDIR: nothing
# here touches the real /etc, /usr or /lib, and make is kept from
# rebuilding anything (-o), so a check-asan build is installed as it is.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd ();
use File::Find ();
use File::Temp qw(tempdir);
use POSIX ();
use MtadTest;

my $top = Cwd::abs_path("$FindBin::Bin/..");
my $build = Cwd::abs_path($MtadTest::BUILD) // $MtadTest::BUILD;
plan skip_all => "$build/mtad, mtaq or sendmail missing: run make first"
	unless -x "$build/mtad" && -x "$build/mtaq" && -x "$build/sendmail";

umask 022;	# what INSTALL expects; the leading directories get it

# in_path(PROG) - true when PROG is an executable in PATH.
sub in_path {
	my ($prog) = @_;
	return grep { -x "$_/$prog" } split /:/, $ENV{PATH} // '';
}

# make_in(DESTDIR, TARGET, [EXTRA...]) - (rc, out, err) of make TARGET as
# INSTALL documents it. Without the outer make's MAKEFLAGS (its variables
# and jobserver), and with -o on the binaries: installed as built, never
# rebuilt with other flags.
sub make_in {
	my ($dest, $target, @extra) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES)};
	return MtadTest::run('make', '--no-print-directory', '-C', $top,
			     '-o', "$build/mtad", '-o', "$build/mtaq", '-o', "$build/sendmail", "BUILD=$build",
			     "DESTDIR=$dest", 'PREFIX=/usr', @extra, $target);
}

# tree(DIR) - {relative path => mode} of everything below DIR.
sub tree {
	my ($dir) = @_;
	my %t;
	File::Find::find({ no_chdir => 1, wanted => sub {
		return if $_ eq $dir;
		my @st = lstat $_ or return;
		$t{substr($_, length($dir) + 1)} = $st[2] & 07777;
	} }, $dir);
	return \%t;
}

my $dest = tempdir(CLEANUP => 1);

# ---- the dry run names no path outside DESTDIR and the source tree ----

{
	my ($rc, $out, $err) = make_in($dest, 'install', '-n');
	is $rc, 0, 'make -n install' or diag $err;
	# Absolute paths that stand alone (after a blank, quote or >):
	# sed's s|old|new| expression is not one.
	# /usr/sbin/sendmail is what the mailq and newaliases links point to,
	# and what an existing link is compared with: never written.
	my @outside = grep { index($_, "$dest/") != 0 && index($_, "$top/") != 0 &&
			     index($_, "$build/") != 0 && $_ ne '/usr/sbin/sendmail' }
		      $out =~ m{(?:^|[\s'">])(/[^\s'"]*)}g;
	is_deeply \@outside, [], 'every path make install writes is under DESTDIR'
		or diag $out;
}

# ---- first install ----

my ($rc, $out, $err) = make_in($dest, 'install');
is $rc, 0, 'make install DESTDIR=... PREFIX=/usr' or diag "$out$err";

my %want = (
	'usr' => 0755, 'usr/sbin' => 0755,
	'usr/sbin/mtad' => 0755, 'usr/sbin/mtaq' => 0755, 'usr/sbin/sendmail' => 0755,
	'usr/bin' => 0755, 'usr/bin/mailq' => 0777, 'usr/bin/newaliases' => 0777,
	'etc/aliases' => 0644, 'usr/share/man/man8/sendmail.8' => 0644,
	'usr/share' => 0755, 'usr/share/man' => 0755,
	'usr/share/man/man5' => 0755, 'usr/share/man/man8' => 0755,
	'usr/share/man/man5/mtad.conf.5' => 0644,
	'usr/share/man/man8/mtad.8' => 0644, 'usr/share/man/man8/mtaq.8' => 0644,
	'usr/lib' => 0755, 'usr/lib/systemd' => 0755, 'usr/lib/systemd/system' => 0755,
	'usr/lib/systemd/system/mtad.service' => 0644,
	'etc' => 0755, 'etc/mtad' => 0755, 'etc/mtad/mtad.conf' => 0644,
	'etc/fail2ban' => 0755, 'etc/fail2ban/filter.d' => 0755, 'etc/fail2ban/jail.d' => 0755,
	'etc/fail2ban/filter.d/mtad.conf' => 0644, 'etc/fail2ban/jail.d/mtad.conf' => 0644,
);
my $got = tree($dest);
is_deeply [sort keys %$got], [sort keys %want], 'exactly the expected files, nothing else'
	or diag explain $got;
for my $path (sort keys %want) {
	next unless exists $got->{$path};
	is sprintf('%04o', $got->{$path}), sprintf('%04o', $want{$path}), "mode of $path";
}
ok !(grep { !-l "$dest/$_" && ($got->{$_} & 0002) } keys %$got), 'nothing world-writable (links aside)';

for my $link (qw(mailq newaliases)) {
	is readlink("$dest/usr/bin/$link"), '/usr/sbin/sendmail', "usr/bin/$link -> /usr/sbin/sendmail";
}
is MtadTest::slurp("$dest/etc/aliases"), MtadTest::slurp("$top/etc/aliases"),
	'etc/aliases is the sample';
for my $prog (qw(mtad mtaq sendmail)) {
	is MtadTest::slurp("$dest/usr/sbin/$prog"), MtadTest::slurp("$build/$prog"),
		"usr/sbin/$prog is $build/$prog";
}
is MtadTest::slurp("$dest/etc/mtad/mtad.conf"), MtadTest::slurp("$top/etc/mtad.conf"),
	'etc/mtad/mtad.conf is the sample';
for my $page (qw(man8/mtad.8 man8/mtaq.8 man5/mtad.conf.5)) {
	my $src = $page =~ s{^man\d/}{}r;
	is MtadTest::slurp("$dest/usr/share/man/$page"), MtadTest::slurp("$top/man/$src"),
		"share/man/$page is man/$src";
}

my $unit = MtadTest::slurp("$dest/usr/lib/systemd/system/mtad.service");
like $unit, qr{^ExecStart=/usr/sbin/mtad -c /etc/mtad/mtad\.conf$}m,
	'the unit starts PREFIX/sbin/mtad';
unlike $unit, qr{^[^#\n]*/usr/local}m, 'no /usr/local left in the unit outside comments';
like $unit, qr{^ReadWritePaths=/var/spool/mtad$}m, 'the unit may write the spool';

# ---- the installed programs run ----

($rc, $out, $err) = MtadTest::run("$dest/usr/sbin/mtad", '-h');
is $rc, 0, 'installed mtad -h' or diag $err;
like $out, qr/^usage: mtad/, 'installed mtad -h prints its usage';
($rc, $out, $err) = MtadTest::run("$dest/usr/sbin/mtaq", '--help');
is $rc, 0, 'installed mtaq --help' or diag $err;
like $out, qr/^usage: mtaq/, 'installed mtaq --help prints its usage';

# -n on the installed configuration: valid, and the same verdict as the
# built mtad gives for etc/mtad.conf.
# alias_maps is pointed at DESTDIR's /etc/aliases (compiled there by the
# installed newaliases): -n checks it, and the real /etc is not ours.
# So are the user, spool, certificate, key and sasldb it names: -n checks
# them too, and they are a test instance's here.
my $checked = tempdir(CLEANUP => 1);
my $inst = MtadTest->new(start => 0, tls => 1, users => {alice => 'secret'});
my %ours = (user => '', spool_directory => $inst->spool, tls_cert_file => $inst->cert_path,
	    tls_key_file => $inst->key_path);
for my $pair (["$dest/etc/mtad/mtad.conf", "$checked/installed.conf"],
	      ["$top/etc/mtad.conf", "$checked/built.conf"]) {
	my $text = MtadTest::slurp($pair->[0]);
	for my $key (sort keys %ours) {
		$text =~ s/^\Q$key\E = .*$/$key =@{[ length $ours{$key} ? " $ours{$key}" : '' ]}/m
			or die "$pair->[0] has no $key line";
	}
	open my $c, '>', $pair->[1] or die "$pair->[1]: $!";
	print $c $text, "alias_maps = $dest/etc/aliases\nsasl_database = ", $inst->sasldb_path, "\n";
	close $c;
}
($rc, $out, $err) = MtadTest::run("$dest/usr/sbin/sendmail", '-C', "$checked/installed.conf", '-bi');
is $rc, 0, 'installed newaliases (sendmail -bi) compiles the installed aliases' or diag $err;
ok -s "$dest/etc/aliases.db", '... into etc/aliases.db';
($rc, $out, $err) = MtadTest::run("$dest/usr/sbin/mtad", '-c', "$checked/installed.conf", '-n');
is $rc, 0, 'installed mtad -n accepts the installed mtad.conf' or diag $err;
my @built = MtadTest::run("$build/mtad", '-c', "$checked/built.conf", '-n');
is $out, $built[1], 'and prints what the built mtad prints for etc/mtad.conf';
unlink "$dest/etc/aliases.db";

# ---- a second install keeps a changed mtad.conf ----

my $conf = "$dest/etc/mtad/mtad.conf";
open my $fh, '>>', $conf or die "$conf: $!";
print $fh "# changed by 90-install.t\nmax_errors = 7\n";
close $fh;
my $mine = MtadTest::slurp($conf);

($rc, $out, $err) = make_in($dest, 'install');
is $rc, 0, 'second make install' or diag "$out$err";
is MtadTest::slurp($conf), $mine, 'the changed mtad.conf is kept as it was';
is MtadTest::slurp("$conf.sample"), MtadTest::slurp("$top/etc/mtad.conf"),
	'the new sample is beside it as mtad.conf.sample';
like $out, qr/kept \Q$conf\E/, 'make install says it kept mtad.conf';
is sprintf('%04o', (stat "$conf.sample")[2] & 07777), '0644', 'mode of mtad.conf.sample';

# An unchanged mtad.conf gets no .sample beside it.
{
	my $d2 = tempdir(CLEANUP => 1);
	my @r = make_in($d2, 'install');
	is $r[0], 0, 'install into a fresh DESTDIR' or diag "$r[1]$r[2]";
	@r = make_in($d2, 'install');
	is $r[0], 0, 'and again' or diag "$r[1]$r[2]";
	ok !-e "$d2/etc/mtad/mtad.conf.sample", 'an unchanged mtad.conf gets no .sample';
}

# ---- no root needed: the same install as an unprivileged user ----

SKIP: {
	skip 'not root: the installs above already ran unprivileged', 2 if $> != 0;
	my @pw = getpwnam('nobody') or skip 'no user nobody', 2;
	my $d3 = tempdir(CLEANUP => 1);
	chown $pw[2], $pw[3], $d3 or skip "chown $d3: $!", 2;
	skip "nobody cannot reach $top or $build (a checkout under /root, mode 0700)", 2
		unless MtadTest::world_reachable("$top/GNUmakefile")
		&& MtadTest::world_reachable("$build/mtad");
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDOUT, '>', '/dev/null';
		open STDERR, '>', '/dev/null';
		POSIX::setgid($pw[3]) && POSIX::setuid($pw[2]) or POSIX::_exit(125);
		delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES)};
		{ exec 'make', '-s', '-C', $top, '-o', "$build/mtad", '-o', "$build/mtaq", '-o', "$build/sendmail",
		       "BUILD=$build", "DESTDIR=$d3", 'PREFIX=/usr', 'install' };
		POSIX::_exit(127);
	}
	waitpid $pid, 0;
	is $? >> 8, 0, 'make install DESTDIR=... as nobody';
	ok -x "$d3/usr/sbin/mtad" && -f "$d3/etc/mtad/mtad.conf", 'and it installed';
}

# ---- systemd-analyze verify on the installed unit ----

SKIP: {
	skip 'systemd-analyze is not installed (apt-get install systemd)', 2
		unless in_path('systemd-analyze');
	# The unit names /usr/sbin/mtad, which is in DESTDIR here: verify a
	# copy that points there. With MANPATH on DESTDIR's pages, verify also
	# checks that Documentation= names installed man pages.
	my $vdir = tempdir(CLEANUP => 1);
	(my $copy = $unit) =~ s{^ExecStart=/usr/sbin/mtad}{ExecStart=$dest/usr/sbin/mtad}m;
	open my $u, '>', "$vdir/mtad.service" or die "$vdir/mtad.service: $!";
	print $u $copy;
	close $u;
	local $ENV{MANPATH} = "$dest/usr/share/man";
	my @man = in_path('man') ? () : ('--man=no');
	($rc, $out, $err) = MtadTest::run('systemd-analyze', 'verify', @man, "$vdir/mtad.service");
	is $rc, 0, 'systemd-analyze verify mtad.service' . (@man ? ' (--man=no: no man here)' : '')
		or diag "$out$err";
	is join('', grep { /mtad/ } split /^/, "$out$err"), '', 'no complaint about mtad.service';
}

# ---- the man pages render without warnings ----

my @pages = map { "$dest/usr/share/man/$_" } qw(man8/mtad.8 man8/mtaq.8 man5/mtad.conf.5);
SKIP: {
	skip 'groff is not installed (apt-get install groff-base)', 2 * @pages
		unless in_path('groff');
	for my $page (@pages) {
		($rc, $out, $err) = MtadTest::run('groff', '-man', '-Tutf8', '-ww', '-z', $page);
		is $rc, 0, "groff renders $page";
		is $err, '', "without warnings: $page";
	}
}
SKIP: {
	skip 'man is not installed (apt-get install man-db)', 2 * @pages unless in_path('man');
	local $ENV{MANWIDTH} = 80;
	local $ENV{LC_ALL} = 'C.UTF-8';
	for my $page (@pages) {
		($rc, $out, $err) = MtadTest::run('man', '--warnings', '-l', $page);
		is $err, '', "man -l $page: no warnings";
		like $out, qr/^NAME\n\s+\S+ - \S/m, "man -l $page: a NAME section";
	}
}

# ---- uninstall keeps the configuration ----

($rc, $out, $err) = make_in($dest, 'uninstall');
is $rc, 0, 'make uninstall' or diag "$out$err";
ok !-e "$dest/usr/sbin/mtad" && !-e "$dest/usr/lib/systemd/system/mtad.service" &&
   !-e "$dest/usr/share/man/man8/mtad.8", 'programs, unit and pages are gone';
is MtadTest::slurp($conf), $mine, 'mtad.conf stays';

done_testing;
