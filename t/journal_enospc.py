"""Disk full while mail comes in (issue 3): with queue_directory on a small
tmpfs filled up, a new message gets "452 4.3.1 Insufficient system storage",
mail accepted before is not lost, and once space returns the engine accepts
and delivers again. Needs root (mount); skipped otherwise."""
import os
import smtplib
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

tap = Tap()
if os.geteuid() != 0:
    print("1..0 # SKIP needs root to mount a tmpfs")
    sys.exit(0)


def send(port, rcpt, size):
    body = "Subject: %s\r\n\r\n" % rcpt + ("x" * 76 + "\r\n") * (size // 78)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail("me@sluice.test")
        c.rcpt(rcpt)
        return c.data(body)


handler = Handler(rcpt={"early@example.com": "450 4.2.0 not yet"})
with Server(handler) as sink:
    inst = Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port,
                          "journal_segment_size": "64k"})
    os.makedirs(inst.spool)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", inst.spool],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("1..0 # SKIP cannot mount a tmpfs: " + r.stderr.strip())
        inst.cleanup()
        sys.exit(0)
    try:
        inst.start()
        code, text = send(inst.port, "early@example.com", 2000)
        tap.eq(code, 250, "a message is accepted while there is space")
        early_id = text.decode().split()[-1]
        inst.wait_log(r"%s: to=<early@example\.com>.*status=deferred" % early_id)

        filler = os.path.join(inst.spool, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=64k"], capture_output=True)
        # Closing the current segment and dropping the spare one frees up to
        # two segments (128 KiB): the message must be larger than that.
        code, text = send(inst.port, "full@example.com", 400_000)
        tap.ok(code == 452 and b"4.3.1 Insufficient system storage" in text,
               "disk full: 452 4.3.1 Insufficient system storage", (code, text))

        os.unlink(filler)
        code, text = send(inst.port, "after@example.com", 100_000)
        tap.eq(code, 250, "space is back: accepted again")
        after_id = text.decode().split()[-1]
        tap.ok(inst.wait_log(r"%s: to=<after@example\.com>.*status=sent" % after_id),
               "and delivered")

        del handler.rcpt["early@example.com"]
        inst.postfix("flush")
        tap.ok(inst.wait_log(r"%s: to=<early@example\.com>.*status=sent" % early_id),
               "the message accepted before the disk filled is delivered")
        got = [m[1] for m in handler.messages]
        tap.ok(["full@example.com"] not in got, "the refused message was never delivered", got)
    finally:
        inst.stop()
        subprocess.run(["umount", "-l", inst.spool], capture_output=True)
        inst.cleanup()
tap.done()
