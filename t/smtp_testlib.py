"""smtp_testlib.py - helpers for the SMTP/LMTP client integration tests.

Not a test itself. Gives: TAP output, the t/smtp_harness runner, an aiosmtpd
server answering per recipient as configured (SMTP or LMTP, optional
STARTTLS), a tiny DNS server (stdlib, UDP, MX/A records), free ports.
Everything binds to 127.0.0.1 on ephemeral ports and is stopped by the
caller (use the context managers).
"""
import asyncio
import os
import time
import tempfile
import shutil
import pwd
import re
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from sluicetest import Tap, free_port  # noqa: E402,F401  (shared with the tests)

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from aiosmtpd.lmtp import LMTP

BUILDDIR = os.environ.get("SLUICE_BUILDDIR", os.path.join(os.path.dirname(__file__), ".."))
HARNESS = os.path.join(BUILDDIR, "t", "smtp_harness")


def harness(args, timeout=60):
    """Run the harness; returns (rc, output text, log lines, results)."""
    p = subprocess.run([HARNESS] + args, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    logs = [l for l in p.stdout.splitlines() if re.match(r"^(smtp|lmtp): ", l)]
    results = {}
    for l in p.stdout.splitlines():
        m = re.match(r"^rcpt (\S+) status=(\S+) dsn=(\S+) reason=(.*)$", l)
        if m:
            results[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return p.returncode, out, logs, results


# A Postfix delay value: "0", "0.01", "1.2", "12".
DELAY = r"\d+(?:\.\d{1,2})?"


def log_re(service, to, relay, dsn, status, reason, orig=None, conn_use=None):
    """Regex for one Postfix to=<> line with any delay values."""
    r = r"^%s: [0-9A-F]+: to=<%s>" % (service, re.escape(to))
    if orig:
        r += r", orig_to=<%s>" % re.escape(orig)
    r += r", relay=%s" % re.escape(relay)
    if conn_use:
        r += r", conn_use=%d" % conn_use
    r += r", delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s \(%s\)$" % (
        DELAY, DELAY, DELAY, DELAY, DELAY, re.escape(dsn), status, re.escape(reason))
    return re.compile(r)


def find_log(logs, regex):
    return any(regex.match(l) for l in logs)


class Handler:
    """Answers RCPT per recipient from `rcpt` (address -> reply), and, for
    LMTP, after DATA per accepted recipient from `data` (address -> reply)."""

    def __init__(self, rcpt=None, data=None):
        self.rcpt = rcpt or {}
        self.data = data or {}
        self.messages = []
        self.ehlos = 0
        self.tls_used = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt.get(address)
        if reply and not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                              list(envelope.mail_options)))
        self.tls_used.append(session.ssl is not None)
        if isinstance(server, LMTP):
            return "\r\n".join(self.data.get(r, "250 2.0.0 <%s> delivered" % r)
                               for r in envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued as TESTQ1"


class _Ctl(Controller):
    def __init__(self, handler, port, lmtp=False, **kw):
        self.lmtp = lmtp
        super().__init__(handler, hostname="127.0.0.1", port=port, **kw)

    def factory(self):
        return (LMTP if self.lmtp else SMTP)(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):
        # The stock self-test opens an SMTP session (and for LMTP speaks
        # HELO); a bare TCP connect is enough to know we listen.
        with socket.create_connection((self.hostname, self.port), 5):
            pass


class Server:
    """aiosmtpd on 127.0.0.1:<free port>, as a context manager."""

    def __init__(self, handler, lmtp=False, **kw):
        self.handler = handler
        self.port = free_port()
        self.ctl = _Ctl(handler, self.port, lmtp=lmtp, **kw)

    def __enter__(self):
        self.ctl.start()
        return self

    def __exit__(self, *a):
        self.ctl.stop()


def make_cert(tmpdir, name):
    key = os.path.join(tmpdir, name + ".key")
    crt = os.path.join(tmpdir, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=DNS:" + name], check=True, capture_output=True)
    return crt, key


# ------------------------------------------------------------------ DNS

def _qname(data, off):
    labels = []
    while True:
        n = data[off]
        off += 1
        if n == 0:
            break
        labels.append(data[off:off + n].decode())
        off += n
    return ".".join(labels).lower(), off


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


class DnsServer:
    """UDP DNS server: records = {("name", "MX"): [(pref, "host")],
    ("name", "A"): ["127.0.0.1"]}. Unknown names get NXDOMAIN."""

    def __init__(self, records):
        self.records = {(k[0].lower(), k[1]): v for k, v in records.items()}
        self.names = {k[0] for k in self.records}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop = True
        self.sock.close()

    def run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self.answer(data), peer)
            except Exception:
                pass

    def answer(self, data):
        qid = data[:2]
        name, off = _qname(data, 12)
        qtype = struct.unpack(">H", data[off:off + 2])[0]
        question = data[12:off + 4]
        tname = {1: "A", 15: "MX", 28: "AAAA"}.get(qtype, "?")
        self.queries.append((name, tname))
        rcode = 0 if name in self.names else 3
        answers = b""
        count = 0
        for rec in self.records.get((name, tname), []):
            if tname == "MX":
                rdata = struct.pack(">H", rec[0]) + _encode_name(rec[1])
            elif tname == "A":
                rdata = socket.inet_aton(rec)
            else:
                continue
            answers += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
            count += 1
        flags = 0x8180 | rcode
        return qid + struct.pack(">HHHHH", flags, 1, count, 0, 0) + question + answers


DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
_DOVECOT_CONF = """
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
"""


def dovecot_available():
    """Dovecot's LMTP server can be started (root and dovecot-lmtpd)."""
    return (os.geteuid() == 0 and os.path.exists(DOVECOT)
            and os.path.exists("/usr/lib/dovecot/lmtp"))


class Dovecot:
    """A private Dovecot LMTP server on a unix socket (self.sock), delivering
    as nobody to Maildirs under its temp dir (self.maildir(user)). A context
    manager; self.error is None when it started, else its log."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-dove-")
        self.mail = os.path.join(self.tmp, "mail")
        self.sock = os.path.join(self.tmp, "lmtp")
        self.proc = None
        self.error = None

    def maildir(self, user):
        return os.path.join(self.mail, user, "Maildir")

    def __enter__(self):
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.tmp, 0o755)
        os.mkdir(self.mail)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        conf = os.path.join(self.tmp, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(_DOVECOT_CONF % {"tmp": self.tmp, "mail": self.mail, "sock": self.sock,
                                     "uid": nobody.pw_uid, "gid": nobody.pw_gid})
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while (time.monotonic() < deadline and not os.path.exists(self.sock)
               and self.proc.poll() is None):
            time.sleep(0.05)
        if not os.path.exists(self.sock):
            log = os.path.join(self.tmp, "dovecot.log")
            self.error = "dovecot did not start\n" + (open(log).read() if os.path.exists(log)
                                                     else "")
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
