# engine/dict.mk - see the folder's local.mk
