/* sp_sigframe — a jmp patched while a signal handler of the application
 * will resume a thread inside the window (e2e_sigframe.py).
 *
 *   sp_sigframe spin|block REPORT.json
 *
 * A thread calls sf_target in a loop, checking each result.  SIGUSR1 is
 * sent to it until its handler finds the interrupted PC strictly inside
 * bytes 1–4 of sf_target; the handler then waits there (spin: on a flag;
 * block: in read(2), a system call), with that PC in its signal frame.
 * Meanwhile main attaches uprobe:sf_target in auto mode through the C API,
 * prints what the entry holds ("during int3" or "during jmp"), lets the
 * handler return, lets the thread run on, and prints "wrong N" (results
 * not a + 1) and "calls N".  The report goes to REPORT.json.  Then it
 * detaches, attaches again with no handler inside the window and prints
 * "after jmp" or "after int3".  Exit status 0 unless something could not
 * be set up (2), or the handler was never caught inside the window (77).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "selfprobe.h"

uint64_t sf_target(uint64_t a);

static _Atomic int caught, release_handler, stop;
static _Atomic uint64_t calls, wrong, handled;
static int blocking;
static int pipefd[2];

static uintptr_t entry(void)
{
	uintptr_t a = (uintptr_t)sf_target;
	__asm__("" : "+r"(a));
	return a;
}

static void on_usr1(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ucv;
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP], f = entry();
	atomic_fetch_add(&handled, 1);
	if (atomic_load(&caught) || pc <= f || pc >= f + 5)
		return;
	atomic_store(&caught, 1);
	if (blocking) {
		char c;
		while (read(pipefd[0], &c, 1) < 0)
			;
	} else
		while (!atomic_load(&release_handler))
			;
}

static void *caller(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
		if (sf_target(i) != i + 1)
			atomic_fetch_add(&wrong, 1);
		atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
	}
	return NULL;
}

static const char *holds(void)
{
	uint8_t b = *(volatile uint8_t *)entry();
	return b == 0xe9 ? "jmp" : b == 0xcc ? "int3" : b == 0x90 ? "nop" : "other";
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "spin") && strcmp(argv[1], "block"))) {
		fprintf(stderr, "usage: sp_sigframe spin|block REPORT.json\n");
		return 2;
	}
	blocking = strcmp(argv[1], "block") == 0;
	if (pipe(pipefd) != 0 || selfprobe_set_mode("auto") != 0)
		return 2;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return 2;
	pthread_t t;
	if (pthread_create(&t, NULL, caller, NULL) != 0)
		return 2;
	/* one signal at a time (a pending SIGUSR1 absorbs the next) */
	for (long i = 0; i < 200000 && !atomic_load(&caught); i++) {
		uint64_t h = atomic_load(&handled);
		pthread_kill(t, SIGUSR1);
		for (long spin = 0; atomic_load(&handled) == h && spin < 1000000; spin++)
			if (spin % 1024 == 1023)
				sched_yield();
	}
	if (!atomic_load(&caught)) {
		atomic_store(&stop, 1);
		pthread_join(t, NULL);
		printf("never caught inside the window\n");
		return 77;
	}
	pause_ms(20);   /* the handler is in its wait */
	struct selfprobe_link *l = selfprobe_attach("uprobe:sf_target", NULL, NULL);
	printf("during %s\n", l ? holds() : "no-attach");
	if (blocking) {
		if (write(pipefd[1], "x", 1) != 1)
			return 2;
	} else
		atomic_store(&release_handler, 1);
	uint64_t c0 = atomic_load(&calls);
	while (atomic_load(&calls) < c0 + 200000)
		sched_yield();
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("wrong %llu\ncalls %llu\n", (unsigned long long)atomic_load(&wrong),
	       (unsigned long long)atomic_load(&calls));
	selfprobe_write_report(argv[2]);
	if (l)
		selfprobe_detach(l);
	l = selfprobe_attach("uprobe:sf_target", NULL, NULL);
	printf("after %s\n", l ? holds() : "no-attach");
	fflush(stdout);
	return 0;
}
