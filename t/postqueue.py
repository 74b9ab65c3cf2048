"""mailq / postqueue -p -j -S -i -f, postcat, qshape against a running
engine and against a stopped one (the journal), with golden output where
queue IDs, dates and ports are normalised; the metrics endpoint."""
import json
import os
import re
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
from sluicetest import Instance, Tap, free_port, wait_for  # noqa: E402
from smtp_testlib import Handler, Server  # noqa: E402
from queue_golden import normalise, send  # noqa: E402

tap = Tap()
REASON = "host 127.0.0.1[127.0.0.1] said: 450 4.2.0 try later (in reply to RCPT TO command)"
PAD = " " * (76 - len(REASON))
MAILQ = """-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
ID1 SIZE DATE  me@sluice.test
%s(%s)
                                         later@example.com
                                         later2@example.com

-- 0 Kbytes in 1 Request.
""" % (PAD, REASON)

handler = Handler(rcpt={"later@example.com": "450 4.2.0 try later",
                        "later2@example.com": "450 4.2.0 try later"})
mport = free_port()
with Server(handler) as sink, Instance(main={"relayhost": "[127.0.0.1]:%d" % sink.port,
                                             "metrics_listen": "127.0.0.1:%d" % mport}) as inst:
    inst.start()
    r = inst.cmd("mailq")
    tap.eq((r.returncode, r.stdout), (0, "Mail queue is empty\n"), "empty queue: Mail queue is empty")

    qid = send(inst.port, ["later@example.com", "later2@example.com", "ok@example.com"])
    inst.wait_log(r"%s: to=<later2@example\.com>.*status=deferred" % qid)
    inst.wait_log(r"%s: to=<ok@example\.com>.*status=sent" % qid)
    wait_for(lambda: "later@" in inst.cmd("mailq").stdout and "ok@" not in inst.cmd("mailq").stdout,
             20, "deferred listing")

    # mailq == postqueue -p, Postfix's layout (sent recipient not listed).
    r = inst.cmd("mailq")
    size = json.loads(inst.cmd("postqueue", "-j").stdout)["message_size"]
    want_line = "%-11s %7d " % (qid, size)
    tap.ok(r.stdout.splitlines()[1].startswith(want_line), "mailq: ID and size columns", r.stdout)
    got = re.sub(r"(?m)^(ID1[*!]?) +\d+ DATE", r"\1 SIZE DATE", normalise(r.stdout, [qid]))
    tap.eq(got, MAILQ, "mailq (online): Postfix's layout with the deferral reason")
    online_mailq = r.stdout
    tap.eq(inst.cmd("postqueue", "-p").stdout, online_mailq, "postqueue -p is mailq")

    # postqueue -j: one JSON object per line, Postfix 3.1+ fields.
    r = inst.cmd("postqueue", "-j")
    objs = [json.loads(l) for l in r.stdout.splitlines()]
    tap.eq(len(objs), 1, "postqueue -j: one line per message, parses as JSON")
    o = objs[0]
    tap.eq((o["queue_name"], o["queue_id"], o["sender"], o["forced_expire"],
            [x["address"] for x in o["recipients"]]),
           ("deferred", qid, "me@sluice.test", False, ["later@example.com", "later2@example.com"]),
           "postqueue -j: queue_name, queue_id, sender, forced_expire, recipients")
    tap.eq(o["recipients"][0].get("delay_reason"), REASON, "postqueue -j: delay_reason")
    tap.ok(isinstance(o["arrival_time"], int) and o["message_size"] > 0, "arrival_time, message_size")
    online_json = r.stdout

    # postcat -q.
    r = inst.cmd("postcat", "-q", qid)
    pc = normalise(r.stdout, [qid])
    tap.ok(r.returncode == 0 and pc.startswith("*** ENVELOPE RECORDS deferred/ID1 ***\n")
           and "\nsender: me@sluice.test\n" in pc and "\nrecipient: later@example.com\n" in pc
           and "\ndone_recipient: ok@example.com\n" in pc
           and "*** MESSAGE CONTENTS deferred/ID1 ***\nReceived: " in pc
           and "\nSubject: test\n" in pc and pc.endswith("\nhello\n*** HEADER EXTRACTED deferred/ID1 ***\n"
                                                       "*** MESSAGE FILE END deferred/ID1 ***\n"),
           "postcat -q ID: envelope, content, Postfix's section markers", r.stdout)
    online_postcat = r.stdout
    r = inst.cmd("postcat", "-b", "-q", qid)
    tap.eq(r.stdout, "\nhello\n", "postcat -b: the body only")
    r = inst.cmd("postcat", "-h", "-q", qid)
    tap.ok(r.stdout.startswith("Received: ") and r.stdout.endswith("Subject: test\n") is False
           and "hello" not in r.stdout and "Subject: test\n" in r.stdout, "postcat -h: the header only",
           r.stdout)
    r = inst.cmd("postcat", "-q", "ABCDEF01")
    tap.ok(r.returncode != 0 and "postcat: fatal: open queue file ABCDEF01: No such file or directory"
           in r.stderr, "postcat -q unknown ID: clear error", r.stderr)
    r = inst.cmd("postcat", "-q", "nonsense!")
    tap.ok(r.returncode != 0 and "bad mail queue ID: nonsense!" in r.stderr, "postcat: bad ID", r.stderr)

    # qshape: computed by the engine.
    r = inst.cmd("qshape", "deferred")
    lines = r.stdout.splitlines()
    tap.eq([l.split() for l in lines],
           [["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"],
            ["TOTAL", "2", "2", "0", "0", "0", "0", "0", "0", "0", "0", "0"],
            ["example.com", "2", "2", "0", "0", "0", "0", "0", "0", "0", "0", "0"]],
           "qshape deferred: 2 recipients at example.com, under 5 minutes old")
    tap.eq(r.stdout.splitlines()[0].index("T") + 1, len("example.com") + 2, "qshape: columns aligned")
    r = inst.cmd("qshape")
    tap.eq(r.stdout.splitlines()[1].split()[1], "0", "qshape (incoming+active by default): 0")
    r = inst.cmd("qshape", "-s", "-j", "deferred")
    js = json.loads(r.stdout)
    tap.eq((js["by"], js["total"]["total"], js["domains"][0]["domain"], js["domains"][0]["counts"][0]),
           ("sender", 1, "sluice.test", 1), "qshape -s -j: one message from sluice.test")
    r = inst.cmd("qshape", "nosuchqueue")
    tap.ok(r.returncode != 0 and "unknown queue name" in r.stderr, "qshape: unknown queue name")
    online_qshape = inst.cmd("qshape", "deferred").stdout

    # Per-destination status.
    r = inst.cmd("postqueue", "-S", "-j")
    ds = [json.loads(l) for l in r.stdout.splitlines()]
    tap.ok(any(d["transport"] == "smtp" and d["destination"] == "[127.0.0.1]:%d" % sink.port
               and d["concurrency_limit"] == 20 and d["delivered"] >= 1 for d in ds),
           "postqueue -S -j: the relayhost destination with its limit", r.stdout)
    r = inst.cmd("postqueue", "-S")
    tap.ok(r.stdout.startswith("Transport  Destination") and "[127.0.0.1]:%d" % sink.port in r.stdout,
           "postqueue -S: table", r.stdout)

    # Filters: -D domain, -Q queue.
    tap.eq(inst.cmd("postqueue", "-p", "-D", "other.example").stdout, "Mail queue is empty\n",
           "postqueue -p -D other domain: nothing")
    tap.eq(inst.cmd("postqueue", "-p", "-D", "example.com").stdout, online_mailq,
           "postqueue -p -D example.com: the message")
    tap.eq(inst.cmd("postqueue", "-p", "-Q", "hold").stdout, "Mail queue is empty\n",
           "postqueue -p -Q hold: nothing")

    # Metrics endpoint.
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10).read().decode()
    tap.ok('sluice_queue_messages{queue="deferred"} 1\n' in body
           and 'sluice_queue_recipients{state="deferred"} 2\n' in body
           and 'sluice_stage_queue_depth{stage="cleanup"}' in body
           and "sluice_journal_syncs_total" in body, "metrics: queue, recipients, stages, journal", body)
    tap.ok('sluice_recipients_total{status="sent"} 1\n' in body, "metrics: recipients sent", body)
    m = re.search(r'^sluice_journal_sync_seconds_bucket\{le="\+Inf"\} (\d+)$', body, re.M)
    n = re.search(r'^sluice_journal_sync_seconds_count (\d+)$', body, re.M)
    s = re.search(r'^sluice_journal_syncs_total (\d+)$', body, re.M)
    tap.ok(m and n and s and int(m.group(1)) == int(n.group(1)) == int(s.group(1)) > 0,
           "metrics: journal sync latency histogram counts every sync", body)

    # Stopped: the same views from the journal.
    inst.stop()
    r = inst.cmd("mailq")
    tap.eq(r.stdout, online_mailq, "mailq (stopped): the same output from the journal")
    tap.eq(inst.cmd("postqueue", "-j").stdout, online_json, "postqueue -j (stopped): the same")
    tap.eq(inst.cmd("postcat", "-q", qid).stdout, online_postcat, "postcat (stopped): the same")
    tap.eq(inst.cmd("qshape", "deferred").stdout, online_qshape, "qshape (stopped): the same")
    r = inst.cmd("postqueue", "-S", "-j")
    ds = [json.loads(l) for l in r.stdout.splitlines()]
    tap.eq([(d["transport"], d["queued_recipients"]) for d in ds], [("smtp", 2)],
           "postqueue -S -j (stopped): queued recipients per destination")
    r = inst.cmd("postqueue", "-f")
    tap.ok(r.returncode != 0 and "Cannot flush mail queue - mail system is down" in r.stderr,
           "postqueue -f (stopped): mail system is down", r.stderr)

    # Running again: -i flushes one message; it is delivered.
    inst.start()
    handler.rcpt.clear()
    r = inst.cmd("postqueue", "-i", qid)
    tap.eq(r.returncode, 0, "postqueue -i ID")
    tap.ok(inst.wait_log(r"%s: removed" % qid), "postqueue -i: delivered and removed")
    r = inst.cmd("postqueue", "-i", "ABCDEF01")
    tap.ok(r.returncode != 0 and "no such message" in r.stderr, "postqueue -i unknown ID")
    r = inst.cmd("postqueue", "-s", "example.com")
    tap.eq(r.returncode, 0, "postqueue -s site")
    r = inst.cmd("postqueue", "-f")
    tap.eq(r.returncode, 0, "postqueue -f")
    tap.eq(inst.postfix("flush").returncode, 0, "postfix flush (the same request)")
tap.done()
