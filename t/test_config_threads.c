/*
 * test_config_threads.c - param_*() readers in several threads while the
 * configuration is reloaded: every read sees one whole snapshot, and old
 * snapshots stay valid. Builds with Criterion, or with t/mini_criterion.h
 * (SLUICE_MINI_CRITERION) for ThreadSanitizer runs.
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

#include "engine/config.h"
#include "engine/msg.h"
#include "engine/param.h"
#include "engine/str.h"

/* ---------- readers during reloads ---------- */

static volatile int reload_done;

static void *reader(void *arg)
{
    long    bad = 0;

    while (!__atomic_load_n(&reload_done, __ATOMIC_ACQUIRE)) {
	/* One snapshot is consistent: relayhost "hN" goes with limit N. */
	const CONFIG *cfg = config_current();
	const char *r = config_str(cfg, P_RELAYHOST);
	long long limit = config_transport_int(cfg, "relay",
					       P_DEFAULT_DESTINATION_CONCURRENCY_LIMIT);

	/* And the per-call readers never crash or see garbage. */
	const char *now = param_str(P_RELAYHOST);

	if (now[0] != 'h' && now[0] != 0)
	    bad++;
	if (r[0] == 'h' && atoll(r + 1) != limit)
	    bad++;
    }
    return (void *) bad;
}

Test(config_threads, readers_never_see_a_torn_snapshot)
{
    char    dir[] = "/tmp/sluice-cfg-XXXXXX";
    STR     path = STR_INIT, err = STR_INIT;
    pthread_t tid[3];

    cr_assert(mkdtemp(dir) != NULL);
    str_printf(&path, "%s/main.cf", dir);
    for (int i = 0; i < 3; i++)
	pthread_create(&tid[i], NULL, reader, NULL);
    for (int n = 1; n <= 40; n++) {
	FILE   *fp = fopen(STR_DATA(&path), "w");

	fprintf(fp, "relayhost = h%d\nrelay_destination_concurrency_limit = %d\n", n, n);
	fclose(fp);
	cr_assert_eq(config_reload(dir, &err), 0);
    }
    __atomic_store_n(&reload_done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++) {
	void   *bad;

	pthread_join(tid[i], &bad);
	cr_assert_eq((long) bad, 0);
    }
    cr_assert(strcmp(param_str(P_RELAYHOST), "h40") == 0);
    str_reset(&path);
    str_printf(&path, "rm -rf '%s'", dir);
    cr_assert_eq(system(STR_DATA(&path)), 0);
    str_release(&path);
    str_release(&err);
    config_shutdown();
}
