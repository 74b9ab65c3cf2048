"""postfix reload applies routing and cleanup settings, to new mail and to
mail already queued, as Postfix's reload does (its trivial-rewrite and
cleanup restart; qmgr resolves recipients when it activates a message).

relayhost points at a port where nothing listens: m1 is deferred. Then
`postconf -e relayhost=<sink>` and `postfix reload`: new mail (m2) goes to
the sink, and after `postqueue -f` so does m1. A header_checks
rule added by reload applies to the next message; a rate limit removed
by reload lets the mail it held back go; a new smtp_helo_name reaches
the sink's EHLO; a smtpd service added to master.cf starts, a removed
one stops. A reload with a
transport_maps table that cannot be opened keeps the old settings and
says so.
"""
import os
import re
import smtplib
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, free_port, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

tap = Tap()


def send(port, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.sendmail("me@sluice.test", [rcpt], "Subject: %s\r\n\r\nhello\r\n" % subject)


def subjects(handler):
    out = []
    for _, _, content, _ in list(handler.messages):
        m = re.search(rb"^Subject: (.*?)\r?$", content, re.M)
        out.append(m.group(1).decode() if m else None)
    return out


def reload(inst):
    before = inst.log().count("reload: configuration")
    r = inst.postfix("reload")
    wait_for(lambda: inst.log().count("reload: configuration") > before, 20, "the reload")
    return r


class EhloHandler(Handler):
    """Also records the EHLO names the client used."""

    def __init__(self):
        super().__init__()
        self.helos = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.helos.append(hostname)
        return await super().handle_EHLO(server, session, envelope, hostname, responses)


dead = free_port()
sink = EhloHandler()
with Server(sink) as srv, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % dead,
        "transport_retry_time": "3600s",
        "minimal_backoff_time": "3600s",
        "maximal_backoff_time": "3600s",
        "queue_run_delay": "3600s"}) as inst:
    inst.start()
    send(inst.port, "one@example.com", "m1")
    tap.ok(inst.wait_log(r"to=<one@example\.com>, relay=none.*status=deferred "
                         r"\(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d" % dead),
           "m1 deferred: nothing listens on the old relayhost")
    inst.cmd("postconf", "-e", "relayhost=[127.0.0.1]:%d" % srv.port, check=True)
    reload(inst)

    send(inst.port, "two@example.com", "m2")
    tap.ok(inst.wait_log(r"to=<two@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*"
                         r"status=sent" % srv.port), "new mail takes the reloaded relayhost")
    tap.ok("m2" in subjects(sink), "m2 at the sink")

    inst.cmd("postqueue", "-f", check=True)
    tap.ok(inst.wait_log(r"to=<one@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*"
                         r"status=sent" % srv.port), "queued mail takes it too once flushed")
    tap.ok("m1" in subjects(sink), "m1 at the sink")

    # header_checks added by a reload: the next message is held.
    with open(os.path.join(inst.etc, "header_checks"), "w") as f:
        f.write("/^Subject: hold me/ HOLD\n")
    inst.cmd("postconf", "-e", "header_checks=regexp:%s/header_checks" % inst.etc, check=True)
    reload(inst)
    send(inst.port, "three@example.com", "hold me")
    tap.ok(inst.wait_log(r"hold: header Subject: hold me"), "header_checks from the reload apply")
    tap.ok(re.search(r"^\w+!", inst.cmd("mailq").stdout, re.M), "the message is on hold",
           inst.cmd("mailq").stdout)

    # smtpd: clients that connect after the reload get the new settings.
    inst.cmd("postconf", "-e", "smtpd_banner=$myhostname ESMTP reloaded banner", check=True)
    inst.cmd("postconf", "-e", "smtpd_recipient_restrictions=check_recipient_access "
             "inline:{ blocked.test=REJECT }, permit_mynetworks, "
             "reject_unauth_destination", check=True)
    reload(inst)
    c = smtplib.SMTP()
    code, banner = c.connect("127.0.0.1", inst.port)
    tap.ok(code == 220 and b"reloaded banner" in banner, "smtpd_banner from the reload", banner)
    c.ehlo("client.test")
    c.mail("me@sluice.test")
    code, text = c.rcpt("someone@blocked.test")
    tap.ok(code == 554 and b"Recipient address rejected: Access denied" in text,
           "smtpd_recipient_restrictions from the reload", (code, text))
    c.quit()

    # qmgr's per-transport limits: a rate of one message an hour holds the
    # second and third message back; without it after a reload they go.
    inst.cmd("postconf", "-e", "smtp_destination_message_rate_limit=1/h", check=True)
    reload(inst)
    for i in range(3):
        send(inst.port, "rate%d@example.com" % i, "rate %d" % i)
    tap.ok(inst.wait_log(r"to=<rate\d@example\.com>, relay=127\.0\.0\.1.*status=sent"),
           "rate limit 1/h: the first message goes")
    queued = inst.cmd("mailq").stdout
    tap.eq(len(re.findall(r"rate\d@example\.com", queued)), 2,
           "the other two wait for the rate limit")
    inst.cmd("postconf", "-X", "smtp_destination_message_rate_limit", check=True)
    reload(inst)

    def all_sent():
        return len(re.findall(r"to=<rate\d@example\.com>, relay=127\.0\.0\.1.*status=sent",
                              inst.log())) == 3
    try:
        wait_for(all_sent, 30, "the other two after the reload")
    except TimeoutError:
        pass
    tap.ok(all_sent(), "the rate limit removed by a reload: the other two go at once")

    # The delivery agents: a new smtp_helo_name after the reload.
    inst.cmd("postconf", "-e", "smtp_helo_name=reloaded.helo.test", check=True)
    reload(inst)
    send(inst.port, "five@example.com", "m5")
    tap.ok(inst.wait_log(r"to=<five@example\.com>, relay=127\.0\.0\.1.*status=sent"),
           "m5 delivered after the agents' reload")
    tap.eq(sink.helos[-1] if sink.helos else None, "reloaded.helo.test",
           "smtp_helo_name from the reload (the new agent's EHLO)")

    # master.cf: a new smtpd service starts on reload, a removed one stops.
    port2 = free_port()
    mcf = os.path.join(inst.etc, "master.cf")
    with open(mcf) as f:
        before = f.read()
    with open(mcf, "a") as f:
        f.write("127.0.0.1:%d inet n - n - - smtpd\n" % port2)
    reload(inst)

    def greets(port):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                return c.noop()[0] == 250
        except OSError:
            return False
    tap.ok(greets(port2), "a smtpd service added to master.cf answers after the reload")
    with open(mcf, "w") as f:
        f.write(before)
    reload(inst)
    tap.ok(not greets(port2) and greets(inst.port),
           "removed from master.cf: it stops after the reload, the other one stays")

    # A table that cannot be opened: the old settings stay.
    inst.cmd("postconf", "-e", "transport_maps=hash:%s/no-such-table" % inst.etc, check=True)
    reload(inst)
    tap.ok(inst.wait_log(r"warning: reload: cleanup: .*no-such-table.*keeping the old settings"),
           "a broken transport_maps: warned, old settings kept")
    send(inst.port, "four@example.com", "m4")
    tap.ok(inst.wait_log(r"to=<four@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*"
                         r"status=sent" % srv.port), "mail still flows after the failed reload")
tap.done()
