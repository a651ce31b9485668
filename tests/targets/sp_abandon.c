/* sp_abandon — a detach after a probe handler's call was left for good, or
 * while one still runs (e2e_abandon.py).
 *
 *   sp_abandon MODE CASE REPORT.json
 *
 * MODE is the probe mode (auto, int3).  A worker thread calls ab_target,
 * whose probe handler:
 *   setcontext  raises SIGUSR1, whose handler leaves by setcontext(3) to a
 *               context the worker saved before the call (no longjmp: no
 *               interposer sees it); the worker then blocks in read(2)
 *   exit        ends its thread by a raw exit system call
 *   sleep       sleeps 200 ms, then checks its data (a malloc'd block the
 *               program frees as soon as the detach returns)
 * Meanwhile main detaches uprobe:ab_target and prints "detach RC SECONDS"
 * and, for sleep, "finished F" (1: the handler had ended when the detach
 * returned) then, once the worker ended, "data ok|freed".  After the
 * detach the worker calls ab_next once; "next N" is how many times its
 * handler ran.  The report goes to REPORT.json.  A detach that hangs is
 * ended by alarm(20) (exit by SIGALRM).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "selfprobe.h"

#define NOINLINE __attribute__((noinline, used, visibility("default")))

static volatile int sink;

NOINLINE int ab_target(int x)
{
	sink += x;
	return x + 1;
}

NOINLINE int ab_next(int x)
{
	sink += x;
	return x + 2;
}

static const char *how;
static ucontext_t back;
static volatile int left;
static int pipefd[2];
static atomic_int in_handler, finished, next_calls, data_ok = -1;

struct held {
	int magic;
};

static void on_usr1(int sig)
{
	(void)sig;
	setcontext(&back);   /* out of this signal handler and the probe handler */
}

static int target_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	atomic_store(&in_handler, 1);
	if (strcmp(how, "setcontext") == 0) {
		raise(SIGUSR1);
	} else if (strcmp(how, "exit") == 0) {
		syscall(SYS_exit, 0);   /* this thread only, past libc */
	} else {
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		while (nanosleep(&ts, &ts) != 0)
			;
		struct held *h = data;
		atomic_store(&data_ok, h->magic == 0x5eed);
		atomic_store(&finished, 1);
	}
	return 0;
}

static int next_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&next_calls, 1);
	return 0;
}

static void *worker(void *arg)
{
	(void)arg;
	getcontext(&back);
	if (!left) {
		left = 1;
		ab_target(1);
	}
	if (strcmp(how, "setcontext") == 0) {
		char c;
		while (read(pipefd[0], &c, 1) < 0)   /* blocked while main detaches */
			;
	}
	ab_next(1);
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	how = argv[2];
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	if (pipe(pipefd) != 0 || selfprobe_set_mode(argv[1]) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
		return 2;
	struct held *h = malloc(sizeof(*h));
	h->magic = 0x5eed;
	struct selfprobe_link *t = selfprobe_attach("uprobe:ab_target", target_handler, h);
	struct selfprobe_link *n = selfprobe_attach("uprobe:ab_next", next_handler, NULL);
	if (!t || !n)
		return 2;
	pthread_t w;
	pthread_create(&w, NULL, worker, NULL);
	while (!atomic_load(&in_handler))
		sched_yield();
	struct timespec settle = { 0, 50 * 1000 * 1000 };   /* left, exited, or asleep by now */
	nanosleep(&settle, NULL);
	alarm(20);
	double t0 = now();
	int rc = selfprobe_detach(t);
	double took = now() - t0;
	int fin = atomic_load(&finished);
	h->magic = 0;
	free(h);   /* as the API allows once the detach returned */
	alarm(0);
	printf("detach %d %.3f\n", rc, took);
	if (strcmp(how, "sleep") == 0)
		printf("finished %d\n", fin);
	if (write(pipefd[1], "x", 1) != 1)
		return 2;
	pthread_join(w, NULL);
	if (strcmp(how, "sleep") == 0)
		printf("data %s\n", atomic_load(&data_ok) == 1 ? "ok" : "freed");
	printf("next %d\n", atomic_load(&next_calls));
	selfprobe_detach(n);
	fflush(stdout);
	return selfprobe_write_report(argv[3]) == 0 ? 0 : 2;
}
