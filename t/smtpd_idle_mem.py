#!/usr/bin/python3
"""smtpd_idle_mem.py - memory of idle sessions: opens N connections (default
10 000), reads each greeting, and reports the harness's growth in allocated
heap (jemalloc stats.allocated) and RSS per connection. The harness raises
its own RLIMIT_NOFILE (-n); this script raises its own with setrlimit.
Usage: smtpd_idle_mem.py [N]    (also asserts < 2 KiB of heap per session)
"""
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtpd_lib import Harness, Client, Tap, wait_for  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = min(hard, n + 1000)
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
if want < n + 100:
    print("1..0 # SKIP RLIMIT_NOFILE hard limit %d is below %d" % (hard, n + 100))
    sys.exit(0)
t = Tap(3)
h = Harness({"smtpd_client_connection_count_limit": "0"}, args=["-n", str(n + 1000), "-t", "2"])
clients = []
try:
    s0 = h.stats()
    start = time.monotonic()
    for i in range(n):
        clients.append(Client(h.port))
    took = time.monotonic() - start
    wait_for(lambda: h.stats()["sessions"] >= n, 30)
    s1 = h.stats()
    heap = (s1["allocated"] - s0["allocated"]) / n if s0["allocated"] >= 0 else -1
    rss = (s1["rss_kb"] - s0["rss_kb"]) * 1024 / n
    print("# %d idle sessions (opened in %.1fs): heap %.0f B/session, RSS %.0f B/session, "
          "RSS total %d kB" % (n, took, heap, rss, s1["rss_kb"]), flush=True)
    t.ok(s1["sessions"] == n, "%d sessions open" % n, s1)
    t.ok(heap < 2048, "heap per idle session %.0f B < 2 KiB" % heap)
    t.ok(rss < 4096, "RSS per idle session %.0f B < 4 KiB" % rss)
finally:
    for c in clients:
        c.close()
    h.cleanup()
t.done()
