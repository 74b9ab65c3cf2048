# queue/journal.mk - the write-ahead spool journal (issue 3); see queue/journal.h.
libsluice_a_SOURCES += \
	queue/crc32c.c queue/crc32c.h \
	queue/journal.c queue/journal.h queue/journal_impl.h \
	queue/journal_rec.c queue/journal_rec.h \
	queue/journal_index.c \
	queue/journal_recover.c \
	queue/journal_compact.c \
	queue/journal_fs.c \
	queue/journal_ram.c

check_PROGRAMS += t/test_crc32c t/test_journal_rec t/test_journal t/test_journal_fuzz
TESTS += t/test_crc32c t/test_journal_rec t/test_journal t/test_journal_fuzz
t_test_crc32c_SOURCES = t/test_crc32c.c
t_test_crc32c_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_crc32c_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_journal_rec_SOURCES = t/test_journal_rec.c
t_test_journal_rec_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_journal_rec_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_journal_SOURCES = t/test_journal.c t/test_journal_util.h
t_test_journal_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_journal_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_journal_fuzz_SOURCES = t/test_journal_fuzz.c t/test_journal_util.h
t_test_journal_fuzz_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_journal_fuzz_LDADD = $(LDADD) $(CRITERION_LIBS)

# bench/journal: built by `make check` (or `make bench/journal`), never run
# as a test; see bench/RESULTS.md for how to run it.
check_PROGRAMS += bench/journal
bench_journal_SOURCES = bench/journal.c

# The threaded paths without Criterion, for ThreadSanitizer (`make check-tsan`).
check_PROGRAMS += t/tsan_journal
t_tsan_journal_SOURCES = t/tsan_journal.c t/test_journal_util.h t/mini_criterion.h
t_tsan_journal_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_MINI_CRITERION
TSAN_TESTS += t/tsan_journal
