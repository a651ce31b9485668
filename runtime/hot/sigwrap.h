/* sigwrap — the application's signal handlers run as fresh contexts.
 *
 * An asynchronous signal can interrupt the runtime anywhere: inside
 * dispatch (the recursion guard set), inside the runtime's own libc calls
 * (sp_tls.runtime set), inside a plugin handler (the fault guard armed).
 * Those marks are about the interrupted code, not the signal handler: a
 * probe hit in the handler is an ordinary hit of the application and must
 * count, run its handlers and track its return like any other.  Kernel
 * uprobes see it so.
 *
 * So the interposed sigaction()/signal() install, for every signal the
 * runtime does not own (trap.h), a wrapper in place of the application's
 * handler.  The wrapper saves those marks, clears them, calls the
 * application's handler as it asked (SA_SIGINFO or not), and restores them.
 * The kernel keeps everything else the application asked for (mask,
 * SA_NODEFER, SA_ONSTACK, SA_RESTART, SA_RESETHAND).  sigaction's and
 * signal()'s old action report the application's own handler, never the
 * wrapper; after an SA_RESETHAND delivery the kernel's SIG_DFL.  A handler
 * that leaves by siglongjmp leaves the marks cleared, which is right for
 * the code it jumps to (the runtime is never a jump target).  Updates of
 * one signal's action are serialized (a spin lock taken with every signal
 * blocked: sigaction is async-signal-safe, so no mutex).
 *
 * Handlers installed with a raw rt_sigaction system call, or with an old
 * binary's sigvec() (sigset() is interposed too), are not wrapped: their hits while the runtime was interrupted
 * are counted missed (inside dispatch) or not at all (inside the runtime's
 * own calls) as before.
 */
#ifndef SP_SIGWRAP_H
#define SP_SIGWRAP_H

#include <signal.h>

#include "tstate.h"

struct sp_probe;

/* What a signal handler of the application must not inherit. */
struct sp_sigctx {
	int inside, runtime;
	struct sp_probe *guard;
};

struct sp_sigctx sp_sigctx_fresh(void);
void sp_sigctx_restore(struct sp_sigctx saved);

typedef int (*sp_sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*sp_signal_fn)(int, sighandler_t);

/* sigaction(SIG, ACT, OACT) for a signal the runtime does not own, through
 * REAL (libc's), with the wrapper in place of ACT's handler. */
int sp_sigwrap_sigaction(sp_sigaction_fn real, int sig, const struct sigaction *act,
			 struct sigaction *oact);
/* A: an action read from the kernel; the wrapper in it becomes the
 * application's handler (a signal the runtime takes over later, trap.c). */
void sp_sigwrap_unwrap(int sig, struct sigaction *a);

/* Every handler the kernel holds behind the wrapper goes back to the kernel
 * as the application's own (same flags and mask), through REAL, and from
 * now on sp_sigwrap_sigaction installs handlers unwrapped, until
 * sp_sigwrap_wrap_again: a runtime loaded late giving libc's entry points
 * back at a detach (sigtake.h) leaves no handler of its own behind. */
void sp_sigwrap_unwrap_all(sp_sigaction_fn real);
void sp_sigwrap_wrap_again(void);

/* The same for signal() and its variants (REAL: libc's own). */
/* SIG is the runtime's own (trap.c): updates never block it.  The
 * synchronous signals (SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGILL) never are. */
void sp_sigwrap_never_block(int sig);

sighandler_t sp_sigwrap_signal(sp_signal_fn real, int sig, sighandler_t h);

#endif
