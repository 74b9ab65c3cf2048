# queue/local.mk - the message object, journal and queue manager.
libsluice_a_SOURCES += \
	queue/message.c queue/message.h \
	queue/queue_id.c queue/queue_id.h
noinst_HEADERS += queue/params.def
libsluice_a_SOURCES += queue/queue_service.c queue/queue_service.h \
	queue/queue_notice.c queue/queue_notice.h
