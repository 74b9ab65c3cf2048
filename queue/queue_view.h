/*
 * queue_view.h - how the queue looks to operators: Postfix's mailq layout,
 * postqueue -j JSON, qshape tables, postcat envelopes, and the filters of
 * the bulk commands. Written once, used by the engine's control handlers
 * (queue/queue_ctl.c, messages held by qmgr) and by the commands when the
 * engine is stopped (messages recovered from the journal).
 *
 * A QUEUE_VIEW_MSG describes one queued message the same way in both cases;
 * formatters append text to a STR. Queue names are Postfix's: incoming,
 * active, deferred, hold, corrupt. With the engine stopped nothing is
 * active: a message with a deferred recipient (or a retry time) is
 * "deferred", one never attempted is "incoming" (as in Postfix, where new
 * mail waits in incoming until qmgr takes it), held mail is "hold".
 *
 * Threading: no shared state; any thread. Diagnostics: none (return values).
 */
#ifndef SLUICE_QUEUE_VIEW_H
#define SLUICE_QUEUE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/str.h"
#include "queue/message.h"

enum queue_view_queue {
    QUEUE_VIEW_INCOMING, QUEUE_VIEW_ACTIVE, QUEUE_VIEW_DEFERRED, QUEUE_VIEW_HOLD,
    QUEUE_VIEW_CORRUPT, QUEUE_VIEW_NQUEUES
};

#define QUEUE_VIEW_ALL_QUEUES	((1u << QUEUE_VIEW_NQUEUES) - 1)

typedef struct QUEUE_VIEW_MSG {
    const MESSAGE *msg;
    enum queue_view_queue queue;
    size_t  size;			/* content bytes */
    const char *const *reason;		/* per recipient, or NULL (entries too) */
} QUEUE_VIEW_MSG;

const char *queue_view_queue_name(enum queue_view_queue q);
/* "deferred" -> bit mask (1 << QUEUE_VIEW_DEFERRED); "maildrop" and
 * "saved" name queues Sluice does not have (mask 0); -1: unknown name. */
long    queue_view_queue_mask(const char *name);
/* The mask as text ("deferred,hold") and back (for control requests). */
void    queue_view_mask_format(unsigned mask, STR *out);
long    queue_view_mask_parse(const char *text);

/* A non-final recipient (pending or deferred): shown, counted, acted on. */
bool    queue_view_rcpt_live(const RCPT *r);
/* "user@Example.COM" -> "example.com" (lowercased into buf); "" if none. */
const char *queue_view_domain(const char *addr, char *buf, size_t len);

/*
 * Selection for listings and bulk actions: queue mask (0 = every queue),
 * and optionally a destination domain: a message matches when one of its
 * live recipients has that domain, or a subdomain of it, or a nexthop
 * naming it ("example.com" matches "[example.com]:25").
 */
typedef struct QUEUE_VIEW_FILTER {
    unsigned queues;
    const char *domain;
} QUEUE_VIEW_FILTER;

bool    queue_view_match(const QUEUE_VIEW_FILTER *f, const QUEUE_VIEW_MSG *m);

/* One message in mailq layout (no blank separator line). long_ids picks
 * Postfix's long-ID columns (enable_long_queue_ids). */
void    queue_view_mailq(STR *out, const QUEUE_VIEW_MSG *m, bool long_ids);
/* One message as postqueue -j prints it: one JSON object and "\n". */
void    queue_view_json(STR *out, const QUEUE_VIEW_MSG *m);
/* JSON string body (no quotes) of text. */
void    queue_view_json_quote(STR *out, const char *text);

/* Printing a listing: header before the first entry, a blank line between
 * entries, the footer ("-- N Kbytes in M Requests." / "Mail queue is
 * empty"). JSON: entries only. */
typedef struct QUEUE_VIEW_PRINTER {
    FILE   *fp;
    bool    json;
    bool    long_ids;
    size_t  count;
    uint64_t bytes;
} QUEUE_VIEW_PRINTER;

void    queue_view_print(QUEUE_VIEW_PRINTER *p, size_t size, const char *text, size_t len);
void    queue_view_print_end(QUEUE_VIEW_PRINTER *p);

/* postcat -e: Postfix-style envelope lines (queue_name/ID marker included). */
void    queue_view_envelope(STR *out, const QUEUE_VIEW_MSG *m);
/* Offset of the body (after the empty line) in canonical content. */
size_t  queue_view_body_offset(const char *data, size_t len);

/*
 * qshape: live recipients (or, with by_sender, messages) per domain and
 * age bucket. Buckets: bucket_count of them as in Postfix's qshape -b: the
 * first bucket_count - 1 with upper bounds bucket_minutes * 2^i (5 10 20
 * ... 1280), the last for anything older ("1280+"). Ages in minutes since
 * arrival; a message of age a falls in the first bucket whose bound > a.
 */
#define QUEUE_VIEW_SHAPE_MAX_BUCKETS	32

typedef struct QUEUE_VIEW_SHAPE_ROW {
    char   *domain;
    uint64_t total;
    uint64_t count[QUEUE_VIEW_SHAPE_MAX_BUCKETS + 1];
} QUEUE_VIEW_SHAPE_ROW;

typedef struct QUEUE_VIEW_SHAPE {
    bool    by_sender;
    int     bucket_minutes;
    int     bucket_count;		/* bounded buckets (-b minus one) */
    int64_t now_us;
    QUEUE_VIEW_SHAPE_ROW total;
    QUEUE_VIEW_SHAPE_ROW *rows;
    size_t  nrows, cap;
    size_t *slot;			/* hash: index + 1 */
    size_t  nslot;
} QUEUE_VIEW_SHAPE;

void    queue_view_shape_init(QUEUE_VIEW_SHAPE *s, bool by_sender, int bucket_minutes,
			      int bucket_count, int64_t now_us);
void    queue_view_shape_add(QUEUE_VIEW_SHAPE *s, const QUEUE_VIEW_MSG *m);
/* Rows sorted by total (descending), then domain. */
void    queue_view_shape_sort(QUEUE_VIEW_SHAPE *s);
/* Tab-separated transfer form: "buckets M B", then "domain\tT\tc0\t..." lines. */
void    queue_view_shape_export(const QUEUE_VIEW_SHAPE *s, STR *out);
int     queue_view_shape_import(QUEUE_VIEW_SHAPE *s, const char *text);
/* Postfix's table (max_rows 0: all), or one JSON object. */
void    queue_view_shape_table(const QUEUE_VIEW_SHAPE *s, STR *out, size_t max_rows);
void    queue_view_shape_json(const QUEUE_VIEW_SHAPE *s, STR *out);
void    queue_view_shape_free(QUEUE_VIEW_SHAPE *s);

#endif
