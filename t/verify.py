"""Address verification against a running engine: reject_unverified_recipient
with an aiosmtpd sink that refuses one address. First RCPT: 450 4.1.1 while
the probe is out; the probes say MAIL/RCPT but never DATA and are logged
"status=deliverable" / "status=undeliverable"; then the bad address gets 550
5.1.1 and the good one 250; the cache (GDBM under data_directory) survives a
restart; reject_unverified_sender uses the same cache; no probe is queued,
bounced or delivered as mail."""
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


class ProbeHandler(Handler):
    """Also counts MAIL FROM commands, to see probes that never reach DATA."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.mail_from = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_from.append(address)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"


def rcpts(port, sender, addrs):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail(sender)
        return [(code, text.decode()) for code, text in (c.rcpt(a) for a in addrs)]


handler = ProbeHandler(rcpt={"bad@example.com": "550 5.1.1 no such user"})
with Server(handler) as sink:
    inst = Instance(main={
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "smtpd_recipient_restrictions": "reject_unverified_sender, reject_unverified_recipient",
        "unverified_sender_reject_code": "550",
        "address_verify_map": "btree:$data_directory/verify_cache",
    })
    data_dir = os.path.join(inst.root, "data")
    os.makedirs(data_dir)
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("data_directory = %s\n" % data_dir)
    with inst:
        inst.start()
        good, bad = "good@example.com", "bad@example.com"

        # 1. Unknown addresses: 450 while the probes are out.
        r = rcpts(inst.port, "", [good, bad])
        tap.eq(r[0], (450, "4.1.1 <good@example.com>: Recipient address rejected: unverified "
                      "address: Address verification in progress"),
               "first RCPT: 450 4.1.1 ... Address verification in progress")
        tap.eq(r[1][0], 450, "the bad address is unknown too at first")
        tap.ok(inst.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 450 4\.1\.1 "
                             r"<good@example\.com>: Recipient address rejected: unverified "
                             r"address: Address verification in progress; from=<> "
                             r"to=<good@example\.com> proto=ESMTP helo=<client\.test>"),
               "the 450 is logged as Postfix's NOQUEUE: reject line")

        # 2. The probes, as the smtp agent logs them.
        tap.ok(inst.wait_log(r"postfix/smtp\[\d+\]: [0-9A-F]+: to=<good@example\.com>, "
                             r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, delay=[\d.]+, "
                             r"delays=[\d./]+, dsn=2\.1\.5, status=deliverable \(250 2\.1\.5 Ok\)"
                             % sink.port), "probe of the good address: status=deliverable")
        tap.ok(inst.wait_log(r"[0-9A-F]+: to=<bad@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]"
                             r":%d, .*dsn=5\.1\.1, status=undeliverable \(host 127\.0\.0\.1"
                             r"\[127\.0\.0\.1\] said: 550 5\.1\.1 no such user \(in reply to "
                             r"RCPT TO command\)\)" % sink.port),
               "probe of the bad address: status=undeliverable with the server's reply")
        tap.ok(len(handler.messages) == 0 and
               handler.mail_from.count("double-bounce@sluice.test") >= 2,
               "the probes came from double-bounce@$myorigin and sent no DATA",
               (handler.mail_from, handler.messages))

        # 3. Known now: 550 for the bad one, 250 for the good one. (The agent
        # logs just before the result reaches the cache: poll briefly.)
        r = wait_for(lambda: (lambda x: x if x[0][0] != 450 and x[1][0] != 450 else None)(
            rcpts(inst.port, "", [good, bad])), 10, "the probe results in the cache")
        tap.eq(r[0][0], 250, "the verified address is accepted")
        tap.eq(r[1], (550, "5.1.1 <bad@example.com>: Recipient address rejected: undeliverable "
                      "address: host 127.0.0.1[127.0.0.1] said: 550 5.1.1 no such user (in "
                      "reply to RCPT TO command)"),
               "the bad address: 550 5.1.1 ... undeliverable address: host ... said: 550 ...")

        # 4. Real mail to the verified address goes through; no probe lingers.
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as c:
            c.ehlo("client.test")
            c.mail("")
            c.rcpt(good)
            code, _ = c.data("Subject: verified\r\n\r\nhi\r\n")
        tap.eq(code, 250, "mail to the verified address is queued")
        wait_for(lambda: len(handler.messages) == 1, 20, "delivery")
        tap.eq(handler.messages[0][1], [good], "and delivered (the only DATA the sink saw)")
        wait_for(lambda: "Mail queue is empty" in inst.cmd("postqueue", "-p").stdout, 20,
                 "an empty queue")
        log = inst.log()
        tap.ok(not re.search(r"qmgr\[\d+\]: [0-9A-F]+: from=<double-bounce@", log)
               and not re.search(r"status=bounced", log),
               "no probe went through qmgr or bounced", log)

        # 5. The cache survives a restart.
        inst.stop()
        inst.start()
        r = rcpts(inst.port, "", [bad, good])
        tap.ok(r[0][0] == 550 and r[1][0] == 250,
               "after a restart: 550 and 250 at once, from the cache", r)
        tap.ok(os.path.exists(os.path.join(data_dir, "verify_cache.db")),
               "address_verify_map is a GDBM file under data_directory")

        # 6. reject_unverified_sender, from the same cache.
        r = rcpts(inst.port, bad, [good])
        tap.eq(r[0], (550, "5.1.7 <bad@example.com>: Sender address rejected: undeliverable "
                      "address: host 127.0.0.1[127.0.0.1] said: 550 5.1.1 no such user (in "
                      "reply to RCPT TO command)"),
               "reject_unverified_sender: 550 5.1.7 ... Sender address rejected")
        tap.ok(not re.search(r"(warning|error|fatal|panic):", inst.log()),
               "no warnings in the maillog",
               "\n".join(l for l in inst.log().splitlines() if "warning" in l or "error" in l))
tap.done()
