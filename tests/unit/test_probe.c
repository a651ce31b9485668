/* The probe layer through the public API, in-process: attach/detach on this
 * test binary's own functions, handlers, writable registers, recursion,
 * detach under load, SIGTRAP coexistence, the report. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selfprobe.h"
#include "unit.h"

#define NOINLINE __attribute__((noinline, used, visibility("default")))

static volatile int sink;

NOINLINE int probe_me(int x)
{
	sink += x;
	return x * 3 + 1;
}

NOINLINE int probe_recurse(int depth)
{
	sink++;
	return depth;
}

NOINLINE int probe_other(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 7;
}


static _Atomic long handler_calls;
static _Atomic long last_arg;

static int count_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	atomic_fetch_add(&handler_calls, 1);
	atomic_store(&last_arg, (long)selfprobe_arg(ctx, 0));
	return 0;
}

static void reset(void)
{
	atomic_store(&handler_calls, 0);
	selfprobe_set_mode("int3");
}

Test(probe, handler_sees_every_call_and_args)
{
	reset();
	struct selfprobe_link *l = selfprobe_attach("uprobe:probe_me", count_handler, NULL);
	cr_assert_not_null(l, "attach: %s", strerror(errno));
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(probe_me(i), i * 3 + 1);
	cr_assert_eq(atomic_load(&handler_calls), 1000);
	cr_assert_eq(atomic_load(&last_arg), 999);
	cr_assert_eq(selfprobe_detach(l), 0);
	probe_me(1);
	cr_assert_eq(atomic_load(&handler_calls), 1000, "a handler ran after detach");
	cr_assert_eq(probe_me(5), 16);
}

static int skip_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	struct selfprobe_regs *r = selfprobe_regs(ctx);
	/* return 42 without running the function: pop the return address */
	r->rax = 42;
	r->rip = *(uint64_t *)r->rsp;
	r->rsp += 8;
	return 0;
}

Test(probe, writable_registers_skip_the_function)
{
	reset();
	int before = sink;
	struct selfprobe_link *l = selfprobe_attach("uprobe:probe_other", skip_handler, NULL);
	cr_assert_not_null(l);
	cr_assert_eq(probe_other(1), 42);
	cr_assert_eq(sink, before);
	selfprobe_detach(l);
	cr_assert_eq(probe_other(1), 8);
}

static int recursing_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&handler_calls, 1);
	probe_recurse(-1);   /* a hit inside a handler: counted, not handled */
	return 0;
}

Test(probe, recursion_counts_missed)
{
	reset();
	cr_assert_eq(selfprobe_attach_spec("uprobe:probe_recurse"), 0);
	struct selfprobe_link *l = selfprobe_attach("uprobe:probe_recurse", recursing_handler, NULL);
	cr_assert_not_null(l);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(probe_recurse(i), i);
	cr_assert_eq(atomic_load(&handler_calls), 10);
	char *buf = unit_report_json();
	/* the count-only probe saw all 20 hits; the handler probe missed 10 */
	cr_assert(strstr(buf, "\"hits\": 20, \"missed\": 0"), "%s", buf);
	cr_assert(strstr(buf, "\"hits\": 20, \"missed\": 10"), "%s", buf);
	free(buf);
	selfprobe_detach(l);
}

static _Atomic int stop;
static void *hammer(void *arg)
{
	(void)arg;
	long calls = 0;
	while (!atomic_load(&stop)) {
		if (probe_me(2) != 7)
			abort();
		calls++;
	}
	return (void *)calls;
}

Test(probe, detach_under_load_never_calls_after_return, .timeout = 60)
{
	reset();
	atomic_store(&stop, 0);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, hammer, NULL);
	for (int round = 0; round < 300; round++) {
		struct selfprobe_link *l = selfprobe_attach("uprobe:probe_me", count_handler, NULL);
		cr_assert_not_null(l);
		usleep(100);
		cr_assert_eq(selfprobe_detach(l), 0);
		long after = atomic_load(&handler_calls);
		usleep(50);
		cr_assert_eq(atomic_load(&handler_calls), after, "handler called after detach (round %d)", round);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

static _Atomic int app_traps;
static void app_sigtrap(int sig)
{
	(void)sig;
	atomic_fetch_add(&app_traps, 1);
}

Test(probe, application_sigtrap_handler_is_chained)
{
	reset();
	struct selfprobe_link *l = selfprobe_attach("uprobe:probe_me", count_handler, NULL);
	cr_assert_not_null(l);
	struct sigaction sa = { .sa_handler = app_sigtrap }, old;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGTRAP, &sa, &old), 0);
	raise(SIGTRAP);                                   /* not ours: theirs runs */
	cr_assert_eq(atomic_load(&app_traps), 1);
	cr_assert_eq(probe_me(1), 4);                     /* ours still works */
	cr_assert_eq(atomic_load(&handler_calls), 1);
	struct sigaction cur;
	cr_assert_eq(sigaction(SIGTRAP, NULL, &cur), 0);
	cr_assert_eq(cur.sa_handler, app_sigtrap, "the application sees its own handler");
	selfprobe_detach(l);
}

Test(probe, blocked_sigtrap_does_not_kill)
{
	reset();
	struct selfprobe_link *l = selfprobe_attach("uprobe:probe_me", count_handler, NULL);
	cr_assert_not_null(l);
	sigset_t all;
	sigfillset(&all);
	cr_assert_eq(sigprocmask(SIG_BLOCK, &all, NULL), 0);
	cr_assert_eq(probe_me(3), 10);
	cr_assert_eq(atomic_load(&handler_calls), 1);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	selfprobe_detach(l);
}

Test(probe, errors_are_reported_and_others_attach)
{
	reset();
	int rc = selfprobe_attach_spec("uprobe:no_such_function_here;uprobez:x;uprobe:probe_me");
	cr_assert_eq(rc, -EINVAL);
	for (int i = 0; i < 5; i++)
		probe_me(i);
	char *buf = unit_report_json();
	cr_assert(strstr(buf, "\"spec\": \"uprobe:no_such_function_here\", \"message\": \"symbol 'no_such_function_here' not found"), "%s", buf);
	cr_assert(strstr(buf, "\"spec\": \"uprobez:x\""), "%s", buf);
	cr_assert(strstr(buf, "\"symbol\": \"probe_me\""), "%s", buf);
	cr_assert(strstr(buf, "\"hits\": 5"), "%s", buf);
	free(buf);
	errno = 0;
	cr_assert_null(selfprobe_attach("usdt:noprov:noname", count_handler, NULL));
	cr_assert_eq(errno, ENOENT, "no USDT notes in this binary: %s", strerror(errno));
}

Test(probe, offsets_must_be_instruction_boundaries)
{
	reset();
	errno = 0;
	/* probe_other starts with a multi-byte instruction: +1 is inside it */
	cr_assert_null(selfprobe_attach("uprobe:probe_other+1", count_handler, NULL));
	cr_assert_eq(errno, EINVAL);
}
