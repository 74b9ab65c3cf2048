"""Back-pressure (issue 4): when the stages behind smtpd are saturated,
smtpd stops reading message content (SLOW) and answers MAIL FROM with
451 4.3.0 (FULL); it resumes when the pressure goes. Driven through the
harness's pressure hook (-P FILE holds 0, 1 or 2)."""
import os
import shutil
import tempfile
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from smtpd_lib import Client, Harness, Tap, wait_for  # noqa: E402

t = Tap()
h = None
pdir = tempfile.mkdtemp(prefix="smtpd-pressure-")
try:
    pfile = os.path.join(pdir, "pressure")
    with open(pfile, "w") as f:
        f.write("2")
    h = Harness(args=["-P", pfile])

    c = Client(h.port)
    c.cmd("EHLO client.test")
    r = c.cmd("MAIL FROM:<a@example.com>")
    t.ok(r.startswith("451 4.3.0"), "FULL: MAIL FROM gets 451 4.3.0", r)

    with open(pfile, "w") as f:
        f.write("1")
    r = c.cmd("MAIL FROM:<a@example.com>")
    t.ok(r.startswith("250"), "SLOW: commands are still answered", r)
    c.cmd("RCPT TO:<b@example.com>")
    r = c.cmd("DATA")
    t.ok(r.startswith("354"), "SLOW: DATA starts", r)
    c.send("Subject: slow\r\n\r\nbody\r\n.\r\n")
    # While saturated, the content is not read: no reply comes.
    c.sock.settimeout(1.0)
    try:
        early = c.sock.recv(100)
    except socket.timeout:
        early = b""
    t.eq(early, b"", "SLOW: message content is not read while saturated")
    with open(pfile, "w") as f:
        f.write("0")
    c.sock.settimeout(15.0)
    r = c.reply()
    t.ok(r.startswith("250 2.0.0 Ok: queued as"), "pressure gone: the message is read and queued", r)
    t.eq(len(h.wait_messages(1)), 1, "exactly one message was submitted")
    c.cmd("QUIT")
    c.close()
finally:
    if h:
        h.cleanup()
    shutil.rmtree(pdir, ignore_errors=True)
t.done()
