# stages/mda.mk - the local(8), virtual(8) and pipe(8) delivery agents and
# what they share (mailbox formats, locks, helper processes, worker pool).
libsluice_a_SOURCES += \
	stages/agent_pool.c stages/agent_pool.h \
	stages/mailbox_util.c stages/mailbox_util.h \
	stages/mailbox_exec.c stages/mailbox_exec.h \
	stages/local.c stages/local.h stages/local_priv.h \
	stages/local_expand.c \
	stages/virtual.c stages/virtual.h \
	stages/pipe.c stages/pipe.h

check_PROGRAMS += t/test_local
TESTS += t/test_local
t_test_local_SOURCES = t/test_local.c
t_test_local_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_local_LDADD = $(LDADD) $(CRITERION_LIBS)

TESTS += t/local_delivery.py t/pipe_delivery.py t/virtual_delivery.py
EXTRA_DIST += t/local_delivery.py t/pipe_delivery.py t/virtual_delivery.py

check_PROGRAMS += t/test_agent_pool t/tsan_agent_pool
TESTS += t/test_agent_pool
t_test_agent_pool_SOURCES = t/test_agent_pool.c
t_test_agent_pool_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_agent_pool_LDADD = $(LDADD) $(CRITERION_LIBS)
t_tsan_agent_pool_SOURCES = t/test_agent_pool.c t/mini_criterion.h
t_tsan_agent_pool_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_MINI_CRITERION
TSAN_TESTS += t/tsan_agent_pool
