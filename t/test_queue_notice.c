/*
 * test_queue_notice.c - the pieces of queue/queue_notice.c that work on
 * their own: which outcomes owe a notice, and the status code a notice
 * re-issued after a restart takes from the recorded reply (hostile text
 * included). The whole path runs in t/notice_durable.py.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "engine/mem.h"
#include "queue/message.h"
#include "queue/queue_notice.h"

static const char *dsn_of(const char *reason)
{
    static char out[QUEUE_NOTICE_DSN_SIZE];

    queue_notice_reason_dsn(reason, "5.0.0", out);
    return out;
}

Test(queue_notice, status_code_from_the_recorded_reply)
{
    cr_assert_str_eq(dsn_of("host mx[192.0.2.1] said: 550 5.1.1 <u@example.com>: "
			    "Recipient address rejected (in reply to RCPT TO command)"), "5.1.1");
    cr_assert_str_eq(dsn_of("5.7.1 denied"), "5.7.1");
    cr_assert_str_eq(dsn_of("said: 550-5.2.2 mailbox full"), "5.2.2");
    cr_assert_str_eq(dsn_of("delivery temporarily suspended: 4.4.1 (x)"), "4.4.1");
    cr_assert_str_eq(dsn_of("relayed: 250 2.0.0 Ok"), "2.0.0");
    cr_assert_str_eq(dsn_of("5.123.456 long parts"), "5.123.456");
}

Test(queue_notice, hostile_or_missing_codes_give_the_default)
{
    static const char *const none[] = {
	NULL, "", "550 no code here", "connect to 192.0.2.5[5.6.7.8]:25: refused",
	"5.1.1x trailing letter", "x5.1.1 leading letter", "15.1.1 longer number",
	"5.1.1.2 four parts", "5.1234.1 part too long", "5..1 empty part", "5.1.",
	"3.1.1 not a class", "5.1", "5", ".5.1.1", "9.9.9 and 5.1.", "\x80\xff 5.1\x01",
    };

    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
	cr_assert_str_eq(dsn_of(none[i]), "5.0.0", "reason %zu", i);
    /* The first code that stands alone wins. */
    cr_assert_str_eq(dsn_of("1.2.3.4.5 then 4.2.0 then 5.1.1"), "4.2.0");
}

Test(queue_notice, which_outcomes_owe_a_notice)
{
    MESSAGE *m = message_new();
    RCPT   *plain = message_add_rcpt(m, "a@example.com", NULL);
    RCPT   *success = message_add_rcpt(m, "b@example.com", NULL);

    (void) plain;
    success->dsn_notify = DSN_NOTIFY_SUCCESS;
    cr_assert_eq(queue_notice_outcome_flags(m, 0, RCPT_BOUNCED), JOURNAL_NOTICE_OWED);
    cr_assert_eq(queue_notice_outcome_flags(m, 0, RCPT_SENT), 0);
    cr_assert_eq(queue_notice_outcome_flags(m, 1, RCPT_SENT), JOURNAL_NOTICE_OWED);
    cr_assert_eq(queue_notice_outcome_flags(m, 0, RCPT_DEFERRED), 0);
    cr_assert_eq(queue_notice_outcome_flags(m, 0, RCPT_DROPPED), 0, "postsuper -d: no notice");
    message_free(m);
}
