/* bt_map — the maps of an in-process bpftrace program (see bt.h).
 *
 * One open-addressing table per map, its whole capacity reserved at
 * compile time (mmap, MAP_NORESERVE: pages are touched only as keys come),
 * so a hit never allocates.  Keys are fixed-size byte strings (8 bytes per
 * integer, BT_STR zero-padded bytes per string), compared with memcmp.
 * A slot's state word goes empty -> being written -> live, by CAS, so any
 * number of threads insert without a lock; values are updated with atomic
 * adds and CAS loops, so concurrent hits lose nothing.  A hit that finds
 * its key's slot being written waits for the writer (busy_wait below).  A deleted slot
 * keeps its key and comes back live for the same key (the @start[tid]
 * pattern reuses its tids' slots).  Past BT_MAP_CAP keys an update is
 * refused and counted in `dropped`, which the output reports.  A map
 * without keys is the same table with one slot and an empty key.
 */
#include "bt.h"
#include "rawsys.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { S_EMPTY, S_BUSY, S_LIVE, S_DEAD };
/* Being written: S_BUSY with the writer's thread pointer above it (one
 * instruction to read, no system call: a deleted key's slot is taken again
 * on every hit of the @start[tid] pattern), so that a hit finding it knows
 * whether it is its own; GAVE_UP added once a hit stopped waiting for
 * that writer (busy_wait). */
#define STATE_BITS 8
#define GAVE_UP 0x80u
static inline bool is_busy(uint64_t s)
{
	return (s & ((1u << STATE_BITS) - 1) & ~GAVE_UP) == S_BUSY;
}

static inline uint64_t busy_self(void)
{
	return S_BUSY | (uint64_t)sp_thread_pointer() << STATE_BITS;
}

static int64_t now_ms(void)
{
	struct timespec t = { 0, 0 };
	sp_syscall6(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&t, 0, 0, 0, 0);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Wait until the slot's state word ST is no longer BUSY, the value read
 * while its key was being written.  The writer is a few instructions from
 * done, but it may be preempted there (other threads on its core, a page
 * fault on the value): under load that is a time slice, not a few spins,
 * and giving up after a spin dropped updates to a map that was not full
 * (the first hits of threads starting together: e2e/bt_compiled).  False,
 * the update dropped, only where the write cannot end while we wait: it is
 * this thread's own (a signal handler's hit inside it, or a write its
 * thread left by a fault, guard.h), or it outlasted BT_MAP_BUSY_WAIT_MS
 * (another thread's left by a fault; the slot is then marked, so that the
 * next hits drop at once, and a writer that was only slow still ends it). */
static bool busy_wait(_Atomic uint64_t *st, uint64_t busy)
{
	if (busy & GAVE_UP)
		return false;
	for (int spin = 0; spin < 1000; spin++) {
		if (atomic_load_explicit(st, memory_order_acquire) != busy)
			return true;
		__builtin_ia32_pause();
	}
	if (busy == busy_self())
		return false;
	int64_t until = now_ms() + BT_MAP_BUSY_WAIT_MS;
	do {
		sp_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);   /* the writer may be waiting for this core */
		if (atomic_load_explicit(st, memory_order_acquire) != busy)
			return true;
	} while (now_ms() <= until);
	uint64_t e = busy;
	atomic_compare_exchange_strong(st, &e, busy | GAVE_UP);
	return !is_busy(e);   /* it ended just now: go on */
}

static size_t val_words(const struct bt_map *m)
{
	switch (m->mk) {
	case BM_STR: return BT_STR / 8;
	case BM_STACK: return 1 + (size_t)m->val_depth;
	case BM_AVG: case BM_STATS: return 2;
	case BM_HIST: return BT_HIST_BUCKETS;
	case BM_LHIST: return (size_t)((m->lmax - m->lmin) / m->lstep) + 2;
	default: return 1;
	}
}

int bt_map_alloc(struct bt_map *m)
{
	m->val_words = val_words(m);
	m->key_size = (m->key_size + 7) & ~(size_t)7;
	m->cap = m->nkeys ? 2 * BT_MAP_CAP : 1;
	m->slot_size = 8 + m->key_size + m->val_words * 8;
	void *p = mmap(NULL, m->cap * m->slot_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	m->slots = p;
	return 0;
}

void bt_map_free(struct bt_map *m)
{
	if (m->slots)
		munmap(m->slots, m->cap * m->slot_size);
	m->slots = NULL;
}

static inline _Atomic uint64_t *state_of(const struct bt_map *m, size_t i)
{
	return (_Atomic uint64_t *)(void *)(m->slots + i * m->slot_size);
}

static inline unsigned char *key_of(const struct bt_map *m, size_t i)
{
	return m->slots + i * m->slot_size + 8;
}

static inline uint64_t *val_of(const struct bt_map *m, size_t i)
{
	return (uint64_t *)(void *)(m->slots + i * m->slot_size + 8 + m->key_size);
}

/* Word loops, not the libc string functions: this file is built
 * -mgeneral-regs-only for the evaluator's fast path, and libc's use
 * vector registers (sizes are multiples of 8). */
static void copy_words(void *d, const void *s, size_t n)
{
	uint64_t *dw = d;
	const uint64_t *sw = s;
	for (size_t i = 0; i < n / 8; i++)
		dw[i] = sw[i];
}

static void zero_words(void *d, size_t n)
{
	uint64_t *dw = d;
	for (size_t i = 0; i < n / 8; i++)
		dw[i] = 0;
}

static bool same_words(const void *a, const void *b, size_t n)
{
	const uint64_t *aw = a, *bw = b;
	for (size_t i = 0; i < n / 8; i++)
		if (aw[i] != bw[i])
			return false;
	return true;
}

static uint64_t hash(const unsigned char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint64_t *w = (const uint64_t *)(const void *)k;
	for (size_t i = 0; i < n / 8; i++)   /* a word at a time: keys are words */
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

uint64_t *bt_map_lookup(struct bt_map *m, const void *key, bool create)
{
	long i = bt_map_slot(m, key, create);
	return i < 0 ? NULL : val_of(m, (size_t)i);
}

uint64_t *bt_map_value(struct bt_map *m, size_t i)
{
	return val_of(m, i);
}

long bt_map_slot(struct bt_map *m, const void *key, bool create)
{
	if (!m->slots)
		return -1;
	size_t mask = m->cap - 1, i = (size_t)hash(key, m->key_size) & mask;
	for (size_t probes = 0; probes < m->cap;) {
		_Atomic uint64_t *st = state_of(m, i);
		uint64_t s = atomic_load_explicit(st, memory_order_acquire);
		if (s == S_EMPTY) {
			if (!create)
				return -1;
			if (atomic_load_explicit(&m->used, memory_order_relaxed) >= BT_MAP_CAP)
				goto full;
			uint64_t e = S_EMPTY;
			if (!atomic_compare_exchange_strong(st, &e, busy_self()))
				continue;   /* another thread took it: look again */
			atomic_fetch_add_explicit(&m->used, 1, memory_order_relaxed);
			copy_words(key_of(m, i), key, m->key_size);
			zero_words(val_of(m, i), m->val_words * 8);
			atomic_store_explicit(st, S_LIVE, memory_order_release);
			return (long)i;
		}
		if (is_busy(s)) {   /* its key is being written */
			if (busy_wait(st, s))
				continue;
			atomic_fetch_add_explicit(&m->unfinished, 1, memory_order_relaxed);
			return -1;
		}
		if (same_words(key_of(m, i), key, m->key_size)) {
			if (s == S_LIVE)
				return (long)i;
			if (!create)
				return -1;
			uint64_t e = S_DEAD;
			if (!atomic_compare_exchange_strong(st, &e, busy_self()))
				continue;
			zero_words(val_of(m, i), m->val_words * 8);
			atomic_store_explicit(st, S_LIVE, memory_order_release);
			return (long)i;
		}
		i = (i + 1) & mask;
		probes++;
	}
full:
	atomic_fetch_add_explicit(&m->dropped, 1, memory_order_relaxed);
	return -1;
}

void bt_map_delete(struct bt_map *m, const void *key)
{
	uint64_t *v = bt_map_lookup(m, key, false);
	if (!v)
		return;
	size_t i = (size_t)((unsigned char *)v - m->slots) / m->slot_size;
	uint64_t e = S_LIVE;
	atomic_compare_exchange_strong(state_of(m, i), &e, S_DEAD);
}

void bt_map_clear(struct bt_map *m)
{
	if (!m->slots)
		return;
	/* the kernel gives zero pages back: every slot empty, memory returned */
	if (madvise(m->slots, m->cap * m->slot_size, MADV_DONTNEED) != 0)
		memset(m->slots, 0, m->cap * m->slot_size);
	atomic_store(&m->used, 0);
}

long bt_map_next(struct bt_map *m, size_t i, const unsigned char **key, const uint64_t **val)
{
	for (; m->slots && i < m->cap; i++)
		if (atomic_load_explicit(state_of(m, i), memory_order_acquire) == S_LIVE) {
			*key = key_of(m, i);
			*val = val_of(m, i);
			return (long)i;
		}
	return -1;
}

/* bpftrace 0.17's log2(): 0 for negatives, 1 for 0, then 2 + floor(log2)
 * computed with five shifts (so values from 2^32 on share the last). */
int bt_hist_bucket(int64_t v)
{
	if (v < 0)
		return 0;
	if (v == 0)
		return 1;
	uint64_t n = (uint64_t)v;
	int r = 2;
	for (int i = 4; i >= 0; i--) {
		int shift = (n >= (1ull << (1 << i))) << i;
		n >>= shift;
		r += shift;
	}
	return r;
}

/* bpftrace 0.17's linear(): 0 below MIN, 1 + (MAX-MIN)/STEP above MAX. */
int64_t bt_lhist_bucket(int64_t v, int64_t min, int64_t max, int64_t step)
{
	if (v < min)
		return 0;
	if (v > max)
		return 1 + (int64_t)((uint64_t)(max - min) / (uint64_t)step);
	return 1 + (int64_t)((uint64_t)(v - min) / (uint64_t)step);
}
