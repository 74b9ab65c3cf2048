# t/local.mk - unit tests of the engine runtime; each area adds its own.
check_PROGRAMS += t/test_stage
TESTS += t/test_stage
t_test_stage_SOURCES = t/test_stage.c
t_test_stage_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_stage_LDADD = $(LDADD) $(CRITERION_LIBS)
EXTRA_DIST += t/lsan.supp

# The same stress test without Criterion, for ThreadSanitizer (see
# t/mini_criterion.h); `make check-tsan` in a --enable-sanitizers=thread build.
check_PROGRAMS += t/tsan_stage
t_tsan_stage_SOURCES = t/test_stage.c t/mini_criterion.h
t_tsan_stage_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_MINI_CRITERION
TSAN_TESTS = t/tsan_stage
check-tsan:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$(TSAN_TESTS)" SLUICE_STRESS_EVENTS=200000
.PHONY: check-tsan

# Integration tests: the real commands on a private instance.
TESTS += t/postfix_control.py
EXTRA_DIST += t/lib/sluicetest.py t/postfix_control.py
TESTS += t/relay_e2e.py
EXTRA_DIST += t/relay_e2e.py
TESTS += t/journal_enospc.py
EXTRA_DIST += t/journal_enospc.py
TESTS += t/reload_routing.py
EXTRA_DIST += t/reload_routing.py
