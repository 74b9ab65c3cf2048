/*
 * test_journal_fuzz.c - recovery of a damaged journal never crashes and
 * never invents a message.
 *
 * A journal with a varied history (several recipients, outcomes, hold,
 * release, requeue, delete, done, compaction copies) is written once. Each
 * iteration copies its segments, damages them (flipped bytes, truncation,
 * zeroed ranges, bytes copied from elsewhere, a lost segment, appended
 * garbage), and recovers. Every recovered message must be one that was
 * written, with its exact envelope and content, and every recipient state
 * one that recipient really had. Read-write recoveries must then accept a
 * new append and recover again without any torn tail. Seed: printed; set
 * JOURNAL_FUZZ_SEED to replay, JOURNAL_FUZZ_ITER to change the count.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <time.h>

#include "queue/journal_rec.h"
#include "test_journal_util.h"

#define FZ_MSGS		48

typedef struct FZ_TRUTH {
    MESSAGE *m;
    unsigned states[8];			/* per recipient: bit per state seen */
} FZ_TRUTH;

static FZ_TRUTH fz_truth[FZ_MSGS];

typedef struct FZ_SEG {
    uint64_t segno;
    unsigned char *data;
    size_t  len;
} FZ_SEG;

static FZ_SEG *fz_pristine;
static size_t fz_nseg;

static uint64_t fz_rng;

static uint64_t fz_rand(void)
{
    fz_rng ^= fz_rng << 13;
    fz_rng ^= fz_rng >> 7;
    fz_rng ^= fz_rng << 17;
    return fz_rng;
}

static size_t fz_below(size_t n)
{
    return n ? (size_t) (fz_rand() % n) : 0;
}

/* Write the original journal, remembering what every message went through. */
static void fz_generate(void)
{
    JOURNAL_OPTIONS o = tj_options(8 * 1024, JOURNAL_SYNC_ALWAYS);
    JOURNAL *j = tj_open(&journal_backend_ram, "fz-gen", &o, NULL, NULL);
    JOURNAL_ROUTE rt[1] = {{0, "relay", "[10.0.0.9]"}};
    JOURNAL_WAIT w;

    fz_rng = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < FZ_MSGS; i++) {
	fz_truth[i].m = tj_message(NULL, 1 + fz_below(3), 50 + fz_below(1500), (unsigned) i);
	for (int r = 0; r < 8; r++)
	    fz_truth[i].states[r] = 1u << RCPT_PENDING;
	cr_assert_eq(tj_append_message(j, fz_truth[i].m), 0);
	/* Act on a few earlier messages. */
	for (int k = 0; k < 3; k++) {
	    FZ_TRUTH *t = &fz_truth[fz_below((size_t) i + 1)];
	    size_t  r = fz_below(t->m->nrcpt);
	    const char *id = t->m->queue_id;

	    switch (fz_below(11)) {
	    case 0: case 1:
		cr_assert_eq(tj_append_outcome(j, id, r, RCPT_DEFERRED, "451 try later", 1000 + i), 0);
		t->states[r] |= 1u << RCPT_DEFERRED;
		break;
	    case 2:
		cr_assert_eq(tj_append_outcome(j, id, r, RCPT_SENT, NULL, 0), 0);
		t->states[r] |= 1u << RCPT_SENT;
		break;
	    case 3:			/* half of them owe their notice */
		cr_assert_eq(tj_append_outcome_flags(j, id, r, RCPT_BOUNCED,
			       fz_below(2) ? JOURNAL_NOTICE_OWED : 0, "550 no", 0), 0);
		t->states[r] |= 1u << RCPT_BOUNCED;
		break;
	    case 4:
		cr_assert_eq(tj_append_control(j, id, JOURNAL_OP_HOLD), 0);
		break;
	    case 5:
		cr_assert_eq(tj_append_control(j, id, JOURNAL_OP_RELEASE), 0);
		break;
	    case 6:
		journal_wait_init(&w);
		rt[0].rcpt_index = r;
		journal_append_requeue(j, id, 1, rt, journal_wait_done, &w);
		cr_assert_eq(journal_wait(&w), 0);
		break;
	    case 7:
		if (fz_below(4) == 0)
		    cr_assert_eq(tj_append_control(j, id, JOURNAL_OP_DELETE), 0);
		break;
	    case 8:
		cr_assert_eq(tj_append_noticed(j, id, 1, &r), 0);
		break;
	    case 9:
		cr_assert_eq(tj_append_control(j, id, JOURNAL_OP_WARNED), 0);
		break;
	    default:
		break;
	    }
	}
    }
    journal_close(j);

    /* Keep a copy of every segment. */
    int     err;
    void   *bh = journal_backend_ram.open("fz-gen", &o, &err);
    uint64_t *segnos;

    cr_assert_not_null(bh);
    cr_assert_eq(journal_backend_ram.list(bh, &segnos, &fz_nseg), 0);
    fz_pristine = mem_calloc(fz_nseg, sizeof(*fz_pristine));
    for (size_t i = 0; i < fz_nseg; i++) {
	const char *d;
	size_t  len;
	void   *cookie;

	cr_assert_eq(journal_backend_ram.map(bh, segnos[i], &d, &len, &cookie), 0);
	fz_pristine[i].segno = segnos[i];
	fz_pristine[i].data = mem_memdup(d, len ? len : 1);
	fz_pristine[i].len = len;
	journal_backend_ram.unmap(d, len, cookie);
    }
    mem_free(segnos);
    journal_backend_ram.close(bh);
    journal_ram_purge("fz-gen");
}

static FZ_TRUTH *fz_lookup(const char *qid)
{
    for (int i = 0; i < FZ_MSGS; i++)
	if (strcmp(fz_truth[i].m->queue_id, qid) == 0)
	    return &fz_truth[i];
    return NULL;
}

typedef struct FZ_SEEN {
    char    ids[FZ_MSGS + 1][QUEUE_ID_MAX];
    size_t  n;
    const MESSAGE *extra;		/* appended after a read-write recovery */
    unsigned long iter;
} FZ_SEEN;

static void fz_check(void *ctx, JOURNAL_RECOVERED *it)
{
    FZ_SEEN *seen = ctx;
    MESSAGE *m = it->msg;
    FZ_TRUTH *t = fz_lookup(m->queue_id);
    const MESSAGE *orig = t ? t->m : NULL;

    if (orig == NULL && seen->extra && strcmp(seen->extra->queue_id, m->queue_id) == 0)
	orig = seen->extra;
    cr_assert_not_null(orig, "iteration %lu: invented message %s", seen->iter, m->queue_id);
    for (size_t i = 0; i < seen->n; i++)
	cr_assert_str_neq(seen->ids[i], m->queue_id, "iteration %lu: %s recovered twice",
			  seen->iter, m->queue_id);
    cr_assert(seen->n <= FZ_MSGS);
    memcpy(seen->ids[seen->n++], m->queue_id, QUEUE_ID_MAX);
    cr_assert(tj_message_same(m, orig), "iteration %lu: %s differs from what was written",
	      seen->iter, m->queue_id);
    for (size_t r = 0; r < m->nrcpt; r++) {
	unsigned allowed = t ? t->states[r] : 1u << RCPT_PENDING;

	cr_assert(allowed & (1u << m->rcpt[r].state),
		  "iteration %lu: %s recipient %zu in state %d it never had",
		  seen->iter, m->queue_id, r, m->rcpt[r].state);
	cr_assert(tj_streq(m->rcpt[r].transport, orig->rcpt[r].transport)
		  || tj_streq(m->rcpt[r].transport, "relay"));
	if (it->reason[r])
	    cr_assert(strcmp(it->reason[r], "451 try later") == 0
		      || strcmp(it->reason[r], "550 no") == 0);
    }
    message_free(m);
}

/* Damage a copy of the journal. */
static void fz_mutate(FZ_SEG *v, size_t n)
{
    int     rounds = 1 + (int) fz_below(3);

    for (int k = 0; k < rounds; k++) {
	FZ_SEG *s = &v[fz_below(n)];
	size_t  a, b, len;

	switch (fz_below(10)) {
	case 0: case 1: case 2:		/* flip a few bytes */
	    for (int f = 1 + (int) fz_below(8); f > 0 && s->len; f--)
		s->data[fz_below(s->len)] ^= (unsigned char) (1 + fz_below(255));
	    break;
	case 3: case 4:			/* truncate */
	    s->len = fz_below(s->len + 1);
	    break;
	case 5:				/* zero a range */
	    a = fz_below(s->len + 1);
	    len = fz_below(s->len - a + 1);
	    memset(s->data + a, 0, len);
	    break;
	case 6: {			/* bytes copied from elsewhere */
		FZ_SEG *o = &v[fz_below(n)];

		a = fz_below(s->len + 1);
		b = fz_below(o->len + 1);
		len = fz_below(512);
		if (len > s->len - a)
		    len = s->len - a;
		if (len > o->len - b)
		    len = o->len - b;
		memmove(s->data + a, o->data + b, len);
		break;
	    }
	case 7:				/* a lost segment */
	    s->len = 0;
	    break;
	case 8:				/* garbage after the end */
	    len = 1 + fz_below(200);
	    s->data = mem_realloc(s->data, s->len + len);
	    for (size_t i = 0; i < len; i++)
		s->data[s->len + i] = (unsigned char) fz_rand();
	    s->len += len;
	    break;
	default:			/* one bit */
	    if (s->len)
		s->data[fz_below(s->len)] ^= (unsigned char) (1 << fz_below(8));
	    break;
	}
    }
}

static void fz_store(const JOURNAL_BACKEND *be, const char *dir, FZ_SEG *v, size_t n)
{
    JOURNAL_OPTIONS o = tj_options(8 * 1024, JOURNAL_SYNC_OFF);
    int     err;
    void   *bh = be->open(dir, &o, &err);

    cr_assert_not_null(bh);
    for (size_t i = 0; i < n; i++) {
	struct iovec iov = {v[i].data, v[i].len};

	cr_assert_eq(be->create(bh, v[i].segno, v[i].len), 0);
	if (v[i].len)
	    cr_assert_eq(be->write(bh, v[i].segno, 0, &iov, 1), 0);
	cr_assert_eq(be->truncate(bh, v[i].segno, v[i].len), 0);
    }
    be->close(bh);
}

static void fz_iteration(unsigned long iter, bool use_fs, bool rdwr)
{
    FZ_SEG *v = mem_calloc(fz_nseg, sizeof(*v));
    char   *dir = use_fs ? tj_tmpdir() : mem_strdup("fz-iter");
    const JOURNAL_BACKEND *be = use_fs ? &journal_backend_fs : &journal_backend_ram;
    JOURNAL_OPTIONS o = tj_options(8 * 1024, JOURNAL_SYNC_OFF);
    JOURNAL_RECOVERY_STATS st;
    FZ_SEEN seen;
    JOURNAL *j;
    STR     sub = STR_INIT;

    for (size_t i = 0; i < fz_nseg; i++) {
	v[i] = fz_pristine[i];
	v[i].data = mem_memdup(fz_pristine[i].data, fz_pristine[i].len ? fz_pristine[i].len : 1);
    }
    fz_mutate(v, fz_nseg);
    if (use_fs) {				/* the journal lives in a subdirectory */
	str_printf(&sub, "%s/journal", dir);
	fz_store(be, STR_DATA(&sub), v, fz_nseg);
    } else {
	str_puts(&sub, dir);
	fz_store(be, dir, v, fz_nseg);
    }
    if (!rdwr)
	o.flags = JOURNAL_RDONLY;
    memset(&seen, 0, sizeof(seen));
    seen.iter = iter;
    j = journal_open(be, STR_DATA(&sub), &o);
    cr_assert_not_null(j);
    cr_assert_eq(journal_recover(j, fz_check, &seen, &st), 0);
    cr_assert_eq(st.messages, seen.n);
    if (rdwr) {
	/* The cut journal takes appends and then reads back clean. */
	MESSAGE *m = tj_message(NULL, 1, 300, 77);
	size_t  before = seen.n;

	cr_assert_eq(tj_append_message(j, m), 0);
	journal_close(j);
	memset(&seen, 0, sizeof(seen));
	seen.iter = iter;
	seen.extra = m;
	o.flags = JOURNAL_RDONLY;
	j = journal_open(be, STR_DATA(&sub), &o);
	cr_assert_not_null(j);
	cr_assert_eq(journal_recover(j, fz_check, &seen, &st), 0);
	cr_assert_eq(st.torn, 0, "iteration %lu: torn tail after a read-write recovery", iter);
	cr_assert_eq(seen.n, before + 1, "iteration %lu: %zu then %zu messages", iter, before,
		     seen.n);
	message_free(m);
    }
    journal_close(j);
    if (use_fs)
	tj_rmtree(dir);
    else
	journal_ram_purge(dir);
    for (size_t i = 0; i < fz_nseg; i++)
	mem_free(v[i].data);
    mem_free(v);
    mem_free(dir);
    str_release(&sub);
}

Test(journal_fuzz, damaged_journal_recovers_safely, .timeout = 300)
{
    const char *env = getenv("JOURNAL_FUZZ_SEED");
    const char *nenv = getenv("JOURNAL_FUZZ_ITER");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t) time(NULL) ^ (uint64_t) getpid();
    unsigned long iters = nenv ? strtoul(nenv, NULL, 0) : 3000;
    JOURNAL_RECOVERY_STATS st;

    tj_log_init(1);
    fz_generate();
    cr_assert_gt(fz_nseg, 4, "want several segments, got %zu", fz_nseg);
    fprintf(stderr, "# journal fuzz: seed %llu (JOURNAL_FUZZ_SEED), %lu iterations, %zu segments\n",
	    (unsigned long long) seed, iters, fz_nseg);

    /* The undamaged copy recovers exactly, with nothing reported. */
    fz_rng = seed | 1;
    {
	FZ_SEEN seen;
	JOURNAL_OPTIONS o = tj_options(8 * 1024, JOURNAL_SYNC_OFF);

	fz_store(&journal_backend_ram, "fz-clean", fz_pristine, fz_nseg);
	o.flags = JOURNAL_RDONLY;
	memset(&seen, 0, sizeof(seen));
	JOURNAL *j = journal_open(&journal_backend_ram, "fz-clean", &o);

	cr_assert_eq(journal_recover(j, fz_check, &seen, &st), 0);
	cr_assert_eq(st.torn + st.damaged + st.lost_records, 0);
	cr_assert_gt(seen.n, 10);
	journal_close(j);
	journal_ram_purge("fz-clean");
    }
    for (unsigned long i = 0; i < iters; i++) {
	fz_rng = (seed + i * 0x9E3779B97F4A7C15ULL) | 1;
	pthread_mutex_lock(&tj_log_lock);
	str_reset(&tj_log);
	pthread_mutex_unlock(&tj_log_lock);
	fz_iteration(i, i % 25 == 0, i % 5 == 0);
    }
    for (int i = 0; i < FZ_MSGS; i++)
	message_free(fz_truth[i].m);
    for (size_t i = 0; i < fz_nseg; i++)
	mem_free(fz_pristine[i].data);
    mem_free(fz_pristine);
}
