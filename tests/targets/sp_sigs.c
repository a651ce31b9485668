/* sp_sigs — probed functions called both from normal code and from
 * asynchronous signal handlers (e2e_signals.py, issue 13).
 *
 *   sp_sigs VARIANT [MIN_SIGNALS [ALRM_US]]
 *
 * main calls f (this program) and f_lib (libsp_sigs_lib.so) in a loop while
 * SIGALRM (ITIMER_REAL) and SIGPROF (ITIMER_PROF) fire every ALRM_US (default
 * 20; nodefer: 200) and 50 µs;
 * both handlers call f and f_lib too.  The loop runs until each handler ran
 * MIN_SIGNALS times (default 400; SIGPROF MIN_SIGNALS/20 times: CPU-time
 * timers fire at the scheduler tick at best).  f and f_lib count their own entries and
 * returns with locked adds (exact under any signal), and the program prints
 * them as "name value" lines once the timers are off:
 *
 *   f_entries f_returns f_lib_entries f_lib_returns   what the probes see
 *   from_handlers   calls made by the handlers (f and f_lib)
 *   from_main       calls of f made by main's loop
 *   alrm prof       handler runs
 *   abandoned       frames of f left by siglongjmp (variant longjmp)
 *
 * VARIANT:
 *   plain      handlers with SA_RESTART, each blocking the other
 *   altstack   the same on a sigaltstack (SA_ONSTACK)
 *   nodefer    SA_NODEFER and empty masks: handlers nest in each other
 *              and in themselves (at most 4 deep: beyond, the handler
 *              blocks both signals until it returns)
 *   longjmp    main's f sometimes spins in its body; a SIGALRM that lands
 *              there calls f and f_lib, then siglongjmps back to main's loop,
 *              abandoning that frame of f (its return never comes)
 *   jumpall    every other SIGALRM handler (every 200 µs by default)
 *              siglongjmps back to main's loop
 *              wherever main was: in f, in f_lib, in the loop, or inside
 *              whatever a probe runs there; "abandoned" counts the jumps
 *              (counts are then exact only within those jumps)
 */
#define _GNU_SOURCE
#include "sp_sigs.h"

#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

unsigned long f_entries, f_returns;
static unsigned long from_handlers, alrm, prof, abandoned;
static volatile int in_body;       /* main's f is spinning in its body */
static sigjmp_buf jump_back;
static int variant_longjmp, variant_jumpall;
static unsigned long from_main;

__attribute__((noinline)) long f(long x, long spin)
{
	SP_SIGS_FIRST(x);
	sp_sigs_inc(&f_entries);
	if (spin) {
		in_body = 1;
		for (volatile long i = 0; i < spin; i++)
			;
		in_body = 0;
	}
	x = x * 3 + 1;
	sp_sigs_inc(&f_returns);
	return x;
}

static volatile int depth;        /* handlers running (nested: nodefer) */

/* First thing in each handler.  nodefer: a loaded machine can take longer
 * than the period to deliver a signal; past 4 levels the timers' signals
 * wait for this handler to return. */
static void handler_enter(void)
{
	if (++depth > 4) {
		sigset_t both;
		sigemptyset(&both);
		sigaddset(&both, SIGALRM);
		sigaddset(&both, SIGPROF);
		sigprocmask(SIG_BLOCK, &both, NULL);
	}
}

static void handler_calls(void)
{
	f(1, 0);
	f_lib(2);
	sp_sigs_inc(&from_handlers);
	sp_sigs_inc(&from_handlers);
	depth--;
}

static void on_alrm(int sig)
{
	(void)sig;
	handler_enter();
	sp_sigs_inc(&alrm);
	handler_calls();
	if (variant_jumpall && alrm % 2 == 0) {
		depth = 0;
		sp_sigs_inc(&abandoned);
		siglongjmp(jump_back, 1);
	}
	if (variant_longjmp && in_body) {
		/* main is inside f (entered, not returned): leave that frame */
		in_body = 0;
		depth = 0;
		sp_sigs_inc(&abandoned);
		siglongjmp(jump_back, 1);
	}
}

static void on_prof(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	handler_enter();
	sp_sigs_inc(&prof);
	handler_calls();
}

static void timers(long alrm_us, long prof_us)
{
	struct itimerval it = { { 0, alrm_us }, { 0, alrm_us } };
	setitimer(ITIMER_REAL, &it, NULL);
	struct itimerval ip = { { 0, prof_us }, { 0, prof_us } };
	setitimer(ITIMER_PROF, &ip, NULL);
}

int main(int argc, char **argv)
{
	const char *variant = argc > 1 ? argv[1] : "plain";
	unsigned long min_signals = argc > 2 ? strtoul(argv[2], NULL, 0) : 400;
	long alrm_us = argc > 3 ? strtol(argv[3], NULL, 0) : 0;
	int flags = SA_RESTART;
	bool nested = false;
	if (!strcmp(variant, "altstack")) {
		static char altstack[256 * 1024];
		stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
		if (sigaltstack(&ss, NULL) != 0) {
			perror("sigaltstack");
			return 2;
		}
		flags |= SA_ONSTACK;
	} else if (!strcmp(variant, "nodefer")) {
		flags |= SA_NODEFER;
		nested = true;
	} else if (!strcmp(variant, "longjmp")) {
		variant_longjmp = 1;
	} else if (!strcmp(variant, "jumpall")) {
		variant_jumpall = 1;
	} else if (strcmp(variant, "plain")) {
		fprintf(stderr, "usage: sp_sigs plain|altstack|nodefer|longjmp|jumpall [MIN_SIGNALS [ALRM_US]]\n");
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (!nested)
		sigaddset(&sa.sa_mask, SIGPROF);
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_sigaction = on_prof;
	sa.sa_flags = flags | SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (!nested)
		sigaddset(&sa.sa_mask, SIGALRM);
	sigaction(SIGPROF, &sa, NULL);

	/* the timers start once jump_back holds a context: a handler that
	 * jumped through a half-written buffer would crash unprobed too */
	if (sigsetjmp(jump_back, 1) == 0)
		timers(alrm_us > 0 ? alrm_us : nested || variant_jumpall ? 200 : 20, 50);
	long acc = 0;
	static unsigned long i;   /* goes on after a siglongjmp */
	for (; __atomic_load_n(&alrm, __ATOMIC_RELAXED) < min_signals ||
				   __atomic_load_n(&prof, __ATOMIC_RELAXED) < min_signals / 20; i++) {
		acc += f((long)i, variant_longjmp && i % 64 == 0 ? 2000 : 0);
		sp_sigs_inc(&from_main);
		acc += f_lib((long)i);
	}
	timers(0, 0);
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	printf("f_entries %lu\nf_returns %lu\nf_lib_entries %lu\nf_lib_returns %lu\n"
	       "from_handlers %lu\nfrom_main %lu\nalrm %lu\nprof %lu\nabandoned %lu\n",
	       f_entries, f_returns, f_lib_entries, f_lib_returns, from_handlers, from_main, alrm, prof,
	       abandoned);
	__asm__ volatile("" : : "r"(acc));
	return 0;
}
