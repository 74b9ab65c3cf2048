"""Queued mail waits in the page cache, not on the heap.

200 messages of 100 KiB go to a destination that refuses connections, so
they all wait in the deferred queue. The engine's heap (heap_allocated
from `postfix -v status`, jemalloc's or the C library's count of bytes in
use) grows by far less than the 20 MB of content: once a message is
durable, its content is read from the journal's mapping. Then postcat
shows a message intact, and when the destination comes up, postqueue -f
(which, as Postfix's, also revives dead destinations: transport_retry_time
is an hour here) delivers every message byte for byte, read back from the
journal's mapping.
"""
import os
import re
import smtplib
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, free_port, wait_for  # noqa: E402
from smtp_testlib import Handler, Server, _Ctl  # noqa: E402

N = int(os.environ.get("QM_N", "200"))
SIZE = 100 * 1024
tap = Tap()


def heap(inst):
    r = inst.cmd("postfix", "-v", "status")
    m = re.search(r"^heap_allocated (\d+)$", r.stdout, re.M)
    if not m:
        raise RuntimeError("no heap_allocated in postfix -v status: %r %r" % (r.stdout, r.stderr))
    return int(m.group(1))


def body(i):
    line = ("message %05d " % i).encode() * 8 + b"\r\n"     # 114 bytes
    return b"Subject: memory %d\r\n\r\n" % i + line * (SIZE // len(line))


dead = free_port()
sink = Handler()
srv = Server(sink)
srv.port, srv.ctl = dead, _Ctl(sink, dead)     # comes up later on the dead port
with Instance(main={
        "relayhost": "[127.0.0.1]:%d" % dead,
        "minimal_backoff_time": "3600s",
        "maximal_backoff_time": "3600s",
        "queue_run_delay": "3600s",
        "transport_retry_time": "3600s"}) as inst:
    inst.start()
    base = heap(inst)
    ids = []
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as c:
        for i in range(N):
            c.sendmail("me@sluice.test", ["r%d@example.com" % i], body(i))
    wait_for(lambda: len(re.findall(r"to=<r\d+@example\.com>.*status=deferred", inst.log())) >= N,
             120, "%d deferrals" % N)
    grown = heap(inst) - base
    tap.ok(grown < N * SIZE // 4,
           "%d x 100 KiB deferred: the heap grew by %d KiB, under a quarter of the %d KiB "
           "of content" % (N, grown // 1024, N * SIZE // 1024))
    qid = re.search(r"([0-9A-F]+): to=<r%d@example\.com>" % (N - 1), inst.log()).group(1)
    r = inst.cmd("postcat", "-q", qid)
    tap.ok(r.returncode == 0 and ("message %05d " % (N - 1)) * 8 in r.stdout
           and r.stdout.count("message %05d" % (N - 1)) >= SIZE // 114 * 8,
           "postcat -q shows the queued content intact", r.stderr)

    with srv:
        inst.cmd("postqueue", "-f", check=True)
        wait_for(lambda: len(sink.messages) >= N, 120, "%d deliveries after postqueue -f" % N)
    got = {}
    for _, rcpts, content, _ in sink.messages:
        m = re.search(rb"Subject: memory (\d+)\r?\n", content)
        got[int(m.group(1))] = content
    bad = [i for i in range(N)
           if i not in got or not got[i].replace(b"\r\n", b"\n").endswith(
               body(i).split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))]
    tap.eq(bad, [], "every message delivered with its content byte for byte")
tap.done()
