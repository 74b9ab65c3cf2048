"""postmap.py - postmap, postalias and newaliases against the built binaries,
in a temporary directory: build, -q, -q -, -s, exit codes, Postfix's
warnings, -f, -i, alias format, newaliases with -c, and atomic rebuild
(a reader looping lookups while postmap rebuilds never misses a key).
Prints TAP."""
import os
import shutil
import subprocess
import sys
import tempfile
import threading

BUILD = os.environ.get("SLUICE_BUILDDIR", ".")
POSTMAP = os.path.join(BUILD, "cli", "postmap")
POSTALIAS = os.path.join(BUILD, "cli", "postalias")
NEWALIASES = os.path.join(BUILD, "cli", "newaliases")

results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


def run(argv, stdin=None, env=None):
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                       env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-postmap-")
    try:
        tests(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    failed = 0
    for n, (name, ok, detail) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", n, name))
        if not ok:
            failed += 1
            for line in str(detail).splitlines():
                print("# " + line)
    return 1 if failed else 0


def tests(tmp):
    access = os.path.join(tmp, "access")
    write(access,
          "# access table\n"
          "User@Example.COM   REJECT\n"
          "example.net        OK\n"
          "multi              first part\n"
          "    second part\n"
          "novalue\n"
          "example.net        duplicate\n"
          "\"quoted key\"       quoted\n")
    rc, out, err = run([POSTMAP, access])
    check("postmap builds file.db", rc == 0 and os.path.exists(access + ".db"),
          (rc, err))
    check("bad line warned in Postfix's words",
          "postmap: warning: %s, line 6: expected format: key whitespace value\n"
          % access in err, err)
    check("duplicate warned, first kept",
          'postmap: warning: %s.db: duplicate entry: "example.net"' % access
          in err, err)
    check("no temporary file left behind",
          sorted(os.listdir(tmp)) == ["access", "access.db"], os.listdir(tmp))
    mode = os.stat(access + ".db").st_mode & 0o777
    check("table mode follows the source (0644)", mode == 0o644, oct(mode))

    rc, out, err = run([POSTMAP, "-q", "user@example.com", "hash:" + access])
    check("-q finds a folded key, exit 0", rc == 0 and out == "REJECT\n",
          (rc, out, err))
    rc, out, err = run([POSTMAP, "-q", "example.net", access])
    check("-q default type is hash, first duplicate wins",
          rc == 0 and out == "OK\n", (rc, out, err))
    rc, out, err = run([POSTMAP, "-q", "multi", "hash:" + access])
    check("-q continuation line joined",
          rc == 0 and out == "first part    second part\n", (rc, out))
    rc, out, err = run([POSTMAP, "-q", "nosuchkey", "hash:" + access])
    check("-q not found: exit 1, no output", rc == 1 and out == "", (rc, out))
    rc, out, err = run([POSTMAP, "-q", "x", "hash:" + os.path.join(tmp, "none")])
    check("-q missing table: exit 2 with fatal message",
          rc == 2 and "postmap: fatal: open database" in err, (rc, err))
    rc, out, err = run([POSTMAP, "-q", "nokey", "hash:" + access,
                        "inline:{nokey=from-second}"])
    check("-q tries the maps in order", rc == 0 and out == "from-second\n",
          (rc, out, err))

    rc, out, err = run([POSTMAP, "-q", "-", "hash:" + access],
                       stdin="EXAMPLE.NET\nmissing\nuser@example.com\n")
    check("-q - prints key<TAB>value for found keys",
          rc == 0 and out == "EXAMPLE.NET\tOK\nuser@example.com\tREJECT\n",
          (rc, out, err))
    rc, out, err = run([POSTMAP, "-q", "-", "hash:" + access], stdin="a\nb\n")
    check("-q - with nothing found: exit 1", rc == 1 and out == "", (rc, out))

    rc, out, err = run([POSTMAP, "-s", "hash:" + access])
    lines = sorted(out.splitlines())
    check("-s lists every entry",
          rc == 0 and lines == sorted(["user@example.com\tREJECT",
                                       "example.net\tOK",
                                       "multi\tfirst part    second part",
                                       "\"quoted key\"\tquoted"]),
          (rc, out, err))
    rc, out, err = run([POSTMAP, "-s", "regexp:" + access])
    check("-s on a type that cannot list: exit 2", rc == 2, (rc, err))

    rc, out, err = run([POSTMAP, "-f", access])
    rc2, out2, _ = run([POSTMAP, "-f", "-q", "User@Example.COM", access])
    rc3, out3, _ = run([POSTMAP, "-f", "-q", "user@example.com", access])
    check("-f keeps case when building and querying",
          rc == 0 and rc2 == 0 and out2 == "REJECT\n" and rc3 == 1,
          (rc, rc2, out2, rc3))
    run([POSTMAP, access])

    rc, out, err = run([POSTMAP, "-i", access], stdin="added new-value\nexample.net new\n")
    rc2, out2, _ = run([POSTMAP, "-q", "added", access])
    rc3, out3, _ = run([POSTMAP, "-q", "example.net", access])
    check("-i adds from stdin, keeps existing entries",
          rc == 0 and out2 == "new-value\n" and out3 == "OK\n", (rc, err, out2, out3))

    rc, out, err = run([POSTMAP, "-Z", access])
    check("unknown option: usage, exit 1",
          rc == 1 and "postmap: fatal: usage: postmap" in err, (rc, err))
    rc, out, err = run([POSTMAP])
    check("no table: usage, exit 1", rc == 1 and "usage" in err, (rc, err))
    rc, out, err = run([POSTMAP, "texthash:" + access])
    check("building a type that has no file fails",
          rc == 1 and "unsupported map type for this operation: texthash" in err,
          (rc, err))
    rc, out, err = run([POSTMAP, os.path.join(tmp, "missing-source")])
    check("missing source: fatal, exit 1",
          rc == 1 and "postmap: fatal: open " in err, (rc, err))

    # Other table types through postmap -q.
    cidr = os.path.join(tmp, "clients.cidr")
    write(cidr, "10.0.0.0/8 ten\n2001:db8::/32 v6\n10.1.2.3/8 bad\n")
    rc, out, err = run([POSTMAP, "-q", "2001:db8::5", "cidr:" + cidr])
    check("cidr: via postmap -q", rc == 0 and out == "v6\n", (rc, out, err))
    check("bad cidr line warned",
          "non-null host address bits" in err, err)
    rx = os.path.join(tmp, "checks.re")
    write(rx, "/^Subject: (.*)$/ WARN subject is $1\n")
    rc, out, err = run([POSTMAP, "-q", "subject: Hello", "regexp:" + rx])
    check("regexp: via postmap -q", rc == 0 and out == "WARN subject is Hello\n",
          (rc, out, err))

    # postalias and newaliases.
    aliases = os.path.join(tmp, "aliases")
    write(aliases,
          "# aliases\n"
          "Postmaster: root\n"
          "staff: alice, bob,\n"
          "\tcarol\n"
          "bad line without colon\n"
          "remote@example.com: nobody\n"
          "\"first last\": first.last@example.com\n"
          "prog: \"|/usr/bin/cmd arg\", /var/mail/file, :include:/etc/list\n")
    rc, out, err = run([POSTALIAS, aliases])
    check("postalias builds", rc == 0 and os.path.exists(aliases + ".db"), (rc, err))
    check("postalias warns about a line without name:value",
          "postalias: warning: %s, line 5: need name:value pair" % aliases in err,
          err)
    check("postalias warns about a non-local name",
          "postalias: warning: %s, line 6: name must be local" % aliases in err, err)
    rc, out, err = run([POSTALIAS, "-q", "postmaster", aliases])
    check("postalias -q folded name", rc == 0 and out == "root\n", (rc, out, err))
    rc, out, err = run([POSTALIAS, "-q", "staff", aliases])
    check("postalias continuation", out == "alice, bob, carol\n", (rc, out))
    rc, out, err = run([POSTALIAS, "-q", "first last", aliases])
    check("postalias quoted name", out == "first.last@example.com\n", (rc, out))
    rc, out, err = run([POSTALIAS, "-q", "@", aliases])
    check("postalias adds the @:@ entry", out == "@\n", (rc, out))
    rc, out, err = run([POSTALIAS, "-q", "-", aliases], stdin="staff\nnone\n")
    check("postalias -q - prints name:<TAB>value",
          rc == 0 and out == "staff:\talice, bob, carol\n", (rc, out))
    rc, out, err = run([POSTALIAS, "-s", aliases])
    check("postalias -s", rc == 0 and "prog:\t\"|/usr/bin/cmd arg\", /var/mail/file, "
          ":include:/etc/list\n" in out, (rc, out))

    conf = os.path.join(tmp, "conf")
    os.mkdir(conf)
    alias2 = os.path.join(tmp, "aliases2")
    write(alias2, "root: admin\n")
    os.remove(aliases + ".db")
    write(os.path.join(conf, "main.cf"),
          "alias_database = hash:%s, hash:%s\n" % (aliases, alias2))
    rc, out, err = run([NEWALIASES, "-c", conf])
    check("newaliases builds every alias_database table",
          rc == 0 and os.path.exists(aliases + ".db")
          and os.path.exists(alias2 + ".db"), (rc, err))
    env = dict(os.environ, MAIL_CONFIG=conf)
    os.remove(alias2 + ".db")
    rc, out, err = run([NEWALIASES], env=env)
    check("newaliases honours MAIL_CONFIG", rc == 0 and os.path.exists(alias2 + ".db"),
          (rc, err))
    rc, out, err = run([NEWALIASES, "extra"], env=env)
    check("newaliases takes no file arguments", rc == 1 and "usage" in err, (rc, err))

    # Atomic rebuild: a reader never misses a key while postmap rebuilds.
    big = os.path.join(tmp, "big")
    write(big, "".join("key%d value%d\n" % (n, n) for n in range(20000)))
    run([POSTMAP, big])
    stop = threading.Event()
    failures = []
    reads = [0]

    def reader():
        while not stop.is_set():
            rc, out, err = run([POSTMAP, "-q", "-", "hash:" + big],
                               stdin="key0\nkey19999\n")
            reads[0] += 1
            if rc != 0 or out != "key0\tvalue0\nkey19999\tvalue19999\n":
                failures.append((rc, out, err))

    t = threading.Thread(target=reader)
    t.start()
    builds_ok = True
    for _ in range(15):
        rc, _, err = run([POSTMAP, big])
        builds_ok = builds_ok and rc == 0
    stop.set()
    t.join()
    check("reader never misses a key during %d rebuilds (%d reads)" % (15, reads[0]),
          builds_ok and reads[0] > 0 and not failures, failures[:3])


if __name__ == "__main__":
    sys.exit(main())
