/* quiesce — see quiesce.h. */
#include "quiesce.h"
#include "memread.h"
#include "log.h"
#include "rawsys.h"
#include "sigframes.h"
#include "stopworld.h"
#include "taskstack.h"
#include "tstate.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>

/* The question's value: a tag of its own (not the stop-check's) and the
 * question's number, so that a late answer is never taken for the current. */
#define ASK_TAG ((uint64_t)0x5351 << 48)
#define ASK_LOW (((uint64_t)1 << 48) - 1)
#define STALL_NS (4L * 1000 * 1000)       /* no progress that long: ask */
#define ASK_MAX_NS (256L * 1000 * 1000)   /* asks of one stripe back off to this */
#define ANSWER_NS (100L * 1000 * 1000)    /* a thread that does not answer: later */

static pthread_mutex_t ask_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t ask_gen;
static struct {
	int seq;                   /* the asked thread's record (tstate.h) */
	uintptr_t lo, hi;          /* the asked thread's stack */
	_Atomic int answer;        /* -2: none yet; -1: not that stripe's thread */
} ask;
static _Atomic uint64_t reported;   /* abandoned dispatches said in the report */

static long raw_getpid(void)
{
	return sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
}

int sp_quiesce_on_signal(const siginfo_t *si, void *ucv)
{
	uint64_t v = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
	if (si->si_code != SI_QUEUE || (v & ~ASK_LOW) != ASK_TAG || si->si_pid != (pid_t)raw_getpid())
		return 0;
	if ((v & ASK_LOW) != atomic_load(&ask_gen))
		return 1;   /* a question given up on */
	uintptr_t sp = (uintptr_t)((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RSP];
	int depth = 0, n = sp_tstate_abandoned_here(ask.seq, sp, ask.lo, ask.hi, &depth);
	if (n > 0)
		sp_tstate_request(ask.seq, depth, n);
	atomic_store(&ask.answer, n);
	return 1;
}

static long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void pause_briefly(void)
{
	struct timespec ts = { 0, 50000 };
	nanosleep(&ts, NULL);
}

/* A running thread's answer: the real-time signal, queued to it alone. */
static int ask_running(int seq, pid_t tid, uintptr_t lo, uintptr_t hi)
{
	pthread_mutex_lock(&ask_lock);
	ask.seq = seq;
	ask.lo = lo;
	ask.hi = hi;
	atomic_store(&ask.answer, -2);
	uint64_t gen = (atomic_load(&ask_gen) + 1) & ASK_LOW;
	atomic_store(&ask_gen, gen);
	int n = 0;
	if (sp_stopworld_queue(tid, ASK_TAG | gen) == 0) {
		long until = now_ns() + ANSWER_NS;
		while (atomic_load(&ask.answer) == -2 && now_ns() < until)
			pause_briefly();
		n = atomic_load(&ask.answer);
		if (n == -2)
			n = 0;   /* signals blocked, or stopped by a debugger: later */
	}
	atomic_store(&ask_gen, (gen + 1) & ASK_LOW);   /* a late answer: ignored */
	pthread_mutex_unlock(&ask_lock);
	return n;
}

/* A blocked thread's answer, without disturbing it: its SP from /proc, its
 * dispatches from a copy of its sp_tls (read with sp_mem_read: a thread
 * that ends meanwhile cannot make this fault). */
static int ask_blocked(int seq, pid_t tid, uintptr_t tls, uintptr_t sp, uintptr_t lo, uintptr_t hi)
{
	struct sp_tls copy;
	if (!tls || !sp_mem_read(tls, &copy, sizeof(copy)))
		return 0;
	if (sp_tstate_seq_of(&copy, copy.slot - 1) != seq)
		return -1;
	/* in a handler of the program's, maybe on an alternate stack inside
	 * the thread's own: its SP says nothing of the dispatches it interrupted */
	if (sp_sigframes_live(tid, sp, lo, hi, copy.alt_lo, copy.alt_hi))
		return 0;
	int n = sp_tstate_abandoned_there(&copy, sp, lo, hi);
	if (n > 0)
		sp_tstate_request(seq, copy.depth, n);
	return n;
}

/* Ask record SEQ's thread TID which of its dispatches it abandoned: how
 * many, 0 (none, or it cannot be told now), -1 (TID is gone or no longer
 * owns the record: its dispatches are nobody's). */
static int ask_thread(int seq, struct sp_slot_seq *q, pid_t tid)
{
	if (tid <= 0)
		return 0;
	if (sp_task_gone(tid))
		return -1;
	uintptr_t tls = atomic_load(&q->tls), lo, hi, sp, pc;
	if (!sp_task_stack(tid, tls, &lo, &hi))
		return 0;
	if (sp_task_blocked(tid, &sp, &pc) == 0)
		return ask_blocked(seq, tid, tls, sp, lo, hi);
	return ask_running(seq, tid, lo, hi);
}

/* Wait for exclusive stripe or seat S, inside since before now at GEN. */
static void wait_stripe(int s, uint64_t gen)
{
	struct sp_slot_seq *q = sp_tstate_rec(s);
	long every = STALL_NS, next = now_ns() + every;
	while (atomic_load(&q->gen) == gen && atomic_load(&q->depth) != 0) {
		if (now_ns() >= next) {
			uint64_t owner = atomic_load(&q->owner);
			uint32_t depth = atomic_load(&q->depth);
			int n = ask_thread(s, q, sp_tstate_owner_tid(owner));
			every = every * 2 > ASK_MAX_NS ? ASK_MAX_NS : every * 2;
			next = now_ns() + every;
			if (n < 0) {
				sp_tstate_reconcile_gone(s, owner);
				continue;
			}
			if (n > 0)
				sp_tstate_count_abandoned(s, gen, n);
			if (n > 0 && (uint32_t)n >= depth && atomic_load(&q->gen) == gen)
				return;   /* in none of them: it leaves them at its next dispatch */
			/* still inside some: they leave as usual (the abandoned
			 * ones inside them at that leave) */
		}
		pause_briefly();
	}
}

/* The calling thread's own abandoned dispatches (it cannot wait for
 * itself): left here, in the thread. */
static void reconcile_self(int self)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0), lo, hi;
	pid_t tid = (pid_t)sp_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	if (sp_tls.depth == 0 || !sp_task_stack(tid, (uintptr_t)&sp_tls, &lo, &hi))
		return;
	int depth = 0, n = sp_tstate_abandoned_here(self, sp, lo, hi, &depth);
	if (n <= 0)
		return;
	sp_tstate_count_abandoned(self, atomic_load(&sp_tstate_rec(self)->gen), n);
	sp_tstate_request(self, depth, n);
	sp_tstate_reconcile(self);
}

void sp_quiesce_atfork_child(void)
{
	/* the forking thread alone: a question another thread was asking
	 * (its lock held) is nobody's now, and what was said is the parent's */
	pthread_mutex_init(&ask_lock, NULL);
	atomic_store(&ask_gen, 0);
	atomic_store(&reported, 0);
}

void sp_quiesce(void)
{
	bool barrier = sp_tstate_barrier();
	int self = sp_tstate_my_seq(), used = sp_tstate_seqs_used();
	if (self >= 0 && self != SP_SHARED_SLOT)
		reconcile_self(self);
	/* the exclusive stripes, then the seats of threads on the shared one */
	for (int s = 0; s < used; s++) {
		struct sp_slot_seq *q = sp_tstate_rec(s);
		if (s == self || s == SP_SHARED_SLOT || atomic_load(&q->depth) == 0)
			continue;
		/* inside since before now: wait until it has left its outermost
		 * dispatch (or was caught at a moment outside every one), or
		 * will never come back to it */
		wait_stripe(s, atomic_load(&q->gen));
	}
	/* Shared-stripe threads without a seat: wait for a moment with none inside. */
	for (int spins = 0; atomic_load(&sp_tstate_rec(SP_SHARED_SLOT)->inflight) > (self == SP_SHARED_SLOT && sp_tls.depth > 0); spins++)
		spins < 100 ? sched_yield() : pause_briefly();
	if (!barrier) {
		/* Without membarrier a reader may not have published its odd
		 * sequence yet; give it time to finish a handler. */
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	uint64_t total = sp_tstate_abandoned_total(), seen = atomic_load(&reported);
	if (total != seen && atomic_compare_exchange_strong(&reported, &seen, total))
		sp_report_error("dispatch", "%" PRIu64 " probe handler call%s left without returning, by a jump "
			       "the runtime did not see or by the end of its thread: not waited for "
			       "(return probes of the frames it skipped are counted lost)",
			       total - seen, total - seen == 1 ? "" : "s");
}
