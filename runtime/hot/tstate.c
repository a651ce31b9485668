/* tstate — see tstate.h for the layout and the protocol. */
#include "tstate.h"
#include "heap.h"
#include "fastcount.h"
#include "log.h"
#include "shm.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread struct sp_tls sp_tls __attribute__((tls_model("initial-exec")));
char *sp_stripes;
struct sp_slot_seq sp_slot_seqs[SP_N_SLOTS] __attribute__((aligned(64)));

static _Atomic uint64_t slot_bits[SP_EXCL_SLOTS / 64];
/* Which stripes may hold counts: the exclusive ones ever claimed are below
 * slots_used, and the shared one only once a thread was given it (128
 * threads at once, a claim re-entered, a hit after the thread's TLS
 * destructor).  The others hold only zeros; reading them, for the report
 * or to zero a freed id, faulted in a page of each — of the launcher's
 * shared file, where every such page is allocated: a quarter of a
 * 10,000-probe report.  Set before the first add to the stripe; a reader
 * that sees them late only misses counts still being made. */
static _Atomic int slots_used;
static _Atomic bool shared_used;

static void use_shared(void)
{
	if (!atomic_load_explicit(&shared_used, memory_order_relaxed)) {
		atomic_store(&shared_used, true);
		sp_shm_stripes_used(0, true);   /* and the launcher's reader */
	}
}
static pthread_key_t slot_key;
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t next_id = 1;   /* 0: never a probe's (tstate.h) */
static uint32_t *free_ids;
static size_t n_free_ids, cap_free_ids;
static int barrier_ok = -1;

static void release_slot(void *v)
{
	int s = (int)(intptr_t)v - 1;
	if (s >= 0 && s < SP_EXCL_SLOTS)
		atomic_fetch_and(&slot_bits[s / 64], ~((uint64_t)1 << (s % 64)));
	/* hits after this (later TLS destructors) go to the shared stripe */
	sp_tls.fast = NULL;
	use_shared();
	sp_tls.slot = SP_SHARED_SLOT + 1;
}

int sp_tstate_init(void)
{
	if (sp_stripes)
		return 0;
	/* under the launcher the stripes live in its shared file (shm.h), so
	 * the counts survive whatever ends this process */
	uint64_t off = 0;
	int fd = sp_shm_stripes(&off);
	void *p = sp_shm_map_stripes(fd, off, SP_STRIPE_BYTES * SP_N_SLOTS, NULL);
	if (p == MAP_FAILED)
		return -errno;
	int rc = pthread_key_create(&slot_key, release_slot);
	if (rc) {
		munmap(p, SP_STRIPE_BYTES * SP_N_SLOTS);
		return -rc;
	}
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		barrier_ok = 1;
	else
		barrier_ok = 0;
	sp_stripes = p;
	sp_fastcount_init(&sp_tls.fast, &sp_tls.runtime);
	return 0;
}

int sp_tstate_claim(void)
{
	/* Re-entered when pthread_setspecific itself is probed: that hit
	 * goes to the shared stripe rather than recursing. */
	if (sp_tls.claiming || !sp_stripes) {
		use_shared();
		return SP_SHARED_SLOT;
	}
	sp_tls.claiming = 1;
	int slot = SP_SHARED_SLOT;
	for (int w = 0; w < SP_EXCL_SLOTS / 64 && slot == SP_SHARED_SLOT; w++) {
		uint64_t bits = atomic_load(&slot_bits[w]);
		while (~bits) {
			int b = __builtin_ctzll(~bits);
			if (atomic_compare_exchange_weak(&slot_bits[w], &bits, bits | ((uint64_t)1 << b))) {
				slot = w * 64 + b;
				break;
			}
		}
	}
	if (slot == SP_SHARED_SLOT)
		use_shared();
	else {
		int used = atomic_load(&slots_used);
		while (used <= slot && !atomic_compare_exchange_weak(&slots_used, &used, slot + 1))
			;
		sp_shm_stripes_used(slot + 1, false);
		sp_tls.runtime++;   /* our call, not the application's: not counted */
		pthread_setspecific(slot_key, (void *)(intptr_t)(slot + 1));
		sp_tls.runtime--;
	}
	sp_tls.slot = slot + 1;
	if (slot != SP_SHARED_SLOT && sp_fastcount_thread_ok())
		sp_tls.fast = sp_stripes + slot * SP_STRIPE_BYTES;
	sp_tls.claiming = 0;
	return slot;
}

/* The stripe after S that may hold counts: the exclusive ones ever
 * claimed, then the shared one if it was ever given out. */
int sp_tstate_slots_used(void)
{
	return atomic_load(&slots_used);
}

int sp_tstate_next_stripe(int s)
{
	if (s + 1 < atomic_load(&slots_used))
		return s + 1;
	return s < SP_SHARED_SLOT && atomic_load(&shared_used) ? SP_SHARED_SLOT : SP_N_SLOTS;
}

long sp_tstate_alloc_id(void)
{
	long id = -ENOSPC;
	pthread_mutex_lock(&id_lock);
	if (n_free_ids)
		id = free_ids[--n_free_ids];
	else if (next_id < SP_MAX_PROBES)
		id = next_id++;
	pthread_mutex_unlock(&id_lock);
	return id;
}

void sp_tstate_free_id(uint32_t id)
{
	/* The caller has quiesced: no thread adds to ID any more. */
	for (int s = sp_tstate_next_stripe(-1); s < SP_N_SLOTS; s = sp_tstate_next_stripe(s)) {
		struct sp_count *c = (struct sp_count *)(sp_stripes + s * SP_STRIPE_BYTES) + id;
		for (int k = 0; k < SP_N_COUNTERS; k++)
			__atomic_store_n(&c->v[k], 0, __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&id_lock);
	if (n_free_ids == cap_free_ids) {
		size_t cap = cap_free_ids ? cap_free_ids * 2 : 64;
		uint32_t *n = sp_realloc(free_ids, cap * sizeof(*n));
		if (!n)
			goto out;   /* the id is simply not reused */
		free_ids = n;
		cap_free_ids = cap;
	}
	free_ids[n_free_ids++] = id;
out:
	pthread_mutex_unlock(&id_lock);
}

void sp_tstate_read(uint32_t id, uint64_t *out)
{
	for (int k = 0; k < SP_N_COUNTERS; k++)
		out[k] = 0;
	for (int s = sp_tstate_next_stripe(-1); s < SP_N_SLOTS; s = sp_tstate_next_stripe(s)) {
		struct sp_count *c = (struct sp_count *)(sp_stripes + s * SP_STRIPE_BYTES) + id;
		for (int k = 0; k < SP_N_COUNTERS; k++)
			out[k] += __atomic_load_n(&c->v[k], __ATOMIC_RELAXED);
	}
}

static void pause_briefly(void)
{
	struct timespec ts = { 0, 50000 };
	nanosleep(&ts, NULL);
}

void sp_tstate_quiesce(void)
{
	sp_fastcount_fence();   /* inline counts in flight restart (fastcount.h) */
	if (barrier_ok == 1)
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	atomic_thread_fence(memory_order_seq_cst);
	int self = sp_tls.slot - 1;
	for (int s = 0; s < SP_EXCL_SLOTS; s++) {
		struct sp_slot_seq *q = &sp_slot_seqs[s];
		if (s == self || atomic_load(&q->depth) == 0)
			continue;
		/* inside since before now: wait until it has left its outermost
		 * dispatch (or was caught at a moment outside every one) */
		uint64_t gen = atomic_load(&q->gen);
		while (atomic_load(&q->gen) == gen && atomic_load(&q->depth) != 0)
			pause_briefly();
	}
	/* Shared-stripe threads: wait for a moment with none inside. */
	for (int spins = 0; atomic_load(&sp_slot_seqs[SP_SHARED_SLOT].inflight) > (self == SP_SHARED_SLOT && sp_tls.depth > 0); spins++)
		spins < 100 ? sched_yield() : pause_briefly();
	if (barrier_ok != 1) {
		/* Without membarrier a reader may not have published its odd
		 * sequence yet; give it time to finish a handler. */
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* The thread's alternate signal stack, if it has one: [*lo, *hi). */
static bool altstack(uintptr_t *lo, uintptr_t *hi)
{
	stack_t ss;
	if (syscall(SYS_sigaltstack, NULL, &ss) != 0 || (ss.ss_flags & SS_DISABLE) || !ss.ss_sp)
		return false;
	*lo = (uintptr_t)ss.ss_sp;
	*hi = *lo + ss.ss_size;
	return true;
}

/* Whether the jump to TARGET_SP leaves the dispatch whose frame is FRAME.
 * On one stack, the frames below the target are left.  A dispatch in a
 * handler that runs on the alternate signal stack (SA_ONSTACK: ours at an
 * int3 site, and any the program sets; ASan and Rust give every thread
 * one) is not comparable with an address on the thread's stack: it began
 * after the thread's stack was interrupted, so a jump to that stack leaves
 * it, and a jump into the alternate stack leaves none of the thread's
 * stack's (they are older than the signal). */
static bool left_by_jump(uintptr_t frame, uintptr_t target_sp, bool alt, uintptr_t lo, uintptr_t hi)
{
	if (frame == 0)   /* not known yet: it began inside the jump's reach */
		return true;
	bool frame_alt = alt && frame >= lo && frame < hi;
	bool target_alt = alt && target_sp >= lo && target_sp < hi;
	if (frame_alt != target_alt)
		return frame_alt;
	return frame < target_sp;
}

int sp_tstate_unwind(uintptr_t target_sp)
{
	int d = sp_tls.depth;
	if (d == 0)
		return 0;
	int stripe = sp_tls.slot - 1;
	uintptr_t lo = 0, hi = 0;
	bool alt = altstack(&lo, &hi);
	/* innermost first: each one left as its own leave would */
	while (d > 0 && (d > SP_DISPATCH_DEPTH || left_by_jump(sp_tls.frame[d - 1], target_sp, alt, lo, hi))) {
		if (stripe >= 0)
			sp_tstate_leave(stripe);
		else
			sp_tls.depth = d - 1;
		d = sp_tls.depth;
	}
	if (d == 0)
		sp_tls.inside = 0;   /* a handler of ours that jumped out left it set */
	return d;
}

void sp_tstate_atfork_child(void)
{
	if (!sp_stripes)
		return;
	uint64_t off = 0;
	int fd = sp_shm_stripes(&off);   /* the child's own section (sp_shm_atfork_child) */
	sp_shm_map_stripes(fd, off, SP_STRIPE_BYTES * SP_N_SLOTS, sp_stripes);   /* counts from zero */
	for (int w = 0; w < SP_EXCL_SLOTS / 64; w++)
		atomic_store(&slot_bits[w], 0);
	int self = sp_tls.slot - 1;
	if (self >= 0 && self < SP_EXCL_SLOTS)
		atomic_store(&slot_bits[self / 64], (uint64_t)1 << (self % 64));
	for (int s = 0; s < SP_N_SLOTS; s++) {
		atomic_store(&sp_slot_seqs[s].gen, 0);
		atomic_store(&sp_slot_seqs[s].depth, 0);
		atomic_store(&sp_slot_seqs[s].inflight, 0);
	}
	if (self >= 0 && self < SP_EXCL_SLOTS)
		atomic_store(&sp_slot_seqs[self].depth, (uint32_t)sp_tls.depth);
	else if (self == SP_SHARED_SLOT && sp_tls.depth > 0)
		atomic_store(&sp_slot_seqs[self].inflight, 1);
	pthread_mutex_init(&id_lock, NULL);
	/* only this thread's stripe can hold counts now (the others were
	 * remapped empty above), in the child's new section too */
	atomic_store(&slots_used, self >= 0 && self < SP_EXCL_SLOTS ? self + 1 : 0);
	atomic_store(&shared_used, self == SP_SHARED_SLOT);
	sp_shm_stripes_used(atomic_load(&slots_used), atomic_load(&shared_used));
	if (barrier_ok == 1 &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
		barrier_ok = 0;
	if (sp_fastcount_atfork_child())
		sp_tls.fast = NULL;
}
