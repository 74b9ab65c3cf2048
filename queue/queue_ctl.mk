# queue/queue_ctl.mk - operator commands for the queue (issue 6): the
# engine's control handlers, shared views, the metrics endpoint, and
# postqueue/mailq, postsuper, postcat, qshape.
libsluice_a_SOURCES += \
	queue/queue_ctl.c queue/queue_ctl.h \
	queue/queue_view.c queue/queue_view.h \
	engine/metrics.c engine/metrics.h \
	cli/queue_cli.c cli/queue_cli.h

sbin_PROGRAMS += cli/postqueue cli/mailq cli/postsuper cli/postcat cli/qshape
cli_postqueue_SOURCES = cli/postqueue.c
cli_mailq_SOURCES = cli/postqueue.c
cli_mailq_CPPFLAGS = $(AM_CPPFLAGS) -DPOSTQUEUE_MAILQ
cli_postsuper_SOURCES = cli/postsuper.c
cli_postcat_SOURCES = cli/postcat.c
cli_qshape_SOURCES = cli/qshape.c

TESTS += t/postqueue.py t/postsuper.py t/postsuper_requeue.py
EXTRA_DIST += t/postqueue.py t/postsuper.py t/postsuper_requeue.py t/queue_golden.py
TESTS += t/queue_memory.py
EXTRA_DIST += t/queue_memory.py
