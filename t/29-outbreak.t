# 29-outbreak.t - containing a stolen password in one command each: a
# login with a valid password sends 500 messages in a loop (quotas
# raised for the test); `mtaq hold --login alice` holds every one of
# them and nothing of bob's, `mtaq release --login` lets them go again,
# `mtaq delete --login alice` removes them; then auth_block stops the
# login itself.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use Net::SMTP;
use MtadTest;

my $N = 500;
my $m = MtadTest->new(listeners => ['tls'], users => {alice => 'secret', bob => 'hunter2'},
		      send_rate_limit => 0, send_recipient_limit => 0, retry_min => 86400,
		      retry_max => 86400);

sub sender {
	my ($user, $pass) = @_;
	my $smtp = Net::SMTP->new('127.0.0.1', Port => $m->port(0), SSL => 1,
				  SSL_verify_mode => SSL_VERIFY_NONE, Hello => 'laptop.example',
				  Timeout => 30) or die "connect: $@";
	$smtp->auth($user, $pass) or die "auth $user: " . $smtp->message;
	return $smtp;
}
my $smtp = sender('alice', 'secret');
my $sent = 0;
for my $i (1 .. $N) {
	$sent++ if $m->send_message($smtp, 'alice@campus.test', ["victim$i\@campus.test"],
				    "From: alice\@campus.test\nSubject: cheap pills $i\n\nbuy\n") =~ /^250 /;
}
$smtp->quit;
is $sent, $N, "the stolen login sent $N messages";
$smtp = sender('bob', 'hunter2');
like $m->send_message($smtp, 'bob@campus.test', ['u@campus.test'], "Subject: real mail\n\nhi\n"),
	qr/^250 /, 'bob sends one real message';
$smtp->quit;
is $m->queue_count, $N + 1, 'all of it is queued';

my ($rc, $out, $err) = $m->mtaq('hold', '--login', 'alice');
is $rc, 0, 'mtaq hold --login alice exits 0' or diag $err;
like $out, qr/^$N messages of login alice held$/m, "... and says it held $N";
($rc, $out) = $m->mtaq('list');
my $held = () = $out =~ /^\S+!\s/mg;
is $held, $N, "mtaq list shows $N held messages (!)";
($rc, $out) = $m->mtaq('release', '--login', 'alice@mx.campus.test');
like $out, qr/^$N messages of login alice\@mx\.campus\.test released$/m, 'release --login with the realm';
($rc, $out) = $m->mtaq('hold', '--login', 'alice');
($rc, $out, $err) = $m->mtaq('delete', '--login', 'alice');
is $rc, 0, 'mtaq delete --login alice exits 0' or diag $err;
like $out, qr/^$N messages of login alice deleted$/m, "... deleted $N";
is $m->queue_count, 1, "bob's message is still there";
($rc, $out) = $m->mtaq('delete', '--login', 'alice');
like $out, qr/^no queued message of login alice$/m, 'a second run finds nothing';
($rc, $out, $err) = $m->mtaq('hold', '--login', 'alice', 'SOMEID');
is $rc, 64, '--login with ids is a usage error (EX_USAGE)';

# and the login itself: blocked, SIGHUP
$m->set_config(auth_block => 'alice');
kill 'HUP', $m->pid;
$m->wait_log(qr/reload: configuration .* loaded/);
my $blocked = Net::SMTP->new('127.0.0.1', Port => $m->port(0), SSL => 1,
			     SSL_verify_mode => SSL_VERIFY_NONE, Hello => 'laptop.example', Timeout => 30);
ok !$blocked->auth('alice', 'secret'), 'auth_block: the stolen password no longer logs in';
is $blocked->code, 535, '... 535';
$blocked->quit;
$m->stop;
done_testing;
