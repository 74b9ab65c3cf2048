# stages/bounce.mk - delivery status notifications (bounce(8), defer, trace).
libsluice_a_SOURCES += \
	stages/bounce.c stages/bounce.h stages/bounce_priv.h \
	stages/bounce_dsn.c \
	stages/bounce_text.c \
	stages/trace.c stages/trace.h

check_PROGRAMS += t/test_bounce t/bounce_tool
TESTS += t/test_bounce
t_test_bounce_SOURCES = t/test_bounce.c
t_test_bounce_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_bounce_LDADD = $(LDADD) $(CRITERION_LIBS)
t_bounce_tool_SOURCES = t/bounce_tool.c

TESTS += t/bounce_email.py t/bounce_e2e.py
EXTRA_DIST += t/bounce_email.py t/bounce_e2e.py
TESTS += t/notice_durable.py
EXTRA_DIST += t/notice_durable.py
