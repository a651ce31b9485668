/* latency — see latency.h. */
#include "latency.h"
#include "tstate.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t used[SP_MAX_LAT];

/* Histogram SLOT of stripe S (NULL: S's memory is not mapped). */
static struct sp_lat *lat(int s, uint32_t slot)
{
	char *c = sp_stripe(s);
	return c ? (struct sp_lat *)(void *)sp_stripe_lat(c) + slot : NULL;
}

long sp_latency_alloc(void)
{
	long slot = -ENOSPC;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < SP_MAX_LAT; i++)
		if (!used[i]) {
			used[i] = 1;
			slot = i;
			break;
		}
	pthread_mutex_unlock(&lock);
	return slot;
}

void sp_latency_free(uint32_t slot)
{
	/* quiesced by the caller: nobody records into SLOT any more */
	for (int s = sp_tstate_next_stripe(-1); s < SP_N_SLOTS; s = sp_tstate_next_stripe(s)) {
		struct sp_lat *l = lat(s, slot);
		if (l)
			memset(l, 0, sizeof(*l));
	}
	pthread_mutex_lock(&lock);
	used[slot] = 0;
	pthread_mutex_unlock(&lock);
}

uint64_t sp_latency_now(void)
{
	struct timespec ts;
	/* called inside dispatch (a latency probe's entry): libc's
	 * clock_gettime may be probed too, and this call is not the
	 * application's (it counted as a missed hit on every entry) */
	sp_tls.runtime++;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sp_tls.runtime--;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Exclusive stripes: one unlocked instruction, so a signal handler's
 * record made in between is not overwritten (sigatomic.h). */
static void add(uint64_t *p, uint64_t v, int shared)
{
	if (shared)
		__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
	else
		sp_sig_xadd(p, v);
}

/* *P = V unless *P already holds a better extreme (LOWER: a smaller
 * nonzero value; else a larger one), whoever else writes it meanwhile. */
static void extreme(uint64_t *p, uint64_t v, int shared, bool lower)
{
	uint64_t m = __atomic_load_n(p, __ATOMIC_RELAXED);
	while (lower ? (m == 0 || v < m) : v > m) {
		if (shared ? __atomic_compare_exchange_n(p, &m, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
			   : sp_sig_cas(p, m, v))
			return;
		if (!shared)
			m = __atomic_load_n(p, __ATOMIC_RELAXED);
	}
}

void sp_latency_record(int stripe, uint32_t slot, uint64_t ns)
{
	struct sp_lat *l = lat(stripe, slot);   /* the thread's: mapped */
	int shared = stripe == SP_SHARED_SLOT;
	int b = ns ? 64 - __builtin_clzll(ns) : 0;     /* ns in [2^(b-1), 2^b) */
	if (b >= SP_LAT_BUCKETS)
		b = SP_LAT_BUCKETS - 1;
	add(&l->bucket[b], 1, shared);
	add(&l->count, 1, shared);
	add(&l->sum_ns, ns, shared);
	extreme(&l->min_ns_plus1, ns + 1, shared, true);
	extreme(&l->max_ns, ns, shared, false);
}

void sp_latency_sum(const char *stripe, uint32_t slot, struct sp_lat *out)
{
	memset(out, 0, sizeof(*out));
	if (stripe) {
		const struct sp_lat *l = (const struct sp_lat *)(const void *)stripe + slot;
		for (int b = 0; b < SP_LAT_BUCKETS; b++)
			out->bucket[b] += __atomic_load_n(&l->bucket[b], __ATOMIC_RELAXED);
		out->count += __atomic_load_n(&l->count, __ATOMIC_RELAXED);
		out->sum_ns += __atomic_load_n(&l->sum_ns, __ATOMIC_RELAXED);
		uint64_t m = __atomic_load_n(&l->min_ns_plus1, __ATOMIC_RELAXED);
		if (m && (out->min_ns_plus1 == 0 || m < out->min_ns_plus1))
			out->min_ns_plus1 = m;
		uint64_t x = __atomic_load_n(&l->max_ns, __ATOMIC_RELAXED);
		if (x > out->max_ns)
			out->max_ns = x;
	}
}

void sp_latency_merge(struct sp_lat *dst, const struct sp_lat *src)
{
	for (int b = 0; b < SP_LAT_BUCKETS; b++)
		dst->bucket[b] += src->bucket[b];
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
	if (src->min_ns_plus1 && (!dst->min_ns_plus1 || src->min_ns_plus1 < dst->min_ns_plus1))
		dst->min_ns_plus1 = src->min_ns_plus1;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

void sp_latency_read(uint32_t slot, struct sp_lat *out)
{
	/* only the stripes threads were given: the others are zeros, and
	 * reading them would fault in a page of each */
	memset(out, 0, sizeof(*out));
	for (int s = sp_tstate_next_stripe(-1); s < SP_N_SLOTS; s = sp_tstate_next_stripe(s)) {
		char *c = sp_stripe(s);
		struct sp_lat one;
		sp_latency_sum(c ? sp_stripe_lat(c) : NULL, slot, &one);
		sp_latency_merge(out, &one);
	}
}

void sp_latency_atfork_child(void)
{
	/* the histograms start from zero with the stripes' memory
	 * (sp_stripemem_atfork_child) */
	pthread_mutex_init(&lock, NULL);
}
