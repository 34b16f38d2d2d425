# 18-mtaq-admin.t - mtaq's queue verbs at the level of postqueue and
# postsuper (issue 16), against a running mtad and a queue of deferred
# and held messages (a Sink answering 450 makes them deferred;
# retry_min is an hour, so only mtaq makes them due):
#   - list --json-lines is postqueue -j's shape, one object a line, and
#     says each message's state truthfully (deferred, hold, and active
#     while the runner delivers it: a sink slow to answer); count and
#     summary have --json; a command without JSON output refuses --json
#     with exit 64;
#   - flush counts exactly what it scheduled and the held ones apart;
#     flush --domain D schedules only messages with a recipient in D;
#   - hold/release ALL and - (ids on stdin), requeue (attempts start
#     over), expire (the runner bounces it at once: a DSN reaches the
#     sender, "administratively expired"; a held one waits for release),
#     delete - and delete ALL;
#   - every change is logged where mtad logs, in postsuper's words
#     ("QID: removed", "Deleted: N messages"), to syslog with log = syslog.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP;
use Socket qw(SOCK_DGRAM);
use MtadTest;
use Sink;

my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\z/;
my $LATER = '450 4.2.0 try later';

my $sink = Sink->new();
my $px = $sink->port;
$sink->set(rcpt => { 'later@x.test' => $LATER, 'later@y.test' => $LATER });
my $m = MtadTest->new(relay_networks => '127.0.0.0/8', retry_min => 3600, retry_max => 7200,
		      extra => "route = x.test [127.0.0.1]:$px\nroute = y.test [127.0.0.1]:$px\n"
			     . "route = sender.test [127.0.0.1]:$px\n");

sub submit {
	my ($to, $subject) = @_;
	my $smtp = $m->smtp;
	my $r = $m->send_message($smtp, 'a@sender.test', [$to],
		"Subject: $subject\nFrom: <a\@sender.test>\n\nhello\n");
	$smtp->quit;
	like $r, $QUEUED, "queued: $subject" or return 'NONE';
	return ($r =~ $QUEUED)[0];
}

sub mtaq_ok {
	my (@args) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($rc, $out, $err) = $m->mtaq(@args);
	is $rc, 0, "mtaq @args exits 0" or diag "$out\n$err";
	return wantarray ? ($out, $err) : $out;
}

sub mtaq_stdin {
	my ($input, @args) = @_;
	return MtadTest::run_input($input, "$ENV{MTAD_BUILD}/mtaq", '-c', $m->conf_path, @args)
		if $ENV{MTAD_BUILD};
	return MtadTest::run_input($input, "$FindBin::Bin/../build/mtaq", '-c', $m->conf_path,
				   @args);
}

# json_lines - the objects of `mtaq list --json-lines`, by queue id.
# (QUIET: no test of its own, for polling.)
sub json_lines {
	my ($quiet) = @_;
	my ($rc, $out, $err) = $m->mtaq('list', '--json-lines');
	my %by;
	my $bad = $rc != 0;
	for my $line (split /\n/, $out) {
		my $o = eval { decode_json($line) };
		$bad ||= !$o;
		$by{ $o->{queue_id} } = $o if $o;
	}
	ok !$bad, 'list --json-lines exits 0, each line one JSON object' or diag "$out\n$err"
		unless $quiet;
	return \%by;
}

sub show_json {
	my ($qid) = @_;
	my $out = mtaq_ok('show', '--json', $qid);
	return decode_json($out);
}

sub arrived {
	my ($re, $secs) = @_;
	my @got;
	MtadTest::wait_for($secs // 30, sub { @got = grep { $_->{data} =~ $re } $sink->messages });
	return @got;
}

# ---- a queue: three deferred, one held ----
my $off = length $m->log_text;
my $d1 = submit('later@x.test', 'd1');
my $d2 = submit('later@x.test', 'd2');
my $d3 = submit('later@y.test', 'd3');
my $h1 = submit('later@x.test', 'h1');
ok $m->delivery_log($_->[0], $_->[1], 'deferred', $off), "$_->[0]: deferred (450)"
	for [$d1, 'later@x.test'], [$d2, 'later@x.test'], [$d3, 'later@y.test'],
	    [$h1, 'later@x.test'];
my ($out, $err) = mtaq_ok('hold', $h1);
like $out, qr/^\Q$h1\E: held$/m, "hold $h1";
like $err, qr/\b\Q$h1\E: placed on hold$/m, '... logged: QID: placed on hold';
like $err, qr/\bPlaced on hold: 1 message$/m, '... and the summary';

# ---- states, postqueue -j ----
my $q = json_lines();
is scalar(keys %$q), 4, 'list --json-lines: four messages';
is $q->{$_}{queue_name}, 'deferred', "$_: queue_name deferred (tried, waiting)" for $d1, $d2, $d3;
is $q->{$h1}{queue_name}, 'hold', "$h1: queue_name hold";
my $o = $q->{$d1};
ok exists $o->{$_}, "postqueue -j field $_" for qw(queue_id arrival_time message_size sender);
is $o->{sender}, 'a@sender.test', 'sender';
is_deeply [map { $_->{address} } @{ $o->{recipients} }], ['later@x.test'], 'recipients[].address';
like $o->{recipients}[0]{delay_reason}, qr/\Q$LATER\E/, 'recipients[].delay_reason: the 450';
is show_json($d1)->{state}, 'deferred', 'show --json: state deferred';
($out) = mtaq_ok('show', $d1);
like $out, qr/^status: deferred$/m, 'show: status deferred (not "active")';

$out = mtaq_ok('count', '--json');
is_deeply decode_json($out), { count => 4, incoming => 0, deferred => 3, hold => 1, damaged => 0 },
	'count --json';
$out = mtaq_ok('summary', '--json');
my $sum = decode_json($out);
is $sum->{total}{total}, 4, 'summary --json: 4 recipients';
is_deeply { map { $_->{domain} => $_->{total} } @{ $sum->{domains} } }, { 'x.test' => 3, 'y.test' => 1 },
	'summary --json: by domain';
for my $cmd (['verify'], ['recover'], ['migrate'], ['count', '--json-lines']) {
	my ($rc, undef, $e) = $m->mtaq(@$cmd, $cmd->[1] ? () : '--json');
	is $rc, 64, "mtaq @$cmd with JSON it does not have: exit 64" or diag $e;
}

# ---- flush --domain, flush counts ----
$sink->set(rcpt => { 'later@x.test' => $LATER });	# y.test is taken now
$off = length $m->log_text;
$out = mtaq_ok('flush', '--domain', 'y.test');
like $out, qr/^1 message flushed for y\.test, 0 on hold \(not flushed\)$/m, 'flush --domain y.test: one';
ok scalar(arrived(qr/^Subject: d3\r?$/m)), "$d3 delivered";
ok $m->delivery_log($d3, 'later@y.test', 'sent', $off), "... log: $d3 status=sent";
is $m->wait_log(qr/\b(?:\Q$d1\E|\Q$d2\E): to=/, $off, 0), undef, '... the x.test ones not tried';

$off = length $m->log_text;
($out, $err) = mtaq_ok('flush', '--json');
my $f = decode_json($out);
is $f->{flushed}, 2, 'flush --json: exactly the two deferred ones flushed';
is $f->{held}, 1, '... the held one counted apart';
is_deeply [sort @{ $f->{queue_ids} }], [sort $d1, $d2], '... their ids';
like $err, qr/\bFlushed: 2 messages$/m, '... logged';
ok $m->delivery_log($_, 'later@x.test', 'deferred', $off), "$_ tried again at once: deferred"
	for $d1, $d2;
$out = mtaq_ok('flush', $h1);
like $out, qr/^\Q$h1\E: on hold: not flushed/m, "flush $h1: on hold, not flushed";
like $out, qr/^0 messages flushed, 1 on hold/m, '... and counted so';

# ---- hold ALL, release -, requeue ----
($out, $err) = mtaq_ok('hold', 'ALL');
like $out, qr/^Placed on hold: 2 messages$/m, 'hold ALL: the two not held yet';
like $err, qr/\b\Q$_\E: placed on hold$/m, "... logged for $_" for $d1, $d2;
(undef, $out, $err) = mtaq_stdin("$d1\n  $d2  \n\n", 'release', '-');
like $out, qr/^Released from hold: 2 messages$/m, 'release -: ids from stdin';
like $err, qr/\b\Q$d1\E: released from hold$/m, '... logged';
$q = json_lines();
is $q->{$d1}{queue_name}, 'deferred', "$d1 deferred again";
is $q->{$h1}{queue_name}, 'hold', "$h1 still held";
my (undef, undef, $e) = mtaq_stdin("NOT-AN-ID\n", 'hold', '-');
like $e, qr/no such message: NOT-AN-ID/, 'hold -: a bad line is refused, by name';

# requeue, on a held message so that the runner does not try it meanwhile
is show_json($h1)->{recipients}[0]{attempts}, 1, "$h1: one attempt";
($out, $err) = mtaq_ok('requeue', $h1);
like $out, qr/^\Q$h1\E: requeued$/m, "requeue $h1";
like $err, qr/\b\Q$h1\E: requeued$/m, '... logged: QID: requeued';
my $s = show_json($h1);
is $s->{recipients}[0]{attempts}, 0, '... attempts start over (backoff from retry_min)';
is $s->{state}, 'hold', '... and a hold stays';
$o = json_lines()->{$h1};
is $o->{queue_name}, 'hold', '... list: hold';

# ---- expire: bounced at the next pass ----
$off = length $m->log_text;
($out, $err) = mtaq_ok('expire', $d1);
like $err, qr/\b\Q$d1\E: expired$/m, "expire $d1: logged";
my $dsn = qr/^Subject: .*\r?\n(?s:.*)\Q$d1\E/m;
ok $m->delivery_log($d1, 'later@x.test', 'bounced', $off), "$d1 bounced by the runner";
like $m->log_text, qr/\b\Q$d1\E: to=<later\@x\.test>.*status=bounced .*administratively expired/,
	'... as administratively expired';
ok MtadTest::wait_for(30, sub { grep { $_->{data} =~ /\Q$d1\E/ && $_->{data} =~ /administratively expired/ }
				 $sink->messages }), '... a DSN naming it reached the sender';
ok !grep({ $_->{data} =~ /^Subject: d1\r?$/m && $_->{data} !~ /\Q$d1\E/ } $sink->messages),
	'... and the message itself was not sent';

($out) = mtaq_ok('expire', $h1);
like $out, qr/^\Q$h1\E: expired \(held: returned to the sender once released\)$/m,
	"expire $h1 (held): says it waits for the release";
is show_json($h1)->{expire_requested}, JSON::PP::true, '... marked';
$off = length $m->log_text;
mtaq_ok('release', $h1);
ok $m->delivery_log($h1, 'later@x.test', 'bounced', $off), '... bounced once released';

# ---- delete -, delete ALL ----
ok MtadTest::wait_for(30, sub { $m->queue_count == 1 }), 'the bounces are delivered: d2 is left'
	or diag scalar $m->mtaq('list');
my $d5 = submit('later@x.test', 'd5');
my $d6 = submit('later@x.test', 'd6');
(undef, $out, $err) = mtaq_stdin("$d2\n", 'delete', '-');
like $out, qr/^\Q$d2\E: deleted$/m, "delete -: $d2";
like $err, qr/\b\Q$d2\E: removed$/m, '... logged: QID: removed';
like $err, qr/\bDeleted: 1 message$/m, '... Deleted: 1 message';
($out, $err) = mtaq_ok('delete', 'ALL', '--json');
$f = decode_json($out);
is_deeply [sort @{ $f->{queue_ids} }], [sort $d5, $d6], 'delete ALL --json: the rest';
is $m->queue_count, 0, 'the queue is empty';
my ($rc) = $m->mtaq('delete', 'ALL', $d2);
is $rc, 64, 'ALL with ids: usage error';

# ---- active: what the runner is delivering now ----
$sink->set(data_sleep => 6, rcpt => {});
my $a1 = submit('later@x.test', 'a1');
my $st;
MtadTest::wait_for(10, sub { $st = (json_lines(1)->{$a1} // {})->{queue_name} // ''; $st eq 'active' });
is $st, 'active', "$a1: active while the runner waits for the sink's reply to the data";
($out) = mtaq_ok('list');
like $out, qr/^\Q$a1\E\* /m, '... list marks it with *, as mailq does';
$sink->set(data_sleep => 0);
ok scalar(arrived(qr/^Subject: a1\r?$/m)), '... then delivered';
ok MtadTest::wait_for(30, sub { $m->queue_count == 0 }), '... and gone';

# ---- log = syslog: the lines go there, as mtad's ----
my $dir = tempdir(CLEANUP => 1);
my $sock = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => "$dir/log") or die "bind: $!";
$m->set_config(log => 'syslog', syslog_socket => "$dir/log");
my $d4 = submit('later@x.test', 'd4');
($out, $err) = mtaq_ok('hold', $d4);
unlike $err, qr/placed on hold/, 'log = syslog: nothing on stderr';
my $sel = IO::Select->new($sock);
my @grams;
while ($sel->can_read(5)) {
	my $g;
	$sock->recv($g, 4096);
	push @grams, $g;
	last if $g =~ /Placed on hold/;
}
ok grep({ /^<22>.* mtad\/mtaq\[\d+\]: \Q$d4\E: placed on hold$/ } @grams),
	'syslog: mtad/mtaq[PID]: QID: placed on hold (mail.info)'
	or diag explain \@grams;
ok grep({ /: Placed on hold: 1 message$/ } @grams), 'syslog: the summary';
mtaq_ok('delete', $d4);

$_->stop for $m, $sink;
done_testing;
