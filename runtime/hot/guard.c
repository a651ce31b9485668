/* guard — see guard.h. */
#include "guard.h"
#include "foreign.h"
#include "shm.h"
#include "shmprobe.h"
#include "ctx.h"
#include "probe.h"
#include "tstate.h"
#include "xsave.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <ucontext.h>

struct guard {
	void *jb[5];                 /* __builtin_setjmp's buffer */
	struct sp_probe *probe;      /* non-NULL: inside this probe's handler */
};

static __thread struct guard guard __attribute__((tls_model("initial-exec")));

static selfprobe_handler_fn _Atomic vector_safe[4];

void sp_guard_vector_safe(selfprobe_handler_fn fn)
{
	for (int i = 0; i < 4; i++) {
		selfprobe_handler_fn cur = atomic_load(&vector_safe[i]);
		if (cur == fn || (!cur && atomic_compare_exchange_strong(&vector_safe[i], &cur, fn)))
			return;
	}
}

static bool is_vector_safe(selfprobe_handler_fn fn)
{
	for (int i = 0; i < 4; i++) {
		selfprobe_handler_fn cur = atomic_load_explicit(&vector_safe[i], memory_order_relaxed);
		if (!cur)
			return false;
		if (cur == fn)
			return true;
	}
	return false;
}

/* AREA: where the vector state was saved (xsave.S), or NULL. */
static int call_fn(void *vctx, void *vprobe, const void *area)
{
	struct selfprobe_ctx *ctx = vctx;
	struct sp_probe *p = vprobe;
	if (area)
		ctx->fpstate = area;
	return p->fn(ctx, p->data);
}

int sp_guard_call(struct sp_probe *p, struct selfprobe_ctx *ctx)
{
	if (atomic_load_explicit(&p->faulted, memory_order_relaxed))
		return 0;
	struct sp_probe *outer = guard.probe;
	void *saved[5];
	for (int i = 0; i < 5; i++)
		saved[i] = guard.jb[i];
	int rc = 0;
	/* A built-in action's calls are the runtime's, never counted (a nested
	 * hit is ignored, see dispatch); a user's handler's calls are real
	 * calls of the process: they count, as "missed" (README, Counting).
	 * Restored after a fault too: the long jump skips the handler's end. */
	int runtime = sp_tls.runtime;
	/* errno is the program's: what a handler's calls leave there (the
	 * stack action's first walk leaves EAGAIN) must not be what the probed
	 * function or its caller reads next.  __errno_location is libc's: a
	 * probe on it is not hit by us. */
	sp_tls.runtime = runtime + 1;
	int *err = &errno;
	int saved_errno = *err;
	sp_tls.runtime = p->runtime_fn ? runtime + 1 : runtime;
	if (__builtin_setjmp(guard.jb) == 0) {
		guard.probe = p;
		if (ctx->ucontext)            /* int3: the kernel saved the vector state */
			rc = call_fn(ctx, p, ((ucontext_t *)ctx->ucontext)->uc_mcontext.fpregs);
		else if (is_vector_safe(p->fn))   /* jmp: it saves them itself if it must */
			rc = p->fn(ctx, p->data);
		else                          /* jmp: nobody did */
			rc = sp_call_preserving_vectors(call_fn, ctx, p);
	} else
		rc = 0;                       /* the handler faulted: see on_fault */
	*err = saved_errno;
	sp_tls.runtime = runtime;
	guard.probe = outer;
	for (int i = 0; i < 5; i++)
		guard.jb[i] = saved[i];
	return rc;
}

int sp_guard_call_handler(struct sp_probe *p, struct selfprobe_regs *regs, void *ucontext,
			  uint64_t *cookie, bool is_return)
{
	struct selfprobe_ctx ctx;
	ctx.regs = regs;
	ctx.probe = p;
	ctx.cookie = cookie;
	ctx.is_return = is_return;
	ctx.ucontext = ucontext;
	ctx.fpstate = NULL;
	return sp_guard_call(p, &ctx);
}

struct sp_probe *sp_guard_suspend(void)
{
	struct sp_probe *p = guard.probe;
	guard.probe = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	return p;
}

void sp_guard_resume(struct sp_probe *p)
{
	atomic_signal_fence(memory_order_seq_cst);
	guard.probe = p;
}

void sp_guard_on_fault(int sig, const siginfo_t *si)
{
	struct sp_probe *p = guard.probe;
	/* not in a handler (in no dispatch at all: that handler was abandoned
	 * by a jump, its frame is gone), or sent by kill */
	if (!p || sp_tls.depth == 0 || si->si_code <= 0 || sp_foreign())
		return;   /* (a task of another's: foreign.h) */
	p->fault_sig = sig;
	p->fault_addr = (uintptr_t)si->si_addr;
	atomic_store(&p->faulted, true);
	sp_shm_fault(p);   /* a report built from the launcher's file says it too */
	guard.probe = NULL;
	__builtin_longjmp(guard.jb, 1);
}
