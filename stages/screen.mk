# stages/screen.mk - the receive side's background services: postscreen,
# address verification (verify), TLS session resumption (tlsmgr), and their
# component; their tests.
libsluice_a_SOURCES += \
	stages/postscreen.c stages/postscreen.h stages/postscreen_dnsbl.c \
	stages/screen_cache.c stages/screen_cache.h \
	stages/screen_service.c stages/screen_service.h \
	stages/tlsmgr.c stages/tlsmgr.h \
	stages/verify.c stages/verify.h

check_PROGRAMS += t/test_postscreen
TESTS += t/test_postscreen
t_test_postscreen_SOURCES = t/test_postscreen.c
t_test_postscreen_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_postscreen_LDADD = $(LDADD) $(CRITERION_LIBS)

TESTS += t/postscreen.py t/verify.py t/tls_resume.py
EXTRA_DIST += t/postscreen.py t/verify.py t/tls_resume.py
