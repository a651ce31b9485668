/* sp_bt — the deterministic workload of the bpftrace golden tests
 * (e2e_bt.py): the same calls on every run, with counts chosen so that no
 * two keys of the tests' maps tie (bpftrace leaves the order of equal
 * values unspecified).
 *   sp_bt            bt_work(k, 37*k*k) k times for k = 1..20, then
 *                    bt_name() with "alpha" once ... "epsilon" 5 times
 *   sp_bt threads N [fork] [wait]  4 threads each calling bt_pair(i) N
 *                    times (entry and return pairing per thread); "fork":
 *                    then a child calling bt_pair(7) 7 times, waited for;
 *                    then bt_end(); "wait": then pause until killed (a
 *                    killed process's maps, printed by the launcher)
 *   sp_bt stack [wait]  bt_leaf(1) reached through bt_top -> bt_mid twice
 *                    and through bt_top directly three times (ustack keys;
 *                    built with frame pointers, as bpftrace walks user
 *                    stacks by them), then bt_end(); "wait": then pause
 *                    until killed (bpftrace symbolises a user stack only
 *                    while the process lives)
 *   sp_bt stdin      the first mode's calls, then read stdin to its end
 *                    (interval blocks: the test reads a tick, then closes it)
 * It prints nothing on stdout: the maps are compared there. */
#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) long bt_work(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a * 4 + (b & 0);
}

__attribute__((noinline)) long bt_name(const char *s)
{
	__asm__ volatile("" ::: "memory");
	return (long)strlen(s);
}

__attribute__((noinline)) long bt_pair(long x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

__attribute__((noinline)) void bt_done(void)
{
	__asm__ volatile("" ::: "memory");
}

/* Not a leaf (it calls bt_done): so it has a frame, and a probe after its
 * prologue (bt_leaf+4) sees every caller on the frame-pointer chain. */
__attribute__((noinline)) long bt_leaf(long x)
{
	bt_done();
	return x + 1;
}

__attribute__((noinline)) long bt_mid(long x)
{
	long r = bt_leaf(x);
	__asm__ volatile("" ::: "memory");
	return r + 1;
}

__attribute__((noinline)) long bt_top(long x)
{
	long r = x & 1 ? bt_mid(x) : bt_leaf(x);
	__asm__ volatile("" ::: "memory");
	return r + 1;
}

__attribute__((noinline)) void bt_end(void)
{
	__asm__ volatile("" ::: "memory");
}

static long per_thread;

static void *pairs(void *arg)
{
	long base = (long)arg * 1000000, s = 0;
	for (long i = 0; i < per_thread; i++)
		s += bt_pair(base + i);
	return (void *)s;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "threads") == 0) {
		per_thread = atol(argv[2]);
		pthread_t t[4];
		for (long i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, pairs, (void *)(i + 1));
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		bool fork_child = false, wait = false;
		for (int i = 3; i < argc; i++) {
			fork_child |= strcmp(argv[i], "fork") == 0;
			wait |= strcmp(argv[i], "wait") == 0;
		}
		if (fork_child) {
			pid_t c = fork();
			if (c == 0) {
				for (int i = 0; i < 7; i++)
					bt_pair(7);
				exit(0);
			}
			waitpid(c, NULL, 0);
		}
		bt_end();
		if (wait)
			pause();
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "stack") == 0) {
		long s = 0;
		for (long i = 0; i < 5; i++)
			s += bt_top(i % 2 ? 1 : 2);   /* bt_mid twice, bt_leaf directly three times */
		bt_end();
		if (argc > 2 && strcmp(argv[2], "wait") == 0)
			pause();
		return s == 0;
	}
	long s = 0;
	for (long k = 1; k <= 20; k++)
		for (long i = 0; i < k; i++)
			s += bt_work(k, 37 * k * k);
	if (argc > 1 && strcmp(argv[1], "stdin") == 0) {
		char buf[64];
		while (read(0, buf, sizeof(buf)) > 0)
			;
	}
	static const char *const names[] = { "alpha", "beta", "gamma", "delta", "epsilon" };
	/* copies on the heap: pages written already, so bpftrace's read of the
	 * string cannot meet a page not faulted in yet (it then reads "") */
	for (int n = 0; n < 5; n++) {
		char *copy = strdup(names[n]);
		for (int i = 0; i <= n; i++)
			s += bt_name(copy);
		free(copy);
	}
	return s == 0;
}
