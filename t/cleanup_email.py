"""cleanup_email.py - the messages cleanup produces parse as RFC 5322 with
Python's email package: our Received: header, the added Message-Id:, Date:
and From:, address headers rewritten to canonical form, the body intact;
and a header section that ends in a non-header line still yields one
header section and one body. Prints TAP.

Runs t/cleanup_tool from $SLUICE_BUILDDIR.
"""
import email.policy
import email.utils
import os
import re
import subprocess
import sys
from email.parser import BytesParser

BUILD = os.environ.get("SLUICE_BUILDDIR", ".")
TOOL = os.path.join(BUILD, "t", "cleanup_tool")
results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


def body(msg):
    return msg.get_content().replace("\r\n", "\n")


def run(args, message):
    p = subprocess.run([TOOL] + args, input=message, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("cleanup_tool failed: %r" % p.stderr)
    return p.stdout, p.stderr.decode()


def main():
    out, err = run(["-l", "-f", "joe", "rcpt@remote.test"],
                   b"Subject: hello\nTo: friend, Other <o@remote.test>\n\nline one\n.dot line\n")
    msg = BytesParser(policy=email.policy.default).parsebytes(out)
    check("content is CRLF only", b"\n" not in out.replace(b"\r\n", b""))
    check("result ok", "result=0 " in err, err)
    rec = msg.get_all("Received") or []
    check("one Received header", len(rec) == 1, rec)
    check("Received names client, us and the queue id",
          rec and re.match(r"from helo\.test \(client\.test \[192\.0\.2\.10\]\)\s+"
                           r"by mail\.example\.com \(Sluice\) with ESMTP id 4TESTQID1\s+"
                           r"for <rcpt@remote\.test>; ", str(rec[0])), rec)
    check("Received is the first header", out.startswith(b"Received: "))
    mid = msg["Message-Id"]
    check("Message-Id added", mid and re.fullmatch(r"<\d{14}\.4TESTQID1@mail\.example\.com>",
                                                   str(mid)), mid)
    date = msg["Date"]
    check("Date added and parseable",
          date is not None and email.utils.parsedate_to_datetime(str(date)) is not None, date)
    check("From added from the envelope",
          msg["From"] is not None and msg["From"].addresses[0].addr_spec == "joe@example.com",
          msg["From"])
    to = [a.addr_spec for a in msg["To"].addresses]
    check("To rewritten to canonical form", to == ["friend@example.com", "o@remote.test"], to)
    check("Subject kept", str(msg["Subject"]) == "hello")
    check("body intact", body(msg) == "line one\n.dot line\n", repr(body(msg)))
    check("recipient resolved", "rcpt=rcpt@remote.test transport=smtp nexthop=remote.test" in err, err)

    out, err = run(["-f", "s@remote.test", "rcpt@example.com"],
                   b"not a header line\nSubject: x\n\nbody\n")
    msg = BytesParser(policy=email.policy.default).parsebytes(out)
    check("non-header line starts the body", body(msg).startswith("not a header line\nSubject: x\n"),
          repr(out))
    check("no Subject header from the body", msg["Subject"] is None)
    check("local recipient resolved",
          "rcpt=rcpt@example.com transport=local nexthop=mail.example.com" in err, err)

    out, err = run(["-l", "-t", "-f", "joe"],
                   b"To: a@remote.test\nBcc: hidden@remote.test\nSubject: t\n\nbody\n")
    msg = BytesParser(policy=email.policy.default).parsebytes(out)
    check("-t: Bcc removed", msg["Bcc"] is None and b"hidden" not in out)
    check("-t: recipients from headers",
          "rcpt=a@remote.test " in err and "rcpt=hidden@remote.test " in err, err)

    print("1..%d" % len(results))
    for i, (name, ok, detail) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
        if not ok:
            print("# %s" % (detail,))
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
