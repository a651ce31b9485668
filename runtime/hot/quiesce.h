/* quiesce — a detach's wait for the dispatches that may still read what it
 * frees, and only for them: never for ever.
 *
 * Each exclusive stripe publishes its thread's dispatch depth and a gen
 * that moves when it leaves its outermost dispatch (tstate.h).  The wait
 * is for every stripe inside since before now to move, except when its
 * thread will never come back to those dispatches:
 *   - the thread is gone: its key destructor left them (tstate.c), or it
 *     ended without one (a raw exit): its tid no longer exists, and the
 *     wait leaves them for it (sp_tstate_reconcile_gone);
 *   - the thread left them by a jump nothing saw (its own assembly
 *     restoring a context, setcontext, a longjmp linked into a library,
 *     a raw rt_sigreturn): when the stripe makes no progress for a few ms
 *     the thread is asked where its stack pointer is — the stop-check's
 *     real-time signal with a token of its own (SP from the interrupted
 *     context), or, blocked in a system call, /proc/self/task/TID/syscall
 *     (no signal: a program's sleep or wait is never cut short).
 *     Dispatches whose frame lies below that SP on the same stack (the
 *     thread's own, or its alternate signal stack), or above it with the
 *     return address it held overwritten (the thread reused that stack:
 *     a dispatch still running has its own intact), or on the armed
 *     alternate stack while SP is on the thread's own (the kernel takes
 *     that stack for free: its next signal there starts at the top), were
 *     abandoned: the thread leaves them at its next enter or leave
 *     (sp_tstate_reconcile, as sp_tstate_unwind does for a longjmp), they
 *     are counted and reported, and the wait moves on.  A frame on the
 *     thread's stack and SP on the alternate one (a handler that
 *     interrupted the dispatch), either on neither (a coroutine's stack),
 *     an alternate stack disarmed while its handler runs (SS_AUTODISARM:
 *     it may be switched away from and back), a frame not yet recorded, a
 *     blocked thread that may be in a handler of the program's
 *     (sigframes.h): nothing is concluded, the wait goes on.  A dispatch still running (a handler
 *     that sleeps, one in a signal handler on an alternate stack) always
 *     has its frame above its thread's SP and its return address in place,
 *     so it is always waited for.
 * Threads beyond SP_EXCL_SLOTS share a counter stripe, but each has a
 * seat of its own that publishes its dispatches as an exclusive stripe
 * does: it is waited for and asked the same way.  A stripe or seat whose
 * thread ended by a raw exit goes back when a claim needs one (tstate.h),
 * so only threads alive at once hold them, and there are more seats than
 * a process can have threads (PID_MAX_LIMIT).  A hit made inside its
 * thread's claim (a signal handler's) or after its key destructor (a
 * later destructor, libc's freeing at thread exit) publishes in a record
 * of its thread's too (tstate.h).  Only a vfork child's hit on a thread
 * that has no record yet, a task's on another thread's storage
 * (foreign.h), and, where the seats beyond the first SP_BOOT_SEATS cannot
 * be mapped, a hit of a thread that finds every seat held, is counted in
 * the shared stripe's number of threads inside, which
 * says how many, not which: a dispatch it abandons by a jump nothing saw,
 * or by a raw exit, makes the wait the plain one, for ever (its key
 * destructor takes an ordinary end of it inside one out of that number).
 */
#ifndef SP_QUIESCE_H
#define SP_QUIESCE_H

#include <signal.h>

/* Wait until no thread is still inside a dispatch or an inline count that
 * began before now, or has left it for good. */
void sp_quiesce(void);

/* In a fork child (after sp_tstate_atfork_child). */
void sp_quiesce_atfork_child(void);

/* From the stop-check signal's handler (trap.c): is this a quiescence's
 * question?  If so, answer it from the interrupted context UC; 1. */
int sp_quiesce_on_signal(const siginfo_t *si, void *uc);

#endif
