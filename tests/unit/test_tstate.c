/* Tests for runtime/hot/tstate.c's counter stripes: totals over the stripes are
 * exact, and reading or freeing a probe's counters touches only stripes a
 * thread was given (issue 16: the report of 10,000 probes faulted in a page
 * of every untouched stripe — of the launcher's shared file, where each one
 * is allocated).  Pages touched are seen with mincore(2): a read of an
 * untouched page of the MAP_NORESERVE region maps one (the zero page). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quiesce.h"
#include "tstate.h"

#define N_IDS 10000

/* Pages of stripe S's first N_IDS counters that are mapped in. */
static size_t resident(int s)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *lo = sp_stripes + (size_t)s * SP_STRIPE_BYTES;
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
