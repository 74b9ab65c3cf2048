"""The queue manager's scheduling, seen from outside: a real instance
relays to sinks this test runs, and the sinks' clocks and session counts are
the evidence (issue 5, "Tests that must exist").

(a) a dead destination (closed port) and a tarpit (accepts, never greets)
    cost a live one nothing: the live destination's mail arrives about as
    fast as without them (both measured in this run), the dead one is
    deferred with Postfix's "connect to ...: Connection refused" and
    `postqueue -S` shows it dead;
(b) concurrency window: never more sessions at once than
    default_destination_concurrency_limit, and slow start: the first burst
    is at most initial_destination_concurrency;
(c) smtp_destination_message_rate_limit (token bucket) and
    smtp_destination_rate_delay space the deliveries;
(d) smtp_destination_recipient_limit splits one message's recipients into
    several transactions."""
import asyncio
import os
import re
import smtplib
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import Instance, Tap, free_port, wait_for  # noqa: E402

tap = Tap()


class Sink:
    """A small SMTP server (asyncio, own thread) that records, per
    transaction, when MAIL FROM and the end of DATA came and which
    recipients it had, and counts the sessions open at once. DATA can be
    held for `hold` seconds before the 250, to keep sessions busy."""

    def __init__(self, hold=0.0, ehlo_name="sink.test"):
        self.hold = hold
        self.ehlo_name = ehlo_name
        self.port = free_port()
        self.lock = threading.Lock()
        self.open = 0
        self.max_open = 0
        self.sessions = 0
        self.tx = []            # dicts: start, end, open_at_start, rcpts, subject
        self.first_done = None  # monotonic time of the first completed DATA
        self.max_open_before_first_done = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *a):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", self.port))
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            self.loop.close()

    def delivered(self):
        with self.lock:
            return [t for t in self.tx if t["end"] is not None]

    async def _session(self, reader, writer):
        with self.lock:
            self.open += 1
            self.sessions += 1
            self.max_open = max(self.max_open, self.open)
            if self.first_done is None:
                self.max_open_before_first_done = max(self.max_open_before_first_done,
                                                      self.open)
        tx = None
        try:
            writer.write(b"220 %s ESMTP test sink\r\n" % self.ehlo_name.encode())
            await writer.drain()
            while True:
                line = await asyncio.wait_for(reader.readline(), 60)
                if not line:
                    break
                cmd = line.decode("latin-1").rstrip("\r\n")
                verb = cmd[:4].upper()
                if verb in ("EHLO", "HELO"):
                    reply = "250-%s\r\n250-PIPELINING\r\n250 8BITMIME" % self.ehlo_name \
                        if verb == "EHLO" else "250 %s" % self.ehlo_name
                elif verb == "MAIL":
                    tx = {"start": time.monotonic(), "end": None, "rcpts": [],
                          "subject": None, "open_at_start": self.open}
                    reply = "250 2.1.0 Ok"
                elif verb == "RCPT":
                    m = re.search(r"<([^>]*)>", cmd)
                    if tx is not None:
                        tx["rcpts"].append(m.group(1) if m else cmd)
                    reply = "250 2.1.5 Ok"
                elif verb == "DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    while True:
                        dl = await asyncio.wait_for(reader.readline(), 60)
                        if not dl or dl == b".\r\n":
                            break
                        m = re.match(rb"Subject: (.*)\r\n", dl)
                        if m and tx is not None and tx["subject"] is None:
                            tx["subject"] = m.group(1).decode()
                    if self.hold:
                        await asyncio.sleep(self.hold)
                    if tx is not None:
                        with self.lock:
                            tx["end"] = time.monotonic()
                            if self.first_done is None:
                                self.first_done = tx["end"]
                            self.tx.append(tx)
                    tx = None
                    reply = "250 2.0.0 Ok: queued"
                elif verb == "RSET":
                    tx = None
                    reply = "250 2.0.0 Ok"
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    break
                elif verb == "NOOP":
                    reply = "250 2.0.0 Ok"
                else:
                    reply = "502 5.5.2 Error: command not recognized"
                writer.write(reply.encode() + b"\r\n")
                await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            with self.lock:
                self.open -= 1
            writer.close()


class Tarpit:
    """Accepts connections and never says a word (a stuck server)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.sock.close()
        for c in self.conns:
            c.close()


def inject(port, msgs, sender="me@sluice.test"):
    """msgs: list of (recipients, subject); one SMTP session. Returns IDs."""
    ids = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        for rcpts, subject in msgs:
            c.mail(sender)
            for r in rcpts:
                code, text = c.rcpt(r)
                assert code == 250, (r, code, text)
            code, text = c.data("Subject: %s\r\n\r\nhello\r\n" % subject)
            assert code == 250, text
            ids.append(text.decode().split()[-1])
    return ids


# ---------------------------------------------------------------- (a) dead
N = 20
dead_port = free_port()     # nobody listens: connection refused
tarpit = Tarpit().__enter__()
with Sink() as live, Instance(main={
        "transport_maps": "inline:{ live.test=smtp:[127.0.0.1]:%d, dead.test=smtp:[127.0.0.1]:%d, "
        "slow.test=smtp:[127.0.0.1]:%d }" % (live.port, dead_port, tarpit.port)}) as inst:
    inst.start()

    def live_time(msgs, count):
        before = len(live.delivered())
        t0 = time.monotonic()
        inject(inst.port, msgs)
        wait_for(lambda: len(live.delivered()) >= before + count, 40,
                 "%d deliveries to the live sink" % count)
        return time.monotonic() - t0

    base = live_time([(["b%d@live.test" % i], "base %d" % i) for i in range(N)], N)
    mixed = []
    for i in range(N):
        mixed.append((["d%d@dead.test" % i], "dead %d" % i))
        mixed.append((["s%d@slow.test" % i], "slow %d" % i))
        mixed.append((["m%d@live.test" % i], "mixed %d" % i))
    with_dead = live_time(mixed, N)
    tap.ok(with_dead < 2 * base + 1.0,
           "dead and stuck destinations: the live one's %d messages took %.2fs, %.2fs without "
           "them" % (N, with_dead, base), "base %.3f s, with a dead destination %.3f s" % (base, with_dead))
    got = sorted(t["subject"] for t in live.delivered())
    tap.eq(len([s for s in got if s.startswith("mixed ")]), N,
           "every live message delivered once, none of the dead ones")
    refused = r"connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused" % dead_port
    tap.ok(inst.wait_log(r"postfix/smtp\[\d+\]: [0-9A-F]+: to=<d\d+@dead\.test>, "
                         r"relay=none, delay=[\d.]+, delays=[\d./]+, dsn=4\.4\.1, "
                         r"status=deferred \(%s\)" % refused),
           "dead destination: status=deferred (connect to ...: Connection refused)",
           inst.log()[-3000:])
    rx_dead = re.compile(r"[0-9A-F]+: to=<d(\d+)@dead\.test>, .*status=deferred "
                         r"\((?:delivery temporarily suspended: )?%s\)" % refused)

    def all_dead_deferred():
        return len({m.group(1) for m in rx_dead.finditer(inst.log())}) >= N
    try:
        wait_for(all_dead_deferred, 20, "all dead-destination recipients deferred")
        tap.ok(True, "every dead-destination recipient deferred (the rest: "
               "delivery temporarily suspended)")
    except TimeoutError:
        tap.ok(False, "every dead-destination recipient deferred", inst.log()[-3000:])
    r = inst.cmd("postqueue", "-S")
    row = [l for l in r.stdout.splitlines() if "[127.0.0.1]:%d" % dead_port in l]
    tap.ok(r.returncode == 0 and row and re.search(r"\s0/0/\d+\s", row[0])
           and re.search(r"Connection refused", row[0])
           and not re.search(r"\s-\s+connect to", row[0]),
           "postqueue -S: the dead destination with window 0, a dead-until time and its error",
           r.stdout + r.stderr)
    r = inst.cmd("postqueue", "-S", "-j")
    tap.ok(re.search(r'"destination": "\[127\.0\.0\.1\]:%d".*"dead": true.*"last_error": '
                     r'"%s"' % (dead_port, refused), r.stdout),
           "postqueue -S -j: \"dead\": true and the last error", r.stdout + r.stderr)
    liverow = [l for l in r.stdout.splitlines() if "[127.0.0.1]:%d" % live.port in l]
    tap.ok(not liverow or '"dead": false' in liverow[0],
           "the live destination is not dead", r.stdout)
    tap.ok(len(tarpit.conns) >= 1, "the stuck destination was tried (%d sessions hang there)"
           % len(tarpit.conns))
    tarpit.__exit__()   # EOF for the hanging sessions, so that the stop is quick

# ------------------------------------------------- (b) concurrency window
HOLD = 0.4
M = 16
with Sink(hold=HOLD) as sink, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "default_destination_concurrency_limit": "4",
        "initial_destination_concurrency": "2"}) as inst:
    inst.start()
    inject(inst.port, [(["c%d@example.com" % i], "conc %d" % i) for i in range(M)])
    wait_for(lambda: len(sink.delivered()) >= M, 40, "%d deliveries" % M)
    tap.ok(sink.max_open <= 4, "concurrency limit 4: at most %d sessions at once"
           % sink.max_open, "max open sessions %d" % sink.max_open)
    tap.ok(sink.max_open_before_first_done <= 2,
           "slow start: at most initial_destination_concurrency (2) sessions before the "
           "first delivery completed (%d)" % sink.max_open_before_first_done)
    busy = max(t["open_at_start"] for t in sink.delivered())
    tap.ok(sink.max_open >= 3 and busy >= 3,
           "the window grew beyond the initial 2 (max %d sessions, %d busy at once)"
           % (sink.max_open, busy))
    tap.eq(sorted(int(t["subject"].split()[1]) for t in sink.delivered()), list(range(M)),
           "each message delivered once")

# ------------------------------------- (b2) connection limit, cache included
# smtp_destination_connection_limit counts open connections, idle cached
# ones included: with the cache on (the default) and a window of 20, never
# more than 2 connections at the sink, also when a second burst finds the
# first burst's connections idle in the cache.
with Sink(hold=0.2) as sink, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "smtp_connection_cache_time_limit": "30s",
        "smtp_destination_connection_limit": "2"}) as inst:
    inst.start()
    inject(inst.port, [(["l%d@example.com" % i], "limit %d" % i) for i in range(10)])
    wait_for(lambda: len(sink.delivered()) >= 10, 40, "10 deliveries")
    first = sink.sessions
    inject(inst.port, [(["m%d@example.com" % i], "limit2 %d" % i) for i in range(10)])
    wait_for(lambda: len(sink.delivered()) >= 20, 40, "20 deliveries")
    tap.ok(sink.max_open <= 2, "connection limit 2: at most %d connections open at once "
           "(cached ones included)" % sink.max_open)
    tap.ok(max(t["open_at_start"] for t in sink.delivered()) == 2,
           "and the limit is used: 2 busy at once")
    tap.ok(sink.sessions == first, "the second burst reused the cached connections "
           "(%d connections in all, %d after the first burst)" % (sink.sessions, first))

# ------------------------------------------- (b3) preemption (delivery slots)
# A 60-recipient mailing to one relay, one recipient per delivery, one
# session at a time; a 1-recipient message queued while it runs goes out
# within a few deliveries (Postfix's preemptive scheduler), not after the
# mailing. With smtp_delivery_slot_cost = 0 (preemption off, the per-
# transport override) it waits for the whole mailing.
def preempt_position(extra):
    main = {"relayhost": "[127.0.0.1]:%d", "smtp_destination_recipient_limit": "1",
            "smtp_destination_concurrency_limit": "1", "initial_destination_concurrency": "1"}
    main.update(extra)
    with Sink(hold=0.03) as sink, Instance(main=dict(main, relayhost=main["relayhost"]
                                                     % sink.port)) as inst:
        inst.start()
        inject(inst.port, [(["bulk%d@example.com" % i for i in range(60)], "mailing")])
        wait_for(lambda: len(sink.delivered()) >= 3, 30, "the mailing under way")
        inject(inst.port, [(["single@example.com"], "single")])
        wait_for(lambda: len(sink.delivered()) >= 61, 60, "61 deliveries")
        order = [t["subject"] for t in sorted(sink.delivered(), key=lambda t: t["end"])]
        return order.index("single")


pos = preempt_position({})
tap.ok(pos <= 12, "preemption: a single message behind a 60-recipient mailing is delivered "
       "as number %d of 61, not last" % (pos + 1))
pos = preempt_position({"smtp_delivery_slot_cost": "0"})
tap.eq(pos, 60, "smtp_delivery_slot_cost = 0: first come, first served (the single goes last)")

# ------------------------------------------------------- (c) rate limits
K = 6
with Sink() as sink, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "smtp_destination_message_rate_limit": "120/m"}) as inst:
    inst.start()
    inject(inst.port, [(["r%d@example.com" % i], "rate %d" % i) for i in range(K)])
    wait_for(lambda: len(sink.delivered()) >= K, 30, "%d deliveries" % K)
    starts = sorted(t["start"] for t in sink.delivered())
    rel = [s - starts[0] for s in starts]
    # 120/m: one message each 0.5 s after a burst of one second's worth (2).
    late = [(k, round(rel[k], 2)) for k in range(2, K) if rel[k] < (k - 1) * 0.5 - 0.1]
    tap.ok(not late, "message rate 120/m: delivery k starts no sooner than (k-1)*0.5 s "
           "after the first (%s)" % ", ".join("%.2f" % x for x in rel), late)
    tap.ok(rel[-1] < (K - 1) * 0.5 + 3.0, "and not much later either (last at %.2f s)"
           % rel[-1])

with Sink() as sink, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "smtp_destination_rate_delay": "1s"}) as inst:
    inst.start()
    inject(inst.port, [(["d%d@example.com" % i], "delay %d" % i) for i in range(3)])
    wait_for(lambda: len(sink.delivered()) >= 3, 30, "3 deliveries")
    tx = sorted(sink.delivered(), key=lambda t: t["start"])
    gaps = [tx[i + 1]["start"] - tx[i]["end"] for i in range(len(tx) - 1)]
    tap.ok(all(g >= 0.9 for g in gaps) and all(g < 4.0 for g in gaps),
           "rate delay 1s: gaps between deliveries %s" % ", ".join("%.2f" % g for g in gaps))
    tap.eq(sink.max_open, 1, "rate delay: one session at a time")

# ---------------------------------------------------- (d) recipient limit
with Sink() as sink, Instance(main={
        "relayhost": "[127.0.0.1]:%d" % sink.port,
        "smtp_destination_recipient_limit": "2"}) as inst:
    inst.start()
    rcpts = ["u%d@example.com" % i for i in range(5)]
    qid = inject(inst.port, [(rcpts, "split")])[0]
    wait_for(lambda: sum(len(t["rcpts"]) for t in sink.delivered()) >= 5, 30,
             "5 recipients at the sink")
    inst.wait_log(r"%s: removed" % qid)
    tx = sink.delivered()
    tap.eq(sorted(len(t["rcpts"]) for t in tx), [1, 2, 2],
           "recipient limit 2, 5 recipients: 3 transactions of 2, 2 and 1")
    tap.eq(sorted(r for t in tx for r in t["rcpts"]), rcpts, "each recipient exactly once")
    tap.eq(len(re.findall(r"%s: to=<u\d@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                          r".*status=sent" % (qid, sink.port), inst.log())), 5,
           "five status=sent lines")

tap.done()
