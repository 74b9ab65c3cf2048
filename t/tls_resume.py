"""TLS session resumption in smtpd (Sluice's tlsmgr): after STARTTLS, a
client that presents the session of an earlier connection resumes it, with
TLS 1.3 tickets, TLS 1.2 tickets and TLS 1.2 session IDs (the shared cache),
across the smtpd I/O threads; smtpd_tls_session_cache_timeout = 0 turns it
off; a forged ticket falls back to a full handshake."""
import os
import re
import socket
import ssl
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import make_cert  # noqa: E402

tap = Tap()


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


def starttls_session(port, ctx, session=None):
    """One SMTP session with STARTTLS; returns (reused, session, version)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    f = raw.makefile("rb")
    read_reply(f)
    raw.sendall(b"EHLO client.test\r\n")
    ehlo = read_reply(f)
    assert b"STARTTLS" in ehlo, ehlo
    raw.sendall(b"STARTTLS\r\n")
    assert read_reply(f).startswith(b"220")
    tls = ctx.wrap_socket(raw, server_hostname="sluice.test", session=session)
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client.test\r\n")
    read_reply(tf)			# also lets TLS 1.3 tickets arrive
    reused, sess, version = tls.session_reused, tls.session, tls.version()
    tls.sendall(b"QUIT\r\n")
    read_reply(tf)
    tls.close()
    return reused, sess, version


def client_ctx(max_version=None, tickets=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version:
        ctx.maximum_version = max_version
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def instance(extra):
    inst = Instance(main={"smtpd_tls_security_level": "may"})
    crt, key = make_cert(inst.root, "sluice.test")
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n" % (crt, key))
        for k, v in extra.items():
            f.write("%s = %s\n" % (k, v))
    with open(os.path.join(inst.etc, "master.cf")) as f:
        text = f.read()
    # Two I/O threads, so resumed sessions cross threads.
    with open(os.path.join(inst.etc, "master.cf"), "w") as f:
        f.write(text.replace("inet n - n - - smtpd", "inet n - n - 2 smtpd"))
    return inst


with instance({}) as inst:
    inst.start()
    for name, ctx in [("TLS 1.3 tickets", client_ctx()),
                      ("TLS 1.2 tickets", client_ctx(ssl.TLSVersion.TLSv1_2)),
                      ("TLS 1.2 session IDs", client_ctx(ssl.TLSVersion.TLSv1_2, False))]:
        reused, sess, version = starttls_session(inst.port, ctx)
        tap.ok(not reused and sess is not None, "%s: the first session is new (%s)"
               % (name, version))
        results = []
        for _ in range(6):
            r, s2, _ = starttls_session(inst.port, ctx, sess)
            results.append(r)
        tap.ok(all(results), "%s: six reconnections resume the session" % name, results)

    # A ticket from another server (its keys unknown here): a full handshake.
    with instance({}) as other:
        other.start()
        ctx = client_ctx()
        _, foreign, _ = starttls_session(other.port, ctx)
    reused, _, _ = starttls_session(inst.port, ctx, foreign)
    tap.ok(not reused, "a ticket issued by another server is not accepted")
    n = lambda: len(re.findall(r"Anonymous TLS connection established from", inst.log()))
    try:
        wait_for(lambda: n() >= 22, 10, "22 handshake lines")
    except TimeoutError:
        pass
    tap.ok(n() >= 22, "every handshake is logged, resumed ones too", n())
    tap.ok(not re.search(r"(warning|error|fatal|panic):", inst.log()), "no warnings",
           "\n".join(l for l in inst.log().splitlines() if "warning" in l or "error" in l))

with instance({"smtpd_tls_session_cache_timeout": "0"}) as inst:
    inst.start()
    for name, ctx in [("TLS 1.3", client_ctx()),
                      ("TLS 1.2", client_ctx(ssl.TLSVersion.TLSv1_2, False))]:
        _, sess, _ = starttls_session(inst.port, ctx)
        reused, _, _ = starttls_session(inst.port, ctx, sess)
        tap.ok(not reused, "%s: smtpd_tls_session_cache_timeout = 0 turns resumption off"
               % name)
tap.done()
