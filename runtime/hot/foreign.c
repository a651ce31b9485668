/* foreign — see foreign.h. */
#include "foreign.h"
#include "rawsys.h"
#include "taskstack.h"
#include "xsave.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define EVERYWHERE ((uintptr_t)1 << 62)   /* above any user address; the
					   * trampoline's check needs bit 63 clear */

static intptr_t robust_off;   /* the robust list head from the TCB; 0: unknown */
static uintptr_t growth;      /* how far below its top the main thread's stack may grow */

/* The calling task's robust list head (0: none, or not asked). */
static uintptr_t robust_head(void)
{
	uintptr_t head = 0;
	size_t len = 0;
	if (sp_syscall6(SYS_get_robust_list, 0, (long)&head, (long)&len, 0, 0, 0) != 0)
		return 0;
	return head;
}

void sp_foreign_init(void)
{
	if (robust_off)
		return;
	uintptr_t head = robust_head(), self = sp_thread_pointer();
	/* glibc's robust_head lies in struct pthread, a few hundred bytes in */
	if (head > self && head - self < 4096)
		robust_off = (intptr_t)(head - self);
	struct rlimit rl;
	if (sp_syscall6(SYS_prlimit64, 0, RLIMIT_STACK, 0, (long)&rl, 0, 0) == 0)
		growth = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > EVERYWHERE ? EVERYWHERE : rl.rlim_cur;
}

static void set_range(uintptr_t lo, uintptr_t hi)
{
	/* a signal handler's hit in between sees an empty range (an end of
	 * 0: both checks fail, foreign.h and fastcount.h) or the new one */
	sp_tls.own_hi = 0;
	sp_tls.own_neg_hi = 0;
	atomic_signal_fence(memory_order_seq_cst);
	sp_tls.own_lo = lo;
	sp_tls.own_neg_lo = -lo;
	atomic_signal_fence(memory_order_seq_cst);
	sp_tls.own_hi = hi;
	sp_tls.own_neg_hi = -hi;
}

static int look_up(void *tid, void *range, const void *area)
{
	(void)area;
	uintptr_t *r = range;
	if (!sp_task_stack(*(pid_t *)tid, (uintptr_t)&sp_tls, &r[0], &r[1]))
		r[0] = r[1] = 0;
	return 0;
}

/* The calling thread's stack, looked up (raw reads of /proc/self/maps: a
 * hit may be in a signal handler; parsing it may use the vector
 * registers, which the interrupted code may have live).  Not found: an
 * empty range, every hit off it (asked, not guessed). */
static void learn(void)
{
	pid_t tid = (pid_t)sp_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	uintptr_t range[2];
	/* first: the libc calls of the look-up hit probes too (not counted:
	 * the runtime's own), and must not look it up again */
	sp_tls.own_learnt = 1;
	sp_tls.runtime++;
	sp_call_preserving_vectors(look_up, &tid, range);
	sp_tls.runtime--;
	sp_tls.own_main = tid == (pid_t)sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	set_range(range[0], range[1]);
}

/* On its alternate signal stack, which may be too small for the look-up
 * (~8 KiB: /proc/self/maps read in 4 KiB, the vector registers saved):
 * learnt at a later hit instead. */
static bool on_altstack(void)
{
	stack_t ss;
	return sp_syscall6(SYS_sigaltstack, 0, (long)&ss, 0, 0, 0, 0) == 0 && (ss.ss_flags & SS_ONSTACK);
}

bool sp_foreign_slow(uintptr_t sp)
{
	if (!robust_off) {
		/* nothing tells the tasks apart: every one is the thread */
		set_range(0, EVERYWHERE);
		return false;
	}
	if (robust_head() != sp_thread_pointer() + (uintptr_t)robust_off)
		return true;
	/* the thread itself: its stack grown below what was learnt (the main
	 * thread's), or not learnt yet: a thread's first few hits ask, and
	 * one that makes more looks its stack up (a short thread's few hits
	 * cost a system call each, a look-up several: taskstack.h) */
	if (sp_tls.own_learnt ? sp_tls.own_main && sp < sp_tls.own_lo && sp_tls.own_hi - sp <= growth
			      : ++sp_tls.own_asks > SP_FOREIGN_ASKS && !on_altstack())
		learn();
	return false;
}
