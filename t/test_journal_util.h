/*
 * test_journal_util.h - helpers shared by the journal tests (static, one
 * copy per test program): test messages, temp dirs, a log sink that keeps
 * warnings, and a recovery collector.
 */
#ifndef SLUICE_TEST_JOURNAL_UTIL_H
#define SLUICE_TEST_JOURNAL_UTIL_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "queue/journal.h"
#include "queue/message.h"
#include "queue/queue_id.h"

/* Warnings, kept for assertions. */
static pthread_mutex_t tj_log_lock = PTHREAD_MUTEX_INITIALIZER;
static STR tj_log;
static int tj_log_quiet;

static void tj_sink(enum msg_level level, const char *service, const char *text)
{
    pthread_mutex_lock(&tj_log_lock);
    str_puts(&tj_log, text);
    str_putc(&tj_log, '\n');
    pthread_mutex_unlock(&tj_log_lock);
    if (!tj_log_quiet || level >= MSG_FATAL)
	fprintf(stderr, "%s: %s\n", service, text);
}

static void tj_log_init(int quiet)
{
    str_init(&tj_log);
    tj_log_quiet = quiet;
    msg_sink_set(tj_sink);
}

static bool tj_log_has(const char *needle)
{
    bool    found;

    pthread_mutex_lock(&tj_log_lock);
    found = strstr(STR_DATA(&tj_log), needle) != NULL;
    pthread_mutex_unlock(&tj_log_lock);
    return found;
}

static char *tj_tmpdir(void)
{
    char    tmpl[] = "/tmp/tjournal.XXXXXX";
    char   *d = mkdtemp(tmpl);

    if (d == NULL)
	msg_fatal("mkdtemp: %m");
    return mem_strdup(d);
}

static void tj_rmtree(const char *dir)
{
    DIR    *d = opendir(dir);
    struct dirent *de;
    char    path[4096];

    if (d == NULL)
	return;
    while ((de = readdir(d)) != NULL) {
	struct stat st;

	if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
	    continue;
	snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
	    tj_rmtree(path);
	else
	    unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Bytes in segment files (what the disk really holds). */
static unsigned long long tj_dir_bytes(const char *dir, int *nseg)
{
    DIR    *d = opendir(dir);
    struct dirent *de;
    unsigned long long total = 0;
    char    path[4096];

    *nseg = 0;
    if (d == NULL)
	return 0;
    while ((de = readdir(d)) != NULL) {
	struct stat st;

	if (strstr(de->d_name, ".seg") == NULL)
	    continue;
	snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
	if (stat(path, &st) == 0) {
	    total += (unsigned long long) st.st_blocks * 512;
	    (*nseg)++;
	}
    }
    closedir(d);
    return total;
}

/* A deterministic test message: n recipients, content of clen bytes. */
static MESSAGE *tj_message(const char *qid, size_t nrcpt, size_t clen, unsigned seed)
{
    MESSAGE *m = message_new();
    STR     c = STR_INIT;
    char    buf[128];

    if (qid)
	snprintf(m->queue_id, sizeof(m->queue_id), "%s", qid);
    else
	queue_id_next(m->queue_id);
    m->arrival_us = 1700000000000000LL + seed;
    mem_free(m->sender);
    snprintf(buf, sizeof(buf), "sender%u@example.org", seed);
    m->sender = mem_strdup(buf);
    m->client_name = mem_strdup("client.example.net");
    m->client_addr = mem_strdup("192.0.2.7");
    m->helo = seed % 3 ? mem_strdup("helo.example.net") : NULL;
    m->protocol = mem_strdup("ESMTP");
    m->dsn_envid = seed % 2 ? mem_strdup("envid-xyz") : NULL;
    m->dsn_ret = seed % 3;
    m->body_type = seed % 3;
    m->smtputf8 = seed % 2;
    for (size_t i = 0; i < nrcpt; i++) {
	snprintf(buf, sizeof(buf), "rcpt%zu-%u@dest%zu.example", i, seed, i % 3);
	RCPT   *r = message_add_rcpt(m, buf, i % 2 ? "orig@example.com" : NULL);

	r->dsn_orcpt = i % 2 ? mem_strdup("rfc822;orig@example.com") : NULL;
	r->dsn_notify = (int) (i % 4) * 2;
	r->transport = mem_strdup("smtp");
	snprintf(buf, sizeof(buf), "dest%zu.example", i % 3);
	r->nexthop = mem_strdup(buf);
    }
    str_printf(&c, "Subject: test %u\r\nFrom: <sender%u@example.org>\r\n\r\n", seed, seed);
    while (STR_LEN(&c) < clen)
	str_printf(&c, "line %zu of message %u\r\n", STR_LEN(&c), seed);
    str_truncate(&c, clen > STR_LEN(&c) ? STR_LEN(&c) : clen);
    m->content = blob_adopt(&c);
    return m;
}

static bool tj_streq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Envelope, recipients (without state) and content are the same. */
static bool tj_message_same(const MESSAGE *a, const MESSAGE *b)
{
    if (strcmp(a->queue_id, b->queue_id) || a->arrival_us != b->arrival_us
	|| !tj_streq(a->sender, b->sender) || !tj_streq(a->client_name, b->client_name)
	|| !tj_streq(a->client_addr, b->client_addr) || !tj_streq(a->helo, b->helo)
	|| !tj_streq(a->protocol, b->protocol) || !tj_streq(a->dsn_envid, b->dsn_envid)
	|| a->dsn_ret != b->dsn_ret || a->body_type != b->body_type
	|| a->smtputf8 != b->smtputf8 || a->nrcpt != b->nrcpt)
	return false;
    for (size_t i = 0; i < a->nrcpt; i++) {
	const RCPT *x = &a->rcpt[i], *y = &b->rcpt[i];

	if (!tj_streq(x->address, y->address) || !tj_streq(x->orig_rcpt, y->orig_rcpt)
	    || !tj_streq(x->dsn_orcpt, y->dsn_orcpt) || x->dsn_notify != y->dsn_notify)
	    return false;
    }
    if ((a->content == NULL) != (b->content == NULL))
	return false;
    return a->content == NULL || (a->content->len == b->content->len
		 && memcmp(a->content->data, b->content->data, a->content->len) == 0);
}

/* Recovered messages, kept with their extra state. */
typedef struct TJ_REC {
    MESSAGE *msg;
    bool    hold, corrupt, warned, any_owed;
    int64_t *next_retry;
    char  **reason;
    bool   *owed;
} TJ_REC;

typedef struct TJ_SET {
    TJ_REC *v;
    size_t  n;
} TJ_SET;

static void tj_collect(void *ctx, JOURNAL_RECOVERED *it)
{
    TJ_SET *set = ctx;
    TJ_REC *r;

    set->v = mem_realloc(set->v, (set->n + 1) * sizeof(*set->v));
    r = &set->v[set->n++];
    r->msg = it->msg;
    r->hold = it->hold;
    r->corrupt = it->corrupt;
    r->warned = it->warned;
    r->any_owed = it->owed;
    r->next_retry = mem_calloc(it->msg->nrcpt + 1, sizeof(int64_t));
    r->reason = mem_calloc(it->msg->nrcpt + 1, sizeof(char *));
    r->owed = mem_calloc(it->msg->nrcpt + 1, sizeof(bool));
    for (size_t i = 0; i < it->msg->nrcpt; i++) {
	r->owed[i] = it->notice_owed[i];
	r->next_retry[i] = it->next_retry[i];
	r->reason[i] = it->reason[i] ? mem_strdup(it->reason[i]) : NULL;
    }
}

static TJ_REC *tj_find(TJ_SET *set, const char *qid)
{
    for (size_t i = 0; i < set->n; i++)
	if (strcmp(set->v[i].msg->queue_id, qid) == 0)
	    return &set->v[i];
    return NULL;
}

static void tj_set_free(TJ_SET *set)
{
    for (size_t i = 0; i < set->n; i++) {
	for (size_t k = 0; k < set->v[i].msg->nrcpt; k++)
	    mem_free(set->v[i].reason[k]);
	mem_free(set->v[i].reason);
	mem_free(set->v[i].next_retry);
	mem_free(set->v[i].owed);
	message_free(set->v[i].msg);
    }
    mem_free(set->v);
    set->v = NULL;
    set->n = 0;
}

static JOURNAL_OPTIONS tj_options(size_t segsize, enum journal_sync sync)
{
    JOURNAL_OPTIONS o;

    memset(&o, 0, sizeof(o));
    o.segment_size = segsize;
    o.sync = sync;
    o.batch_sync_ms = 50;
    return o;
}

/* Open and recover, failing loudly. */
static JOURNAL *tj_open(const JOURNAL_BACKEND *be, const char *dir, const JOURNAL_OPTIONS *o,
			TJ_SET *set, JOURNAL_RECOVERY_STATS *st)
{
    JOURNAL *j = journal_open(be, dir, o);
    JOURNAL_RECOVERY_STATS dummy;

    if (j == NULL)
	msg_fatal("journal_open %s: %m", dir);
    if (journal_recover(j, set ? tj_collect : NULL, set, st ? st : &dummy) != 0)
	msg_fatal("journal_recover %s failed", dir);
    return j;
}

/* Synchronous appends. */
static int tj_append_message(JOURNAL *j, const MESSAGE *m)
{
    JOURNAL_WAIT w;

    journal_wait_init(&w);
    journal_append_message(j, m, journal_wait_done, &w);
    return journal_wait(&w);
}

static int tj_append_outcome_flags(JOURNAL *j, const char *qid, size_t idx,
				   enum rcpt_state st, unsigned flags, const char *reason,
				   int64_t retry)
{
    JOURNAL_WAIT w;

    journal_wait_init(&w);
    journal_append_outcome(j, qid, idx, st, flags, reason, retry, journal_wait_done, &w);
    return journal_wait(&w);
}

static int tj_append_outcome(JOURNAL *j, const char *qid, size_t idx, enum rcpt_state st,
			     const char *reason, int64_t retry)
{
    return tj_append_outcome_flags(j, qid, idx, st, 0, reason, retry);
}

static int tj_append_noticed(JOURNAL *j, const char *qid, size_t n, const size_t *idx)
{
    JOURNAL_WAIT w;

    journal_wait_init(&w);
    journal_append_noticed(j, qid, n, idx, journal_wait_done, &w);
    return journal_wait(&w);
}

static int tj_append_control(JOURNAL *j, const char *qid, enum journal_op op)
{
    JOURNAL_WAIT w;

    journal_wait_init(&w);
    journal_append_control(j, qid, op, journal_wait_done, &w);
    return journal_wait(&w);
}

#endif
