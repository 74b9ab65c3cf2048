"""sendmail -bv end to end: a real instance with pickup receives the probe
through postdrop, delivers nothing, and mails the sender a "Mail Delivery
Status Report" -- multipart/report; report-type=delivery-status, parsed with
Python's email -- with Action: deliverable or undeliverable per recipient:
a relayed domain, a local user, an unknown local user, a domain routed to
error:, a virtual alias (expanded first) and an unknown virtual alias.
Also: stdout as Postfix's, the log lines, -t refused, the probe never
queued or relayed."""
import email
import email.policy
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import BUILD, DEFAULT_SERVICES, Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

tap = Tap()
SENDMAIL = os.path.join(BUILD, "cli", "sendmail")
SENDER = "alice@sender.test"
LOCAL_USER = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()

notices = Handler()
relay = Handler()
with Server(notices) as nsink, Server(relay) as rsink:
    inst = Instance(master=DEFAULT_SERVICES + ["pickup unix n - n 60 1 pickup",
                                               "local unix - n n - - local"])
    tmap = os.path.join(inst.etc, "transport")
    with open(tmap, "w") as f:
        f.write("sender.test smtp:[127.0.0.1]:%d\n"
                "example.com smtp:[127.0.0.1]:%d\n"
                "nowhere.test error:5.1.2 this domain is closed\n" % (nsink.port, rsink.port))
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("transport_maps = texthash:%s\n"
                "virtual_alias_domains = valias.test\n"
                "virtual_alias_maps = inline:{ known@valias.test=fwd@example.com }\n" % tmap)
    with inst:
        inst.start()
        rcpts = ["ok@example.com", "%s@sluice.test" % LOCAL_USER, "nosuchuser@sluice.test",
                 "x@nowhere.test", "known@valias.test", "unknown@valias.test"]
        r = subprocess.run([SENDMAIL, "-C", inst.etc, "-bv", "-f", SENDER] + rcpts,
                           capture_output=True, text=True, env=inst.env(), timeout=60,
                           stdin=subprocess.DEVNULL)
        tap.eq((r.returncode, r.stdout),
               (0, "Mail Delivery Status Report will be mailed to <%s>.\n" % SENDER),
               "sendmail -bv: exit 0 and Postfix's line on stdout " + r.stderr)

        def report():
            for mail_from, to, content, _ in notices.messages:
                return mail_from, to, email.message_from_bytes(content,
                                                                policy=email.policy.default)
        try:
            mail_from, to, msg = wait_for(report, 30, "the report at the sender's server")
        except TimeoutError:
            mail_from, to, msg = None, None, None
        tap.eq((mail_from, to), ("<>", [SENDER]), "report: from <>, to the sender",)
        ok = msg is not None and msg.get_content_type() == "multipart/report" \
            and msg.get_param("report-type") == "delivery-status"
        tap.ok(ok, "report: multipart/report; report-type=delivery-status",
               str(msg)[:1500] if msg else inst.log()[-3000:])
        if not ok:
            tap.done()
        tap.eq(str(msg["Subject"]), "Mail Delivery Status Report", "Subject as Postfix's")
        parts = msg.get_payload()
        tap.eq([p.get_content_type() for p in parts],
               ["text/plain", "message/delivery-status", "text/rfc822-headers"],
               "text, delivery-status, the probe's headers")
        text = parts[0].get_content()
        tap.ok("Enclosed is the mail delivery report that you requested." in text,
               "the text says it is the requested report", text)
        groups = parts[1].get_payload()
        per = {}
        for g in groups[1:]:
            final = str(g.get("Final-Recipient", "")).split(";", 1)[-1].strip()
            per[final] = (g.get("Action"), g.get("Status"), str(g.get("Diagnostic-Code", "")),
                          str(g.get("Original-Recipient", "")))
        tap.eq(len(groups) - 1, len(rcpts), "one recipient group per recipient")
        want = {
            "ok@example.com": ("deliverable", "2.0.0"),
            "%s@sluice.test" % LOCAL_USER: ("deliverable", "2.0.0"),
            "nosuchuser@sluice.test": ("undeliverable", "5.1.1"),
            "x@nowhere.test": ("undeliverable", "5.1.2"),
            "fwd@example.com": ("deliverable", "2.0.0"),
            "unknown@valias.test": ("undeliverable", "5.1.1"),
        }
        tap.eq({k: v[:2] for k, v in per.items()}, want,
               "Action and Status per recipient (virtual alias expanded first)")
        tap.ok('unknown user: "nosuchuser"' in per.get("nosuchuser@sluice.test", ("",) * 3)[2],
               "unknown local user: local(8)'s reason", per)
        tap.ok("this domain is closed" in per.get("x@nowhere.test", ("",) * 3)[2],
               "error: transport: its text is the diagnostic", per)
        tap.ok("delivers to mailbox" in per.get("%s@sluice.test" % LOCAL_USER, ("",) * 3)[2],
               "local user: delivers to mailbox", per)
        tap.ok("known@valias.test" in per.get("fwd@example.com", ("",) * 4)[3],
               "the virtual alias's original recipient is reported", per)
        probe = parts[2].get_content()
        tap.ok(re.search(r"^Subject: probe\r?$", probe, re.M) and
               re.search(r"^From: %s\r?$" % re.escape(SENDER), probe, re.M),
               "the probe's headers: From: the sender, Subject: probe", probe)

        log = inst.log()
        m = re.search(r"postfix/pickup\[\d+\]: ([0-9A-F]+): uid=\d+ from=<%s>" % re.escape(SENDER),
                      log)
        pid = m.group(1) if m else "NONE"
        tap.ok(re.search(r"postfix/smtp\[\d+\]: %s: to=<ok@example\.com>, relay=none, delay=[\d.]+, "
                         r"delays=[\d.]+/0/0/0, dsn=2\.0\.0, status=deliverable \(delivers via smtp "
                         r"to \[127\.0\.0\.1\]:%d\)" % (pid, rsink.port), log),
               "log: to=<...>, ..., status=deliverable (...)", log[-3000:])
        tap.ok(re.search(r"postfix/local\[\d+\]: %s: to=<nosuchuser@sluice\.test>, relay=local, .*"
                         r"dsn=5\.1\.1, status=undeliverable \(unknown user: \"nosuchuser\"\)" % pid,
                         log), "log: status=undeliverable for the unknown user", log[-3000:])
        tap.ok(re.search(r"postfix/bounce\[\d+\]: %s: sender delivery status notification: "
                         r"[0-9A-F]+" % pid, log), "log: sender delivery status notification")
        tap.ok(inst.wait_log(r"%s: removed" % pid), "log: the probe is removed")
        tap.ok(not re.search(r"%s: to=<[^>]*>, .*status=(sent|bounced|deferred)" % pid, log)
               and not re.search(r"%s: from=<" % pid, log),
               "the probe never reached the queue manager")
        tap.eq(relay.messages, [], "nothing was relayed to example.com")
        maildrop = os.path.join(inst.spool, "maildrop")
        tap.ok(wait_for(lambda: os.listdir(maildrop) == [], 10, "empty maildrop"),
               "the maildrop file is gone")

        r = subprocess.run([SENDMAIL, "-C", inst.etc, "-bv", "-t"], capture_output=True,
                           text=True, env=inst.env(), timeout=60, stdin=subprocess.DEVNULL)
        tap.ok(r.returncode == 64 and "-t option cannot be used with -bv" in r.stderr,
               "sendmail -bv -t: EX_USAGE", r.stderr)
        r = subprocess.run([SENDMAIL, "-C", inst.etc, "-bv"], capture_output=True,
                           text=True, env=inst.env(), timeout=60, stdin=subprocess.DEVNULL)
        tap.ok(r.returncode == 64 and "Recipient addresses must be specified" in r.stderr,
               "sendmail -bv without recipients: EX_USAGE", r.stderr)
tap.done()
