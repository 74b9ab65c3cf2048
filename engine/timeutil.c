/*
 * timeutil.c - clocks and time formats (see timeutil.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <ctype.h>
#include <limits.h>
#include <sys/time.h>

#include "engine/timeutil.h"

int64_t time_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * TIME_NS_PER_SEC + ts.tv_nsec;
}

int64_t time_real_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void time_fmt_syslog(char *buf, size_t len, time_t when)
{
    struct tm tm;

    localtime_r(&when, &tm);
    strftime(buf, len, "%b %e %H:%M:%S", &tm);
}

void time_fmt_rfc2822(char *buf, size_t len, time_t when)
{
    struct tm tm;
    char zone[16];

    localtime_r(&when, &tm);
    strftime(zone, sizeof(zone), "%Z", &tm);
    /* Day and month names are always English (RFC 5322), whatever the locale. */
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long off = tm.tm_gmtoff / 60;
    snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld (%s)",
	     days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	     tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
	     (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60, zone);
}

long long time_parse_duration(const char *text, char default_unit)
{
    long long value = 0, mult;
    const char *cp = text;
    char unit;

    if (!isdigit((unsigned char) *cp))
	return -1;
    for (; isdigit((unsigned char) *cp); cp++) {
	if (value > (LLONG_MAX - 9) / 10)
	    return -1;
	value = value * 10 + (*cp - '0');
    }
    unit = *cp ? *cp++ : default_unit;
    if (*cp)
	return -1;
    switch (unit) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    case 'w': mult = 7 * 86400; break;
    default: return -1;
    }
    if (value > LLONG_MAX / mult)
	return -1;
    return value * mult;
}
