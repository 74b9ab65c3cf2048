/*
 * queue_view.c - operator views of the queue (see queue_view.h).
 *
 * The mailq layout follows Postfix's postqueue (showq_compat): the heading
 * "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------",
 * the ID followed by '*' (active) or '!' (hold), asctime() of the arrival
 * cut to 20 characters, the null sender shown as MAILER-DAEMON, each delay
 * reason right-aligned in parentheses above the recipients it applies to
 * ("reason unavailable" when a recipient after one with a reason has none).
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/mem.h"
#include "queue/queue_view.h"

static const char *const queue_view_names[QUEUE_VIEW_NQUEUES] = {
    "incoming", "active", "deferred", "hold", "corrupt",
};

const char *queue_view_queue_name(enum queue_view_queue q)
{
    return (unsigned) q < QUEUE_VIEW_NQUEUES ? queue_view_names[q] : "unknown";
}

long queue_view_queue_mask(const char *name)
{
    for (int i = 0; i < QUEUE_VIEW_NQUEUES; i++)
	if (strcmp(name, queue_view_names[i]) == 0)
	    return 1L << i;
    /* Postfix queue names without messages in Sluice: valid, always empty. */
    if (strcmp(name, "maildrop") == 0 || strcmp(name, "saved") == 0)
	return 0;
    return -1;
}

void queue_view_mask_format(unsigned mask, STR *out)
{
    const char *sep = "";

    for (int i = 0; i < QUEUE_VIEW_NQUEUES; i++) {
	if (mask & (1u << i)) {
	    str_printf(out, "%s%s", sep, queue_view_names[i]);
	    sep = ",";
	}
    }
    if (*sep == 0)
	str_puts(out, "none");
}

long queue_view_mask_parse(const char *text)
{
    long    mask = 0;
    char   *copy = mem_strdup(text), *save = NULL, *tok;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
	long    m = strcmp(tok, "none") == 0 ? 0 : queue_view_queue_mask(tok);

	if (m < 0) {
	    mask = -1;
	    break;
	}
	mask |= m;
    }
    mem_free(copy);
    return mask;
}

bool queue_view_rcpt_live(const RCPT *r)
{
    return r->state == RCPT_PENDING || r->state == RCPT_DEFERRED;
}

const char *queue_view_domain(const char *addr, char *buf, size_t len)
{
    const char *at = strrchr(addr, '@');
    size_t  i = 0;

    if (at && len) {
	for (at++; *at && i + 1 < len; at++)
	    buf[i++] = (char) tolower((unsigned char) *at);
    }
    if (len)
	buf[i] = 0;
    return buf;
}

/* domain equals want or is a subdomain of it (case-insensitive). */
static bool queue_view_domain_match(const char *domain, const char *want)
{
    size_t  dl = strlen(domain), wl = strlen(want);

    if (dl < wl || wl == 0)
	return false;
    if (strcasecmp(domain + dl - wl, want) != 0)
	return false;
    return dl == wl || domain[dl - wl - 1] == '.';
}

static bool queue_view_nexthop_match(const char *nexthop, const char *want)
{
    char    host[256];
    size_t  i = 0;
    const char *p = nexthop;

    if (*p == '[')
	p++;
    while (*p && *p != ']' && *p != ':' && i + 1 < sizeof(host))
	host[i++] = *p++;
    host[i] = 0;
    return strcasecmp(host, want) == 0;
}

bool queue_view_match(const QUEUE_VIEW_FILTER *f, const QUEUE_VIEW_MSG *m)
{
    if (f->queues && !(f->queues & (1u << m->queue)))
	return false;
    if (f->domain && *f->domain) {
	for (size_t i = 0; i < m->msg->nrcpt; i++) {
	    const RCPT *r = &m->msg->rcpt[i];
	    const char *at;

	    if (!queue_view_rcpt_live(r))
		continue;
	    if ((at = strrchr(r->address, '@')) && queue_view_domain_match(at + 1, f->domain))
		return true;
	    if (r->nexthop && queue_view_nexthop_match(r->nexthop, f->domain))
		return true;
	}
	return false;
    }
    return true;
}

/* The delay reason of a deferred recipient; a pending one (never tried, or
 * requeued since) has none even if an old reason is still recorded. */
static const char *queue_view_reason(const QUEUE_VIEW_MSG *m, size_t i)
{
    if (m->msg->rcpt[i].state != RCPT_DEFERRED || m->reason == NULL || m->reason[i] == NULL)
	return "";
    return m->reason[i];
}

/* ---- mailq ------------------------------------------------------------- */

#define QV_S_STRING	"%-11s %7s %-20s %s\n"
#define QV_S_SENDER	"%-11s %7lu %20.20s %s\n"
#define QV_L_STRING	"%-17s %8s %-19s %s\n"
#define QV_L_SENDER	"%-17s %8lu %19.19s %s\n"

/* Printable form of an address: control characters become '?'. */
static const char *queue_view_printable(const char *addr, STR *buf)
{
    str_reset(buf);
    for (const char *p = addr; *p; p++)
	str_putc(buf, (unsigned char) *p < 0x20 || *p == 0x7f ? '?' : *p);
    return STR_DATA(buf);
}

static void queue_view_asctime(int64_t arrival_us, char buf[32])
{
    time_t  t = (time_t) (arrival_us / 1000000);
    struct tm tm;

    if (arrival_us <= 0 || localtime_r(&t, &tm) == NULL || asctime_r(&tm, buf) == NULL)
	strcpy(buf, "??");
}

static void queue_view_header(STR *out, bool long_ids)
{
    if (long_ids)
	str_printf(out, QV_L_STRING, "----Queue ID-----", "--Size--",
		   "---Arrival Time----", "--Sender/Recipient------");
    else
	str_printf(out, QV_S_STRING, "-Queue ID-", "--Size--",
		   "----Arrival Time----", "-Sender/Recipient-------");
}

void queue_view_mailq(STR *out, const QUEUE_VIEW_MSG *m, bool long_ids)
{
    char    id[QUEUE_ID_MAX + 2], when[32];
    const char *saved = "";
    STR     buf = STR_INIT;

    snprintf(id, sizeof(id), "%s%s", m->msg->queue_id,
	     m->queue == QUEUE_VIEW_ACTIVE ? "*" : m->queue == QUEUE_VIEW_HOLD ? "!" : "");
    queue_view_asctime(m->msg->arrival_us, when);
    str_printf(out, long_ids ? QV_L_SENDER : QV_S_SENDER, id, (unsigned long) m->size, when,
	       queue_view_printable(*m->msg->sender ? m->msg->sender : "MAILER-DAEMON", &buf));
    for (size_t i = 0; i < m->msg->nrcpt; i++) {
	const RCPT *r = &m->msg->rcpt[i];
	const char *why = queue_view_reason(m, i);

	if (!queue_view_rcpt_live(r))
	    continue;
	if (strcmp(saved, why) != 0) {
	    const char *show = *why ? why : "reason unavailable";
	    int     pad = 76 - (int) strlen(show);

	    saved = why;
	    str_printf(out, "%*s(%s)\n", pad < 0 ? 0 : pad, "", show);
	}
	str_printf(out, long_ids ? QV_L_STRING : QV_S_STRING, "", "", "",
		   queue_view_printable(r->address, &buf));
    }
    str_release(&buf);
}

void queue_view_json_quote(STR *out, const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
	switch (*p) {
	case '"':
	    str_puts(out, "\\\"");
	    break;
	case '\\':
	    str_puts(out, "\\\\");
	    break;
	case '\n':
	    str_puts(out, "\\n");
	    break;
	case '\r':
	    str_puts(out, "\\r");
	    break;
	case '\t':
	    str_puts(out, "\\t");
	    break;
	default:
	    if (*p < 0x20 || *p == 0x7f)
		str_printf(out, "\\u%04x", *p);
	    else if (*p >= 0x80)
		str_putc(out, '?');	/* as Postfix's printable(): no raw 8-bit */
	    else
		str_putc(out, *p);
	}
    }
}

void queue_view_json(STR *out, const QUEUE_VIEW_MSG *m)
{
    const char *sep = "";

    str_puts(out, "{\"queue_name\": \"");
    str_puts(out, queue_view_queue_name(m->queue));
    str_puts(out, "\", \"queue_id\": \"");
    queue_view_json_quote(out, m->msg->queue_id);
    str_printf(out, "\", \"arrival_time\": %lld, \"message_size\": %lu, "
	       "\"forced_expire\": false, \"sender\": \"",
	       (long long) (m->msg->arrival_us / 1000000), (unsigned long) m->size);
    queue_view_json_quote(out, m->msg->sender);
    str_puts(out, "\", \"recipients\": [");
    for (size_t i = 0; i < m->msg->nrcpt; i++) {
	const RCPT *r = &m->msg->rcpt[i];

	if (!queue_view_rcpt_live(r))
	    continue;
	str_printf(out, "%s{\"address\": \"", sep);
	queue_view_json_quote(out, r->address);
	str_putc(out, '"');
	if (*queue_view_reason(m, i)) {
	    str_puts(out, ", \"delay_reason\": \"");
	    queue_view_json_quote(out, queue_view_reason(m, i));
	    str_putc(out, '"');
	}
	str_putc(out, '}');
	sep = ", ";
    }
    str_puts(out, "]}\n");
}

void queue_view_print(QUEUE_VIEW_PRINTER *p, size_t size, const char *text, size_t len)
{
    if (!p->json) {
	STR     hdr = STR_INIT;

	if (p->count == 0)
	    queue_view_header(&hdr, p->long_ids);
	else
	    str_putc(&hdr, '\n');
	fwrite(STR_DATA(&hdr), 1, STR_LEN(&hdr), p->fp);
	str_release(&hdr);
    }
    fwrite(text, 1, len, p->fp);
    p->count++;
    p->bytes += size;
}

void queue_view_print_end(QUEUE_VIEW_PRINTER *p)
{
    if (p->json)
	return;
    if (p->count == 0)
	fputs("Mail queue is empty\n", p->fp);
    else
	fprintf(p->fp, "\n-- %llu Kbytes in %zu Request%s.\n",
		(unsigned long long) (p->bytes / 1024), p->count, p->count == 1 ? "" : "s");
}

/* ---- postcat ------------------------------------------------------------ */

void queue_view_envelope(STR *out, const QUEUE_VIEW_MSG *m)
{
    const MESSAGE *msg = m->msg;
    char    when[32];

    queue_view_asctime(msg->arrival_us, when);
    str_printf(out, "message_size: %lu %lu %zu\n", (unsigned long) m->size,
	       (unsigned long) queue_view_body_offset(msg->content ? msg->content->data : "",
						      m->size), msg->nrcpt);
    str_printf(out, "message_arrival_time: %s", when);
    str_printf(out, "create_time: %s", when);
    str_printf(out, "sender: %s\n", msg->sender);
    if (msg->client_name)
	str_printf(out, "named_attribute: log_client_name=%s\n", msg->client_name);
    if (msg->client_addr)
	str_printf(out, "named_attribute: log_client_address=%s\n", msg->client_addr);
    if (msg->helo)
	str_printf(out, "named_attribute: log_helo_name=%s\n", msg->helo);
    if (msg->protocol)
	str_printf(out, "named_attribute: log_protocol_name=%s\n", msg->protocol);
    if (msg->dsn_envid)
	str_printf(out, "named_attribute: envelope_id=%s\n", msg->dsn_envid);
    for (size_t i = 0; i < msg->nrcpt; i++) {
	const RCPT *r = &msg->rcpt[i];

	if (r->orig_rcpt)
	    str_printf(out, "original_recipient: %s\n", r->orig_rcpt);
	str_printf(out, "%s: %s\n", queue_view_rcpt_live(r) ? "recipient" : "done_recipient",
		   r->address);
	if (r->transport)
	    str_printf(out, "named_attribute: route=%s:%s\n", r->transport,
		       r->nexthop ? r->nexthop : "");
	if (*queue_view_reason(m, i))
	    str_printf(out, "named_attribute: delay_reason=%s\n", m->reason[i]);
    }
}

size_t queue_view_body_offset(const char *data, size_t len)
{
    /* Headers end at the first empty line ("\r\n" at a line start). */
    if (len >= 2 && data[0] == '\r' && data[1] == '\n')
	return 2;
    for (size_t i = 0; i + 3 < len; i++)
	if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n')
	    return i + 4;
    return len;
}

/* ---- qshape ------------------------------------------------------------- */

void queue_view_shape_init(QUEUE_VIEW_SHAPE *s, bool by_sender, int bucket_minutes,
			   int bucket_count, int64_t now_us)
{
    memset(s, 0, sizeof(*s));
    s->by_sender = by_sender;
    s->bucket_minutes = bucket_minutes > 0 ? bucket_minutes : 5;
    /* Postfix counts the open-ended last column among the buckets. */
    s->bucket_count = (bucket_count >= 2 && bucket_count <= QUEUE_VIEW_SHAPE_MAX_BUCKETS
		       ? bucket_count : 10) - 1;
    s->now_us = now_us;
    s->total.domain = mem_strdup("TOTAL");
}

static uint64_t queue_view_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s)
	h = (h ^ (unsigned char) *s++) * 1099511628211ULL;
    return h;
}

static QUEUE_VIEW_SHAPE_ROW *queue_view_shape_row(QUEUE_VIEW_SHAPE *s, const char *domain)
{
    size_t  i;

    if (s->nrows * 2 >= s->nslot) {
	size_t  n = s->nslot ? s->nslot * 2 : 64;

	mem_free(s->slot);
	s->slot = mem_calloc(n, sizeof(*s->slot));
	s->nslot = n;
	for (size_t k = 0; k < s->nrows; k++) {
	    for (i = queue_view_hash(s->rows[k].domain) & (n - 1); s->slot[i]; i = (i + 1) & (n - 1))
		 /* probe */ ;
	    s->slot[i] = k + 1;
	}
    }
    for (i = queue_view_hash(domain) & (s->nslot - 1); s->slot[i]; i = (i + 1) & (s->nslot - 1))
	if (strcmp(s->rows[s->slot[i] - 1].domain, domain) == 0)
	    return &s->rows[s->slot[i] - 1];
    if (s->nrows == s->cap) {
	s->cap = s->cap ? s->cap * 2 : 32;
	s->rows = mem_realloc(s->rows, s->cap * sizeof(*s->rows));
    }
    memset(&s->rows[s->nrows], 0, sizeof(*s->rows));
    s->rows[s->nrows].domain = mem_strdup(domain);
    s->slot[i] = ++s->nrows;
    return &s->rows[s->nrows - 1];
}

static int queue_view_shape_bucket(const QUEUE_VIEW_SHAPE *s, int64_t arrival_us)
{
    int64_t age_min = (s->now_us - arrival_us) / 60000000;
    int64_t limit = s->bucket_minutes;

    if (age_min < 0)
	age_min = 0;
    for (int b = 0; b < s->bucket_count; b++, limit *= 2)
	if (age_min < limit)
	    return b;
    return s->bucket_count;
}

static void queue_view_shape_count(QUEUE_VIEW_SHAPE *s, const char *domain, int b)
{
    QUEUE_VIEW_SHAPE_ROW *row = queue_view_shape_row(s, *domain ? domain : "(none)");

    row->total++;
    row->count[b]++;
    s->total.total++;
    s->total.count[b]++;
}

void queue_view_shape_add(QUEUE_VIEW_SHAPE *s, const QUEUE_VIEW_MSG *m)
{
    int     b = queue_view_shape_bucket(s, m->msg->arrival_us);
    char    dom[256];

    if (s->by_sender) {
	queue_view_shape_count(s, *m->msg->sender ? queue_view_domain(m->msg->sender, dom,
				sizeof(dom)) : "MAILER-DAEMON", b);
	return;
    }
    for (size_t i = 0; i < m->msg->nrcpt; i++)
	if (queue_view_rcpt_live(&m->msg->rcpt[i]))
	    queue_view_shape_count(s, queue_view_domain(m->msg->rcpt[i].address, dom,
							 sizeof(dom)), b);
}

static int queue_view_shape_cmp(const void *a, const void *b)
{
    const QUEUE_VIEW_SHAPE_ROW *x = a, *y = b;

    if (x->total != y->total)
	return x->total > y->total ? -1 : 1;
    return strcmp(x->domain, y->domain);
}

void queue_view_shape_sort(QUEUE_VIEW_SHAPE *s)
{
    if (s->nrows)
	qsort(s->rows, s->nrows, sizeof(*s->rows), queue_view_shape_cmp);
    /* The hash index is stale now; it is only used while adding. */
    mem_free(s->slot);
    s->slot = NULL;
    s->nslot = 0;
}

static void queue_view_shape_export_row(const QUEUE_VIEW_SHAPE *s,
					const QUEUE_VIEW_SHAPE_ROW *r, STR *out)
{
    str_printf(out, "%s\t%llu", r->domain, (unsigned long long) r->total);
    for (int b = 0; b <= s->bucket_count; b++)
	str_printf(out, "\t%llu", (unsigned long long) r->count[b]);
    str_putc(out, '\n');
}

void queue_view_shape_export(const QUEUE_VIEW_SHAPE *s, STR *out)
{
    str_printf(out, "buckets %d %d %d\n", s->bucket_minutes, s->bucket_count + 1, s->by_sender);
    queue_view_shape_export_row(s, &s->total, out);
    for (size_t i = 0; i < s->nrows; i++)
	queue_view_shape_export_row(s, &s->rows[i], out);
}

int queue_view_shape_import(QUEUE_VIEW_SHAPE *s, const char *text)
{
    int     minutes, count, by_sender;
    const char *line, *nl;
    bool    first = true;

    if (sscanf(text, "buckets %d %d %d", &minutes, &count, &by_sender) != 3
	|| count < 2 || count > QUEUE_VIEW_SHAPE_MAX_BUCKETS)
	return -1;
    queue_view_shape_init(s, by_sender != 0, minutes, count, 0);
    count = s->bucket_count;
    for (line = strchr(text, '\n'); line && line[1]; line = nl) {
	QUEUE_VIEW_SHAPE_ROW row;
	char    dom[256];
	const char *p;
	char   *end;
	size_t  dl;

	line++;
	nl = strchr(line, '\n');
	p = strchr(line, '\t');
	if (p == NULL || (nl && p > nl) || (dl = (size_t) (p - line)) >= sizeof(dom))
	    return -1;
	memcpy(dom, line, dl);
	dom[dl] = 0;
	memset(&row, 0, sizeof(row));
	row.total = strtoull(p + 1, &end, 10);
	for (int b = 0; b <= count; b++) {
	    if (*end != '\t')
		return -1;
	    row.count[b] = strtoull(end + 1, &end, 10);
	}
	if (first) {
	    memcpy(s->total.count, row.count, sizeof(row.count));
	    s->total.total = row.total;
	    first = false;
	} else {
	    QUEUE_VIEW_SHAPE_ROW *r = queue_view_shape_row(s, dom);

	    r->total = row.total;
	    memcpy(r->count, row.count, sizeof(row.count));
	}
	if (nl == NULL)
	    break;
    }
    return 0;
}

void queue_view_shape_table(const QUEUE_VIEW_SHAPE *s, STR *out, size_t max_rows)
{
    int     width[QUEUE_VIEW_SHAPE_MAX_BUCKETS + 2];
    char    label[QUEUE_VIEW_SHAPE_MAX_BUCKETS + 2][24];
    size_t  nrows = max_rows && max_rows < s->nrows ? max_rows : s->nrows;
    int     dw = 5;
    int64_t limit = s->bucket_minutes;

    /* Columns: T, then each bucket's upper bound, then "<last>+". */
    snprintf(label[0], sizeof(label[0]), "T");
    for (int b = 0; b < s->bucket_count; b++, limit *= 2)
	snprintf(label[b + 1], sizeof(label[b + 1]), "%lld", (long long) limit);
    snprintf(label[s->bucket_count + 1], sizeof(label[0]), "%lld+", (long long) (limit / 2));
    for (int c = 0; c <= s->bucket_count + 1; c++)
	width[c] = (int) strlen(label[c]);
    for (size_t i = 0; i <= nrows; i++) {
	const QUEUE_VIEW_SHAPE_ROW *r = i == 0 ? &s->total : &s->rows[i - 1];
	char    num[24];

	if ((int) strlen(r->domain) > dw)
	    dw = (int) strlen(r->domain);
	for (int c = 0; c <= s->bucket_count + 1; c++) {
	    int     n = snprintf(num, sizeof(num), "%llu",
				 (unsigned long long) (c == 0 ? r->total : r->count[c - 1]));

	    if (n > width[c])
		width[c] = n;
	}
    }
    str_printf(out, "%*s", dw, "");
    for (int c = 0; c <= s->bucket_count + 1; c++)
	str_printf(out, " %*s", width[c], label[c]);
    str_putc(out, '\n');
    for (size_t i = 0; i <= nrows; i++) {
	const QUEUE_VIEW_SHAPE_ROW *r = i == 0 ? &s->total : &s->rows[i - 1];

	str_printf(out, "%*s", dw, r->domain);
	for (int c = 0; c <= s->bucket_count + 1; c++)
	    str_printf(out, " %*llu", width[c],
		       (unsigned long long) (c == 0 ? r->total : r->count[c - 1]));
	str_putc(out, '\n');
    }
}

static void queue_view_shape_json_row(const QUEUE_VIEW_SHAPE *s, const QUEUE_VIEW_SHAPE_ROW *r,
				      STR *out)
{
    str_puts(out, "{\"domain\": \"");
    queue_view_json_quote(out, r->domain);
    str_printf(out, "\", \"total\": %llu, \"counts\": [", (unsigned long long) r->total);
    for (int b = 0; b <= s->bucket_count; b++)
	str_printf(out, "%s%llu", b ? ", " : "", (unsigned long long) r->count[b]);
    str_puts(out, "]}");
}

void queue_view_shape_json(const QUEUE_VIEW_SHAPE *s, STR *out)
{
    int64_t limit = s->bucket_minutes;

    str_printf(out, "{\"by\": \"%s\", \"bucket_minutes\": [", s->by_sender ? "sender" : "recipient");
    for (int b = 0; b < s->bucket_count; b++, limit *= 2)
	str_printf(out, "%s%lld", b ? ", " : "", (long long) limit);
    str_puts(out, "], \"total\": ");
    queue_view_shape_json_row(s, &s->total, out);
    str_puts(out, ", \"domains\": [");
    for (size_t i = 0; i < s->nrows; i++) {
	if (i)
	    str_puts(out, ", ");
	queue_view_shape_json_row(s, &s->rows[i], out);
    }
    str_puts(out, "]}\n");
}

void queue_view_shape_free(QUEUE_VIEW_SHAPE *s)
{
    for (size_t i = 0; i < s->nrows; i++)
	mem_free(s->rows[i].domain);
    mem_free(s->rows);
    mem_free(s->slot);
    mem_free(s->total.domain);
    memset(s, 0, sizeof(*s));
}
