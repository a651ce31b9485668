/* A detach never waits for ever for a dispatch its thread will never come
 * back to, and always waits for one that still runs (runtime/hot/quiesce.h):
 *   - gone: a handler ends its thread by a raw exit system call (no key
 *     destructor); the thread's stripe says "inside" for ever (and a
 *     thread that ends so outside every dispatch gives its stripe back to
 *     the next thread that needs one);
 *   - abandoned unseen: a handler of ours, or a signal handler entered
 *     from inside one, leaves by a context restore of the program's own
 *     (assembly: no longjmp any interposer sees); the thread then blocks
 *     (its SP from /proc) or runs (asked by the real-time signal);
 *   - still running: a handler that sleeps 200 ms, on the thread's stack
 *     or in a signal handler on an alternate stack (inside the thread's
 *     own stack, where addresses alone would mislead), or a signal handler
 *     of the program's on that alternate stack that interrupted a dispatch
 *     and sleeps or spins: the detach returns only after it.
 * Each case is also run by a thread beyond the 128th (on the shared counter
 * stripe, every exclusive one held by a thread that stays: it has a seat
 * of its own; beyond the 1152nd too), and a thread that ends inside a
 * dispatch it left that way is left by its key destructor, even one that
 * found every seat taken (their number cut by a test).  So is a thread
 * whose hit was made after its key destructor ran (in a later key
 * destructor of the program's, or libc's own freeing at thread exit), or
 * by a signal handler that interrupted its claim: it publishes in a
 * record of its own, which a detach asks.
 * Each abandoned case counts its dispatch (sp_tstate_abandoned_total), the
 * thread's next hit is a full hit (its handler runs), and a fault of the
 * thread's after it is the program's, not the abandoned handler's.  A detach that
 * hangs is caught by the test's timeout. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "claim_trap.h"
#include "fastcount.h"
#include "selfprobe.h"
#include "stripes_fill.h"
#include "tstate.h"

#define NOINLINE __attribute__((noinline, used, visibility("default")))

static volatile int sink;

NOINLINE int ab_hit(int x)
{
	sink += x;
	return x + 1;
}

NOINLINE int ab_next(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 2;
}

NOINLINE int ab_nested(int x)
{
	sink += x;
	return x + 3;
}

NOINLINE int ab_fill(int x)
{
	sink += x;
	return x + 4;
}

static void set_mode(const char *mode)
{
	cr_assert_eq(selfprobe_set_mode(mode), 0);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* A context saved and restored by the program's own code: no libc
 * longjmp, so no interposer of the runtime sees the jump. */
struct raw_ctx {
	uint64_t rsp, rbp, rbx, r12, r13, r14, r15, rip;
};
int raw_save(struct raw_ctx *c) __attribute__((returns_twice, visibility("hidden")));
void raw_restore(struct raw_ctx *c) __attribute__((noreturn, visibility("hidden")));
__asm__(".text\n"
	".type raw_save, @function\n"
	"raw_save:\n"
	"  leaq 8(%rsp), %rdx\n  movq %rdx, 0(%rdi)\n"
	"  movq %rbp, 8(%rdi)\n  movq %rbx, 16(%rdi)\n  movq %r12, 24(%rdi)\n"
	"  movq %r13, 32(%rdi)\n  movq %r14, 40(%rdi)\n  movq %r15, 48(%rdi)\n"
	"  movq (%rsp), %rdx\n  movq %rdx, 56(%rdi)\n"
	"  xorl %eax, %eax\n  ret\n"
	".size raw_save, .-raw_save\n"
	".type raw_restore, @function\n"
	"raw_restore:\n"
	"  movq 8(%rdi), %rbp\n  movq 16(%rdi), %rbx\n  movq 24(%rdi), %r12\n"
	"  movq 32(%rdi), %r13\n  movq 40(%rdi), %r14\n  movq 48(%rdi), %r15\n"
	"  movq 0(%rdi), %rsp\n  movl $1, %eax\n  jmpq *56(%rdi)\n"
	".size raw_restore, .-raw_restore\n");

#if defined(__SANITIZE_ADDRESS__)
void __asan_handle_no_return(void);
#define NO_RETURN_HERE() __asan_handle_no_return()   /* the frames left: unpoisoned */
#else
#define NO_RETURN_HERE() ((void)0)
#endif

static atomic_int next_calls;
static int thread_stripe;   /* the stripe of the thread that left its dispatch */
static int thread_seq;      /* ... and its record (tstate.h) */

static void note_thread(void)
{
	thread_stripe = sp_tls.slot - 1;
	thread_seq = sp_tstate_my_seq();
}

/* ------------------------------------------------------------ beyond the 128th thread */

static struct stripes_fill fill;
static struct selfprobe_link *fill_link;

static int fill_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	return 0;
}

static void fill_hit(void)
{
	ab_fill(1);   /* a filler's first hit claims its stripe */
}

/* BEYOND: every exclusive stripe held by a thread that stays, so that the
 * next thread to hit a probe is on the shared stripe, with a seat (1), or
 * without one (2: every seat held too, their number cut to
 * SP_BOOT_SEATS, as when the seats could not be mapped), or with a seat
 * beyond the first SP_BOOT_SEATS (3: more threads than those hold one). */
static void fill_stripes(int beyond)
{
	if (!beyond)
		return;
	fill_link = selfprobe_attach("uprobe:ab_fill", fill_handler, NULL);
	cr_assert(fill_link);
	if (beyond == 2)
		sp_tstate_limit_seats(SP_BOOT_SEATS);
	if (beyond == 3) {
		cr_assert(!stripes_fill(&fill, fill_hit, true) && fill.last >= SP_SEAT0 + SP_BOOT_SEATS,
			  "the %dth thread found no seat", fill.n);
		return;
	}
	cr_assert(stripes_fill(&fill, fill_hit, beyond == 2), "%d threads did not take every exclusive stripe%s",
		  fill.n, beyond == 2 ? " and seat" : "");
}

static void unfill_stripes(int beyond)
{
	if (!beyond)
		return;
	stripes_unfill(&fill);
	cr_expect_eq(selfprobe_detach(fill_link), 0);
}

static void expect_stripe(const char *mode, int beyond)
{
	if (beyond) {
		cr_expect_eq(thread_stripe, SP_SHARED_SLOT, "%s: the thread was not beyond the 128th (stripe %d)",
			     mode, thread_stripe);
		cr_expect(beyond == 2 ? thread_seq == SP_SHARED_SLOT
				      : thread_seq >= SP_SEAT0 + (beyond == 3 ? SP_BOOT_SEATS : 0),
			  "%s: the thread's record %d", mode, thread_seq);
	} else
		cr_expect(thread_stripe >= 0 && thread_stripe < SP_EXCL_SLOTS, "%s: stripe %d", mode, thread_stripe);
}

static int next_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&next_calls, 1);
	return 0;
}

/* ------------------------------------------------------------ gone */

static int exit_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	note_thread();
	NO_RETURN_HERE();
	syscall(SYS_exit, 0);   /* this thread only, past libc */
	return 0;
}

static void *raw_exiter(void *arg)
{
	(void)arg;
	ab_hit(1);
	return NULL;
}

/* A thread that ends inside the dispatch of ab_hit's HANDLER (START: its
 * routine): the detach after its join returns within LIMIT s and counts
 * that dispatch once. */
/* What the thread's record was when it left its dispatch. */
enum record {
	AS_PLACED,     /* as BEYOND places it (expect_stripe) */
	RELEASED,      /* after its key destructor: the shared stripe, a seat */
	OWN,           /* any record of its own, not the shared stripe's count */
};

static void expect_record(const char *mode, int beyond, enum record r)
{
	if (r == AS_PLACED)
		expect_stripe(mode, beyond);
	else if (r == RELEASED)
		cr_expect(thread_stripe == SP_SHARED_SLOT && thread_seq >= SP_SEAT0,
			  "%s: after its key destructor the thread's stripe was %d, its record %d", mode,
			  thread_stripe, thread_seq);
	else
		cr_expect(thread_seq >= 0 && thread_seq != SP_SHARED_SLOT, "%s: the thread's record %d", mode,
			  thread_seq);
}

static void ended_inside_as(const char *mode, int beyond, int (*handler)(struct selfprobe_ctx *, void *),
			    void *(*start)(void *), double limit, enum record r)
{
	set_mode(mode);
	struct selfprobe_link *x = selfprobe_attach("uprobe:ab_hit", handler, NULL);
	cr_assert(x);
	fill_stripes(beyond);
	uint64_t lost0 = sp_tstate_abandoned_total();
	pthread_t t;
	pthread_create(&t, NULL, start, NULL);
	pthread_join(t, NULL);   /* a raw exit too: the kernel clears its tid */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(selfprobe_detach(x), 0);
	cr_expect(seconds_since(&t0) < limit, "%s: the detach took %.3f s", mode, seconds_since(&t0));
	cr_expect_eq(sp_tstate_abandoned_total() - lost0, 1, "%s: the ended thread's dispatch was counted %llu times",
		     mode, (unsigned long long)(sp_tstate_abandoned_total() - lost0));
	expect_record(mode, beyond, r);
	unfill_stripes(beyond);
}

static void ended_inside(const char *mode, int beyond, int (*handler)(struct selfprobe_ctx *, void *),
			 void *(*start)(void *), double limit)
{
	ended_inside_as(mode, beyond, handler, start, limit, AS_PLACED);
}

static void gone(const char *mode, int beyond)
{
	ended_inside(mode, beyond, exit_handler, raw_exiter, 5.0);
}

Test(abandon, thread_exits_raw_inside_a_dispatch_auto, .timeout = 30) { gone("auto", 0); }
Test(abandon, thread_exits_raw_inside_a_dispatch_int3, .timeout = 30) { gone("int3", 0); }
Test(abandon, beyond_128th_thread_exits_raw_inside_a_dispatch_auto, .timeout = 30) { gone("auto", 1); }
Test(abandon, beyond_128th_thread_exits_raw_inside_a_dispatch_int3, .timeout = 30) { gone("int3", 1); }

/* ------------------------------------------------------------ gone outside every dispatch */

static struct {
	int stripe;
	bool fast;   /* the inline count's stripe */
} left_by;

/* Hits a probe, then ends past libc outside every dispatch: no key
 * destructor gives its stripe back, and no detach's wait sees it. */
static void *hit_then_exit_raw(void *arg)
{
	(void)arg;
	ab_fill(1);
	left_by.stripe = sp_tls.slot - 1;
	left_by.fast = sp_tls.fast != NULL;
	NO_RETURN_HERE();
	syscall(SYS_exit, 0);
	return NULL;
}

/* 200 such threads one after another: every one, the 129th and after
 * too, gets an exclusive stripe (with the inline count) that one before
 * it left. */
static void gone_outside(const char *mode)
{
	set_mode(mode);
	struct selfprobe_link *x = selfprobe_attach("uprobe:ab_fill", fill_handler, NULL);
	cr_assert(x);
	int n = SP_EXCL_SLOTS + 72, beyond = 0;
	bool fast = true;
	/* a stack of the test's, the same each time: one of glibc's cache
	 * would come with the descriptor the raw exit left, which ASan's own
	 * thread state does not survive */
	static char stack[256 * 1024] __attribute__((aligned(4096)));
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstack(&a, stack, sizeof(stack));
	for (int i = 0; i < n; i++) {
		pthread_t t;
		left_by.stripe = -1;
		cr_assert(pthread_create(&t, &a, hit_then_exit_raw, NULL) == 0);
		pthread_join(t, NULL);
		beyond += left_by.stripe < 0 || left_by.stripe >= SP_EXCL_SLOTS;
		fast &= left_by.fast;
	}
	pthread_attr_destroy(&a);
	cr_expect(beyond == 0, "%s: %d of %d threads found no exclusive stripe", mode, beyond, n);
	cr_expect(fast || !sp_fastcount_thread_ok(), "%s: a thread got no inline count", mode);
	cr_expect_eq(selfprobe_detach(x), 0);
}

Test(abandon, stripes_of_threads_gone_raw_outside_a_dispatch_come_back_auto, .timeout = 30) { gone_outside("auto"); }
Test(abandon, stripes_of_threads_gone_raw_outside_a_dispatch_come_back_int3, .timeout = 30) { gone_outside("int3"); }

/* ------------------------------------------------------------ abandoned unseen */

/* How the thread leaves its dispatch and what it does next. */
struct how {
	const char *mode;
	int via_signal;        /* a signal handler of the program's jumps, not ours */
	int spins;             /* the thread then runs; 0: it blocks */
	int deeper;            /* ... deeper in its stack than the dispatch it left */
	int alt_mapped;        /* it has an alternate signal stack of its own
				* mapping (ASan and Rust give every thread one),
				* where int3 dispatches run */
	int faults;            /* then it faults, for its own handler */
	int beyond;            /* the thread is beyond the 128th (the shared stripe) */
};

static struct how how;
static struct raw_ctx back;
static sem_t jumped, may_end;
static atomic_bool end_spin;
static char *guarded;          /* a page the thread's fault unprotects */
static atomic_int faults_seen;

static void on_usr1_restore(int sig)
{
	(void)sig;
	NO_RETURN_HERE();
	raw_restore(&back);     /* out of this signal handler and the dispatch */
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if ((char *)si->si_addr == guarded) {
		atomic_fetch_add(&faults_seen, 1);
		mprotect(guarded, 4096, PROT_READ | PROT_WRITE);
	}
}

static int jump_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	if (how.via_signal) {
		raise(SIGUSR1);
		return 0;
	}
	NO_RETURN_HERE();
	raw_restore(&back);
}

/* An alternate signal stack outside the thread's stack, for the calling
 * thread; BEFORE gets what it replaces. */
static void *own_altstack(stack_t *before)
{
	void *p = mmap(NULL, 256 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(p != MAP_FAILED);
	stack_t ss = { .ss_sp = p, .ss_size = 256 * 1024 };
	cr_assert_eq(sigaltstack(&ss, before), 0);
	return p;
}

static void drop_altstack(void *p, const stack_t *before)
{
	sigaltstack(before, NULL);
	munmap(p, 256 * 1024);
}

/* Wait for the detach (spinning or blocked), in the calling frame or
 * LEVELS frames of 1 KiB deeper: over the stack of the dispatch left. */
NOINLINE void wait_at_depth(int levels)
{
	volatile char pad[1024];
	memset((char *)pad, levels, sizeof(pad));
	if (levels > 0) {
		wait_at_depth(levels - 1);
		sink += pad[0];
		return;
	}
	if (how.spins)
		while (!atomic_load(&end_spin))
			__asm__ volatile("pause");
	else
		while (sem_wait(&may_end) != 0)
			;
}

static void *jumper(void *arg)
{
	(void)arg;
	stack_t before;
	void *alt = how.alt_mapped ? own_altstack(&before) : NULL;
	if (raw_save(&back) == 0)
		ab_hit(1);                 /* its dispatch is never left */
	note_thread();
	sem_post(&jumped);
	wait_at_depth(how.deeper ? 32 : 0);
	ab_next(1);                        /* a full hit: its handler runs */
	if (how.faults)
		*(volatile char *)guarded = 1;   /* the program's fault, not the handler's */
	if (alt)
		drop_altstack(alt, &before);
	return NULL;
}

static void unseen(struct how h)
{
	const char *mode = h.mode;
	int spin = h.spins;
	how = h;
	set_mode(mode);
	atomic_store(&end_spin, false);
	atomic_store(&next_calls, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1_restore;
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	if (how.faults) {
		struct sigaction sv;
		memset(&sv, 0, sizeof(sv));
		sv.sa_sigaction = on_segv;
		sv.sa_flags = SA_SIGINFO;
		cr_assert_eq(sigaction(SIGSEGV, &sv, NULL), 0);
		guarded = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert(guarded != MAP_FAILED);
	}
	sem_init(&jumped, 0, 0);
	sem_init(&may_end, 0, 0);
	struct selfprobe_link *j = selfprobe_attach("uprobe:ab_hit", jump_handler, NULL);
	struct selfprobe_link *n = selfprobe_attach("uprobe:ab_next", next_handler, NULL);
	cr_assert(j && n);
	fill_stripes(how.beyond);
	uint64_t lost0 = sp_tstate_abandoned_total();
	pthread_t t;
	pthread_create(&t, NULL, jumper, NULL);
	while (sem_wait(&jumped) != 0)
		;
	if (!spin)
		sleep_ms(20);   /* blocked in sem_wait by now */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(selfprobe_detach(j), 0);
	double took = seconds_since(&t0);
	cr_expect(took < 5.0, "%s: the detach took %.3f s", mode, took);
	cr_expect_eq(sp_tstate_abandoned_total() - lost0, 1,
		     "%s: the abandoned dispatch was counted %llu times", mode,
		     (unsigned long long)(sp_tstate_abandoned_total() - lost0));
	atomic_store(&end_spin, true);
	sem_post(&may_end);
	pthread_join(t, NULL);
	cr_expect_eq(atomic_load(&next_calls), 1,
		     "%s: the thread's next hit ran %d handlers: still taken for inside a dispatch",
		     mode, atomic_load(&next_calls));
	/* and the thread is not waited for again */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(selfprobe_detach(n), 0);
	cr_expect(seconds_since(&t0) < 1.0);
	cr_expect_eq(sp_tstate_abandoned_total() - lost0, 1);
	if (how.faults)   /* not taken for the abandoned handler's (guard.h) */
		cr_expect_eq(atomic_load(&faults_seen), 1, "the program's own fault handler did not run");
	expect_stripe(mode, how.beyond);
	unfill_stripes(how.beyond);
	signal(SIGUSR1, SIG_DFL);
}

#define UNSEEN(name, ...) \
	Test(abandon, name, .timeout = 30) { unseen((struct how){ .mode = __VA_ARGS__ }); }

UNSEEN(handler_restores_a_context_then_blocks_auto, "auto")
UNSEEN(handler_restores_a_context_then_blocks_int3, "int3")
UNSEEN(handler_restores_a_context_then_runs_auto, "auto", .spins = 1)
UNSEEN(handler_restores_a_context_then_runs_int3, "int3", .spins = 1)
UNSEEN(signal_handler_restores_a_context_then_blocks_auto, "auto", .via_signal = 1)
UNSEEN(signal_handler_restores_a_context_then_runs_int3, "int3", .via_signal = 1, .spins = 1)
/* the thread waits deeper than the frame it left: that frame's return
 * address is overwritten, it is not running */
UNSEEN(handler_restores_a_context_then_blocks_deeper_auto, "auto", .deeper = 1)
UNSEEN(handler_restores_a_context_then_runs_deeper_int3, "int3", .spins = 1, .deeper = 1)
/* int3: the dispatch ran on the alternate stack, the thread is back on its
 * own: the alternate stack's frames are dead (the kernel's next signal
 * there starts at its top) */
UNSEEN(int3_dispatch_on_altstack_left_then_blocks, "int3", .alt_mapped = 1)
UNSEEN(int3_dispatch_on_altstack_left_then_runs, "int3", .alt_mapped = 1, .spins = 1)
UNSEEN(int3_signal_handler_on_altstack_restores_then_blocks, "int3", .alt_mapped = 1, .via_signal = 1)
/* the guard's mark of the abandoned handler is stale */
UNSEEN(a_fault_after_an_abandoned_handler_is_the_programs, "auto", .faults = 1)
/* a thread beyond the 128th is asked as any other */
UNSEEN(beyond_128th_handler_restores_a_context_then_blocks_auto, "auto", .beyond = 1)
UNSEEN(beyond_128th_handler_restores_a_context_then_runs_auto, "auto", .spins = 1, .beyond = 1)
UNSEEN(beyond_128th_handler_restores_a_context_then_blocks_int3, "int3", .beyond = 1)
UNSEEN(beyond_128th_signal_handler_restores_a_context_then_runs_int3, "int3", .via_signal = 1, .spins = 1,
       .beyond = 1)
/* so is one beyond the 1152nd (every exclusive stripe and the first 1024
 * seats held by threads that stay): it has a seat too */
UNSEEN(beyond_1152nd_handler_restores_a_context_then_blocks_auto, "auto", .beyond = 3)
UNSEEN(beyond_1152nd_handler_restores_a_context_then_runs_int3, "int3", .spins = 1, .beyond = 3)

/* ------------------------------------------------------------ ends inside */

/* Leaves its dispatch by a jump nothing saw, then ends: its key destructor
 * leaves the dispatch (no tid to find gone: it ended the usual way). */
static void *ender(void *arg)
{
	(void)arg;
	if (raw_save(&back) == 0)
		ab_hit(1);
	note_thread();
	return NULL;
}

static void ends_inside(const char *mode, int beyond)
{
	how = (struct how){ .mode = mode };
	ended_inside(mode, beyond, jump_handler, ender, 1.0);
}

Test(abandon, thread_ends_inside_a_dispatch_it_left_auto, .timeout = 30) { ends_inside("auto", 0); }
Test(abandon, beyond_128th_thread_ends_inside_a_dispatch_it_left_auto, .timeout = 30) { ends_inside("auto", 1); }
Test(abandon, beyond_128th_thread_ends_inside_a_dispatch_it_left_int3, .timeout = 30) { ends_inside("int3", 1); }
/* every seat taken: the thread is only in the shared stripe's count */
Test(abandon, seatless_thread_ends_inside_a_dispatch_it_left_auto, .timeout = 30) { ends_inside("auto", 2); }

/* ------------------------------------------------------------ after the key destructor */

/* A key of the program's whose destructor hits after the runtime's own
 * ran (release_slot), as a later key destructor of the program's or
 * libc's own freeing at thread exit would: the hits of a thread whose stripe was
 * given back.  glibc runs the destructors in the order of their keys,
 * which is not the order they were created in (a key deleted before is
 * reused): the first call sets the value again, and glibc calls every
 * destructor whose value is set once more, after the runtime's. */
static pthread_key_t late_key;
static void (*late_body)(void);

static void late_destructor(void *v)
{
	if (v == &late_key) {
		pthread_setspecific(late_key, &late_body);
		return;
	}
	late_body();
}

static void *ends_in_late_destructor(void *arg)
{
	(void)arg;
	(void)sp_tstate_stripe();   /* its stripe, claimed as a first hit does */
	pthread_setspecific(late_key, &late_key);
	return NULL;
}

static void hit_and_exit_raw(void)
{
	ab_hit(1);   /* exit_handler: ends the thread inside the dispatch */
}

static void hit_and_jump_back(void)
{
	if (raw_save(&back) == 0)
		ab_hit(1);   /* jump_handler: out of its dispatch, unseen */
	note_thread();
}

/* The thread's hit in a destructor that runs after the runtime's: it ends
 * inside that dispatch (a raw exit, or the usual end after a jump out of
 * it nothing saw); the detach still returns, the dispatch counted once. */
static void after_release(const char *mode, int beyond, void (*body)(void))
{
	cr_assert_eq(pthread_key_create(&late_key, late_destructor), 0);
	late_body = body;
	how = (struct how){ .mode = mode };
	ended_inside_as(mode, beyond, body == hit_and_exit_raw ? exit_handler : jump_handler, ends_in_late_destructor,
			5.0, RELEASED);
}

Test(abandon, thread_exits_raw_inside_a_dispatch_after_its_key_destructor_auto, .timeout = 30)
{
	after_release("auto", 0, hit_and_exit_raw);
}
Test(abandon, thread_exits_raw_inside_a_dispatch_after_its_key_destructor_int3, .timeout = 30)
{
	after_release("int3", 0, hit_and_exit_raw);
}
Test(abandon, beyond_128th_thread_exits_raw_inside_a_dispatch_after_its_key_destructor_auto, .timeout = 30)
{
	after_release("auto", 1, hit_and_exit_raw);
}
Test(abandon, thread_ends_inside_a_dispatch_it_left_after_its_key_destructor_auto, .timeout = 30)
{
	after_release("auto", 0, hit_and_jump_back);
}
Test(abandon, beyond_128th_thread_ends_inside_a_dispatch_it_left_after_its_key_destructor_int3, .timeout = 30)
{
	after_release("int3", 1, hit_and_jump_back);
}

/* ------------------------------------------------------------ inside its claim */

static void *claim_interrupted(void *arg)
{
	(void)arg;
	claim_trap_arm(hit_and_exit_raw);   /* a signal inside the claim hits, and ends the thread */
	(void)sp_tstate_stripe();
	return NULL;
}

/* A signal handler's hit interrupts the thread's claim of its stripe
 * (after it took one, before it published it: claim_trap.h), and ends the
 * thread inside that dispatch: the hit published in a record of its own. */
static void claim_interrupted_exit(const char *mode)
{
	if (!claim_trap_available())
		cr_skip_test("no seccomp filter here: the signal cannot be placed inside the claim");
	ended_inside_as(mode, 0, exit_handler, claim_interrupted, 5.0, OWN);
}

Test(abandon, thread_exits_raw_inside_a_dispatch_of_a_signal_inside_its_claim_auto, .timeout = 30)
{
	claim_interrupted_exit("auto");
}
Test(abandon, thread_exits_raw_inside_a_dispatch_of_a_signal_inside_its_claim_int3, .timeout = 30)
{
	claim_interrupted_exit("int3");
}


/* ------------------------------------------------------------ still running */

enum where {
	HANDLER_SLEEPS,          /* the probe's handler sleeps */
	HANDLER_SPINS,           /* ... or computes */
	ALT_HIT_SLEEPS,          /* a hit in a signal handler on the alternate
				  * stack, whose probe handler sleeps */
	ALT_SIGNAL_SLEEPS,       /* a signal handler on the alternate stack
				  * interrupted the dispatch and sleeps */
	ALT_SIGNAL_SPINS,        /* ... or computes */
};

static enum where where;
static int alt_mapped_running;   /* the alternate stack: a mapping of its own */
static atomic_bool finished;   /* the dispatch whose probe is detached ended */
static sem_t running;

static void spin_ms(long ms)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (seconds_since(&t0) * 1000 < (double)ms)
		__asm__ volatile("pause");
}

static int nested_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	sem_post(&running);
	sleep_ms(200);
	return 0;
}

static void on_usr2(int sig)
{
	(void)sig;
	if (where == ALT_HIT_SLEEPS) {
		ab_nested(1);
		return;
	}
	sem_post(&running);
	where == ALT_SIGNAL_SLEEPS ? sleep_ms(200) : spin_ms(200);
}

struct held {
	int magic;
};

static int long_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	struct held *h = data;
	if (where == HANDLER_SLEEPS || where == HANDLER_SPINS) {
		sem_post(&running);
		where == HANDLER_SLEEPS ? sleep_ms(200) : spin_ms(200);
	} else {
		raise(SIGUSR2);   /* delivered now, on the alternate stack */
	}
	cr_expect_eq(h->magic, 0x5eed, "the handler's data was freed under it");
	atomic_store(&finished, true);
	return 0;
}

static void *long_caller(void *arg)
{
	(void)arg;
	/* the alternate stack is an array of this frame: inside the thread's
	 * own stack, above the dispatch's frame */
	char alt[64 * 1024];
	stack_t ss = { .ss_sp = alt, .ss_size = sizeof(alt) }, before;
	void *mapped = NULL;
	if (alt_mapped_running)
		mapped = own_altstack(&before);
	else
		cr_assert_eq(sigaltstack(&ss, &before), 0);
	ab_hit(1);
	if (mapped)
		drop_altstack(mapped, &before);
	else
		sigaltstack(&before, NULL);
	return NULL;
}

static void still_running(const char *mode, enum where w)
{
	set_mode(mode);
	where = w;
	atomic_store(&finished, false);
	sem_init(&running, 0, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_ONSTACK;
	cr_assert_eq(sigaction(SIGUSR2, &sa, NULL), 0);
	struct held *h = malloc(sizeof(*h));
	h->magic = 0x5eed;
	struct selfprobe_link *l = selfprobe_attach("uprobe:ab_hit", long_handler, h);
	struct selfprobe_link *nl = selfprobe_attach("uprobe:ab_nested", nested_handler, NULL);
	cr_assert(l && nl);
	uint64_t lost0 = sp_tstate_abandoned_total();
	pthread_t t;
	pthread_create(&t, NULL, long_caller, NULL);
	while (sem_wait(&running) != 0)
		;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_eq(selfprobe_detach(l), 0);
	cr_expect(atomic_load(&finished), "%s, case %d: the detach returned after %.3f s, "
		  "while a dispatch of its probe was still running", mode, (int)w, seconds_since(&t0));
	h->magic = 0;
	free(h);   /* as the API allows once the detach returned */
	pthread_join(t, NULL);
	cr_expect_eq(sp_tstate_abandoned_total(), lost0, "%s, case %d: a running dispatch was counted abandoned",
		     mode, (int)w);
	cr_assert_eq(selfprobe_detach(nl), 0);
	signal(SIGUSR2, SIG_DFL);
}

Test(abandon, handler_sleeping_is_waited_for_auto, .timeout = 30) { still_running("auto", HANDLER_SLEEPS); }
Test(abandon, handler_sleeping_is_waited_for_int3, .timeout = 30) { still_running("int3", HANDLER_SLEEPS); }
Test(abandon, handler_spinning_is_waited_for_auto, .timeout = 30) { still_running("auto", HANDLER_SPINS); }
Test(abandon, altstack_hit_sleeping_is_waited_for_auto, .timeout = 30) { still_running("auto", ALT_HIT_SLEEPS); }
Test(abandon, altstack_hit_sleeping_is_waited_for_int3, .timeout = 30) { still_running("int3", ALT_HIT_SLEEPS); }
Test(abandon, altstack_signal_sleeping_is_waited_for_auto, .timeout = 30) { still_running("auto", ALT_SIGNAL_SLEEPS); }
Test(abandon, altstack_signal_spinning_is_waited_for_auto, .timeout = 30) { still_running("auto", ALT_SIGNAL_SPINS); }
Test(abandon, altstack_signal_sleeping_is_waited_for_int3, .timeout = 30) { still_running("int3", ALT_SIGNAL_SLEEPS); }

/* the alternate stack a mapping of its own: a dispatch on the thread's
 * stack, interrupted by the program's handler there, still runs */
Test(abandon, mapped_altstack_signal_sleeping_is_waited_for_auto, .timeout = 30)
{
	alt_mapped_running = 1;
	still_running("auto", ALT_SIGNAL_SLEEPS);
}
Test(abandon, mapped_altstack_signal_spinning_is_waited_for_auto, .timeout = 30)
{
	alt_mapped_running = 1;
	still_running("auto", ALT_SIGNAL_SPINS);
}
Test(abandon, mapped_altstack_hit_sleeping_is_waited_for_int3, .timeout = 30)
{
	alt_mapped_running = 1;
	still_running("int3", ALT_HIT_SLEEPS);
}

/* ------------------------------------------------------------ fork */

/* A fork while a detach is asking a thread (the question's lock held):
 * in the child, a detach that must ask a thread of its own still
 * returns. */
static atomic_bool unmute;
static struct raw_ctx child_back;
static sem_t child_jumped;

static uint64_t stop_signal_bit(void)
{
	return (uint64_t)1 << (SIGRTMAX - 3 - 1);   /* stopworld.h's signal */
}

/* Abandons its dispatch, then runs with the question's signal blocked
 * (a raw system call: the runtime's own mask interposer would keep it):
 * the parent's detach waits for its answer, the lock held. */
static void *mute_jumper(void *arg)
{
	(void)arg;
	if (raw_save(&back) == 0)
		ab_hit(1);
	uint64_t set = stop_signal_bit();
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, sizeof(set));
	sem_post(&jumped);
	while (!atomic_load(&unmute))
		__asm__ volatile("pause");
	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, NULL, sizeof(set));
	while (!atomic_load(&end_spin))
		__asm__ volatile("pause");
	return NULL;
}

static int child_jump_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	NO_RETURN_HERE();
	raw_restore(&child_back);
}

static void *child_jumper(void *arg)
{
	(void)arg;
	if (raw_save(&child_back) == 0)
		ab_nested(1);
	sem_post(&child_jumped);
	for (;;)   /* running: the child's detach asks it by the signal */
		__asm__ volatile("pause");
	return NULL;
}

static void *detach_in_thread(void *arg)
{
	selfprobe_detach(arg);
	return NULL;
}

static void child_detaches(void)
{
	struct selfprobe_link *c = selfprobe_attach("uprobe:ab_nested", child_jump_handler, NULL);
	if (!c)
		syscall(SYS_exit_group, 3);
	sem_init(&child_jumped, 0, 0);
	pthread_t t;
	pthread_create(&t, NULL, child_jumper, NULL);
	while (sem_wait(&child_jumped) != 0)
		;
	syscall(SYS_exit_group, selfprobe_detach(c) == 0 ? 0 : 4);
}

Test(abandon, fork_while_a_detach_asks, .timeout = 60)
{
	set_mode("auto");
	how = (struct how){ .mode = "auto" };
	sem_init(&jumped, 0, 0);
	struct selfprobe_link *j = selfprobe_attach("uprobe:ab_hit", jump_handler, NULL);
	cr_assert(j);
	pthread_t t, d;
	pthread_create(&t, NULL, mute_jumper, NULL);
	while (sem_wait(&jumped) != 0)
		;
	pthread_create(&d, NULL, detach_in_thread, j);
	sleep_ms(30);   /* the detach asks from 4 ms on, and waits 100 ms for the answer */
	pid_t pid = fork();
	if (pid == 0)
		child_detaches();
	int status = -1;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (seconds_since(&t0) > 10) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		sleep_ms(10);
	}
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child's detach did not return (status %#x): the lock of a question the parent "
		  "was asking at the fork was still held", status);
	atomic_store(&unmute, true);
	pthread_join(d, NULL);   /* the parent's detach: answered now */
	atomic_store(&end_spin, true);
	pthread_join(t, NULL);
}
