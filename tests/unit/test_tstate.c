/* Tests for runtime/hot/tstate.c's counter stripes: totals over the stripes are
 * exact, and reading or freeing a probe's counters touches only stripes a
 * thread was given (issue 16: the report of 10,000 probes faulted in a page
 * of every untouched stripe — of the launcher's shared file, where each one
 * is allocated).  Pages touched are seen with mincore(2): a read of an
 * untouched page of the MAP_NORESERVE region maps one (the zero page).
 * A thread that ends by a raw exit (no key destructor) gives its stripe
 * or seat back once one is needed, its counts kept in the totals.  A
 * signal's hit in the middle of a thread's claim publishes in the record
 * the thread ends up with, and the claim leaves no other one taken. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "claim_trap.h"
#include "fastcount.h"
#include "quiesce.h"
#include "stripes_fill.h"
#include "tstate.h"

#define N_IDS 10000

/* Pages of stripe S's first N_IDS counters that are mapped in (none
 * while its memory is not mapped at all). */
static size_t resident(int s)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *lo = sp_stripe(s);
	if (!lo)
		return 0;
	size_t len = (N_IDS * sizeof(struct sp_count) + page - 1) / page * page;
	unsigned char vec[len / page];
	cr_assert(mincore(lo, len, vec) == 0);
	size_t n = 0;
	for (size_t i = 0; i < len / page; i++)
		n += vec[i] & 1;
	return n;
}

static uint32_t ids[N_IDS];

static void alloc_ids(void)
{
	cr_assert(sp_tstate_init() == 0);
	for (int i = 0; i < N_IDS; i++) {
		long id = sp_tstate_alloc_id();
		cr_assert(id >= 0);
		ids[i] = (uint32_t)id;
	}
}

Test(tstate, reads_only_claimed_stripes)
{
	alloc_ids();
	int mine = sp_tstate_stripe();
	for (int i = 0; i < N_IDS; i++)
		sp_count_add(mine, ids[i], SP_HITS);
	for (int i = 0; i < N_IDS; i++) {
		uint64_t c[SP_N_COUNTERS];
		sp_tstate_read(ids[i], c);
		cr_assert(c[SP_HITS] == 1 && c[SP_MISSED] == 0, "id %u: %lu hits", ids[i], (unsigned long)c[SP_HITS]);
	}
	cr_expect(resident(SP_SHARED_SLOT) == 0, "the report read %zu pages of the shared stripe, never given out",
		  resident(SP_SHARED_SLOT));
	cr_expect(resident(mine + 1) == 0, "the report read %zu pages of stripe %d, never claimed",
		  resident(mine + 1), mine + 1);
	/* only the stripes claimed have memory (stripemem.h): address space
	 * for all of them was over 800 MiB, and RLIMIT_AS programs failed */
	cr_expect(sp_stripe(mine) != NULL && sp_stripe(SP_SHARED_SLOT) != NULL);
	for (int s = mine + 1; s < SP_EXCL_SLOTS; s++)
		cr_expect(sp_stripe(s) == NULL, "stripe %d, never claimed, is mapped", s);
	sp_quiesce();
	for (int i = 0; i < N_IDS; i++)
		sp_tstate_free_id(ids[i]);
	cr_expect(resident(SP_SHARED_SLOT) == 0, "freeing the ids touched %zu pages of the shared stripe",
		  resident(SP_SHARED_SLOT));
}

/* SP_EXCL_SLOTS threads hold every exclusive stripe; one more gets the
 * shared stripe, whose counts the totals must then include. */
static pthread_barrier_t all_counted, may_leave;

static void *holder(void *arg)
{
	int s = sp_tstate_stripe();
	sp_count_add(s, ids[0], SP_HITS);
	*(int *)arg = s;
	pthread_barrier_wait(&all_counted);
	pthread_barrier_wait(&may_leave);
	return NULL;
}

Test(tstate, shared_stripe_counted_once_given)
{
	alloc_ids();
	int n = SP_EXCL_SLOTS + 1;   /* the test's own thread has none yet */
	pthread_t th[SP_EXCL_SLOTS + 1];
	int got[SP_EXCL_SLOTS + 1];
	pthread_barrier_init(&all_counted, NULL, (unsigned)n + 1);
	pthread_barrier_init(&may_leave, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++)
		cr_assert(pthread_create(&th[i], NULL, holder, &got[i]) == 0);
	pthread_barrier_wait(&all_counted);
	int shared = 0;
	for (int i = 0; i < n; i++)
		shared += got[i] == SP_SHARED_SLOT;
	cr_expect(shared == 1, "%d threads on the shared stripe, want 1", shared);
	uint64_t c[SP_N_COUNTERS];
	sp_tstate_read(ids[0], c);
	cr_expect(c[SP_HITS] == (uint64_t)n, "%lu hits over the stripes, want %d", (unsigned long)c[SP_HITS], n);
	pthread_barrier_wait(&may_leave);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

/* ------------------------------------------------------------ gone by a raw exit */

/* What a thread that counted one hit of ids[0] was given. */
struct given {
	int stripe, seq;
	bool fast;   /* the inline count's stripe */
};

static void count_one(void)
{
	sp_count_add(sp_tstate_stripe(), ids[0], SP_HITS);
}

/* Counts one hit, then ends past libc, outside every dispatch: no key
 * destructor gives its stripe or seat back. */
static void *raw_exiter(void *arg)
{
	struct given *g = arg;
	count_one();
	*g = (struct given){ sp_tls.slot - 1, sp_tstate_my_seq(), sp_tls.fast != NULL };
	syscall(SYS_exit, 0);
	return NULL;
}

/* One such thread, joined.  On a stack of the test's (the same each time):
 * glibc would hand a stack of its cache to the next thread with the
 * descriptor the raw exit left as it was, key values included, which
 * ASan's own thread state does not survive (see the test of that case
 * below). */
static struct given gone_thread(void)
{
	static char stack[256 * 1024] __attribute__((aligned(4096)));
	struct given g = { -1, -1, false };
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstack(&a, stack, sizeof(stack));
	pthread_t t;
	cr_assert(pthread_create(&t, &a, raw_exiter, &g) == 0);
	pthread_join(t, NULL);   /* the kernel clears its tid: joinable */
	pthread_attr_destroy(&a);
	return g;
}

static uint64_t hits(void)
{
	uint64_t c[SP_N_COUNTERS];
	sp_tstate_read(ids[0], c);
	return c[SP_HITS];
}

static void alloc_one_id(void)
{
	cr_assert(sp_tstate_init() == 0);
	long id = sp_tstate_alloc_id();
	cr_assert(id >= 0);
	ids[0] = (uint32_t)id;
}

/* 200 threads that end that way, one after another: each after the 128th
 * takes a stripe one of them left, with the inline count, and the counts
 * of every one stay in the totals (kept in the stripe, not zeroed nor
 * added twice). */
Test(tstate, stripe_of_a_thread_gone_raw_is_reclaimed)
{
	alloc_one_id();
	int n = SP_EXCL_SLOTS + 72, beyond = 0;
	for (int i = 0; i < n; i++) {
		struct given g = gone_thread();
		beyond += g.stripe < 0 || g.stripe >= SP_EXCL_SLOTS;
	}
	cr_expect(beyond == 0, "%d of %d threads found no exclusive stripe", beyond, n);
	struct given g = gone_thread();
	cr_expect(g.stripe >= 0 && g.stripe < SP_EXCL_SLOTS, "the next thread's stripe: %d", g.stripe);
	cr_expect(g.fast || !sp_fastcount_thread_ok(), "the next thread has no inline count");
	cr_expect(sp_tstate_slots_used() <= SP_EXCL_SLOTS);
	cr_expect(hits() == (uint64_t)n + 1, "%lu hits over the stripes, want %d", (unsigned long)hits(), n + 1);
}

/* With every exclusive stripe held by a thread that stays, more threads
 * than seats end that way one after another: each takes a seat one of
 * them left; then as many seats as ever are free for threads that stay. */
Test(tstate, seat_of_a_thread_gone_raw_is_reclaimed, .timeout = 60)
{
	alloc_one_id();
	sp_tstate_limit_seats(SP_BOOT_SEATS);   /* so that threads can fill them */
	static struct stripes_fill stay, seated;
	cr_assert(stripes_fill(&stay, count_one, false), "%d threads did not take every exclusive stripe", stay.n);
	int n = SP_BOOT_SEATS + 8, seatless = 0;
	for (int i = 0; i < n; i++) {
		struct given g = gone_thread();
		seatless += g.seq < SP_SEAT0;
	}
	cr_expect(seatless == 0, "%d of %d threads found no seat", seatless, n);
	/* the last of STAY holds one seat; the next thread after the
	 * others is the first without one */
	cr_expect(stripes_fill(&seated, count_one, true));
	cr_expect(seated.n == SP_BOOT_SEATS, "%d threads took the seats left, want %d", seated.n - 1,
		  SP_BOOT_SEATS - 1);
	cr_expect(hits() == (uint64_t)(stay.n + n + seated.n), "%lu hits over the stripes, want %d",
		  (unsigned long)hits(), stay.n + n + seated.n);
	stripes_unfill(&seated);
	stripes_unfill(&stay);
}

static void *idle(void *arg)
{
	return arg;
}

/* A thread gone by a raw exit leaves its key value (its stripe) in its
 * descriptor, which glibc's stack cache gives a later thread as it is:
 * that thread's end, without a hit of its own, gives back nothing, not
 * the stripe another thread took since. */
Test(tstate, key_value_left_by_a_thread_gone_raw_gives_back_nothing, .timeout = 60)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_skip_test("ASan's own thread state does not survive a descriptor reused after a raw exit");
#endif
	alloc_one_id();
	struct given gone = { -1, -1, false };
	pthread_t t;
	cr_assert(pthread_create(&t, NULL, raw_exiter, &gone) == 0);   /* glibc's stack: cached */
	pthread_join(t, NULL);
	cr_assert(gone.stripe >= 0 && gone.stripe < SP_EXCL_SLOTS);
	/* smaller stacks than that one's: it stays in the cache; the last
	 * exclusive stripe taken is the gone thread's, reclaimed */
	static struct stripes_fill stay;
	cr_assert(stripes_fill(&stay, count_one, false));
	cr_assert(pthread_create(&t, NULL, idle, NULL) == 0);   /* on the cached stack */
	pthread_join(t, NULL);
	struct given next = gone_thread();
	cr_expect(next.stripe == SP_SHARED_SLOT, "a new thread was given stripe %d, which a thread that stays holds",
		  next.stripe);
	stripes_unfill(&stay);
}

/* A vfork child's first hit, on a thread that has none yet, claims no
 * record: the tid it would name is gone once it exits, while the thread
 * whose TLS it borrowed would go on using the record (a claim could give
 * it to another thread under it).  The thread's own first hit claims one
 * in its own name. */
static void *vforker(void *arg)
{
	int *owner_ok = arg;
	pid_t child = vfork();
	if (child == 0) {
		count_one();
		_exit(0);
	}
	waitpid(child, NULL, 0);
	int before = sp_tls.slot;
	count_one();
	int seq = sp_tstate_my_seq();
	*owner_ok = before == 0 && seq >= 0 && seq != SP_SHARED_SLOT &&
		    sp_tstate_owner_tid(atomic_load(&sp_tstate_rec(seq)->owner)) == (int32_t)syscall(SYS_gettid);
	return NULL;
}

Test(tstate, vfork_child_claims_nothing_for_its_thread)
{
	alloc_one_id();
	int owner_ok = 0;
	pthread_t t;
	cr_assert(pthread_create(&t, NULL, vforker, &owner_ok) == 0);
	pthread_join(t, NULL);
	cr_expect(owner_ok, "the thread's record was claimed by its vfork child");
	cr_expect(hits() == 2, "%lu hits, want 2", (unsigned long)hits());
}

/* More threads alive than SP_BOOT_SEATS beyond the 128th: each still has a
 * seat of its own (a detach can ask each one), up to STRIPES_FILL_MAX. */
Test(tstate, threads_beyond_the_1152nd_have_seats, .timeout = 60)
{
	alloc_one_id();
	static struct stripes_fill many;
	cr_expect(!stripes_fill(&many, count_one, true), "the %dth thread found no seat", many.n);
	cr_expect(many.n == STRIPES_FILL_MAX && many.last >= SP_SEAT0 + SP_BOOT_SEATS, "%d threads, the last's record %d",
		  many.n, many.last);
	cr_expect(hits() == (uint64_t)many.n, "%lu hits over the stripes, want %d", (unsigned long)hits(), many.n);
	stripes_unfill(&many);
}

/* Pages of the seats' mapped table in memory (SIZE_MAX: unknown).
 * Without assertions: run in a fork child. */
static size_t seqs_resident(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (size_t)(SP_SHARED_SEATS - SP_BOOT_SEATS) * sizeof(struct sp_slot_seq);
	len = (len + page - 1) / page * page;
	unsigned char *vec = malloc(len / page);
	if (!vec || !sp_more_seqs || mincore(sp_more_seqs, len, vec) != 0)
		return SIZE_MAX;
	size_t n = 0;
	for (size_t i = 0; i < len / page; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

/* With seats beyond the first SP_BOOT_SEATS given, a fork child's reset of
 * the records touches only those: the mapped table's other pages (almost
 * all of its 256 MiB) stay unallocated. */
Test(tstate, fork_child_touches_only_seats_given, .timeout = 60)
{
	alloc_one_id();
	static struct stripes_fill many;
	stripes_fill(&many, count_one, true);
	cr_assert(sp_more_seqs && sp_tstate_seqs_used() > SP_SEAT0 + SP_BOOT_SEATS, "no seat beyond the first %d given",
		  SP_BOOT_SEATS);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t given = (size_t)(sp_tstate_seqs_used() - SP_SEAT0 - SP_BOOT_SEATS) * sizeof(struct sp_slot_seq);
	size_t want = (given + page - 1) / page + 1;   /* + 1: the table need not start a page */
	pid_t child = fork();
	if (child == 0) {
		sp_tstate_atfork_child();
		_exit(seqs_resident() <= want ? 0 : 1);
	}
	int st = 0;
	cr_assert(waitpid(child, &st, 0) == child);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child touched pages of seats never given");
	stripes_unfill(&many);
}

/* ------------------------------------------------------------ a claim interrupted */

static int handler_seq = -2;   /* the record the signal's hit published in */
static bool fired;             /* the signal came inside the claim */

static void hit_in_claim(void)
{
	count_one();
	handler_seq = sp_tstate_my_seq();
}

static void *trapped_claimer(void *arg)
{
	struct given *g = arg;
	claim_trap_arm(hit_in_claim);
	count_one();   /* its claim asks the tid in a signal that hits */
	*g = (struct given){ sp_tls.slot - 1, sp_tstate_my_seq(), sp_tls.fast != NULL };
	fired = claim_trap_fired;
	return NULL;
}

/* The signal's hit comes after the claim took a stripe and before it
 * published it: the hit's own claim publishes one, which the thread
 * keeps (not the shared stripe's count, where a detach could not ask
 * it); the stripe the interrupted claim took goes back: every record's
 * owner is no thread once the thread ended (its key destructor gave its
 * own back). */
Test(tstate, a_hit_inside_the_claim_publishes_in_the_threads_record)
{
	if (!claim_trap_available())
		cr_skip_test("no seccomp filter here: the signal cannot be placed inside the claim");
	alloc_one_id();
	struct given g = { -1, -1, false };
	pthread_t t;
	cr_assert(pthread_create(&t, NULL, trapped_claimer, &g) == 0);
	pthread_join(t, NULL);
	cr_assert(fired, "the signal did not come inside the claim");
	cr_expect(g.seq >= 0 && g.seq != SP_SHARED_SLOT && handler_seq == g.seq,
		  "the thread's record %d, the signal's hit published in %d", g.seq, handler_seq);
	cr_expect(sp_tstate_next_stripe(SP_EXCL_SLOTS - 1) == SP_N_SLOTS, "the shared stripe was given");
	cr_expect(hits() == 2, "%lu hits, want 2", (unsigned long)hits());
	for (int k = 0; k < sp_tstate_seqs_used(); k++)
		cr_expect(sp_tstate_owner_tid(atomic_load(&sp_tstate_rec(k)->owner)) == 0,
			  "record %d is still owned by %d", k, sp_tstate_owner_tid(atomic_load(&sp_tstate_rec(k)->owner)));
}

/* ------------------------------------------------------------ after the key destructor */

/* A key of the test's whose destructor counts a hit after the runtime's
 * own ran (glibc calls them in the order of their keys, not of their
 * creation: the first call sets the value again, and the destructors of
 * values set are called once more). */
static pthread_key_t late_key;
static struct given late_given[3 * 64];
static int late_n;

static void late_count(void *v)
{
	if (v == &late_key) {
		pthread_setspecific(late_key, &late_n);
		return;
	}
	count_one();
	late_given[late_n] = (struct given){ sp_tls.slot - 1, sp_tstate_my_seq(), sp_tls.fast != NULL };
}

static void *ends_counting_late(void *arg)
{
	(void)arg;
	count_one();
	pthread_setspecific(late_key, &late_key);
	return NULL;
}

/* With 64 seats, three times as many threads one after another each make
 * a hit after their key destructor ran: each one's is in a seat of its
 * own (the shared stripe for its counts: its exclusive stripe went back),
 * the seats of the threads ended before it given back as it needs one;
 * every count is in the totals. */
Test(tstate, hits_after_the_key_destructor_have_seats_given_back_once_gone, .timeout = 60)
{
	alloc_one_id();
	sp_tstate_limit_seats(64);
	cr_assert_eq(pthread_key_create(&late_key, late_count), 0);
	int n = (int)(sizeof(late_given) / sizeof(late_given[0])), seatless = 0;
	for (late_n = 0; late_n < n; late_n++) {
		late_given[late_n] = (struct given){ -1, -1, false };
		pthread_t t;
		cr_assert(pthread_create(&t, NULL, ends_counting_late, NULL) == 0);
		pthread_join(t, NULL);
		struct given g = late_given[late_n];
		seatless += g.stripe != SP_SHARED_SLOT || g.seq < SP_SEAT0 || g.fast;
	}
	cr_expect(seatless == 0, "%d of %d threads' hits after their key destructor had no seat (the first: %d, %d)",
		  seatless, n, late_given[0].stripe, late_given[0].seq);
	cr_expect(sp_tstate_seqs_used() <= SP_SEAT0 + 64);
	cr_expect(hits() == 2 * (uint64_t)n, "%lu hits over the stripes, want %d", (unsigned long)hits(), 2 * n);
}

/* ------------------------------------------------------------ claims under a storm of signals */

/* Threads make their first hit while another thread sends them signals
 * as fast as it can, whose handler hits too: wherever a signal comes in
 * a claim, every hit is counted once, none in the shared stripe (fewer
 * threads than exclusive stripes), and once all ended no record is left
 * owned (a claim interrupted gave back what it took). */
static atomic_int storm_target;          /* the tid signalled, 0: none */
static atomic_bool storm_over;
static atomic_long storm_handler_hits;

static void storm_handler(int sig)
{
	(void)sig;
	count_one();
	atomic_fetch_add(&storm_handler_hits, 1);
}

static void *storm_sender(void *arg)
{
	(void)arg;
	pid_t pid = getpid();
	while (!atomic_load(&storm_over)) {
		int tid = atomic_load(&storm_target);
		if (tid)
			syscall(SYS_tgkill, pid, tid, SIGUSR1);
	}
	return NULL;
}

static void *storm_claimer(void *arg)
{
	(void)arg;
	atomic_store(&storm_target, (int)syscall(SYS_gettid));
	for (int i = 0; i < 200; i++)   /* signals arrive from here on */
		__asm__ volatile("pause");
	count_one();                    /* the claim, unless a handler's hit made it */
	atomic_store(&storm_target, 0);
	/* a signal sent before that and still on its way would hit after
	 * the key destructor (a seat, rightly: not this test's) */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	return NULL;
}

Test(tstate, claims_under_a_storm_of_signals, .timeout = 60)
{
	alloc_one_id();
	signal(SIGUSR1, storm_handler);
	pthread_t sender;
	cr_assert(pthread_create(&sender, NULL, storm_sender, NULL) == 0);
	int n = 400;
	for (int i = 0; i < n; i++) {
		pthread_t t;
		cr_assert(pthread_create(&t, NULL, storm_claimer, NULL) == 0);
		pthread_join(t, NULL);
	}
	atomic_store(&storm_over, true);
	pthread_join(sender, NULL);
	cr_expect(hits() == (uint64_t)n + (uint64_t)atomic_load(&storm_handler_hits), "%lu hits, want %d + %ld",
		  (unsigned long)hits(), n, atomic_load(&storm_handler_hits));
	cr_expect(sp_tstate_next_stripe(SP_EXCL_SLOTS - 1) == SP_N_SLOTS, "the shared stripe was given");
	for (int k = 0; k < sp_tstate_seqs_used(); k++)
		cr_expect(sp_tstate_owner_tid(atomic_load(&sp_tstate_rec(k)->owner)) == 0, "record %d is still owned",
			  k);
}
