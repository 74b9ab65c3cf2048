"""LMTP through the real engine: transport_maps sends a domain to
lmtp:unix:/path of a Dovecot LMTP server this test starts (Debian
dovecot-lmtpd); the recipients' Maildirs are read back with Python's
mailbox. Skips without root or Dovecot."""
import mailbox
import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import DEFAULT_SERVICES, Instance, Tap, wait_for  # noqa: E402

dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
if os.geteuid() != 0 or not os.path.exists(dovecot) or not os.path.exists("/usr/lib/dovecot/lmtp"):
    print("1..0 # SKIP needs root and dovecot-lmtpd")
    sys.exit(0)

tap = Tap()
tmp = tempfile.mkdtemp(prefix="sluice-dove-")
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
    proc = subprocess.Popen([dovecot, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, 15, "dovecot's socket")
    except TimeoutError:
        pass
    if not os.path.exists(sock):
        log = open(os.path.join(tmp, "dovecot.log")).read() \
            if os.path.exists(os.path.join(tmp, "dovecot.log")) else ""
        tap.ok(False, "dovecot started", log)
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
finally:
    if proc:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)
tap.done()
