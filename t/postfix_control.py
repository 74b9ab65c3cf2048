"""postfix start twice, status, reload, stop, abort: Postfix's messages and
exit codes, the pid file lock, the master restarting a killed engine."""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from sluicetest import Instance, Tap, wait_for  # noqa: E402

SCRIPT = "postfix/postfix-script: "
tap = Tap()

with Instance() as inst:
    r = inst.postfix("status")
    tap.eq(r.returncode, 1, "status before start exits 1")
    tap.ok(SCRIPT + "the Postfix mail system is not running" in r.stderr,
           "status says not running", r.stderr)

    r = inst.postfix("start")
    tap.ok(r.returncode == 0, "start exits 0", r.stderr + inst.log())
    inst.started = True
    tap.ok(SCRIPT + "starting the Postfix mail system" in r.stderr, "start says starting",
           r.stderr)

    r = inst.postfix("start")
    tap.eq(r.returncode, 1, "second start exits 1")
    tap.ok(SCRIPT + "fatal: the Postfix mail system is already running" in r.stderr,
           "second start says already running", r.stderr)

    r = inst.postfix("status")
    tap.eq(r.returncode, 0, "status while running exits 0")
    m = __import__("re").search(r"the Postfix mail system is running: PID: (\d+)", r.stderr)
    tap.ok(m is not None, "status names the PID", r.stderr)
    master_pid = int(m.group(1)) if m else 0
    tap.ok(master_pid > 0 and os.path.exists("/proc/%d" % master_pid), "that PID is alive")

    log = inst.wait_log(r"postfix/master\[\d+\]: daemon started -- version")
    tap.ok(log, "maillog has Postfix's 'daemon started' line")

    r = inst.postfix("reload")
    tap.eq(r.returncode, 0, "reload exits 0")
    tap.ok(SCRIPT + "refreshing the Postfix mail system" in r.stderr, "reload says refreshing")
    tap.ok(inst.wait_log(r"postfix/master\[\d+\]: reload"), "reload is logged")
    # The engine re-reads main.cf after the master's line: wait for that too.
    inst.wait_log(r"reload: configuration ")

    # A bad value on reload: the engine logs why and keeps the old configuration.
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("smtpd_recipient_limit = lots\n")
    r = inst.postfix("reload")
    tap.ok(r.returncode != 0 and "smtpd_recipient_limit" in r.stderr,
           "postfix reload refuses a bad value and names it", r.stderr)
    os.kill(master_pid, signal.SIGHUP)		# as a process manager would
    tap.ok(inst.wait_log(r"warning: reload: .*smtpd_recipient_limit.*lots.*"
                         r"keeping the old configuration"),
           "reload with a bad value logs it and keeps the old configuration", inst.log()[-2000:])
    import smtplib
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=20) as c:
        tap.eq(c.noop()[0], 250, "the engine still serves SMTP after the refused reload")
    r = inst.postfix("check")
    tap.ok(r.returncode != 0 and "smtpd_recipient_limit" in r.stderr,
           "postfix check names the bad parameter", r.stderr)
    with open(os.path.join(inst.etc, "main.cf")) as f:
        lines = [line for line in f if not line.startswith("smtpd_recipient_limit")]
    with open(os.path.join(inst.etc, "main.cf"), "w") as f:
        f.writelines(lines)

    r = inst.cmd("postfix", "-v", "status")
    tap.ok("stage" in r.stdout and "maillog_dropped" in r.stdout,
           "status -v prints stage counters through the control socket", r.stdout + r.stderr)

    # The supervisor restarts an engine that dies.
    def engine_pid():
        out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True,
                             text=True).stdout.split()
        return int(out[0]) if out else 0
    first = wait_for(engine_pid, 10, "engine child")
    os.kill(first, signal.SIGKILL)
    tap.ok(inst.wait_log(r"warning: process sluice-engine pid %d killed by signal 9" % first),
           "the master logs the engine's death")
    second = wait_for(lambda: (lambda p: p if p and p != first else 0)(engine_pid()), 20,
                      "restarted engine")
    tap.ok(second != first, "the master restarted the engine")

    r = inst.postfix("stop")
    tap.eq(r.returncode, 0, "stop exits 0")
    inst.started = False
    tap.ok(SCRIPT + "stopping the Postfix mail system" in r.stderr, "stop says stopping")
    def master_gone():
        try:
            with open("/proc/%d/stat" % master_pid) as f:
                return f.read().split()[2] == "Z"
        except FileNotFoundError:
            return True
    # stop returns once the pid file lock is free; the process exits right after.
    tap.ok(wait_for(master_gone, 10, "the master to exit"), "the master is gone after stop")
    r = inst.postfix("stop")
    tap.eq(r.returncode, 1, "stop when stopped exits 1")
    tap.ok(SCRIPT + "fatal: the Postfix mail system is not running" in r.stderr,
           "stop when stopped says not running")

    r = inst.postfix("bogus")
    tap.eq(r.returncode, 1, "unknown command exits 1")
    tap.ok("unknown command: 'bogus'" in r.stderr, "unknown command is named", r.stderr)

    # abort kills master and engine at once.
    inst.start(wait_smtp=False)
    pid = wait_for(lambda: (lambda r: int(r.stderr.split("PID: ")[1]) if r.returncode == 0
                            else 0)(inst.postfix("status")), 10, "running master")
    r = inst.postfix("abort")
    inst.started = False
    tap.eq(r.returncode, 0, "abort exits 0")
    wait_for(lambda: inst.postfix("status").returncode == 1, 10, "stopped after abort")
    tap.ok(True, "status says not running after abort")
tap.done()
