"""local(8) end to end: a real instance delivers to a throwaway system user
whose home is in the test's temp dir (the engine runs as root, so every
write for the user happens in a helper child with the user's uid):
Maildir (read back with mailbox.Maildir), mbox under mail_spool_directory
(read back with mailbox.mbox), aliases built with the built postalias
(address -> "forwarded as ID", |command with Postfix's environment, /file,
:include:), .forward with an extension and "\\user", loop detection through
Delivered-To:, unknown user bounce. Skips when not root (useradd)."""
import grp
import mailbox
import os
import pwd
import random
import re
import smtplib
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import DEFAULT_SERVICES, Instance, Tap, wait_for  # noqa: E402

if os.geteuid() != 0 or not os.path.exists("/usr/sbin/useradd"):
    print("1..0 # SKIP needs root and useradd (a throwaway system user)")
    sys.exit(0)

tap = Tap()
USER = "sltst%06d" % random.randrange(10 ** 6)
SENDER = "bounces@local.test"


def send(port, rcpts, body, sender=SENDER):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail(sender)
        for r in rcpts:
            code, _ = c.rcpt(r)
            assert code == 250, (r, code)
        code, text = c.data(body)
        assert code == 250, text
        return text.decode().split()[-1]


def msg(subject, extra_headers="", body="hello\r\nFrom the body\r\n"):
    return ("%sFrom: bounces@local.test\r\nTo: someone\r\nSubject: %s\r\n\r\n%s"
            % (extra_headers, subject, body))


def maildir_msgs(path):
    if not os.path.isdir(os.path.join(path, "new")):
        return []
    md = mailbox.Maildir(path, factory=None, create=False)
    return sorted(md, key=lambda m: m["Subject"] or "")


def subjects(path):
    return [m["Subject"] for m in maildir_msgs(path)]


def make_instance(main_extra):
    main = {
        "mydestination": "$myhostname, localhost, local.test",
        "recipient_delimiter": "+",
        "default_privs": "nobody",
        "allow_mail_to_files": "alias, forward, include",
        "deliver_lock_delay": "1s",
    }
    main.update(main_extra)
    inst = Instance(main=main, master=DEFAULT_SERVICES + ["local unix - n n - - local"])
    os.chmod(inst.root, 0o755)
    return inst


subprocess.run(["userdel", USER], capture_output=True)
inst = make_instance({})
home = os.path.join(inst.root, "home", USER)
os.makedirs(home)
r = subprocess.run(["useradd", "-M", "-U", "-d", home, "-s", "/bin/sh", USER],
                   capture_output=True, text=True)
if r.returncode != 0:
    print("1..0 # SKIP useradd failed: " + r.stderr.strip())
    sys.exit(0)
try:
    pw = pwd.getpwnam(USER)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    outdir = os.path.join(inst.root, "out")
    os.makedirs(outdir)
    os.chmod(outdir, 0o1777)
    script = os.path.join(inst.root, "capture.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                "out=%s/$LOCAL\n"
                "cat > \"$out.stdin\"\n"
                "env | sort > \"$out.env\"\n"
                "id -u > \"$out.uid\"\n"
                "echo \"$@\" > \"$out.args\"\n" % outdir)
    os.chmod(script, 0o755)
    include = os.path.join(inst.root, "list.include")
    with open(include, "w") as f:
        f.write("# a mailing list\n%s,\n%s/include.mbox\n" % (USER, outdir))
    aliases = os.path.join(inst.root, "aliases")
    with open(aliases, "w") as f:
        f.write("bounces: %s/bounces.mbox\n"
                "fwd: %s\n"
                "cmd: \"|%s one two\"\n"
                "file: %s/file.mbox\n"
                "inc: :include:%s\n"
                "loop1: loop2@local.test\n"
                "loop2: loop1@local.test\n"
                "self: self@local.test, %s\n" % (outdir, USER, script, outdir, include, USER))
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("home_mailbox = Maildir/\n"
                "alias_maps = hash:%s\nalias_database = hash:%s\n" % (aliases, aliases))
    r = inst.cmd("postalias", "hash:" + aliases)
    tap.eq(r.returncode, 0, "postalias builds the alias table " + r.stderr)
    # .forward+fw: a file in the home and a copy in the mailbox ("\user").
    fwd_file = os.path.join(home, ".forward+fw")
    with open(fwd_file, "w") as f:
        f.write("# keep a copy\n\\%s, %s/fw.mbox\n" % (USER, home))
    os.chown(fwd_file, pw.pw_uid, pw.pw_gid)
    inst.start()
    maildir = os.path.join(home, "Maildir")

    # 1. The user's Maildir, written with the user's uid.
    q1 = send(inst.port, ["%s@local.test" % USER], msg("one"))
    tap.ok(inst.wait_log(r"%s: to=<%s@local\.test>, relay=local, delay=[\d.]+, "
                         r"delays=[\d./]+, dsn=2\.0\.0, status=sent \(delivered to maildir\)"
                         % (q1, USER)), "log: status=sent (delivered to maildir)")
    tap.ok(inst.wait_log(r"%s: removed" % q1), "message removed after delivery")
    msgs = maildir_msgs(maildir)
    tap.eq([m["Subject"] for m in msgs], ["one"], "mailbox.Maildir reads the message")
    m = msgs[0] if msgs else {}
    tap.eq((m.get("Return-Path"), m.get("Delivered-To"), m.get("X-Original-To")),
           ("<%s>" % SENDER, "%s@local.test" % USER, "%s@local.test" % USER),
           "Return-Path:, Delivered-To:, X-Original-To: added")
    newdir = os.path.join(maildir, "new")
    files = os.listdir(newdir)
    st = os.stat(os.path.join(newdir, files[0])) if files else None
    tap.ok(st and st.st_uid == pw.pw_uid and (st.st_mode & 0o777) == 0o600,
           "Maildir file owned by the user, mode 0600")
    raw = open(os.path.join(newdir, files[0]), "rb").read() if files else b""
    tap.ok(b"\r\n" not in raw and b"\nFrom the body\n" in raw,
           "LF line ends, no >From quoting in a Maildir", raw[:300])
    tap.eq(sorted(os.listdir(os.path.join(maildir, "tmp"))), [], "Maildir tmp/ left empty")

    # 2. Unknown user.
    q2 = send(inst.port, ["nosuchuser@local.test"], msg("two"))
    tap.ok(inst.wait_log(r"%s: to=<nosuchuser@local\.test>, relay=local, .*dsn=5\.1\.1, "
                         r"status=bounced \(unknown user: \"nosuchuser\"\)" % q2),
           "unknown user: bounced 5.1.1 unknown user: \"name\"")

    # 3. Loop: our own Delivered-To: already in the message.
    q3 = send(inst.port, ["%s@local.test" % USER],
              msg("three", "Delivered-To: %s@local.test\r\n" % USER))
    tap.ok(inst.wait_log(r"%s: to=<%s@local\.test>, .*dsn=5\.4\.6, status=bounced "
                         r"\(mail forwarding loop for %s@local\.test\)" % (q3, USER, USER)),
           "Delivered-To loop: bounced 5.4.6")
    # The bounce notice went to the sender, an alias for an mbox file.
    bounces = os.path.join(outdir, "bounces.mbox")
    wait_for(lambda: os.path.exists(bounces) and len(mailbox.mbox(bounces)) >= 2, 30,
             "two bounce notices in bounces.mbox")
    tap.ok(len(mailbox.mbox(bounces)) >= 2, "bounce notices delivered to the sender's alias file")

    # 4. Alias to an address: forwarded as a new message, then delivered.
    q4 = send(inst.port, ["fwd@local.test"], msg("four"))
    mm = inst.wait_log(r"%s: to=<fwd@local\.test>, relay=local, .*dsn=2\.0\.0, "
                       r"status=sent \(forwarded as ([0-9A-F]+)\)" % q4)
    tap.ok(mm, "alias address: status=sent (forwarded as NEWID)")
    new_id = mm.group(1) if mm else "NONE"
    tap.ok(inst.wait_log(r"%s: to=<%s@[^>]+>, orig_to=<fwd@local\.test>, relay=local, "
                         r".*status=sent \(delivered to maildir\)" % (new_id, USER)),
           "the forwarded copy is delivered under its new queue ID")
    four = [m for m in maildir_msgs(maildir) if m["Subject"] == "four"]
    tap.ok(four and "fwd@local.test" in four[0].get_all("Delivered-To", []),
           "the forwarded copy carries Delivered-To: fwd@local.test")

    # 5. Alias to a command: default_privs, Postfix's environment, the message on stdin.
    q5 = send(inst.port, ["cmd+ext@local.test"], msg("five"))
    tap.ok(inst.wait_log(r"%s: to=<cmd\+ext@local\.test>, relay=local, .*dsn=2\.0\.0, "
                         r"status=sent \(delivered to command: %s one two\)"
                         % (q5, re.escape(script))), "alias |command: delivered to command")
    env = dict(l.split("=", 1) for l in open(os.path.join(outdir, "cmd+ext.env")).read().splitlines()
               if "=" in l)
    want = {"SENDER": SENDER, "RECIPIENT": "cmd+ext@local.test", "LOCAL": "cmd+ext",
            "EXTENSION": "ext", "DOMAIN": "local.test", "USER": "nobody"}
    tap.eq({k: env.get(k) for k in want}, want, "command environment as Postfix's local(8)")
    tap.eq(open(os.path.join(outdir, "cmd+ext.uid")).read().strip(),
           str(pwd.getpwnam("nobody").pw_uid), "command ran as default_privs (nobody)")
    tap.eq(open(os.path.join(outdir, "cmd+ext.args")).read().strip(), "one two",
           "command arguments via /bin/sh -c")
    stdin = open(os.path.join(outdir, "cmd+ext.stdin")).read()
    tap.ok(stdin.startswith("From %s  " % SENDER) and "\nSubject: five\n" in stdin
           and "Delivered-To: cmd+ext@local.test\n" in stdin and "\r" not in stdin,
           "command stdin: From_ line, Delivered-To:, LF line ends", stdin[:300])

    # 6. Alias to a file: mbox with From_ line and >From quoting.
    q6 = send(inst.port, ["file@local.test"], msg("six"))
    tap.ok(inst.wait_log(r"%s: to=<file@local\.test>, .*status=sent \(delivered to file: %s\)"
                         % (q6, re.escape(os.path.join(outdir, "file.mbox")))),
           "alias /file: delivered to file")
    fm = mailbox.mbox(os.path.join(outdir, "file.mbox"))
    tap.eq([m["Subject"] for m in fm], ["six"], "mailbox.mbox reads the file")
    rawf = open(os.path.join(outdir, "file.mbox")).read()
    tap.ok(rawf.startswith("From %s  " % SENDER) and "\n>From the body\n" in rawf
           and rawf.endswith("\n\n"), ">From quoting and a blank line at the end", rawf[-200:])
    tap.eq(os.stat(os.path.join(outdir, "file.mbox")).st_uid,
           pwd.getpwnam("nobody").pw_uid, "file created with default_privs")

    # 7. :include: an address and a file.
    q7 = send(inst.port, ["inc@local.test"], msg("seven"))
    tap.ok(inst.wait_log(r"%s: to=<inc@local\.test>, .*status=sent \(delivered to file: .*include\.mbox\)"
                         % q7), ":include: file member delivered")
    tap.ok(inst.wait_log(r"%s: to=<inc@local\.test>, .*status=sent \(forwarded as [0-9A-F]+\)"
                         % q7), ":include: address member forwarded")
    wait_for(lambda: "seven" in subjects(maildir), 20, "include copy in the Maildir")
    tap.ok("seven" in subjects(maildir), "the included address got its copy")

    # 8. Loop across two aliases, caught by Delivered-To:.
    q8 = send(inst.port, ["loop1@local.test"], msg("eight"))
    tap.ok(inst.wait_log(r"to=<loop1@local\.test>, .*dsn=5\.4\.6, status=bounced "
                         r"\(mail forwarding loop for loop1@local\.test\)"),
           "alias loop loop1 -> loop2 -> loop1 bounced 5.4.6")

    # 9. .forward+ext: "\user" keeps a copy in the mailbox, a file in the home.
    q9 = send(inst.port, ["%s+fw@local.test" % USER], msg("nine"))
    tap.ok(inst.wait_log(r"%s: to=<%s\+fw@local\.test>, .*status=sent \(delivered to file: %s\)"
                         % (q9, USER, re.escape(os.path.join(home, "fw.mbox")))),
           ".forward+fw: file member delivered")
    tap.ok(inst.wait_log(r"%s: to=<%s\+fw@local\.test>, .*status=sent \(delivered to maildir\)"
                         % (q9, USER)), ".forward+fw: \\user delivered to the mailbox")
    fw = os.path.join(home, "fw.mbox")
    tap.ok(os.path.exists(fw) and os.stat(fw).st_uid == pw.pw_uid
           and [m["Subject"] for m in mailbox.mbox(fw)] == ["nine"],
           ".forward file written as the user")

    # 10. An alias that names itself: its mailbox... "self" is no user: bounce
    # for that member, while the other member (the user) is forwarded.
    q10 = send(inst.port, ["self@local.test"], msg("ten"))
    tap.ok(inst.wait_log(r"%s: to=<self@local\.test>, .*status=bounced \(unknown user: \"self\"\)"
                         % q10), "alias to itself means its mailbox (no such user: bounced)")
    inst.stop()
finally:
    inst.cleanup()

# 11. mbox under mail_spool_directory (root's directory: created, then chowned).
inst = make_instance({})
try:
    spool = os.path.join(inst.root, "mail")
    os.makedirs(spool)
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("mail_spool_directory = %s\n" % spool)
    inst.start()
    q11 = send(inst.port, ["%s@local.test" % USER], msg("eleven"))
    q12 = send(inst.port, ["%s@localhost" % USER], msg("twelve"))
    for q in (q11, q12):
        inst.wait_log(r"%s: to=<%s@.*status=sent \(delivered to mailbox\)" % (q, USER))
    path = os.path.join(spool, USER)
    mb = mailbox.mbox(path)
    tap.eq(sorted(m["Subject"] for m in mb), ["eleven", "twelve"], "mailbox.mbox reads the spool mbox")
    st = os.stat(path)
    tap.ok(st.st_uid == pw.pw_uid and (st.st_mode & 0o777) == 0o600,
           "spool mbox owned by the user, mode 0600")
    tap.ok(not os.path.exists(path + ".lock"), "dotlock removed")
    raw = open(path).read()
    tap.eq(raw.count("\n>From the body\n"), 2, ">From quoting in the spool mbox")
    inst.stop()
finally:
    inst.cleanup()
    subprocess.run(["userdel", USER], capture_output=True)
    try:
        grp.getgrnam(USER)
        subprocess.run(["groupdel", USER], capture_output=True)
    except KeyError:
        pass

tap.done()
