/* uret — return probes without a trap: the return address is swapped.
 *
 * At a function entry (jmp or int3 path) a probe that wants the return
 * (uretprobe, usession, the latency action) makes dispatch push an entry on
 * this thread's shadow stack — the stack slot of the return address, the
 * original address, the probes, their session cookies, the entry time — and
 * write the address of sp_uret_trampoline into the slot.  The function
 * returns into the trampoline (uret.S), which saves the registers,
 * calls sp_uret_dispatch, and jumps to the original address: no trap, no
 * system call.
 *
 * Frames that never return normally.  longjmp/siglongjmp, an exception or a
 * thread's cancellation unwinds frames whose entries stay on the shadow
 * stack; they are found stale by comparing stack slots (an entry whose slot
 * is below the returning frame's was unwound) and discarded, each return
 * counted as lost.  Unwinders must not meet the trampoline's address where
 * a return address should be: the unwinder entry points the preload
 * interposes (_Unwind_RaiseException, _Unwind_Resume_or_Rethrow,
 * _Unwind_ForcedUnwind, _Unwind_Backtrace, backtrace, pthread_exit) first
 * write the original return addresses back into every slot of this thread
 * (sp_uret_restore_all); those frames then return directly, unprobed, and
 * are counted lost.  A walk that unwinds nothing (backtrace) gets the real
 * addresses for its duration only: the returns stay probed.
 *
 * Signals.  A handler can run between any two instructions of this code,
 * on the same thread, and probe-enter and return itself (from another stack
 * with sigaltstack, so slot addresses do not order its frames), or leave by
 * siglongjmp.  So the shadow stack never moves (MAP_NORESERVE segments
 * per thread, mapped as its calls nest deeper, up to SP_URET_DEPTH entries:
 * uretmem.h), an entry is claimed with one unlocked compare-and-swap of the
 * top before it is filled and removed by marking it free, and the top
 * shrinks with a compare-and-swap (sigatomic.h).  Each entry has a state (below) committed in an order
 * that leaves every interruption point consistent: an entry being pushed or
 * being returned through is never taken for dead, never reused, and the
 * trampoline reads its entry in place while it stays claimed.  A return
 * whose entry is missing (bookkeeping lost, which these rules should make
 * impossible) is recovered from the newest entry that had its slot, counted
 * lost and reported; the trampoline never aborts.
 *
 * Each thread's reservation outlives its key destructors, which run while
 * returns are still pending (__nptl_deallocate_tsd's own): uretmem.h unmaps
 * it once the thread is gone.  Functions whose return address must not be
 * swapped (setjmp, vfork, the unwinders, ...) get no return probe (hazard.h).
 */
#ifndef SP_URET_H
#define SP_URET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "selfprobe.h"

#define SP_URET_PROBES 6              /* return probes per site tracked per call */
#define SP_URET_DEPTH  (1u << 17)     /* shadow entries per thread (deeper: missed;
				       * also where a segment cannot be mapped) */

enum sp_uret_state {
	SP_URET_PENDING,                  /* claimed, not swapped in yet; or being
					   * dropped; and every entry at or above
					   * the top (zero: a fresh page is so) */
	SP_URET_FREE,                     /* removed (a hole until the top shrinks) */
	SP_URET_LIVE,                     /* the slot holds the trampoline */
	SP_URET_PARKED,                   /* orig written back for an unwinder:
					   * waits to learn whether its frame
					   * survived (sp_uret_unpark) */
	SP_URET_BUSY,                     /* its return is being dispatched */
	SP_URET_UNSWAPPED,                /* orig written back for a stack walk */
};

struct sp_probe;
struct sp_site;

struct sp_uret_entry {
	uintptr_t slot;                   /* where the return address lives */
	uintptr_t orig;                   /* the original return address */
	uint8_t state;                    /* enum sp_uret_state */
	uint64_t t0_ns;                   /* entry time, for latency */
	uint32_t n;
	struct sp_probe *p[SP_URET_PROBES];
	uint64_t cookie[SP_URET_PROBES];
};

/* Once, at attach, before any probe wants returns (not signal-safe). */
void sp_uret_prepare(void);
/* In a fork child: the other threads' shadow stacks are gone. */
void sp_uret_atfork_child(void);

/* At entry: claim the shadow entry for a call whose return address sits at
 * RSP (the reservation is made on first use; NULL when it cannot be, or is
 * full).  The caller adds probes with sp_uret_add, then sp_uret_commit swaps
 * the return address (or frees the entry when no probe was added). */
struct sp_uret_entry *sp_uret_begin(uintptr_t rsp);
/* Add P; returns its cookie slot, or NULL when the entry is full. */
uint64_t *sp_uret_add(struct sp_uret_entry *e, struct sp_probe *p);
void sp_uret_drop_last(struct sp_uret_entry *e);
void sp_uret_commit(struct sp_uret_entry *e);
/* Whether P's returns are spans on the timeline (their entry time kept). */
bool sp_uret_wants_span(const struct sp_probe *p);

/* The fast path for count-only uretprobes: one call that pushes the entry
 * for PROBES (N <= SP_URET_PROBES) and swaps the return address.  false
 * when the shadow stack cannot grow (the return is then missed). */
bool sp_uret_push_counted(uintptr_t rsp, struct sp_probe *const *probes, uint32_t n);

/* Called by the return trampoline; REGS->rsp is the caller's rsp after the
 * return.  Writes the address to continue at into REGS->rsp - 8. */
void sp_uret_dispatch(struct selfprobe_regs *regs);

/* Before an unwinder that may unwind: write back every original return
 * address of this thread and park the entries. */
void sp_uret_restore_all(void);

/* An exception was caught by the frame whose rsp is CALLER_RSP: parked
 * entries of frames above it (still on the stack) get the trampoline back;
 * those below were unwound: their returns are lost. */
void sp_uret_unpark(uintptr_t caller_rsp);

/* Around a stack walk that unwinds nothing (backtrace): write the original
 * addresses back, then swap the trampoline in again.  Returns the entries
 * to re-swap. */
size_t sp_uret_unswap(void);
void sp_uret_reswap(size_t n);

/* Before a report: this thread's entries for frames deeper than the
 * caller's own, or whose slot was reused since, are counted lost; returns
 * recovered without their entry (see above) become one error. */
void sp_uret_settle(void);

/* The return trampoline (uret.S). */
void sp_uret_trampoline(void);

#endif
