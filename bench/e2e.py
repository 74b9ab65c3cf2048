#!/usr/bin/python3
"""bench/e2e.py - end to end: smtp-source -> relay -> smtp-sink, side by side.

DESIGN.md "Performance bar": messages/s as smtp-sink receives them, for
  ceiling  smtp-source -> smtp-sink directly,
  sluice   smtp-source -> Sluice (journal_sync = always) -> smtp-sink,
  postfix  smtp-source -> Debian's Postfix (a private instance) -> smtp-sink,
in one run, repetitions interleaved (ceiling, sluice, postfix, ceiling, ...),
medians reported with the ratios sluice/postfix and sluice/ceiling.

Scenarios (all with 20 concurrent client sessions, `smtp-source -s 20`):
  1k      1 KiB messages, one message per session        (-l 1024)
  100k    100 KiB messages, one message per session      (-l 102400)
  1k-d    1 KiB messages, many messages per session      (-l 1024 -d)

Measurement: `smtp-sink -M N` exits once it has received N messages; the
rate is N / (sink exit - source start). The relays keep running between
runs (the sink is restarted on the same port for every run, so cached
relay connections to the previous sink die, as they would in life). CPU
seconds of the relay (all its processes, reaped children included), of
smtp-source and of smtp-sink are recorded per run, so one can see that the
sink is not the bottleneck and what a message costs each relay.

A/B: `-b OTHER_BUILD` adds target sluice2 (again for sluice3, ...), run
interleaved with the others, e.g. `-t ceiling,sluice,sluice2 -b ../before`;
for Sluice targets the engine's context switches per message are printed
too (with CPU per message, the figures that other load disturbs least).

Run as root (Postfix's master needs it), from the build directory or with
SLUICE_BUILDDIR set:  /usr/bin/python3 $SRCDIR/bench/e2e.py [options]
Everything listens on 127.0.0.1; state lives in a temp dir under /var/tmp
(the same disk as the work tree); both relays are stopped at the end, even
on error. The system Postfix is never touched.
"""
import argparse
import atexit
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("SLUICE_BUILDDIR") or os.getcwd()
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTFIX_DAEMONS = "/usr/lib/postfix/sbin"
TICK = os.sysconf("SC_CLK_TCK")

# name: (smtp-source flags, N for ceiling and sluice, N for postfix)
SCENARIOS = {
    "1k": (["-l", "1024"], 20000, 4000),
    "100k": (["-l", "102400"], 6000, 2000),
    "1k-d": (["-l", "1024", "-d"], 40000, 6000),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(256).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("nothing answers SMTP on port %d" % port)


def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
            (int(fields[13]) + int(fields[14])) / TICK)


def tree_cpu(root):
    """CPU seconds of root, its reaped children and its live descendants."""
    st = proc_stat(root)
    if st is None:
        return 0.0
    total = st[1] + st[2]
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = proc_stat(int(d))
            if s:
                kids.setdefault(s[0], []).append((int(d), s))
    todo = [root]
    while todo:
        for pid, s in kids.get(todo.pop(), []):
            total += s[1] + s[2]
            todo.append(pid)
    return total


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


class Sluice:
    name = "sluice"

    def __init__(self, root, port, sink_port, build=None, name="sluice"):
        build = build or BUILD
        self.build = build
        self.name = name
        self.dir = os.path.join(root, name)
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.port = port
        os.makedirs(self.etc)
        main = {
            "queue_directory": self.spool,
            "daemon_directory": os.path.join(build, "engine"),
            "command_directory": os.path.join(build, "cli"),
            "maillog_file": os.path.join(self.dir, "maillog"),
            "mail_owner": "root",
            "inet_interfaces": "127.0.0.1",
            "mynetworks": "127.0.0.0/8",
            "myhostname": "sluice.bench",
            "mydestination": "",
            "relayhost": "[127.0.0.1]:%d" % sink_port,
            "journal_sync": "always",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
        }
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.writelines("%s = %s\n" % kv for kv in main.items())
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd\n" % port)
            f.write("cleanup unix n - n - 0 cleanup\n"
                    "smtp unix - - n - - smtp\n"
                    "relay unix - - n - - smtp\n"
                    "error unix - - n - - error\n"
                    "retry unix - - n - - error\n"
                    "discard unix - - n - - discard\n")
        self.cmd_start = [os.path.join(build, "cli", "postfix"), "-c", self.etc, "start"]
        self.cmd_stop = [os.path.join(build, "cli", "postfix"), "-c", self.etc, "stop"]
        self.running = False

    def start(self):
        subprocess.run(self.cmd_start, check=True, capture_output=True)
        self.running = True
        wait_port(self.port)

    def stop(self):
        if self.running:
            subprocess.run(self.cmd_stop, capture_output=True)
            self.running = False

    def cpu(self):
        return tree_cpu(read_pid(os.path.join(self.spool, "pid", "master.pid")))

    def engine_pid(self):
        mp = read_pid(os.path.join(self.spool, "pid", "master.pid"))
        for d in os.listdir("/proc"):
            if d.isdigit():
                s = proc_stat(int(d))
                if s and s[0] == mp:
                    return int(d)
        return 0

    def switches(self):
        """Context switches of the engine's threads so far (robust to noise)."""
        total = 0
        task = "/proc/%d/task" % self.engine_pid()
        for t in os.listdir(task) if os.path.isdir(task) else []:
            try:
                with open(os.path.join(task, t, "status")) as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total


class Postfix:
    name = "postfix"

    def __init__(self, root, port, sink_port):
        self.dir = os.path.join(root, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.port = port
        for d in (self.etc, self.queue, self.data):
            os.makedirs(d)
        shutil.chown(self.data, "postfix", "postfix")
        main = {
            "compatibility_level": "3.6",
            "config_directory": self.etc,
            "queue_directory": self.queue,
            "data_directory": self.data,
            "daemon_directory": POSTFIX_DAEMONS,
            "command_directory": "/usr/sbin",
            "meta_directory": "/etc/postfix",
            "shlib_directory": "/usr/lib/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "postfix.bench",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "[127.0.0.1]:%d" % sink_port,
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtputf8_enable": "no",
            "biff": "no",
            "maillog_file": os.path.join(self.dir, "maillog"),
            "maillog_file_prefixes": self.dir,
        }
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.writelines("%s = %s\n" % kv for kv in main.items())
        # Debian's stock services, chroot off (no chroot jail to populate).
        services = [
            "127.0.0.1:%d inet n - n - - smtpd" % port,
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("\n".join(services) + "\n")
        self.running = False

    def postfix(self, *args, check=True):
        return subprocess.run([POSTFIX, "-c", self.etc] + list(args), check=check,
                              capture_output=True, text=True)

    def start(self):
        self.postfix("check")			# creates the queue directories
        self.postfix("start")
        self.running = True
        wait_port(self.port)

    def stop(self):
        if self.running:
            self.postfix("stop", check=False)
            self.running = False

    def cpu(self):
        return tree_cpu(read_pid(os.path.join(self.queue, "pid", "master.pid")))


def run_once(target_port, sink_port, flags, n, relay, timeout, verbose=False):
    """One run: returns dict with rate and CPU figures, or raises."""
    sink_cmd = [SMTP_SINK, "-u", "postfix", "-M", str(n), "127.0.0.1:%d" % sink_port, "256"]
    src_cmd = ([SMTP_SOURCE, "-s", "20", "-m", str(n)] + flags +
               ["-f", "sender@bench.test", "-t", "rcpt@example.com", "-M", "bench.test",
                "127.0.0.1:%d" % target_port])
    if verbose:
        print("#   " + " ".join(sink_cmd) + "\n#   " + " ".join(src_cmd), flush=True)
    sink = subprocess.Popen(sink_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(sink_port)
        relay_cpu0 = relay.cpu() if relay else 0.0
        cs0 = relay.switches() if isinstance(relay, Sluice) else 0
        t0 = time.monotonic()
        src = subprocess.Popen(src_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        src_end = sink_end = None
        src_ru = sink_ru = None
        deadline = t0 + timeout
        while (src_end is None or sink_end is None) and time.monotonic() < deadline:
            if src_end is None:
                pid, status, ru = os.wait4(src.pid, os.WNOHANG)
                if pid:
                    src_end, src_ru, src.returncode = time.monotonic(), ru, status
            if sink_end is None:
                pid, status, ru = os.wait4(sink.pid, os.WNOHANG)
                if pid:
                    sink_end, sink_ru, sink.returncode = time.monotonic(), ru, status
            time.sleep(0.002)
        if sink_end is None:
            raise RuntimeError("smtp-sink did not see %d messages within %ds" % (n, timeout))
        # Directly into the sink, the source may lose its last sessions when
        # the sink exits at N; through a relay every message must be accepted.
        if src.returncode != 0 and relay is not None:
            raise RuntimeError("smtp-source failed: %s" % src.stderr.read().decode()[-500:])
        relay_cpu = (relay.cpu() - relay_cpu0) if relay else 0.0
        cs = (relay.switches() - cs0) if isinstance(relay, Sluice) else 0
        wall = sink_end - t0
        return {
            "rate": n / wall, "wall": wall, "accept_wall": src_end - t0,
            "relay_cpu": relay_cpu, "cs": cs,
            "src_cpu": src_ru.ru_utime + src_ru.ru_stime,
            "sink_cpu": sink_ru.ru_utime + sink_ru.ru_stime,
        }
    finally:
        for p in (sink,):
            if p.returncode is None:
                p.kill()
                p.wait()
        try:
            if src.returncode is None:
                src.kill()
                src.wait()
        except NameError:
            pass


def fmt(x):
    return "{:,.0f}".format(x).replace(",", " ")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("-s", "--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("-t", "--targets", default="ceiling,sluice,postfix",
                    help="also sluice2, sluice3, ... for the builds given with -b")
    ap.add_argument("-b", "--build", action="append", default=[],
                    help="another Sluice build directory to compare (A/B): target sluice2, ...")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every N")
    ap.add_argument("--timeout", type=int, default=120, help="per run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/e2e.py: run as root (Postfix's master needs it)")
    if not os.path.exists(os.path.join(BUILD, "engine", "master")):
        sys.exit("bench/e2e.py: no %s/engine/master: run from the build directory "
                 "or set SLUICE_BUILDDIR" % BUILD)
    targets = args.targets.split(",")
    root = tempfile.mkdtemp(prefix="sluice-e2e-", dir="/var/tmp")
    os.chmod(root, 0o755)
    sink_ports = {t: free_port() for t in targets}
    relays = {}
    if "sluice" in targets:
        relays["sluice"] = Sluice(root, free_port(), sink_ports["sluice"])
    for t in targets:
        if t.startswith("sluice") and t != "sluice" and t[6:].isdigit() \
                and int(t[6:]) - 2 >= len(args.build):
            sys.exit("bench/e2e.py: target %s needs a build directory (-b)" % t)
    for i, build in enumerate(args.build):
        name = "sluice%d" % (i + 2)
        if name not in targets:
            targets.append(name)
            sink_ports[name] = free_port()
        relays[name] = Sluice(root, free_port(), sink_ports[name], build, name)
    if "postfix" in targets:
        relays["postfix"] = Postfix(root, free_port(), sink_ports["postfix"])

    def cleanup():
        for r in relays.values():
            r.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print("# %s, nproc %d, %s, kernel %s" % (time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                             os.cpu_count(), cpu, platform.release()))
    print("# build %s, state in %s" % (BUILD, root))
    for r in relays.values():
        r.start()
    results = {}
    t_all = time.monotonic()
    for scen in args.scenarios.split(","):
        flags, n_fast, n_slow = SCENARIOS[scen]
        n_fast, n_slow = int(n_fast * args.scale), int(n_slow * args.scale)
        for rep in range(args.reps):
            for t in targets:
                n = n_slow if t == "postfix" else n_fast
                port = relays[t].port if t in relays else sink_ports[t]
                load = os.getloadavg()[0]
                r = run_once(port, sink_ports[t], flags, n, relays.get(t), args.timeout,
                             verbose=(rep == 0))
                r["n"] = n
                results.setdefault((scen, t), []).append(r)
                print("%-5s %-8s rep %d: %8.0f msg/s  N=%-6d wall %6.2fs  accept %6.2fs  "
                      "relay cpu %6.2fs (%.3f ms/msg)  source cpu %5.2fs  sink cpu %5.2fs  "
                      "load %.1f%s"
                      % (scen, t, rep + 1, r["rate"], n, r["wall"], r["accept_wall"],
                         r["relay_cpu"], 1000 * r["relay_cpu"] / n, r["src_cpu"], r["sink_cpu"],
                         load, "  cs/msg %.2f" % (r["cs"] / n) if t.startswith("sluice") else ""),
                      flush=True)
    print("# total %.0fs" % (time.monotonic() - t_all))
    print()
    print("| scenario | ceiling msg/s | Sluice msg/s | Postfix msg/s | Sluice/Postfix | "
          "Sluice/ceiling | Postfix/ceiling | CPU ms/msg Sluice | CPU ms/msg Postfix |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scen in args.scenarios.split(","):
        med = {}
        cpu_ms = {}
        for t in targets:
            rs = results[(scen, t)]
            med[t] = statistics.median(r["rate"] for r in rs)
            cpu_ms[t] = statistics.median(1000 * r["relay_cpu"] / r["n"] for r in rs)

        def ratio(a, b):
            return "%.2fx" % (med[a] / med[b]) if a in med and b in med else "-"

        def pct(a, b):
            return "%.0f %%" % (100 * med[a] / med[b]) if a in med and b in med else "-"
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            scen, fmt(med["ceiling"]) if "ceiling" in med else "-",
            fmt(med["sluice"]) if "sluice" in med else "-",
            fmt(med["postfix"]) if "postfix" in med else "-",
            ratio("sluice", "postfix"), pct("sluice", "ceiling"), pct("postfix", "ceiling"),
            "%.3f" % cpu_ms["sluice"] if "sluice" in cpu_ms else "-",
            "%.3f" % cpu_ms["postfix"] if "postfix" in cpu_ms else "-"))
    extra = [t for t in targets if t.startswith("sluice")]
    if len(extra) > 1:
        print()
        print("| scenario | target | build | msg/s | /ceiling | CPU ms/msg | context switches/msg |")
        print("|---|---|---|---|---|---|---|")
        for scen in args.scenarios.split(","):
            ceil = ([statistics.median(r["rate"] for r in results[(scen, "ceiling")])]
                    if "ceiling" in targets else [])
            for t in extra:
                rs = results[(scen, t)]
                rate = statistics.median(r["rate"] for r in rs)
                print("| %s | %s | %s | %s | %s | %.3f | %.2f |" % (
                    scen, t, relays[t].build, fmt(rate),
                    "%.0f %%" % (100 * rate / ceil[0]) if ceil else "-",
                    statistics.median(1000 * r["relay_cpu"] / r["n"] for r in rs),
                    statistics.median(r["cs"] / r["n"] for r in rs)))


if __name__ == "__main__":
    main()
