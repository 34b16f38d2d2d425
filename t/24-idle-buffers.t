# 24-idle-buffers.t - issue 13: a session holds its 16 KB input buffer
# only while input waits in it, and its reply buffer only while replies
# gather; between reads an emptied buffer goes back to the server.
#
# Input split anywhere across reads (inside a verb, between CR and LF,
# inside a dot-stuffed line, inside the end marker), in the clear and
# under STARTTLS, must be neither lost nor reordered by that; and idle
# connections must cost mtad what issue 13 asks: at most 8 KiB each in
# the clear and 24 KiB with STARTTLS (Pss of the mtad process, as
# t/bench/idle-memory measures it; it was 23 KiB and 38 KiB while every
# session owned 20 KB of buffers).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep);
use MtadTest;

my $m = MtadTest->new(listeners => ['starttls'], sasl_mechanisms => 'none', max_connections_per_ip => 1000,
		      command_timeout => 300);
my $QUEUED = qr/\A250 2\.0\.0 Ok: queued as ([0-9A-Z]{14})\r\n\z/;

# send_pieces(SOCK, PIECES...) - each piece in a write (and a TCP
# segment, or a TLS record) of its own, with a pause between them so
# that mtad reads them one by one.
sub send_pieces {
	my ($s, @pieces) = @_;
	for my $p (@pieces) {
		$m->send_bytes($s, $p) or return 0;
		sleep 0.1;
	}
	return 1;
}

# body_of(QID) - the stored message without our Received: header, CRLF as LF.
sub body_of {
	my ($qid) = @_;
	my ($rc, $out, $err) = $m->mtaq('show', '--body', $qid);
	is $rc, 0, "mtaq show --body $qid" or diag $err;
	return $out =~ s/\r\n/\n/gr =~ s/\AReceived:[^\n]*\n(?:[ \t][^\n]*\n)*//r;
}

# split_session(SOCK, WHAT) - one message, its commands and body cut
# across reads at the awkward places.
sub split_session {
	my ($s, $what) = @_;
	setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
	send_pieces($s, 'EH', "LO client.example\r", "\nMAIL FROM:<a\@b.test>\r\nRC",
		    "PT TO:<u\@campus.test>\r\n", "DATA\r\n");
	like $m->read_reply($s), qr/\A250-mx\.campus\.test Hello client\.example .*250 HELP\r\n\z/s,
		"$what: EHLO cut in three reads is answered";
	like $m->read_reply($s), qr/\A250 2\.1\.0 /, "$what: MAIL, cut before its RCPT";
	like $m->read_reply($s), qr/\A250 2\.1\.5 /, "$what: RCPT, begun in the read before";
	like $m->read_reply($s), qr/\A354 /, "$what: DATA";
	send_pieces($s, "Subject: split $what\r\n\r\nfirst\r", "\n..dotted\r\n.", ".second\r\n",
		    "last\r\n.", "\r", "\nQUIT\r\n");
	my $r = $m->read_reply($s) // '';
	like $r, $QUEUED, "$what: the end marker cut in three reads ends the message";
	my ($qid) = $r =~ $QUEUED;
	like $m->read_reply($s), qr/\A221 /, "$what: QUIT, in the read that ended the marker";
	is body_of($qid // 'none'), "Subject: split $what\n\nfirst\n.dotted\n.second\nlast\n",
		"$what: the body is intact, dot-stuffing removed";
}

{
	my $s = $m->raw;
	split_session($s, 'plain');
	close $s;
	$s = $m->raw;
	setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
	$m->ehlo($s, 'client.example', starttls => 1);
	$m->starttls($s) or BAIL_OUT('no STARTTLS');
	split_session($s, 'STARTTLS');
	close $s;
}

# A line cut across reads, with a long wait between: the partial line
# stays while the buffer waits, and the line after it is run too.
{
	my $s = $m->raw;
	setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
	$m->send_bytes($s, 'NO');
	sleep 1;
	$m->send_bytes($s, "OP\r\nNOOP\r\n");
	like $m->read_reply($s), qr/\A250 2\.0\.0 /, 'NOOP cut by a 1 s wait';
	like $m->read_reply($s), qr/\A250 2\.0\.0 /, '... and the NOOP after it';
	close $s;
}

# pss_kb(M) - the proportional set size of M's mtad process.
sub pss_kb {
	my ($mt) = @_;
	open my $f, '<', '/proc/' . $mt->pid . '/smaps_rollup' or return undef;
	while (my $l = <$f>) { return $1 if $l =~ /^Pss:\s+(\d+) kB/ }
	return undef;
}

# sanitized(M) - M's mtad runs with AddressSanitizer, whose redzones and
# quarantine make memory figures meaningless.
sub sanitized {
	my ($mt) = @_;
	open my $f, '<', '/proc/' . $mt->pid . '/maps' or return 0;
	while (my $l = <$f>) { return 1 if $l =~ /libasan/ }
	return 0;
}

# open_idle(M, N, TLS) - N connections to M, each greeted and past EHLO
# (and STARTTLS, the handshake and EHLO again); they stay open.
sub open_idle {
	my ($mt, $n, $tls) = @_;
	my @held;
	for (1 .. $n) {
		my $s = $mt->raw;
		my $r = $mt->send_recv($s, "EHLO idle.example\r\n") // '';
		return () unless $r =~ /^250 /m;
		if ($tls) {
			$r = $mt->send_recv($s, "STARTTLS\r\n") // '';
			return () unless $r =~ /^220 /;
			IO::Socket::SSL->start_SSL($s, SSL_verify_mode => 0, Timeout => 30)
				or return ();
			$r = $mt->send_recv($s, "EHLO idle.example\r\n") // '';
			return () unless $r =~ /^250 /m;
		}
		push @held, $s;
	}
	return @held;
}

# Each mode on a fresh mtad: memory the other mode freed would be reused
# and hide what these connections take.
undef $m;
for my $case ([plain => 0, 400, 8], [STARTTLS => 1, 200, 24]) {
	my ($what, $tls, $n, $max_kib) = @$case;
	my $mt = MtadTest->new(listeners => ['starttls'], sasl_mechanisms => 'none',
			       max_connections_per_ip => 1000, command_timeout => 300);
	SKIP: {
		skip 'no /proc/PID/smaps_rollup', 2 unless defined pss_kb($mt);
		skip 'mtad runs under AddressSanitizer: memory is not comparable', 2
			if sanitized($mt);
		my @warm = open_idle($mt, 5, $tls);	# lazily made things, spares
		close $_ for @warm;
		sleep 0.5;
		my $before = pss_kb($mt);
		my @held = open_idle($mt, $n, $tls);
		is scalar(@held), $n, "$what: $n idle connections held";
		sleep 0.5;
		my $per = (pss_kb($mt) - $before) / $n;
		cmp_ok $per, '<=', $max_kib, sprintf('%s: %.1f KiB per idle connection, at most %d',
						     $what, $per, $max_kib);
		close $_ for @held;
	}
	$mt->stop;
}

# Out of memory for an input buffer: that session says 421 4.3.0 and
# closes; the others, and the daemon, go on. A malloc shim (LD_PRELOAD)
# refuses 16 KB blocks while a file exists; a first session holds the
# only buffer (a partial line), so the second must allocate one.
SKIP: {
	my $build = $ENV{MTAD_BUILD} // "$FindBin::Bin/../build";
	skip 'mtad runs under AddressSanitizer: no malloc shim', 5
		if `ldd $build/mtad 2>/dev/null` =~ /libasan/;
	# One event loop: the buffers counted here are one loop's spares.
	my $mt = MtadTest->new(start => 0, sasl_mechanisms => 'none', loops => 1);
	my ($src, $so, $flag) = map { $mt->dir . "/$_" } qw(shim.c shim.so fail);
	open my $f, '>', $src or die "$src: $!";
	print $f <<"C";
#include <errno.h>
#include <stddef.h>
#include <unistd.h>
extern void *__libc_malloc(size_t);
void *malloc(size_t n)
{
	if (n == 16384 && access("$flag", F_OK) == 0) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}
C
	close $f;
	skip 'no C compiler for the malloc shim', 5
		if system('cc', '-shared', '-fPIC', '-o', $so, $src) != 0;
	$mt->try_start(prefix => ['env', "LD_PRELOAD=$so"]) or BAIL_OUT('mtad with the shim did not start');
	my $first = $mt->raw;
	$mt->send_bytes($first, 'EH');	# holds the one input buffer
	sleep 0.3;
	open my $t, '>', $flag or die "$flag: $!";
	close $t;
	my $second = $mt->raw;
	is $mt->send_recv($second, "EHLO b.example\r\n"),
		"421 4.3.0 mx.campus.test Error: out of memory\r\n",
		'no memory for an input buffer: 421 4.3.0';
	ok $mt->closed($second), '... and the connection is closed';
	unlink $flag;
	like $mt->send_recv($first, "LO a.example\r\n") // '', qr/\A250-/,
		'the session that had its buffer goes on';
	my $third = $mt->raw;
	like $mt->send_recv($third, "EHLO c.example\r\n") // '', qr/\A250-/,
		'with memory back, a new session is served';
	like $mt->log_text, qr/warning: out of memory for the input of /, 'the log says why';
	$mt->stop;
}

done_testing;
