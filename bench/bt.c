/* bt.c — bench-bt: the cost per hit of bpftrace one-liners run in the
 * process (issue 18), against the built-in count on the same site.
 *
 * Each row runs in its own child (a program's probes cannot be detached
 * through the API, so a fresh process per row keeps rows apart): it
 * attaches the row's spec on uprobe_target_nop (targets.S: a nop first, a
 * jmp site), calls it in a loop with the loop index as arg0, and reports
 * calls per second of its thread's CPU time (not wall time: on a shared
 * machine the wall clock measures the neighbours).  The rows run -r times
 * in turn (rounds), and each row's figure is its median: a neighbour's
 * burst then spoils one sample of every row, not one row.  The per-hit
 * cost is 1/rate - 1/rate(no probe), and the ratio is that cost over the
 * built-in count's, all from one run.  Rows marked "(evaluator)" run the
 * same block with SELFPROBE_BTJIT=0: the handler call and the tree walk
 * instead of the block compiled into the trampoline (bt_jit.h).
 *
 *   bench-bt [-d SECONDS] [-r ROUNDS] [-m auto|int3|jmp]
 */
#include "bench.h"

#include <selfprobe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct rowdef {
	const char *name;
	const char *body;        /* NULL: no probe; "": the built-in count */
	bool evaluator;          /* SELFPROBE_BTJIT=0 */
};

static const struct rowdef rows[] = {
	{ "no probe", NULL, false },
	{ "built-in count", "", false },
	{ "{ @c = count(); }", "{ @c = count(); }", false },
	{ "/arg0 > 4096/ { @c = count(); }", "/arg0 > 4096/ { @c = count(); }", false },
	{ "/arg0 > 0/ { @c = count(); }", "/arg0 > 0/ { @c = count(); }", false },
	{ "{ @h = hist(arg0); }", "{ @h = hist(arg0); }", false },
	{ "{ @s = sum(arg0); @m = max(arg0); }", "{ @s = sum(arg0); @m = max(arg0); }", false },
	{ "{ @c = count(); } (evaluator)", "{ @c = count(); }", true },
	{ "{ @h = hist(arg0); } (evaluator)", "{ @h = hist(arg0); }", true },
	{ "{ @s[arg0 & 7] = sum(arg0); }", "{ @s[arg0 & 7] = sum(arg0); }", false },
	{ "{ @[tid] = count(); }", "{ @[tid] = count(); }", false },
};
#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double run_row(const struct rowdef *r, double secs, const char *mode, char *why, size_t wlen)
{
	int fd[2];
	if (pipe(fd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);   /* the program's output at exit: not ours to show */
		char exe[4096], spec[8192];
		uint64_t off;
		double rate = -1;
		if (bench_addr_to_file((const void *)uprobe_target_nop, exe, sizeof(exe), &off) != 0)
			_exit(1);
		selfprobe_set_mode(mode);
		if (r->evaluator)
			setenv("SELFPROBE_BTJIT", "0", 1);
		if (r->body) {
			snprintf(spec, sizeof(spec), "uprobe:%s:uprobe_target_nop %s", exe, r->body);
			if (selfprobe_attach_spec(spec) != 0) {
				(void)!write(fd[1], &rate, sizeof(rate));
				_exit(2);
			}
		}
		void (*target)(long) = (void (*)(long))(void *)uprobe_target_nop;
		uint64_t n = 0;
		double t0 = cpu_now(), end = t0 + secs / 5;   /* warm-up */
		while (cpu_now() < end)
			for (int i = 0; i < 1024; i++)
				target((long)(n++ | 1));
		n = 0;
		t0 = cpu_now();
		end = t0 + secs;
		double now;
		while ((now = cpu_now()) < end)
			for (int i = 0; i < 1024; i++)
				target((long)(n++ | 1));
		rate = (double)n / (now - t0);
		(void)!write(fd[1], &rate, sizeof(rate));
		_exit(0);
	}
	close(fd[1]);
	double rate = -1;
	if (pid < 0 || read(fd[0], &rate, sizeof(rate)) != sizeof(rate))
		rate = -1;
	close(fd[0]);
	int st;
	if (pid > 0)
		waitpid(pid, &st, 0);
	if (rate < 0)
		snprintf(why, wlen, "could not attach");
	return rate;
}

int main(int argc, char **argv)
{
	double secs = 1;
	int rounds = 5;
	const char *mode = "auto";
	int o;
	while ((o = getopt(argc, argv, "d:r:m:h")) != -1) {
		switch (o) {
		case 'd': secs = atof(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'm': mode = optarg; break;
		default:
			fprintf(stderr, "usage: bench-bt [-d SECONDS] [-r ROUNDS] [-m auto|int3|jmp]\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (rounds < 1 || rounds > 64)
		rounds = 5;
	double rate[N_ROWS], samples[N_ROWS][64];
	char why[N_ROWS][128];
	memset(why, 0, sizeof(why));
	printf("bench-bt: uprobe_target_nop, mode %s, %.1f s per row, median of %d rounds\n", mode, secs, rounds);
	for (int k = 0; k < rounds; k++)
		for (size_t i = 0; i < N_ROWS; i++)
			samples[i][k] = run_row(&rows[i], secs, mode, why[i], sizeof(why[i]));
	for (size_t i = 0; i < N_ROWS; i++) {
		qsort(samples[i], (size_t)rounds, sizeof(double), cmp_double);
		rate[i] = samples[i][rounds / 2];
	}
	printf("%-38s %12s %10s %10s\n", "program", "M calls/s", "ns/hit", "x count");
	for (size_t i = 0; i < N_ROWS; i++) {
		if (rate[i] <= 0) {
			printf("%-38s %12s  %s\n", rows[i].name, "n/a", why[i]);
			continue;
		}
		double cost = i && rate[0] > 0 ? 1e9 / rate[i] - 1e9 / rate[0] : 0;
		double count_cost = rate[1] > 0 && rate[0] > 0 ? 1e9 / rate[1] - 1e9 / rate[0] : 0;
		printf("%-38s %12.2f", rows[i].name, rate[i] / 1e6);
		if (i)
			printf(" %10.1f", cost);
		if (i > 1 && count_cost > 0)
			printf(" %10.2f", cost / count_cost);
		printf("\n");
		fflush(stdout);
	}
	return 0;
}
