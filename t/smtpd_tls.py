#!/usr/bin/python3
"""smtpd_tls.py - STARTTLS with a certificate made at test time: swaks
--tls, the plaintext-injection defence (commands pipelined after STARTTLS
are discarded), the session reset after the handshake, and
smtpd_tls_security_level = encrypt."""
import os
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_lib import Harness, Client, Tap  # noqa: E402

t = Tap(11)
import tempfile  # noqa: E402
certdir = tempfile.mkdtemp(prefix="smtpd-tls-")
cert, key = os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
               check=True, capture_output=True)
ctx = ssl.create_default_context(cafile=cert)
ctx.check_hostname = False


def starttls(c):
    """Handshake on c's socket; returns a Client-like object over TLS."""
    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
    return c


h = Harness({"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cert,
             "smtpd_tls_key_file": key})
try:
    r = subprocess.run(["swaks", "-t", "user@example.com", "-f", "tls@example.org",
                        "--server", "127.0.0.1:%d" % h.port, "--tls"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and "250-STARTTLS" in r.stdout and "220 2.0.0 Ready to start TLS" in r.stdout,
         "swaks --tls: STARTTLS offered and used", r.stdout + r.stderr)
    msgs = h.wait_messages(1)
    t.ok(msgs and msgs[0][0]["protocol"] == "ESMTPS", "message received over TLS has protocol ESMTPS", msgs)
    t.ok(h.wait_log("Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher"),
         "TLS log line as Postfix's", h.logtext())

    # Plaintext injection: commands pipelined after STARTTLS are discarded.
    c = Client(h.port)
    c.cmd("EHLO inject.example")
    c.cmd("MAIL FROM:<before@example.org>")
    c.send("STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.org>\r\n")
    r = c.reply()
    t.ok(r == "220 2.0.0 Ready to start TLS", "220 2.0.0 Ready to start TLS", r)
    t.ok(c.buf == b"", "nothing answered for the injected commands", c.buf)
    starttls(c)
    r = c.cmd("RCPT TO:<x@example.com>")
    t.ok(r == "503 5.5.1 Error: need MAIL command",
         "after the handshake: no MAIL from before TLS, none injected", r)
    e = c.cmd("EHLO inject.example")
    t.ok("STARTTLS" not in e and "250 CHUNKING" in e, "EHLO again; STARTTLS no longer offered", e)
    t.ok(c.cmd("STARTTLS") == "554 5.5.1 Error: TLS already active", "second STARTTLS refused")
    c.cmd("QUIT")
    c.close()
finally:
    h.cleanup()

h = Harness({"smtpd_tls_security_level": "encrypt", "smtpd_tls_cert_file": cert,
             "smtpd_tls_key_file": key})
try:
    c = Client(h.port)
    c.cmd("EHLO plain.example")
    t.ok(c.cmd("MAIL FROM:<a@example.org>") == "530 5.7.0 Must issue a STARTTLS command first",
         "encrypt: MAIL before STARTTLS refused")
    c.cmd("STARTTLS")
    starttls(c)
    c.cmd("EHLO plain.example")
    t.ok(c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok", "encrypt: MAIL after STARTTLS accepted")
    c.close()
finally:
    rc = h.stop()
    t.ok(rc == 0, "harness stops cleanly", rc)
    h.cleanup()
import shutil  # noqa: E402
shutil.rmtree(certdir, ignore_errors=True)
t.done()
