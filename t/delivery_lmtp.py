"""LMTP through the real engine: transport_maps sends a domain to
lmtp:unix:/path of a Dovecot LMTP server this test starts (Debian
dovecot-lmtpd); the recipients' Maildirs are read back with Python's
mailbox. Skips without root or Dovecot."""
import mailbox
import os
import smtplib
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import DEFAULT_SERVICES, Instance, Tap  # noqa: E402
from smtp_testlib import Dovecot, dovecot_available  # noqa: E402

if not dovecot_available():
    print("1..0 # SKIP needs root and dovecot-lmtpd")
    sys.exit(0)

tap = Tap()
with Dovecot() as dove:
    sock, mail = dove.sock, dove.mail
    if dove.error:
        tap.ok(False, "dovecot started", dove.error)
        tap.done()
    with Instance(main={"transport_maps": "inline:{ dove.test=lmtp:unix:%s }" % sock},
                  master=DEFAULT_SERVICES + ["lmtp unix - - n - - lmtp"]) as inst:
        inst.start()
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as c:
            c.ehlo("client.test")
            c.mail("sender@example.org")
            for r in ("alice@dove.test", "bob@dove.test"):
                c.rcpt(r)
            code, text = c.data("From: <sender@example.org>\r\nSubject: via lmtp\r\n\r\n"
                                ".dot line\r\nhello dovecot\r\n")
        qid = text.decode().split()[-1]
        tap.eq(code, 250, "accepted for two dove.test recipients")
        for r in ("alice", "bob"):
            tap.ok(inst.wait_log(r"postfix/lmtp\[\d+\]: %s: to=<%s@dove\.test>, relay=[^,]*%s[^,]*, "
                                 r"delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 "
                                 % (qid, r, sock.replace(".", r"\."))),
                   "log: %s status=sent through the unix socket, Dovecot's per-recipient reply" % r,
                   inst.log()[-2000:])
        tap.ok(inst.wait_log(r"%s: removed" % qid), "the message is removed")
        got = {}
        for user in ("alice", "bob"):
            path = os.path.join(mail, user, "Maildir")
            if os.path.isdir(path):
                for m in mailbox.Maildir(path, factory=None, create=False):
                    got[user] = (m["Subject"], m.get_payload(), m.get("Return-Path"))
        want = ("via lmtp", ".dot line\nhello dovecot\n", "<sender@example.org>")
        tap.eq(got, {"alice": want, "bob": want},
               "mailbox.Maildir reads each copy: subject, dot line intact, Return-Path")
tap.done()
