/* sp_target — calls the probe sites of sp_funcs.S a known number of times.
 *
 *   sp_target [N]          each t_* function N times (default 1000)
 *   sp_target threads [N]  t_mt from 4 threads, N times each
 *   sp_target fork [N]     fork first; the child calls each t_* 2N times and
 *                          exits, then the parent calls each N times
 *
 * Every return value is checked against the value computed here; a mismatch
 * is printed on stderr and the exit status is 1.  On success the program
 * prints one "name calls" line per t_* function (0 for those the mode does
 * not call) and nothing else, so that its stdout can be compared across runs
 * with and without probes; fork mode prints "[child]" and "[parent]" before
 * each process's lines.  Everything is deterministic.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef uint64_t (*site_fn)(uint64_t a, uint64_t b);

uint64_t t_nop(uint64_t a, uint64_t b);
uint64_t t_push(uint64_t a, uint64_t b);
uint64_t t_mov(uint64_t a, uint64_t b);
uint64_t t_jmp8(uint64_t a, uint64_t b);
uint64_t w_jcc_first(uint64_t a, uint64_t b);
uint64_t t_jcc(uint64_t a, uint64_t b);
uint64_t t_call(uint64_t a, uint64_t b);
uint64_t w_ret(uint64_t a, uint64_t b);
uint64_t t_riprel(uint64_t a, uint64_t b);
uint64_t t_sub(uint64_t a, uint64_t b);
uint64_t t_endbr(uint64_t a, uint64_t b);
uint64_t w_indjmp(uint64_t a, uint64_t b);
uint64_t t_nop5(uint64_t a, uint64_t b);
uint64_t t_mt(uint64_t a, uint64_t b);

#define NTHREADS 4

struct site {
	const char *name;   /* the probed function */
	site_fn call;       /* how to call it (a w_* wrapper for some) */
	int kind;           /* which expectation, see expect() */
	unsigned long calls;
};

enum { E_ADD, E_MUL, E_JCC, E_RIP };

static struct site sites[] = {
	{ "t_nop",       t_nop,       E_ADD, 0 },
	{ "t_push",      t_push,      E_ADD, 0 },
	{ "t_mov",       t_mov,       E_MUL, 0 },
	{ "t_jmp8",      t_jmp8,      E_ADD, 0 },
	{ "t_jcc_first", w_jcc_first, E_JCC, 0 },
	{ "t_jcc",       t_jcc,       E_JCC, 0 },
	{ "t_call",      t_call,      E_ADD, 0 },
	{ "t_ret",       w_ret,       E_ADD, 0 },
	{ "t_riprel",    t_riprel,    E_RIP, 0 },
	{ "t_sub",       t_sub,       E_ADD, 0 },
	{ "t_endbr",     t_endbr,     E_ADD, 0 },
	{ "t_indjmp",    w_indjmp,    E_ADD, 0 },
	{ "t_nop5",      t_nop5,      E_ADD, 0 },
	{ "t_mt",        t_mt,        E_ADD, 0 },
};
#define NSITES (sizeof(sites) / sizeof(sites[0]))

static uint64_t expect(const struct site *s, uint64_t a, uint64_t b)
{
	const char *n = s->name;
	if (!strcmp(n, "t_nop"))       return a + 1;
	if (!strcmp(n, "t_push"))      return a + 2;
	if (!strcmp(n, "t_mov"))       return a * b + 3;
	if (!strcmp(n, "t_jmp8"))      return a + 4;
	if (!strcmp(n, "t_jcc_first")) return a ? a + 5 : 100;
	if (!strcmp(n, "t_jcc"))       return a ? a + 6 : 200;
	if (!strcmp(n, "t_call"))      return 2 * a + 7;
	if (!strcmp(n, "t_ret"))       return a;
	if (!strcmp(n, "t_riprel"))    return (uint32_t)(a + 1000);
	if (!strcmp(n, "t_sub"))       return a + 9;
	if (!strcmp(n, "t_endbr"))     return a + 10;
	if (!strcmp(n, "t_indjmp"))    return a + 11;
	if (!strcmp(n, "t_nop5"))      return a + 13;
	if (!strcmp(n, "t_mt"))        return a + 12;
	abort();
}

static struct site *find(const char *name)
{
	for (size_t i = 0; i < NSITES; i++)
		if (!strcmp(sites[i].name, name))
			return &sites[i];
	abort();
}

/* Call S N times with arguments that cover both directions of the jcc's;
 * returns the number of wrong results (the first few are printed). */
static unsigned long call_n(const struct site *s, unsigned long n)
{
	unsigned long bad = 0;
	for (unsigned long i = 0; i < n; i++) {
		uint64_t a = i % 7, b = i % 5 + 1;
		uint64_t got = s->call(a, b), want = expect(s, a, b);
		if (got != want && bad++ < 5)
			fprintf(stderr, "sp_target: %s(%llu, %llu) returned %llu, want %llu\n", s->name,
				(unsigned long long)a, (unsigned long long)b,
				(unsigned long long)got, (unsigned long long)want);
	}
	return bad;
}

static unsigned long run_all(unsigned long n)
{
	unsigned long bad = 0;
	for (size_t i = 0; i < NSITES; i++) {
		if (!strcmp(sites[i].name, "t_mt"))
			continue;
		bad += call_n(&sites[i], n);
		sites[i].calls += n;
	}
	return bad;
}

static void *mt_thread(void *arg)
{
	unsigned long n = *(unsigned long *)arg;
	return (void *)(uintptr_t)call_n(find("t_mt"), n);
}

static unsigned long run_threads(unsigned long n)
{
	pthread_t th[NTHREADS];
	unsigned long bad = 0;
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, mt_thread, &n)) {
			fprintf(stderr, "sp_target: pthread_create failed\n");
			exit(1);
		}
	for (int i = 0; i < NTHREADS; i++) {
		void *r;
		pthread_join(th[i], &r);
		bad += (uintptr_t)r;
	}
	find("t_mt")->calls += (unsigned long)NTHREADS * n;
	return bad;
}

static int finish(unsigned long bad)
{
	if (bad) {
		fprintf(stderr, "sp_target: %lu wrong return values\n", bad);
		return 1;
	}
	for (size_t i = 0; i < NSITES; i++)
		printf("%s %lu\n", sites[i].name, sites[i].calls);
	return fflush(stdout) ? 1 : 0;
}

static int run_fork(unsigned long n)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("sp_target: fork");
		return 1;
	}
	if (pid == 0) {
		unsigned long bad = run_all(2 * n);
		printf("[child]\n");
		exit(finish(bad));   /* exit, not _exit: atexit handlers and destructors run */
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "sp_target: child failed (status 0x%x)\n", st);
		return 1;
	}
	unsigned long bad = run_all(n);
	printf("[parent]\n");
	return finish(bad);
}

int main(int argc, char **argv)
{
	const char *mode = "all";
	int argi = 1;
	if (argi < argc && (!strcmp(argv[argi], "threads") || !strcmp(argv[argi], "fork")))
		mode = argv[argi++];
	unsigned long n = 1000;
	if (argi < argc) {
		char *end;
		n = strtoul(argv[argi], &end, 0);
		if (*end || argi + 1 < argc) {
			fprintf(stderr, "usage: sp_target [threads|fork] [N]\n");
			return 2;
		}
	}
	if (!strcmp(mode, "fork"))
		return run_fork(n);
	if (!strcmp(mode, "threads"))
		return finish(run_threads(n));
	return finish(run_all(n));
}
