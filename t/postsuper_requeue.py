"""postsuper -r: after a transport_maps change (postconf -e, postfix
reload), requeued mail is routed to the new destination; the same with the
engine stopped."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402
from queue_golden import send  # noqa: E402

tap = Tap()
old = Handler(rcpt={"x@example.com": "450 4.2.0 old route", "y@example.com": "450 4.2.0 old route"})
new = Handler()
with Server(old) as a, Server(new) as b, Instance() as inst:
    tmap = os.path.join(inst.root, "transport")
    with open(tmap, "w") as f:
        f.write("example.com smtp:[127.0.0.1]:%d\n" % a.port)
    inst.cmd("postconf", "-e", "transport_maps = texthash:" + tmap)
    inst.start()
    q1 = send(inst.port, ["x@example.com"])
    inst.wait_log(r"%s: to=<x@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=deferred"
                  % (q1, a.port))
    with open(tmap, "w") as f:
        f.write("example.com smtp:[127.0.0.1]:%d\n" % b.port)
    r = inst.postfix("reload")
    tap.eq(r.returncode, 0, "postfix reload")
    inst.wait_log(r"reload: configuration")
    r = inst.cmd("postsuper", "-r", "ALL")
    tap.eq(r.stderr, "postsuper: %s: requeued\npostsuper: Requeued: 1 message\n" % q1,
           "postsuper -r ALL: Requeued: 1 message")
    wait_for(lambda: len(new.messages) == 1, 20, "delivery to the new route")
    tap.eq(new.messages[0][1], ["x@example.com"], "requeued mail went to the new destination")
    tap.ok(inst.wait_log(r"%s: removed" % q1), "and was removed")
    r = inst.cmd("postsuper", "-r", "ABCDEF0123")
    tap.ok(r.returncode != 0 and "no such message" in r.stderr, "postsuper -r unknown ID")

    # Stopped: requeue writes the journal; the next start uses the new route.
    with open(tmap, "w") as f:
        f.write("example.com smtp:[127.0.0.1]:%d\n" % a.port)
    inst.postfix("reload")
    q2 = send(inst.port, ["y@example.com"])
    inst.wait_log(r"%s: to=<y@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=deferred"
                  % (q2, a.port))
    inst.stop()
    with open(tmap, "w") as f:
        f.write("example.com smtp:[127.0.0.1]:%d\n" % b.port)
    r = inst.cmd("postsuper", "-r", q2)
    tap.eq((r.returncode, r.stderr),
           (0, "postsuper: %s: requeued\npostsuper: Requeued: 1 message\n" % q2),
           "postsuper -r ID (stopped)")
    r = inst.cmd("mailq")
    tap.ok(q2 in r.stdout and "(" not in r.stdout, "mailq (stopped): requeued, no stale reason",
           r.stdout)
    inst.start()
    wait_for(lambda: len(new.messages) == 2, 20, "delivery after restart")
    tap.eq(new.messages[1][1], ["y@example.com"], "requeued offline: delivered via the new route")
tap.done()
