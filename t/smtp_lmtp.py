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
from smtp_testlib import Tap, Server, Handler, harness, log_re, find_log

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
dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
if os.geteuid() != 0 or not os.path.exists(dovecot) or not os.path.exists("/usr/lib/dovecot/lmtp"):
    t.skip("dovecot LMTP delivery", "needs root and dovecot-lmtpd")
    t.skip("dovecot Maildir content", "needs root and dovecot-lmtpd")
    t.done()

tmp = tempfile.mkdtemp(prefix="sluice-lmtp-")
proc = None
try:
    nobody = pwd.getpwnam("nobody")
    os.chmod(tmp, 0o755)
    mail = os.path.join(tmp, "mail")
    os.mkdir(mail)
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    sock = os.path.join(tmp, "lmtp")
    conf = os.path.join(tmp, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""
base_dir = %(tmp)s/run
state_dir = %(tmp)s/state
log_path = %(tmp)s/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:%(mail)s/%%n/Maildir
first_valid_uid = %(uid)d
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=%(uid)d gid=%(gid)d home=%(mail)s/%%n
}
service lmtp {
  unix_listener %(sock)s {
    mode = 0666
  }
}
service anvil {
  chroot =
}
""" % {"tmp": tmp, "mail": mail, "sock": sock, "uid": nobody.pw_uid, "gid": nobody.pw_gid})
    proc = subprocess.Popen([dovecot, "-F", "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 15
    while time.time() < deadline and not os.path.exists(sock) and proc.poll() is None:
        time.sleep(0.05)
    if not os.path.exists(sock):
        log = open(os.path.join(tmp, "dovecot.log")).read() if os.path.exists(os.path.join(tmp, "dovecot.log")) else ""
        t.ok(False, "dovecot LMTP delivery", "dovecot did not start\n" + log)
        t.ok(False, "dovecot Maildir content")
    else:
        msgfile = os.path.join(tmp, "msg")
        with open(msgfile, "w") as f:
            f.write("From: <sender@example.org>\nTo: <alice@example.com>\nSubject: lmtp test\n\n"
                    ".dot line\nhello dovecot\n")
        rc, out, logs, res = harness(["-L", "-i", msgfile, "unix:" + sock, "alice@example.com",
                                      "bob@example.com"])
        ok = all(res.get(r, ("",))[0] == "sent" for r in ("alice@example.com", "bob@example.com"))
        t.ok(ok and any(l.startswith("lmtp: ") and "relay=" in l and "[%s]" % sock in l
                        and "status=sent (250 2.0.0 <alice@example.com>" in l for l in logs),
             "dovecot LMTP delivery over unix socket", out)
        got = []
        for user in ("alice", "bob"):
            path = os.path.join(mail, user, "Maildir")
            if os.path.isdir(path):
                for m in mailbox.Maildir(path, create=False):
                    got.append((user, m["Subject"], m.get_payload()))
        t.ok(sorted(g[0] for g in got) == ["alice", "bob"]
             and all(g[1] == "lmtp test" and g[2] == ".dot line\nhello dovecot\n" for g in got),
             "dovecot Maildir content read back", got)
finally:
    if proc:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if os.environ.get("KEEP") is None: shutil.rmtree(tmp, ignore_errors=True)
    else: print("# kept", tmp)
t.done()
