/*
 * sockaddr.h - a peer's socket address as Postfix logs it.
 *
 * sockaddr_text() writes the numeric address of an AF_INET or AF_INET6
 * socket address (an IPv4-mapped IPv6 address as plain IPv4, as Postfix
 * shows clients of a dual-stack listener), or "unknown" for other
 * families, and its port (0 when unknown; port may be NULL).
 * Thread safe (no shared state). Diagnostics: none.
 */
#ifndef SLUICE_SOCKADDR_H
#define SLUICE_SOCKADDR_H

#include <stddef.h>
#include <sys/socket.h>

void    sockaddr_text(const struct sockaddr_storage *ss, char *addr, size_t len, int *port);

#endif
