# stages/rewrite.mk - trivial-rewrite (address rewriting and resolution),
# cleanup (content and envelope processing), header address parsing.
libsluice_a_SOURCES += \
	stages/addr_parse.c stages/addr_parse.h \
	stages/rewrite_maps.c stages/rewrite_maps.h \
	stages/rewrite.c stages/rewrite.h \
	stages/cleanup.c stages/cleanup.h stages/cleanup_priv.h \
	stages/cleanup_addr.c stages/cleanup_header.c stages/cleanup_body.c

check_PROGRAMS += t/test_addr_parse t/test_rewrite t/test_cleanup
TESTS += t/test_addr_parse t/test_rewrite t/test_cleanup
t_test_addr_parse_SOURCES = t/test_addr_parse.c
t_test_addr_parse_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_addr_parse_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_rewrite_SOURCES = t/test_rewrite.c
t_test_rewrite_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_rewrite_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_cleanup_SOURCES = t/test_cleanup.c
t_test_cleanup_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_cleanup_LDADD = $(LDADD) $(CRITERION_LIBS)

# The threaded test without Criterion, for ThreadSanitizer (`make check-tsan`).
check_PROGRAMS += t/tsan_rewrite
t_tsan_rewrite_SOURCES = t/tsan_rewrite.c t/mini_criterion.h
t_tsan_rewrite_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_MINI_CRITERION
TSAN_TESTS += t/tsan_rewrite

# Output parsed by Python's email package.
check_PROGRAMS += t/cleanup_tool
t_cleanup_tool_SOURCES = t/cleanup_tool.c
TESTS += t/cleanup_email.py
EXTRA_DIST += t/cleanup_email.py
