/* trap — see trap.h.  The signal path calls one libc function, and only
 * when it gives a signal that is not ours its default action: sigaction
 * (real_sigaction: libc's, or the raw call once sigtake leads libc's here).
 * Its system calls are raw (rawsys.h: no errno, no PLT, nothing a probe
 * sits on); everything it touches is preallocated. */
#include "trap.h"
#include "coexist.h"
#include "dispatch.h"
#include "emulate.h"
#include "log.h"
#include "site.h"
#include "guard.h"
#include "patch.h"
#include "quiesce.h"
#include "rawsys.h"
#include "sigwrap.h"
#include "stopworld.h"
#include "tramp.h"
#include "foreign.h"
#include "tstate.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <asm/prctl.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef int (*sigmask_fn)(int, const sigset_t *, sigset_t *);

typedef sighandler_t (*signal_fn)(int, sighandler_t);
static sigaction_fn real_sigaction;
static sigmask_fn real_sigprocmask, real_pthread_sigmask;
/* libc's signal, bsd_signal, sysv_signal, __sysv_signal */
static const char *const signal_names[] = { "signal", "bsd_signal", "sysv_signal", "__sysv_signal" };
static signal_fn real_signal[4];
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool installed;
/* The signals we own: SIGTRAP (int3 hits) and a real-time signal for the
 * stop-check (stopworld.h).  The stop-check cannot ride on SIGTRAP: a
 * standard signal is pending at most once per thread, so a queued check
 * and a thread's own int3 trap would swallow each other.  A real-time
 * signal queues.  What the application asked for each is kept here and
 * called for the signals that are not ours. */
enum { OWN_TRAP, OWN_STOP, OWN_SEGV, OWN_BUS, OWN_FPE, OWN_ILL, N_OWN };
static struct sigaction app_action[N_OWN];
static int own_sig[N_OWN];

static int own_index(int sig)
{
	if (!atomic_load(&installed))
		return -1;
	for (int i = 0; i < N_OWN; i++)
		if (own_sig[i] == sig)
			return i;
	return -1;
}

/* sigset_t bits by hand: the interposers below run on the application's
 * behalf, and libc's sigdelset/sigismember would count as its calls. */
#define SET_WORD(set, sig) ((set)->__val[((sig) - 1) / (8 * sizeof((set)->__val[0]))])
#define SET_BIT(sig) (1UL << (((sig) - 1) % (8 * sizeof(unsigned long))))

/* The owned signals out of SET, all but KEEP (an OWN_ index, or -1). */
static void mask_owned_but(sigset_t *set, int keep)
{
	for (int i = 0; i < N_OWN; i++)
		if (i != keep)
			SET_WORD(set, own_sig[i]) &= ~SET_BIT(own_sig[i]);
}

static bool any_owned_but(const sigset_t *set, int keep)
{
	for (int i = 0; i < N_OWN; i++)
		if (i != keep && (SET_WORD(set, own_sig[i]) & SET_BIT(own_sig[i])))
			return true;
	return false;
}

static void mask_owned(sigset_t *set) { mask_owned_but(set, -1); }
static bool any_owned(const sigset_t *set) { return any_owned_but(set, -1); }

/* ---- a runtime loaded late: libc's own entry points lead here (below) ----
 *
 * Its "real" functions are then system calls made here, never libc's:
 * libc's sigaction and pthread_sigmask jump into this file (sigtake.h), so
 * calling them would come straight back.  They do what glibc's do (2.36:
 * sysdeps/unix/sysv/linux/libc_sigaction.c, pthread_sigmask.c): the
 * kernel's struct with SA_RESTORER and libc's restorer, the C library's
 * internal signals (SIGCANCEL 32, SIGSETXID 33) refused or left alone. */
static _Atomic bool raw_mode;
static void *restorer;   /* libc's __restore_rt, read back from our own handler */

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

#ifndef SA_RESTORER   /* the kernel's, not in libc's headers */
#define SA_RESTORER 0x04000000
#endif
#define LIBC_INTERNAL(sig) ((sig) == 32 || (sig) == 33)

static int raw_sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	struct ksigaction k, ko;
	if (act) {
		k.handler = (void *)act->sa_handler;
		k.flags = (unsigned long)act->sa_flags | SA_RESTORER;
		k.restorer = restorer;   /* glibc's own always, whatever the caller's */
		k.mask = act->sa_mask.__val[0];
	}
	long rc = sp_syscall6(SYS_rt_sigaction, sig, act ? (long)&k : 0, oact ? (long)&ko : 0, 8, 0, 0);
	if (rc < 0) {
		errno = (int)-rc;
		return -1;
	}
	if (oact) {
		/* field by field: no memset call on the application's behalf */
		volatile unsigned long *w = oact->sa_mask.__val;
		for (size_t i = 1; i < sizeof(oact->sa_mask.__val) / sizeof(oact->sa_mask.__val[0]); i++)
			w[i] = 0;
		oact->sa_mask.__val[0] = ko.mask;
		oact->sa_handler = (sighandler_t)ko.handler;
		oact->sa_flags = (int)ko.flags;
		oact->sa_restorer = (void (*)(void))ko.restorer;
	}
	return 0;
}

/* pthread_sigmask's contract: 0 or the error number. */
static int raw_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	uint64_t s, o;
	if (set) {
		s = set->__val[0] & ~((1ULL << 31) | (1ULL << 32));   /* SIGCANCEL, SIGSETXID */
	}
	long rc = sp_syscall6(SYS_rt_sigprocmask, how, set ? (long)&s : 0, old ? (long)&o : 0, 8, 0, 0);
	if (rc < 0)
		return (int)-rc;
	if (old) {
		volatile unsigned long *w = old->__val;
		for (size_t i = 1; i < sizeof(old->__val) / sizeof(old->__val[0]); i++)
			w[i] = 0;
		old->__val[0] = o;
	}
	return 0;
}

/* sigprocmask's: 0, or -1 and errno. */
static int raw_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	int rc = raw_pthread_sigmask(how, set, old);
	if (rc) {
		errno = rc;
		return -1;
	}
	return 0;
}

static void resolve_real(void)
{
	if (atomic_load_explicit(&raw_mode, memory_order_acquire))
		return;
	if (!real_sigaction) {
		real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
		if (!real_sigaction)
			real_sigaction = (sigaction_fn)dlsym(RTLD_DEFAULT, "__sigaction");
	}
	if (!real_sigprocmask)
		real_sigprocmask = (sigmask_fn)dlsym(RTLD_NEXT, "sigprocmask");
	if (!real_pthread_sigmask)
		real_pthread_sigmask = (sigmask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
	for (int i = 0; i < 4; i++)
		if (!real_signal[i])
			real_signal[i] = (signal_fn)dlsym(RTLD_NEXT, signal_names[i]);
}

/* ucontext gregs ↔ selfprobe_regs.  Explicit fields: no memcpy calls. */
#define GREGS_MAP(X) \
	X(r15, REG_R15) X(r14, REG_R14) X(r13, REG_R13) X(r12, REG_R12) X(rbp, REG_RBP) \
	X(rbx, REG_RBX) X(r11, REG_R11) X(r10, REG_R10) X(r9, REG_R9) X(r8, REG_R8) \
	X(rax, REG_RAX) X(rcx, REG_RCX) X(rdx, REG_RDX) X(rsi, REG_RSI) X(rdi, REG_RDI) \
	X(rip, REG_RIP) X(eflags, REG_EFL) X(rsp, REG_RSP)

static void regs_from(struct selfprobe_regs *r, const greg_t *g)
{
#define X(f, i) r->f = (uint64_t)g[i];
	GREGS_MAP(X)
#undef X
}

static void regs_to(greg_t *g, const struct selfprobe_regs *r)
{
#define X(f, i) g[i] = (greg_t)r->f;
	GREGS_MAP(X)
#undef X
}

/* arch_prctl without libc's syscall(): no errno, no PLT on the signal path. */
static uint64_t seg_base(int code)
{
	unsigned long v = 0;
	long rc = sp_syscall6(SYS_arch_prctl, code, (long)&v, 0, 0, 0, 0);
	return rc == 0 ? v : 0;
}

/* Send SIG to this thread again (raw, as above): a signal sent with kill,
 * once its default disposition is back. */
static void resend(int sig)
{
	sp_syscall6(SYS_tgkill, sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0), sp_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0),
		    sig, 0, 0, 0);
}

/* Not ours: behave as if our handler were not there. */
static void chain(int which, int sig, siginfo_t *si, void *uc)
{
	struct sigaction a = app_action[which];
	if (a.sa_flags & SA_SIGINFO) {
		if (a.sa_sigaction) {
			if (a.sa_flags & SA_RESETHAND)
				app_action[which].sa_handler = SIG_DFL;
			struct sp_sigctx saved = sp_sigctx_fresh();   /* sigwrap.h */
			a.sa_sigaction(sig, si, uc);
			sp_sigctx_restore(saved);
			return;
		}
	} else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) {
		if (a.sa_flags & SA_RESETHAND)
			app_action[which].sa_handler = SIG_DFL;
		struct sp_sigctx saved = sp_sigctx_fresh();
		a.sa_handler(sig);
		sp_sigctx_restore(saved);
		return;
	}
	/* SIG_IGN: a signal sent with kill is ignored, but the kernel never
	 * lets a real trap be ignored, so it gets the default action too. */
	if (a.sa_handler == SIG_IGN && si->si_code != SI_KERNEL)
		return;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	real_sigaction(sig, &dfl, NULL);
	/* Return to the faulting instruction when it was a trap, so the
	 * default action (core dump) happens where the application trapped;
	 * for a sent signal, resend it to ourselves. */
	if (si->si_code == SI_KERNEL) {
		ucontext_t *u = uc;
		u->uc_mcontext.gregs[REG_RIP] -= 1;   /* back onto the int3 */
	} else {
		resend(sig);
	}
}

static void on_stopsig(int sig, siginfo_t *si, void *ucv)
{
	sp_stopworld_arrived(si);
	if (!sp_quiesce_on_signal(si, ucv) && !sp_stopworld_on_signal(si, ucv))
		chain(OWN_STOP, sig, si, ucv);
}

/* rt_sigprocmask without libc (the signal path calls none). */
static void unblock_stop_signal(void)
{
	uint64_t set = (uint64_t)1 << (own_sig[OWN_STOP] - 1);
	sp_syscall6(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, sizeof(set), 0, 0);
}

/* A fault: an instruction fetch from a page the patcher has made
 * non-executable for a moment (patch.h) waits and runs again; inside a
 * handler (guard.h), that handler's probe is disabled and the thread
 * resumes after the call; anywhere else it is the application's. */
static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	/* SIGSEGV arrives with the stop-check signal blocked (sp_trap_install):
	 * a thread waiting out a write window sits at a PC that may lie inside
	 * a jmp window, and a stop check answered from inside this handler
	 * would see our PC instead.  Returning from the handler unblocks it:
	 * the check is then answered at the faulting PC.  Every other path
	 * unblocks it now, as if the mask had never changed. */
	if (sp_patch_on_fault(sig, si, ucv))
		return;
	/* inside the bytes of a jmp another tool wrote over (coexist.h) */
	if (sp_coexist_on_signal((uintptr_t)((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RIP], ucv))
		return;
	if (sig == SIGSEGV)
		unblock_stop_signal();
	sp_guard_on_fault(sig, si);   /* does not return when it was a handler's */
	int which = sig == SIGSEGV ? OWN_SEGV : sig == SIGBUS ? OWN_BUS : sig == SIGFPE ? OWN_FPE : OWN_ILL;
	struct sigaction a = app_action[which];
	if ((a.sa_flags & SA_SIGINFO) ? a.sa_sigaction != NULL
				      : a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) {
		chain(which, sig, si, ucv);
		return;
	}
	/* the default action, at the faulting instruction: return to it with
	 * the default disposition restored, as if we had never been there */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	real_sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)   /* sent with kill, not a fault: send it again */
		resend(sig);
}

static void on_sigtrap(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	if (si->si_code != SI_KERNEL) {
		chain(OWN_TRAP, sig, si, ucv);   /* sent, not trapped: the application's */
		return;
	}
	uintptr_t at = (uintptr_t)g[REG_RIP] - 1;
	uint64_t rip, rsp, efl;
	if (sp_tramp_take_pending(at, (uintptr_t)g[REG_RSP], &rip, &rsp, &efl)) {
		/* a trampoline's slow path: the handlers moved rip or rsp */
		g[REG_RIP] = (greg_t)rip;
		g[REG_RSP] = (greg_t)rsp;
		g[REG_EFL] = (greg_t)efl;
		return;
	}
	struct sp_site *site = sp_site_lookup(at);
	if (!site) {
		if (sp_coexist_on_signal(at, ucv))   /* an int3 byte inside our jmp (coexist.h) */
			return;
		chain(OWN_TRAP, sig, si, ucv);
		return;
	}
	if (site->resume == SP_RESUME_TRAMP) {
		/* a jmp site while its int3 stands (or kept it): the trampoline
		 * does everything the jmp would have */
		g[REG_RIP] = (greg_t)site->tramp.entry;
		return;
	}
	struct selfprobe_regs regs;
	regs_from(&regs, g);
	regs.rip = site->addr;
	sp_dispatch(site, &regs, ucv);
	if (regs.rip == site->addr) {
		/* Resume with the displaced instruction.  A site whose last
		 * probe just left still resumes this way: the int3 may still
		 * be there for this thread. */
		if (site->resume == SP_RESUME_XOL)
			regs.rip = site->xol;
		else
			sp_emulate(&site->insn, &regs, site->insn.mem.fs ? seg_base(ARCH_GET_FS) : 0,
				   site->insn.mem.gs ? seg_base(ARCH_GET_GS) : 0);
	}
	regs_to(g, &regs);
}

int sp_trap_install(void)
{
	if (atomic_load(&installed))
		return 0;
	int rc = 0;
	pthread_mutex_lock(&install_lock);
	if (atomic_load(&installed))
		goto out;
	resolve_real();
	if (!real_sigaction) {
		rc = -ENOSYS;
		goto out;
	}
	own_sig[OWN_TRAP] = SIGTRAP;
	own_sig[OWN_STOP] = sp_stopworld_signal();
	own_sig[OWN_SEGV] = SIGSEGV;
	own_sig[OWN_BUS] = SIGBUS;
	own_sig[OWN_FPE] = SIGFPE;
	own_sig[OWN_ILL] = SIGILL;
	void (*handler[N_OWN])(int, siginfo_t *, void *) = { on_sigtrap, on_stopsig, on_fault,
							     on_fault, on_fault, on_fault };
	sigset_t unblock;
	sigemptyset(&unblock);
	for (int i = 0; i < N_OWN; i++) {
		struct sigaction sa, old;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = handler[i];
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (own_sig[i] == SIGSEGV)   /* see on_fault */
			sigaddset(&sa.sa_mask, own_sig[OWN_STOP]);
		if (real_sigaction(own_sig[i], &sa, &old) != 0) {
			rc = -errno;
			goto out;
		}
		sp_sigwrap_unwrap(own_sig[i], &old);   /* installed before we owned it */
		sp_sigwrap_never_block(own_sig[i]);
		app_action[i] = old;
		sigaddset(&unblock, own_sig[i]);
	}
	atomic_store(&installed, true);
	/* Threads that already block them (this one, at least) must not. */
	if (real_pthread_sigmask)
		real_pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
out:
	pthread_mutex_unlock(&install_lock);
	return rc;
}

int sp_trap_go_raw(void)
{
	int rc = sp_trap_install();
	if (rc)
		return rc;
	pthread_mutex_lock(&install_lock);
	if (!atomic_load(&raw_mode)) {
		/* libc's restorer, as libc's sigaction gave it to our handler */
		struct ksigaction k;
		long r = sp_syscall6(SYS_rt_sigaction, SIGTRAP, 0, (long)&k, 8, 0, 0);
		if (r < 0 || !(k.flags & SA_RESTORER) || !k.restorer) {
			pthread_mutex_unlock(&install_lock);
			return r < 0 ? (int)r : -ENOSYS;
		}
		restorer = k.restorer;
		real_sigaction = raw_sigaction;
		real_sigprocmask = raw_sigprocmask;
		real_pthread_sigmask = raw_pthread_sigmask;
		for (int i = 0; i < 4; i++)
			real_signal[i] = NULL;   /* sp_trap_signal then goes through sigaction */
		atomic_store_explicit(&raw_mode, true, memory_order_release);
	}
	pthread_mutex_unlock(&install_lock);
	return 0;
}

void *sp_trap_own_handler(int sig)
{
	int i = own_index(sig);
	if (i < 0)
		return NULL;
	return i == OWN_TRAP ? (void *)on_sigtrap : i == OWN_STOP ? (void *)on_stopsig : (void *)on_fault;
}

int sp_trap_retake(void)
{
	if (!atomic_load(&raw_mode))
		return -EINVAL;
	sp_sigwrap_wrap_again();   /* the program's new handlers: wrapped again */
	int rc = 0;
	pthread_mutex_lock(&install_lock);
	for (int i = 0; i < N_OWN && rc == 0; i++) {
		struct sigaction now;
		if (raw_sigaction(own_sig[i], NULL, &now) != 0) {
			rc = -errno;
			break;
		}
		void *ours = sp_trap_own_handler(own_sig[i]);
		if ((void *)now.sa_sigaction == ours)
			continue;
		/* the program's since the last time we looked (set while no
		 * session held libc's entry points): its handler from now on,
		 * ours back in the kernel */
		struct sigaction sa = { .sa_sigaction = (void (*)(int, siginfo_t *, void *))ours,
					.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART };
		if (own_sig[i] == SIGSEGV)   /* see on_fault */
			SET_WORD(&sa.sa_mask, own_sig[OWN_STOP]) |= SET_BIT(own_sig[OWN_STOP]);
		sp_sigwrap_unwrap(own_sig[i], &now);
		struct sigaction prev = app_action[i];
		app_action[i] = now;
		mask_owned(&app_action[i].sa_mask);
		if (raw_sigaction(own_sig[i], &sa, NULL) != 0) {
			app_action[i] = prev;
			rc = -errno;
		}
	}
	pthread_mutex_unlock(&install_lock);
	return rc;
}

int sp_trap_uninstall(void)
{
	int rc = 0;
	pthread_mutex_lock(&install_lock);
	if (!atomic_load(&raw_mode) || !atomic_load(&installed) || sp_stopworld_in_flight() != 0)
		goto out;
	for (int i = 0; i < N_OWN; i++)
		if (raw_sigaction(own_sig[i], &app_action[i], NULL) != 0 && !rc)
			rc = -errno;
	/* the next attach installs ours again, recording the program's
	 * actions of then (sp_trap_install) */
	atomic_store(&installed, false);
out:
	pthread_mutex_unlock(&install_lock);
	return rc;
}

void sp_trap_give_back(void)
{
	if (atomic_load(&raw_mode))
		sp_sigwrap_unwrap_all(raw_sigaction);
}

/* glibc's __sigaction: the C library's internal signals are refused. */
int sp_trap_entry_sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	if (sig <= 0 || sig >= NSIG || LIBC_INTERNAL(sig)) {
		errno = EINVAL;
		return -1;
	}
	return sp_trap_sigaction(sig, act, oact);
}

/* glibc's pthread_sigmask (sigprocmask, sigblock, sigsetmask, sighold,
 * sigrelse, siglongjmp's mask, … all call it): internal signals left
 * alone, the runtime's kept deliverable. */
int sp_trap_entry_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return sp_trap_pthread_sigmask(how, set, old);
}

/* ---- what the interposed libc entry points do (interpose/sigintercept.c) ---- */

int sp_trap_sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	resolve_real();
	if (!real_sigaction) {
		errno = ENOSYS;
		return -1;
	}
	int which = own_index(sig);
	if (which >= 0) {
		struct sigaction prev = app_action[which];
		if (act) {
			app_action[which] = *act;
			mask_owned(&app_action[which].sa_mask);
		}
		if (oact)
			*oact = prev;
		return 0;
	}
	/* other signals: the application's handler behind the wrapper */
	if (act && atomic_load(&installed) && any_owned(&act->sa_mask)) {
		struct sigaction copy = *act;
		mask_owned(&copy.sa_mask);
		return sp_sigwrap_sigaction(real_sigaction, sig, &copy, oact);
	}
	return sp_sigwrap_sigaction(real_sigaction, sig, act, oact);
}

/* signal() and its variants for a signal we own: recorded as the
 * application's handler (sigaction above).  Other signals go to libc's own
 * function, so the application's calls run exactly the code they would,
 * with the wrapper as the handler (sigwrap.h). */
sighandler_t sp_trap_signal(int which, int sig, sighandler_t h, int flags)
{
	resolve_real();
	if (own_index(sig) < 0 && real_signal[which])
		return sp_sigwrap_signal(real_signal[which], sig, h);
	struct sigaction act = { .sa_handler = h, .sa_flags = flags }, old;
	if (!(flags & SA_NODEFER) && sig > 0 && sig < NSIG)
		SET_WORD(&act.sa_mask, sig) |= SET_BIT(sig);
	if (sp_trap_sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}


/* glibc's sigset (sysdeps/posix/sigset.c), through the entry points
 * above: an owned signal's action recorded, a handler of another signal
 * behind the wrapper as sigaction's are.  The set's bits by hand, as
 * libc's sigset does with inline macros. */
sighandler_t sp_trap_sigset(int sig, sighandler_t disp)
{
	if (sig <= 0 || sig >= NSIG || LIBC_INTERNAL(sig)) {
		errno = EINVAL;
		return SIG_ERR;
	}
	sigset_t one = { { 0 } }, old;
	SET_WORD(&one, sig) = SET_BIT(sig);
	struct sigaction act = { .sa_handler = disp }, oact;
	if (disp == SIG_HOLD) {
		if (sp_trap_sigprocmask(SIG_BLOCK, &one, &old) < 0)
			return SIG_ERR;
		if (SET_WORD(&old, sig) & SET_BIT(sig))
			return SIG_HOLD;
		return sp_trap_sigaction(sig, NULL, &oact) < 0 ? SIG_ERR : oact.sa_handler;
	}
	if (sp_trap_sigaction(sig, &act, &oact) < 0 || sp_trap_sigprocmask(SIG_UNBLOCK, &one, &old) < 0)
		return SIG_ERR;
	return SET_WORD(&old, sig) & SET_BIT(sig) ? SIG_HOLD : oact.sa_handler;
}


bool sp_trap_owned(int sig)
{
	return own_index(sig) >= 0;
}

const sigset_t *sp_trap_wait_mask(const sigset_t *set, sigset_t *copy)
{
	if (!set || !atomic_load(&installed) || !any_owned_but(set, OWN_STOP))
		return set;
	*copy = *set;
	mask_owned_but(copy, OWN_STOP);
	return copy;
}

int sp_trap_bsd_mask(int mask)
{
	if (!atomic_load(&installed))
		return mask;
	for (int i = 0; i < N_OWN; i++)
		if (own_sig[i] >= 1 && own_sig[i] <= 32)
			mask &= ~(int)(1u << (own_sig[i] - 1));
	return mask;
}

static int mask_call(sigmask_fn real, int how, const sigset_t *set, sigset_t *old)
{
	if (set && atomic_load(&installed) && how != SIG_UNBLOCK && any_owned(set)) {
		sigset_t copy = *set;
		mask_owned(&copy);
		return real(how, &copy, old);
	}
	return real(how, set, old);
}

int sp_trap_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	resolve_real();
	if (!real_sigprocmask) {
		errno = ENOSYS;
		return -1;
	}
	return mask_call(real_sigprocmask, how, set, old);
}

int sp_trap_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	resolve_real();
	if (!real_pthread_sigmask)
		return ENOSYS;
	return mask_call(real_pthread_sigmask, how, set, old);
}
