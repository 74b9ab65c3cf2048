/*
 * bounce_text.c - the human-readable side of a notice: its header (From:
 * MAILER-DAEMON, Subject: as Postfix's, MIME) and the text/plain part with
 * Postfix's default wording (bounce.cf.default) followed by one
 * "<addr>: reason" paragraph per recipient, folded at 76 columns with a
 * four-space indent as Postfix folds them.
 *
 * Threading: pure functions. Diagnostics: none.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include "engine/timeutil.h"
#include "stages/bounce_priv.h"

static const char *bounce_text_subject(enum bounce_kind kind, bool postmaster)
{
    switch (kind) {
    case BOUNCE_KIND_FAILURE:
	return postmaster ? "Postmaster Copy: Undelivered Mail"
	    : "Undelivered Mail Returned to Sender";
    case BOUNCE_KIND_DELAY:
	return postmaster ? "Postmaster Warning: Delayed Mail"
	    : "Delayed Mail (still being retried)";
    case BOUNCE_KIND_SUCCESS:
	return "Successful Mail Delivery Report";
    case BOUNCE_KIND_VERIFY:
    default:
	return "Mail Delivery Status Report";
    }
}

void bounce_text_header(STR *out, const BOUNCE_CONFIG *cfg, enum bounce_kind kind,
			bool postmaster, const char *to, const char *boundary,
			bool eightbit, int64_t now_us)
{
    char    date[64];

    time_fmt_rfc2822(date, sizeof(date), (time_t) (now_us / 1000000));
    str_printf(out, "Date: %s\r\n", date);
    str_puts(out, "From: MAILER-DAEMON@");
    bounce_put_clean(out, cfg->myhostname, strlen(cfg->myhostname));
    str_puts(out, " (Mail Delivery System)\r\n");
    str_printf(out, "Subject: %s\r\n", bounce_text_subject(kind, postmaster));
    str_puts(out, "To: ");
    bounce_put_addr(out, to);
    str_puts(out, "\r\n");
    /* RFC 3834: keeps vacation responders from answering. */
    str_puts(out, "Auto-Submitted: auto-replied\r\n");
    str_puts(out, "MIME-Version: 1.0\r\n");
    str_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	       "\tboundary=\"%s\"\r\n", boundary);
    str_printf(out, "Content-Transfer-Encoding: %s\r\n", eightbit ? "8bit" : "7bit");
    str_puts(out, "\r\n");
}

/* Appends text, folding at 76 columns; continuation lines start with four
 * spaces. Words longer than a line are not cut. */
static void bounce_text_fold(STR *out, const char *text)
{
    size_t  col = 0;
    const char *p = text;

    while (*p) {
	size_t  w = strcspn(p, " ");

	if (col > 0 && col + 1 + w > 76) {
	    str_puts(out, "\r\n    ");
	    col = 4;
	} else if (col > 0) {
	    str_putc(out, ' ');
	    col++;
	}
	str_append(out, p, w);
	col += w;
	p += w;
	while (*p == ' ')
	    p++;
    }
    str_puts(out, "\r\n");
}

static void bounce_text_boilerplate(STR *out, const BOUNCE_CONFIG *cfg, enum bounce_kind kind)
{
    long    hours = (long) ((cfg->delay_warning_time_s + 3599) / 3600);
    long    days = (long) ((cfg->maximal_queue_lifetime_s + 86399) / 86400);

    str_puts(out, "This is the mail system at host ");
    bounce_put_clean(out, cfg->myhostname, strlen(cfg->myhostname));
    str_puts(out, ".\r\n\r\n");
    switch (kind) {
    case BOUNCE_KIND_FAILURE:
	str_puts(out,
		 "I'm sorry to have to inform you that your message could not\r\n"
		 "be delivered to one or more recipients. It's attached below.\r\n"
		 "\r\n"
		 "For further assistance, please send mail to postmaster.\r\n"
		 "\r\n"
		 "If you do so, please include this problem report. You can\r\n"
		 "delete your own text from the attached returned message.\r\n");
	break;
    case BOUNCE_KIND_DELAY:
	str_puts(out,
		 "####################################################################\r\n"
		 "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
		 "####################################################################\r\n"
		 "\r\n");
	str_printf(out, "Your message could not be delivered for more than %ld hour(s).\r\n"
		   "It will be retried until it is %ld day(s) old.\r\n",
		   hours > 0 ? hours : 1, days > 0 ? days : 1);
	str_puts(out,
		 "\r\n"
		 "For further assistance, please send mail to postmaster.\r\n"
		 "\r\n"
		 "If you do so, please include this problem report. You can\r\n"
		 "delete your own text from the attached returned message.\r\n");
	break;
    case BOUNCE_KIND_SUCCESS:
	str_puts(out,
		 "Your message was successfully delivered to the destination(s)\r\n"
		 "listed below. If the message was delivered to mailbox you will\r\n"
		 "receive no further notifications. Otherwise you may still receive\r\n"
		 "notifications of mail delivery errors from other systems.\r\n");
	break;
    case BOUNCE_KIND_VERIFY:
	str_puts(out, "Enclosed is the mail delivery report that you requested.\r\n");
	break;
    }
    str_puts(out, "\r\n                   The mail system\r\n");
}

void bounce_text_part(STR *out, const BOUNCE_CONFIG *cfg, const MESSAGE *orig,
		      enum bounce_kind kind, bool postmaster, const BOUNCE_RCPT *rcpt, size_t n)
{
    STR     line = STR_INIT;

    if (!postmaster)
	bounce_text_boilerplate(out, cfg, kind);
    for (size_t k = 0; k < n; k++) {
	const RCPT *or = &orig->rcpt[rcpt[k].index];
	const char *reason = bounce_reason(kind, rcpt + k);

	str_reset(&line);
	str_putc(&line, '<');
	bounce_put_addr(&line, or->address);
	str_putc(&line, '>');
	if (or->orig_rcpt && *or->orig_rcpt && strcmp(or->orig_rcpt, or->address) != 0) {
	    str_puts(&line, " (expanded from <");
	    bounce_put_addr(&line, or->orig_rcpt);
	    str_puts(&line, ">)");
	}
	str_puts(&line, ": ");
	bounce_put_clean(&line, reason, strlen(reason));
	str_puts(out, "\r\n");
	bounce_text_fold(out, STR_DATA(&line));
    }
    str_release(&line);
}
