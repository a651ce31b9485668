/* sigwrap — see sigwrap.h. */
#include "sigwrap.h"
#include "foreign.h"
#include "rawsys.h"
#include "guard.h"
#include "sigframes.h"
#include "tstate.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <ucontext.h>

/* The application's handler of each signal, as it asked for it. */
struct app_handler {
	_Atomic(void *) fn;
	_Atomic int flags;
};
static struct app_handler app[NSIG];
static atomic_flag update_lock = ATOMIC_FLAG_INIT;
/* Handlers go to the kernel as given, unwrapped (sp_sigwrap_unwrap_all):
 * a runtime loaded late between sessions, whose entry points lead here
 * only while a session holds libc's (sigtake.h). */
static _Atomic bool passthrough;
static __thread bool holding __attribute__((tls_model("initial-exec")));

struct sp_sigctx sp_sigctx_fresh(void)
{
	struct sp_sigctx s = { sp_tls.inside, sp_tls.runtime, sp_guard_suspend() };
	sp_tls.inside = 0;
	sp_tls.runtime = 0;
	atomic_signal_fence(memory_order_seq_cst);
	return s;
}

void sp_sigctx_restore(struct sp_sigctx s)
{
	atomic_signal_fence(memory_order_seq_cst);
	sp_tls.inside = s.inside;
	sp_tls.runtime = s.runtime;
	sp_guard_resume(s.guard);
}

static void call_app(int sig, siginfo_t *si, void *uc)
{
	if (sig <= 0 || sig >= NSIG)
		return;
	void *fn = atomic_load_explicit(&app[sig].fn, memory_order_acquire);
	int flags = atomic_load_explicit(&app[sig].flags, memory_order_relaxed);
	if (!fn)
		;
	else if (flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
	else
		((void (*)(int))fn)(sig);
}

static void wrapper(int sig, siginfo_t *si, void *uc)
{
	/* a task running with another thread's TLS (foreign.h): that
	 * thread's frames, guard and flags are not its own to save */
	if (sp_foreign()) {
		call_app(sig, si, uc);
		return;
	}
	int frame = sp_sigframes_push(uc);   /* where it resumes, for the stop-check */
	sp_tstate_note_altstack(&((ucontext_t *)uc)->uc_stack);   /* and for a quiescence */
	struct sp_sigctx saved = sp_sigctx_fresh();
	call_app(sig, si, uc);
	sp_sigctx_restore(saved);
	sp_sigframes_pop(frame);
}

/* The wrapper as signal() takes it: the kernel passes the siginfo and
 * ucontext pointers to every handler on x86-64 whatever its flags. */
static sighandler_t wrapper_1(void)
{
	void *w = (void *)wrapper;
	return (sighandler_t)w;
}

static bool is_function(sighandler_t h)
{
	return h != SIG_DFL && h != SIG_IGN && h != SIG_ERR;
}

/* rt_sigprocmask without libc: the application's probed sigprocmask must
 * not count our calls. */
static void raw_mask(int how, const uint64_t *set, uint64_t *old)
{
	sp_syscall6(SYS_rt_sigprocmask, how, (long)set, (long)old, sizeof(*set), 0, 0);
}

/* Signals never blocked here: the runtime's own (SIGTRAP for int3 sites —
 * libc's sigaction itself may be one, and an int3 with SIGTRAP blocked
 * kills the process —, the faults, the stop check), set by trap.c. */
#define SIGBIT(s) ((uint64_t)1 << ((s) - 1))
static uint64_t never_blocked = SIGBIT(SIGTRAP) | SIGBIT(SIGSEGV) | SIGBIT(SIGBUS) |
				SIGBIT(SIGFPE) | SIGBIT(SIGILL);

void sp_sigwrap_never_block(int sig)
{
	if (sig > 0 && sig <= 64)
		never_blocked |= SIGBIT(sig);
}

/* Serialize updates: every other signal blocked (a handler on this thread
 * cannot come in and spin on the lock), then the lock.  Re-entered from
 * within an update (a probe handler on libc's sigaction calling sigaction,
 * or a handler of ours): no lock. */
static bool lock(uint64_t *old)
{
	if (holding)
		return false;
	const uint64_t all = ~never_blocked;
	raw_mask(SIG_BLOCK, &all, old);
	while (atomic_flag_test_and_set_explicit(&update_lock, memory_order_acquire))
		__builtin_ia32_pause();
	holding = true;
	return true;
}

static void unlock(bool locked, const uint64_t *old)
{
	if (!locked)
		return;
	holding = false;
	atomic_flag_clear_explicit(&update_lock, memory_order_release);
	raw_mask(SIG_SETMASK, old, NULL);
}

int sp_sigwrap_sigaction(sp_sigaction_fn real, int sig, const struct sigaction *act,
			 struct sigaction *oact)
{
	if (sig <= 0 || sig >= NSIG)
		return real(sig, act, oact);   /* libc says EINVAL */
	uint64_t mask;
	bool locked = lock(&mask);
	void *prev_fn = atomic_load(&app[sig].fn);
	int prev_flags = atomic_load(&app[sig].flags);
	struct sigaction copy;
	const struct sigaction *give = act;
	if (act && is_function(act->sa_handler) && !atomic_load(&passthrough)) {
		/* recorded before the kernel can call the wrapper for it */
		atomic_store(&app[sig].flags, act->sa_flags);
		atomic_store_explicit(&app[sig].fn, (act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction
										 : (void *)act->sa_handler,
				      memory_order_release);
		copy = *act;
		copy.sa_sigaction = wrapper;   /* the same field as sa_handler */
		give = &copy;
	}
	int rc = real(sig, give, oact);
	if (rc != 0 && give == &copy) {
		atomic_store(&app[sig].fn, prev_fn);
		atomic_store(&app[sig].flags, prev_flags);
	}
	if (rc == 0 && oact && oact->sa_sigaction == wrapper)
		oact->sa_sigaction = (void (*)(int, siginfo_t *, void *))prev_fn;
	unlock(locked, &mask);
	return rc;
}

void sp_sigwrap_unwrap_all(sp_sigaction_fn real)
{
	uint64_t mask;
	bool locked = lock(&mask);
	atomic_store(&passthrough, true);
	for (int sig = 1; sig < NSIG; sig++) {
		void *fn = atomic_load(&app[sig].fn);
		struct sigaction now;
		if (!fn || real(sig, NULL, &now) != 0 || now.sa_sigaction != wrapper)
			continue;   /* never wrapped, or replaced, or reset (SA_RESETHAND) */
		now.sa_sigaction = (void (*)(int, siginfo_t *, void *))fn;
		real(sig, &now, NULL);   /* the same flags and mask, the handler itself */
	}
	unlock(locked, &mask);
}

void sp_sigwrap_wrap_again(void)
{
	atomic_store(&passthrough, false);
}

void sp_sigwrap_unwrap(int sig, struct sigaction *a)
{
	if (sig > 0 && sig < NSIG && a->sa_sigaction == wrapper)
		a->sa_sigaction = (void (*)(int, siginfo_t *, void *))atomic_load(&app[sig].fn);
}

sighandler_t sp_sigwrap_signal(sp_signal_fn real, int sig, sighandler_t h)
{
	if (sig <= 0 || sig >= NSIG)
		return real(sig, h);   /* libc says EINVAL */
	uint64_t mask;
	bool locked = lock(&mask);
	void *prev_fn = atomic_load(&app[sig].fn);
	int prev_flags = atomic_load(&app[sig].flags);
	bool wrap = is_function(h);
	if (wrap) {
		atomic_store(&app[sig].flags, 0);
		atomic_store_explicit(&app[sig].fn, (void *)h, memory_order_release);
	}
	sighandler_t old = real(sig, wrap ? wrapper_1() : h);
	if (old == SIG_ERR && wrap) {
		atomic_store(&app[sig].fn, prev_fn);
		atomic_store(&app[sig].flags, prev_flags);
	} else if (old == wrapper_1())
		old = (sighandler_t)prev_fn;
	unlock(locked, &mask);
	return old;
}
