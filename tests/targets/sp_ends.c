/* sp_ends — a program that ends in every way a report could be lost.
 *
 *   sp_ends MODE N      calls ends_work() N times, then:
 *     exit     returns from main               sigkill  kill(getpid(), SIGKILL)
 *     _exit    _exit(3)                         segv     a NULL dereference
 *     abort    abort()                          fork     forks; the child calls
 *                                                        ends_work N more times
 *                                                        and _exits, then exit
 *     threads-sigkill  then 129 threads at once (more than the runtime's 128
 *              exclusive counter stripes: some share one) call it N times
 *              each, and it is killed by SIGKILL while they all live
 * Prints "work N" (the calls it made) before ending.
 *
 *   sp_ends sigint N         Ctrl-C: calls ends_work() until a SIGINT,
 *   sp_ends sigint-die N     printing "progress I" (its calls so far) every
 *   sp_ends sigint-exit N    N calls.  sigint: no handler, killed anywhere;
 *                            sigint-die: prints "interrupted I" (exact, at
 *                            a call boundary), then dies of the SIGINT;
 *                            sigint-exit: prints it and exits 0.  Gives up
 *                            with status 4 after 60 s without a SIGINT.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int sink;
static volatile sig_atomic_t interrupted;

__attribute__((noinline, used)) void ends_work(int i)
{
	sink += i;
}

#define N_THREADS 129
static pthread_barrier_t all_done;

static void *worker(void *arg)
{
	int n = *(int *)arg;
	for (int i = 0; i < n; i++)
		ends_work(i);
	pthread_barrier_wait(&all_done);
	for (;;)
		pause();   /* alive until the SIGKILL */
	return NULL;
}

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int until_sigint(const char *mode, int n)
{
	if (strcmp(mode, "sigint") != 0) {
		struct sigaction sa = { .sa_handler = on_sigint };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
	}
	time_t start = time(NULL);
	long i;
	/* the flag is read between calls: I is then exactly the calls made */
	for (i = 0; !interrupted; i++) {
		if (i % n == 0) {
			printf("progress %ld\n", i);
			fflush(stdout);
			usleep(1000);
			if (time(NULL) - start > 60) {
				printf("no SIGINT after 60 s\n");
				return 4;
			}
		}
		ends_work((int)i);
	}
	printf("interrupted %ld\n", i);
	fflush(stdout);
	if (strcmp(mode, "sigint-exit") == 0)
		return 0;
	signal(SIGINT, SIG_DFL);
	raise(SIGINT);
	return 5;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "exit";
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	if (strncmp(mode, "sigint", 6) == 0)
		return until_sigint(mode, n > 0 ? n : 1000);
	for (int i = 0; i < n; i++)
		ends_work(i);
	if (!strcmp(mode, "threads-sigkill")) {
		pthread_t t;
		pthread_barrier_init(&all_done, NULL, N_THREADS + 1);
		for (int i = 0; i < N_THREADS; i++)
			if (pthread_create(&t, NULL, worker, &n) != 0)
				return 6;
		pthread_barrier_wait(&all_done);
		printf("work %ld\n", (long)n * (N_THREADS + 1));
		fflush(stdout);
		kill(getpid(), SIGKILL);
	}
	printf("work %d\n", n);
	fflush(stdout);
	if (!strcmp(mode, "_exit"))
		_exit(3);
	if (!strcmp(mode, "sigkill"))
		kill(getpid(), SIGKILL);
	if (!strcmp(mode, "segv"))
		return *(volatile int *)0;
	if (!strcmp(mode, "abort"))
		abort();
	if (!strcmp(mode, "fork")) {
		pid_t p = fork();
		if (p == 0) {
			for (int i = 0; i < n; i++)
				ends_work(i);
			_exit(0);
		}
		waitpid(p, NULL, 0);
	}
	return 0;
}
