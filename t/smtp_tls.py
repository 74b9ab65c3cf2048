"""smtp_tls.py - STARTTLS per smtp_tls_security_level against aiosmtpd:
may (TLS used), verify (good name passes, wrong name defers with
"Server certificate not verified"), encrypt without STARTTLS offered."""
import os
import ssl
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_testlib import Tap, Server, Handler, harness, log_re, find_log, make_cert

t = Tap(5)
with tempfile.TemporaryDirectory() as tmp:
    crt, key = make_cert(tmp, "localhost")
    wrong_crt, wrong_key = make_cert(tmp, "wrong.example")

    def ctx(c, k):
        x = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        x.load_cert_chain(c, k)
        return x

    h = Handler()
    with Server(h, tls_context=ctx(crt, key)) as srv:
        rc, out, logs, res = harness(["-o", "smtp_tls_security_level=may",
                                      "[127.0.0.1]:%d" % srv.port, "a@example.com"])
        t.ok(res.get("a@example.com", ("",))[0] == "sent" and h.tls_used == [True],
             "may: delivered over TLS", out)
        h.tls_used.clear()
        rc, out, logs, res = harness(["-o", "smtp_tls_security_level=verify",
                                      "-o", "smtp_tls_CAfile=" + crt, "-o", "smtp_host_lookup=native",
                                      "-o", "smtp_tls_servername=hostname",
                                      "[localhost]:%d" % srv.port, "a@example.com"])
        t.ok(res.get("a@example.com", ("",))[0] == "sent" and h.tls_used == [True],
             "verify: certificate for the right name accepted", out)

    h = Handler()
    with Server(h, tls_context=ctx(wrong_crt, wrong_key)) as srv:
        rc, out, logs, res = harness(["-o", "smtp_tls_security_level=verify",
                                      "-o", "smtp_tls_CAfile=" + wrong_crt, "-o", "smtp_host_lookup=native",
                                      "[localhost]:%d" % srv.port, "a@example.com"])
        r = res.get("a@example.com", ("", "", ""))
        t.ok(r[0] == "deferred" and r[1] == "4.7.5" and "Server certificate not verified" in r[2]
             and not h.messages and "site_failed=1" in out,
             "verify: wrong name deferred, nothing sent", out)
        rc, out, logs, res = harness(["-o", "smtp_tls_security_level=may",
                                      "[127.0.0.1]:%d" % srv.port, "a@example.com"])
        t.ok(res.get("a@example.com", ("",))[0] == "sent" and h.tls_used == [True],
             "may: any certificate is fine", out)

    h = Handler()
    with Server(h) as srv:
        rc, out, logs, res = harness(["-o", "smtp_tls_security_level=encrypt",
                                      "[127.0.0.1]:%d" % srv.port, "a@example.com"])
        t.ok(find_log(logs, log_re("smtp", "a@example.com", "127.0.0.1[127.0.0.1]:%d" % srv.port,
                                   "4.7.4", "deferred", "TLS is required, but was not offered by host "
                                   "127.0.0.1[127.0.0.1]")) and not h.messages,
             "encrypt: STARTTLS not offered, deferred 4.7.4", out)
t.done()
