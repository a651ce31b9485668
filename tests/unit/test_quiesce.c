/* A detach waits for the dispatches that use what it frees, and only for
 * them (runtime/hot/tstate.h), whatever signal handlers do in between:
 *   - nested: a signal handler that interrupted a dispatch makes a hit of
 *     its own; while that nested dispatch runs, the outer one is still
 *     inside, and a detach of the outer probe must wait for it (a parity
 *     bit per thread said "outside" during the nested one);
 *   - abandoned: a signal handler that interrupted a dispatch leaves it by
 *     siglongjmp, or a handler of ours jumps out; a detach must not wait
 *     for that thread's next hit (it would wait for ever here: the thread
 *     makes none), and the thread's later hits are full hits.
 * Each case in auto (jmp) and int3 mode.  A detach that hangs is caught by
 * the test's timeout. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "selfprobe.h"

#define NOINLINE __attribute__((noinline, used, visibility("default")))

static volatile int sink;

NOINLINE int q_outer(int x)
{
	sink += x;
	return x + 1;
}

NOINLINE int q_inner(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 2;
}

NOINLINE int q_jump(int x)
{
	sink += x;
	return x + 3;
}

NOINLINE int q_after(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 4;
}

static void set_mode(const char *mode)
{
	cr_assert_eq(selfprobe_set_mode(mode), 0);
}

/* ------------------------------------------------------------ nested */

static sem_t in_inner, release_inner;
static atomic_int outer_calls, inner_calls;

static void on_usr2(int sig)
{
	(void)sig;
	q_inner(1);               /* a hit of its own, nested in the outer dispatch */
}

static int outer_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&outer_calls, 1);
	raise(SIGUSR2);           /* delivered now, inside this dispatch */
	return 0;
}

static int inner_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&inner_calls, 1);
	sem_post(&in_inner);
	while (sem_wait(&release_inner) != 0)
		;
	return 0;
}

static void *call_outer(void *arg)
{
	(void)arg;
	q_outer(7);
	return NULL;
}

struct detacher {
	struct selfprobe_link *link;
	atomic_bool done;
};

static void *detach_it(void *arg)
{
	struct detacher *d = arg;
	cr_assert_eq(selfprobe_detach(d->link), 0);
	atomic_store(&d->done, true);
	return NULL;
}

static void nested(const char *mode)
{
	set_mode(mode);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	cr_assert_eq(sigaction(SIGUSR2, &sa, NULL), 0);   /* behind the runtime's wrapper */
	sem_init(&in_inner, 0, 0);
	sem_init(&release_inner, 0, 0);
	struct selfprobe_link *outer = selfprobe_attach("uprobe:q_outer", outer_handler, NULL);
	struct selfprobe_link *inner = selfprobe_attach("uprobe:q_inner", inner_handler, NULL);
	cr_assert(outer && inner);

	pthread_t worker;
	pthread_create(&worker, NULL, call_outer, NULL);
	while (sem_wait(&in_inner) != 0)
		;
	/* The worker is inside q_outer's dispatch, and inside q_inner's in the
	 * signal handler that interrupted it.  Detaching q_outer must wait. */
	struct detacher d = { outer, false };
	pthread_t t;
	pthread_create(&t, NULL, detach_it, &d);
	struct timespec pause = { 0, 300 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	cr_expect(!atomic_load(&d.done),
		  "%s: selfprobe_detach returned while a dispatch of its probe was running "
		  "(a nested dispatch in a signal handler hid it)", mode);
	sem_post(&release_inner);
	pthread_join(t, NULL);
	pthread_join(worker, NULL);
	cr_expect(atomic_load(&d.done));
	cr_expect_eq(atomic_load(&outer_calls), 1);
	cr_expect_eq(atomic_load(&inner_calls), 1);
	cr_assert_eq(selfprobe_detach(inner), 0);
}

Test(quiesce, nested_dispatch_in_a_signal_handler_auto, .timeout = 60) { nested("auto"); }
Test(quiesce, nested_dispatch_in_a_signal_handler_int3, .timeout = 60) { nested("int3"); }

/* ------------------------------------------------------------ abandoned */

static sigjmp_buf jump_back;
static atomic_int jump_calls, after_calls;
static int jumps_from_handler;      /* 1: our handler itself jumps out */
static int on_altstack;             /* 1: the jumper has an alternate signal stack */

static void on_usr1(int sig)
{
	(void)sig;
	siglongjmp(jump_back, 1);
}

static int jump_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&jump_calls, 1);
	if (jumps_from_handler)
		siglongjmp(jump_back, 1);
	raise(SIGUSR1);           /* its handler jumps out of this dispatch */
	return 0;
}

static int after_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&after_calls, 1);
	return 0;
}

static sem_t jumped, may_end;

static void *jumper(void *arg)
{
	(void)arg;
	/* With one (ASan and Rust give every thread one), our int3 handler
	 * and the program's SIGUSR1 handler run there: the frames a jump
	 * leaves are not below its target on one stack.  Placed above the
	 * jump's target (in this frame), where a comparison of addresses
	 * alone would take them for older frames. */
	char alt[64 * 1024];
	stack_t ss = { .ss_sp = alt, .ss_size = sizeof(alt) }, before;
	if (on_altstack)
		cr_assert_eq(sigaltstack(&ss, &before), 0);
	for (volatile int i = 0; i < 3; i++)   /* odd: a parity bit is left "inside" */
		if (sigsetjmp(jump_back, 1) == 0)
			q_jump(i);
	sem_post(&jumped);
	while (sem_wait(&may_end) != 0)    /* no hit until the detach is done */
		;
	q_after(1);                        /* a full hit: its handler runs */
	if (on_altstack)   /* this frame ends: the thread's own (ASan's) again */
		sigaltstack(&before, NULL);
	return NULL;
}

static void abandoned(const char *mode, int from_handler, int altstack)
{
	set_mode(mode);
	jumps_from_handler = from_handler;
	on_altstack = altstack;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = altstack ? SA_ONSTACK : 0;
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	sem_init(&jumped, 0, 0);
	sem_init(&may_end, 0, 0);
	struct selfprobe_link *j = selfprobe_attach("uprobe:q_jump", jump_handler, NULL);
	struct selfprobe_link *a = selfprobe_attach("uprobe:q_after", after_handler, NULL);
	cr_assert(j && a);
	pthread_t t;
	pthread_create(&t, NULL, jumper, NULL);
	while (sem_wait(&jumped) != 0)
		;
	cr_expect_eq(atomic_load(&jump_calls), 3);
	/* returns, though the jumper never comes back to those dispatches and
	 * makes no hit meanwhile (the test's timeout catches a hang) */
	cr_assert_eq(selfprobe_detach(j), 0);
	sem_post(&may_end);
	pthread_join(t, NULL);
	cr_expect_eq(atomic_load(&after_calls), 1,
		     "%s: the thread's next hit ran %d handlers: it was still taken for inside a dispatch",
		     mode, atomic_load(&after_calls));
	cr_assert_eq(selfprobe_detach(a), 0);
}

Test(quiesce, signal_handler_jumps_out_auto, .timeout = 60) { abandoned("auto", 0, 0); }
Test(quiesce, signal_handler_jumps_out_int3, .timeout = 60) { abandoned("int3", 0, 0); }
Test(quiesce, our_handler_jumps_out_auto, .timeout = 60) { abandoned("auto", 1, 0); }
Test(quiesce, our_handler_jumps_out_int3, .timeout = 60) { abandoned("int3", 1, 0); }
Test(quiesce, signal_handler_jumps_out_on_altstack_auto, .timeout = 60) { abandoned("auto", 0, 1); }
Test(quiesce, signal_handler_jumps_out_on_altstack_int3, .timeout = 60) { abandoned("int3", 0, 1); }
Test(quiesce, our_handler_jumps_out_on_altstack_int3, .timeout = 60) { abandoned("int3", 1, 1); }
