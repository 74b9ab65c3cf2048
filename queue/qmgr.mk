# queue/qmgr.mk - the queue manager's scheduler (queue/qmgr*.c), its tests
# and its benchmark. Included from Makefile.am.
libsluice_a_SOURCES += \
	queue/qmgr.c queue/qmgr.h queue/qmgr_priv.h \
	queue/qmgr_config.c queue/qmgr_heap.c queue/qmgr_transport.c \
	queue/qmgr_queue.c queue/qmgr_message.c queue/qmgr_deliver.c \
	queue/qmgr_job.c \
	queue/qmgr_defer.c queue/qmgr_control.c queue/qmgr_log.c

check_PROGRAMS += t/test_qmgr
TESTS += t/test_qmgr
t_test_qmgr_SOURCES = t/test_qmgr.c t/qmgr_harness.h
t_test_qmgr_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_qmgr_LDADD = $(LDADD) $(CRITERION_LIBS)

# The completion path across threads, for ThreadSanitizer (no Criterion).
check_PROGRAMS += t/tsan_qmgr
t_tsan_qmgr_SOURCES = t/test_qmgr_threads.c t/qmgr_harness.h t/mini_criterion.h
t_tsan_qmgr_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_MINI_CRITERION
TSAN_TESTS += t/tsan_qmgr

# Benchmark: built with the tests (not run by them); `make bench-qmgr` runs it
# (an optimised build is recommended, see bench/RESULTS.md).
check_PROGRAMS += bench/qmgr
bench_qmgr_SOURCES = bench/qmgr.c

bench-qmgr: bench/qmgr$(EXEEXT)
	./bench/qmgr$(EXEEXT)
.PHONY: bench-qmgr
