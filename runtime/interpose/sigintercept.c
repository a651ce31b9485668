/* sigintercept — libc's signal entry points, interposed (exported by the
 * version script, runtime/selfprobe.map) so that the runtime's SIGTRAP,
 * stop-check and fault handlers stay first and deliverable when the
 * application installs its own or blocks signals.  What they do is the
 * trap handler's business (trap.h); here only the names libc gives them.
 * Linked into libselfprobe.so, never into the launcher. */
#include "trap.h"

#include <signal.h>

#define INTERPOSE __attribute__((visibility("default")))

INTERPOSE int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	return sp_trap_sigaction(sig, act, oact);
}

INTERPOSE sighandler_t signal(int sig, sighandler_t h) { return sp_trap_signal(0, sig, h, SA_RESTART); }
INTERPOSE sighandler_t bsd_signal(int sig, sighandler_t h) { return sp_trap_signal(1, sig, h, SA_RESTART); }
INTERPOSE sighandler_t sysv_signal(int sig, sighandler_t h)
{
	return sp_trap_signal(2, sig, h, SA_RESETHAND | SA_NODEFER);
}
INTERPOSE sighandler_t __sysv_signal(int sig, sighandler_t h)
{
	return sp_trap_signal(3, sig, h, SA_RESETHAND | SA_NODEFER);
}

INTERPOSE int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return sp_trap_sigprocmask(how, set, old);
}

INTERPOSE int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return sp_trap_pthread_sigmask(how, set, old);
}
