/*
 * anvil.h - in-process client limits (Postfix's anvil(8) service).
 *
 * Per client address: simultaneous connections, connection rate and
 * message rate over anvil_rate_time_unit. smtpd asks at connect (count and
 * rate), at disconnect, and at MAIL FROM (message rate).
 *
 * Rates are counted per fixed window of `unit_s` seconds, as anvil does:
 * the window starts with the first event and restarts once it has passed.
 * Entries without connections whose window has passed are dropped, so the
 * table stays as big as the set of recently seen clients.
 *
 * Threading: thread safe (one mutex; each call is a few hash operations).
 */
#ifndef SLUICE_ANVIL_H
#define SLUICE_ANVIL_H

/* Counts a new connection; returns its count and rate including it. */
void    anvil_connect(const char *addr, int unit_s, int *count, int *rate);
void    anvil_disconnect(const char *addr);
/* Counts a message delivery request; returns the rate including it. */
int     anvil_mail(const char *addr, int unit_s);
/* Forget everything (tests). */
void    anvil_reset(void);

#endif
