"""smtp_lmtp.py - the LMTP client: per-recipient replies after DATA against
aiosmtpd's LMTP server (mixed results), and real delivery into Dovecot's
LMTP server over a unix socket, read back with Python's mailbox module.
Dovecot (Debian dovecot-lmtpd) runs from a config in a temp dir; when it
cannot be started (not installed, not root) that test is skipped."""
import mailbox
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_testlib import Tap, Server, Handler, harness, log_re, find_log, Dovecot, dovecot_available

t = Tap(5)

# 1-3: aiosmtpd LMTP, one reply per accepted recipient after ".".
h = Handler(rcpt={"nouser@example.com": "550 5.1.1 <nouser@example.com> User doesn't exist"},
            data={"full@example.com": "452 4.2.2 <full@example.com> Mailbox is full"})
with Server(h, lmtp=True) as srv:
    relay = "127.0.0.1[127.0.0.1]:%d" % srv.port
    rc, out, logs, res = harness(["-L", "inet:127.0.0.1:%d" % srv.port, "ok@example.com",
                                  "nouser@example.com", "full@example.com"])
    t.ok(find_log(logs, log_re("lmtp", "ok@example.com", relay, "2.0.0", "sent",
                               "250 2.0.0 <ok@example.com> delivered")), "LMTP: sent", out)
    t.ok(find_log(logs, log_re("lmtp", "full@example.com", relay, "4.2.2", "deferred",
                               "host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <full@example.com> Mailbox "
                               "is full (in reply to end of DATA command)")),
         "LMTP: per-recipient 452 after DATA deferred", out)
    t.ok(find_log(logs, log_re("lmtp", "nouser@example.com", relay, "5.1.1", "bounced",
                               "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nouser@example.com> User "
                               "doesn't exist (in reply to RCPT TO command)")),
         "LMTP: RCPT 550 bounced", out)

# 4-5: Dovecot.
if not dovecot_available():
    t.skip("dovecot LMTP delivery", "needs root and dovecot-lmtpd")
    t.skip("dovecot Maildir content", "needs root and dovecot-lmtpd")
    t.done()

with Dovecot() as dove:
    if dove.error:
        t.ok(False, "dovecot LMTP delivery", dove.error)
        t.ok(False, "dovecot Maildir content")
    else:
        msgfile = os.path.join(dove.tmp, "msg")
        with open(msgfile, "w") as f:
            f.write("From: <sender@example.org>\nTo: <alice@example.com>\nSubject: lmtp test\n\n"
                    ".dot line\nhello dovecot\n")
        rc, out, logs, res = harness(["-L", "-i", msgfile, "unix:" + dove.sock, "alice@example.com",
                                      "bob@example.com"])
        ok = all(res.get(r, ("",))[0] == "sent" for r in ("alice@example.com", "bob@example.com"))
        t.ok(ok and any(l.startswith("lmtp: ") and "relay=" in l and "[%s]" % dove.sock in l
                        and "status=sent (250 2.0.0 <alice@example.com>" in l for l in logs),
             "dovecot LMTP delivery over unix socket", out)
        got = []
        for user in ("alice", "bob"):
            path = dove.maildir(user)
            if os.path.isdir(path):
                for m in mailbox.Maildir(path, create=False):
                    got.append((user, m["Subject"], m.get_payload()))
        t.ok(sorted(g[0] for g in got) == ["alice", "bob"]
             and all(g[1] == "lmtp test" and g[2] == ".dot line\nhello dovecot\n" for g in got),
             "dovecot Maildir content read back", got)
t.done()
