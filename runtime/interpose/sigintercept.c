/* sigintercept — libc's signal entry points, interposed (exported by the
 * version script, runtime/selfprobe.map) so that the runtime's SIGTRAP,
 * stop-check and fault handlers stay first and deliverable when the
 * application installs its own or blocks signals.  What they do is the
 * trap handler's business (trap.h); here only the names libc gives them.
 * Linked into libselfprobe.so, never into the launcher.
 *
 * libc's functions that set a mask or an action through its internal
 * __sigprocmask/__sigaction (sigsuspend, ppoll, pselect, epoll_pwait,
 * sigblock, sigsetmask, sighold, sigset, sigignore) never reach the
 * interposed sigprocmask/sigaction: each is taken here too.  Where the
 * application's arguments leave the owned signals alone, libc's own
 * function runs with them unchanged (a probe on it counts the call as
 * usual); otherwise with the owned signals taken out, or, for an action or
 * a hold of an owned signal, which libc's function would give the kernel,
 * carried out as libc would by the trap handler's entry points (and
 * sigset's handler of another signal installed behind the wrapper). */
#include "trap.h"
#include "tstate.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/select.h>

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

/* ---- libc's functions that bypass the two above ---- */

/* libc's functions, looked up before the program runs (sigsuspend, ppoll
 * and pselect may be called from a signal handler, where dlsym must not
 * run); lazily only as a fallback.  The lookups are the runtime's, not
 * counted as the application's calls. */
enum { SUSPEND, PPOLL, PPOLL_CHK, PSELECT, EPOLL_PWAIT, EPOLL_PWAIT2, SIGBLOCK, SIGSETMASK, SIGHOLD,
       SIGIGNORE, SIGSET, N_REAL };
static const char *const real_names[N_REAL] = {
	"sigsuspend", "ppoll", "__ppoll_chk", "pselect", "epoll_pwait", "epoll_pwait2", "sigblock",
	"sigsetmask", "sighold", "sigignore", "sigset",
};
static void *_Atomic real_fns[N_REAL];

static void *real_fn(int which)
{
	void *f = atomic_load_explicit(&real_fns[which], memory_order_acquire);
	if (!f) {
		sp_tls.runtime++;
		f = dlsym(RTLD_NEXT, real_names[which]);
		sp_tls.runtime--;
		atomic_store_explicit(&real_fns[which], f, memory_order_release);
	}
	if (!f)
		errno = ENOSYS;
	return f;
}

__attribute__((constructor)) static void find_reals(void)
{
	for (int i = 0; i < N_REAL; i++)
		real_fn(i);
}

#define REAL(type, which) \
	__typeof__(type) real = (__typeof__(type))real_fn(which); \
	if (!real) \
		return -1

/* Waiting with a mask: the handlers run meanwhile start from it. */
INTERPOSE int sigsuspend(const sigset_t *set)
{
	REAL(int (*)(const sigset_t *), SUSPEND);
	sigset_t copy;
	return real(sp_trap_wait_mask(set, &copy));
}
INTERPOSE int __sigsuspend(const sigset_t *set) { return sigsuspend(set); }

INTERPOSE int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *set)
{
	REAL(int (*)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *), PPOLL);
	sigset_t copy;
	return real(fds, n, tmo, sp_trap_wait_mask(set, &copy));
}

INTERPOSE int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *set,
			  size_t fds_len)
{
	REAL(int (*)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t),
	     PPOLL_CHK);
	sigset_t copy;
	return real(fds, n, tmo, sp_trap_wait_mask(set, &copy), fds_len);
}

INTERPOSE int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *tmo, const sigset_t *set)
{
	REAL(int (*)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *), PSELECT);
	sigset_t copy;
	return real(n, r, w, e, tmo, sp_trap_wait_mask(set, &copy));
}

INTERPOSE int epoll_pwait(int fd, struct epoll_event *ev, int max, int tmo, const sigset_t *set)
{
	REAL(int (*)(int, struct epoll_event *, int, int, const sigset_t *), EPOLL_PWAIT);
	sigset_t copy;
	return real(fd, ev, max, tmo, sp_trap_wait_mask(set, &copy));
}

INTERPOSE int epoll_pwait2(int fd, struct epoll_event *ev, int max, const struct timespec *tmo,
			   const sigset_t *set)
{
	REAL(int (*)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *), EPOLL_PWAIT2);
	sigset_t copy;
	return real(fd, ev, max, tmo, sp_trap_wait_mask(set, &copy));
}

/* BSD masks of signals 1-32. */
INTERPOSE int sigblock(int mask)
{
	REAL(int (*)(int), SIGBLOCK);
	return real(sp_trap_bsd_mask(mask));
}

INTERPOSE int sigsetmask(int mask)
{
	REAL(int (*)(int), SIGSETMASK);
	return real(sp_trap_bsd_mask(mask));
}

/* System V's: an owned signal is never held; its action is recorded. */
INTERPOSE int sighold(int sig)
{
	if (sp_trap_owned(sig))
		return 0;
	REAL(int (*)(int), SIGHOLD);
	return real(sig);
}

INTERPOSE int sigignore(int sig)
{
	if (sp_trap_owned(sig)) {
		struct sigaction act = { .sa_handler = SIG_IGN };
		return sp_trap_sigaction(sig, &act, NULL);
	}
	REAL(int (*)(int), SIGIGNORE);
	return real(sig);
}

INTERPOSE sighandler_t sigset(int sig, sighandler_t disp)
{
	if (sp_trap_owned(sig) || (disp != SIG_HOLD && disp != SIG_DFL && disp != SIG_IGN))
		return sp_trap_sigset(sig, disp);
	__typeof__(sighandler_t (*)(int, sighandler_t)) real = real_fn(SIGSET);
	return real ? real(sig, disp) : SIG_ERR;
}
