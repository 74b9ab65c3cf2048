"""pipe(8) end to end: a master.cf pipe service (flags=DRhuF, user=, argv=
with every macro) routed by transport_maps; the command is a script that
writes its argv, uid and stdin to a file and exits as the recipient asks:
0 sent, 75 deferred, 1 bounced with its output, 67 bounced 5.1.1. Two
recipients in one message get one command each (${recipient} convention).
A service with a bad user= is refused and its mail stays queued."""
import atexit
import os
import pwd
import re
import shutil
import smtplib
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import DEFAULT_SERVICES, Instance, Tap, wait_for  # noqa: E402

tap = Tap()
SENDER = "Sender@Sluice.test"


def send(port, rcpts, body="Subject: piped\r\n\r\nline one\r\n.dot line\r\nFrom here\r\n"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail(SENDER)
        for r in rcpts:
            code, _ = c.rcpt(r)
            assert code == 250, (r, code)
        code, text = c.data(body)
        assert code == 250, text
        return text.decode().split()[-1]


root = os.geteuid() == 0
run_as = "nobody" if root else pwd.getpwuid(os.geteuid()).pw_name
# The script and its output live outside the instance, readable by run_as.
work = tempfile.mkdtemp(prefix="sluice-pipe-")
atexit.register(shutil.rmtree, work, True)
os.chmod(work, 0o755)
outdir = os.path.join(work, "out")
os.makedirs(outdir)
os.chmod(outdir, 0o1777)
script = os.path.join(work, "pipe.sh")
with open(script, "w") as f:
    f.write("""#!/bin/sh
# argv: sender recipient nexthop user extension mailbox domain orig queue_id
out=%s/$4
printf '%%s\\n' "$@" > "$out.args"
id -u > "$out.uid"
cat > "$out.stdin"
case "$4" in
tempfail) echo "mailbox busy, try later"; exit 75;;
fail) echo "Sorry, no such mailbox here"; echo "second line"; exit 1;;
nouser) echo "who?" >&2; exit 67;;
esac
exit 0
""" % outdir)
os.chmod(script, 0o755)

master = DEFAULT_SERVICES + [
    "mypipe unix - n n - - pipe flags=DRhuF user=%s argv=%s ${sender} ${recipient} "
    "${nexthop} ${user} ${extension} ${mailbox} ${domain} ${original_recipient} ${queue_id}"
    % (run_as, script),
    "badpipe unix - n n - - pipe user=root argv=/bin/cat" if root
    else "badpipe unix - n n - - pipe user=nosuchuserhere argv=/bin/cat",
]
main = {"transport_maps": "inline:{ pipe.test=mypipe:Pipe.Test, bad.test=badpipe: }",
        "recipient_delimiter": "+"}
with Instance(main=main, master=master) as inst:
    inst.start()

    # 1. Sent, with macros expanded (h and u fold case) and D, R, F headers.
    q1 = send(inst.port, ["OK+Box@Pipe.test"])
    tap.ok(inst.wait_log(r"postfix/pipe\[\d+\]: %s: to=<OK\+Box@[Pp]ipe\.test>, relay=mypipe, "
                         r"delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, "
                         r"status=sent \(delivered via mypipe service\)" % q1),
           "log: relay=mypipe status=sent (delivered via mypipe service)")
    args = open(os.path.join(outdir, "ok.args")).read().splitlines()
    tap.eq(args, [SENDER, "ok+box@pipe.test", "pipe.test", "ok", "box", "ok+box", "pipe.test",
                  "ok+box@pipe.test", q1], "argv macros expanded (flags h, u fold case)")
    want_uid = str(pwd.getpwnam(run_as).pw_uid)
    tap.eq(open(os.path.join(outdir, "ok.uid")).read().strip(), want_uid,
           "command runs as user=%s" % run_as)
    stdin = open(os.path.join(outdir, "ok.stdin")).read()
    lines = stdin.split("\n")
    tap.ok(lines[0].startswith("From %s  " % SENDER) and lines[1] == "Return-Path: <%s>" % SENDER
           and lines[2].lower() == "delivered-to: ok+box@pipe.test" and "\r" not in stdin
           and "\n.dot line\n" in stdin and "\nFrom here\n" in stdin,
           "stdin: From_ line, Return-Path:, Delivered-To:, LF, no quoting without . and >",
           stdin[:400])

    # 2. Two recipients: one command each.
    q2 = send(inst.port, ["one@pipe.test", "two@pipe.test"])
    for r in ("one", "two"):
        inst.wait_log(r"%s: to=<%s@pipe\.test>, relay=mypipe, .*status=sent" % (q2, r))
    tap.ok(open(os.path.join(outdir, "one.args")).read().splitlines()[1] == "one@pipe.test"
           and open(os.path.join(outdir, "two.args")).read().splitlines()[1] == "two@pipe.test",
           "one command per recipient when argv has ${recipient}")

    # 3. Exit 75: deferred with the output.
    q3 = send(inst.port, ["tempfail@pipe.test"])
    tap.ok(inst.wait_log(r"%s: to=<tempfail@pipe\.test>, relay=mypipe, .*dsn=4\.3\.0, "
                         r"status=deferred \(temporary failure\. Command output: mailbox busy, "
                         r"try later\)" % q3), "exit 75 (EX_TEMPFAIL): deferred 4.3.0 with the output")
    r = inst.cmd("postqueue", "-p")
    tap.ok(q3 in r.stdout, "the deferred message is still queued", r.stdout + r.stderr)

    # 4. Exit 1: bounced with the first output line.
    q4 = send(inst.port, ["fail@pipe.test"])
    tap.ok(inst.wait_log(r"%s: to=<fail@pipe\.test>, relay=mypipe, .*dsn=5\.3\.0, "
                         r"status=bounced \(Command died with status 1: \"%s\"\. Command output: "
                         r"Sorry, no such mailbox here\)" % (q4, re.escape(script))),
           "exit 1: bounced 5.3.0 with the command's output")

    # 5. Exit 67 (EX_NOUSER): bounced 5.1.1.
    q5 = send(inst.port, ["nouser@pipe.test"])
    tap.ok(inst.wait_log(r"%s: to=<nouser@pipe\.test>, relay=mypipe, .*dsn=5\.1\.1, "
                         r"status=bounced \(user unknown\. Command output: who\?\)" % q5),
           "exit 67 (EX_NOUSER): bounced 5.1.1")

    # 6. A pipe service with bad privileges is refused; its mail waits.
    tap.ok(inst.wait_log(r"warning: master\.cf service badpipe: pipe: user"),
           "badpipe refused at start (%s)" % ("user=root" if root else "foreign user"))
    q6 = send(inst.port, ["x@bad.test"])
    wait_for(lambda: q6 in inst.log(), 10, "q6 in log")
    r = inst.cmd("postqueue", "-p")
    tap.ok(q6 in r.stdout and not os.path.exists(os.path.join(outdir, "x.args")),
           "mail for the refused service stays queued", r.stdout)

tap.done()
