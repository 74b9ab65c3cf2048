"""QMQP server (qmqpd) end to end, with a QMQP client written here (sockets
and netstrings): an accepted message reaches an aiosmtpd sink with its
envelope and a Received: ... with QMQP header, the reply is "KOk: queued as
ID"; an unauthorised client is refused with Postfix's "D" reply; garbage,
oversized and inconsistent netstrings get a clear "D" reply before anything
big is read; a silent client times out; Postfix's log lines; the server
still works after all of it."""
import os
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import DEFAULT_SERVICES, Instance, Tap, free_port, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

tap = Tap()


def ns(b):
    return b"%d:" % len(b) + b + b","


def packet(message, sender, rcpts):
    return ns(ns(message) + ns(sender) + b"".join(ns(r) for r in rcpts))


def reply_of(sock):
    """Reads one netstring reply; returns its text, or None on close."""
    data = b""
    sock.settimeout(20)
    while True:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            chunk = b""
        if not chunk:
            break
        data += chunk
        m = re.match(rb"(\d+):", data)
        if m and len(data) >= m.end() + int(m.group(1)) + 1:
            break
    m = re.match(rb"(\d+):", data)
    if not m:
        return None if not data else data.decode(errors="replace")
    body = data[m.end():m.end() + int(m.group(1))]
    if data[m.end() + int(m.group(1)):m.end() + int(m.group(1)) + 1] != b",":
        return "BAD NETSTRING %r" % data
    return body.decode(errors="replace")


def qmqp(port, data, source=None, shut=True):
    with socket.create_connection(("127.0.0.1", port), timeout=20,
                                  source_address=(source, 0) if source else None) as s:
        try:
            if data:
                s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass		# a refused client may be answered and closed at once
        return reply_of(s)


def port_open():
    try:
        socket.create_connection(("127.0.0.1", qport), timeout=1).close()
        return True
    except OSError:
        return False


def by_subject(handler, subject, timeout=20):
    def find():
        for m in handler.messages:
            if re.search(rb"^Subject: " + re.escape(subject.encode()) + rb"\r?$", m[2], re.M):
                return m
        return None
    try:
        return wait_for(find, timeout, "message %r at the sink" % subject)
    except TimeoutError:
        return None


handler = Handler()
qport = free_port()
master = DEFAULT_SERVICES + ["127.0.0.1:%d inet n - n - - qmqpd" % qport]
main = {"qmqpd_authorized_clients": "127.0.0.1", "qmqpd_error_delay": "0s",
        "qmqpd_timeout": "2s", "message_size_limit": "100000"}
with Server(handler) as sink, Instance(main=dict(main, relayhost="[127.0.0.1]:%d" % sink.port),
                                       master=master) as inst:
    inst.start()
    wait_for(port_open, 20, "QMQP port")

    # 1. An accepted message.
    msg = b"From: list@example.org\nSubject: q1\n\nline one\nline two\n"
    r = qmqp(qport, packet(msg, b"list-owner@example.org", [b"a@example.com", b"b@example.com"]))
    mm = re.match(r"KOk: queued as ([0-9A-F]+)$", r or "")
    tap.ok(mm, "accepted: reply KOk: queued as ID", r)
    qid = mm.group(1) if mm else "NONE"
    m = by_subject(handler, "q1")
    tap.ok(m and (m[0], sorted(m[1])) == ("list-owner@example.org", ["a@example.com", "b@example.com"]),
           "the sink got the QMQP envelope", m and m[:2])
    tap.ok(m and re.search(rb"Received: from localhost \(localhost \[127\.0\.0\.1\]\)\r\n\s+by sluice\.test "
                           rb"\(Sluice\) with QMQP id " + qid.encode(), m[2]),
           "Received: ... with QMQP id ID", m and m[2][:300])
    tap.ok(m and b"\r\nline one\r\nline two\r\n" in m[2], "LF lines became CRLF", m and m[2])
    log_order = [r"postfix/qmqpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]",
                 r"postfix/qmqpd\[\d+\]: %s: client=localhost\[127\.0\.0\.1\]" % qid,
                 r"postfix/qmqpd\[\d+\]: disconnect from localhost\[127\.0\.0\.1\]"]

    def in_order(log):
        pos = 0
        for rx in log_order:
            found = re.compile(rx).search(log, pos)
            if not found:
                return False
            pos = found.end()
        return True

    # The port probe above logs its own connect/disconnect: wait for the
    # whole sequence of this session, which ends after the reply.
    try:
        wait_for(lambda: in_order(inst.log()), 20, "the qmqpd lines in order")
        tap.ok(True, "Postfix's qmqpd log lines (connect, client=, disconnect)")
    except TimeoutError:
        tap.ok(False, "Postfix's qmqpd log lines (connect, client=, disconnect)", inst.log())

    # 2. An unauthorised client: refused before anything is read.
    r = qmqp(qport, None, source="127.0.0.2", shut=False)
    tap.eq(r, "DError: unknown[127.0.0.2] is not authorized to use this service",
           "unauthorised client: D reply as Postfix's")
    tap.ok(inst.wait_log(r"qmqpd\[\d+\]: disconnect from unknown\[127\.0\.0\.2\]"),
           "the refused client is logged and disconnected")

    # 3. Garbage instead of a netstring.
    r = qmqp(qport, b"HELO there\r\n")
    tap.eq(r, "Dnetstring format error while receiving QMQP packet header", "garbage: format error")

    # 4. A message larger than message_size_limit: refused from its length
    # alone, before the client sends it (so nothing that big is allocated).
    with socket.create_connection(("127.0.0.1", qport), timeout=20) as s:
        s.sendall(b"200100:200000:")
        r = reply_of(s)
    tap.eq(r, "Dnetstring length exceeds storage limit while receiving message content",
           "oversized message: refused from the declared length")

    # 5. A length with absurdly many digits.
    r = qmqp(qport, b"9" * 40 + b":")
    tap.eq(r, "Dnetstring length exceeds storage limit while receiving QMQP packet header",
           "a 40-digit length is refused")

    # 6. A sender longer than line_length_limit.
    r = qmqp(qport, packet(b"Subject: x\n\nx\n", b"s" * 5000 + b"@example.org", [b"a@example.com"]))
    tap.eq(r, "Dnetstring length exceeds storage limit while receiving sender address",
           "a sender over line_length_limit is refused")

    # 7. Recipients overrunning the declared outer length.
    inner = ns(b"Subject: x\n\nx\n") + ns(b"s@example.org") + ns(b"a@example.com")
    r = qmqp(qport, b"%d:" % (len(inner) - 3) + inner + b",")
    tap.eq(r, "Dnetstring format error while receiving recipient address",
           "recipients beyond the outer length: format error")

    # 8. A netstring without its comma.
    r = qmqp(qport, b"100:" + b"5:hello;" + b"x" * 50)
    tap.eq(r, "Dnetstring format error while receiving message content", "missing ',': format error")

    # 9. No recipients; an address with a line break.
    r = qmqp(qport, packet(b"Subject: x\n\nx\n", b"s@example.org", []))
    tap.eq(r, "DError: no recipients specified", "no recipients: D reply")
    r = qmqp(qport, packet(b"Subject: x\n\nx\n", b"s@example.org", [b"a@example.com\nX: y"]))
    tap.eq(r, "DError: malformed recipient address", "a recipient with a line break: D reply")

    # 10. A client that goes away mid-message, one that stays silent.
    qmqp(qport, b"1000:500:partial")
    tap.ok(inst.wait_log(r"qmqpd\[\d+\]: [0-9A-F]+: localhost\[127\.0\.0\.1\]: lost connection while "
                         r"receiving message content"), "lost connection is logged with where")
    with socket.create_connection(("127.0.0.1", qport), timeout=20) as s:
        s.sendall(b"100:50:")
        t0 = time.monotonic()
        r = reply_of(s)
        waited = time.monotonic() - t0
    tap.ok(r is None and 1.5 < waited < 15, "a silent client is dropped after qmqpd_timeout",
           (r, waited))
    tap.ok(inst.wait_log(r"read/write timeout while receiving message content"),
           "the timeout is logged")

    # 11. Still serving after all of that; nothing extra was delivered.
    r = qmqp(qport, packet(b"Subject: q2\n\nafter the hostile ones\n", b"", [b"c@example.com"]))
    tap.ok((r or "").startswith("KOk: queued as "), "still accepts mail afterwards", r)
    m = by_subject(handler, "q2")
    tap.ok(m and m[0] in ("", "<>") and m[1] == ["c@example.com"],
           "null sender through QMQP", m and m[:2])
    time.sleep(0.5)
    tap.eq(len(handler.messages), 2, "only the two good messages were delivered")

# The default qmqpd_authorized_clients is empty: nobody may use the service.
with Instance(master=DEFAULT_SERVICES + ["127.0.0.1:%d inet n - n - - qmqpd" % qport],
              main={"qmqpd_error_delay": "0s"}) as inst:
    inst.start()
    wait_for(port_open, 20, "QMQP port")
    r = qmqp(qport, packet(b"Subject: x\n\nx\n", b"s@example.org", [b"a@example.com"]))
    tap.eq(r, "DError: localhost[127.0.0.1] is not authorized to use this service",
           "default (empty) qmqpd_authorized_clients: even localhost is refused")
tap.done()
