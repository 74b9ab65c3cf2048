"""smtp_mx.py - MX lookup through a DNS server the test runs on loopback
(smtp_dns_server): preference order and fail-over to the next MX, no MX
(A record of the domain), unknown domain bounced, limits."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_testlib import Tap, Server, Handler, harness, log_re, find_log

t = Tap(5)
records = {
    ("mx.test", "MX"): [(20, "backup.mx.test"), (10, "primary.mx.test")],
    ("primary.mx.test", "A"): ["127.0.0.2"],     # nothing listens there
    ("backup.mx.test", "A"): ["127.0.0.1"],
    ("plain.test", "A"): ["127.0.0.1"],           # no MX: the A record
    ("limit.test", "MX"): [(10, "primary.mx.test"), (20, "backup.mx.test")],
}
from smtp_testlib import DnsServer
with DnsServer(records) as dns:
    h = Handler()
    with Server(h) as srv:
        base = ["-o", "smtp_dns_server=127.0.0.1:%d" % dns.port]
        rc, out, logs, res = harness(base + ["mx.test:%d" % srv.port, "a@mx.test"])
        t.ok(find_log(logs, log_re("smtp", "a@mx.test", "backup.mx.test[127.0.0.1]:%d" % srv.port,
                                   "2.0.0", "sent", "250 2.0.0 Ok: queued as TESTQ1")),
             "MX: primary refused, delivered to the backup MX", out)
        order = [q for q in dns.queries if q[1] == "A"]
        t.ok(order[:1] == [("primary.mx.test", "A")], "MX hosts tried in preference order", order)
        rc, out, logs, res = harness(base + ["plain.test:%d" % srv.port, "a@plain.test"])
        t.ok(res.get("a@plain.test", ("",))[0] == "sent", "no MX record: the domain's A record", out)
        rc, out, logs, res = harness(base + ["nosuch.test:%d" % srv.port, "a@nosuch.test"])
        t.ok(find_log(logs, log_re("smtp", "a@nosuch.test", "none", "5.4.4", "bounced",
                                   "Host or domain name not found. Name service error for "
                                   "name=nosuch.test type=MX: Host not found")),
             "unknown domain: bounced 5.4.4", out)
        rc, out, logs, res = harness(base + ["-o", "smtp_mx_address_limit=1",
                                             "limit.test:%d" % srv.port, "a@limit.test"])
        t.ok(find_log(logs, log_re("smtp", "a@limit.test", "none", "4.4.1", "deferred",
                                   "connect to primary.mx.test[127.0.0.2]:%d: Connection refused" % srv.port))
             and "site_failed=1" in out,
             "smtp_mx_address_limit=1: backup not tried, deferred", out)
t.done()
