"""Local submission end to end: sendmail run as an unprivileged user (nobody)
-> postdrop -> maildrop/ -> pickup -> cleanup -> journal -> smtp -> an
aiosmtpd sink. Checks the envelope and headers the sink receives (-f, the
default sender, -F, -t with Bcc: removed, -i and the "." line), sendmail's
exit statuses, mail dropped while the engine is stopped, a malformed
maildrop file moved aside, postdrop refusing a bad stream, and sendmail -bs.
Needs root to switch to the unprivileged user; skips otherwise."""
import os
import pwd
import re
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import BUILD, DEFAULT_SERVICES, Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

if os.geteuid() != 0:
    print("1..0 # SKIP needs root to run sendmail as an unprivileged user")
    sys.exit(0)

NOBODY = pwd.getpwnam("nobody")
tap = Tap()
SENDMAIL = os.path.join(BUILD, "cli", "sendmail")
POSTDROP = os.path.join(BUILD, "cli", "postdrop")


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)


def sendmail(inst, args, text, user=True, env=None):
    e = inst.env()
    e.pop("NAME", None)
    e.update(env or {})
    return subprocess.run([SENDMAIL] + args, input=text.encode() if isinstance(text, str) else text,
                          capture_output=True, env=e, timeout=60,
                          preexec_fn=as_nobody if user else None)


def by_subject(handler, subject, timeout=20):
    def find():
        for m in handler.messages:
            if re.search(rb"^Subject: " + re.escape(subject.encode()) + rb"\r?$", m[2], re.M):
                return m
        return None
    try:
        return wait_for(find, timeout, "message %r at the sink" % subject)
    except TimeoutError:
        return None


def empty(directory):
    """True once the directory holds no file (pickup removes them shortly
    after the journal has the message)."""
    try:
        return wait_for(lambda: os.listdir(directory) == [], 10, directory + " empty")
    except TimeoutError:
        return False


def headers(content):
    return content.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in content else content.split(b"\n\n", 1)[0]


handler = Handler()
master = DEFAULT_SERVICES + ["pickup unix n - n 60 1 pickup"]
with Server(handler) as sink, Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port},
                                       master=master) as inst:
    # The unprivileged user must read the configuration, as with /etc/postfix.
    os.chmod(inst.root, 0o755)
    os.chmod(inst.etc, 0o755)
    inst.start()
    maildrop = os.path.join(inst.spool, "maildrop")
    # SMTP may answer before the pickup component has made the directory.
    wait_for(lambda: os.path.isdir(maildrop), 10, "maildrop/")
    st = os.stat(maildrop)
    tap.eq(stat.S_IMODE(st.st_mode), 0o1733, "the engine created maildrop/ mode 1733 (embedded default)")

    # 1. -f, as nobody: the envelope, the uid in Received:.
    r = sendmail(inst, ["-f", "sender@example.org", "rcpt@example.com"],
                 "Subject: one\n\nhello\n")
    tap.eq((r.returncode, r.stderr), (0, b""), "sendmail as nobody exits 0")
    m = by_subject(handler, "one")
    tap.ok(m and (m[0], m[1]) == ("sender@example.org", ["rcpt@example.com"]),
           "the sink got the -f sender and the recipient", m and m[:2])
    tap.ok(m and re.search(rb"Received: by sluice\.test \(Sluice, from userid %d\)\r\n\s+id [0-9A-F]+;"
                           % NOBODY.pw_uid, m[2]),
           "Received: by sluice.test (Sluice, from userid N)", m and m[2][:300])
    tap.ok(m and b"\r\nhello\r\n" in m[2] and b"\r\r" not in m[2], "LF input became CRLF lines",
           m and m[2])
    tap.ok(inst.wait_log(r"postfix/pickup\[\d+\]: [0-9A-F]+: uid=%d from=<sender@example\.org>"
                         % NOBODY.pw_uid), "pickup logs ID: uid=N from=<sender>")
    tap.ok(empty(maildrop), "the maildrop file is removed once queued", os.listdir(maildrop))

    # 2. Default sender (the login name @myorigin), -F for a missing From:.
    r = sendmail(inst, ["-F", "Full Name", "rcpt2@example.com"], "Subject: two\r\n\r\nbody\r\n")
    m = by_subject(handler, "two")
    tap.ok(r.returncode == 0 and m and m[0] == "nobody@sluice.test",
           "default sender is the login name at myorigin", (r, m and m[0]))
    tap.ok(m and re.search(rb"^From: Full Name <nobody@sluice\.test>\r?$", m[2], re.M),
           "-F gives From: Full Name <user@myorigin>", m and headers(m[2]))
    tap.ok(m and b"\r\nbody\r\n" in m[2] and b"\r\r" not in m[2], "CRLF input is not doubled")

    # 3. -t: recipients from To:, Cc:, Bcc:; Bcc: removed; plus the command line.
    r = sendmail(inst, ["-t", "extra@example.com"],
                 "From: me@example.org\nTo: a@example.com\nCc: B <b@example.com>\n"
                 "Bcc: c@example.com\nSubject: three\n\nsecret list\n")
    m = by_subject(handler, "three")
    tap.ok(r.returncode == 0 and m and sorted(m[1]) == ["a@example.com", "b@example.com",
                                                        "c@example.com", "extra@example.com"],
           "-t: To, Cc, Bcc and command-line recipients", m and m[1])
    tap.ok(m and not re.search(rb"^Bcc:", m[2], re.M | re.I), "-t: the Bcc: header is removed",
           m and headers(m[2]))
    tap.ok(m and re.search(rb"^To: a@example\.com\r?$", m[2], re.M), "-t: To: header kept")

    # 4. "." handling: ends input by default, not with -i / -oi.
    sendmail(inst, ["r@example.com"], "Subject: four\n\nbefore\n.\nafter\n")
    m = by_subject(handler, "four")
    tap.ok(m and b"before" in m[2] and b"after" not in m[2], "a \".\" line ends the input",
           m and m[2])
    for opt, subj in (("-i", "five"), ("-oi", "six")):
        sendmail(inst, [opt, "r@example.com"], "Subject: %s\n\nbefore\n.\n..\nafter\n" % subj)
        m = by_subject(handler, subj)
        tap.ok(m and re.search(rb"before\r\n\.\r\n\.\.\r\nafter\r\n", m[2]),
               "%s: \".\" and \"..\" lines are kept as they are" % opt, m and m[2])

    # 5. Exit statuses as Postfix's sendmail.
    r = sendmail(inst, [], "Subject: x\n\nx\n")
    tap.ok(r.returncode == 64 and b"Recipient addresses must be specified" in r.stderr,
           "no recipients: EX_USAGE (64) and Postfix's message", r)
    r = sendmail(inst, ["-t"], "Subject: x\n\nno recipients here\n")
    tap.ok(r.returncode == 64 and b"No recipient addresses found in message header" in r.stderr,
           "-t without recipient headers: EX_USAGE (64)", r)
    r = sendmail(inst, ["-J", "r@example.com"], "x\n")
    tap.eq(r.returncode, 64, "an unknown option: EX_USAGE (64)")
    # -bv works (t/sendmail_verify.py); the null sender gets no report.
    r = sendmail(inst, ["-bv", "-f", "<>", "r@example.com"], "")
    tap.eq((r.returncode, r.stdout), (0, b"Mail Delivery Status Report will be mailed to <>.\n"),
           "-bv: queued as a probe, exit 0")
    r = subprocess.run([SENDMAIL, "-C", os.path.join(inst.etc, "main.cf"), "-f", "c@example.org",
                        "r@example.com"], input=b"Subject: seven\n\n-C main.cf\n",
                       capture_output=True, timeout=60, preexec_fn=as_nobody,
                       env={"PATH": "/usr/bin:/bin"})
    tap.ok(r.returncode == 0 and by_subject(handler, "seven"),
           "-C path/main.cf selects the configuration (no MAIL_CONFIG)", r)
    r = sendmail(inst, ["-f", "<>", "r@example.com"], "Subject: eight\n\nnull sender\n")
    m = by_subject(handler, "eight")
    tap.ok(m and m[0] in ("", "<>"), "-f '<>' is the null sender", m and m[0])

    # 6. postdrop checks what it is given; nothing is left behind.
    e = inst.env()
    r = subprocess.run([POSTDROP], input=b"From: not a maildrop stream\n", capture_output=True,
                       env=e, timeout=60, preexec_fn=as_nobody)
    tap.ok(r.returncode == 65 and b"malformed input" in r.stderr,
           "postdrop refuses a malformed stream with EX_DATAERR (65)", r)
    tap.ok(empty(maildrop), "and leaves no file in maildrop/", os.listdir(maildrop))

    # 7. sendmail -bs: an SMTP dialogue on stdin/stdout.
    dialogue = ("EHLO client.test\r\nMAIL FROM:<bs@example.org>\r\nRCPT TO:<bs@example.com>\r\n"
                "DATA\r\nSubject: nine\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n")
    r = sendmail(inst, ["-bs"], dialogue)
    out = r.stdout.decode(errors="replace")
    tap.ok(r.returncode == 0 and out.startswith("220 ") and re.search(r"^250 2\.0\.0 Ok: queued as ", out, re.M)
           and "221 " in out, "-bs speaks SMTP on stdin/stdout", out)
    m = by_subject(handler, "nine")
    tap.ok(m and (m[0], m[1]) == ("bs@example.org", ["bs@example.com"]), "-bs message delivered",
           m and m[:2])

    # 8. A malformed maildrop file is moved aside, with a warning; pickup goes on.
    # (Written under a dot name and renamed in, as postdrop does.)
    bad = os.path.join(maildrop, "BADFILE0001")
    with open(os.path.join(maildrop, ".tmp.bad"), "wb") as f:
        f.write(b"SLUICE-MAILDROP 1\nS\x00\x00\x00\x01aR\xff\xff\xff\xff")
    os.chown(os.path.join(maildrop, ".tmp.bad"), NOBODY.pw_uid, NOBODY.pw_gid)
    os.rename(os.path.join(maildrop, ".tmp.bad"), bad)
    tap.ok(inst.wait_log(r"postfix/pickup\[\d+\]: warning: maildrop/BADFILE0001: uid=%d: malformed file: "
                         r".*exceeds the limit.*; moved to corrupt/BADFILE0001" % NOBODY.pw_uid),
           "malformed file: warning names the file, the uid and the reason")
    tap.ok(os.path.exists(os.path.join(inst.spool, "corrupt", "BADFILE0001"))
           and not os.path.exists(bad), "and it is moved to corrupt/")
    os.symlink("/etc/passwd", os.path.join(maildrop, ".tmp.link"))
    os.rename(os.path.join(maildrop, ".tmp.link"), os.path.join(maildrop, "LINK0001"))
    tap.ok(inst.wait_log(r"warning: maildrop/LINK0001: uid=-1: symbolic link; moved to corrupt/"),
           "a symbolic link is not followed, moved aside")
    r = sendmail(inst, ["r@example.com"], "Subject: ten\n\nstill working\n")
    tap.ok(by_subject(handler, "ten"), "pickup still delivers after bad files")

    # 9. Mail submitted while the engine is stopped goes out when it starts.
    inst.stop()
    r = sendmail(inst, ["-f", "offline@example.org", "later@example.com"],
                 "Subject: eleven\n\nqueued while stopped\n")
    tap.eq(r.returncode, 0, "sendmail works while the engine is stopped")
    tap.eq(len(os.listdir(maildrop)), 1, "the message waits in maildrop/")
    tap.ok(not any(re.search(rb"^Subject: eleven", m[2], re.M) for m in handler.messages),
           "nothing is delivered while stopped")
    inst.start()
    m = by_subject(handler, "eleven")
    tap.ok(m and (m[0], m[1]) == ("offline@example.org", ["later@example.com"]),
           "delivered after the engine starts", m and m[:2])
    tap.ok(empty(maildrop), "maildrop/ is empty again", os.listdir(maildrop))

# Without a maildrop (the engine never ran), sendmail says so: EX_TEMPFAIL.
with Instance(master=master) as inst:
    os.chmod(inst.root, 0o755)
    os.chmod(inst.etc, 0o755)
    r = sendmail(inst, ["r@example.com"], "Subject: x\n\nx\n")
    tap.ok(r.returncode == 75 and b"postdrop: fatal:" in r.stderr,
           "no maildrop yet: postdrop explains, sendmail exits EX_TEMPFAIL (75)", r)
tap.done()
