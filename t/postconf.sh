#!/bin/sh
# postconf.sh - postconf as an operator uses it, on a temp config dir:
# -e round trip keeps comments, name=value, -d Postfix defaults, -n, -h,
# -x, -X, -#, -M, unknown names, usage errors, MAIL_CONFIG, concurrent -e.
# Prints TAP.

B=${SLUICE_BUILDDIR:-.}
POSTCONF="$B/cli/postconf"
T=$(mktemp -d "${TMPDIR:-/tmp}/postconf-test.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
n=0
fails=0

ok() {	# ok NAME COMMAND... : the command's exit status is the verdict
    name=$1; shift
    n=$((n + 1))
    if "$@" >"$T/out.$n" 2>&1; then
	echo "ok $n - $name"
    else
	echo "not ok $n - $name"
	sed 's/^/# /' "$T/out.$n"
	fails=$((fails + 1))
    fi
}

same() {	# same EXPECTED_FILE ACTUAL_FILE
    diff -u "$1" "$2"
}

echo "1..22"

cat >"$T/main.cf" <<'CF'
# The head comment stays.
myhostname = mx.example.com

# Relay settings.
relayhost = old.example.com
    continued.example.com
mydestination = $myhostname,
  # a comment inside the continuation stays too
    localhost
queue_directory = /tmp/q
relayhost = duplicate.example.com
# The tail comment stays.
CF
cp "$T/main.cf" "$T/main.cf.orig"
chmod 640 "$T/main.cf"

# 1: -e replaces in place, drops duplicates, appends new names, keeps the rest.
"$POSTCONF" -c "$T" -e 'relayhost = [smtp.example.net]:587' 'message_size_limit=1000' >"$T/e.out" 2>&1
cat >"$T/expect1" <<'CF'
# The head comment stays.
myhostname = mx.example.com

# Relay settings.
relayhost = [smtp.example.net]:587
mydestination = $myhostname,
  # a comment inside the continuation stays too
    localhost
queue_directory = /tmp/q
# The tail comment stays.
message_size_limit = 1000
CF
ok "postconf -e keeps comments, order and continuation lines" same "$T/expect1" "$T/main.cf"
ok "postconf -e keeps the file mode" sh -c "test \"\$(stat -c %a '$T/main.cf')\" = 640"
ok "postconf -e leaves no temp file" sh -c "test ! -e '$T/main.cf.tmp' -o ! -s '$T/main.cf.tmp'"
ok "postconf -e prints nothing" sh -c "test ! -s '$T/e.out'"

# 5: name=value without -e edits too; the new value reads back.
"$POSTCONF" -c "$T" 'myhostname=new.example.com'
ok "postconf name=value edits" sh -c "test \"\$('$POSTCONF' -c '$T' -h myhostname)\" = new.example.com"

# 6: -n lists exactly what main.cf sets, sorted, unexpanded.
cat >"$T/expect6" <<'CF'
message_size_limit = 1000
mydestination = $myhostname,    localhost
myhostname = new.example.com
queue_directory = /tmp/q
relayhost = [smtp.example.net]:587
CF
"$POSTCONF" -c "$T" -n >"$T/n.out"
ok "postconf -n lists main.cf settings" same "$T/expect6" "$T/n.out"

# 7: -x expands.
ok "postconf -x expands \$names" sh -c "test \"\$('$POSTCONF' -c '$T' -x mydestination)\" = 'mydestination = new.example.com,    localhost'"

# 8: -d prints Postfix's defaults.
cat >"$T/expect8" <<'CF'
default_destination_concurrency_limit = 20
initial_destination_concurrency = 5
default_destination_recipient_limit = 50
default_process_limit = 100
queue_run_delay = 300s
minimal_backoff_time = 300s
maximal_backoff_time = 4000s
maximal_queue_lifetime = 5d
bounce_queue_lifetime = 5d
delay_warning_time = 0h
message_size_limit = 10240000
mydestination = $myhostname, localhost.$mydomain, localhost
myorigin = $myhostname
mynetworks_style = host
inet_interfaces = all
inet_protocols = all
relayhost =
notify_classes = resource, software
alias_maps = hash:/etc/aliases
queue_directory = /var/spool/postfix
mail_owner = postfix
hopcount_limit = 50
enable_long_queue_ids = no
qmgr_message_active_limit = 20000
transport_retry_time = 60s
syslog_name = ${multi_instance_name?{$multi_instance_name}:{postfix}}
CF
"$POSTCONF" -c "$T" -d $(sed 's/ =.*//' "$T/expect8") >"$T/d.out" 2>&1
ok "postconf -d prints Postfix defaults" same "$T/expect8" "$T/d.out"

# 9: a plain query shows the main.cf value, the default otherwise.
printf 'message_size_limit = 1000\nhopcount_limit = 50\n' >"$T/expect9"
"$POSTCONF" -c "$T" message_size_limit hopcount_limit >"$T/q.out" 2>&1
ok "postconf name shows the current value" same "$T/expect9" "$T/q.out"

# 10: unknown name: Postfix's warning, exit status 0.
"$POSTCONF" -c "$T" no_such_parameter >"$T/u.out" 2>"$T/u.err"; rc=$?
ok "unknown parameter warns and exits 0" sh -c "test $rc = 0 && grep -qx 'postconf: warning: no_such_parameter: unknown parameter' '$T/u.err' && test ! -s '$T/u.out'"

# 11: -X removes an entry with its continuation lines.
"$POSTCONF" -c "$T" -X mydestination
ok "postconf -X removes the entry" sh -c "! grep -q -e mydestination -e '^    localhost' '$T/main.cf' && grep -q 'a comment inside the continuation' '$T/main.cf'"
ok "postconf -X falls back to the default" sh -c "test \"\$('$POSTCONF' -c '$T' mydestination)\" = 'mydestination = \$myhostname, localhost.\$mydomain, localhost'"

# 13: -# comments an entry out.
"$POSTCONF" -c "$T" -'#' queue_directory
ok "postconf -# comments the entry out" sh -c "grep -qx '#queue_directory = /tmp/q' '$T/main.cf' && test \"\$('$POSTCONF' -c '$T' -h queue_directory)\" = /var/spool/postfix"

# 14: unused parameters in main.cf are flagged with file and line.
printf 'bogus_thing = 1\n' >>"$T/main.cf"
"$POSTCONF" -c "$T" -n >/dev/null 2>"$T/w.err"
line=$(grep -n '^bogus_thing' "$T/main.cf" | cut -d: -f1)
ok "unused parameter warning names file and line" grep -qx "postconf: warning: $T/main.cf, line $line: unused parameter: bogus_thing=1" "$T/w.err"

# 15: bad usage: Postfix-like usage message, exit 1.
"$POSTCONF" -Z >"$T/usage.out" 2>&1; rc=$?
ok "bad option prints usage and exits 1" sh -c "test $rc = 1 && grep -q '^postconf: fatal: usage: postconf ' '$T/usage.out'"
"$POSTCONF" -c "$T" -e novalue >"$T/usage2.out" 2>&1; rc=$?
ok "-e without = is an error" sh -c "test $rc = 1 && grep -q \"missing '='\" '$T/usage2.out'"

# 17: MAIL_CONFIG selects the directory when -c is absent.
ok "MAIL_CONFIG is honoured" sh -c "test \"\$(MAIL_CONFIG='$T' '$POSTCONF' -h message_size_limit)\" = 1000"

# 18: -M lists master.cf; -M name/type selects.
cat >"$T/master.cf" <<'CF'
# comment
smtp      inet  n       -       y       -       -       smtpd
relay     unix  -       -       y       -       -       smtp
        -o syslog_name=postfix/$service_name
smtp      unix  -       -       y       -       8       smtp
CF
cat >"$T/expect18" <<'CF'
smtp       inet  n       -       y       -       -       smtpd
relay      unix  -       -       y       -       -       smtp -o syslog_name=postfix/$service_name
smtp       unix  -       -       y       -       8       smtp
CF
"$POSTCONF" -c "$T" -M >"$T/M.out" 2>&1
ok "postconf -M lists master.cf" same "$T/expect18" "$T/M.out"
ok "postconf -M name/type selects" sh -c "test \"\$('$POSTCONF' -c '$T' -M smtp/unix)\" = 'smtp       unix  -       -       y       -       8       smtp'"

# 20: a master.cf error is fatal with file and line.
printf 'bad  tcp - - y - - smtpd\n' >>"$T/master.cf"
"$POSTCONF" -c "$T" -M >"$T/Mbad.out" 2>&1; rc=$?
ok "bad service type is fatal with file and line" sh -c "test $rc = 1 && grep -qx 'postconf: fatal: $T/master.cf, line 6: bad transport type: tcp' '$T/Mbad.out'"

# 21: per-transport names from master.cf are known.
printf 'relay_destination_concurrency_limit = 7\n' >>"$T/main.cf"
sed -i '$d' "$T/master.cf"
ok "per-transport parameter is known" sh -c "test \"\$('$POSTCONF' -c '$T' relay_destination_concurrency_limit smtp_destination_concurrency_limit 2>&1)\" = 'relay_destination_concurrency_limit = 7
smtp_destination_concurrency_limit = \$default_destination_concurrency_limit'"

# 22: concurrent editors do not lose each other's changes.
i=0
while [ $i -lt 20 ]; do
    "$POSTCONF" -c "$T" -e "concurrent_$i = $i" &
    i=$((i + 1))
done
wait
ok "concurrent postconf -e keep every change" sh -c "test \$(grep -c '^concurrent_' '$T/main.cf') = 20 && grep -q 'The head comment stays' '$T/main.cf'"

exit 0
