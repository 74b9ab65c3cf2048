/*
 * bench/journal.c - durable message commits per second: the journal (group
 * commit) against one file per message (Postfix style), side by side.
 *
 * Usage: bench/journal [-d dir] [-t seconds] [-r runs] [-c 1,8,64,256] [-s 1024,102400]
 *
 * For every message size and committer count, each run measures, back to
 * back on the same disk:
 *  journal  N threads; each appends a MESSAGE (journal_sync = always, fs
 *           backend, 64m segments) and waits for its completion, which
 *           comes only after fdatasync; then appends DONE without waiting
 *           (so finished segments are deleted, as in service).
 *  file     N threads; each writes the same envelope and content to a new
 *           file in incoming/ (open O_EXCL, one writev, fsync, close) and
 *           renames it into active/, as Postfix's cleanup and qmgr do.
 * Medians over the runs are printed with the ratio journal/file. The disk
 * is shared and noisy: only ratios from one invocation mean anything.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <dirent.h>

#include "engine/mem.h"
#include "engine/msg.h"
#include "engine/str.h"
#include "engine/timeutil.h"
#include "queue/journal.h"
#include "queue/journal_rec.h"
#include "queue/message.h"
#include "queue/queue_id.h"

typedef struct BENCH {
    int     method;			/* 0 journal, 1 file */
    size_t  size;
    JOURNAL *j;
    const char *dir;
    int64_t start_ns, stop_ns;
    int     go;				/* start flag */
    pthread_barrier_t barrier;
} BENCH;

typedef struct WORKER {
    BENCH  *b;
    int     id;
    unsigned long count;
    MESSAGE *m;
    STR     env;
} WORKER;

static MESSAGE *bench_message(size_t size)
{
    MESSAGE *m = message_new();
    STR     c = STR_INIT;
    RCPT   *r;

    queue_id_next(m->queue_id);
    m->arrival_us = time_real_us();
    mem_free(m->sender);
    m->sender = mem_strdup("sender@example.org");
    m->client_name = mem_strdup("client.example.net");
    m->client_addr = mem_strdup("192.0.2.7");
    m->helo = mem_strdup("client.example.net");
    m->protocol = mem_strdup("ESMTP");
    r = message_add_rcpt(m, "rcpt@example.com", "rcpt@example.com");
    r->transport = mem_strdup("smtp");
    r->nexthop = mem_strdup("example.com");
    str_puts(&c, "Received: from client.example.net\r\nSubject: bench\r\n\r\n");
    while (STR_LEN(&c) < size)
	str_puts(&c, "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n");
    str_truncate(&c, size);
    m->content = blob_adopt(&c);
    return m;
}

static void *bench_worker(void *arg)
{
    WORKER *w = arg;
    BENCH  *b = w->b;
    char    tmp[8192], dst[8192];

    pthread_barrier_wait(&b->barrier);
    while (time_mono_ns() < b->stop_ns) {
	queue_id_next(w->m->queue_id);
	if (b->method == 0) {
	    JOURNAL_WAIT wt;

	    journal_wait_init(&wt);
	    journal_append_message(b->j, w->m, journal_wait_done, &wt);
	    if (journal_wait(&wt) != 0)
		msg_fatal("journal append failed");
	    journal_append_control(b->j, w->m->queue_id, JOURNAL_OP_DONE, NULL, NULL);
	} else {
	    struct iovec iov[2];
	    int     fd;

	    str_reset(&w->env);
	    jrec_encode_message(&w->env, w->m, 0, NULL);
	    iov[0].iov_base = w->env.data;
	    iov[0].iov_len = STR_LEN(&w->env);
	    iov[1].iov_base = w->m->content->data;
	    iov[1].iov_len = w->m->content->len;
	    snprintf(tmp, sizeof(tmp), "%s/incoming/%s", b->dir, w->m->queue_id);
	    snprintf(dst, sizeof(dst), "%s/active/%s", b->dir, w->m->queue_id);
	    if ((fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600)) < 0)
		msg_fatal("open %s: %m", tmp);
	    if (writev(fd, iov, 2) != (ssize_t) (iov[0].iov_len + iov[1].iov_len))
		msg_fatal("write %s: %m", tmp);
	    if (fsync(fd) < 0)
		msg_fatal("fsync %s: %m", tmp);
	    close(fd);
	    if (rename(tmp, dst) < 0)
		msg_fatal("rename %s: %m", tmp);
	}
	if (time_mono_ns() <= b->stop_ns)
	    w->count++;
    }
    return NULL;
}

static void bench_rmtree(const char *dir)
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
	    bench_rmtree(path);
	else
	    unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* One cell: commits per second. */
static double bench_cell(const char *base, int method, size_t size, int n, double secs,
			 JOURNAL_STATS *jst)
{
    BENCH   b;
    WORKER *w = mem_calloc((size_t) n, sizeof(*w));
    pthread_t *th = mem_calloc((size_t) n, sizeof(*th));
    char    dir[2048], sub[4096];
    unsigned long total = 0;

    memset(&b, 0, sizeof(b));
    b.method = method;
    b.size = size;
    snprintf(dir, sizeof(dir), "%s/cell-%d", base, method);
    bench_rmtree(dir);
    if (mkdir(dir, 0700) < 0)
	msg_fatal("mkdir %s: %m", dir);
    b.dir = dir;
    if (method == 0) {
	JOURNAL_OPTIONS o;

	memset(&o, 0, sizeof(o));
	o.segment_size = 64u << 20;
	o.sync = JOURNAL_SYNC_ALWAYS;
	snprintf(sub, sizeof(sub), "%s/journal", dir);
	if ((b.j = journal_open(&journal_backend_fs, sub, &o)) == NULL)
	    msg_fatal("journal_open %s: %m", sub);
	if (journal_recover(b.j, NULL, NULL, NULL) != 0)
	    msg_fatal("journal_recover failed");
    } else {
	snprintf(sub, sizeof(sub), "%s/incoming", dir);
	mkdir(sub, 0700);
	snprintf(sub, sizeof(sub), "%s/active", dir);
	mkdir(sub, 0700);
    }
    pthread_barrier_init(&b.barrier, NULL, (unsigned) n + 1);
    for (int i = 0; i < n; i++) {
	w[i].b = &b;
	w[i].id = i;
	w[i].m = bench_message(size);
	str_init(&w[i].env);
	pthread_create(&th[i], NULL, bench_worker, &w[i]);
    }
    b.start_ns = time_mono_ns();
    b.stop_ns = b.start_ns + (int64_t) (secs * 1e9);
    pthread_barrier_wait(&b.barrier);
    for (int i = 0; i < n; i++) {
	pthread_join(th[i], NULL);
	total += w[i].count;
	message_free(w[i].m);
	str_release(&w[i].env);
    }
    if (b.j) {
	journal_stats(b.j, jst);
	journal_close(b.j);
    }
    pthread_barrier_destroy(&b.barrier);
    bench_rmtree(dir);
    mem_free(w);
    mem_free(th);
    return total / secs;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

static double bench_median(double *v, int n)
{
    qsort(v, (size_t) n, sizeof(*v), bench_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int bench_list(const char *s, long *v, int max)
{
    int     n = 0;
    char   *end;

    while (*s && n < max) {
	v[n++] = strtol(s, &end, 10);
	if (end == s || v[n - 1] <= 0)
	    msg_fatal("bad list: %s", s);
	s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int     main(int argc, char **argv)
{
    const char *dir = "/var/tmp";
    double  secs = 1.5;
    int     runs = 3, ch;
    long    conc[16] = {1, 8, 64, 256}, sizes[8] = {1024, 102400};
    int     nconc = 4, nsizes = 2;
    char    base[1024];

    msg_progname_set("bench-journal");
    while ((ch = getopt(argc, argv, "d:t:r:c:s:")) != -1) {
	switch (ch) {
	case 'd': dir = optarg; break;
	case 't': secs = atof(optarg); break;
	case 'r': runs = atoi(optarg); break;
	case 'c': nconc = bench_list(optarg, conc, 16); break;
	case 's': nsizes = bench_list(optarg, sizes, 8); break;
	default:
	    fprintf(stderr, "usage: %s [-d dir] [-t seconds] [-r runs] [-c 1,8,64,256]"
		    " [-s 1024,102400]\n", argv[0]);
	    return 2;
	}
    }
    if (runs < 1 || runs > 15 || secs <= 0)
	msg_fatal("bad -r or -t");
    snprintf(base, sizeof(base), "%s/bench-journal.%ld", dir, (long) getpid());
    if (mkdir(base, 0700) < 0)
	msg_fatal("mkdir %s: %m", base);

    double  res[8][16][2][15];
    double  batch[8][16][15];

    for (int r = 0; r < runs; r++)
	for (int s = 0; s < nsizes; s++)
	    for (int c = 0; c < nconc; c++) {
		JOURNAL_STATS st;

		res[s][c][0][r] = bench_cell(base, 0, (size_t) sizes[s], (int) conc[c], secs, &st);
		batch[s][c][r] = st.syncs ? (double) st.records / (double) st.syncs : 0;
		res[s][c][1][r] = bench_cell(base, 1, (size_t) sizes[s], (int) conc[c], secs, NULL);
		fprintf(stderr, "run %d size %ld committers %ld: journal %.0f/s, file %.0f/s\n",
			r + 1, sizes[s], conc[c], res[s][c][0][r], res[s][c][1][r]);
	    }
    bench_rmtree(base);

    printf("durable commits/s, median of %d runs of %.1f s each (dir %s)\n", runs, secs, dir);
    printf("| size | committers | journal msg/s | records/fdatasync | file-per-message msg/s | ratio |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int s = 0; s < nsizes; s++)
	for (int c = 0; c < nconc; c++) {
	    double  jm = bench_median(res[s][c][0], runs);
	    double  fm = bench_median(res[s][c][1], runs);
	    double  bm = bench_median(batch[s][c], runs);

	    printf("| %ld KiB | %ld | %.0f | %.1f | %.0f | %.1fx |\n", sizes[s] / 1024, conc[c],
		   jm, bm, fm, fm > 0 ? jm / fm : 0);
	}
    return 0;
}
