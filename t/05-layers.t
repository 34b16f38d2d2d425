# 05-layers.t - etc/check-layers: the repository keeps its floors (util/
# < queue/ auth/ tls/ policy/ < smtp/ deliver/ < mtad/), and the check
# really fails, naming the file and line, on copies of the sources with
# one bad include added: an include from a higher floor (which also makes
# a cycle), a private header, a same-floor cycle, an include of mtad/, a
# folder missing from the table, an include climbing out with "..". With a
# build (MTAD_BUILD), the same over the objects' symbols (nm): a call up a
# floor that no include shows fails too.
use strict;
use warnings;
use FindBin;
use Test::More;
use File::Find ();
use File::Path qw(make_path);
use File::Temp qw(tempdir);

my $top = "$FindBin::Bin/..";
my $script = "$top/etc/check-layers";

# layers(ROOT) - (exit code, stdout, stderr) of check-layers on ROOT
sub layers {
	my ($root) = @_;
	my $dir = tempdir(CLEANUP => 1);
	my $rc = system("perl '$script' '$root' >'$dir/out' 2>'$dir/err'") >> 8;
	my ($out, $err) = map { local (@ARGV, $/) = ("$dir/$_"); scalar <> } qw(out err);
	return ($rc, $out, $err);
}

# (a) the repository itself
my ($rc, $out, $err) = layers($top);
is($rc, 0, 'the repository keeps its floors') or diag($err);
like($out, qr/^check-layers: OK: milter,util < auth,dkim,local,policy,queue,tls < deliver,smtp < mtad; \d+ files/,
	'one OK line naming the floors');
is($err, '', 'nothing on stderr');

# copy() - a fresh copy of the repository's .c and .h files (not t/, build*/)
sub copy {
	my $dst = tempdir(CLEANUP => 1);
	opendir my $dh, $top or die "$top: $!";
	for my $dir (grep { !/^\./ && $_ ne 't' && !/^build/ && -d "$top/$_" } readdir $dh) {
		File::Find::find({ no_chdir => 1, wanted => sub {
			return unless -f $_ && /\.[ch]\z/;
			my $rel = substr($_, length($top) + 1);
			(my $parent = "$dst/$rel") =~ s{/[^/]+\z}{};
			make_path($parent);
			local (@ARGV, $/) = ($_);
			my $text = <>;
			open my $fh, '>', "$dst/$rel" or die "$dst/$rel: $!";
			print $fh $text;
			close $fh or die "$dst/$rel: $!";
		} }, "$top/$dir");
	}
	closedir $dh;
	return $dst;
}

# add(ROOT, FILE, LINES) - writes a new source file FILE under ROOT
sub add {
	my ($root, $file, @lines) = @_;
	(my $parent = "$root/$file") =~ s{/[^/]+\z}{};
	make_path($parent);
	open my $fh, '>', "$root/$file" or die "$root/$file: $!";
	print $fh map { "$_\n" } @lines;
	close $fh or die "$root/$file: $!";
}

my $clean = copy();
($rc, $out) = layers($clean);
is($rc, 0, 'the copy of the sources passes as it is');
like($out, qr/: OK: /, 'and says OK');

# bad(NAME, FILE => [LINES], qr/MESSAGE/...) - the copy with FILE added fails
# with exit 1, a FAILED line, and every MESSAGE on stderr
sub bad {
	my ($name, $file, $lines, @expect) = @_;
	my $root = copy();
	add($root, $file, @$lines);
	my ($rc, $out, $err) = layers($root);
	is($rc, 1, "$name: exit 1");
	is($out, '', "$name: no OK line");
	like($err, qr/^check-layers: FAILED: \d+ problems? in /m, "$name: a FAILED line");
	like($err, $_, "$name: says $_") for @expect;
}

bad('util includes smtp', 'util/x.c',
	['/* x.c */', '#include "util/util.h"', '#include "smtp/smtp.h"'],
	qr{^check-layers: util/x\.c:3: util/ \(floor 0\) includes "smtp/smtp\.h" from a higher floor: smtp/ is floor 2$}m,
	qr{^check-layers: cycle in the folder graph: .*smtp -> util \(smtp/\S+:\d+\).*util -> smtp \(util/x\.c:3\)}m);

bad('a private header from another folder', 'deliver/y.c',
	['#include <stdio.h>', '#include "smtp/session_int.h"'],
	qr{^check-layers: deliver/y\.c:2: deliver/ includes "smtp/session_int\.h", a private header of smtp/: only smtp/smtp\.h may be included from outside smtp/$}m);

bad('a same-floor cycle', 'policy/z.c',
	['#include "queue/queue.h"'],
	qr{^check-layers: cycle in the folder graph: policy -> queue \(policy/z\.c:1\), queue -> policy \(queue/\S+:\d+\)$}m);

bad('an include of mtad/', 'deliver/w.h',
	['#include "mtad/daemon.h"'],
	qr{^check-layers: deliver/w\.h:1: deliver/ \(floor 2\) includes "mtad/daemon\.h" from a higher floor: mtad/ is floor 3$}m);

bad('a folder not in the table', 'spam/filter.c',
	['#include "util/util.h"'],
	qr{^check-layers: spam/filter\.c: folder spam/ is not in the floor table}m);

bad('an include of a folder not in the table', 'smtp/v.c',
	['#include "spam/filter.h"'],
	qr{^check-layers: smtp/v\.c:1: includes "spam/filter\.h": folder spam/ is not in the floor table}m);

bad('an include climbing out with ..', 'auth/u.c',
	['#  include "../smtp/smtp.h"'],
	qr{^check-layers: auth/u\.c:1: include "\.\./smtp/smtp\.h" climbs out with \.\.}m);

bad('an angle include of ours', 'tls/a.c',
	['#include <stdlib.h>', '#include <deliver/deliver.h>'],
	qr{^check-layers: tls/a\.c:2: tls/ \(floor 1\) includes "deliver/deliver\.h" from a higher floor}m);

# (c) the calls no include shows: the build's objects (nm), when there is a build
my $obj = ($ENV{MTAD_BUILD} // "$top/build") . '/obj';
SKIP: {
	skip "no build at $obj (set MTAD_BUILD)", 6 unless -d "$obj/util";
	my $dir = tempdir(CLEANUP => 1);
	my $rc = system("perl '$script' --objects '$obj' '$top' >'$dir/out' 2>'$dir/err'") >> 8;
	my ($out, $err) = map { local (@ARGV, $/) = ("$dir/$_"); scalar <> } qw(out err);
	is($rc, 0, 'the objects keep the floors too') or diag($err);
	like($out, qr/, \d+ objects, \d+ symbols used across folders,/, 'and it read them');

	# util/x.c declares a function of smtp/ itself (no include) and calls it
	my $root = copy();
	add($root, 'util/x.c', 'void smtp_session_eof(void *s, const char *why);',
	    'void x_ground(void);', 'void x_ground(void) { smtp_session_eof(0, 0); }');
	my $objs = tempdir(CLEANUP => 1);
	for my $d ('util', 'smtp') {
		make_path("$objs/$d");
		system('cp', glob("$obj/$d/*.o"), "$objs/$d/") == 0 or die "cp $d objects failed";
	}
	is(system('cc', '-c', '-o', "$objs/util/x.o", "$root/util/x.c"), 0, 'a ground-floor object that calls smtp/ compiles');
	$rc = system("perl '$script' --objects '$objs' '$root' >'$dir/out' 2>'$dir/err'") >> 8;
	($out, $err) = map { local (@ARGV, $/) = ("$dir/$_"); scalar <> } qw(out err);
	is($rc, 1, 'a call up a floor that no include shows: exit 1');
	like($err, qr{^check-layers: util/x\.o: util/ \(floor 0\) uses smtp_session_eof, defined in smtp/ \(floor 2\), a higher floor$}m,
	     'names the object and the symbol');
	like($err, qr{^check-layers: cycle in the folder graph: .*util -> smtp \(util/x\.o uses smtp_session_eof\)}m,
	     'and the cycle it closes');
}

done_testing();
