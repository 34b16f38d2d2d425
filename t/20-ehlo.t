# 20-ehlo.t - greeting, EHLO/HELO, the simple verbs, and command order
# (RFC 5321 §4.1.1, §4.1.4; enhanced codes RFC 2034/3463).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MtadTest;

my $m = MtadTest->new;

# The greeting, byte for byte; it carries no enhanced code.
my ($s, $greeting) = $m->raw;
is $greeting, "220 mx.campus.test ESMTP mtad\r\n", 'greeting';

$m->dialog($s, <<'END');
	> EHLO client.example
	< 250-mx.campus.test Hello client.example [127.0.0.1]
	< 250-SIZE 52428800
	< 250-PIPELINING
	< 250-8BITMIME
	< 250-DSN
	< 250-SMTPUTF8
	< 250-ENHANCEDSTATUSCODES
	< 250-CHUNKING
	< 250 HELP
	> NOOP
	< 250 2.0.0 *
	> noop with an argument
	< 250 2.0.0 *
	> RSET
	< 250 2.0.0 *
	> VRFY postmaster
	<~ 252 2\.(5\.2|1\.5) .*
	> EXPN staff
	< 502 5.5.1 *
	> FROBNICATE
	< 500 5.5.2 *
	# EHLO again is allowed and gives the same list
	> ehlo client.example
	< 250-mx.campus.test Hello client.example [127.0.0.1]
	< 250-SIZE 52428800
	< 250-PIPELINING
	< 250-8BITMIME
	< 250-DSN
	< 250-SMTPUTF8
	< 250-ENHANCEDSTATUSCODES
	< 250-CHUNKING
	< 250 HELP
	> QUIT
	< 221 2.0.0 *
	< [closed]
END

# HELP: 214, possibly several lines.
$s = $m->raw;
my $help = $m->send_recv($s, "HELP\r\n");
like $help, qr/\A(214-[^\r\n]*\r\n)*214 [^\r\n]*\r\n\z/, 'HELP -> 214';

# HELO: one line, no extensions.
$s = $m->raw;
$m->dialog($s, <<'END');
	> HELO client.example
	< 250 mx.campus.test
	> MAIL FROM:<a@b.test>
	< 250 2.1.0 *
	> QUIT
	< 221 2.0.0 *
	< [closed]
END

# Command order.
$s = $m->raw;
$m->dialog($s, <<'END');
	> MAIL FROM:<a@b.test>
	< 503 5.5.1 *
	> RCPT TO:<u@campus.test>
	< 503 5.5.1 *
	> DATA
	< 503 5.5.1 *
	> EHLO client.example
	< 250-mx.campus.test Hello client.example [127.0.0.1]
	< 250-SIZE 52428800
	< 250-PIPELINING
	< 250-8BITMIME
	< 250-DSN
	< 250-SMTPUTF8
	< 250-ENHANCEDSTATUSCODES
	< 250-CHUNKING
	< 250 HELP
	> RCPT TO:<u@campus.test>
	< 503 5.5.1 *
	> DATA
	< 503 5.5.1 *
	> MAIL FROM:<a@b.test>
	< 250 2.1.0 *
	> DATA
	< 503 5.5.1 *
	# RSET forgets the transaction
	> RSET
	< 250 2.0.0 *
	> RCPT TO:<u@campus.test>
	< 503 5.5.1 *
	> QUIT
	< 221 2.0.0 *
END

# EHLO/HELO syntax.
$s = $m->raw;
$m->dialog($s, <<'END');
	> EHLO
	< 501 5.5.4 *
	> HELO
	< 501 5.5.4 *
	> EHLO   
	< 501 5.5.4 *
	# still no HELO: MAIL is out of order
	> MAIL FROM:<a@b.test>
	< 503 5.5.1 *
	> EHLO [127.0.0.1]
	< 250-mx.campus.test Hello [127.0.0.1] [127.0.0.1]
	< 250-SIZE 52428800
	< 250-PIPELINING
	< 250-8BITMIME
	< 250-DSN
	< 250-SMTPUTF8
	< 250-ENHANCEDSTATUSCODES
	< 250-CHUNKING
	< 250 HELP
	> QUIT
	< 221 2.0.0 *
END

# A configured size limit is what EHLO advertises.
my $m2 = MtadTest->new(message_size_limit => 10000);
$s = $m2->raw;
$m2->dialog($s, <<'END');
	> EHLO client.example
	< 250-mx.campus.test Hello client.example [127.0.0.1]
	< 250-SIZE 10000
	< 250-PIPELINING
	< 250-8BITMIME
	< 250-DSN
	< 250-SMTPUTF8
	< 250-ENHANCEDSTATUSCODES
	< 250-CHUNKING
	< 250 HELP
END

done_testing;
