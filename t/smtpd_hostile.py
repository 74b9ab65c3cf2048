#!/usr/bin/python3
"""smtpd_hostile.py - hostile input over raw sockets: each SMTP smuggling
sequence (the harness must record ONE message), commands before the
greeting, a 1 MB command line, NUL bytes, 10 000 RCPTs, a message over
SIZE, a slow client against a short smtpd_timeout, RCPT before MAIL, DATA
without recipients."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_lib import Harness, Client, Tap, wait_for  # noqa: E402

SEQUENCES = [("LF.LF", b"\n.\n"), ("LF.CRLF", b"\n.\r\n"), ("CR.CR", b"\r.\r"),
             ("CRLF.LF", b"\r\n.\n"), ("CR.CRLF", b"\r.\r\n")]

t = Tap(len(SEQUENCES) + 15)
h = Harness({"message_size_limit": "100000", "smtpd_timeout": "2s"})
try:
    for name, seq in SEQUENCES:
        before = len(h.messages())
        c = Client(h.port)
        c.cmd("EHLO smuggler.example")
        c.cmd("MAIL FROM:<a@example.org>")
        c.cmd("RCPT TO:<b@example.com>")
        c.cmd("DATA")
        c.send(b"Subject: first\r\n\r\nhello" + seq +
               b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
        r = c.reply()
        c.cmd("QUIT")
        c.close()
        msgs = h.wait_messages(before + 1)
        msgs = h.messages()
        new = msgs[before:]
        t.ok(r.startswith("250 2.0.0 Ok: queued as ") and len(new) == 1
             and b"Subject: smuggled" in new[0][1] and len(new[0][0]["rcpt"]) == 1,
             "smuggling with %s: one message, the rest is its content" % name, (r, new))

    # RCPT before MAIL, DATA without recipients.
    c = Client(h.port)
    c.cmd("EHLO x.example")
    t.ok(c.cmd("RCPT TO:<b@example.com>") == "503 5.5.1 Error: need MAIL command", "RCPT before MAIL")
    c.cmd("MAIL FROM:<a@example.org>")
    t.ok(c.cmd("DATA") == "554 5.5.1 Error: no valid recipients", "DATA without recipients")
    # NUL bytes.
    t.ok(c.cmd("NOOP\x00x") == "500 5.5.2 Error: bad syntax", "NUL byte in a command refused")
    # Over SIZE, declared and actual.
    t.ok(c.cmd("RSET") == "250 2.0.0 Ok", "RSET")
    t.ok(c.cmd("MAIL FROM:<a@example.org> SIZE=200000") == "552 5.3.4 Message size exceeds fixed limit",
         "MAIL with SIZE over message_size_limit")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    for _ in range(30):
        c.send(b"x" * 8190 + b"\r\n")
    c.send(b".\r\n")
    t.ok(c.reply() == "552 5.3.4 Message size exceeds fixed limit", "content over the limit: 552 5.3.4")
    # 1 MB command line.
    rss0 = h.stats()["rss_kb"]
    c.send(b"EHLO " + b"A" * (1024 * 1024) + b"\r\n")
    t.ok(c.reply() == "500 5.5.0 Error: line too long", "1 MB command line: 500 5.5.0")
    rss1 = h.stats()["rss_kb"]
    t.ok(rss1 - rss0 < 2048, "no memory growth from the long line (%d kB)" % (rss1 - rss0))
    t.ok(c.cmd("NOOP") == "250 2.0.0 Ok", "the session goes on after the long line")
    c.close()

    # 10 000 RCPTs in one pipelined write.
    c = Client(h.port)
    c.cmd("EHLO many.example")
    c.cmd("MAIL FROM:<a@example.org>")
    c.send("".join("RCPT TO:<u%d@example.com>\r\n" % i for i in range(10000)))
    counts = {}
    last = None
    try:
        while True:
            last = c.reply()
            counts[last] = counts.get(last, 0) + 1
            if last.startswith("421"):
                break
    except (EOFError, ConnectionResetError):
        pass
    t.ok(counts.get("250 2.1.5 Ok") == 1000 and counts.get("452 4.5.3 Error: too many recipients", 0) >= 1000
         and last == "421 4.7.0 mx.test Error: too many errors",
         "10 000 RCPTs: 1000 accepted, then 452 4.5.3, then 421", (counts, last))
    c.close()
    t.ok(h.wait_log("too many errors after RCPT from localhost[127.0.0.1]"), "logged: too many errors")

    # A slow client: one byte, then silence longer than smtpd_timeout=2s.
    c = Client(h.port)
    start = time.monotonic()
    c.send(b"E")
    got = None
    try:
        got = c.reply()
    except EOFError:
        pass
    took = time.monotonic() - start
    t.ok(got == "421 4.4.2 mx.test Error: timeout exceeded" and c.closed() and 1.5 < took < 6,
         "slow client timed out with 421 4.4.2 (%.1fs)" % took, got)
    t.ok(h.wait_log("timeout after CONNECT from localhost[127.0.0.1]"), "logged: timeout after CONNECT")
finally:
    h.cleanup()

# Commands before the greeting: connect and send before smtpd accepts.
h = Harness(wait_stdin=True)
try:
    c = Client(h.port, greet=False)
    c.send("EHLO early.example\r\n")
    h.release()
    r = c.reply()
    t.ok(r == "554 5.5.0 Error: SMTP protocol synchronization" and c.closed(),
         "commands before the greeting: 554 5.5.0 and close", r)
    t.ok(h.wait_log("improper command pipelining after CONNECT from localhost[127.0.0.1]: EHLO early.example"),
         "logged: improper command pipelining after CONNECT", h.logtext())
finally:
    h.cleanup()
t.done()
