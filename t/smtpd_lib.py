"""smtpd_lib.py - shared helpers for the smtpd integration tests.

Starts t/smtpd_harness (smtpd on an ephemeral 127.0.0.1 port with a fake
submit that writes DIR/ID.env and DIR/ID.msg), talks SMTP over raw sockets,
waits for log lines and stored messages with deadlines (never a bare sleep),
and prints TAP.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from sluicetest import Tap  # noqa: E402,F401  (shared with the tests)

BUILDDIR = os.environ.get("SLUICE_BUILDDIR", os.getcwd())
HARNESS = os.path.join(BUILDDIR, "t", "smtpd_harness")


def wait_for(cond, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(step)


class Harness:
    def __init__(self, overrides=None, args=None, wait_stdin=False):
        self.dir = tempfile.mkdtemp(prefix="smtpd-test-")
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        self.logpath = os.path.join(self.dir, "log")
        cmd = [HARNESS, "-d", self.spool]
        base = {"myhostname": "mx.test", "smtpd_error_sleep_time": "0",
                "local_recipient_maps": ""}
        base.update(overrides or {})
        for k, v in base.items():
            cmd += ["-o", "%s=%s" % (k, v)]
        if wait_stdin:
            cmd.append("-w")
        cmd += args or []
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("harness did not start: %r\n%s" % (line, self.logtext()))
        self.port = int(line)

    def release(self):
        """With wait_stdin: let smtpd start accepting."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        wait_for(lambda: "smtpd started" in self.logtext())

    def logtext(self):
        with open(self.logpath) as f:
            return f.read()

    def wait_log(self, text, timeout=10.0):
        return wait_for(lambda: text in self.logtext(), timeout)

    def messages(self):
        """[(env dict, content bytes)] of the stored messages, oldest first."""
        out = []
        for env in sorted(glob.glob(os.path.join(self.spool, "*.env"))):
            d = {"rcpt": []}
            with open(env) as f:
                for line in f:
                    k, _, v = line.rstrip("\n").partition(" ")
                    if k == "rcpt":
                        d["rcpt"].append(v)
                    else:
                        d[k] = v
            with open(env[:-4] + ".msg", "rb") as f:
                out.append((d, f.read()))
        return out

    def wait_messages(self, n, timeout=10.0):
        wait_for(lambda: len(self.messages()) >= n, timeout)
        return self.messages()

    def stats(self):
        self.proc.send_signal(signal.SIGUSR1)
        line = self.proc.stdout.readline().split()
        return dict(zip(line[0::2], [int(x) for x in line[1::2]]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """A raw SMTP client: send bytes, read whole replies."""

    def __init__(self, port, source=None, timeout=10.0, greet=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """One reply, multi-line joined with newlines."""
        lines = [self._line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self._line())
        return "\n".join(lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self, timeout=5.0):
        """True when the server closed the connection (EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()
