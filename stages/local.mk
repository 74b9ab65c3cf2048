# stages/local.mk - receive, cleanup, rewrite, delivery and notice stages.
noinst_HEADERS += stages/params_receive.def stages/params_delivery.def
noinst_HEADERS += stages/delivery.h
libsluice_a_SOURCES += stages/delivery_log.c stages/delivery_log.h
libsluice_a_SOURCES += \
	stages/delivery_agents.c stages/delivery_agents.h \
	stages/receive_service.c stages/receive_service.h
