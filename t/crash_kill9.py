"""Crash test (issue 3, DESIGN.md invariant 2): kill -9 at random moments
loses no acknowledged message.

A real instance relays to an aiosmtpd sink that records every message.
Client threads inject mail over SMTP without pause, each message carrying a
unique token in a header and in the body. At random moments (seeded; the
seed is printed; set SLUICE_CRASH_SEED to replay) the test kills with
SIGKILL either the engine alone (the master restarts it after its backoff)
or the master and the engine together (then `postfix start` again). Then it
lets the queue drain and checks:
  - every token the client saw a 250 for reached the sink (losses = 0;
    duplicates are allowed, counted and printed),
  - the sink got nothing a client did not send, intact (header token = body
    token),
  - after each kill, the next start logged "journal: recovered N messages"
    with N at least the number of acknowledged messages the sink had not
    seen when the process died (the sink slows down before each kill, so
    there are always some, some of them in flight),
  - the master logged each engine death and restarted it,
  - the queue ends empty (stop, start: the journal recovers nothing).
"""
import asyncio
import os
import random
import re
import signal
import smtplib
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import BUILD, Instance, Tap, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402

CLIENTS = 4
MAX_BACKLOG = 3000	# acknowledged, not yet at the sink: clients wait above it
# Both kinds; "engine-twice" kills the restarted engine again within 50 ms,
# while it replays the journal. The master's backoff adds 1+2+4+1 s.
KILLS = ["engine", "engine-twice", "all", "engine", "all"]
SINK_DELAYS = [0.02, 0.3, 0.02, 0.3, 0.02]	# seconds per message before each kill
TOKEN_RX = re.compile(rb"^X-Crash-Token: (\S+)\r?$", re.M)
BODY_RX = re.compile(rb"^token (\S+)\r?$", re.M)
RECOVERED_RX = re.compile(r"journal: recovered \d+ messages")

seed = int(os.environ.get("SLUICE_CRASH_SEED") or random.SystemRandom().randrange(1, 10**9))
rng = random.Random(seed)
print("# seed %d (replay with SLUICE_CRASH_SEED=%d)" % (seed, seed), flush=True)
tap = Tap()
t_begin = time.monotonic()


class SinkHandler(Handler):
    """Records (header token, body token) of every message received."""

    def __init__(self):
        super().__init__()
        self.tokens = []
        self.bad = []
        self.delay = 0.0

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)	# deliveries in flight at the kill
        h = TOKEN_RX.search(envelope.content)
        b = BODY_RX.search(envelope.content)
        if h and b and h.group(1) == b.group(1):
            self.tokens.append(h.group(1).decode())
        else:
            self.bad.append(envelope.content[:300])
        return "250 2.0.0 Ok: queued as SINK"


class Clients:
    """Threads injecting mail continuously; acked[token] = queue ID."""

    def __init__(self, port, delivered):
        self.port = port
        self.delivered = delivered		# how many the sink has seen
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}
        self.tried = set()
        self.errors = 0
        self.refused = 0
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(CLIENTS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def nacked(self):
        with self.lock:
            return len(self.acked)

    def run(self, idx):
        n = 0
        r = random.Random(seed * 100 + idx)
        while not self.stop.is_set():
            try:
                c = smtplib.SMTP("127.0.0.1", self.port, timeout=15)
            except OSError:
                with self.lock:
                    self.refused += 1
                self.stop.wait(0.05)		# the engine is down: retry soon
                continue
            try:
                c.ehlo("crash.test")
                for _ in range(r.randint(1, 4)):	# 1 to 4 messages per session
                    # Bound the backlog, so that the drain stays short.
                    while (not self.stop.is_set()
                           and self.nacked() - self.delivered() > MAX_BACKLOG):
                        self.stop.wait(0.01)
                    if self.stop.is_set():
                        break
                    n += 1
                    tok = "%d-%d-%d" % (seed, idx, n)
                    body = ("From: <c%d@crash.test>\r\nTo: <sink@example.com>\r\n"
                            "Subject: crash %s\r\nX-Crash-Token: %s\r\n\r\ntoken %s\r\n%s"
                            % (idx, tok, tok, tok, ("x" * 70 + "\r\n") * r.randint(0, 30)))
                    with self.lock:
                        self.tried.add(tok)
                    code, _ = c.mail("c%d@crash.test" % idx)
                    if code != 250:
                        raise smtplib.SMTPException("MAIL %d" % code)
                    code, _ = c.rcpt("sink@example.com")
                    if code != 250:
                        raise smtplib.SMTPException("RCPT %d" % code)
                    code, text = c.data(body.encode())
                    if code == 250:
                        with self.lock:
                            self.acked[tok] = text.decode(errors="replace").split()[-1]
                    else:
                        raise smtplib.SMTPException("DATA %d" % code)
                c.quit()
            except (OSError, smtplib.SMTPException):
                with self.lock:
                    self.errors += 1
                try:
                    c.close()
                except OSError:
                    pass


def master_pid(inst):
    try:
        with open(os.path.join(inst.spool, "pid", "master.pid")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def alive(pid):
    """True unless pid is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def engine_pid(inst):
    """The master's live child, or 0."""
    mp = master_pid(inst)
    if not mp:
        return 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == mp and fields[0] != "Z":
            return int(d)
    return 0


def wait_ready(inst, old_engine, off):
    """A new engine runs and answers SMTP; returns its pid and the log from
    off once that shows the new engine's smtpd (the maillog is written in
    order by one thread, so what the engine logged while starting is in it)."""
    wait_for(lambda: engine_pid(inst) not in (0, old_engine), 30, "a new engine process")
    wait_for(inst.smtp_ready, 30, "SMTP after the restart")
    pid = engine_pid(inst)
    rx = re.compile(r"postfix/smtpd\[%d\]: connect from" % pid)
    return pid, wait_for(lambda: (lambda t: rx.search(t) and t)(log_from(inst, off)), 10,
                         "the new engine's smtpd in the log")


def recovered(text, pid):
    """N from the engine pid's "journal: recovered N messages", or None."""
    m = re.search(r"\[%d\]: journal: recovered (\d+) messages" % pid, text)
    return int(m.group(1)) if m else None


def log_from(inst, off):
    with open(inst.maillog, errors="replace") as f:
        f.seek(off)
        return f.read()


sink = Server(SinkHandler())
handler = sink.handler
inst = Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port,
                      "journal_sync": "always"})
problems = []
kills = []		# (kind, pending at death, recovered count or None, log ok)
with sink, inst:
    inst.start()
    clients = Clients(inst.port, lambda: len(handler.tokens))
    clients.start()
    try:
        for i, kind in enumerate(KILLS):
            base = clients.nacked()
            wait_for(lambda: clients.nacked() >= base + 20, 20, "progress before kill %d" % (i + 1))
            # A slow sink keeps deliveries in flight (and, the slower one,
            # piles up acknowledged mail in the queue); then the random moment.
            handler.delay = SINK_DELAYS[i]
            time.sleep(rng.uniform(0.1, 1.5))
            eng, mp = engine_pid(inst), master_pid(inst)
            if not eng or not mp:
                raise RuntimeError("no engine/master before kill %d" % (i + 1))
            off = os.path.getsize(inst.maillog)
            if kind == "engine-twice":
                # Again while the next engine recovers the journal.
                os.kill(eng, signal.SIGKILL)
                wait_for(lambda: not alive(eng), 10, "engine death")
                first = eng
                eng = wait_for(lambda: (lambda p: p not in (0, first) and p)(engine_pid(inst)),
                               30, "a new engine process")
                time.sleep(rng.uniform(0, 0.05))
                os.kill(eng, signal.SIGKILL)
                wait_for(lambda: not alive(eng), 10, "engine death")
            elif kind == "engine":
                os.kill(eng, signal.SIGKILL)
                wait_for(lambda: not alive(eng), 10, "engine death")
            else:
                os.kill(mp, signal.SIGKILL)
                os.kill(eng, signal.SIGKILL)
                wait_for(lambda: not alive(eng) and not alive(mp), 10, "master+engine death")
            # Nothing can be acknowledged any more: what the sink has not
            # seen must be in the journal.
            with clients.lock:
                acked_now = set(clients.acked)
            pending = len(acked_now - set(handler.tokens))
            print("# kill %d: %s (engine %d, master %d) at %.1fs, %d acked, %d pending"
                  % (i + 1, kind, eng, mp, time.monotonic() - t_begin, len(acked_now), pending),
                  flush=True)
            if kind == "all":
                # The pid file's lock goes with the last process that had it.
                wait_for(lambda: inst.postfix("status").returncode != 0, 30,
                         "the pid file lock to be released")
                r = inst.postfix("start")
                if r.returncode != 0:
                    raise RuntimeError("postfix start after kill: %s" % r.stderr)
            handler.delay = 0.0
            # The engine that now runs (not one killed while recovering)
            # must have recovered at least the pending messages.
            new, text = wait_ready(inst, eng, off)
            died = (kind == "all" or re.search(
                r"process sluice-engine pid %d killed by signal 9" % eng, text))
            kills.append((kind, pending, recovered(text, new), bool(died)))
        base = clients.nacked()
        wait_for(lambda: clients.nacked() >= base + 20, 20, "progress after the last kill")
    except (TimeoutError, RuntimeError) as e:
        problems.append(str(e))
    finally:
        handler.delay = 0.0
        clients.join()
    inject_end = time.monotonic()

    acked = dict(clients.acked)
    tap.ok(not problems, "%d kills done, the engine came back after each" % len(kills),
           "\n".join(problems) + "\n" + inst.log()[-3000:])
    tap.ok(len(acked) >= 100, "clients got a 250 for %d messages (%d sessions failed, "
           "%d connections refused)" % (len(acked), clients.errors, clients.refused))

    # Drain: every acknowledged token reaches the sink.
    def missing():
        return set(acked) - set(handler.tokens)
    try:
        wait_for(lambda: not missing(), 60, "every acknowledged message at the sink")
    except TimeoutError:
        pass
    lost = sorted(missing())
    tap.ok(not lost, "losses = 0: every message acknowledged with 250 reached the sink",
           "%d lost, e.g. %s" % (len(lost), ", ".join("%s (queue id %s)" % (t, acked[t])
                                                     for t in lost[:10])))
    counts = {}
    for t in handler.tokens:
        counts[t] = counts.get(t, 0) + 1
    dups = sum(c - 1 for c in counts.values())
    unacked = len([t for t in counts if t not in acked])
    print("# %d acknowledged, %d delivered to the sink, %d duplicate deliveries, "
          "%d delivered without a 250 seen by the client" %
          (len(acked), len(handler.tokens), dups, unacked), flush=True)
    tap.ok(not handler.bad and set(counts) <= clients.tried,
           "the sink got only messages the clients sent, intact",
           "%d damaged, %d unknown tokens" % (len(handler.bad), len(set(counts) - clients.tried)))

    bad_rec = ["kill %d (%s): %d pending, recovered %s" % (i + 1, k, p, r)
               for i, (k, p, r, _) in enumerate(kills) if p > 0 and (r is None or r < p)]
    for i, (k, p, r, _) in enumerate(kills):
        print("# kill %d (%s): %d acknowledged pending at death, journal recovered %s"
              % (i + 1, k, p, r if r is not None else "nothing"), flush=True)
    tap.ok(len(kills) == len(KILLS) and not bad_rec and any(r for _, _, r, _ in kills),
           "after each kill the journal recovery line names at least the pending messages",
           "\n".join(bad_rec) + "\n" + "\n".join(l for l in inst.log().splitlines()
                                                  if "journal" in l))
    tap.ok(all(d for _, _, _, d in kills) and
           len(re.findall(r"killed by signal 9", inst.log())) ==
           KILLS.count("engine") + 2 * KILLS.count("engine-twice"),
           "the master logged each engine death and restarted it")

    # The queue ends empty: once the sink is quiet, stop and start again;
    # the journal then holds no live message.
    last = [len(handler.tokens), time.monotonic()]

    def quiet():
        n = len(handler.tokens)
        if n != last[0]:
            last[0], last[1] = n, time.monotonic()
        return time.monotonic() - last[1] > 2.0
    try:
        wait_for(quiet, 30, "the sink to go quiet")
    except TimeoutError:
        pass					# the checks below say what is left
    postqueue = os.path.join(BUILD, "cli", "postqueue")
    if os.path.exists(postqueue):
        r = inst.cmd("postqueue", "-p")
        tap.ok("Mail queue is empty" in r.stdout + r.stderr, "postqueue -p: the queue is empty",
               r.stdout[-2000:] + r.stderr)
    r = inst.postfix("stop")
    inst.started = False
    off = os.path.getsize(inst.maillog)
    inst.start()
    _, text = wait_ready(inst, 0, off)
    tap.ok(not RECOVERED_RX.search(text) and not re.search(r"torn|damaged|corrupt", text),
           "the queue ends empty: a clean restart recovers nothing", text)
    inst.stop()
    print("# injection %.1fs, total %.1fs" % (inject_end - t_begin, time.monotonic() - t_begin),
          flush=True)
tap.done()
