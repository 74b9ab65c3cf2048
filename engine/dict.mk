# engine/dict.mk - lookup tables, match lists, alias files; postmap,
# postalias and newaliases; their tests.
libsluice_a_SOURCES += \
	engine/dict.c engine/dict_priv.h \
	engine/dict_ht.c engine/dict_ht.h \
	engine/dict_text.c engine/dict_text.h \
	engine/dict_gdbm.c engine/dict_gdbm.h \
	engine/dict_texthash.c engine/dict_inline.c engine/dict_static.c \
	engine/dict_cidr.c engine/dict_cidr.h \
	engine/dict_regexp.c engine/dict_union.c engine/dict_unix.c \
	engine/matchlist.c \
	engine/aliasfile.c engine/aliasfile.h

# dict.c reads under liburcu's "bulletproof" flavour (reader threads register
# themselves); configure.ac finds it as URCU_BP.

libsluice_a_SOURCES += engine/dict_cmd.c engine/dict_cmd.h

sbin_PROGRAMS += cli/postmap cli/postalias cli/newaliases
cli_postmap_SOURCES = cli/postmap.c
cli_postalias_SOURCES = cli/postalias.c
# newaliases is postalias built to run on alias_database (no wrapper, no link).
cli_newaliases_SOURCES = cli/postalias.c
cli_newaliases_CPPFLAGS = $(AM_CPPFLAGS) -DPOSTALIAS_NEWALIASES

check_PROGRAMS += t/test_dict
TESTS += t/test_dict
t_test_dict_SOURCES = t/test_dict.c
t_test_dict_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_dict_LDADD = $(LDADD) $(CRITERION_LIBS)

check_PROGRAMS += t/test_matchlist t/test_dict_reload
TESTS += t/test_matchlist t/test_dict_reload
t_test_matchlist_SOURCES = t/test_matchlist.c
t_test_matchlist_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_matchlist_LDADD = $(LDADD) $(CRITERION_LIBS)
t_test_dict_reload_SOURCES = t/test_dict_reload.c
t_test_dict_reload_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_dict_reload_LDADD = $(LDADD) $(CRITERION_LIBS)

# The reload stress test without Criterion, for ThreadSanitizer.
check_PROGRAMS += t/tsan_dict_reload
t_tsan_dict_reload_SOURCES = t/test_dict_reload.c t/mini_criterion.h
t_tsan_dict_reload_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_MINI_CRITERION
TSAN_TESTS += t/tsan_dict_reload

TESTS += t/postmap.py
EXTRA_DIST += t/postmap.py
