# 95-deb.t - `make deb` (etc/deb.mk, etc/deb/) with the programs already
# built in MTAD_BUILD, into a temporary DEB_DIR (build/ is left alone, and
# make is kept from rebuilding anything, -o, as in 90-install.t):
#   - the control fields: name, version, architecture, Section mail, the
#     mail-transport-agent Provides/Conflicts/Replaces of Debian's MTAs,
#     Depends, the description
#   - the contents: exactly what `make install PREFIX=/usr` stages, man
#     pages gzip -9n, /usr/share/doc/mtad, owners and modes, no /usr/local;
#     every file under /etc a conffile; the maintainer scripts pass sh -n
#   - lintian: no E: line (warnings are printed, not failed)
#   - a real dpkg -i, -r and --purge in a throwaway root (t/lib/deb-root:
#     overlays on this machine's /usr and /etc in a private mount, PID and
#     network namespace, root only): the user, the spool, the unit enabled,
#     the service started only with a certificate (a fake systemctl in the
#     throwaway root records what would have been done), stopped on
#     remove, the spool deleted only on purge; and with a stand-in MTA:
#     dpkg refusing both, apt-get replacing one with the other. dpkg
#     checks the Depends against this machine's packages there. The real
#     system is never written: no package, user or service of it changes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd ();
use File::Copy ();
use File::Find ();
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use MtadTest;

my $top = Cwd::abs_path("$FindBin::Bin/..");
my $build = Cwd::abs_path($MtadTest::BUILD) // $MtadTest::BUILD;

# in_path(PROG) - true when PROG is an executable in PATH.
sub in_path {
	my ($prog) = @_;
	return grep { -x "$_/$prog" } split /:/, $ENV{PATH} // '';
}

plan skip_all => "$build/mtad or mtaq missing: run make first"
	unless -x "$build/mtad" && -x "$build/mtaq";
plan skip_all => 'dpkg-deb or dpkg-shlibdeps missing (apt-get install dpkg-dev)'
	unless in_path('dpkg-deb') && in_path('dpkg-shlibdeps');

umask 022;

# make_in(TARGET, [EXTRA...]) - (rc, out, err) of make TARGET in the source
# tree with BUILD=$build, without the outer make's MAKEFLAGS and with -o on
# the programs: packaged as built, never rebuilt with other flags.
sub make_in {
	my ($target, @extra) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES)};
	return MtadTest::run('make', '--no-print-directory', '-C', $top,
			     '-o', "$build/mtad", '-o', "$build/mtaq", "BUILD=$build",
			     @extra, $target);
}

# fields(TEXT) - {Field => value} of a control paragraph (continuation
# lines joined with "\n").
sub fields {
	my ($text) = @_;
	my (%f, $last);
	for (split /\n/, $text) {
		if (/^([A-Za-z][A-Za-z0-9-]*):\s*(.*)$/) {
			$last = $1;
			$f{$last} = $2;
		} elsif (/^\s/ && defined $last) {
			$f{$last} .= "\n$_";
		}
	}
	return \%f;
}

# names(LIST) - the package names of a relation field, e.g. Depends.
sub names {
	my ($list) = @_;
	return map { /^\s*([a-z0-9][a-z0-9+.-]*)/ ? $1 : () } split /[,|]/, $list // '';
}

my $out_dir = tempdir(CLEANUP => 1);

# ---- make deb ----

my ($rc, $out, $err) = make_in('deb', "DEB_DIR=$out_dir");
is $rc, 0, 'make deb' or diag "$out$err";
my @debs = glob("$out_dir/mtad_*.deb");
is scalar(@debs), 1, 'one package, DEB_DIR/mtad_VERSION_ARCH.deb' or diag explain \@debs;
BAIL_OUT('make deb made no package') unless @debs;
my $deb = $debs[0];
my ($file_version, $file_arch) = $deb =~ m{/mtad_([^_/]+)_([^_/]+)\.deb\z};

# ---- the control fields ----

($rc, $out, $err) = MtadTest::run('dpkg-deb', '--field', $deb);
is $rc, 0, 'dpkg-deb --field' or diag $err;
my $f = fields($out);
my $arch = (MtadTest::run('dpkg', '--print-architecture'))[1];
chomp $arch;

is $f->{Package}, 'mtad', 'Package: mtad';
like $f->{Version} // '', qr/^0\.15\.0(?:\+git\d{8}\.\d{6}\.[0-9a-f]{7,})?-1$/,
	'Version: 0.15.0, +git and the commit when built from git, Debian revision 1';
is $file_version, $f->{Version}, 'the file name carries the version';
is $f->{Architecture}, $arch, "Architecture: $arch, from dpkg --print-architecture";
is $file_arch, $arch, 'the file name carries the architecture';
like $f->{Maintainer} // '', qr/^[^<>]+ <[^<>\s@]+@[^<>\s@]+\.[^<>\s@]+>$/, 'Maintainer: a name and an address';
is $f->{Section}, 'mail', 'Section: mail';
is $f->{Priority}, 'optional', 'Priority: optional';
like $f->{'Installed-Size'} // '', qr/^[1-9]\d*$/, 'Installed-Size';
for my $field (qw(Provides Conflicts Replaces)) {
	ok((grep { $_ eq 'mail-transport-agent' } names($f->{$field})),
	   "$field: mail-transport-agent, as Debian's MTAs have it");
}
my @depends = names($f->{Depends});
for my $pkg (qw(libc6 libuv1 libc-ares2 libssl3 libdb5.3 libsasl2-2 libsasl2-modules adduser)) {
	ok((grep { $_ eq $pkg } @depends), "Depends: $pkg") or diag "Depends: $f->{Depends}";
}
like $f->{Depends} // '', qr/\blibc6 \(>= [^)]+\)/, 'Depends: versions from dpkg-shlibdeps';
my ($synopsis, $long) = split /\n/, $f->{Description} // '', 2;
like $synopsis, qr/^\S.*mail relay \(MTA\).*Berkeley DB/, 'Description: the synopsis';
cmp_ok length($synopsis), '<=', 80, 'the synopsis fits in 80 columns';
like $long // '', qr/STARTTLS/, 'the long description: STARTTLS';
like $long // '', qr/SMTPS/, 'the long description: SMTPS';
like $long // '', qr/SASL AUTH.*submission/s, 'the long description: SASL submission';
like $long // '', qr/HELO\s+policy.*only\s+for\s+unauthenticated\s+sessions/s,
	'the long description: the HELO policy, for unauthenticated sessions only';

# ---- the contents: what make install stages, the Debian way ----

# What `make install` stages with the variables etc/deb.mk gives it.
my $inst = tempdir(CLEANUP => 1);
($rc, $out, $err) = make_in('install', "DESTDIR=$inst", 'PREFIX=/usr', 'CONFDIR=/etc/mtad',
			    'UNITDIR=/lib/systemd/system');
is $rc, 0, 'make install into a temporary DESTDIR' or diag "$out$err";
my %staged;	# relative path => 'd', 'f' or 'l'
File::Find::find({ no_chdir => 1, wanted => sub {
	return if $_ eq $inst;
	$staged{substr($_, length($inst) + 1)} = -l $_ ? 'l' : -d _ ? 'd' : 'f';
} }, $inst);

($rc, $out, $err) = MtadTest::run('dpkg-deb', '--contents', $deb);
is $rc, 0, 'dpkg-deb --contents' or diag $err;
my %in_deb;	# relative path => [mode string, owner/group]
for (split /\n/, $out) {
	my ($mode, $owner, undef, undef, undef, $path) = split ' ', $_, 6;
	$path =~ s/ -> .*//;
	$path =~ s{^\./}{};
	$path =~ s{/$}{};
	$in_deb{$path} = [$mode, $owner] if $path ne '' && $path ne '.';
}

my %want;	# what the package must hold: the staged tree, man pages .gz
for my $path (keys %staged) {
	my $name = $path;
	# /etc/aliases is the system's: the sample goes to /usr/share/mtad.
	$name = 'usr/share/mtad/aliases' if $path eq 'etc/aliases';
	$want{'usr/share/mtad'} = 1 if $path eq 'etc/aliases';
	$name .= '.gz' if $path =~ m{^usr/share/man/man\d/} && $staged{$path} ne 'd' && $path !~ /\.gz$/;
	$want{$name} = 1;
}
$want{$_} = 1 for qw(usr/share/doc usr/share/doc/mtad usr/share/doc/mtad/copyright
		     usr/share/doc/mtad/changelog.Debian.gz usr/share/lintian
		     usr/share/lintian/overrides usr/share/lintian/overrides/mtad);
is_deeply [sort keys %in_deb], [sort keys %want],
	'the package holds what make install stages (man pages gzipped), its doc and lintian overrides, nothing else'
	or diag explain { package => [sort keys %in_deb], want => [sort keys %want] };
for my $path (qw(usr/sbin/mtad usr/sbin/mtaq usr/sbin/sendmail usr/bin/mailq
		 usr/bin/newaliases usr/share/man/man8/mtad.8.gz usr/share/man/man8/sendmail.8.gz
		 usr/share/man/man8/mtaq.8.gz usr/share/man/man5/mtad.conf.5.gz
		 lib/systemd/system/mtad.service etc/mtad/mtad.conf usr/share/mtad/aliases)) {
	ok exists $in_deb{$path}, "the package holds /$path";
}
for my $prog (qw(usr/sbin/mtad usr/sbin/mtaq usr/sbin/sendmail)) {
	is $in_deb{$prog}[0], '-rwxr-xr-x', "/$prog is 0755";
}
is_deeply [grep { $in_deb{$_}[1] ne 'root/root' } sort keys %in_deb], [], 'everything is root/root';
is_deeply [grep { $in_deb{$_}[0] !~ /^l/ && $in_deb{$_}[0] =~ /^.{5}w|^.{8}w|[sStT]/ } sort keys %in_deb], [],
	'nothing group- or world-writable (links aside), no set-id or sticky bit';
like $in_deb{$_}[0] // '', qr/^l/, "/$_ is a link (to sendmail)" for qw(usr/bin/mailq usr/bin/newaliases);
is_deeply [grep { m{^usr/local(?:/|$)} } sort keys %in_deb], [], 'nothing under /usr/local';
is_deeply [grep { m{^usr/share/man/} && $in_deb{$_}[0] !~ /^d/ && !/\.gz$/ } sort keys %in_deb], [],
	'every man page is gzipped';
is_deeply [grep { $in_deb{$_}[0] =~ /^-/ && m{^usr/share/} && $in_deb{$_}[0] ne '-rw-r--r--' } sort keys %in_deb], [],
	'files under /usr/share are 0644';

# conffiles: every regular file staged under /etc.
($rc, $out, $err) = MtadTest::run('dpkg-deb', '--info', $deb, 'conffiles');
is $rc, 0, 'the package has conffiles' or diag $err;
is_deeply [sort split /\n/, $out],
	[sort map { "/$_" } grep { m{^etc/} && $_ ne 'etc/aliases' && $staged{$_} eq 'f' } keys %staged],
	'conffiles: every file make install stages under /etc but the system\'s aliases';
unlike $out, qr{^/etc/aliases$}m, 'conffiles: not /etc/aliases (the whole system\'s file)';
like $out, qr{^/etc/mtad/mtad\.conf$}m, 'conffiles: /etc/mtad/mtad.conf';

# ---- the extracted package ----

my $x = tempdir(CLEANUP => 1);
($rc, undef, $err) = MtadTest::run('dpkg-deb', '-x', $deb, $x);
is $rc, 0, 'dpkg-deb -x' or diag $err;
{
	my ($upstream) = ($f->{Version} // '') =~ /^([^+-]+)/;
	my (undef, $v) = MtadTest::run("$x/usr/sbin/mtad", '-V');
	is $v, "mtad $upstream\n", 'mtad -V says the package\'s upstream version';
}
for my $page (qw(man8/mtad.8 man8/mtaq.8 man5/mtad.conf.5)) {
	my $gz = MtadTest::slurp("$x/usr/share/man/$page.gz");
	my ($flags, $mtime) = length($gz) >= 8 ? unpack('x3 C V', $gz) : (-1, -1);
	ok $flags == 0 && $mtime == 0, "$page.gz: gzip -n, no name or time in the header";
	my $text;
	gunzip(\$gz, \$text) or diag "gunzip $page.gz: $GunzipError";
	(my $src = $page) =~ s{^man\d/}{};
	is $text, MtadTest::slurp("$top/man/$src"), "$page.gz is man/$src";
}
like MtadTest::slurp("$x/usr/share/doc/mtad/copyright"), qr/^Files: \*$/m, '/usr/share/doc/mtad/copyright';
{
	my $gz = MtadTest::slurp("$x/usr/share/doc/mtad/changelog.Debian.gz");
	my $text = '';
	gunzip(\$gz, \$text) or diag "gunzip changelog.Debian.gz: $GunzipError";
	like $text, qr/^mtad \(\Q$f->{Version}\E\) \S+; urgency=\w+$/m, 'changelog.Debian.gz: an entry for this version';
	like $text, qr/^ -- .+ <.+>  \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/m,
		'changelog.Debian.gz: a trailer line';
}
my $unit = MtadTest::slurp("$x/lib/systemd/system/mtad.service");
like $unit, qr{^ExecStart=/usr/sbin/mtad -c /etc/mtad/mtad\.conf$}m, 'the unit starts /usr/sbin/mtad';
($rc, $out, $err) = MtadTest::run("$x/usr/sbin/mtad", '-h');
is $rc, 0, 'the packaged (stripped) mtad runs' or diag $err;
($rc, $out, $err) = MtadTest::run("$x/usr/sbin/mtaq", '--help');
is $rc, 0, 'the packaged (stripped) mtaq runs' or diag $err;

# The maintainer scripts: POSIX sh, set -e, no syntax error.
my $ctl = tempdir(CLEANUP => 1);
($rc, undef, $err) = MtadTest::run('dpkg-deb', '-e', $deb, $ctl);
is $rc, 0, 'dpkg-deb -e' or diag $err;
for my $script (qw(postinst prerm postrm)) {
	my $path = "$ctl/$script";
	my $text = MtadTest::slurp($path);
	is sprintf('%04o', (stat $path)[2] & 07777), '0755', "$script is 0755";
	like $text, qr{\A#!/bin/sh\n}, "$script: #!/bin/sh";
	like $text, qr/^set -e$/m, "$script: set -e";
	($rc, undef, $err) = MtadTest::run('sh', '-n', $path);
	is $rc, 0, "$script: sh -n" or diag $err;
	SKIP: {
		skip 'checkbashisms is not installed (devscripts)', 1 unless in_path('checkbashisms');
		($rc, $out, $err) = MtadTest::run('checkbashisms', $path);
		is $rc, 0, "$script: checkbashisms" or diag "$out$err";
	}
}

# ---- lintian ----

SKIP: {
	skip 'lintian is not installed (apt-get install lintian; etc/packages lists it)', 1
		unless in_path('lintian');
	# lintian leaves a file behind in TMPDIR (mldbm-elf-*): give it ours.
	local $ENV{TMPDIR} = tempdir(CLEANUP => 1);
	($rc, $out, $err) = MtadTest::run('lintian', $deb);
	my @errors = grep { /^E: / } split /\n/, $out;
	is_deeply \@errors, [], 'lintian: no errors' or diag "$out$err";
	note "lintian: $_" for grep { /^[WIP]: / } split /\n/, $out;
}

# ---- dpkg -i, -r, --purge in a throwaway root ----

SKIP: {
	my $why = $> != 0 ? 'not root: the throwaway root needs mount namespaces'
		: !in_path('unshare') || !in_path('chroot') || !in_path('mountpoint')
		? 'unshare, chroot or mountpoint missing (util-linux, coreutils)' : undef;
	my $T = tempdir(CLEANUP => 1);
	my $R = "$T/root";
	make_path("$R/tmp", "$R/fakebin", "$T/upper/var/lib/dpkg", "$T/upper/usr/sbin");

	# in_root(COMMAND) - (rc, out, err) of the shell COMMAND in the throwaway root.
	my $in_root = sub {
		return MtadTest::run('unshare', '--mount', '--pid', '--fork', '--net', '--ipc', '--uts',
				     '--propagation', 'private', 'sh', "$top/t/lib/deb-root", $T, $_[0]);
	};
	unless ($why) {
		my @r = $in_root->('test -x /usr/bin/dpkg');
		$why = "no throwaway root here (mount namespaces or overlayfs refused): $r[2]" if $r[0] != 0;
	}
	skip $why, 1 if $why;

	# The root's dpkg database: this machine's, without any package that
	# provides mail-transport-agent (this machine's Postfix, say) and without
	# mtad: dpkg checks mtad's Depends against what is really installed, and
	# the MTA in the test is the stand-in below.
	# So that dpkg may remove mtad there, also without every installed
	# package that needs what was left out (bsd-mailx, say).
	{
		open my $in, '<', '/var/lib/dpkg/status' or die "/var/lib/dpkg/status: $!";
		my @paras = do { local $/ = ''; <$in> };
		my %drop;
		my $dropped = sub {
			my ($para) = @_;
			return $para =~ /^Package: mtad$/m
				|| $para =~ /^Provides:.*\bmail-transport-agent\b/m;
		};
		for (my $more = 1; $more; ) {
			$more = 0;
			my %have;	# what the packages kept provide
			for (grep { !$drop{$_} && $paras[$_] =~ /^Status: .* installed$/m } 0 .. $#paras) {
				my $f = fields($paras[$_]);
				$have{$_} = 1 for $f->{Package}, names($f->{Provides});
			}
			for my $i (0 .. $#paras) {
				next if $drop{$i} || $paras[$i] !~ /^Status: .* installed$/m;
				my $f = fields($paras[$i]);
				my @clauses = split /,/, join(',', grep { defined } @$f{qw(Depends Pre-Depends)});
				my @unmet;
				for my $clause (@clauses) {
					push @unmet, $clause unless grep { $have{$_} } names($clause);
				}
				next unless $dropped->($paras[$i]) || @unmet;
				$drop{$i} = $more = 1;
			}
		}
		open my $st, '>', "$T/upper/var/lib/dpkg/status" or die "$T: $!";
		print $st @paras[grep { !$drop{$_} } 0 .. $#paras];
		close $st or die "$T: $!";
	}
	# A systemd that is not there: systemctl records its arguments, says a
	# unit is enabled and active; policy-rc.d allows (this machine may have
	# one that forbids every start). systemctl --root=DIR, which works on
	# files only (deb-systemd-helper enables a unit so), is the real one.
	my $log = "$R/fake-systemctl.log";
	for (["$R/fakebin/systemctl", <<'EOF'],
case "$1" in
--root=*)
	for real in /usr/bin/systemctl /bin/systemctl; do
		[ ! -x "$real" ] || exec "$real" "$@"
	done
	exit 0 ;;
esac
echo "systemctl $*" >> /fake-systemctl.log
case " $* " in *' is-enabled '*) echo enabled ;; esac
exit 0
EOF
	     ["$T/upper/usr/sbin/policy-rc.d", "echo \"policy-rc.d \$*\" >> /fake-systemctl.log\nexit 0\n"]) {
		my ($path, $body) = @$_;
		open my $fh, '>', $path or die "$path: $!";
		print $fh "#!/bin/sh\n# t/95-deb.t: a stand-in, in the throwaway root only\n$body";
		close $fh or die "$path: $!";
		chmod 0755, $path;
	}
	File::Copy::copy($deb, "$R/tmp/mtad.deb") or die "copy $deb: $!";

	# A stand-in for another MTA: Debian's pattern, as postfix has it.
	my $fake = "$T/fake-mta";
	make_path("$fake/DEBIAN");
	open my $c, '>', "$fake/DEBIAN/control" or die "$fake: $!";
	print $c <<'EOF';
Package: fake-mta
Version: 1.0
Architecture: all
Maintainer: t/95-deb.t <nobody@example.org>
Provides: mail-transport-agent
Conflicts: mail-transport-agent
Replaces: mail-transport-agent
Section: mail
Priority: optional
Description: stand-in for another MTA (t/95-deb.t)
 It has only the fields by which Debian's MTAs exclude each other.
EOF
	close $c or die "$fake: $!";
	($rc, undef, $err) = MtadTest::run('dpkg-deb', '--build', '--root-owner-group', $fake, "$R/tmp/fake-mta.deb");
	is $rc, 0, 'the stand-in MTA package builds' or diag $err;

	my $dpkg = 'dpkg --force-confdef --force-confold';
	my $state = sub {
		my ($rc, $out, $err) = $in_root->(<<'EOF');
for p in mtad fake-mta; do
	echo "status $p $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || echo not-installed)"
done
dpkg-query -W -f='${Conffiles}\n' mtad 2>/dev/null | sed -n 's/^ \(\/[^ ]*\) .*/conffile \1/p'
echo "passwd $(getent passwd mtad)"
echo "group $(getent group mtad)"
for p in /usr/sbin/mtad /usr/sbin/mtaq /usr/share/man/man8/mtad.8.gz /lib/systemd/system/mtad.service \
	 /etc/mtad/mtad.conf /etc/mtad/cert.pem /var/spool/mtad \
	 /etc/systemd/system/multi-user.target.wants/mtad.service; do
	if [ -e "$p" ] || [ -L "$p" ]; then echo "file $p $(stat -c '%a %U:%G %F' "$p")"; fi
done
EOF
		my %s = (rc => $rc, err => $err, file => {}, conffile => []);
		for (split /\n/, $out) {
			if (/^status (\S+) (.*)$/) { $s{status}{$1} = $2 }
			elsif (/^file (\S+) (.*)$/) { $s{file}{$1} = $2 }
			elsif (/^conffile (\S+)$/) { push @{$s{conffile}}, $1 }
			elsif (/^(passwd|group) ?(.*)$/) { $s{$1} = $2 }
		}
		return \%s;
	};
	my $systemctl = sub {
		my $text = MtadTest::slurp($log);
		unlink $log;
		return $text;
	};

	# A machine that went through INSTALL has an mtad of its own (user,
	# /etc/mtad with a certificate, the unit enabled): the throwaway root
	# starts without them, as a fresh Debian would.
	($rc, $out, $err) = $in_root->(<<'EOF');
set -e
rm -rf /etc/mtad /etc/systemd/system/mtad.service /etc/systemd/system/mtad.service.d \
	/etc/systemd/system/multi-user.target.wants/mtad.service
for f in passwd group shadow gshadow; do
	if grep -q '^mtad:' "/etc/$f"; then sed -i '/^mtad:/d' "/etc/$f"; fi
done
EOF
	is $rc, 0, 'the throwaway root has no mtad of this machine' or diag "$out$err";

	# -- install, no systemd running (a chroot, an image build) --
	($rc, $out, $err) = $in_root->("$dpkg -i /tmp/mtad.deb");
	is $rc, 0, 'dpkg -i: installs, with its Depends met by this machine' or diag "$out$err";
	my $s = $state->();
	is $s->{status}{mtad}, 'install ok installed', 'dpkg-query: install ok installed';
	like $s->{passwd}, qr{^mtad:x:\d+:\d+:[^:]*:/var/spool/mtad:/usr/sbin/nologin$},
		'postinst: the system user mtad, home /var/spool/mtad, no shell';
	my ($uid, $gid) = $s->{passwd} =~ /^mtad:x:(\d+):(\d+):/;
	ok defined $uid && $uid > 0 && $uid < 1000, 'a system uid';
	my $want_gid = $gid // -1;
	like $s->{group}, qr/^mtad:x:$want_gid:/, 'and the group mtad is its group';
	is $s->{file}{'/var/spool/mtad'}, '700 mtad:mtad directory', 'postinst: the spool, 0700 mtad:mtad';
	is $s->{file}{'/usr/sbin/mtad'}, '755 root:root regular file', '/usr/sbin/mtad installed';
	is $s->{file}{'/etc/mtad/mtad.conf'}, '644 root:root regular file', '/etc/mtad/mtad.conf installed';
	is_deeply [sort @{$s->{conffile}}], [sort split /\n/, MtadTest::slurp("$ctl/conffiles")],
		'dpkg registered the conffiles';
	like $s->{file}{'/etc/systemd/system/multi-user.target.wants/mtad.service'} // '', qr/symbolic link/,
		'postinst: the unit enabled (deb-systemd-helper)';
	is $systemctl->(), '', 'no systemd running: no systemctl call, nothing started';
	# The sample names a certificate nothing installs: -n, which checks
	# the files too, says so; its syntax is valid (-n KEY).
	($rc, $out, $err) = $in_root->('mtad -c /etc/mtad/mtad.conf -n tls_cert_file');
	is $rc, 0, 'the installed mtad accepts the installed mtad.conf\'s syntax' or diag $err;
	($rc, $out, $err) = $in_root->('mtad -c /etc/mtad/mtad.conf -n');
	like $err, qr{^mtad: /etc/mtad/mtad\.conf:\d+: tls_cert_file /etc/mtad/cert\.pem: No such file}m,
		'and mtad -n names the missing certificate at its line' or diag $err;

	# -- systemd running, no certificate: an upgrade (the same version again) --
	make_path("$R/run/systemd/system");
	($rc, $out, $err) = $in_root->("$dpkg -i /tmp/mtad.deb");
	is $rc, 0, 'dpkg -i again, with systemd running' or diag "$out$err";
	my $calls = $systemctl->();
	like $calls, qr/^systemctl --system daemon-reload$/m, 'postinst: systemctl daemon-reload';
	unlike $calls, qr/\b(?:start|restart|stop) mtad\.service/, 'no start, restart or stop without a certificate'
		or diag $calls;
	like $err, qr{mtad: not starting mtad\.service: /etc/mtad/cert\.pem \(tls_cert_file in /etc/mtad/mtad\.conf\) does not exist yet},
		'postinst says why it does not start mtad' or diag $err;

	# -- with the certificate and key in place: restarted on an upgrade --
	($rc, undef, $err) = $in_root->(': > /etc/mtad/cert.pem && : > /etc/mtad/key.pem');
	is $rc, 0, 'a certificate and key in /etc/mtad' or diag $err;
	($rc, $out, $err) = $in_root->("$dpkg -i /tmp/mtad.deb");
	is $rc, 0, 'dpkg -i again, with the certificate' or diag "$out$err";
	$calls = $systemctl->();
	like $calls, qr/^systemctl .*\brestart mtad\.service$/m, 'postinst: an upgrade restarts mtad' or diag $calls;
	unlike $err, qr/not starting/, 'and says nothing about not starting';

	# -- remove: stopped; configuration, spool and user stay --
	($rc, $out, $err) = $in_root->("$dpkg -r mtad");
	is $rc, 0, 'dpkg -r mtad' or diag "$out$err";
	$calls = $systemctl->();
	like $calls, qr/^systemctl .*\bstop mtad\.service$/m, 'prerm: stops mtad' or diag $calls;
	$s = $state->();
	is $s->{status}{mtad}, 'deinstall ok config-files', 'removed, its conffiles kept';
	ok !exists $s->{file}{'/usr/sbin/mtad'} && !exists $s->{file}{'/lib/systemd/system/mtad.service'},
		'the programs and the unit are gone';
	ok exists $s->{file}{'/etc/mtad/mtad.conf'}, 'mtad.conf stays';
	is $s->{file}{'/var/spool/mtad'}, '700 mtad:mtad directory', 'the spool stays on remove';

	# -- purge: the spool goes, the user and the admin's certificate stay --
	($rc, $out, $err) = $in_root->("$dpkg --purge mtad");
	is $rc, 0, 'dpkg --purge mtad' or diag "$out$err";
	$s = $state->();
	like $s->{status}{mtad}, qr/not-installed/, 'purged';
	ok !exists $s->{file}{'/var/spool/mtad'}, 'postrm purge: the spool is gone';
	ok !exists $s->{file}{'/etc/mtad/mtad.conf'}, 'the conffile is gone';
	ok !exists $s->{file}{'/etc/systemd/system/multi-user.target.wants/mtad.service'},
		'the unit is no longer enabled';
	ok exists $s->{file}{'/etc/mtad/cert.pem'}, 'the certificate put there by the admin stays';
	like $s->{passwd}, qr/^mtad:/, 'the system user stays (as Debian leaves them)';
	$systemctl->();

	# -- a fresh install with the certificate there: started --
	($rc, $out, $err) = $in_root->("$dpkg -i /tmp/mtad.deb");
	is $rc, 0, 'dpkg -i after the purge: the existing user is taken as it is' or diag "$out$err";
	$calls = $systemctl->();
	like $calls, qr/^systemctl .*\bstart mtad\.service$/m, 'postinst: a first install starts mtad' or diag $calls;
	unlike $calls, qr/\brestart mtad\.service/, 'start, not restart';
	$s = $state->();
	is $s->{file}{'/var/spool/mtad'}, '700 mtad:mtad directory', 'the spool again';
	is(($s->{passwd} =~ /^mtad:x:(\d+):/)[0], $uid, 'the same user');

	# -- the mail-transport-agent fields at work --
	# dpkg refuses a second MTA; apt (what INSTALL says to use) removes the
	# one installed for the one asked for, either way round.
	($rc, $out, $err) = $in_root->("$dpkg -i /tmp/fake-mta.deb");
	isnt $rc, 0, 'dpkg -i of another MTA fails while mtad is installed';
	like $err, qr/conflicting packages - not installing fake-mta/, 'for the conflict' or diag "$out$err";
	$s = $state->();
	is $s->{status}{mtad}, 'install ok installed', 'mtad stays installed';
	SKIP: {
		skip 'apt-get is not installed', 8 unless -x '/usr/bin/apt-get';
		my $apt = 'mkdir -p /var/lib/apt/lists/partial /var/cache/apt/archives/partial /var/log/apt'
			. ' && apt-get install -y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold'
			. ' -o DPkg::Path=/fakebin:/usr/sbin:/usr/bin:/sbin:/bin';	# apt's own PATH for dpkg
		$systemctl->();
		($rc, $out, $err) = $in_root->("$apt /tmp/fake-mta.deb");
		is $rc, 0, 'apt-get install of another MTA' or diag "$out$err";
		$s = $state->();
		is $s->{status}{'fake-mta'}, 'install ok installed', 'the other MTA is installed';
		is $s->{status}{mtad}, 'deinstall ok config-files', 'mtad is removed for it';
		like $systemctl->(), qr/^systemctl .*\bstop mtad\.service$/m, 'and stopped';
		($rc, $out, $err) = $in_root->("$apt /tmp/mtad.deb");
		is $rc, 0, 'apt-get install ./mtad.deb with another MTA installed' or diag "$out$err";
		$s = $state->();
		is $s->{status}{mtad}, 'install ok installed', 'mtad is installed';
		like $s->{status}{'fake-mta'}, qr/not-installed|config-files/, 'the other MTA is removed for it';
		like $systemctl->(), qr/^systemctl .*\b(?:re)?start mtad\.service$/m, 'and mtad started';
	}
}

done_testing;
