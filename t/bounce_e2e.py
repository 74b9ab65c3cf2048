"""End to end: notices from a real instance. Mail to example.com relays to
sink A, which answers 550 for nobody@example.com; mail for the senders'
domain (sender.test) goes by transport_maps to sink B, where the notices
arrive. Checks that the non-delivery notice is a delivery-status report
Python's email parses (multipart/report, Final-Recipient, Action: failed,
Status: 5.x.x, Diagnostic-Code), that NOTIFY=NEVER gives none, NOTIFY=SUCCESS
a success report, and that null-sender mail that bounces -- a notice
that itself bounces included -- gives no further notice (no loop).
"""
import email
import email.policy
import os
import re
import smtplib
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

tap = Tap()


def send(port, sender, rcpt, notify=None, body="Subject: test\r\n\r\nhello\r\n"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail(sender)
        code, text = c.rcpt(rcpt, options=["NOTIFY=" + notify] if notify else [])
        if code != 250:
            raise RuntimeError("RCPT: %d %s" % (code, text))
        code, text = c.data(body)
        return text.decode().split()[-1]


def notices_for(handler, qid):
    """Notices at sink B that report on queue ID qid."""
    out = []
    for mail_from, rcpts, content, _ in list(handler.messages):
        if re.search(rb"X-Postfix-Queue-ID: " + qid.encode() + rb"\r?\n", content):
            out.append((mail_from, rcpts, email.message_from_bytes(content,
                                                                  policy=email.policy.default)))
    return out


def groups(msg):
    return msg.get_payload()[1].get_payload()


sink_a = Handler(rcpt={"nobody@example.com": "550 5.1.1 no such user"})
sink_b = Handler(rcpt={"bad@sender.test": "550 5.1.1 bad sender mailbox"})
with Server(sink_a) as a, Server(sink_b) as b, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % a.port,
        "transport_maps": "inline:{ sender.test=smtp:[127.0.0.1]:%d }" % b.port}) as inst:
    inst.start()

    # 1. A bounce: the sender's notice arrives at sink B and parses.
    qid = send(inst.port, "alice@sender.test", "nobody@example.com")
    tap.ok(inst.wait_log(r"%s: to=<nobody@example\.com>.*status=bounced" % qid),
           "550 from sink A: status=bounced")
    m = inst.wait_log(r"postfix/bounce\[\d+\]: %s: sender non-delivery notification: "
                      r"([0-9A-F]+)" % qid)
    tap.ok(m, "log: ID: sender non-delivery notification: NEWID")
    nid = m.group(1)
    tap.ok(inst.wait_log(r"%s: to=<alice@sender\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*"
                         r"status=sent" % (nid, b.port)),
           "the notice is delivered to the sender's server")
    wait_for(lambda: notices_for(sink_b, qid), 20, "the notice at sink B")
    mail_from, rcpts, msg = notices_for(sink_b, qid)[0]
    tap.eq((mail_from, rcpts), ("<>", ["alice@sender.test"]),
           "envelope: null sender, to the original sender")
    tap.eq(msg.get_content_type(), "multipart/report", "Content-Type: multipart/report")
    tap.eq(msg.get_param("report-type"), "delivery-status", "report-type=delivery-status")
    tap.eq(str(msg["Subject"]), "Undelivered Mail Returned to Sender", "subject")
    tap.ok(msg["Message-ID"] and msg["Date"] and msg["Received"],
           "cleanup added Message-ID and Received:", str(msg)[:600])
    parts = msg.get_payload()
    tap.eq([p.get_content_type() for p in parts],
           ["text/plain", "message/delivery-status", "message/rfc822"], "the three parts")
    g = groups(msg)
    r = g[1] if len(g) > 1 else {}
    tap.eq(g[0]["X-Postfix-Queue-ID"], qid, "X-Postfix-Queue-ID is the bounced message's")
    tap.eq(r.get("Final-Recipient"), "rfc822; nobody@example.com", "Final-Recipient")
    tap.eq(r.get("Action"), "failed", "Action: failed")
    tap.ok(re.match(r"5\.\d+\.\d+$", r.get("Status", "")), "Status: 5.x.x", r.get("Status"))
    tap.eq(r.get("Diagnostic-Code"), "smtp; 550 5.1.1 no such user", "Diagnostic-Code")
    tap.eq(r.get("Remote-MTA"), "dns; 127.0.0.1", "Remote-MTA")
    tap.eq(str(parts[2].get_payload()[0]["Subject"]), "test", "the original is returned")

    # 2. NOTIFY=NEVER: no notice. 3. null sender: no notice.
    q_never = send(inst.port, "alice@sender.test", "nobody@example.com", notify="NEVER")
    q_null = send(inst.port, "", "nobody@example.com")
    # 4. A notice that bounces itself (sink B refuses bad@sender.test).
    q_bad = send(inst.port, "bad@sender.test", "nobody@example.com")
    m = inst.wait_log(r"%s: sender non-delivery notification: ([0-9A-F]+)" % q_bad)
    bad_nid = m.group(1)
    tap.ok(inst.wait_log(r"%s: to=<bad@sender\.test>.*status=bounced" % bad_nid),
           "the notice to bad@sender.test bounces")
    tap.ok(inst.wait_log(r"%s: removed" % bad_nid), "and is removed")
    # 5. NOTIFY=SUCCESS: a success report; a marker for ordering too.
    q_ok = send(inst.port, "alice@sender.test", "ok@example.com", notify="SUCCESS")
    wait_for(lambda: notices_for(sink_b, q_ok), 20, "the success notice at sink B")
    _, _, smsg = notices_for(sink_b, q_ok)[0]
    sg = groups(smsg)
    tap.eq((str(smsg["Subject"]), sg[1]["Final-Recipient"], sg[1]["Action"], sg[1]["Status"]),
           ("Successful Mail Delivery Report", "rfc822; ok@example.com", "relayed", "2.0.0"),
           "NOTIFY=SUCCESS: a success report (Action: relayed)")
    tap.ok(inst.wait_log(r"%s: sender delivery status notification: [0-9A-F]+" % q_ok),
           "log: sender delivery status notification")
    for q in (q_never, q_null, q_bad, bad_nid):
        inst.wait_log(r"%s: removed" % q)
    # Everything due has been handed on: one more bounce, and its notice, as a fence.
    q_fence = send(inst.port, "alice@sender.test", "nobody@example.com")
    wait_for(lambda: notices_for(sink_b, q_fence), 20, "the fence notice")
    log = inst.log()
    tap.eq(notices_for(sink_b, q_never), [], "NOTIFY=NEVER: no notice at the sender's server")
    tap.ok(not re.search(r"%s: sender non-delivery" % q_never, log), "NOTIFY=NEVER: none logged")
    tap.ok(not re.search(r"%s: \S+ non-delivery" % q_null, log)
           and not notices_for(sink_b, q_null)
           and not any(re.search(rb"X-Postfix-Queue-ID: " + q_null.encode(), c)
                       for _, _, c, _ in sink_a.messages),
           "null sender bounced: no notice anywhere")
    tap.ok(not re.search(r"%s: \S+ non-delivery" % bad_nid, log)
           and not notices_for(sink_b, bad_nid),
           "a bounced notice: no notice about the notice (no loop)")
    tap.eq(sum(1 for _, _, c, _ in sink_b.messages if b"multipart/report" in c), 3,
           "exactly three notices reached sink B (bounce, success, fence)")
tap.done()
