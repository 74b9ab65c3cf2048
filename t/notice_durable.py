"""Notices survive restarts, and a restart does not repeat them.

1. A bounce while the engine stops: sink A holds its RCPT reply until the
   engine has closed its SMTP port (the cleanup service is stopping), then
   answers 550. The bounce is journaled with its notice owed; the notice
   cannot be queued ("notice not queued; it is sent again at the next
   start"). The next start sends it (Python's email parses it, Status 5.1.1
   from the recorded reply), removes the original, and a third start sends
   nothing more.
2. delay_warning_time: one delay notice, and after a restart with the
   message still deferred, not a second one (the WARNED record).
3. kill -9 (postfix abort) at random moments while mail bounces: every
   message the client saw 250 for gets its notice at the sender's server
   (duplicates allowed and counted: at-least-once). Seed printed; replay
   with SLUICE_CRASH_SEED.
"""
import asyncio
import email
import email.policy
import os
import random
import re
import smtplib
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

tap = Tap()


def send(port, sender, rcpt, body="Subject: test\r\n\r\nhello\r\n"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail(sender)
        code, text = c.rcpt(rcpt)
        if code != 250:
            raise RuntimeError("RCPT: %d %s" % (code, text))
        code, text = c.data(body)
        return text.decode().split()[-1]


def notices_for(handler, qid, subject=None):
    out = []
    for mail_from, rcpts, content, _ in list(handler.messages):
        if re.search(rb"X-Postfix-Queue-ID: " + qid.encode() + rb"\r?\n", content):
            msg = email.message_from_bytes(content, policy=email.policy.default)
            if subject is None or str(msg["Subject"]) == subject:
                out.append((mail_from, rcpts, msg))
    return out


def port_closed(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


class GatedHandler(Handler):
    """Holds the RCPT reply for held@example.com until `gate` is set."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.gate = threading.Event()
        self.holding = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == "held@example.com":
            self.holding.set()
            while not self.gate.is_set():
                await asyncio.sleep(0.02)
            return "550 5.1.1 <held@example.com>: no such user here"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def fence(inst, sink_b):
    """A bounce whose notice reaches sink B: everything queued before it
    has been handed on."""
    q = send(inst.port, "alice@sender.test", "nobody@example.com")
    wait_for(lambda: notices_for(sink_b, q), 30, "the fence notice for %s" % q)
    return q


# ------------------------------------------- 1. a bounce during the stop
sink_a = GatedHandler(rcpt={"nobody@example.com": "550 5.1.1 no such user",
                            "slow@example.com": "450 4.2.0 mailbox busy"})
sink_b = Handler()
with Server(sink_a) as a, Server(sink_b) as b, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % a.port,
        "transport_maps": "inline:{ sender.test=smtp:[127.0.0.1]:%d }" % b.port,
        "smtp_rcpt_timeout": "60s",
        "delay_warning_time": "2s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "queue_run_delay": "1s"}) as inst:
    inst.start()
    qid = send(inst.port, "alice@sender.test", "held@example.com")
    wait_for(sink_a.holding.is_set, 30, "the RCPT at sink A")
    stop = threading.Thread(target=inst.stop)
    stop.start()
    # The SMTP port closes when the receive side stops: after the way to
    # cleanup closed, before the delivery agents finish.
    wait_for(lambda: port_closed(inst.port), 30, "the SMTP port to close")
    sink_a.gate.set()
    stop.join(60)
    tap.ok(not stop.is_alive(), "postfix stop returns")
    log = inst.log()
    tap.ok(re.search(r"%s: to=<held@example\.com>.*status=bounced" % qid, log),
           "the held recipient bounced during the stop", log[-2000:])
    tap.ok(re.search(r"warning: %s: notice not queued; it is sent again at the next start"
                     % qid, log), "the notice could not be queued: said so")
    tap.ok(not re.search(r"%s: removed" % qid, log), "the original is not removed yet")
    tap.eq(notices_for(sink_b, qid), [], "no notice at the sender's server yet")

    inst.start()
    tap.ok(inst.wait_log(r"%s: notice owed since before the restart" % qid),
           "the next start finds the owed notice")
    wait_for(lambda: notices_for(sink_b, qid), 30, "the notice at sink B")
    mail_from, rcpts, msg = notices_for(sink_b, qid)[0]
    tap.eq((mail_from, rcpts), ("<>", ["alice@sender.test"]), "to the sender, from <>")
    tap.eq(msg.get_content_type(), "multipart/report", "a delivery status report")
    groups = msg.get_payload()[1].get_payload()
    tap.eq((groups[1]["Final-Recipient"], groups[1]["Action"], groups[1]["Status"]),
           ("rfc822; held@example.com", "failed", "5.1.1"),
           "Final-Recipient, Action: failed, Status 5.1.1 from the recorded reply")
    tap.ok("550 5.1.1 <held@example.com>: no such user here" in
           str(groups[1]["Diagnostic-Code"]), "the reply is the diagnostic",
           str(groups[1]["Diagnostic-Code"]))
    tap.ok(inst.wait_log(r"%s: removed" % qid), "then the original is removed")
    inst.stop()

    inst.start()
    fence(inst, sink_b)
    tap.eq(len(notices_for(sink_b, qid)), 1, "a third start sends no second notice")
    tap.eq(inst.log().count("%s: notice owed since before the restart" % qid), 1,
           "nothing owed any more")

    # --------------------------------- 2. one delay notice across a restart
    q_slow = send(inst.port, "alice@sender.test", "slow@example.com")
    m = inst.wait_log(r"%s: sender delay notification: ([0-9A-F]+)" % q_slow, 30)
    tap.ok(m, "delay_warning_time 2s: a delay notice")
    wait_for(lambda: notices_for(sink_b, q_slow, "Delayed Mail (still being retried)"), 30,
             "the delay notice at sink B")
    inst.stop()
    before = len(re.findall(r"%s: to=<slow@example\.com>.*status=deferred" % q_slow, inst.log()))
    inst.start()
    wait_for(lambda: len(re.findall(r"%s: to=<slow@example\.com>.*status=deferred" % q_slow,
                                    inst.log())) > before, 30,
             "a delivery attempt after the restart")
    fence(inst, sink_b)
    tap.eq(len(notices_for(sink_b, q_slow, "Delayed Mail (still being retried)")), 1,
           "after the restart, no second delay notice")
    tap.eq(len(re.findall(r"%s: sender delay notification" % q_slow, inst.log())), 1,
           "one delay notification logged")
    inst.cmd("postsuper", "-d", q_slow)

    # ------------------------------------- 3. kill -9 while mail bounces
    seed = int(os.environ.get("SLUICE_CRASH_SEED") or random.SystemRandom().randrange(1, 10**9))
    rng = random.Random(seed)
    print("# seed %d (replay with SLUICE_CRASH_SEED=%d)" % (seed, seed), flush=True)
    acked = []

    def inject_until_killed():
        try:
            for _ in range(15):
                acked.append(send(inst.port, "alice@sender.test", "nobody@example.com"))
        except (OSError, smtplib.SMTPException):
            pass    # the kill: that message was never acknowledged

    for kill in range(3):
        sender = threading.Thread(target=inject_until_killed)
        sender.start()
        # Some bounces done, others on their way: then SIGKILL everything.
        first = len(acked)
        wait_for(lambda: len(acked) >= first + rng.randint(3, 12), 30, "some acknowledged mail")
        inst.postfix("abort")
        sender.join(60)
        # SIGKILL is asynchronous: start again once the old master is gone.
        wait_for(lambda: inst.postfix("status").returncode != 0, 30, "the killed master to go")
        inst.started = False
        inst.start()
    wait_for(lambda: all(notices_for(sink_b, q) for q in acked), 60,
             "a notice for every acknowledged message")
    missing = [q for q in acked if not notices_for(sink_b, q)]
    dups = sum(len(notices_for(sink_b, q)) - 1 for q in acked)
    tap.eq(missing, [], "kill -9 x3: every one of %d bounced messages got its notice "
           "(%d duplicates)" % (len(acked), dups))
tap.done()
