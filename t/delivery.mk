# t/delivery.mk - delivery path integration tests (issue 5) against a real
# instance: the scheduler seen from the sinks (dead destination, concurrency
# window and slow start, rate limits, recipient limit), MX lookup through a
# test DNS server ("loops back to myself" included), LMTP into a Dovecot the
# test starts, sendmail -bv reports.
TESTS += t/delivery_sched.py t/delivery_mx.py t/delivery_lmtp.py t/sendmail_verify.py
EXTRA_DIST += t/delivery_sched.py t/delivery_mx.py t/delivery_lmtp.py t/sendmail_verify.py
