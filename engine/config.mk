# engine/config.mk - see the folder's local.mk
