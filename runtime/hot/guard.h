/* guard — a handler that faults does not take the application down.
 *
 * Handlers are called through sp_guard_call: it marks the thread as inside
 * that handler and keeps a jump buffer (__builtin_setjmp: no libc call, so
 * a probe on libc's setjmp is not hit by our own hot path).  A SIGSEGV,
 * SIGBUS, SIGFPE or SIGILL raised while the mark is set is the handler's:
 * its probe is disabled (it counts on, its handler is not called again),
 * the fault is recorded for the report (signal and address), and the
 * thread resumes right after the handler call, as if it had returned 0.
 * The fault signals are owned like SIGTRAP (trap.h): installed with
 * SA_NODEFER so a long jump out of the signal leaves them unblocked, and an
 * application's handler for them is chained to for every other fault.
 * No peer does this for native handlers; the cost is a setjmp per call.
 */
#ifndef SP_GUARD_H
#define SP_GUARD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "selfprobe.h"

struct sp_probe;

/* Call P's handler with CTX under the guard.  Its result, or 0 after a
 * fault (the probe is then disabled). */
int sp_guard_call(struct sp_probe *p, struct selfprobe_ctx *ctx);

/* The same with the context built here: REGS, the session COOKIE (or
 * NULL), whether this is the RETURN call, the int3 path's UCONTEXT (or
 * NULL on the jmp path and at returns). */
int sp_guard_call_handler(struct sp_probe *p, struct selfprobe_regs *regs, void *ucontext,
			  uint64_t *cookie, bool is_return);

/* FN touches no vector register unless it saved them itself (compiled
 * -mgeneral-regs-only, calling sp_call_preserving_vectors where it needs
 * libc): on the jmp path it is called without the XSAVE/XRSTOR around it,
 * which costs more than a small handler (bt.h's evaluator).  At most 4. */
void sp_guard_vector_safe(selfprobe_handler_fn fn);

/* Around an application signal handler (sigwrap.h): a fault in it is not
 * the interrupted probe handler's.  Suspend returns what resume restores. */
struct sp_probe *sp_guard_suspend(void);
void sp_guard_resume(struct sp_probe *p);

/* From the fault handlers: jumps back into sp_guard_call (no return) when
 * the fault is a handler's; returns otherwise. */
void sp_guard_on_fault(int sig, const siginfo_t *si);

#endif
