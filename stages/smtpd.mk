# stages/smtpd.mk - see the folder's local.mk
