"""Privilege separation end to end (needs root; skips otherwise).

A throwaway mail_owner and a throwaway recipient are created with useradd
(and removed at the end). The instance listens on a privileged port (25
when free, else another free port below 1024), so the bind can only work
through root. Checked: after `postfix start` the engine process runs as
mail_owner with no capabilities (/proc/PID/status), its privileged helper
is its child and still root, the queue directory belongs to mail_owner
(pid/ and master.pid stay root's), the engine still accepts mail on the
privileged port, and local delivery still reads and writes as the
recipient: Maildir in the 0700 home directory, an mbox created in a
root-owned mail_spool_directory (owned by the recipient), a .forward in
that home naming a file, and a mailbox_command run with the recipient's
uid. `postfix stop` leaves no helper behind."""
import os
import pwd
import random
import re
import smtplib
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import DEFAULT_SERVICES, Instance, Tap, wait_for  # noqa: E402

if os.geteuid() != 0 or not os.path.exists("/usr/sbin/useradd"):
    print("1..0 # SKIP needs root and useradd (throwaway users)")
    sys.exit(0)

tap = Tap()
TAG = "%05d" % random.randrange(10 ** 5)
OWNER = "sluicet" + TAG          # the throwaway mail_owner
RCPT = "sluicer" + TAG           # the throwaway recipient


def run(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True)


def useradd(*argv):
    # Another test may hold /etc/passwd's lock for a moment.
    deadline = time.monotonic() + 30
    while True:
        r = run("useradd", *argv)
        if r.returncode != 10 or time.monotonic() > deadline:   # 10: cannot lock
            return r
        time.sleep(0.2)


def userdel(name):
    deadline = time.monotonic() + 30
    while run("userdel", name).returncode == 10 and time.monotonic() < deadline:
        time.sleep(0.2)


def low_port():
    """25 if nobody listens there, else another free port below 1024."""
    for port in [25] + random.sample(range(600, 1024), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    return 0


def status_ids(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    return []


def children(pid):
    out = run("pgrep", "-P", str(pid)).stdout.split()
    return [int(p) for p in out]


def send(port, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail("sender@remote.test")
        code, _ = c.rcpt(rcpt)
        assert code == 250, (rcpt, code)
        code, text = c.data("From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\n\r\n"
                            "hello\r\n" % (rcpt, subject))
        assert code == 250, text
        return text.decode().split()[-1]


def owner_of(path):
    return os.lstat(path).st_uid


port = low_port()
if port == 0:
    print("1..0 # SKIP no free port below 1024 on 127.0.0.1")
    sys.exit(0)

userdel(OWNER)
userdel(RCPT)
inst = None
try:
    r = useradd("-r", "-M", "-U", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", OWNER)
    if r.returncode != 0:
        print("1..0 # SKIP useradd %s: %s" % (OWNER, r.stderr.strip()))
        sys.exit(0)
    inst = Instance(main={
        "mail_owner": OWNER,
        "mydestination": "$myhostname, localhost, local.test",
        "home_mailbox": "Maildir/",
        "mail_spool_directory": "",      # set below, once the path is known
        "default_privs": "nobody",
    }, master=["127.0.0.1:%d inet n - n - - smtpd" % port] + DEFAULT_SERVICES
        + ["local unix - n n - - local"], smtp=False)
    inst.port = port
    os.chmod(inst.root, 0o755)
    spool = os.path.join(inst.root, "mail")
    os.makedirs(spool)
    os.chmod(spool, 0o755)                # root's, not writable by the recipient
    inst.cmd("postconf", "-e", "mail_spool_directory=" + spool, check=True)
    home = os.path.join(inst.root, "home", RCPT)
    os.makedirs(os.path.dirname(home))
    r = useradd("-m", "-U", "-d", home, "-s", "/bin/sh", RCPT)
    if not tap.ok(r.returncode == 0, "throwaway recipient created", r.stderr):
        raise SystemExit
    os.chmod(home, 0o700)                 # only the recipient gets in
    owner_uid = pwd.getpwnam(OWNER).pw_uid
    rcpt_uid = pwd.getpwnam(RCPT).pw_uid

    r = inst.postfix("start")
    tap.eq(r.returncode, 0, "postfix start as root with mail_owner=%s" % OWNER)
    inst.started = True
    tap.ok(wait_for(inst.smtp_ready, 20, "SMTP on port %d" % port),
           "the engine answers on privileged port %d" % port)

    r = inst.postfix("status")
    master = int(re.search(r"PID: (\d+)", r.stderr).group(1))
    engine = wait_for(lambda: (children(master) or [0])[0], 10, "engine process")
    tap.eq(status_ids(master, "Uid")[0], "0", "the master stays root")
    tap.eq(status_ids(engine, "Uid"), [str(owner_uid)] * 4,
           "the engine runs as mail_owner (real, effective, saved, fs uid)")
    tap.eq(set(status_ids(engine, "Gid")), {str(pwd.getpwnam(OWNER).pw_gid)},
           "the engine's gids are mail_owner's")
    tap.eq(status_ids(engine, "CapEff"), ["0000000000000000"], "the engine has no capabilities")
    helpers = [p for p in children(engine)
               if open("/proc/%d/comm" % p).read().strip() == "sluice-privsep"]
    tap.eq(len(helpers), 1, "one privileged helper, a child of the engine")
    helper = helpers[0] if helpers else 0
    if helper:
        tap.eq(status_ids(helper, "Uid")[1], "0", "the helper is root")

    q = inst.spool
    tap.eq(owner_of(os.path.join(q, "journal")), owner_uid, "journal/ belongs to mail_owner")
    tap.eq(owner_of(os.path.join(q, "private")), owner_uid, "private/ belongs to mail_owner")
    tap.eq(owner_of(os.path.join(q, "pid")), 0, "pid/ stays root's")
    tap.eq(owner_of(os.path.join(q, "pid", "master.pid")), 0, "master.pid stays root's")
    seg = [f for f in os.listdir(os.path.join(q, "journal"))]
    tap.ok(seg and all(owner_of(os.path.join(q, "journal", f)) == owner_uid for f in seg),
           "journal files are written by mail_owner", seg)
    tap.eq(owner_of(inst.maillog), owner_uid, "maillog_file given to mail_owner")

    # Reload re-reads main.cf as mail_owner; the control socket answers root.
    r = inst.postfix("reload")
    tap.ok(r.returncode == 0 and inst.wait_log(r"postfix/master\[%d\]: reload: configuration"
                                               % engine), "reload in the unprivileged engine")
    r = inst.cmd("postqueue", "-p")
    tap.ok(r.returncode == 0, "postqueue -p talks to the unprivileged engine", r.stderr)

    # Maildir in the recipient's 0700 home: only the recipient could write it.
    qid = send(port, RCPT + "@local.test", "maildir")
    tap.ok(inst.wait_log(r"%s: to=<%s@local.test>.*status=sent \(delivered to maildir\)"
                         % (qid, RCPT)), "Maildir delivery through the helper", inst.log()[-2000:])
    new = os.path.join(home, "Maildir", "new")
    files = os.listdir(new) if os.path.isdir(new) else []
    tap.eq(len(files), 1, "one message in Maildir/new")
    if files:
        tap.eq(owner_of(os.path.join(new, files[0])), rcpt_uid,
               "the Maildir file belongs to the recipient")

    # mbox in a root-owned spool: created by root for the recipient.
    # (The local agent reads its settings at start: restart, new helper too.)
    inst.cmd("postconf", "-e", "home_mailbox=", check=True)
    inst.stop()
    inst.start()
    mbox = os.path.join(spool, RCPT)

    def spooled():
        return os.path.exists(mbox) and "Subject: mbox" in open(mbox, errors="replace").read()
    qid = send(port, RCPT + "@local.test", "mbox")
    tap.ok(inst.wait_log(r"%s: to=<%s@local.test>.*status=sent \(delivered to mailbox\)"
                         % (qid, RCPT)), "mbox delivery in the spool", inst.log()[-2000:])
    tap.ok(wait_for(spooled, 10, "mbox"), "the message is in the spool mbox")
    tap.eq(owner_of(mbox), rcpt_uid, "the spool mbox belongs to the recipient")

    # A .forward in the 0700 home: read as the recipient, through the helper.
    fwd_mbox = os.path.join(home, "fwd.mbox")
    forward = os.path.join(home, ".forward")
    with open(forward, "w") as f:
        f.write(fwd_mbox + "\n")
    os.chown(forward, rcpt_uid, pwd.getpwnam(RCPT).pw_gid)
    os.chmod(forward, 0o600)
    qid = send(port, RCPT + "@local.test", "forward")
    tap.ok(inst.wait_log(r"%s: to=<%s@local.test>.*status=sent \(delivered to file: %s\)"
                         % (qid, RCPT, re.escape(fwd_mbox))),
           ".forward in a 0700 home is read as the recipient", inst.log()[-2000:])
    tap.eq(owner_of(fwd_mbox) if os.path.exists(fwd_mbox) else -1, rcpt_uid,
           "the .forward's file belongs to the recipient")
    os.unlink(forward)

    # A mailbox_command runs with the recipient's uid.
    out = os.path.join(home, "cmd.out")
    inst.cmd("postconf", "-e", "mailbox_command=/bin/sh -c 'id -u > %s; cat >> %s'"
             % (out, out), check=True)
    inst.stop()
    inst.start()
    qid = send(port, RCPT + "@local.test", "command")
    tap.ok(inst.wait_log(r"%s: to=<%s@local.test>.*status=sent \(delivered to command"
                         % (qid, RCPT)), "mailbox_command through the helper", inst.log()[-2000:])
    text = open(out).read() if os.path.exists(out) else ""
    tap.ok(text.startswith("%d\n" % rcpt_uid) and "Subject: command" in text,
           "the command ran as the recipient and read the message", text[:300])
    tap.eq(owner_of(out) if os.path.exists(out) else -1, rcpt_uid,
           "the command's file belongs to the recipient")

    r = inst.postfix("check")
    tap.ok(r.returncode == 0, "postfix check passes on the running instance", r.stderr)

    r = inst.postfix("status")
    master = int(re.search(r"PID: (\d+)", r.stderr).group(1))
    engine = wait_for(lambda: (children(master) or [0])[0], 10, "engine process")
    helper = wait_for(lambda: (children(engine) or [0])[0], 10, "helper process")
    inst.stop()
    tap.ok(wait_for(lambda: not os.path.exists("/proc/%d" % helper) or
                    open("/proc/%d/stat" % helper).read().split()[2] == "Z", 10,
                    "helper exit"), "the helper is gone after stop")
    tap.ok("status=deferred" not in inst.log(), "nothing was deferred",
           "\n".join(line for line in inst.log().splitlines() if "deferred" in line))
finally:
    if inst is not None:
        inst.cleanup()
    userdel(RCPT)
    userdel(OWNER)
    for g in (OWNER, RCPT):
        run("groupdel", g)
tap.done()
