/*
 * sockaddr.c - a peer's socket address as Postfix logs it (see sockaddr.h).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include "engine/sockaddr.h"

void    sockaddr_text(const struct sockaddr_storage *ss, char *addr, size_t len, int *port)
{
    int     p = 0;

    if (ss->ss_family == AF_INET6) {
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) ss;

	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
	    inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], addr, (socklen_t) len);
	else
	    inet_ntop(AF_INET6, &s6->sin6_addr, addr, (socklen_t) len);
	p = ntohs(s6->sin6_port);
    } else if (ss->ss_family == AF_INET) {
	const struct sockaddr_in *s4 = (const struct sockaddr_in *) ss;

	inet_ntop(AF_INET, &s4->sin_addr, addr, (socklen_t) len);
	p = ntohs(s4->sin_port);
    } else {
	snprintf(addr, len, "unknown");
    }
    if (port)
	*port = p;
}
