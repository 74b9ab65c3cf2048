"""postsuper -d/-h/-H (IDs, ALL [queue], -, -D domain) against a running
engine and a stopped one: hold -> release -> delivered; -d ALL deferred
leaves active mail alone; bad IDs, queue names and stdin give clear errors;
a busy journal lock without a master is reported."""
import fcntl
import os
import re
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402
from queue_golden import send  # noqa: E402

tap = Tap()


def queue_of(inst, qid):
    """The mailq status mark of qid: '' (incoming/deferred), '*', '!', or None."""
    m = re.search(r"^%s([*!]?) " % qid, inst.cmd("mailq").stdout, re.M)
    return m.group(1) if m else None


# A TCP listener that accepts and never says a word keeps mail active.
hole = socket.socket()
hole.bind(("127.0.0.1", 0))
hole.listen(16)
hport = hole.getsockname()[1]

handler = Handler(rcpt={"a@example.com": "450 4.2.0 try later",
                        "b@example.net": "450 4.2.0 try later"})
with Server(handler) as sink:
    tmap = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sluice-t-transport-%d" % os.getpid())
    with open(tmap, "w") as f:
        f.write("slow.example smtp:[127.0.0.1]:%d\n" % hport)
    inst = Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port,
                          "transport_maps": "texthash:" + tmap})
    inst.start()
    q1 = send(inst.port, ["a@example.com"])
    q2 = send(inst.port, ["b@example.net"])
    inst.wait_log(r"%s: to=<a@example\.com>.*status=deferred" % q1)
    inst.wait_log(r"%s: to=<b@example\.net>.*status=deferred" % q2)
    q3 = send(inst.port, ["c@slow.example"])
    wait_for(lambda: queue_of(inst, q3) == "*", 20, "active mail")

    # Hold, by ID; release; delivered.
    r = inst.cmd("postsuper", "-h", q1)
    tap.eq((r.returncode, r.stderr),
           (0, "postsuper: %s: placed on hold\npostsuper: Placed on hold: 1 message\n" % q1),
           "postsuper -h ID: Postfix's report")
    tap.eq(queue_of(inst, q1), "!", "mailq marks held mail with !")
    tap.ok(inst.wait_log(r"postsuper\[\d+\]: %s: placed on hold" % q1), "logged: placed on hold")
    r = inst.cmd("postsuper", "-h", q1)
    tap.eq((r.returncode, r.stderr), (0, ""), "holding held mail again: nothing to report")
    del handler.rcpt["a@example.com"]
    inst.cmd("postqueue", "-f")
    tap.eq(queue_of(inst, q1), "!", "a flush leaves held mail alone")
    r = inst.cmd("postsuper", "-H", "ALL")
    tap.eq(r.stderr, "postsuper: %s: released from hold\npostsuper: Released from hold: 1 message\n"
           % q1, "postsuper -H ALL: released from hold")
    tap.ok(inst.wait_log(r"%s: to=<a@example\.com>.*status=sent" % q1),
           "hold -> release -> delivered")

    # -d ALL deferred leaves active mail alone.
    r = inst.cmd("postsuper", "-d", "ALL", "deferred")
    tap.eq(r.stderr, "postsuper: %s: removed\npostsuper: Deleted: 1 message\n" % q2,
           "postsuper -d ALL deferred: the deferred message only")
    tap.eq(queue_of(inst, q3), "*", "the active message is still there, active")
    tap.eq(queue_of(inst, q2), None, "the deferred message is gone")
    tap.ok(inst.wait_log(r"%s: removed" % q2), "engine logs ID: removed")

    # Bad arguments.
    r = inst.cmd("postsuper", "-d", "NOSUCHID")
    tap.ok(r.returncode != 0 and 'postsuper: fatal: invalid queue ID: "NOSUCHID"' in r.stderr,
           "postsuper -d NOSUCHID: invalid queue ID", r.stderr)
    r = inst.cmd("postsuper", "-d", "ABCDEF0123")
    tap.ok(r.returncode != 0 and "postsuper: error: ABCDEF0123: no such message in the queue"
           in r.stderr, "postsuper -d unknown ID: no such message, exit 1", r.stderr)
    r = inst.cmd("postsuper", "-d", "ALL", "nosuchqueue")
    tap.ok(r.returncode != 0 and 'unknown queue name: "nosuchqueue"' in r.stderr,
           "postsuper: unknown queue name", r.stderr)
    r = inst.cmd("postsuper", "-h", "-", input="garbage here\n\n%s\n" % q3)
    tap.ok(r.returncode != 0 and "line 1 of standard input: invalid queue ID" in r.stderr
           and "postsuper: %s: placed on hold" % q3 in r.stderr,
           "postsuper -h -: garbage reported, the good ID acted on", r.stderr)
    r = inst.cmd("postsuper", "-x")
    tap.ok(r.returncode != 0 and "usage" in r.stderr, "postsuper -x: usage")

    # Bulk by destination (-D).
    handler.rcpt.update({"d@example.org": "450 4.2.0 no", "e@example.net": "450 4.2.0 no"})
    q4 = send(inst.port, ["d@example.org"])
    q5 = send(inst.port, ["e@example.net"])
    inst.wait_log(r"%s: to=<d@example\.org>.*status=deferred" % q4)
    inst.wait_log(r"%s: to=<e@example\.net>.*status=deferred" % q5)
    r = inst.cmd("postsuper", "-h", "ALL", "-D", "example.org")
    tap.ok("postsuper: %s: placed on hold" % q4 in r.stderr and q5 not in r.stderr,
           "postsuper -h ALL -D example.org: only that domain", r.stderr)

    # Stopped: the journal under its lock.
    hole.close()
    inst.stop()
    r = inst.cmd("postsuper", "-H", q4)
    tap.eq((r.returncode, r.stderr),
           (0, "postsuper: %s: released from hold\npostsuper: Released from hold: 1 message\n" % q4),
           "postsuper -H ID (stopped)")
    r = inst.cmd("postsuper", "-h", "ALL")
    tap.ok(r.returncode == 0 and r.stderr.endswith("Placed on hold: 2 messages\n"),
           "postsuper -h ALL (stopped)", r.stderr)
    tap.eq(sorted(re.findall(r"^([0-9A-F]+)!", inst.cmd("mailq").stdout, re.M)),
           sorted([q3, q4, q5]), "mailq (stopped) shows them held")
    r = inst.cmd("postsuper", "-d", "-", input="%s\n" % q4)
    tap.eq(r.stderr, "postsuper: %s: removed\npostsuper: Deleted: 1 message\n" % q4,
           "postsuper -d - (stopped)")
    r = inst.cmd("postsuper", "-d", "ABCDEF0123")
    tap.ok(r.returncode != 0 and "no such message" in r.stderr, "unknown ID (stopped)")
    with open(os.path.join(inst.spool, "journal", "lock")) as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        r = inst.cmd("postsuper", "-d", "ALL")
        fcntl.flock(lk, fcntl.LOCK_UN)
    tap.ok(r.returncode != 0 and "locked by another process" in r.stderr
           and "no master is running" in r.stderr, "busy journal lock, no master: said so", r.stderr)
    r = inst.cmd("postsuper")
    tap.eq((r.returncode, r.stderr), (0, ""), "postsuper (-s, stopped): recovery finds no damage")
    inst.start()
    tap.eq(sorted(re.findall(r"^([0-9A-F]+)!", inst.cmd("mailq").stdout, re.M)),
           sorted([q3, q5]), "restarted engine: held mail still held")
    handler.rcpt.clear()
    r = inst.cmd("postsuper", "-d", "ALL", "hold")
    tap.ok(r.stderr.endswith("Deleted: 2 messages\n"), "postsuper -d ALL hold", r.stderr)
    tap.eq(inst.cmd("mailq").stdout, "Mail queue is empty\n", "queue empty")
    inst.cleanup()
    os.unlink(tmap)
tap.done()
