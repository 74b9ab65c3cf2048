/*
 * delivery_log.c - the per-recipient delivery log line (see delivery_log.h).
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "engine/msg.h"
#include "engine/timeutil.h"
#include "stages/delivery_log.h"

void    delivery_log_delay(STR *buf, int64_t ns)
{
    /* Postfix's format_tv(sec, usec, 2 significant digits, 2 max digits). */
    static const long pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    long    sec,
            usec,
            ures,
            wid,
            n;

    if (ns < 0)
	ns = 0;
    sec = (long) (ns / 1000000000);
    usec = (long) ((ns % 1000000000) / 1000);
    ures = 1000000 / pow10[2];
    wid = pow10[2];
    if (sec > 0) {
	for (n = 1; sec >= n && n <= wid / 10; n *= 10)
	     /* void */ ;
	ures = (1000000 / wid) * n;
    } else {
	while (usec >= wid * ures)
	    ures *= 10;
    }
    if (ures > 1) {
	usec += ures / 2;
	if (usec >= 1000000) {
	    sec += 1;
	    usec -= 1000000;
	}
    }
    str_printf(buf, "%ld", sec);
    if (usec >= ures) {
	long    rem = usec;

	str_putc(buf, '.');
	for (n = 1000000 / 10; rem >= ures && n > 0; n /= 10) {
	    str_putc(buf, "0123456789"[rem / n]);
	    rem %= n;
	}
    }
}

static const char *delivery_log_status(enum delivery_status st)
{
    return st == DELIVERY_SENT ? "sent" : st == DELIVERY_BOUNCE ? "bounced" : "deferred";
}

void delivery_log_rcpt(const DELIVERY_REQUEST *req, size_t i, const DELIVERY_LOG *how)
{
    const MESSAGE *m = req->msg;
    const DELIVERY_RCPT *dr = req->rcpt + i;
    const RCPT *r = m->rcpt + dr->index;
    int64_t now_ns = how->now_ns ? how->now_ns : time_mono_ns();
    /* The arrival time on the monotonic scale. */
    int64_t arrival_ns = m->arrival_us * 1000 - (time_real_us() * 1000 - now_ns);
    int64_t pdelay = 0, adelay = 0, sdelay = 0, xdelay = 0;
    STR     line = STR_INIT;

    str_printf(&line, "%s: to=<%s>", m->queue_id, r->address);
    if (r->orig_rcpt && *r->orig_rcpt && strcasecmp(r->orig_rcpt, r->address) != 0)
	str_printf(&line, ", orig_to=<%s>", r->orig_rcpt);
    str_printf(&line, ", relay=%s", how->relay ? how->relay : "none");
    if (how->conn_use > 1)
	str_printf(&line, ", conn_use=%d", how->conn_use);
    if (req->active_mono_ns > 0) {
	pdelay = req->active_mono_ns - arrival_ns;
	if (req->queued_mono_ns > 0) {
	    adelay = req->queued_mono_ns - req->active_mono_ns;
	    if (how->conn_done_ns > 0) {
		sdelay = how->conn_done_ns - req->queued_mono_ns;
		xdelay = now_ns - how->conn_done_ns;
	    } else
		xdelay = now_ns - req->queued_mono_ns;
	} else
	    adelay = now_ns - req->active_mono_ns;
    } else
	pdelay = now_ns - arrival_ns;
    str_puts(&line, ", delay=");
    delivery_log_delay(&line, now_ns - arrival_ns);
    str_puts(&line, ", delays=");
    delivery_log_delay(&line, pdelay);
    str_putc(&line, '/');
    delivery_log_delay(&line, adelay);
    str_putc(&line, '/');
    delivery_log_delay(&line, sdelay);
    str_putc(&line, '/');
    delivery_log_delay(&line, xdelay);
    /* A verify probe reports what would happen (Postfix's verify_append). */
    str_printf(&line, ", dsn=%s, status=%s (%s)", dr->dsn,
	       m->probe ? (dr->status == DELIVERY_SENT ? "deliverable" : "undeliverable")
	       : delivery_log_status(dr->status),
	       dr->reason ? dr->reason : "");
    msg_info("%s", STR_DATA(&line));
    str_release(&line);
}
