"""postscreen in front of the pass smtpd, against a running engine: the
pregreet test (drop), DNSBL scoring through a DNS server on loopback
(enforce: 550 at RCPT from the dummy engine), a clean client that is
"PASS NEW" and whose mail goes through the pass smtpd to a sink, "PASS OLD"
on the next connection (also after a restart: the cache is a GDBM file),
the access list (ALLOWLISTED, DENYLISTED + drop), a client that hangs up.
Clients bind to distinct 127.0.0.x addresses so their tests do not mix."""
import os
import re
import smtplib
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import DEFAULT_SERVICES, Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import DnsServer, Handler, Server  # noqa: E402

tap = Tap()


def connect(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(15)
    s.connect(("127.0.0.1", inst.port))
    return s, s.getsockname()[1]


def read_until(s, pattern, limit=15.0):
    """Read until the buffer matches pattern (bytes regex) or EOF."""
    buf = b""
    deadline = time.monotonic() + limit
    while not re.search(pattern, buf, re.M) and time.monotonic() < deadline:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        if not data:
            break
        buf += data
    return buf


def read_eof(s):
    buf = b""
    while True:
        try:
            data = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            return buf, False
        if not data:
            return buf, True
        buf += data


def send_mail(src, rcpt):
    with smtplib.SMTP(timeout=20, source_address=(src, 0)) as c:
        code, banner = c.connect("127.0.0.1", inst.port)
        c.ehlo("client.test")
        c.mail("sender@outside.test")
        c.rcpt(rcpt)
        code, text = c.data("Subject: through postscreen\r\n\r\nhello\r\n")
        return code, text.decode(), banner.decode()


handler = Handler()
dns = DnsServer({("3.0.0.127.zen.example", "A"): ["127.0.0.2"],
                 ("5.0.0.127.zen.example", "A"): ["127.0.0.2"]})
with Server(handler) as sink, dns:
    inst = Instance(main={
        "mynetworks": "127.0.0.1/32",
        "relay_domains": "example.com",
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "data_directory": "%(data)s",
        "postscreen_greet_wait": "1s",
        "postscreen_greet_action": "drop",
        "postscreen_dnsbl_sites": "zen.example*2, other.example",
        "postscreen_dnsbl_threshold": "2",
        "postscreen_dnsbl_action": "enforce",
        "postscreen_dns_server": "127.0.0.1:%d" % dns.port,
        "postscreen_access_list": "permit_mynetworks, cidr:%(etc)s/psc_access.cidr",
        "postscreen_denylist_action": "drop",
    }, master=None, smtp=False)
    data_dir = os.path.join(inst.root, "data")
    os.makedirs(data_dir)
    # The placeholders above need the instance's own directories.
    main_cf = os.path.join(inst.etc, "main.cf")
    with open(main_cf) as f:
        text = f.read() % {"data": data_dir, "etc": inst.etc}
    with open(main_cf, "w") as f:
        f.write(text)
    with open(os.path.join(inst.etc, "psc_access.cidr"), "w") as f:
        f.write("127.0.0.9/32 permit\n127.0.0.10/32 reject\n")
    with open(os.path.join(inst.etc, "master.cf"), "w") as f:
        f.write("\n".join(["127.0.0.1:%d inet n - n - 1 postscreen" % inst.port,
                           "smtpd pass - - n - - smtpd"] + DEFAULT_SERVICES) + "\n")
    with inst:
        inst.start()
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: ALLOWLISTED \[127\.0\.0\.1\]:\d+"),
               "127.0.0.1 (mynetworks) is allowlisted by permit_mynetworks")

        # 1. Pregreet with postscreen_greet_action = drop.
        s, port = connect("127.0.0.2")
        s.sendall(b"EHLO foo\r\n")
        out, eof = read_eof(s)
        s.close()
        tap.ok(b"521 5.5.1 Protocol error\r\n" in out and eof,
               "pregreet client gets 521 5.5.1 Protocol error and the connection closes", out)
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: CONNECT from \[127\.0\.0\.2\]:%d to "
                             r"\[127\.0\.0\.1\]:%d$" % (port, inst.port)),
               "CONNECT from [ip]:port to [ip]:port")
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: PREGREET 10 after [\d.]+ from "
                             r"\[127\.0\.0\.2\]:%d: EHLO foo\\r\\n$" % port),
               "PREGREET 10 after T from [ip]:port: EHLO foo\\r\\n", inst.log())

        # 2. DNSBL listed (zen.example*2 >= threshold 2): enforce.
        s, port = connect("127.0.0.3")
        greet = read_until(s, rb"^220 ")
        tap.ok(greet.startswith(b"220-") and re.search(rb"^220 ", greet, re.M),
               "a client under test sees 220- first, then the dummy engine's 220", greet)
        s.sendall(b"EHLO client.test\r\n")
        read_until(s, rb"^250 ")
        s.sendall(b"MAIL FROM:<spam@bot.test>\r\n")
        read_until(s, rb"^250 ")
        s.sendall(b"RCPT TO:<user@example.com>\r\n")
        r = read_until(s, rb"^5\d\d ")
        tap.ok(b"550 5.7.1 Service unavailable; client [127.0.0.3] blocked using zen.example"
               in r, "DNSBL enforce: 550 5.7.1 ... blocked using zen.example at RCPT", r)
        s.sendall(b"QUIT\r\n")
        out, eof = read_eof(s)
        s.close()
        tap.ok(out.startswith(b"221 ") and eof, "the dummy engine says 221 to QUIT", out)
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: DNSBL rank 2 for \[127\.0\.0\.3\]:%d$" % port),
               "DNSBL rank 2 for [ip]:port")
        tap.ok(inst.wait_log(
            r"postscreen\[\d+\]: NOQUEUE: reject: RCPT from \[127\.0\.0\.3\]:%d: 550 5\.7\.1 "
            r"Service unavailable; client \[127\.0\.0\.3\] blocked using zen\.example; "
            r"from=<spam@bot\.test>, to=<user@example\.com>, proto=ESMTP, helo=<client\.test>$"
            % port), "NOQUEUE: reject line as Postfix's postscreen writes it")
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: DISCONNECT \[127\.0\.0\.3\]:%d$" % port),
               "DISCONNECT [ip]:port")
        tap.ok(not re.search(r"PASS NEW \[127\.0\.0\.3\]", inst.log()),
               "a listed client is not allowlisted")

        # 3. A clean client: PASS NEW, then its mail goes through the pass smtpd.
        code, text, banner = send_mail("127.0.0.4", "user@example.com")
        tap.ok(code == 250 and "queued as" in text, "clean client: mail accepted by the "
               "pass smtpd", (code, text))
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: PASS NEW \[127\.0\.0\.4\]:\d+$"),
               "PASS NEW [ip]:port")
        tap.ok(inst.wait_log(r"smtpd\[\d+\]: connect from unknown\[127\.0\.0\.4\]"),
               "the pass smtpd logs the handed-off client")
        wait_for(lambda: len(handler.messages) >= 1, 20, "delivery to the sink")
        tap.eq(handler.messages[0][1], ["user@example.com"], "the sink got the message")

        # 4. Next time: PASS OLD, no greet wait.
        t0 = time.monotonic()
        s, port = connect("127.0.0.4")
        first = read_until(s, rb"\r\n")
        s.close()
        tap.ok(first.startswith(b"220 ") and time.monotonic() - t0 < 0.9,
               "PASS OLD client gets smtpd's 220 at once", first)
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: PASS OLD \[127\.0\.0\.4\]:%d$" % port),
               "PASS OLD [ip]:port")

        # 5. The access list: permit and reject (denylist action drop).
        s, port = connect("127.0.0.9")
        first = read_until(s, rb"\r\n")
        s.close()
        tap.ok(first.startswith(b"220 ") and
               inst.wait_log(r"postscreen\[\d+\]: ALLOWLISTED \[127\.0\.0\.9\]:%d$" % port),
               "cidr permit: ALLOWLISTED, straight to smtpd", first)
        s, port = connect("127.0.0.10")
        out, eof = read_eof(s)
        s.close()
        tap.ok(out == b"521 5.3.2 Service currently unavailable\r\n" and eof,
               "cidr reject with postscreen_denylist_action = drop: 521 5.3.2", out)
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: DENYLISTED \[127\.0\.0\.10\]:%d$" % port),
               "DENYLISTED [ip]:port")

        # 6. A client that hangs up during the tests.
        s, port = connect("127.0.0.6")
        read_until(s, rb"\r\n")
        s.close()
        tap.ok(inst.wait_log(r"postscreen\[\d+\]: HANGUP after [\d.]+ from \[127\.0\.0\.6\]:%d "
                             r"in tests before SMTP handshake$" % port),
               "HANGUP after T from [ip]:port in tests before SMTP handshake")

        # 7. The allowlist survives a restart (GDBM cache).
        inst.stop()
        inst.start()
        s, port = connect("127.0.0.4")
        first = read_until(s, rb"\r\n")
        s.close()
        tap.ok(first.startswith(b"220 ") and
               inst.wait_log(r"postscreen\[\d+\]: PASS OLD \[127\.0\.0\.4\]:%d$" % port),
               "after a restart the client is still PASS OLD", first)
        tap.ok(os.path.exists(os.path.join(data_dir, "postscreen_cache.db")),
               "postscreen_cache_map is a GDBM file under data_directory")
        tap.ok(not re.search(r"(warning|error|fatal|panic):", inst.log()),
               "no warnings in the maillog",
               "\n".join(l for l in inst.log().splitlines() if "warning" in l or "error" in l))
tap.done()
