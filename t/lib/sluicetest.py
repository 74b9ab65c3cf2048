"""sluicetest - start real Sluice instances for integration tests.

An Instance is a private configuration directory, queue directory and
maillog under a temp dir, with SMTP on an ephemeral 127.0.0.1 port. Tests
drive it with the real commands (postfix, postconf, ...) from the build tree
and always stop what they start (Instance is a context manager; stop() is
also registered with atexit). Output is TAP through the Tap class.
"""
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("SLUICE_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.environ.get("SLUICE_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


# The unix services of Postfix's stock master.cf that Sluice implements.
DEFAULT_SERVICES = [
    "cleanup unix n - n - 0 cleanup",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
]


def free_port(host="127.0.0.1"):
    """An ephemeral port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=20.0, what="condition"):
    """Poll cond() until it returns a true value; raise on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.02)


class Tap:
    """Minimal TAP producer. With a plan, "1..N" comes first; without one,
    done() prints it after the last test."""

    def __init__(self, plan=None):
        self.n = 0
        self.failed = 0
        self.plan = plan
        if plan is not None:
            print("1..%d" % plan, flush=True)

    def ok(self, cond, name, detail=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.n, name), flush=True)
        if not cond and detail is not None:
            for line in str(detail).splitlines()[-40:]:
                print("# " + line, flush=True)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got %r, want %r" % (got, want))

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def done(self):
        if self.plan is None:
            print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


class Instance:
    """One Sluice instance in its own directory."""

    def __init__(self, main=None, master=None, smtp=True):
        self.root = tempfile.mkdtemp(prefix="sluice-t-")
        self.etc = os.path.join(self.root, "etc")
        self.spool = os.path.join(self.root, "spool")
        self.maillog = os.path.join(self.root, "maillog")
        self.port = free_port()
        os.makedirs(self.etc)
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        base = {
            "queue_directory": self.spool,
            "daemon_directory": os.path.join(BUILD, "engine"),
            "command_directory": os.path.join(BUILD, "cli"),
            "maillog_file": self.maillog,
            "mail_owner": user,
            "inet_interfaces": "127.0.0.1",
            "mynetworks": "127.0.0.0/8",
            "myhostname": "sluice.test",
            "mydestination": "$myhostname, localhost",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
        }
        base.update(main or {})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# written by t/lib/sluicetest.py\n")
            for k, v in base.items():
                f.write("%s = %s\n" % (k, v))
        lines = []
        if smtp:
            lines.append("127.0.0.1:%d inet n - n - - smtpd" % self.port)
        lines += master if master is not None else DEFAULT_SERVICES
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.started = False
        atexit.register(self.cleanup)

    def env(self):
        e = dict(os.environ)
        e["MAIL_CONFIG"] = self.etc
        return e

    def cmd(self, name, *args, input=None, check=False):
        """Run a command from the build tree (cli/NAME) with -c."""
        path = os.path.join(BUILD, "cli", name)
        return subprocess.run([path, "-c", self.etc] + list(args), input=input,
                              capture_output=True, text=True, env=self.env(),
                              timeout=120, check=check)

    def postfix(self, *args):
        return self.cmd("postfix", *args)

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=20.0):
        rx = re.compile(pattern, re.M)
        return wait_for(lambda: rx.search(self.log()), timeout, "log /%s/" % pattern)

    def smtp_ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    def start(self, wait_smtp=True):
        r = self.postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: %s %s" % (r.stdout, r.stderr))
        self.started = True
        if wait_smtp:
            wait_for(self.smtp_ready, 20, "SMTP on port %d" % self.port)
        return r

    def stop(self):
        if self.started:
            self.postfix("stop")
            self.started = False

    def cleanup(self):
        self.stop()
        if os.environ.get("SLUICE_KEEP_TMP"):
            return
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
