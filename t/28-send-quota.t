# 28-send-quota.t - sending quotas: send_rate_limit messages a minute and
# send_recipient_limit recipients a day, per login (over every connection
# and every event loop) and per trusted address that sends without a
# login. Over the limit: 450 4.7.1 at MAIL or RCPT, nothing queued, one
# warning line per window. Mail from untrusted clients to local domains
# has no quota. The first refusal of a window sends postmaster a short
# notice (send_limit_notify). `mtaq senders` shows what each login did today, and the
# recipients a day survive a restart.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MtadTest qw(auth_plain);

my $EHLO_TLS = MtadTest::ehlo_script('client.example', auth => 'PLAIN LOGIN');
my %users = (alice => 'secret', bob => 'hunter2', carol => 'opensesame');

sub login {
	my ($m, $user) = @_;
	my $s = $m->tls_raw(0);
	$m->dialog($s, "> EHLO client.example\n$EHLO_TLS> " . auth_plain($user, $users{$user})
		   . "\n< 235 2.7.0 Authentication successful\n");
	return $s;
}

# ---- the default: 30 messages a minute per login ----
my $m = MtadTest->new(listeners => ['tls', ''], users => \%users, loops => 2,
		      send_rate_limit => undef, send_recipient_limit => undef);
my $s = login($m, 'alice');
my $ok = 0;
for my $i (1 .. 30) {
	$ok++ if $m->queue_message($s, "msg $i", from => 'alice@campus.test') ne 'NONE';
}
is $ok, 30, 'the default lets a login send 30 messages in a minute';
$m->dialog($s, <<'END');
	> MAIL FROM:<alice@campus.test>
	< 450 4.7.1 alice: sending rate limit exceeded, try again later
	> MAIL FROM:<alice@campus.test>
	< 450 4.7.1 alice: sending rate limit exceeded, try again later
	> QUIT
	< 221 2.0.0 *
END
# another connection (the other loop): the same login, the same count
$s = login($m, 'alice');
$m->dialog($s, <<'END');
	> MAIL FROM:<alice@campus.test>
	< 450 4.7.1 alice: sending rate limit exceeded, try again later
	> QUIT
	< 221 2.0.0 *
END
is $m->queue_count, 31, 'nothing of the refused ones was queued: 30, and one notice';
{
	my ($rc, $out) = $m->mtaq('list');
	my ($nqid) = $out =~ /^(\S+)\s.*\n\s+postmaster\@mx\.campus\.test/m;
	ok defined $nqid, 'the notice goes to postmaster@mx.campus.test, from <>' or diag $out;
	($rc, $out) = $m->mtaq('show', '--body', $nqid // 'NONE');
	like $out, qr/^Subject: mtad: sending limit exceeded by alice\r?$/m, 'its subject names the login';
	like $out, qr/alice went over its rate limit: 31 messages in 60 s, from 127\.0\.0\.1\./,
		'... and the body what happened';
	like $out, qr/mtaq hold --login NAME/, '... and what to do';
	like $m->log_text, qr/: sending limit notice for alice to <postmaster\@mx\.campus\.test>/,
		'the log says a notice went';
}
my @warn = $m->log_text =~ /(warning: sasl_username=alice\S* rate limit exceeded: \d+ messages in 60 s from 127\.0\.0\.1)/g;
is scalar(@warn), 1, 'one warning line for the window' or diag $m->log_text;
like $warn[0] // '', qr/: 31 messages in 60 s/, '... which says 31 messages in 60 s';
$s = login($m, 'bob');
$m->queue_message($s, 'bob is not alice', from => 'bob@campus.test');
$m->dialog($s, <<'END');
	> MAIL FROM:<president@campus.test>
	< 553 5.7.1 *
	> QUIT
	< 221 2.0.0 *
END
$m->stop;

# ---- mtaq senders: what each login did today ----
my ($rc, $out, $err) = $m->mtaq('senders', '--json');
is $rc, 0, 'mtaq senders --json exits 0' or diag $err;
my $j = eval { JSON::PP::decode_json($out) } // {};
my %by = map { $_->{sender} => $_ } @{ $j->{senders} // [] };
my ($alice) = grep { /^alice(\@|$)/ } keys %by;
my ($bob) = grep { /^bob(\@|$)/ } keys %by;
is_deeply [map { $by{$alice // ''}{$_} } qw(messages recipients refused_quota refused_sender addresses)],
	[30, 30, 3, 0, 1], 'alice: 30 messages, 30 recipients, 3 refused by the quota, from 1 address'
	or diag $out;
is_deeply [map { $by{$bob // ''}{$_} } qw(messages recipients refused_quota refused_sender)],
	[1, 1, 0, 1], 'bob: 1 message, 1 refused for a sender he does not own';
is $j->{senders}[0]{sender}, $alice, 'the busiest sender first';
# All of it happened within the last hour: that column says the same.
is_deeply [map { $by{$alice // ''}{last_hour}{$_} } qw(messages recipients refused_quota refused_sender addresses)],
	[30, 30, 3, 0, 1], 'alice in the last hour: the same' or diag $out;
is_deeply [map { $by{$bob // ''}{last_hour}{$_} } qw(messages refused_sender)], [1, 1],
	'bob in the last hour: the same';
like $j->{last_hour_since} // '', qr/^\d{4}-\d\d-\d\d \d\d:\d0$/, 'the last hour says since when';
($rc, $out) = $m->mtaq('senders');
like $out, qr/^alice\S*\s+30\s+30\s+3\s+0\s+1 \|\s+30\s+30\s+3\s+0\s+1$/m,
	'the table, for people: today | the last hour' or diag $out;

# ---- recipients a day, over several connections and a restart ----
$m = MtadTest->new(listeners => ['tls'], users => \%users, send_recipient_limit => 5,
		   send_rate_limit => 100);
$s = login($m, 'bob');
$m->dialog($s, <<'END');
	> MAIL FROM:<bob@campus.test>
	< 250 2.1.0 *
	> RCPT TO:<a1@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<a2@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<a3@campus.test>
	< 250 2.1.5 *
	> DATA
	< 354 *
	> Subject: three
	>
	> body
	> .
	< 250 2.0.0 *
	> QUIT
	< 221 2.0.0 *
END
$m->restart;	# today's recipients come back from the statistics
$s = login($m, 'bob');
$m->dialog($s, <<'END');
	> MAIL FROM:<bob@campus.test>
	< 250 2.1.0 *
	> RCPT TO:<b1@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<b2@campus.test>
	< 250 2.1.5 *
	> RCPT TO:<b3@campus.test>
	< 450 4.7.1 bob: sending rate limit exceeded, try again later
	> DATA
	< 354 *
	> Subject: two of three
	>
	> body
	> .
	< 250 2.0.0 Ok: queued as *
	> QUIT
	< 221 2.0.0 *
END
like $m->log_text, qr/warning: sasl_username=bob\S* recipient limit exceeded: 6 recipients in 1 day from 127\.0\.0\.1/,
	'the recipient limit says so in the log';
$m->stop;

# ---- per login: send_limit_map, reloaded on SIGHUP ----
$m = MtadTest->new(listeners => ['tls'], users => \%users, send_rate_limit => 5,
		   send_recipient_limit => 100, start => 0);
my $limits = $m->dir . '/send_limits';
open my $fh, '>', $limits or die;
print $fh "# login: messages-a-minute recipients-a-day\nalice: 2 -\nbob\@mx.campus.test: 0 2\n";
close $fh;
$m->set_config(send_limit_map => $limits);
$m->start;
$s = login($m, 'alice');
$m->queue_message($s, "alice $_", from => 'alice@campus.test') for 1 .. 2;
$m->dialog($s, "> MAIL FROM:<alice\@campus.test>\n< 450 4.7.1 alice: *\n> QUIT\n< 221 2.0.0 *\n");
$s = login($m, 'bob');
$m->queue_message($s, "bob $_", from => 'bob@campus.test', to => "r$_\@campus.test") for 1 .. 2;
$m->dialog($s, <<'END');
	> MAIL FROM:<bob@campus.test>
	< 250 2.1.0 *
	> RCPT TO:<r3@campus.test>
	< 450 4.7.1 bob: *
	> QUIT
	< 221 2.0.0 *
END
open $fh, '>', $limits or die;
print $fh "alice: 3 -\nalice: 4 -\n";
close $fh;
my $mtad = ($ENV{MTAD_BUILD} // "$FindBin::Bin/../build") . '/mtad';
($rc, $out, $err) = MtadTest::run($mtad, '-n', '-c', $m->conf_path);
like $err, qr/send_limits: login alice is listed twice/, 'mtad -n: a login twice in send_limit_map';
open $fh, '>', $limits or die;
print $fh "alice: 3 x\n";
close $fh;
($rc, $out, $err) = MtadTest::run($mtad, '-n', '-c', $m->conf_path);
like $err, qr/send_limits:1: expected two limits/, '... a bad limit, with file:line';
# The reload is shown with a login the old map did not list (carol had
# the default 5 a minute): the mtad -n runs above may take longer than
# alice's minute under a sanitizer, so her window is no evidence.
open $fh, '>', $limits or die;
print $fh "alice: 3 -\ncarol: 1 -\n";
close $fh;
kill 'HUP', $m->pid;
$m->wait_log(qr/reload: configuration .* loaded/);
$s = login($m, 'carol');
$m->queue_message($s, 'carol 1', from => 'carol@campus.test');
$m->dialog($s, "> MAIL FROM:<carol\@campus.test>\n< 450 4.7.1 carol: *\n> QUIT\n< 221 2.0.0 *\n");
$m->stop;

# ---- trusted clients without a login: by address; the world: none ----
$m = MtadTest->new(relay_networks => '127.0.0.1/32', send_rate_limit => 2,
		   send_limit_notify => 'none');
for my $i (1 .. 2) {
	$s = $m->raw;
	$m->ehlo($s, 'printer.campus.test');
	$m->queue_message($s, "printer $i", from => 'printer@campus.test', to => 'x@elsewhere.example');
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
}
$s = $m->raw;
$m->ehlo($s, 'printer.campus.test');
$m->dialog($s, <<'END');
	> MAIL FROM:<printer@campus.test>
	< 450 4.7.1 [127.0.0.1]: sending rate limit exceeded, try again later
	> QUIT
	< 221 2.0.0 *
END
like $m->log_text, qr/warning: client=\[127\.0\.0\.1\] rate limit exceeded: 3 messages in 60 s/,
	'a trusted address: its own warning';
for my $i (1 .. 4) {
	$s = $m->raw(local => '127.0.0.2');
	$m->dialog($s, "> EHLO mx.elsewhere.example\n"
		   . MtadTest::ehlo_script('mx.elsewhere.example') =~ s/\[127\.0\.0\.1\]/[127.0.0.2]/r);
	$m->queue_message($s, "inbound $i", from => 'x@elsewhere.example', to => 'u@campus.test');
	$m->dialog($s, "> QUIT\n< 221 2.0.0 *\n");
}
is $m->queue_count, 6, 'send_limit_notify = none: no notice queued';
$m->stop;

done_testing;
