/* tstate — per-thread state of the hot path: hit counters that no two
 * threads share a cache line of, the recursion guard, and the quiescence
 * counters that let detach wait for handlers still running.
 *
 * Counters.  Each thread claims one of SP_EXCL_SLOTS exclusive stripes on
 * its first hit (lock-free bitmap); a stripe is an array of struct sp_count
 * indexed by probe id, mapped by the first claim of it (stripemem.h:
 * MAP_NORESERVE, so only touched pages cost memory).  The owner adds with one unlocked add instruction (no lock
 * prefix, no shared line, and no window for a signal handler's hit between
 * a load and a store: sigatomic.h).  A stripe outlives its thread: a pthread key destructor
 * gives the slot back and the next thread to claim it adds on top, so counts
 * are never folded and never lost.  A thread that ends without it (a raw
 * exit: a runtime's own threads, assembly) keeps its stripe or seat only
 * until a claim finds none free: that claim (for a stripe, one such claim
 * in 16: a look costs a system call a stripe, and more than 128 live
 * threads would pay them at each thread's first hit) gives back every
 * one whose owner's tid no longer exists in the process (tgkill: ESRCH), inside
 * dispatches or not, by a compare and swap on the record's owner word
 * (claims << 32 | tid), which a reused tid never matches.  Threads beyond
 * SP_EXCL_SLOTS share one stripe with atomic adds.  Totals are the sum over stripes.
 *
 * Quiescence.  A thread entering dispatch makes its stripe's sequence number
 * odd and even again on leaving (compiler barriers only); a detacher
 * publishes the new probe list, runs membarrier (a full barrier on every
 * running thread of the process, paid once per detach instead of a fence
 * per hit), then waits for every odd sequence to move (quiesce.h: also
 * for a thread that left its dispatches in a way nothing saw).  A thread
 * on the shared stripe publishes its dispatches in a seat of its own (up
 * to SP_SHARED_SEATS of them at once, taken at its claim, given back once
 * it is gone: there are more seats than threads can be alive), so that a
 * detach asks it as it asks an exclusive stripe's thread.  A thread's
 * hits publish in a record of its own at every moment, also:
 *   - a signal's hit in the middle of the thread's claim: it claims a
 *     record itself (signal-safe: atomics, raw system calls), and the
 *     claim it interrupted takes that one and gives back what it took (a
 *     claim publishes the thread's stripe and seat with one compare and
 *     swap);
 *   - a hit after the key destructor (a later key destructor, libc's own
 *     freeing at thread exit): the destructor gave the exclusive stripe
 *     back (counts are speed only), and the hit claims a seat, without a
 *     key; a seat is given back once its thread is gone, as one whose
 *     thread ended by a raw exit.
 * Only these hits are counted in the shared stripe's number of threads
 * inside a dispatch instead, which says how many, not which: a task's on
 * another thread's storage and a plain count off the thread's stack
 * (sp_tstate_enter_stateless: no code of the program's runs inside, so
 * none is ever abandoned); a vfork child's on a thread that has no record
 * yet, where tasks cannot be told apart (foreign.h; the child claims
 * nothing in its thread's name); and, where the seats beyond the first
 * SP_BOOT_SEATS cannot be mapped, a thread's that finds every seat held
 * by a live thread (whose key destructor takes an ordinary end of it
 * inside one out of that number).
 */
#ifndef SP_TSTATE_H
#define SP_TSTATE_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sigatomic.h"
#include "stripemem.h"
#include "stripes.h"


#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)   /* linux/signal.h; glibc's signal.h lacks it */
#endif

#define SP_DISPATCH_DEPTH 16   /* nested dispatches whose frames are remembered */

/* The records a quiescence reads (struct sp_slot_seq): the exclusive
 * stripes', the shared stripe's count, then the seats of threads on the
 * shared stripe (SP_SEAT0 + k).  As many seats as a process can have
 * threads alive at once (PID_MAX_LIMIT, the most tids the kernel ever
 * gives on 64-bit), so that a thread never finds every seat held by a
 * live thread: the first SP_BOOT_SEATS in the library's own data, the
 * others mapped by the first claim that finds those held (MAP_NORESERVE:
 * 256 MiB of address space, only the pages of seats ever given touched;
 * where it cannot be mapped, only the first ones are given). */
#define SP_SHARED_SEATS (1 << 22)
#define SP_BOOT_SEATS   1024
#define SP_SEAT0        SP_N_SLOTS
#define SP_N_SEQS       (SP_SEAT0 + SP_SHARED_SEATS)

struct sp_tls {
	char *fast;           /* the exclusive stripe, for the trampoline's inline
			       * count (fastcount.h); NULL: the C path */
	int slot;             /* stripe + 1; 0: not claimed yet */
	int seat;             /* on the shared stripe: the record its dispatches
			       * are published in + 1 (0: none, only the shared
			       * stripe's count).  With slot, one word that a
			       * claim publishes at once (tstate.c) */
	int inside;           /* inside dispatch (recursion guard) */
	int claiming;         /* inside sp_tstate_claim (it calls libc), or after
			       * the key destructor: a claim then takes a
			       * record only (tstate.c) */
	int runtime;          /* inside the runtime's own work (attach, report):
			       * its libc calls are not the application's and
			       * are neither counted nor handled */
	int depth;            /* dispatches this thread is inside, nested ones
			       * (a signal handler's hit) included */
	uintptr_t frame[SP_DISPATCH_DEPTH];   /* each one's frame, 0 while unknown:
					       * what a longjmp leaves (sp_tstate_unwind) */
	uintptr_t ret[SP_DISPATCH_DEPTH];     /* the return address in each frame
					       * (frame + 8): a frame whose slot no
					       * longer holds it was overwritten, so
					       * left (quiesce.h) */
	int unwinding;        /* inside sp_tstate_unwind: a reconciliation waits */
	uintptr_t alt_lo, alt_hi;   /* the alternate signal stack, armed, as the
				     * last signal that ran a dispatch or a handler
				     * of the program's found it (0: none known):
				     * read by a quiescence while the thread is blocked */
	/* The thread's own stack, [own_lo, own_hi), learnt at its first hit,
	 * and the two negated for the trampoline's check, which adds them to
	 * %rsp (fastcount.h); all 0 until learnt: every hit takes the C path,
	 * which asks (foreign.h).  Written only by the thread itself. */
	uintptr_t own_lo, own_hi, own_neg_lo, own_neg_hi;
	int own_learnt;       /* looked up (found or not) */
	int own_asks;         /* hits that asked the kernel before it was */
	int own_main;         /* the main thread: its stack grows below own_lo */
};

/* What a detach's quiescence reads of each stripe's threads.  Only the
 * outermost of nested dispatches (a hit in a signal handler that interrupted
 * one) publishes: an exclusive stripe's depth is its thread's, and its gen
 * moves each time that thread leaves its outermost dispatch; a seat's are
 * the same for its thread on the shared stripe; the shared stripe's own
 * record counts the threads inside one that have no seat.  Each is
 * written by its owner with a plain store that a signal's nested
 * dispatch, balanced, leaves as it found it; a longjmp that abandons
 * dispatches is caught by its interposer (sp_tstate_unwind), a jump
 * nothing saw by a quiescence (quiesce.h), a thread that ends inside some
 * by its key destructor or, gone without it, by its tid. */
struct sp_slot_seq {
	_Atomic uint64_t gen;      /* exclusive: outermost dispatches left */
	_Atomic uint32_t depth;    /* exclusive: dispatches its thread is inside */
	_Atomic uint64_t inflight; /* shared slot: threads without a seat inside
				    * a dispatch */
	_Atomic uintptr_t tls;     /* exclusive: its thread's sp_tls (read by a
				    * quiescence while that thread is blocked) */
	/* A reconciliation for its thread to apply at its next enter or
	 * leave (sp_tstate_reconcile): while inside DEPTH dispatches, its
	 * innermost N were found abandoned.  (DEPTH << 32 | N; 0: none.) */
	_Atomic uint64_t req;
	/* exclusive: its owner, claims << 32 | tid (tid 0: free, or being
	 * claimed).  The number of claims moves at each claim, so that
	 * one who found tid T gone and gives the record back (compare and
	 * swap) never takes it from a later owner that reused T. */
	_Atomic uint64_t owner;
	uint64_t pad;
	uint64_t counted_gen;      /* quiesce.c: the gen whose abandoned
				    * dispatches were counted (+1; 0: none) */
};

#define SP_HIDDEN __attribute__((visibility("hidden")))
extern __thread struct sp_tls sp_tls __attribute__((tls_model("initial-exec"))) SP_HIDDEN;
/* Indexed by "seq": an exclusive stripe's record is its stripe's index,
 * SP_SHARED_SLOT the shared stripe's count, SP_SEAT0 + k the seat k; in
 * what follows, "exclusive" says the same of a seat.  The records below
 * SP_SEAT0 + SP_BOOT_SEATS, then the others once mapped (sp_more_seqs,
 * published before any of them is given). */
extern struct sp_slot_seq sp_slot_seqs[SP_SEAT0 + SP_BOOT_SEATS] SP_HIDDEN;
extern struct sp_slot_seq *_Atomic sp_more_seqs SP_HIDDEN;

/* Record K: one that was given (below sp_tstate_seqs_used). */
static inline struct sp_slot_seq *sp_tstate_rec(int k)
{
	if (__builtin_expect(k < SP_SEAT0 + SP_BOOT_SEATS, 1))
		return &sp_slot_seqs[k];
	return atomic_load_explicit(&sp_more_seqs, memory_order_acquire) + (k - SP_SEAT0 - SP_BOOT_SEATS);
}


/* Once, before the first probe is armed.  0 or -errno. */
int sp_tstate_init(void);
/* The seats a claim may give: at most N (tests that fill every seat with
 * threads; SP_BOOT_SEATS at most, a multiple of 64).  Before any is given. */
void sp_tstate_limit_seats(int n);
/* Claim a stripe for this thread (first hit); returns the stripe index. */
int sp_tstate_claim(void);

/* Probe ids: allocated at attach; freed only after quiescence, counters
 * zeroed.  Id 0 is never given: a site's fast_off of 0 means "no inline count". */
long sp_tstate_alloc_id(void);
void sp_tstate_free_id(uint32_t id);
/* The stripe after S (-1: the first) that may hold counts, or SP_N_SLOTS:
 * only stripes some thread was given are read (per-stripe data indexed
 * the same way, such as latency.h's, too). */
int sp_tstate_next_stripe(int s);
/* The exclusive stripes ever claimed are below it (the parts of bt_shard.h
 * are indexed like them). */
int sp_tstate_slots_used(void);
/* The totals of probe ID over every stripe, into OUT[SP_N_COUNTERS]. */
void sp_tstate_read(uint32_t id, uint64_t *out);
/* In a fork child: only this thread remains, counts start again from zero. */
void sp_tstate_atfork_child(void);

/* The record the thread of T publishes its dispatches of STRIPE in: an
 * exclusive stripe's own; on the shared stripe, its seat if it has one. */
static inline int sp_tstate_seq_of(const struct sp_tls *t, int stripe)
{
	return stripe == SP_SHARED_SLOT && t->seat ? t->seat - 1 : stripe;
}

/* The calling thread's record (-1: no stripe claimed yet). */
static inline int sp_tstate_my_seq(void)
{
	return sp_tstate_seq_of(&sp_tls, sp_tls.slot - 1);
}

/* The records below it are the only ones a thread was ever given. */
int sp_tstate_seqs_used(void);

static inline int sp_tstate_stripe(void)
{
	int s = sp_tls.slot - 1;
	return s >= 0 ? s : sp_tstate_claim();
}

/* Probe ID's counters in stripe S (NULL: S's memory is not mapped, so
 * nothing was ever counted there). */
static inline struct sp_count *sp_stripe_count(int s, uint32_t id)
{
	char *c = sp_stripe(s);
	return c ? (struct sp_count *)(void *)c + id : NULL;
}

/* STRIPE: the calling thread's (sp_tstate_stripe: mapped, so no check). */
static inline void sp_count_add(int stripe, uint32_t id, enum sp_counter which)
{
	uint64_t *p = &((struct sp_count *)(void *)sp_stripe(stripe) + id)->v[which];
	if (__builtin_expect(stripe == SP_SHARED_SLOT, 0))
		__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
	else
		sp_sig_inc(p);
}

/* Enter and leave a dispatch (the C path of a hit, or of a return).  A
 * signal may arrive at any instruction of either, and its handler's hits
 * enter and leave nested dispatches in between: every step leaves the
 * published state right for the dispatches that are running. */
/* From a signal handler, with its ucontext's uc_stack SS: the thread's
 * alternate stack, when armed (one disarmed while its handler runs,
 * SS_AUTODISARM, may be switched away from and back: not noted). */
static inline void sp_tstate_note_altstack(const stack_t *ss)
{
	bool armed = ss->ss_sp && !(ss->ss_flags & (SS_DISABLE | SS_AUTODISARM));
	sp_tls.alt_lo = armed ? (uintptr_t)ss->ss_sp : 0;
	sp_tls.alt_hi = armed ? (uintptr_t)ss->ss_sp + ss->ss_size : 0;
}

/* In the thread, at its next enter or leave: apply the reconciliation a
 * quiescence asked of record SEQ's thread (struct sp_slot_seq's req): leave
 * the dispatches it found abandoned, as sp_tstate_unwind does for a
 * longjmp, if the thread is inside as many as it was then (an enter or a
 * leave applies it first; a longjmp's unwind drops it).  Not in the signal
 * that asked: that signal may have interrupted an enter or a leave, which
 * would then publish a depth read before.  Not decided again either: the
 * frames left may be in use by the dispatch now entered. */
void sp_tstate_reconcile(int seq);

/* STRIPE: the thread's (or SP_SHARED_SLOT), or a record of its (sp_tstate_my_seq). */
static inline void sp_tstate_enter(int stripe)
{
	int k = sp_tstate_seq_of(&sp_tls, stripe);   /* the record changes only outside
						      * every dispatch: at a claim, at
						      * the key destructor */
	struct sp_slot_seq *q = sp_tstate_rec(k);
	if (__builtin_expect(atomic_load_explicit(&q->req, memory_order_relaxed) != 0, 0))
		sp_tstate_reconcile(k);   /* before it reads the depth */
	int d = sp_tls.depth;
	if (__builtin_expect(k == SP_SHARED_SLOT, 0)) {
		if (d == 0)
			atomic_fetch_add_explicit(&q->inflight, 1, memory_order_seq_cst);
	} else {
		atomic_store_explicit(&q->depth, (uint32_t)d + 1, memory_order_relaxed);
	}
	sp_tls.depth = d + 1;
	atomic_signal_fence(memory_order_seq_cst);
	/* after the depth: a longjmp from a signal handler that came before
	 * this store sees 0, "unknown", and rightly counts this dispatch left */
	if (d < SP_DISPATCH_DEPTH) {
		sp_tls.ret[d] = (uintptr_t)__builtin_return_address(0);
		atomic_signal_fence(memory_order_seq_cst);   /* before the frame: read after it */
		sp_tls.frame[d] = (uintptr_t)__builtin_frame_address(0);
	}
	atomic_signal_fence(memory_order_seq_cst);
}

static inline void sp_tstate_leave(int stripe)
{
	int k = sp_tstate_seq_of(&sp_tls, stripe);
	struct sp_slot_seq *q = sp_tstate_rec(k);
	/* inner dispatches this one's handler jumped back out of: left first,
	 * so that this leave is the outermost's when it is */
	if (__builtin_expect(atomic_load_explicit(&q->req, memory_order_relaxed) != 0, 0))
		sp_tstate_reconcile(k);
	atomic_signal_fence(memory_order_seq_cst);
	int d = sp_tls.depth - 1;
	if (d < SP_DISPATCH_DEPTH)
		sp_tls.frame[d] = 0;
	atomic_signal_fence(memory_order_seq_cst);
	if (__builtin_expect(k == SP_SHARED_SLOT, 0)) {
		sp_tls.depth = d;
		if (d == 0)
			atomic_fetch_sub_explicit(&q->inflight, 1, memory_order_release);
		return;
	}
	if (d == 0)
		atomic_store_explicit(&q->gen, atomic_load_explicit(&q->gen, memory_order_relaxed) + 1,
				      memory_order_release);
	atomic_store_explicit(&q->depth, (uint32_t)d, memory_order_release);
	sp_tls.depth = d;
}

/* A dispatch of a task without thread state of its own (foreign.h): in
 * the shared stripe, inside the shared count of threads in a dispatch, so
 * that a detach waits for it.  Enter returns the stripe to count in. */
int sp_tstate_enter_stateless(void);
void sp_tstate_leave_stateless(void);

/* A longjmp (or siglongjmp) to a context whose stack pointer is TARGET_SP is
 * about to leave every dispatch whose frame lies below it: the signal
 * handler it leaves interrupted them, or a handler of ours jumps out.  They
 * are left here, so that a detach does not wait for them for ever.  Called
 * by the interposers, in the thread, before the jump.  Returns the
 * dispatches still running (0: none; the jump leaves the runtime). */
int sp_tstate_unwind(uintptr_t target_sp);

/* Whether the calling thread, stopped at SP (a signal's interrupted
 * context) with [LO, HI) its stack, is inside dispatches of record SEQ it
 * abandoned: how many of its innermost dispatches have a known frame below
 * SP on the same stack (the thread's, or its alternate signal stack), or on
 * the alternate stack while SP is on the thread's (the kernel itself takes
 * an armed alternate stack the thread is not on for free: the next signal
 * on it starts at its top).  It stops at the first that cannot be shown
 * left: a frame not yet known, a frame on the thread's stack and SP on the
 * alternate one (a handler that interrupted the dispatch), a frame or SP
 * on neither (a coroutine's stack), a frame above SP whose return address
 * is still in place (still running; one overwritten was left, its stack
 * reused by the calls the thread made since).  Reads only: signal-safe
 * anywhere, even inside enter or leave.  -1: SEQ is not this thread's. */
int sp_tstate_abandoned_here(int seq, uintptr_t sp, uintptr_t lo, uintptr_t hi, int *depth);
/* The same for another thread, blocked in a system call at SP, from a copy
 * of its sp_tls (COPY), with the alternate stack it noted last. */
int sp_tstate_abandoned_there(const struct sp_tls *copy, uintptr_t sp, uintptr_t lo, uintptr_t hi);
/* Before a quiescence reads the stripes: inline counts in flight restart,
 * every running thread passes a full barrier.  false when the kernel has
 * no membarrier (a reader may then not have published its dispatch yet). */
bool sp_tstate_barrier(void);
/* Ask record SEQ's thread, found inside DEPTH dispatches, to leave its
 * innermost N (sp_tstate_reconcile). */
void sp_tstate_request(int seq, int depth, int n);
/* The thread of a record's owner word (struct sp_slot_seq; 0: none). */
static inline int32_t sp_tstate_owner_tid(uint64_t owner)
{
	return (int32_t)(uint32_t)owner;
}
/* Record SEQ's thread is gone (no key destructor ran: a raw exit) inside
 * dispatches: they are left and the stripe or seat given back, if OWNER
 * (its owner word as read when that thread was found gone) still owns it.
 * One gone outside every dispatch keeps it until a claim needs one (its
 * tid shown gone then).  Returns the dispatches left. */
int sp_tstate_reconcile_gone(int seq, uint64_t owner);
/* A quiescence found N dispatches of record SEQ (inside since GEN)
 * abandoned: counted once for that GEN. */
void sp_tstate_count_abandoned(int seq, uint64_t gen, int n);
/* Dispatches left without returning so far: abandoned by a jump nothing
 * saw, or by their thread's end. */
uint64_t sp_tstate_abandoned_total(void);

#endif
