# queue/local.mk - the message object, journal and queue manager.
libsluice_a_SOURCES += \
	queue/message.c queue/message.h
noinst_HEADERS += queue/params.def
