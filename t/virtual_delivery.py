"""virtual(8) end to end: virtual_mailbox_domains, virtual_mailbox_maps
(hash: built with the built postmap) relative to virtual_mailbox_base,
virtual_uid_maps/virtual_gid_maps static:N: a Maildir (trailing /) read back
with mailbox.Maildir, an mbox read back with mailbox.mbox, an address
extension, an unknown address bounced 5.1.1, a uid below
virtual_minimum_uid deferred, the Delivered-To: loop test. As root the
files belong to the mapped uid; otherwise to the invoking user."""
import mailbox
import os
import smtplib
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import DEFAULT_SERVICES, Instance, Tap  # noqa: E402

tap = Tap()
root = os.geteuid() == 0
UID = 5123 if root else os.geteuid()
GID = 5123 if root else os.getegid()


def send(port, rcpts, subject, extra=""):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail("")
        for r in rcpts:
            code, _ = c.rcpt(r)
            assert code == 250, (r, code)
        code, text = c.data("%sSubject: %s\r\n\r\nbody\r\nFrom me\r\n" % (extra, subject))
        assert code == 250, text
        return text.decode().split()[-1]


inst = Instance(master=DEFAULT_SERVICES + ["virtual unix - n n - - virtual"])
try:
    base = os.path.join(inst.root, "vmail")
    os.makedirs(base)
    os.chown(base, UID, GID)
    os.chmod(inst.root, 0o755)
    maps = os.path.join(inst.root, "vmailbox")
    with open(maps, "w") as f:
        f.write("alice@virt.test virt.test/alice/\n"
                "bob@virt.test virt.test/bob\n"
                "low@virt.test virt.test/low/\n")
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("virtual_mailbox_domains = virt.test\n"
                "virtual_mailbox_maps = hash:%s\n"
                "virtual_mailbox_base = %s\n"
                "virtual_uid_maps = inline:{ low@virt.test=50 }, static:%d\n"
                "virtual_gid_maps = static:%d\n"
                "virtual_minimum_uid = 100\n"
                "recipient_delimiter = +\n" % (maps, base, UID, GID))
    r = inst.cmd("postmap", "hash:" + maps)
    tap.eq(r.returncode, 0, "postmap builds virtual_mailbox_maps " + r.stderr)
    inst.start()

    q1 = send(inst.port, ["alice@virt.test", "alice+tag@virt.test"], "to alice")
    for a in ("alice", r"alice\+tag"):
        tap.ok(inst.wait_log(r"postfix/virtual\[\d+\]: %s: to=<%s@virt\.test>, relay=virtual, "
                             r".*dsn=2\.0\.0, status=sent \(delivered to maildir\)" % (q1, a)),
               "log: %s status=sent (delivered to maildir)" % a.replace("\\", ""))
    md = os.path.join(base, "virt.test", "alice")
    msgs = list(mailbox.Maildir(md, factory=None, create=False))
    tap.eq(sorted(m["Delivered-To"] for m in msgs), ["alice+tag@virt.test", "alice@virt.test"],
           "mailbox.Maildir reads both copies (extension stripped for the lookup)")
    tap.eq(msgs[0]["Return-Path"] if msgs else None, "<>", "Return-Path: <> for the null sender")
    new = os.path.join(md, "new")
    tap.ok(all(os.stat(os.path.join(new, f)).st_uid == UID for f in os.listdir(new))
           and os.stat(md).st_uid == UID, "Maildir files owned by virtual_uid_maps' uid")

    q2 = send(inst.port, ["bob@virt.test"], "to bob")
    tap.ok(inst.wait_log(r"%s: to=<bob@virt\.test>, relay=virtual, .*status=sent "
                         r"\(delivered to mailbox\)" % q2), "log: bob delivered to mailbox")
    mb = os.path.join(base, "virt.test", "bob")
    box = mailbox.mbox(mb)
    tap.eq([m["Subject"] for m in box], ["to bob"], "mailbox.mbox reads bob's mbox")
    raw = open(mb).read()
    tap.ok(raw.startswith("From MAILER-DAEMON  ") and "\n>From me\n" in raw,
           "mbox: From_ line for the null sender, >From quoting", raw[:300])
    tap.eq(os.stat(mb).st_uid, UID, "mbox owned by the mapped uid")

    q3 = send(inst.port, ["carol@virt.test"], "to carol")
    tap.ok(inst.wait_log(r"%s: to=<carol@virt\.test>, relay=virtual, .*dsn=5\.1\.1, "
                         r"status=bounced \(unknown user: \"carol@virt\.test\"\)" % q3),
           "unknown address: bounced 5.1.1")

    q4 = send(inst.port, ["low@virt.test"], "to low")
    tap.ok(inst.wait_log(r"%s: to=<low@virt\.test>, relay=virtual, .*dsn=4\.3\.0, "
                         r"status=deferred \(mail system configuration error: recipient "
                         r"low@virt\.test: uid 50 is below virtual_minimum_uid 100\)" % q4),
           "uid below virtual_minimum_uid: deferred")
    tap.ok(not os.path.exists(os.path.join(base, "virt.test", "low")), "nothing written for it")

    q5 = send(inst.port, ["alice@virt.test"], "loop", "Delivered-To: alice@virt.test\r\n")
    tap.ok(inst.wait_log(r"%s: to=<alice@virt\.test>, .*dsn=5\.4\.6, status=bounced "
                         r"\(mail forwarding loop for alice@virt\.test\)" % q5),
           "Delivered-To loop: bounced 5.4.6")
    inst.stop()
finally:
    inst.cleanup()

tap.done()
