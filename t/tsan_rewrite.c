/*
 * tsan_rewrite.c - many threads sharing one REWRITE (resolve cache,
 * invalidation, table refresh) and one CLEANUP_CTX, as the rewrite and
 * cleanup stages do. Built with t/mini_criterion.h so that it runs under
 * ThreadSanitizer (`make check-tsan`); a plain build runs it too.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "t/mini_criterion.h"

#include "engine/mem.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/cleanup.h"
#include "stages/rewrite.h"

#define NTHREADS 4

typedef struct WORK {
    REWRITE *rw;
    CLEANUP_CTX *ctx;
    int     id;
    int     errors;
} WORK;

static void *worker(void *arg)
{
    WORK   *w = arg;
    RESOLVED res;
    STR     reply = STR_INIT;
    char    addr[64], want[64];

    resolved_init(&res);
    for (int i = 0; i < 3000; i++) {
	int     n = (i * 13 + w->id) % 40;
	MESSAGE *m;
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";

	snprintf(addr, sizeof(addr), "u%d@d%d.test", n, n);
	snprintf(want, sizeof(want), "d%d.test", n);
	if (rewrite_resolve(w->rw, addr, &res) != 0
	    || strcmp(STR_DATA(&res.nexthop), want) != 0)
	    w->errors++;
	if (i % 500 == 0)
	    rewrite_invalidate(w->rw);
	if (i % 10 == 0) {
	    m = message_new();
	    snprintf(m->queue_id, sizeof(m->queue_id), "Q%d", i);
	    message_add_rcpt(m, "list@example.com", NULL);
	    m->content = blob_new(body, sizeof(body) - 1);
	    if (cleanup_message(w->ctx, m, NULL, &reply) != CLEANUP_OK
		|| m->nrcpt != 2 || rewrite_message(w->rw, m, &reply) != 0
		|| strcmp(m->rcpt[0].transport, "smtp") != 0)
		w->errors++;
	    message_free(m);
	}
    }
    resolved_release(&res);
    str_release(&reply);
    return NULL;
}

Test(tsan_rewrite, shared_rewrite_and_cleanup)
{
    REWRITE_CONFIG rcfg;
    CLEANUP_CONFIG ccfg;
    STR     err = STR_INIT;
    REWRITE *rw;
    CLEANUP_CTX *ctx;
    pthread_t tid[NTHREADS];
    WORK    work[NTHREADS];
    int     errors = 0;

    rewrite_config_defaults(&rcfg);
    rcfg.mydestination = "example.com";
    rcfg.myorigin = "example.com";
    rcfg.cache_size = 16;
    rcfg.transport_maps = "inline:{ nothing.test=error: }";
    cleanup_config_defaults(&ccfg);
    ccfg.virtual_alias_maps = "inline:{ { list@example.com = a@remote.test, b@remote.test } }";
    ccfg.header_checks = "inline:{ nomatch=REJECT }";
    cr_assert((rw = rewrite_create(&rcfg, &err)) != NULL);
    cr_assert((ctx = cleanup_create(&ccfg, rw, &err)) != NULL);
    for (int i = 0; i < NTHREADS; i++) {
	work[i] = (WORK) {rw, ctx, i, 0};
	cr_assert_eq(pthread_create(&tid[i], NULL, worker, &work[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
	pthread_join(tid[i], NULL);
	errors += work[i].errors;
    }
    cr_assert_eq(errors, 0);
    cleanup_free(ctx);
    rewrite_free(rw);
    str_release(&err);
}
