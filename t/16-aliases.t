# 16-aliases.t - alias_maps: newaliases compiles the file, mtad loads the
# .db (and the :include: files) and expands a local recipient when the
# message is received. `root: alice, bob@example.org` gives two
# recipients, each remembering root as its ORCPT (mtaq show, the delivery
# log's orig_to=); an :include: file adds its addresses; a loop and a
# pipe are refused with a 550 and a log line; an edit without newaliases
# is a clear error at -n, at reload (the old table stays) and at start.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use MtadTest;
use Sink;

my $build = $MtadTest::BUILD;
plan skip_all => "$build/newaliases missing: run make first" unless -x "$build/newaliases";

my $dir = tempdir(CLEANUP => 1);
my $aliases = "$dir/aliases";

sub write_file {
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh $text;
	close $fh;
}

write_file("$dir/staff", "carol\@campus.test\n# a comment\ndave\n");
write_file($aliases, <<"END");
# test aliases
postmaster: root
root: alice, bob\@example.org
staff: :include:$dir/staff
keep: keep, erin\@example.org
loop-a: loop-b
loop-b: loop-a
prog: "|/bin/cat"
big: b1, b2, b3, b4, b5
END

my $sink = Sink->new;
my $port = $sink->port;
my $m = MtadTest->new(start => 0, alias_maps => $aliases, relay_networks => '127.0.0.0/8',
		      max_recipients => 4,
		      retry_min => 1, retry_max => 2,
		      extra => "route = campus.test [127.0.0.1]:$port\n"
			     . "route = mx.campus.test [127.0.0.1]:$port\n"
			     . "route = example.org [127.0.0.1]:$port\n");

# ---- no .db yet: a clear error, at -n and at start ----
my ($rc, $out, $err) = MtadTest::run("$build/mtad", '-c', $m->conf_path, '-n');
isnt $rc, 0, 'mtad -n without aliases.db fails';
like $err, qr/\Q$aliases\E\.db: no such file: run newaliases/, '... saying to run newaliases';
ok !$m->try_start(timeout => 20), 'mtad does not start without aliases.db';
like $m->log_text . $err, qr/run newaliases/, '... and says why';

# ---- newaliases ----
($rc, $out, $err) = MtadTest::run("$build/newaliases", '-C', $m->conf_path);
is $rc, 0, 'newaliases exits 0' or diag $err;
ok -s "$aliases.db", 'aliases.db written';
($rc, $out, $err) = MtadTest::run("$build/sendmail", '-C', $m->conf_path, '-bi');
is $rc, 0, 'sendmail -bi does the same' or diag $err;
$m->start;

# rcpt(ADDR) - the reply to RCPT TO:<ADDR> in a fresh transaction.
sub rcpt {
	my ($addr) = @_;
	my $smtp = $m->smtp;
	$smtp->mail('x@example.org');
	$smtp->to($addr);
	my $r = $smtp->code . ' ' . join(' ', map { s/\s+\z//r } $smtp->message);
	$smtp->quit;
	return $r;
}

# ---- expansion at RCPT, ORCPT kept ----
my $smtp = $m->smtp;
my $r = $m->send_message($smtp, 'sender@example.org', ['root@mx.campus.test', 'staff@campus.test'],
			 "Subject: aliased\n\nhello\n");
$smtp->quit;
my ($qid) = $r =~ /queued as ([0-9A-Z]{14})/;
ok $qid, 'a message to root and staff is queued' or diag $r;
($rc, $out) = $m->mtaq('show', $qid // 'NONE');
my @rcpt = $out =~ /^recipient: (\S+)/mg;
is_deeply [sort @rcpt],
	[qw(alice@mx.campus.test bob@example.org carol@campus.test dave@mx.campus.test)],
	'root and staff expanded: alice, bob, and the include file\'s carol and dave' or diag $out;
like $out, qr/^recipient: alice\@mx\.campus\.test .*\n  orcpt: root\@mx\.campus\.test$/m,
	'mtaq show: each expanded recipient with its original address';
my @got = $sink->wait_messages(1);
$m->wait_log(qr/\Q$qid\E: to=<bob\@example\.org>, orig_to=<root\@mx\.campus\.test>, .*status=sent/);
pass 'the delivery log has orig_to=';

like rcpt('postmaster'), qr/^250 /, 'RCPT TO:<postmaster> without a domain is expanded and taken';
like rcpt('keep@campus.test'), qr/^250 /, 'an alias naming itself keeps a copy';
like rcpt('nosuchalias@campus.test'), qr/^250 /, 'a name without an alias is taken as it is';

# ---- refused: a loop, a pipe ----
like rcpt('loop-a@campus.test'), qr/^550 5\.1\.1 <loop-a\@campus\.test>: alias has no deliverable address/,
	'an alias loop: 550 5.1.1';
like $m->log_text, qr/alias loop-\w of <loop-a\@campus\.test>: target \S+ refused: alias loop/,
	'... and the log names the loop';
like rcpt('prog@campus.test'), qr/^550 5\.1\.1 /, 'a pipe: 550 5.1.1';
like $m->log_text, qr/target \S*\/bin\/cat\S* refused: pipes and files are not delivered by mtad/,
	'... and the log says pipes are not delivered';

like rcpt('big@campus.test'), qr/^452 4\.5\.3 /,
	'an alias to more than max_recipients: 452 4.5.3, never cut short';

# ---- an edit without newaliases ----
sleep 1;	# a later mtime than the .db's
write_file($aliases, slurp_text($aliases) . "newname: frank\@campus.test\n");
($rc, $out, $err) = MtadTest::run("$build/mtad", '-c', $m->conf_path, '-n');
isnt $rc, 0, 'mtad -n after an edit without newaliases fails';
like $err, qr/\Q$aliases\E\.db is older than \Q$aliases\E: run newaliases/, '... saying so';
kill 'HUP', $m->pid;
$m->wait_log(qr/reload: keeping the old configuration: .*run newaliases/);
pass 'a reload keeps the old aliases and says to run newaliases';
like rcpt('root@mx.campus.test'), qr/^250 /, 'the old aliases still work';
($rc, $out, $err) = MtadTest::run("$build/newaliases", '-C', $m->conf_path);
is $rc, 0, 'newaliases after the edit' or diag $err;
kill 'HUP', $m->pid;
$m->wait_log(qr/reload: configuration .* loaded/);
$smtp = $m->smtp;
$r = $m->send_message($smtp, 'sender@example.org', ['newname@campus.test'], "Subject: new\n\nx\n");
$smtp->quit;
($qid) = $r =~ /queued as ([0-9A-Z]{14})/;
($rc, $out) = $m->mtaq('show', $qid // 'NONE');
like $out, qr/^recipient: frank\@campus\.test /m, 'after newaliases and a reload the new alias works';

$m->stop;
done_testing;

sub slurp_text { MtadTest::slurp($_[0]) }
