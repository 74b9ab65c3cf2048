"""MX lookup through the real engine: the instance relays to domains whose
MX records the test's own DNS server on loopback serves (smtp_dns_server).
A domain with a dead primary MX and a live backup is delivered to the
backup; a domain whose MX greets with the instance's own myhostname is
bounced with Postfix's "mail for DOMAIN loops back to myself", and the
sender's non-delivery notice says so; a domain that does not exist bounces
with Postfix's "Host or domain name not found"."""
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
from smtp_testlib import DnsServer, Handler, Server  # noqa: E402

tap = Tap()


def send(port, sender, rcpt):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        code, text = c.mail(sender)
        assert code == 250, text
        code, text = c.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = c.data("Subject: mx test\r\n\r\nhello\r\n")
        assert code == 250, text
        return text.decode().split()[-1]


backup = Handler()
notices = Handler()
with Server(backup) as live, Server(Handler(), server_hostname="sluice.test") as me, \
        Server(notices) as nsink:
    port = live.port
    records = {
        ("mx.test", "MX"): [(20, "backup.mx.test"), (10, "primary.mx.test")],
        ("primary.mx.test", "A"): ["127.0.0.2"],    # nothing listens there
        ("backup.mx.test", "A"): ["127.0.0.1"],
        ("loop.test", "MX"): [(10, "self.loop.test")],
        ("self.loop.test", "A"): ["127.0.0.1"],
    }
    with DnsServer(records) as dns, Instance(main={
            "smtp_dns_server": "127.0.0.1:%d" % dns.port,
            # Nexthops without [] get an MX lookup; the port is the sinks'.
            "transport_maps": "inline:{ mx.test=smtp:mx.test:%d, loop.test=smtp:loop.test:%d, "
                              "nosuch.test=smtp:nosuch.test:%d, sender.test=smtp:[127.0.0.1]:%d }"
                              % (port, me.port, port, nsink.port)}) as inst:
        inst.start()

        # 1. Dead primary, live backup.
        q1 = send(inst.port, "alice@sender.test", "bob@mx.test")
        tap.ok(inst.wait_log(r"%s: to=<bob@mx\.test>, relay=backup\.mx\.test\[127\.0\.0\.1\]:%d, "
                             r"delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(250 "
                             % (q1, port)),
               "primary MX refused: delivered to the backup MX (relay=backup.mx.test[...])",
               inst.log()[-2000:])
        tap.eq([(f, r) for f, r, _, _ in backup.messages], [("alice@sender.test", ["bob@mx.test"])],
               "the backup MX got the message")
        asked = [q for q in dns.queries if q[0] in ("mx.test", "primary.mx.test",
                                                    "backup.mx.test")]
        tap.ok(("mx.test", "MX") in asked and asked.index(("primary.mx.test", "A"))
               < asked.index(("backup.mx.test", "A")),
               "the engine asked our DNS server: MX, then the primary's address first", asked)

        # 2. The MX is this host: loops back to myself.
        q2 = send(inst.port, "alice@sender.test", "carol@loop.test")
        tap.ok(inst.wait_log(r"%s: to=<carol@loop\.test>, relay=self\.loop\.test\[127\.0\.0\.1\]:%d, "
                             r"delay=[\d.]+, delays=[\d./]+, dsn=5\.4\.6, status=bounced "
                             r"\(mail for loop\.test loops back to myself\)" % (q2, me.port)),
               "MX greets as our myhostname: bounced 5.4.6 (mail for loop.test loops back "
               "to myself)", inst.log()[-2000:])
        tap.eq(len(me.handler.messages), 0, "nothing delivered to ourselves")

        def notice():
            for f, r, content, _ in notices.messages:
                if re.search(rb"X-Postfix-Queue-ID: " + q2.encode() + rb"\r?\n", content):
                    return email.message_from_bytes(content, policy=email.policy.default)
        msg = None
        try:
            msg = wait_for(notice, 20, "the non-delivery notice")
        except TimeoutError:
            pass
        ds = msg.get_payload()[1].get_payload() if msg and msg.is_multipart() else []
        rcpt = ds[1] if len(ds) > 1 else {}
        tap.ok(msg is not None and msg.get_content_type() == "multipart/report"
               and rcpt.get("Action") == "failed" and rcpt.get("Status") == "5.4.6"
               and "loops back to myself" in str(msg.get_payload()[0]),
               "the sender's notice: Action: failed, Status: 5.4.6, and the reason in the text",
               str(msg)[:1500] if msg else "no notice")

        # 3. No such domain.
        q3 = send(inst.port, "alice@sender.test", "dave@nosuch.test")
        tap.ok(inst.wait_log(r"%s: to=<dave@nosuch\.test>, relay=none, .*dsn=5\.4\.4, "
                             r"status=bounced \(Host or domain name not found\. Name service "
                             r"error for name=nosuch\.test type=MX: Host not found" % q3),
               "unknown domain: bounced 5.4.4 Host or domain name not found",
               inst.log()[-2000:])
tap.done()
