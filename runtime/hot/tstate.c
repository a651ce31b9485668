/* tstate — see tstate.h for the layout and the protocol. */
#include "tstate.h"
#include "memread.h"
#include "heap.h"
#include "fastcount.h"
#include "golang_stack.h"
#include "log.h"
#include "rawsys.h"
#include "shm.h"
#include "taskstack.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread struct sp_tls sp_tls __attribute__((tls_model("initial-exec")));
struct sp_slot_seq sp_slot_seqs[SP_SEAT0 + SP_BOOT_SEATS] __attribute__((aligned(64)));
struct sp_slot_seq *_Atomic sp_more_seqs;

static _Atomic uint64_t slot_bits[SP_EXCL_SLOTS / 64];
static _Atomic uint64_t seat_bits[SP_SHARED_SEATS / 64];   /* 512 KiB: the words
							    * of seats given only */
static _Atomic int seat_words = SP_BOOT_SEATS / 64;   /* of seat_bits, a claim may take */
static bool seats_limited;                             /* by a test */
static _Atomic bool more_failed;                       /* sp_more_seqs cannot be mapped */
static _Atomic int seats_used;   /* seats ever given are below it */
static long own_pid;             /* the process's: a vfork child's claim is not its */
static bool ready;                /* sp_tstate_init done: stripes can be claimed */
static _Atomic unsigned excl_misses;   /* claims that found no exclusive stripe free */
#define RECLAIM_EVERY 16
/* Which stripes may hold counts: the exclusive ones ever claimed are below
 * slots_used, and the shared one only once a thread was given it (128
 * threads at once, a hit after the thread's key destructor, a vfork
 * child's).  The others hold only zeros; reading them, for the report
 * or to zero a freed id, faulted in a page of each — of the launcher's
 * shared file, where every such page is allocated: a quarter of a
 * 10,000-probe report.  Set before the first add to the stripe; a reader
 * that sees them late only misses counts still being made. */
static _Atomic int slots_used;
static _Atomic bool shared_used;

/* sp_tls.claiming: no claim running; a claim running (a signal's hit in
 * it claims a record of its own, which the claim then takes); the key
 * destructor ran (a hit takes a seat only, and sets no key). */
enum { CLAIM_NONE, CLAIM_RUNNING, CLAIM_RELEASED };

/* sp_tls.slot (low half) and sp_tls.seat (high half) as one word, which a
 * claim publishes with one instruction: a signal's hit sees both or
 * neither. */
_Static_assert(offsetof(struct sp_tls, seat) == offsetof(struct sp_tls, slot) + 4 &&
		       offsetof(struct sp_tls, slot) % 8 == 0,
	       "sp_tls.slot and sp_tls.seat: one aligned 8-byte word");
typedef uint64_t __attribute__((may_alias)) tls_word_t;

static tls_word_t *tls_word(void)
{
	return (tls_word_t *)&sp_tls.slot;
}

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

static _Atomic uint64_t abandoned;   /* dispatches left without returning */

uint64_t sp_tstate_abandoned_total(void)
{
	return atomic_load(&abandoned);
}

/* A bit of BITS (N words) taken for the caller, lock-free: its index, or -1. */
static int take_bit(_Atomic uint64_t *bits, int n)
{
	for (int w = 0; w < n; w++) {
		uint64_t v = atomic_load(&bits[w]);
		while (~v) {
			int b = __builtin_ctzll(~v);
			if (atomic_compare_exchange_weak(&bits[w], &v, v | ((uint64_t)1 << b)))
				return w * 64 + b;
		}
	}
	return -1;
}

static void raise_to(_Atomic int *mark, int v)
{
	int m = atomic_load(mark);
	while (m < v && !atomic_compare_exchange_weak(mark, &m, v))
		;
}

/* Exclusive stripe or seat K (a record of sp_slot_seqs) given back: the
 * next thread to claim one may take it. */
static void give_back(int k)
{
	if (k < SP_EXCL_SLOTS)
		atomic_fetch_and(&slot_bits[k / 64], ~((uint64_t)1 << (k % 64)));
	else if (k >= SP_SEAT0)
		atomic_fetch_and(&seat_bits[(k - SP_SEAT0) / 64], ~((uint64_t)1 << ((k - SP_SEAT0) % 64)));
}

/* Record K's owner word with its thread now TID (0: free), the number of
 * claims kept. */
static void set_owner(int k, int32_t tid, bool claim)
{
	struct sp_slot_seq *q = sp_tstate_rec(k);
	uint64_t claims = atomic_load(&q->owner) >> 32;
	atomic_store(&q->owner, (claims + claim) << 32 | (uint32_t)tid);
}

int sp_tstate_seqs_used(void)
{
	return SP_SEAT0 + atomic_load(&seats_used);
}

/* Leave every dispatch of exclusive stripe or seat S at once: its thread
 * will never come back to them.  Published as their own leave would (gen
 * moves). */
static int leave_all_published(int s)
{
	struct sp_slot_seq *q = sp_tstate_rec(s);
	int d = (int)atomic_load(&q->depth);
	if (d == 0)
		return 0;
	atomic_store(&q->req, 0);
	atomic_store(&q->gen, atomic_load(&q->gen) + 1);
	atomic_store(&q->depth, 0);
	if (!q->counted_gen)   /* not counted yet by a quiescence */
		atomic_fetch_add(&abandoned, (uint64_t)d);
	q->counted_gen = 0;
	return d;
}

void sp_tstate_count_abandoned(int seq, uint64_t gen, int n)
{
	struct sp_slot_seq *q = sp_tstate_rec(seq);
	if (n > 0 && q->counted_gen != gen + 1) {
		q->counted_gen = gen + 1;
		atomic_fetch_add(&abandoned, (uint64_t)n);
	}
}

/* Record SEQ given back for its owner OWNER (an owner word read before),
 * gone without its key destructor: the dispatches it was inside left, as
 * their own leave would publish them.  The compare and swap makes it
 * once, against a concurrent reclaim or reconcile_gone, and never a later
 * owner's (the number of claims moved).  The stripe's counts stay where
 * they are: readers go on summing them, its next owner adds on top.
 * Returns the dispatches left, or -1 when OWNER no longer owns it. */
static int reclaim(int seq, uint64_t owner)
{
	if (sp_tstate_owner_tid(owner) <= 0 ||
	    !atomic_compare_exchange_strong(&sp_tstate_rec(seq)->owner, &owner, owner >> 32 << 32))
		return -1;
	int d = leave_all_published(seq);
	give_back(seq);
	return d;
}

/* Records [LO, HI) taken by a thread that no longer exists (a raw exit,
 * outside every dispatch or inside some) given back: how many.  Only when
 * a claim finds none free: a thread gone that way keeps its record until
 * one is needed.  Its tid is read from the owner word first: a tid found
 * gone after that read was its owner's, and the compare and swap fails if
 * the record changed hands meanwhile (to a new thread that reused it).
 * Signal-safe: atomics and a raw tgkill per record taken.  In a claim
 * only, where the process is known to be own_pid (not a vfork child's). */
static int reclaim_gone(int lo, int hi)
{
	int n = 0;
	for (int k = lo; k < hi; k++) {
		uint64_t owner = atomic_load(&sp_tstate_rec(k)->owner);
		pid_t tid = sp_tstate_owner_tid(owner);
		if (tid > 0 && sp_task_gone_in((pid_t)own_pid, tid) && reclaim(k, owner) >= 0)
			n++;
	}
	return n;
}

/* The seats after the first SP_BOOT_SEATS (tstate.h), mapped by the first
 * claim that found those held, if the address space allows: a thread then
 * always finds a seat free or its owner gone.  In a claim (a trampoline,
 * a signal handler): a raw mmap, published by a compare and swap (a
 * concurrent claim's mapping that lost is unmapped).  Whether there are
 * more seats to take now. */
static bool map_more_seats(void)
{
	if (seats_limited || atomic_load(&more_failed))
		return false;
	if (!atomic_load(&sp_more_seqs)) {
		size_t bytes = (size_t)(SP_SHARED_SEATS - SP_BOOT_SEATS) * sizeof(struct sp_slot_seq);
		void *m = sp_sys_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				      -1, 0);
		if (m == MAP_FAILED) {
			atomic_store(&more_failed, true);
			return false;
		}
		struct sp_slot_seq *none = NULL;
		if (!atomic_compare_exchange_strong(&sp_more_seqs, &none, (struct sp_slot_seq *)m))
			sp_sys_munmap(m, bytes);
	}
	/* after the records: a seat among them is given only then */
	atomic_store(&seat_words, SP_SHARED_SEATS / 64);
	return true;
}

void sp_tstate_limit_seats(int n)
{
	if (n >= 64 && n <= SP_BOOT_SEATS) {
		atomic_store(&seat_words, n / 64);
		seats_limited = true;
	}
}

/* A seat for the calling thread, or -1.  With every seat mapped, fewer
 * threads are alive than there are seats: one is free or its owner gone
 * at any moment, but a free one may move (given back behind the scan,
 * taken ahead of it) while the scan runs, hence a second look. */
static int take_seat(void)
{
	int seat = take_bit(seat_bits, atomic_load(&seat_words));
	/* the seats of threads gone first, then more seats, then again (a
	 * free one moved) */
	for (int round = 0; seat < 0 && round < 3; round++) {
		if (reclaim_gone(SP_SEAT0, sp_tstate_seqs_used()) == 0 && !map_more_seats() && round > 0)
			break;
		seat = take_bit(seat_bits, atomic_load(&seat_words));
	}
	return seat;
}

/* The key destructor of a thread that claimed stripe V - 1: an exclusive
 * one, or the shared one (with a seat or without).  The thread still has
 * hits to make: later key destructors, libc's own freeing after them
 * (__libc_thread_freeres), each one a dispatch a detach may have to ask
 * about.  Its exclusive stripe is speed only: given back now, for the next
 * thread; a seat it holds it keeps (a seat is given back once its thread
 * is gone: reclaim_gone), and one without a seat takes one at its next hit
 * (sp_tstate_claim: a seat only, no key). */
static void release_slot(void *v)
{
	int s = (int)(intptr_t)v - 1;
	/* Not this thread's claim: the value a thread that ended by a raw
	 * exit left in its descriptor, which glibc's stack cache hands to a
	 * new thread as it is (its TLS, sp_tls, is made anew).  That stripe
	 * or seat may be another thread's by now (reclaim_gone). */
	if (s < 0 || s > SP_SHARED_SLOT || (intptr_t)v != sp_tls.slot)
		return;
	int k = sp_tstate_seq_of(&sp_tls, s);
	if (sp_tls.depth > 0) {
		/* The thread ends inside dispatches it will never come back to
		 * (a jump out of them that no interposer saw, a pthread_exit
		 * from a handler): left now, before the stripe can go to
		 * another thread, so that no detach waits for them.  One
		 * without a seat leaves the shared count it entered once. */
		memset(sp_tls.frame, 0, sizeof(sp_tls.frame));
		if (k == SP_SHARED_SLOT) {
			atomic_fetch_add(&abandoned, (uint64_t)sp_tls.depth);
			atomic_fetch_sub(&sp_tstate_rec(k)->inflight, 1);
		} else {
			leave_all_published(k);
		}
		sp_tls.depth = 0;
		sp_tls.inside = 0;
	}
	/* the thread's Go code is over (a cgo thread ends when its start
	 * routine returns): its stack for Go sites goes */
	sp_go_stack_release();
	if (k >= SP_SEAT0)
		return;
	/* A signal's hit may come at any instruction from here: before the
	 * store of the word it publishes in K, still this thread's; after
	 * it, it claims a seat (released: no key, no exclusive stripe). */
	sp_tls.fast = NULL;   /* no inline count in K once it can be another's */
	sp_tls.claiming = CLAIM_RELEASED;
	atomic_signal_fence(memory_order_seq_cst);
	__atomic_store_n(tls_word(), 0, __ATOMIC_RELAXED);
	atomic_signal_fence(memory_order_seq_cst);
	if (k != SP_SHARED_SLOT) {
		set_owner(k, 0, false);
		give_back(k);
	}
}

int sp_tstate_init(void)
{
	if (ready)
		return 0;
	int rc = sp_stripemem_init();   /* the shared stripe: the others at their claims */
	if (rc)
		return rc;
	rc = pthread_key_create(&slot_key, release_slot);
	if (rc)
		return -rc;
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		barrier_ok = 1;
	else
		barrier_ok = 0;
	own_pid = sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	ready = true;
	sp_fastcount_init(&sp_tls.fast, &sp_tls.runtime, &sp_tls.own_neg_lo, &sp_tls.own_neg_hi);
	return 0;
}

/* Record K (an exclusive stripe or a seat) made the calling thread's,
 * TID, before it is published in its sp_tls: no request, nothing counted,
 * the thread's sp_tls for a quiescence to read, the owner word with the
 * number of claims moved. */
static void own_record(int k, int32_t tid)
{
	struct sp_slot_seq *q = sp_tstate_rec(k);
	atomic_store(&q->req, 0);
	q->counted_gen = 0;
	atomic_store(&q->tls, (uintptr_t)&sp_tls);
	set_owner(k, tid, true);
}

/* An exclusive stripe taken, its memory mapped if no thread had it yet:
 * its index, or -1 (none free, or no memory for it). */
static int take_stripe(void)
{
	int slot = take_bit(slot_bits, SP_EXCL_SLOTS / 64);
	if (slot >= 0 && !sp_stripemem_map(slot)) {
		give_back(slot);
		return -1;
	}
	return slot;
}

/* A stripe (exclusive if one is free, unless SEAT_ONLY) and the record the
 * calling thread publishes its dispatches in, taken and published in its
 * sp_tls by one compare and swap of its slot and seat (tls_word): the
 * thread's stripe.  Signal-safe (atomics, raw system calls): a signal's
 * hit that comes in the middle runs one of its own, nested; the first to
 * publish wins, and the other gives back what it took, so that the
 * thread ends with one record, which every hit it made published in.  A
 * record is taken only outside every dispatch (inside one, the thread
 * entered the shared count: it leaves it). */
static int assign(bool seat_only)
{
	int slot = seat_only ? -1 : take_stripe();
	/* a look costs a system call a stripe: while every one is a live
	 * thread's (more than 128 threads alive), one claim in
	 * RECLAIM_EVERY looks (a stripe is speed only, not a record the
	 * detach needs: a seat is always looked for) */
	if (slot < 0 && !seat_only && atomic_fetch_add(&excl_misses, 1) % RECLAIM_EVERY == 0)
		while (slot < 0 && reclaim_gone(0, SP_EXCL_SLOTS) > 0)
			slot = take_stripe();
	int k = slot;
	if (slot < 0) {
		slot = SP_SHARED_SLOT;
		use_shared();
		/* a seat, where a detach can ask this thread about its
		 * dispatches */
		int seat = sp_tls.depth == 0 ? take_seat() : -1;
		k = seat < 0 ? SP_SHARED_SLOT : SP_SEAT0 + seat;
		if (seat >= 0)
			raise_to(&seats_used, seat + 1);
	} else {
		raise_to(&slots_used, slot + 1);
		sp_shm_stripes_used(slot + 1, false);
	}
	if (k != SP_SHARED_SLOT)   /* raw: libc's syscall() on a thread's first hit would count */
		own_record(k, (int32_t)sp_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0));
	uint64_t none = 0, mine = (uint64_t)(uint32_t)(k >= SP_SEAT0 ? k + 1 : 0) << 32 | (uint32_t)(slot + 1);
	/* the word is 0 until a claim publishes (the seat is stored only with
	 * a slot): a failure is a nested claim's, which published first.
	 * After the record's owner (seq_cst: not moved before it) */
	if (__atomic_compare_exchange_n(tls_word(), &none, mine, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return slot;
	if (k != SP_SHARED_SLOT) {
		set_owner(k, 0, false);
		give_back(k);
	}
	return (int)(uint32_t)none - 1;   /* the word that compare and swap found */
}

int sp_tstate_claim(void)
{
	/* A vfork child (another process on this thread's memory and TLS)
	 * claims nothing: the owner it would name is gone once it execs or
	 * exits, while the thread it borrowed the TLS of would go on using
	 * the record. */
	if (!ready || sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0) != own_pid) {
		use_shared();
		return SP_SHARED_SLOT;
	}
	int s = sp_tls.slot - 1;
	if (s >= 0)   /* a signal's claim published one after our caller looked */
		return s;
	/* A signal's hit inside a claim (or after the key destructor): a
	 * record of its own, published, which the claim it interrupted then
	 * takes for the thread's.  Only the outermost claim sets the key. */
	if (sp_tls.claiming)
		return assign(sp_tls.claiming == CLAIM_RELEASED);
	sp_tls.claiming = CLAIM_RUNNING;
	atomic_signal_fence(memory_order_seq_cst);
	s = assign(false);
	/* every thread's end runs release_slot: its exclusive stripe given
	 * back, the shared count of one without a seat right, its stack for
	 * Go sites unmapped.  Hits from here on publish in the record. */
	sp_tls.runtime++;   /* our call, not the application's: not counted */
	pthread_setspecific(slot_key, (void *)(intptr_t)(s + 1));
	sp_tls.runtime--;
	if (s != SP_SHARED_SLOT && sp_fastcount_thread_ok())
		sp_tls.fast = sp_stripe(s);
	atomic_signal_fence(memory_order_seq_cst);
	sp_tls.claiming = CLAIM_NONE;
	return s;
}

int sp_tstate_enter_stateless(void)
{
	use_shared();
	atomic_fetch_add_explicit(&sp_tstate_rec(SP_SHARED_SLOT)->inflight, 1, memory_order_seq_cst);
	return SP_SHARED_SLOT;
}

void sp_tstate_leave_stateless(void)
{
	atomic_fetch_sub_explicit(&sp_tstate_rec(SP_SHARED_SLOT)->inflight, 1, memory_order_release);
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
		struct sp_count *c = sp_stripe_count(s, id);
		for (int k = 0; c && k < SP_N_COUNTERS; k++)
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
		const struct sp_count *c = sp_stripe_count(s, id);
		for (int k = 0; c && k < SP_N_COUNTERS; k++)
			out[k] += __atomic_load_n(&c->v[k], __ATOMIC_RELAXED);
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
	sp_tls.unwinding = 1;
	atomic_signal_fence(memory_order_seq_cst);
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
	atomic_signal_fence(memory_order_seq_cst);
	sp_tls.unwinding = 0;
	return d;
}

/* ---- dispatches abandoned by a jump nothing saw (quiesce.h) ---- */

enum { ON_NONE, ON_STACK, ON_ALT };

struct stacks {
	uintptr_t lo, hi;         /* the thread's stack */
	bool alt;
	uintptr_t alo, ahi;       /* its alternate signal stack */
};

/* Which stack A lies on.  An alternate stack may lie inside the thread's
 * own (an array of one of its frames): it is the alternate stack then. */
static int stack_of(const struct stacks *st, uintptr_t a)
{
	if (st->alt && a >= st->alo && a < st->ahi)
		return ON_ALT;
	return a >= st->lo && a < st->hi ? ON_STACK : ON_NONE;
}

/* The word at ADDR of a thread's stack, read with sp_mem_read: a thread
 * gone meanwhile cannot make this fault, and a slot of a frame left is read
 * without a sanitizer taking it for ours. */
static bool read_word(uintptr_t addr, uintptr_t *out)
{
	return sp_mem_read(addr, out, sizeof(*out));
}

/* Whether the dispatch whose frame F (return address RET) lies at or above
 * SP on its thread's stack was left: its return address overwritten by the
 * calls the thread made since it jumped out. */
static bool overwritten(uintptr_t f, uintptr_t ret)
{
	uintptr_t v;
	return ret && read_word(f + 8, &v) && v != ret;
}

/* The dispatches of FRAME[0..DEPTH) (their return addresses in RET) a
 * thread now at SP has left for good, innermost first, stopping at the
 * first it may still be in. */
static int count_abandoned(const uintptr_t *frame, const uintptr_t *ret, int depth, uintptr_t sp,
			   const struct stacks *st)
{
	int at = stack_of(st, sp), n = 0;
	if (at == ON_NONE)
		return 0;
	for (int d = depth; d > 0; d--, n++) {
		/* beyond the frames kept: nested in the deepest one kept, so
		 * left with it (a thread above it is in none of them) */
		int k = (d > SP_DISPATCH_DEPTH ? SP_DISPATCH_DEPTH : d) - 1;
		uintptr_t f = frame[k];
		int on = f ? stack_of(st, f) : ON_NONE;
		if (on == ON_ALT && at == ON_STACK)
			continue;   /* its handler's stack was given back */
		if (on == ON_NONE || on != at || (f >= sp && !overwritten(f, ret[k])))
			break;
	}
	return n;
}

int sp_tstate_abandoned_here(int seq, uintptr_t sp, uintptr_t lo, uintptr_t hi, int *depth)
{
	if (sp_tstate_my_seq() != seq)
		return -1;
	if (sp_tls.unwinding)   /* a longjmp is leaving them right now */
		return 0;
	struct stacks st = { .lo = lo, .hi = hi };
	st.alt = altstack(&st.alo, &st.ahi);
	uintptr_t frame[SP_DISPATCH_DEPTH], ret[SP_DISPATCH_DEPTH];
	int d = sp_tls.depth;
	*depth = d;
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(frame, sp_tls.frame, sizeof(frame));
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(ret, sp_tls.ret, sizeof(ret));
	return count_abandoned(frame, ret, d, sp, &st);
}

int sp_tstate_abandoned_there(const struct sp_tls *copy, uintptr_t sp, uintptr_t lo, uintptr_t hi)
{
	struct stacks st = { .lo = lo, .hi = hi, .alt = copy->alt_hi != 0, .alo = copy->alt_lo, .ahi = copy->alt_hi };
	return copy->unwinding ? 0 : count_abandoned(copy->frame, copy->ret, copy->depth, sp, &st);
}

bool sp_tstate_barrier(void)
{
	sp_fastcount_fence();   /* inline counts in flight restart (fastcount.h) */
	if (barrier_ok == 1)
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	atomic_thread_fence(memory_order_seq_cst);
	return barrier_ok == 1;
}

void sp_tstate_request(int seq, int depth, int n)
{
	uint64_t none = 0;
	if (depth > 0 && n > 0)   /* one pending: the same (the thread has not moved) */
		atomic_compare_exchange_strong(&sp_tstate_rec(seq)->req, &none,
					       (uint64_t)(uint32_t)depth << 32 | (uint32_t)n);
}

void sp_tstate_reconcile(int seq)
{
	uint64_t r = atomic_exchange_explicit(&sp_tstate_rec(seq)->req, 0, memory_order_acquire);
	int depth = (int)(r >> 32), n = (int)(uint32_t)r;
	if (!r || seq != sp_tstate_my_seq() || sp_tls.unwinding || sp_tls.depth != depth)
		return;
	/* a signal's nested dispatch may run meanwhile: balanced */
	for (; n > 0 && sp_tls.depth > 0; n--)
		sp_tstate_leave(seq);
	if (sp_tls.depth == 0)
		sp_tls.inside = 0;
}

int sp_tstate_reconcile_gone(int seq, uint64_t owner)
{
	/* inside nothing: nothing to leave, and a quiescence's "not its
	 * owner" may be a new owner's claim not yet ended (its sp_tls says
	 * no stripe yet): only a claim, with the tid shown gone, takes such
	 * a record back (reclaim_gone) */
	if (atomic_load(&sp_tstate_rec(seq)->depth) == 0)
		return 0;
	int d = reclaim(seq, owner);
	return d < 0 ? 0 : d;
}

void sp_tstate_atfork_child(void)
{
	if (!ready)
		return;
	sp_stripemem_atfork_child(sp_tls.slot - 1);   /* counts from zero */
	for (int w = 0; w < SP_EXCL_SLOTS / 64; w++)
		atomic_store(&slot_bits[w], 0);
	/* only what was ever given: the seats' pages never touched stay so */
	int seqs = sp_tstate_seqs_used();
	for (int w = 0; w < (seqs - SP_SEAT0 + 63) / 64; w++)
		atomic_store(&seat_bits[w], 0);
	int self = sp_tls.slot - 1, k = sp_tstate_my_seq();
	if (self >= 0 && self < SP_EXCL_SLOTS)
		atomic_store(&slot_bits[self / 64], (uint64_t)1 << (self % 64));
	if (k >= SP_SEAT0)
		atomic_store(&seat_bits[(k - SP_SEAT0) / 64], (uint64_t)1 << ((k - SP_SEAT0) % 64));
	atomic_store(&seats_used, k >= SP_SEAT0 ? k - SP_SEAT0 + 1 : 0);
	atomic_store(&excl_misses, 0);
	for (int s = 0; s < seqs; s++) {
		atomic_store(&sp_tstate_rec(s)->gen, 0);
		atomic_store(&sp_tstate_rec(s)->depth, 0);
		atomic_store(&sp_tstate_rec(s)->inflight, 0);
		atomic_store(&sp_tstate_rec(s)->owner, 0);
		atomic_store(&sp_tstate_rec(s)->req, 0);
		sp_tstate_rec(s)->counted_gen = 0;
	}
	if (k >= 0 && k != SP_SHARED_SLOT) {
		atomic_store(&sp_tstate_rec(k)->depth, (uint32_t)sp_tls.depth);
		set_owner(k, (int32_t)sp_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0), true);
	} else if (k == SP_SHARED_SLOT && sp_tls.depth > 0)
		atomic_store(&sp_tstate_rec(k)->inflight, 1);
	pthread_mutex_init(&id_lock, NULL);
	own_pid = sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	atomic_store(&abandoned, 0);   /* the parent's, said in its report */
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
