/*
 * timeutil.h - clocks and time formats used by every stage.
 *
 * time_mono_ns() for intervals and timers (never jumps), time_real_us() for
 * arrival times and logs. Formatters write into caller buffers; thread safe.
 */
#ifndef SLUICE_TIMEUTIL_H
#define SLUICE_TIMEUTIL_H

#include <stdint.h>
#include <stddef.h>
#include <time.h>

#define TIME_NS_PER_SEC	1000000000LL

int64_t time_mono_ns(void);
int64_t time_real_us(void);
/* "Nov 25 19:02:39" (syslog), 16 bytes with the NUL. */
void time_fmt_syslog(char *buf, size_t len, time_t when);
/* "Wed, 25 Nov 2026 19:02:39 +0000 (UTC)" (RFC 5322 Date:). */
void time_fmt_rfc2822(char *buf, size_t len, time_t when);
/* Parse "300", "300s", "5m", "2h", "5d", "1w" to seconds, with default unit
 * when none is given. Returns -1 on a syntax error or overflow. */
long long time_parse_duration(const char *text, char default_unit);

#endif
