# t/local.mk
