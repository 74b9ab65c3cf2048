"""End to end: a real client -> Sluice (smtpd, cleanup, journal, qmgr, smtp)
-> an aiosmtpd sink answering per recipient. Checks what the client, the
sink and the maillog see: 250 with the queue ID, delivery, deferral and
retry after `postfix flush`, bounce, Postfix's log lines in order (so that
pflogsumm counts them), and relay denied to an outside client."""
import os
import re
import smtplib
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

tap = Tap()


def send(port, rcpts, body="Subject: test\r\n\r\nhello\r\n", sender="me@sluice.test",
         source=None, notify=None):
    with smtplib.SMTP("127.0.0.1", port, timeout=30,
                      source_address=(source, 0) if source else None) as c:
        c.ehlo("client.test")
        c.mail(sender)
        results = [c.rcpt(r, options=["NOTIFY=" + notify] if notify else []) for r in rcpts]
        if not any(code == 250 for code, _ in results):
            return results, None
        code, text = c.data(body)
        return results, (code, text.decode())


handler = Handler(rcpt={"later@example.com": "450 4.2.0 try later",
                        "nobody@example.com": "550 5.1.1 no such user"})
with Server(handler) as sink, Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port}) as inst:
    inst.start()

    # 1. Accepted, queued, relayed.
    rc, (code, text) = send(inst.port, ["ok@example.com"])
    m = re.match(r"2\.0\.0 Ok: queued as ([0-9A-F]+)$", text)
    tap.ok(code == 250 and m, "250 2.0.0 Ok: queued as ID", text)
    qid = m.group(1) if m else "NONE"
    wait_for(lambda: len(handler.messages) >= 1, 20, "delivery to the sink")
    mail_from, rcpts, content, _ = handler.messages[0]
    tap.eq((mail_from, rcpts), ("me@sluice.test", ["ok@example.com"]), "sink got the envelope")
    tap.ok(re.search(rb"Received: from client\.test \(localhost \[127\.0\.0\.1\]\)\r?\n\s+by "
                     rb"sluice\.test \(Sluice\) with ESMTP id " + qid.encode(), content),
           "Received: header names the client and the queue ID", content[:400])
    tap.ok(re.search(rb"^Message-I[dD]: <", content, re.M), "Message-ID was added")
    inst.wait_log(r"%s: removed" % qid)
    log = inst.log()
    order = [r"postfix/smtpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]",
             r"postfix/smtpd\[\d+\]: %s: client=localhost\[127\.0\.0\.1\]" % qid,
             r"postfix/cleanup\[\d+\]: %s: message-id=<" % qid,
             r"postfix/qmgr\[\d+\]: %s: from=<me@sluice\.test>, size=\d+, nrcpt=1 \(queue active\)"
             % qid,
             r"postfix/smtp\[\d+\]: %s: to=<ok@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
             r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(250 "
             % (qid, sink.port),
             r"postfix/qmgr\[\d+\]: %s: removed" % qid]
    pos, ok = 0, True
    for rx in order:
        mm = re.compile(rx).search(log, pos)
        if not mm:
            ok = tap.ok(False, "log line in order: " + rx, log)
            break
        pos = mm.end()
    if ok:
        tap.ok(True, "Postfix's log lines, in Postfix's order")

    # 2. Deferred, then sent after postfix flush.
    rc, (code, text) = send(inst.port, ["later@example.com"])
    qid2 = text.split()[-1]
    tap.ok(inst.wait_log(r"%s: to=<later@example\.com>.*dsn=4\.2\.0, status=deferred "
                         r"\(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 450 4\.2\.0 try later "
                         r"\(in reply to RCPT TO command\)\)" % qid2),
           "450 from the sink: status=deferred with Postfix's reason")
    del handler.rcpt["later@example.com"]
    r = inst.postfix("flush")
    tap.eq(r.returncode, 0, "postfix flush exits 0")
    tap.ok(inst.wait_log(r"%s: to=<later@example\.com>.*status=sent" % qid2),
           "the deferred recipient is delivered after the flush")
    tap.ok(inst.wait_log(r"%s: removed" % qid2), "and the message is removed")

    # 3. Bounced (no notice: the sender's domain has no delivery agent here).
    rc, (code, text) = send(inst.port, ["nobody@example.com"], notify="NEVER")
    qid3 = text.split()[-1]
    tap.ok(inst.wait_log(r"%s: to=<nobody@example\.com>.*dsn=5\.1\.1, status=bounced "
                         r"\(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1 no such user" % qid3),
           "550 from the sink: status=bounced")

    # 4. pflogsumm reads the log.
    if os.path.exists("/usr/sbin/pflogsumm"):
        out = subprocess.run(["/usr/sbin/pflogsumm", "--smtpd-stats", inst.maillog],
                             capture_output=True, text=True).stdout
        def count(label):
            mm = re.search(r"^\s*(\d+)\s+%s\b" % label, out, re.M)
            return int(mm.group(1)) if mm else -1
        tap.eq(count("received"), 3, "pflogsumm: 3 received")
        tap.eq(count("delivered"), 2, "pflogsumm: 2 delivered")
        tap.eq(count("deferred"), 1, "pflogsumm: 1 deferred")
        tap.eq(count("bounced"), 1, "pflogsumm: 1 bounced")
    else:
        tap.ok(False, "pflogsumm is installed (.ci/deps)")

with Server(Handler()) as sink, Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port,
                                               "mynetworks": "127.0.0.1/32"}) as inst:
    # 5. Never an open relay: a client outside mynetworks, to an outside domain.
    inst.start()
    rc, data = send(inst.port, ["victim@example.org"], source="127.0.0.2")
    tap.eq(rc[0], (554, b"5.7.1 <victim@example.org>: Relay access denied"),
           "outside client relaying: 554 5.7.1 Relay access denied")
    tap.ok(inst.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.2\]|"
                         r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.2\]: 554 5\.7\.1 "
                         r"<victim@example\.org>: Relay access denied; from=<me@sluice\.test> "
                         r"to=<victim@example\.org> proto=ESMTP helo=<client\.test>"),
           "NOQUEUE: reject line as Postfix writes it")
    tap.eq(len(sink.handler.messages), 0, "nothing was relayed")
# 6. STARTTLS: the Received: header tells how the message came in.
with Server(Handler()) as sink:
    certdir = __import__("tempfile").mkdtemp(prefix="sluice-cert-")
    cert, key = os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost"], capture_output=True, check=True)
    with Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port,
                        "smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key,
                        "smtpd_tls_security_level": "may"}) as inst:
        inst.start()
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as c:
            c.ehlo("client.test")
            c.starttls(context=ctx)
            c.ehlo("client.test")
            c.sendmail("me@sluice.test", ["tls@example.com"], "Subject: tls\r\n\r\nhi\r\n")
        wait_for(lambda: sink.handler.messages, 20, "TLS message at the sink")
        content = sink.handler.messages[0][2]
        tap.ok(re.search(rb"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)", content)
               and re.search(rb"with ESMTPS id", content),
               "Received: header carries the TLS protocol and cipher, with ESMTPS", content[:500])
    __import__("shutil").rmtree(certdir, ignore_errors=True)
tap.done()
