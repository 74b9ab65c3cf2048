# engine/local.mk - the utility layer and runtime every stage stands on.
libsluice_a_SOURCES += \
	engine/mem.c engine/mem.h \
	engine/msg.c engine/msg.h \
	engine/str.c engine/str.h \
	engine/blob.c engine/blob.h \
	engine/timeutil.c engine/timeutil.h \
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
