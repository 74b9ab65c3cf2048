#!/usr/bin/python3
"""smtpd_relay.py - never an open relay: a client outside mynetworks
(bound to 127.0.0.2, mynetworks = 127.0.0.1/32) relaying to an outside
domain gets Postfix's "554 5.7.1 <rcpt>: Relay access denied" and the
NOQUEUE log line; mail to our own domains is accepted; an inside client
may relay. Also ETRN and VRFY over the wire."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_lib import Harness, Client, Tap  # noqa: E402

t = Tap(8)
h = Harness({"mynetworks": "127.0.0.1/32", "mydestination": "mx.test, localhost",
             "relay_domains": "relay.example"})
try:
    c = Client(h.port, source="127.0.0.2")
    c.cmd("EHLO outside.example")
    c.cmd("MAIL FROM:<spammer@outside.example>")
    r = c.cmd("RCPT TO:<victim@elsewhere.example>")
    t.ok(r == "554 5.7.1 <victim@elsewhere.example>: Relay access denied",
         "outside client, outside domain: 554 5.7.1 Relay access denied", r)
    t.ok(h.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <victim@elsewhere.example>: "
                    "Relay access denied; from=<spammer@outside.example> to=<victim@elsewhere.example> "
                    "proto=ESMTP helo=<outside.example>\n"), "the NOQUEUE reject line", h.logtext())
    t.ok(c.cmd("RCPT TO:<user@mx.test>") == "250 2.1.5 Ok", "outside client, our domain: accepted")
    t.ok(c.cmd("RCPT TO:<user@relay.example>") == "250 2.1.5 Ok", "outside client, relay_domains: accepted")
    t.ok(c.cmd("DATA") == "354 End data with <CR><LF>.<CR><LF>", "DATA with the accepted recipients")
    c.send("Subject: x\r\n\r\nx\r\n.\r\n")
    c.reply()
    msgs = h.wait_messages(1)
    t.ok(len(msgs) == 1 and msgs[0][0]["rcpt"] == ["<user@mx.test> notify=0 orcpt=",
                                                   "<user@relay.example> notify=0 orcpt="],
         "only the accepted recipients are queued", msgs)
    c.close()

    c = Client(h.port, source="127.0.0.1")
    c.cmd("EHLO inside.example")
    c.cmd("MAIL FROM:<me@mx.test>")
    t.ok(c.cmd("RCPT TO:<friend@elsewhere.example>") == "250 2.1.5 Ok", "inside client may relay")
    t.ok(c.cmd("RSET") == "250 2.0.0 Ok" and c.cmd("ETRN elsewhere.example") == "250 Queuing started"
         and h.wait_log("harness: ETRN elsewhere.example"), "ETRN reaches the flush hook")
    c.close()
finally:
    h.cleanup()
t.done()
