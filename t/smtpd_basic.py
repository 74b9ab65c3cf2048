#!/usr/bin/python3
"""smtpd_basic.py - smtpd with real clients: swaks (every EHLO extension,
pipelining), Python smtplib (DSN, 8BITMIME, SMTPUTF8, many messages per
session), pipelined batches and BDAT over a raw socket, Postfix log lines."""
import os
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_lib import Harness, Client, Tap, wait_for  # noqa: E402

t = Tap(15)
h = Harness()
try:
    # swaks: one message, every extension advertised.
    r = subprocess.run(["swaks", "-t", "user@example.com", "-f", "sender@example.org",
                        "--server", "127.0.0.1:%d" % h.port, "--pipeline",
                        "--body", "hello from swaks"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0, "swaks delivers a message with --pipeline", r.stdout + r.stderr)
    for ext in ["PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "ENHANCEDSTATUSCODES",
                "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]:
        if ("250-" + ext) not in r.stdout and ("250 " + ext) not in r.stdout:
            break
    else:
        ext = None
    t.ok(ext is None, "EHLO advertises every extension (missing: %s)" % ext, r.stdout)
    t.ok("STARTTLS" not in r.stdout, "no STARTTLS without a certificate")
    msgs = h.wait_messages(1)
    t.ok(len(msgs) == 1 and msgs[0][0]["sender"] == "<sender@example.org>"
         and msgs[0][0]["rcpt"][0].startswith("<user@example.com>")
         and b"hello from swaks\r\n" in msgs[0][1], "the message and envelope are stored",
         msgs)
    qid = msgs[0][0]["id"]
    t.ok(h.wait_log("%s: client=localhost[127.0.0.1]" % qid)
         and h.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"),
         "Postfix log lines: connect, client=, disconnect with counts", h.logtext())

    # smtplib: DSN, 8BITMIME, SMTPUTF8 and several messages in one session.
    s = smtplib.SMTP("127.0.0.1", h.port, timeout=10)
    s.ehlo("smtplib.example")
    s.sendmail("dsn@example.org", ["r1@example.com", "r2@example.com"],
               b"Subject: dsn\r\n\r\n8bit \xc3\xa9\r\n",
               mail_options=["BODY=8BITMIME", "RET=HDRS", "ENVID=env+2Bid"],
               rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;orig+40example.com"])
    s.sendmail("j\u00e9@example.org", ["\u00fc@example.com"],
               "Subject: utf8\r\n\r\nunicode\r\n".encode(), mail_options=["SMTPUTF8"])
    for i in range(5):
        s.sendmail("batch@example.org", ["b%d@example.com" % i], "Subject: %d\r\n\r\nx\r\n" % i)
    s.quit()
    msgs = h.wait_messages(8)
    envs = {m[0]["sender"]: m for m in msgs}
    d = envs.get("<dsn@example.org>", ({}, b""))[0]
    t.ok(d.get("ret") == "2" and d.get("envid") == "env+id" and d.get("body") == "2"
         and d.get("rcpt", [""])[0] == "<r1@example.com> notify=10 orcpt=rfc822;orig@example.com",
         "DSN RET/ENVID/NOTIFY/ORCPT and BODY=8BITMIME kept in the envelope", d)
    u = envs.get("<j\u00e9@example.org>", ({}, b""))[0]
    t.ok(u.get("smtputf8") == "1" and u.get("rcpt", [""])[0].startswith("<\u00fc@example.com>"),
         "SMTPUTF8 addresses accepted and flagged", u)
    t.ok(len(msgs) == 8, "smtplib: seven messages in one session", len(msgs))

    # A pipelined batch: 20 transactions, each MAIL/RCPT/RCPT/DATA in one write.
    c = Client(h.port)
    c.cmd("EHLO batch.example")
    good = 0
    for i in range(20):
        c.send("MAIL FROM:<p%d@example.org>\r\nRCPT TO:<a%d@example.com>\r\n"
               "RCPT TO:<b%d@example.com>\r\nDATA\r\n" % (i, i, i))
        rs = [c.reply() for _ in range(4)]
        c.send("Subject: pipelined %d\r\n\r\n..dot-stuffed\r\n.\r\n" % i)
        end = c.reply()
        if rs == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                  "354 End data with <CR><LF>.<CR><LF>"] and end.startswith("250 2.0.0 Ok: queued as "):
            good += 1
    t.ok(good == 20, "20 pipelined transactions in one session", good)
    t.ok(c.cmd("QUIT") == "221 2.0.0 Bye" and c.closed(), "QUIT: 221 2.0.0 Bye and close")
    msgs = h.wait_messages(28)
    piped = [m for m in msgs if m[0]["sender"].startswith("<p")]
    t.ok(len(piped) == 20 and all(m[1].endswith(b"\r\n.dot-stuffed\r\n") for m in piped)
         and all(len(m[0]["rcpt"]) == 2 for m in piped),
         "pipelined messages stored unstuffed with both recipients", piped[:1])

    # BDAT (swaks has no CHUNKING): two chunks, binary-safe.
    c = Client(h.port)
    c.cmd("EHLO bdat.example")
    c.send("MAIL FROM:<bdat@example.org>\r\nRCPT TO:<x@example.com>\r\n")
    c.reply(), c.reply()
    c.send(b"BDAT 12\r\nSubject: b\r\n")
    r1 = c.reply()
    body = b"\r\nline one\r\nbin\x00ary\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(body) + body)
    r2 = c.reply()
    t.ok(r1 == "250 2.0.0 Ok: 12 bytes" and r2.startswith("250 2.0.0 Ok: queued as "),
         "BDAT chunks answered", (r1, r2))
    c.cmd("QUIT")
    msgs = h.wait_messages(29)
    b = [m for m in msgs if m[0]["sender"] == "<bdat@example.org>"]
    t.ok(b and b[0][1] == b"Subject: b\r\n" + body, "BDAT content stored byte for byte", b)
    t.ok(h.wait_log("bdat=2"), "disconnect line counts BDAT commands", h.logtext()[-2000:])
finally:
    rc = h.stop()
    t.ok(rc == 0, "harness stops cleanly", rc)
    h.cleanup()
t.done()
