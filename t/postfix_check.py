"""`postfix check` and `postfix set-permissions` on a private instance.

A good instance (hash:, regexp: and inline: tables named in main.cf and in
a master.cf -o override) passes with exit 0 and no warning. Then each
problem is reported, naming the file, with exit 1: a missing hash: table
(Postfix's "open database X.db: No such file or directory"), a table whose
.db is older than its source ("database X.db is older than source file X"),
a broken regexp: table, an unsupported table type, a table named only in
a master.cf -o override, an unknown mail_owner, a missing daemon_directory;
as root also a queue subdirectory with the wrong owner and one with the
wrong mode, which `postfix set-permissions` then puts right."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from sluicetest import BUILD, DEFAULT_SERVICES, Instance, Tap  # noqa: E402

tap = Tap()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def problems(r):
    return [line for line in r.stderr.splitlines() if ": warning: " in line or ": fatal: " in line]


inst = Instance(master=DEFAULT_SERVICES + [
    "submission inet n - n - - smtpd -o smtpd_client_restrictions=check_client_access,"
    "inline:{1.2.3.4=REJECT}"], smtp=True)
etc = inst.etc
write(os.path.join(etc, "transport"), "example.com smtp:[127.0.0.1]:2525\n")
write(os.path.join(etc, "access"), "spammer@example.com REJECT\n")
write(os.path.join(etc, "aliases"), "postmaster: root\n")
write(os.path.join(etc, "header_checks"), "/^Subject: spam/ REJECT\n")
for name in ("transport", "access"):
    inst.cmd("postmap", os.path.join(etc, name), check=True)
inst.cmd("postalias", os.path.join(etc, "aliases"), check=True)
with open(os.path.join(etc, "main.cf"), "a") as f:
    f.write("alias_maps = hash:%s/aliases\n" % etc)
    f.write("transport_maps = hash:%s/transport\n" % etc)
    f.write("header_checks = regexp:%s/header_checks\n" % etc)
    f.write("smtpd_recipient_restrictions = permit_mynetworks,\n"
            "    check_recipient_access hash:%s/access, reject_unauth_destination\n" % etc)


def postconf_e(*settings):
    inst.cmd("postconf", "-e", *settings, check=True)


def check():
    return inst.postfix("check")


r = check()
tap.eq(r.returncode, 0, "a good instance passes postfix check")
tap.eq(problems(r), [], "and nothing is reported")
tap.ok(all(os.path.isdir(os.path.join(inst.spool, d)) for d in ("journal", "private", "pid")),
       "check creates the missing queue directories, as Postfix's does")

# A table that does not exist.
postconf_e("canonical_maps=hash:%s/nosuch" % etc)
r = check()
tap.eq(r.returncode, 1, "a missing table fails the check")
tap.ok("postfix: fatal: open database %s/nosuch.db: No such file or directory" % etc
       in r.stderr, "the missing table is named as Postfix names it", r.stderr)
inst.cmd("postconf", "-X", "canonical_maps", check=True)
tap.eq(check().returncode, 0, "fixed again")

# A .db older than its source: postmap was not rerun.
src = os.path.join(etc, "transport")
st = os.stat(src)
os.utime(src + ".db", (st.st_atime - 60, st.st_mtime - 60))
r = check()
tap.eq(r.returncode, 1, "a stale table fails the check")
tap.ok("postfix: warning: database %s.db is older than source file %s" % (src, src)
       in r.stderr, "the stale table is named", r.stderr)
inst.cmd("postmap", src, check=True)
tap.eq(check().returncode, 0, "postmap makes it current again")

# A regexp: table that does not parse.
write(os.path.join(etc, "header_checks"), "/^Subject: (spam/ REJECT\n")
r = check()
tap.eq(r.returncode, 1, "a broken regexp table fails the check")
tap.ok(any("header_checks" in line for line in problems(r)),
       "the broken regexp table is named", r.stderr)
write(os.path.join(etc, "header_checks"), "/^Subject: spam/ REJECT\n")

# A type Sluice does not have.
postconf_e("body_checks=pcre:%s/body_checks" % etc)
r = check()
tap.eq(r.returncode, 1, "an unsupported table type fails the check")
tap.ok("unsupported dictionary type: pcre" in r.stderr, "the type is named", r.stderr)
inst.cmd("postconf", "-X", "body_checks", check=True)

# A table named only in a master.cf -o override.
with open(os.path.join(etc, "master.cf"), "a") as f:
    f.write("127.0.0.1:%d inet n - n - - smtpd -o smtpd_sender_restrictions="
            "check_sender_access,hash:%s/senders\n" % (inst.port + 1 if inst.port < 65535
                                                       else inst.port - 1, etc))
r = check()
tap.eq(r.returncode, 1, "a missing table in a master.cf override fails the check")
tap.ok("open database %s/senders.db" % etc in r.stderr, "and is named", r.stderr)
write(os.path.join(etc, "senders"), "a@b OK\n")
inst.cmd("postmap", os.path.join(etc, "senders"), check=True)
tap.eq(check().returncode, 0, "building it fixes the check")

# Unknown mail_owner, missing daemon_directory.
postconf_e("mail_owner=nosuchuser-sluice")
r = check()
tap.eq(r.returncode, 1, "an unknown mail_owner fails the check")
tap.ok("mail_owner: unknown user: nosuchuser-sluice" in r.stderr, "and is named", r.stderr)
postconf_e("mail_owner=" + subprocess.run(["id", "-un"], capture_output=True,
                                          text=True).stdout.strip())
postconf_e("daemon_directory=%s/nonexistent" % inst.root)
r = check()
tap.eq(r.returncode, 1, "a missing daemon_directory fails the check")
tap.ok("daemon_directory %s/nonexistent: No such file or directory" % inst.root in r.stderr,
       "and is named", r.stderr)
postconf_e("daemon_directory=" + os.path.join(BUILD, "engine"))
tap.eq(check().returncode, 0, "good again")

if os.geteuid() == 0:
    journal = os.path.join(inst.spool, "journal")
    private = os.path.join(inst.spool, "private")
    os.chown(journal, 65534, -1)
    os.chmod(private, 0o755)
    r = check()
    tap.eq(r.returncode, 1, "a wrong-owner queue directory fails the check")
    tap.ok("postfix/postfix-script: warning: not owned by root: %s" % journal in r.stderr,
           "the wrong owner is named (postfix-script's words)", r.stderr)
    tap.ok("bad mode 0755, want 0700: %s" % private in r.stderr, "the wrong mode is named",
           r.stderr)
    tap.eq(os.stat(journal).st_uid, 65534, "check does not fix it")
    r = inst.postfix("set-permissions")
    tap.ok(r.returncode == 0, "postfix set-permissions", r.stderr)
    tap.eq(os.stat(journal).st_uid, 0, "set-permissions gave journal/ back to mail_owner")
    tap.eq(os.stat(private).st_mode & 0o7777, 0o700, "and private/ its mode")
    tap.eq(check().returncode, 0, "the check passes again")
else:
    for name in ("wrong owner reported", "set-permissions fixes it"):
        tap.skip(name, "needs root")

# The instance still starts after all that.
inst.start()
tap.eq(check().returncode, 0, "check passes on the running instance")
inst.cleanup()
tap.done()
