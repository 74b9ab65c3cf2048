# queue/local.mk - the message object, journal and queue manager.
libsluice_a_SOURCES += \
	queue/message.c queue/message.h \
	queue/queue_id.c queue/queue_id.h
noinst_HEADERS += queue/params.def
libsluice_a_SOURCES += queue/queue_service.c queue/queue_service.h \
	queue/queue_notice.c queue/queue_notice.h

check_PROGRAMS += t/test_queue_notice
TESTS += t/test_queue_notice
t_test_queue_notice_SOURCES = t/test_queue_notice.c
t_test_queue_notice_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
t_test_queue_notice_LDADD = $(LDADD) $(CRITERION_LIBS)
