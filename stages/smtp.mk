# stages/smtp.mk - the SMTP/LMTP client delivery agent (smtp(8), lmtp(8)).
libsluice_a_SOURCES += \
	stages/smtp.c stages/smtp.h \
	stages/smtp_proto.c \
	stages/smtp_addr.c \
	stages/smtp_tls.c \
	stages/mime_downgrade.c stages/mime_downgrade.h

check_PROGRAMS += t/test_smtp_proto t/test_smtp_addr t/smtp_harness
TESTS += t/test_smtp_proto t/test_smtp_addr
t_test_smtp_proto_SOURCES = t/test_smtp_proto.c
t_test_smtp_proto_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_smtp_proto_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_smtp_addr_SOURCES = t/test_smtp_addr.c
t_test_smtp_addr_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_smtp_addr_LDADD = $(LDADD) $(CRITERION_LIBS)
t_smtp_harness_SOURCES = t/smtp_harness.c

TESTS += t/smtp_relay.py t/smtp_tls.py t/smtp_mx.py t/smtp_lmtp.py
EXTRA_DIST += t/smtp_relay.py t/smtp_tls.py t/smtp_mx.py t/smtp_lmtp.py t/smtp_testlib.py

check_PROGRAMS += t/test_mime_downgrade
TESTS += t/test_mime_downgrade t/smtp_8bit.py
EXTRA_DIST += t/smtp_8bit.py
t_test_mime_downgrade_SOURCES = t/test_mime_downgrade.c
t_test_mime_downgrade_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_mime_downgrade_LDADD = $(LDADD) $(CRITERION_LIBS)
