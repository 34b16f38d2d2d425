#!/usr/bin/python3
# testmilter.py SOCKET - a scripted milter for t/48-milter.t, written with
# Debian's python3-milter (pymilter, libmilter underneath). What it does
# is chosen by the message: the Subject: word after "milter-" and the
# addresses:
#   MAIL FROM:<mailreject@...>   550 at MAIL
#   RCPT TO:<rcptreject@...>     550 5.7.1 at RCPT (with the milter's text)
#   Subject: milter-reject       550 5.7.1 at the end of the message
#   Subject: milter-tempfail     451 4.7.1 at the end
#   Subject: milter-mlreply      a three-line 550 (smfi_setmlreply)
#   Subject: milter-discard      DISCARD
#   Subject: milter-macros       X-Milter-Macros: the macros it was sent
#   Subject: milter-quarantine   quarantine "test quarantine reason"
#   Subject: milter-headers      X-Test-Milter added, X-Inserted inserted
#                                first, Subject changed, X-Remove deleted
#   Subject: milter-rcpt         the first recipient deleted, added@campus.test
#                                added, the sender changed to changed@sender.test
#   Subject: milter-body         the body replaced
#   Subject: milter-bigbody      the body replaced by 6.6 MB
#   Subject: milter-halfbody      half a replacement body, then a sleep past the timeout
#   Subject: milter-sleep        sleeps past mtad's content_timeout
# Every message gets "X-Milter-Saw: <the header names it was shown>" so
# the test can check what the milter saw.
import sys
import time
import Milter


class TestMilter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()
        self.subject = ''
        self.seen = []
        self.rcpts = []
        self.bodybytes = b''

    # connect and hello are defined so pymilter asks for those steps (it
    # negotiates SMFIP_NOCONNECT/NOHELO for callbacks a class lacks), and
    # with them the macros sent at CONNECT.
    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    def hello(self, hostname):
        return Milter.CONTINUE

    def envfrom(self, f, *args):
        self.subject = ''
        self.seen = []
        self.rcpts = []
        if 'mailreject@' in f:
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        if 'rcptreject@' in to:
            self.setreply('550', '5.7.1', 'Recipient refused by the test milter')
            return Milter.REJECT
        self.rcpts.append(to)
        return Milter.CONTINUE

    def header(self, name, value):
        self.seen.append(name)
        if name.lower() == 'subject':
            self.subject = value
        return Milter.CONTINUE

    def body(self, chunk):
        self.bodybytes += chunk
        return Milter.CONTINUE

    def eom(self):
        s = self.subject
        self.addheader('X-Milter-Saw', ','.join(self.seen) + ' body=%d' % len(self.bodybytes))
        if 'milter-macros' in s:
            # What libmilter collected from every stage, as a filter reads it.
            names = ('j', '{daemon_name}', '{daemon_addr}', 'v', '{if_name}', '{client_addr}',
                     '{client_name}', '{mail_addr}', '{rcpt_addr}', '{auth_authen}', 'i')
            self.addheader('X-Milter-Macros',
                           ';'.join('%s=%s' % (k, self.getsymval(k)) for k in names))
        if 'milter-reject' in s:
            self.setreply('550', '5.7.1', 'Message refused by the test milter')
            return Milter.REJECT
        if 'milter-mlreply' in s:
            self.setreply('550', '5.7.1', 'first line of the refusal', 'second line', 'third line')
            return Milter.REJECT
        if 'milter-tempfail' in s:
            return Milter.TEMPFAIL
        if 'milter-discard' in s:
            return Milter.DISCARD
        if 'milter-quarantine' in s:
            self.quarantine('test quarantine reason')
        if 'milter-headers' in s:
            self.addheader('X-Test-Milter', 'added')
            self.addheader('X-Inserted', 'first', 0)
            self.chgheader('Subject', 1, 'changed by milter')
            self.chgheader('X-Remove', 1, '')
        if 'milter-rcpt' in s:
            self.delrcpt(self.rcpts[0])
            self.addrcpt('<added@campus.test>')
            self.chgfrom('<changed@sender.test>')
        if 'milter-body' in s:
            self.replacebody(b'replaced body line 1\r\nreplaced line 2\r\n')
        if 'milter-bigbody' in s:
            # 6.6 MB in 100 calls (libmilter sends each as 64 KB packets):
            # more than any bound mtad could hold it in.
            piece = b'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-=\r\n' * 1000
            for _ in range(100):
                self.replacebody(piece)
        if 'milter-halfbody' in s:
            # Half a replacement, then silence past content_timeout.
            self.replacebody(b'half a body\r\n' * 1000)
            time.sleep(8)
        if 'milter-sleep' in s:
            time.sleep(8)
        return Milter.ACCEPT


if __name__ == '__main__':
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT | Milter.DELRCPT |
                     Milter.CHGBODY | Milter.QUARANTINE | Milter.CHGFROM)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    Milter.runmilter('testmilter', sys.argv[1], 30)
