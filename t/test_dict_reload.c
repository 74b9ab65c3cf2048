/*
 * test_dict_reload.c - a hash: table rebuilt (postmap-style: temporary file
 * and rename) again and again while several threads look keys up: every
 * lookup finds its key, no thread ever sees an older version after a newer
 * one, and every version gets swapped in. Built twice: with Criterion, and
 * with t/mini_criterion.h for ThreadSanitizer (make check-tsan).
 */
#include "config.h"

#ifdef SLUICE_MINI_CRITERION
#include "t/mini_criterion.h"
#else
#include <criterion/criterion.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dict.h"
#include "engine/dict_gdbm.h"
#include "engine/str.h"
#include "engine/timeutil.h"

#define RELOAD_KEYS	200
#define RELOAD_READERS	4

typedef struct RELOAD_CTX {
    DICT   *dict;
    int     stop;			/* atomic */
    long    lookups;		/* atomic */
    long    missing;		/* atomic */
    long    backwards;		/* atomic */
} RELOAD_CTX;

static void reload_build(const char *path, int gen)
{
    char    db[300], key[32], value[32];
    STR     err = STR_INIT;
    DICT_GDBM_BUILD *b;

    snprintf(db, sizeof(db), "%s.db", path);
    b = dict_gdbm_build_open(db, 0644, DICT_GDBM_DUP_WARN, &err);
    cr_assert(b != NULL);
    for (int k = 0; k < RELOAD_KEYS; k++) {
	snprintf(key, sizeof(key), "key%d", k);
	snprintf(value, sizeof(value), "%d", gen);
	cr_assert(dict_gdbm_build_add(b, key, value, &err) == 1);
    }
    cr_assert(dict_gdbm_build_commit(b, &err) == 0);
    str_release(&err);
}

static void *reload_reader(void *arg)
{
    RELOAD_CTX *ctx = arg;
    STR     value = STR_INIT;
    char    key[32];
    int     last = 0;
    unsigned seed = (unsigned) (uintptr_t) &value;

    while (!__atomic_load_n(&ctx->stop, __ATOMIC_ACQUIRE)) {
	snprintf(key, sizeof(key), "KEY%d", rand_r(&seed) % RELOAD_KEYS);
	if (dict_lookup(ctx->dict, key, &value) != DICT_FOUND) {
	    __atomic_add_fetch(&ctx->missing, 1, __ATOMIC_RELAXED);
	} else {
	    int     gen = atoi(STR_DATA(&value));

	    if (gen < last)
		__atomic_add_fetch(&ctx->backwards, 1, __ATOMIC_RELAXED);
	    last = gen;
	}
	__atomic_add_fetch(&ctx->lookups, 1, __ATOMIC_RELAXED);
    }
    str_release(&value);
    return NULL;
}

Test(dict_reload, rebuild_under_concurrent_lookups, .timeout = 120)
{
    char    dir[] = "/tmp/test_dict_reload.XXXXXX", path[300], cmd[400];
    const char *env = getenv("SLUICE_RELOAD_VERSIONS");
    int     versions = env ? atoi(env) : 40;
    pthread_t tid[RELOAD_READERS];
    RELOAD_CTX ctx;
    STR     err = STR_INIT, value = STR_INIT;

    cr_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/table", dir);
    memset(&ctx, 0, sizeof(ctx));
    reload_build(path, 1);
    dict_set_check_interval(1000000);		/* 1 ms: many checks per version */
    snprintf(cmd, sizeof(cmd), "hash:%s", path);
    ctx.dict = dict_open(cmd, 0, &err);
    cr_assert(ctx.dict != NULL);
    for (int t = 0; t < RELOAD_READERS; t++)
	cr_assert(pthread_create(tid + t, NULL, reload_reader, &ctx) == 0);

    for (int gen = 2; gen <= versions; gen++) {
	unsigned long serial = dict_serial(ctx.dict);
	int64_t deadline = time_mono_ns() + 10000000000LL;

	reload_build(path, gen);
	/* The readers' lookups notice the new file and swap it in. */
	while (dict_serial(ctx.dict) == serial && time_mono_ns() < deadline)
	    sched_yield();
	cr_assert(dict_serial(ctx.dict) != serial);
    }
    __atomic_store_n(&ctx.stop, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < RELOAD_READERS; t++)
	pthread_join(tid[t], NULL);

    printf("# %ld lookups, %d versions\n", ctx.lookups, versions);
    cr_assert(ctx.lookups > 0);
    cr_assert_eq(ctx.missing, 0);
    cr_assert_eq(ctx.backwards, 0);
    cr_assert(dict_lookup(ctx.dict, "key7", &value) == DICT_FOUND);
    cr_assert_eq(atoi(STR_DATA(&value)), versions);
    dict_close(ctx.dict);
    str_release(&value);
    str_release(&err);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void) system(cmd);
}
