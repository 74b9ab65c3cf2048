# engine/config.mk - configuration: main.cf, master.cf, the parameter table
# (engine/param.c is listed in engine/local.mk), postconf, docs/parameters.md.
libsluice_a_SOURCES += \
	engine/config.c engine/config.h \
	engine/maincf.c engine/maincf.h \
	engine/mastercf.c engine/mastercf.h

sbin_PROGRAMS += cli/postconf
cli_postconf_SOURCES = cli/postconf.c

# The shipped configuration: installed only where none exists yet, so that
# `make install` over a running installation never loses the operator's edits.
sluiceconfdir = $(sysconfdir)/sluice
SLUICE_CONF_FILES = etc/main.cf etc/master.cf etc/aliases
EXTRA_DIST += $(SLUICE_CONF_FILES)
install-data-local:
	$(MKDIR_P) '$(DESTDIR)$(sluiceconfdir)'
	@for f in $(SLUICE_CONF_FILES); do \
	  d='$(DESTDIR)$(sluiceconfdir)'/$$(basename $$f); \
	  if test -f "$$d"; then echo "keeping $$d"; \
	  else $(INSTALL_DATA) '$(srcdir)'/$$f "$$d" || exit 1; fi; \
	done
uninstall-local:
	@for f in $(SLUICE_CONF_FILES); do rm -f '$(DESTDIR)$(sluiceconfdir)'/$$(basename $$f); done

# Unit and golden-file tests.
check_PROGRAMS += t/test_config
TESTS += t/test_config
t_test_config_SOURCES = t/test_config.c
t_test_config_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_config_CPPFLAGS = $(AM_CPPFLAGS) -DT_SRCDIR='"$(abs_top_srcdir)"'
t_test_config_LDADD = $(LDADD) $(CRITERION_LIBS)
EXTRA_DIST += t/config

# postconf driven from the shell (-e round trip, -d, -n, -X, -#, -M).
TESTS += t/postconf.sh t/postconf_docs.sh
EXTRA_DIST += t/postconf.sh t/postconf_docs.sh

# docs/parameters.md comes from the table: `make docs-parameters` rewrites
# it in the source tree; t/postconf_docs.sh fails when it is stale.
docs-parameters: cli/postconf$(EXEEXT)
	./cli/postconf$(EXEEXT) --doc-markdown > $(srcdir)/docs/parameters.md.tmp
	mv $(srcdir)/docs/parameters.md.tmp $(srcdir)/docs/parameters.md
.PHONY: docs-parameters

# Readers during reloads; also built without Criterion for ThreadSanitizer
# (`make check-tsan`, see t/local.mk).
check_PROGRAMS += t/test_config_threads t/tsan_config
TESTS += t/test_config_threads
t_test_config_threads_SOURCES = t/test_config_threads.c
t_test_config_threads_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_config_threads_LDADD = $(LDADD) $(CRITERION_LIBS)
t_tsan_config_SOURCES = t/test_config_threads.c
t_tsan_config_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_MINI_CRITERION
TSAN_TESTS += t/tsan_config
