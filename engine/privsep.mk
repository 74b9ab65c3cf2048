# engine/privsep.mk - privilege separation (the engine drops to mail_owner,
# a privileged helper keeps root for bind and per-user delivery steps), and
# `postfix check` / `postfix set-permissions`.
libsluice_a_SOURCES += \
	engine/privsep.c engine/privsep.h \
	engine/privsep_dirs.c

cli_postfix_SOURCES += cli/postfix_check.c cli/postfix_check.h

TESTS += t/privsep.py t/postfix_check.py
EXTRA_DIST += t/privsep.py t/postfix_check.py

check_PROGRAMS += t/test_privsep
TESTS += t/test_privsep
t_test_privsep_SOURCES = t/test_privsep.c
t_test_privsep_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_privsep_LDADD = $(LDADD) $(CRITERION_LIBS)
