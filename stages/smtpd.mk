# stages/smtpd.mk - the SMTP server stage (smtpd), anvil, and their tests.
libsluice_a_SOURCES += \
	stages/smtpd.c stages/smtpd.h \
	stages/smtpd_proto.c stages/smtpd_proto.h \
	stages/smtpd_data.c \
	stages/smtpd_check.c \
	stages/smtpd_tls.c \
	stages/anvil.c stages/anvil.h

# Unit tests of the state machine, the content decoder and relay control.
check_PROGRAMS += t/test_smtpd_proto t/test_smtpd_data
TESTS += t/test_smtpd_proto t/test_smtpd_data
t_test_smtpd_proto_SOURCES = t/test_smtpd_proto.c
t_test_smtpd_proto_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_smtpd_proto_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_smtpd_data_SOURCES = t/test_smtpd_data.c
t_test_smtpd_data_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_smtpd_data_LDADD = $(LDADD) $(CRITERION_LIBS)

# The test harness: smtpd on an ephemeral loopback port with a fake submit
# that writes each message to a directory (see t/smtpd_harness.c).
check_PROGRAMS += t/smtpd_harness
t_smtpd_harness_SOURCES = t/smtpd_harness.c

# Integration tests with real clients (swaks, smtplib, raw sockets, openssl).
TESTS += t/smtpd_basic.py t/smtpd_hostile.py t/smtpd_tls.py t/smtpd_relay.py
EXTRA_DIST += t/smtpd_basic.py t/smtpd_hostile.py t/smtpd_tls.py t/smtpd_relay.py \
	t/smtpd_lib.py t/smtpd_idle_mem.py t/fuzz_smtpd_proto.c

# libFuzzer: `make fuzz-smtpd` with CC=clang (see t/fuzz_smtpd_proto.c).
fuzz-smtpd: libsluice.a
	$(CC) -g -O1 -fsanitize=fuzzer,address,undefined $(DEFS) $(DEFAULT_INCLUDES) \
	  $(AM_CPPFLAGS) $(URCU_CFLAGS) $(OPENSSL_CFLAGS) \
	  -o t/fuzz_smtpd_proto $(srcdir)/t/fuzz_smtpd_proto.c libsluice.a \
	  $(OPENSSL_LIBS) $(URCU_LIBS) $(GDBM_LIBS) -lurcu-bp -lpthread
.PHONY: fuzz-smtpd
TESTS += t/smtpd_pressure.py
EXTRA_DIST += t/smtpd_pressure.py
