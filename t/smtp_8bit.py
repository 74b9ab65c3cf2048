"""smtp_8bit.py - 8BITMIME in the SMTP client: BODY=8BITMIME and the content
unchanged for a server that announces 8BITMIME; for one that does not,
8bit MIME parts converted to quoted-printable (Postfix's default), and
left alone with disable_mime_output_conversion = yes (end to end through a
real instance, since that is a main.cf parameter)."""
import os
import re
import smtplib
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server, harness  # noqa: E402

t = Tap(10)


class No8bitHandler(Handler):
    """A server that does not announce 8BITMIME."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [r for r in responses if "8BITMIME" not in r.upper()]


BODY = (b"From: a@example.org\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=\"b1\"\n"
        b"\n"
        b"--b1\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"caf\xc3\xa9 = cr\xc3\xa8me \n"
        b"--b1\n"
        b"Content-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n"
        b"\n"
        b"AAECAwQ=\n"
        b"--b1--\n")

WANT = (b"From: a@example.org\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=\"b1\"\n"
        b"\n"
        b"--b1\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: quoted-printable\n"
        b"\n"
        b"caf=C3=A9 =3D cr=C3=A8me=20\n"
        b"--b1\n"
        b"Content-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n"
        b"\n"
        b"AAECAwQ=\n"
        b"--b1--\n")


def lf(content):
    return content.replace(b"\r\n", b"\n")


with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "msg")
    with open(path, "wb") as f:
        f.write(BODY)

    # 1-3: no 8BITMIME at the server: converted, no BODY= parameter.
    h = No8bitHandler()
    with Server(h) as srv:
        rc, out, logs, res = harness(["-8", "-i", path, "[127.0.0.1]:%d" % srv.port,
                                      "a@example.com"])
    got = h.messages[0] if h.messages else (None, None, b"", [])
    t.ok(res.get("a@example.com", ("",))[0] == "sent", "sent to a server without 8BITMIME", out)
    t.ok(lf(got[2]) == WANT, "8bit part arrives quoted-printable, base64 part unchanged",
         repr(got[2]))
    t.ok(not any("BODY=" in o.upper() for o in got[3]), "no BODY=8BITMIME", repr(got[3]))

    # 4: 8-bit bytes without BODY=8BITMIME from the client: converted too.
    h = No8bitHandler()
    with Server(h) as srv:
        rc, out, logs, res = harness(["-i", path, "[127.0.0.1]:%d" % srv.port, "a@example.com"])
    got = h.messages[0] if h.messages else (None, None, b"", [])
    t.ok(lf(got[2]) == WANT, "8-bit bytes without BODY=8BITMIME: converted", repr(got[2]))

    # 5-6: the server announces 8BITMIME: passed through unchanged.
    h = Handler()
    with Server(h) as srv:
        rc, out, logs, res = harness(["-8", "-i", path, "[127.0.0.1]:%d" % srv.port,
                                      "a@example.com"])
    got = h.messages[0] if h.messages else (None, None, b"", [])
    t.ok(lf(got[2]) == BODY, "8BITMIME server: content unchanged", repr(got[2]))
    t.ok(any(o.upper() == "BODY=8BITMIME" for o in got[3]), "8BITMIME server: BODY=8BITMIME",
         repr(got[3]))


# 7-10: end to end, with and without disable_mime_output_conversion.
def relay_once(main_extra):
    h = No8bitHandler()
    with Server(h) as sink, Instance(main=dict({"relayhost": "[127.0.0.1]:%d" % sink.port},
                                               **main_extra)) as inst:
        inst.start()
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as c:
            c.ehlo("client.test")
            c.sendmail("me@sluice.test", ["x@example.com"], BODY.replace(b"\n", b"\r\n"),
                       mail_options=["BODY=8BITMIME"])
        wait_for(lambda: h.messages, 30, "delivery to the sink")
        inst.wait_log(r"status=sent")
        return lf(h.messages[0][2]), inst.log()


content, log = relay_once({})
t.ok(WANT.split(b"\n\n", 1)[1] in content and b"\xc3" not in content,
     "end to end: converted for a server without 8BITMIME", repr(content))
t.ok(re.search(r"postfix/smtp\[\d+\]: [0-9A-F]+: to=<x@example\.com>.*status=sent", log),
     "end to end: sent", log)
content, log = relay_once({"disable_mime_output_conversion": "yes"})
t.ok(BODY.split(b"\n\n", 1)[1] in content,
     "disable_mime_output_conversion = yes: content unchanged", repr(content))
t.ok("warning" not in log, "no warnings", log)
