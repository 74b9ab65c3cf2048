# stages/submit.mk - local submission (sendmail -> postdrop -> maildrop/ ->
# pickup) and the QMQP server (qmqpd); their tests.
libsluice_a_SOURCES += \
	stages/maildrop.c stages/maildrop.h \
	stages/pickup.c stages/pickup.h \
	stages/qmqpd.c stages/qmqpd.h

sbin_PROGRAMS += cli/sendmail cli/postdrop
cli_sendmail_SOURCES = cli/sendmail.c
cli_postdrop_SOURCES = cli/postdrop.c

# When `make install` runs as root, postdrop becomes setgid $(SETGID_GROUP)
# (Postfix's setgid_group, whose maildrop is mode 1730 of that group); the
# engine then creates the maildrop that way. Without root nothing changes:
# the engine creates a mode 1733 maildrop (see stages/pickup.h).
SETGID_GROUP = postdrop
install-exec-hook: install-postdrop-setgid
install-postdrop-setgid:
	@if test "`id -u`" = 0 && getent group $(SETGID_GROUP) >/dev/null 2>&1; then \
	  chgrp $(SETGID_GROUP) $(DESTDIR)$(sbindir)/postdrop && \
	  chmod 2755 $(DESTDIR)$(sbindir)/postdrop && \
	  echo "postdrop: setgid $(SETGID_GROUP)"; \
	else \
	  echo "postdrop: not setgid (not root, or no group $(SETGID_GROUP)): the maildrop will be mode 1733"; \
	fi
.PHONY: install-postdrop-setgid

# Unit tests of the maildrop format (hostile files included).
check_PROGRAMS += t/test_maildrop
TESTS += t/test_maildrop
t_test_maildrop_SOURCES = t/test_maildrop.c
t_test_maildrop_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_maildrop_LDADD = $(LDADD) $(CRITERION_LIBS)

# Integration tests: sendmail as an unprivileged user, QMQP clients.
TESTS += t/sendmail_submit.py t/qmqp_server.py
EXTRA_DIST += t/sendmail_submit.py t/qmqp_server.py
