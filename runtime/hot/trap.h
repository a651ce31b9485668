/* trap — the int3 path: the SIGTRAP handler and keeping it ours.
 *
 * A hit: the kernel delivers SIGTRAP (si_code SI_KERNEL) with rip just past
 * the int3.  The handler looks the site up (lock-free), runs dispatch on a
 * selfprobe_regs copied from the ucontext, writes back what the handlers
 * changed, then resumes with one trap: the displaced instruction is emulated
 * on the ucontext, or rip is sent to its out-of-line copy, which jumps back.
 * A trap at an address that is not ours goes to the handler the application
 * installed (or the default action, as if we were not there).
 *
 * The handler is installed with SA_SIGINFO|SA_ONSTACK|SA_NODEFER: NODEFER
 * because a probe hit inside a handler (ours or the application's) must
 * trap again, and the kernel kills a process whose int3 fires with SIGTRAP
 * blocked.  For the same reason the interposed sigprocmask/pthread_sigmask
 * and sigaction keep SIGTRAP out of every blocked set while probes exist,
 * and the application's sigaction(SIGTRAP) is recorded and chained to
 * rather than replacing ours.  The same holds for the real-time signal the
 * stop-check uses (stopworld.h).
 */
#ifndef SP_TRAP_H
#define SP_TRAP_H

#include <signal.h>
#include <stdbool.h>

/* Install the SIGTRAP and stop-check handlers (once).  0 or -errno. */
int sp_trap_install(void);

/* The libc entry points interpose/sigintercept.c takes over, as they act
 * while the runtime owns its signals: an owned signal's action is recorded
 * as the application's, owned signals stay out of blocked masks, other
 * signals' handlers run behind the wrapper (sigwrap.h).  Same contracts as
 * libc's.  sp_trap_signal: WHICH indexes signal, bsd_signal, sysv_signal,
 * __sysv_signal; FLAGS their sigaction flags. */
int sp_trap_sigaction(int sig, const struct sigaction *act, struct sigaction *oact);
sighandler_t sp_trap_signal(int which, int sig, sighandler_t h, int flags);
int sp_trap_sigprocmask(int how, const sigset_t *set, sigset_t *old);
int sp_trap_pthread_sigmask(int how, const sigset_t *set, sigset_t *old);
/* sigset(3) as glibc's, its mask and action through the two above (libc's
 * own reaches the kernel directly). */
sighandler_t sp_trap_sigset(int sig, sighandler_t disp);
/* Whether SIG is owned now: its action is recorded as the application's,
 * never given to the kernel, and it is never blocked. */
bool sp_trap_owned(int sig);
/* The mask a thread waits with (sigsuspend, ppoll, pselect, epoll_pwait)
 * is also the one a handler run meanwhile starts from, where a blocked
 * SIGTRAP kills at the first int3 hit (a blocked SIGSEGV at the first
 * fault a write of ours makes): SET, or COPY holding SET without the owned
 * signals raised by the thread's own instructions.  The stop-check's
 * signal stays as asked: these calls are never restarted, and a check
 * arriving would end the wait early. */
const sigset_t *sp_trap_wait_mask(const sigset_t *set, sigset_t *copy);
/* A BSD mask of signals 1-32 (sigblock, sigsetmask) without the owned ones. */
int sp_trap_bsd_mask(int mask);

/* A runtime loaded late (`selfprobe attach` into a process started without
 * the preload) is not first in symbol lookup: the program's sigaction and
 * pthread_sigmask calls reach libc, not interpose/.  The engine then
 * redirects libc's own entry points here (engine/sigtake.h):
 *
 * sp_trap_go_raw: from now on (for good) the runtime's "real" sigaction,
 * sigprocmask and pthread_sigmask are system calls made here as glibc makes
 * them, never libc's functions (they lead back here).  Installs the
 * handlers first.  0 or -errno.
 *
 * sp_trap_retake: after sp_trap_go_raw, every owned signal whose kernel
 * action is no longer ours (the program set one while nothing led its
 * calls here) becomes the program's recorded action, and ours goes back.
 * 0 or -errno.
 *
 * sp_trap_entry_*: where libc's __sigaction and pthread_sigmask jump, with
 * their contracts (glibc 2.36's checks: its internal signals refused). */
int sp_trap_go_raw(void);
int sp_trap_retake(void);
/* Before libc's entry points are given back: the program's handlers of
 * other signals, installed behind the wrapper (sigwrap.h) while they led
 * here, go to the kernel as its own, and later ones are not wrapped (a
 * read-back through libc then finds the program's handler).  The owned
 * signals keep ours (sigtake.h says why). */
void sp_trap_give_back(void);
/* A runtime loaded late, once nothing of ours can trap any more (every
 * site restored, and every thread has been through a stop check since, so
 * a trap raised before the restore has been delivered to our handler): the
 * program's own actions of the owned signals go back to the kernel, so a
 * read-back through libc between sessions finds them.  Nothing is done
 * while one of our stop signals is still on its way (it would meet the
 * program's action), nor when preloaded.  0 or -errno. */
int sp_trap_uninstall(void);
int sp_trap_entry_sigaction(int sig, const struct sigaction *act, struct sigaction *oact);
int sp_trap_entry_pthread_sigmask(int how, const sigset_t *set, sigset_t *old);
/* Our handler of SIG, or NULL when SIG is not one we own. */
void *sp_trap_own_handler(int sig);

#endif
