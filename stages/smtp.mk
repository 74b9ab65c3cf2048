# stages/smtp.mk - see the folder's local.mk
