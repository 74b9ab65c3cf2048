# engine/local.mk - the utility layer and runtime every stage stands on.
libsluice_a_SOURCES += \
	engine/mem.c engine/mem.h \
	engine/msg.c engine/msg.h \
	engine/str.c engine/str.h \
	engine/blob.c engine/blob.h \
	engine/timeutil.c engine/timeutil.h \
	engine/fsutil.c engine/fsutil.h \
	engine/sockaddr.c engine/sockaddr.h \
	engine/param.c \
	engine/squeue.c engine/squeue.h \
	engine/stage.c engine/stage.h \
	engine/maillog.c engine/maillog.h \
	engine/ctl.c engine/ctl.h
noinst_HEADERS += engine/param.h engine/params.def
noinst_HEADERS += engine/dict.h engine/matchlist.h
libsluice_a_SOURCES += \
	engine/engine.c engine/engine.h \
	engine/master.c engine/master.h

# The supervisor and, with -E, the engine (daemon_directory/master).
pkglibexec_PROGRAMS += engine/master
engine_master_SOURCES = engine/master_main.c

# `make run`: the engine in the foreground on an embedded default: config,
# spool and log under $(builddir)/run, SMTP on 127.0.0.1:2525, no root.
# Outbound mail waits in the deferred queue (default_transport = retry)
# until a relayhost or default_transport is configured.
RUN_DIR = $(abs_builddir)/run
run: all
	@$(MKDIR_P) $(RUN_DIR)/etc $(RUN_DIR)/spool
	@test -f $(RUN_DIR)/etc/main.cf || { \
	  sed -e '/^alias_maps/d' -e '/^alias_database/d' $(srcdir)/etc/main.cf; \
	  echo ''; \
	  echo '# Embedded default written by `make run`: everything under $(RUN_DIR).'; \
	  echo 'queue_directory = $(RUN_DIR)/spool'; \
	  echo 'daemon_directory = $(abs_builddir)/engine'; \
	  echo 'command_directory = $(abs_builddir)/cli'; \
	  echo 'maillog_file = /dev/stdout'; \
	  echo "mail_owner = $$(id -un)"; \
	  echo 'inet_interfaces = 127.0.0.1'; \
	  echo 'mynetworks = 127.0.0.0/8'; \
	  echo 'alias_maps ='; \
	  echo 'alias_database ='; \
	  echo 'default_transport = retry:outbound delivery is not configured (set relayhost)'; \
	} > $(RUN_DIR)/etc/main.cf
	@test -f $(RUN_DIR)/etc/master.cf || \
	  sed -e 's/^smtp      inet  n       -       y/127.0.0.1:2525 inet n - n/' \
	      -e 's/^\([a-z0-9]*  *unix  *[-yn]  *[-yn]  *\)y/\1n/' \
	      $(srcdir)/etc/master.cf > $(RUN_DIR)/etc/master.cf
	@echo "Sluice: config $(RUN_DIR)/etc, SMTP on 127.0.0.1:2525; Ctrl-C stops it."
	@exec ./cli/postfix -c $(RUN_DIR)/etc start-fg
.PHONY: run

# The installed main.cf names this installation's directories, so that
# `$prefix/sbin/postfix start` works as it is, as an ordinary user too.
install-data-hook:
	@cf='$(DESTDIR)$(sysconfdir)/sluice/main.cf'; \
	if ! grep -q '^# Installation directories' "$$cf"; then \
	  { echo ''; echo '# Installation directories (written by make install).'; \
	    echo 'queue_directory = $(localstatedir)/spool/sluice'; \
	    echo 'data_directory = $(localstatedir)/lib/sluice'; \
	    echo 'daemon_directory = $(pkglibexecdir)'; \
	    echo 'command_directory = $(sbindir)'; } >> "$$cf"; \
	fi
