"""Notices built by stages/bounce*.c (through t/bounce_tool), parsed with
Python's email package as a mail reader would: multipart/report with a
text/plain explanation, a message/delivery-status part whose per-message and
per-recipient field groups RFC 3464 defines, and the original returned as
message/rfc822 or text/rfc822-headers as DSN RET and bounce_size_limit say.
"""
import email
import email.policy
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import BUILD, Tap  # noqa: E402

TOOL = os.path.join(BUILD, "t", "bounce_tool")
ORIG = (b"From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: hello\n"
        b"Message-ID: <m1@example.org>\n\nbody line one\nbody line two\n")
REMOTE = ("host mx.example.net[192.0.2.1] said: 550 5.1.1 <bob@example.net>: Recipient "
          "address rejected: User unknown (in reply to RCPT TO command)")

tap = Tap()


def notices(args, rcpts, original=ORIG):
    """Runs bounce_tool; returns [(what, sender, rcpt, Message)]."""
    r = subprocess.run([TOOL] + args + rcpts, input=original, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.decode())
    out, data = [], r.stdout
    while data:
        line, _, data = data.partition(b"\n")
        what, sender, rcpt, length = line[len(b"NOTICE "):].decode().split("|")
        body, data = data[:int(length)], data[int(length):]
        out.append((what, sender, rcpt, body,
                    email.message_from_bytes(body, policy=email.policy.default)))
    return out


def report_parts(msg):
    parts = msg.get_payload()
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def groups(status_part):
    """The field groups of a message/delivery-status part."""
    return status_part.get_payload()


# 1. A bounce, default RET: the whole report, parsed.
ns = notices(["-f", "alice@example.org", "-E", "ENV42"],
             ["bob@example.net||5.1.1|" + REMOTE + "|rfc822;bob@example.net",
              "carol@example.net|SUCCESS"])
tap.eq(len(ns), 1, "one notice for a failure")
what, sender, rcpt, raw, msg = ns[0]
tap.eq((what, sender, rcpt), ("sender non-delivery notification", "", "alice@example.org"),
       "null sender, to the original sender")
tap.eq(msg.get_content_type(), "multipart/report", "Content-Type is multipart/report")
tap.eq(msg.get_param("report-type"), "delivery-status", "report-type=delivery-status")
tap.eq(str(msg["Subject"]), "Undelivered Mail Returned to Sender", "Postfix's subject")
tap.ok(b"\r\nFrom: MAILER-DAEMON@mail.example.com (Mail Delivery System)\r\n" in raw
       and msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mail.example.com",
       "From: MAILER-DAEMON@host (Mail Delivery System)")
tap.eq(str(msg["Auto-Submitted"]), "auto-replied", "Auto-Submitted: auto-replied")
tap.ok(not msg.defects, "no MIME defects", msg.defects)
text, status, original = report_parts(msg)
tap.eq(text.get_content_type(), "text/plain", "part 1 is text/plain")
body = text.get_content().replace("\r\n", "\n")
tap.ok("This is the mail system at host mail.example.com." in body
       and "could not\nbe delivered to one or more recipients" in body,
       "Postfix's explanation", body)
tap.ok("<bob@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1" in body,
       "the recipient and the remote reply in the text", body)
tap.ok("carol" not in raw.decode(), "a recipient that asked NOTIFY=SUCCESS is not in it")
tap.eq(status.get_content_type(), "message/delivery-status", "part 2 is message/delivery-status")
g = groups(status)
tap.eq(len(g), 2, "per-message group and one recipient group")
tap.eq((g[0]["Original-Envelope-Id"], g[0]["Reporting-MTA"], g[0]["X-Postfix-Queue-ID"],
        g[0]["X-Postfix-Sender"]),
       ("ENV42", "dns; mail.example.com", "4ABCDEF01", "rfc822; alice@example.org"),
       "per-message fields: ENVID, Reporting-MTA, queue ID, sender")
tap.ok(email.utils.parsedate_to_datetime(g[0]["Arrival-Date"]) is not None, "Arrival-Date parses")
r = g[1]
tap.eq((r["Final-Recipient"], r["Original-Recipient"], r["Action"], r["Status"],
        r["Remote-MTA"]),
       ("rfc822; bob@example.net", "rfc822;bob@example.net", "failed", "5.1.1",
        "dns; mx.example.net"),
       "Final-Recipient, Original-Recipient, Action, Status, Remote-MTA")
tap.eq(r["Diagnostic-Code"], "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: "
       "User unknown", "Diagnostic-Code: smtp; the reply")
tap.ok(email.utils.parsedate_to_datetime(r["Last-Attempt-Date"]) is not None,
       "Last-Attempt-Date parses")
tap.eq(original.get_content_type(), "message/rfc822", "part 3: the original as message/rfc822")
inner = original.get_payload()[0]
tap.eq((str(inner["Subject"]), str(inner["Message-ID"])), ("hello", "<m1@example.org>"),
       "the original's headers")
tap.ok("body line two" in inner.get_content(), "and its body")

# 2. RET=HDRS: only the headers, as text/rfc822-headers.
_, _, _, raw, msg = notices(["-f", "alice@example.org", "-R", "hdrs"], ["bob@example.net"])[0]
_, _, original = report_parts(msg)
tap.eq(original.get_content_type(), "text/rfc822-headers", "RET=HDRS: text/rfc822-headers")
tap.ok(b"Subject: hello" in raw and b"body line one" not in raw, "headers without the body")

# 3. Larger than bounce_size_limit: headers only even with RET=FULL.
_, _, _, raw, msg = notices(["-f", "alice@example.org", "-R", "full", "-l", "40"],
                            ["bob@example.net"])[0]
tap.ok(report_parts(msg)[2].get_content_type() == "text/rfc822-headers"
       and b"body line one" not in raw, "over bounce_size_limit: headers only")

# 4. NOTIFY=NEVER, and NOTIFY without FAILURE: no notice.
tap.eq(notices(["-f", "alice@example.org"], ["bob@example.net|NEVER"]), [],
       "NOTIFY=NEVER: no failure notice")
tap.eq(notices(["-f", "alice@example.org"], ["bob@example.net|SUCCESS,DELAY"]), [],
       "NOTIFY=SUCCESS,DELAY: no failure notice")

# 5. Delay: NOTIFY=DELAY or none, not NOTIFY=FAILURE.
ns = notices(["-k", "delay", "-f", "alice@example.org"],
             ["bob@example.net|DELAY|4.4.1|connect to mx[192.0.2.1]:25: Connection refused",
              "carol@example.net|FAILURE|4.4.1|x", "dave@example.net||4.2.0|y"])
tap.eq(len(ns), 1, "one delay notice")
_, _, _, raw, msg = ns[0]
tap.eq(str(msg["Subject"]), "Delayed Mail (still being retried)", "delay subject")
g = groups(report_parts(msg)[1])
tap.eq([x["Final-Recipient"] for x in g[1:]], ["rfc822; bob@example.net", "rfc822; dave@example.net"],
       "NOTIFY=DELAY and no NOTIFY are warned, NOTIFY=FAILURE is not")
tap.eq((g[1]["Action"], g[1]["Status"], g[1]["Diagnostic-Code"]),
       ("delayed", "4.4.1", "X-Postfix; connect to mx[192.0.2.1]:25: Connection refused"),
       "Action: delayed with the local reason")
tap.ok(email.utils.parsedate_to_datetime(g[1]["Will-Retry-Until"]) is not None,
       "Will-Retry-Until parses")
tap.eq(report_parts(msg)[2].get_content_type(), "text/rfc822-headers", "delay: headers only")

# 6. Success: only NOTIFY=SUCCESS.
tap.eq(notices(["-k", "success", "-f", "alice@example.org"], ["bob@example.net||2.0.0|250 ok"]),
       [], "no NOTIFY: no success notice")
ns = notices(["-k", "success", "-f", "alice@example.org"],
             ["bob@example.net|SUCCESS|2.0.0|250 2.0.0 Ok: queued as X"])
_, _, _, raw, msg = ns[0]
g = groups(report_parts(msg)[1])
tap.eq((str(msg["Subject"]), ns[0][0], g[1]["Action"], g[1]["Status"]),
       ("Successful Mail Delivery Report", "sender delivery status notification", "relayed",
        "2.0.0"), "NOTIFY=SUCCESS: success report, Action: relayed")

# 7. The null sender: no notice; notify_classes=2bounce: postmaster only.
tap.eq(notices(["-f", ""], ["bob@example.net||5.1.1|x"]), [], "bounce of a bounce: nothing")
ns = notices(["-f", "", "-c", "2bounce"], ["bob@example.net||5.1.1|x"])
tap.eq([(w, s, r) for w, s, r, _, _ in ns],
       [("postmaster non-delivery notification", "double-bounce@example.com",
         "postmaster@example.com")], "notify_classes=2bounce: to the postmaster")
tap.eq(notices(["-f", "double-bounce@example.com", "-c", "2bounce,bounce"],
               ["postmaster@example.com||5.1.1|x"]), [],
       "a failed postmaster notice is dropped")

# 8. SMTPUTF8: message/global-delivery-status, still a valid report.
_, _, _, raw, msg = notices(["-u", "-f", "alice@example.org"],
                            ["b\u00f6b@example.net||5.1.1|x"], original=ORIG)[0]
tap.ok(msg.get_content_type() == "multipart/report"
       and report_parts(msg)[1].get_content_type() == "message/global-delivery-status",
       "SMTPUTF8: message/global-delivery-status")

# 9. Hostile reasons cannot add fields or parts.
_, _, _, raw, msg = notices(["-f", "alice@example.org", "-E", "a\r\nSubject: x"],
                            ["bob@example.net||5.1.1|550 no\r\nAction: delivered\r\n\r\n--x"])[0]
g = groups(report_parts(msg)[1])
tap.eq((len(g), g[1].get_all("Action"), len(msg.get_payload())), (2, ["failed"], 3),
       "CR/LF in a reason or ENVID stays inside its field")
tap.done()
