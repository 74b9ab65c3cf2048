"""smtp_relay.py - the SMTP client against aiosmtpd and smtp-sink: per
recipient sent/deferred/bounced with Postfix's exact log lines, connection
refused, connection reuse, MAIL/DATA rejection, SIZE, loop detection,
dot-stuffing end to end."""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_testlib import (Tap, Server, Handler, harness, log_re, find_log, free_port)

t = Tap(16)

# 1-4: per-recipient answers.
h = Handler(rcpt={"grey@example.com": "450 4.2.0 <grey@example.com>: Recipient address rejected: Greylisted",
                  "gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"})
with Server(h) as srv:
    relay = "127.0.0.1[127.0.0.1]:%d" % srv.port
    said = "host 127.0.0.1[127.0.0.1] said: "
    rc, out, logs, res = harness(["[127.0.0.1]:%d" % srv.port, "ok@example.com=Orig@example.com",
                                  "grey@example.com", "gone@example.com"])
    t.ok(rc == 0 and res.get("ok@example.com", ("",))[0] == "sent"
         and res.get("grey@example.com", ("",))[0] == "deferred"
         and res.get("gone@example.com", ("",))[0] == "bounced", "per-recipient outcomes", out)
    t.ok(find_log(logs, log_re("smtp", "ok@example.com", relay, "2.0.0", "sent",
                               "250 2.0.0 Ok: queued as TESTQ1", orig="Orig@example.com")),
         "sent log line", out)
    t.ok(find_log(logs, log_re("smtp", "grey@example.com", relay, "4.2.0", "deferred",
                               said + "450 4.2.0 <grey@example.com>: Recipient address rejected: "
                               "Greylisted (in reply to RCPT TO command)")), "deferred log line", out)
    t.ok(find_log(logs, log_re("smtp", "gone@example.com", relay, "5.1.1", "bounced",
                               said + "550 5.1.1 <gone@example.com>: Recipient address rejected: "
                               "User unknown (in reply to RCPT TO command)")), "bounced log line", out)

# 5: connection refused.
port = free_port()
rc, out, logs, res = harness(["[127.0.0.1]:%d" % port, "a@example.com"])
t.ok(find_log(logs, log_re("smtp", "a@example.com", "none", "4.4.1", "deferred",
                           "connect to 127.0.0.1[127.0.0.1]:%d: Connection refused" % port))
     and "site_failed=1" in out and "result relay=none" in out,
     "connection refused: deferred, relay=none, site_failed", out)

# 6-7: connection reuse: three requests, one session.
h = Handler()
with Server(h) as srv:
    rc, out, logs, res = harness(["-n", "3", "[127.0.0.1]:%d" % srv.port, "a@example.com"])
    t.ok(len(h.messages) == 3 and h.ehlos == 1, "three messages over one connection",
         "messages=%d ehlos=%d\n%s" % (len(h.messages), h.ehlos, out))
    relay = "127.0.0.1[127.0.0.1]:%d" % srv.port
    t.ok(find_log(logs, log_re("smtp", "a@example.com", relay, "2.0.0", "sent",
                               "250 2.0.0 Ok: queued as TESTQ1", conn_use=3)),
         "conn_use=3 on the third delivery", out)

# 8: cache time limit: after it, a new connection (the idle one is closed).
h = Handler()
with Server(h) as srv:
    rc, out, logs, res = harness(["-n", "2", "-o", "smtp_connection_cache_on_demand=no",
                                  "[127.0.0.1]:%d" % srv.port, "a@example.com"])
    t.ok(len(h.messages) == 2 and h.ehlos == 2, "cache off: one connection per request",
         "ehlos=%d\n%s" % (h.ehlos, out))

# 9: dot-stuffing and content arrive intact.
with tempfile.TemporaryDirectory() as tmp:
    body = "Subject: dots\n\n.leading dot\n..two dots\n.\nlast\n"
    path = os.path.join(tmp, "msg")
    with open(path, "w") as f:
        f.write(body)
    h = Handler()
    with Server(h) as srv:
        rc, out, logs, res = harness(["-i", path, "[127.0.0.1]:%d" % srv.port, "a@example.com"])
    got = h.messages[0][2].replace(b"\r\n", b"\n").decode() if h.messages else ""
    t.ok(got == body, "dot-stuffed content arrives unchanged", repr(got))

# 10: SIZE: the server's limit is honoured before MAIL FROM.
h = Handler()
with Server(h, data_size_limit=50) as srv:
    rc, out, logs, res = harness(["[127.0.0.1]:%d" % srv.port, "a@example.com"])
    t.ok(res.get("a@example.com", ("",))[0] == "bounced" and not h.messages
         and find_log(logs, log_re("smtp", "a@example.com", "127.0.0.1[127.0.0.1]:%d" % srv.port,
                                   "5.3.4", "bounced", "message size %d exceeds size limit 50 of "
                                   "server 127.0.0.1[127.0.0.1]" % len(
                                       "From: <sender@example.org>\r\nTo: <a@example.com>\r\n"
                                       "Subject: harness test\r\n\r\nHello from the smtp harness.\r\n"))),
         "SIZE limit: bounced 5.3.4 with Postfix's text", out)

# 11: loops back to myself.
h = Handler()
with Server(h, server_hostname="me.example.org") as srv:
    rc, out, logs, res = harness(["-o", "myhostname=me.example.org",
                                  "[127.0.0.1]:%d" % srv.port, "a@example.com"])
    t.ok(find_log(logs, log_re("smtp", "a@example.com", "127.0.0.1[127.0.0.1]:%d" % srv.port,
                               "5.4.6", "bounced", "mail for 127.0.0.1 loops back to myself"))
         and not h.messages, "loops back to myself: bounced 5.4.6", out)

# 12-16: smtp-sink answering with configured errors.
def sink(opts):
    port = free_port()
    p = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody"] + opts + ["127.0.0.1:%d" % port, "10"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    import socket
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port

for opts, name, check in [
        ([], "smtp-sink: sent",
         lambda logs, port: find_log(logs, log_re("smtp", "a@example.com", "127.0.0.1[127.0.0.1]:%d" % port,
                                                  "2.0.0", "sent", "250 2.0.0 Ok"))),
        (["-f", "MAIL"], "smtp-sink rejects MAIL: all bounced",
         lambda logs, port: all(find_log(logs, log_re("smtp", r, "127.0.0.1[127.0.0.1]:%d" % port, "5.3.0",
                                                      "bounced", "host 127.0.0.1[127.0.0.1] said: 500 5.3.0 "
                                                      "Error: command failed (in reply to MAIL FROM command)"))
                                for r in ("a@example.com", "b@example.com"))),
        (["-r", "RCPT"], "smtp-sink soft-rejects RCPT: deferred",
         lambda logs, port: find_log(logs, log_re("smtp", "a@example.com", "127.0.0.1[127.0.0.1]:%d" % port,
                                                  "4.3.0", "deferred", "host 127.0.0.1[127.0.0.1] said: 450 4.3.0 "
                                                  "Error: command failed (in reply to RCPT TO command)"))),
        (["-f", "DATA"], "smtp-sink rejects DATA: bounced",
         lambda logs, port: find_log(logs, log_re("smtp", "b@example.com", "127.0.0.1[127.0.0.1]:%d" % port,
                                                  "5.3.0", "bounced", "host 127.0.0.1[127.0.0.1] said: 500 5.3.0 "
                                                  "Error: command failed (in reply to DATA command)"))),
        (["-q", "RCPT"], "smtp-sink hangs up at RCPT: deferred, lost connection",
         lambda logs, port: find_log(logs, log_re("smtp", "a@example.com", "127.0.0.1[127.0.0.1]:%d" % port,
                                                  "4.4.2", "deferred", "lost connection with 127.0.0.1[127.0.0.1] "
                                                  "while sending RCPT TO"))),
]:
    p, port = sink(opts)
    try:
        rc, out, logs, res = harness(["[127.0.0.1]:%d" % port, "a@example.com", "b@example.com"])
        t.ok(check(logs, port), name, out)
    finally:
        p.kill()
        p.wait()

t.done()
