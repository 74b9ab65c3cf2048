# queue/journal.mk - see the folder's local.mk
