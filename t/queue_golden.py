"""queue_golden.py - helpers for the queue command tests (not a test).

normalise() replaces what changes from run to run in mailq/postcat output
(queue IDs, arrival times, ports) so the output compares to golden text;
send() submits one message over SMTP and returns its queue ID.
"""
import re
import smtplib


def normalise(text, ids=()):
    for i, qid in enumerate(ids):
        text = text.replace(qid, "ID%d" % (i + 1))
    text = re.sub(r"\b[0-9A-F]{10,16}\b", "ID", text)
    text = re.sub(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                  r" [ \d]\d \d\d:\d\d:\d\d( \d{4})?", "DATE", text)
    text = re.sub(r"127\.0\.0\.1\]:\d+", "127.0.0.1]:PORT", text)
    return text


def send(port, rcpts, sender="me@sluice.test", body="Subject: test\r\n\r\nhello\r\n"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail(sender)
        for r in rcpts:
            code, _ = c.rcpt(r)
            assert code == 250, (r, code)
        code, text = c.data(body)
        assert code == 250, text
        return text.decode().split()[-1]
