# cli/local.mk - operator commands.
sbin_PROGRAMS += cli/postfix
cli_postfix_SOURCES = cli/postfix.c
