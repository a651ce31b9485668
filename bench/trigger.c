/* trigger.c — bench-trigger: the kernel's uprobe trigger benchmarks
 * (tools/testing/selftests/bpf/benchs/bench_trigger.c, run_bench_uprobes.sh),
 * each run against every backend in one process and one run:
 *
 *   selfprobe        libselfprobe, mode auto (jmp where safe, else int3)
 *   selfprobe-int3   libselfprobe, mode int3 (trap only)
 *   kernel           a counting kernel uprobe/uretprobe through
 *                    perf_event_open's uprobe PMU on the same file offset
 *                    (for USDT: the note's site, its semaphore as ref_ctr)
 *
 * Producers (-t N threads) each loop over their own copy of a direct call to
 * the target and publish their iteration count every BATCH calls; the figure
 * is total calls per second over all threads.  After a warm-up (-w), -s
 * samples split the duration (-d); each row prints mean ± stddev in the
 * kernel bench's format and the final table uses the median.
 *
 * Selfprobe probes are attached count-only (NULL handler), the cheapest
 * action, as the kernel bench counts with a trivial BPF program.  Every row is
 * checked: the kernel counter must equal the loop's iterations exactly; a
 * selfprobe probe is re-attached with a counting handler and must see exactly
 * the calls made.  A backend that cannot attach prints n/a and its reason
 * (ENOTSUP from selfprobe: "not supported yet"); the bench never fails on a
 * number.
 */
#include "bench.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <selfprobe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define BATCH 64
#define MAX_SAMPLES 1000

enum kind { BASE_USER, BASE_SYSCALL, UPROBE, URETPROBE, USESSION, USDT };
enum backend { SP_AUTO, SP_INT3, KERNEL, N_BACKENDS };

static const char *const backend_names[N_BACKENDS] = { "selfprobe", "selfprobe-int3", "kernel" };
static const char *const kind_names[] = { "", "", "uprobe", "uretprobe", "usession", "usdt" };

/* ---- producers ------------------------------------------------------------ */

struct producer {
	_Alignas(64) _Atomic uint64_t iters;
	pthread_t thread;
	int cpu;                 /* -1: not pinned */
};

static atomic_bool stop_flag;

static void pin(const struct producer *p)
{
	cpu_set_t set;

	if (p->cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(p->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* One loop a target, so that each site is reached by a direct call, as in the
 * kernel bench.  The count is published per batch (a relaxed store to the
 * thread's own cache line), so counting costs nothing measurable; the stop
 * flag is only read between batches, so the final count is exact. */
#define PRODUCER(fname, CALL)                                                   \
	static void *fname(void *arg)                                           \
	{                                                                       \
		struct producer *p = arg;                                       \
		uint64_t n = 0;                                                 \
									\
		pin(p);                                                         \
		while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) { \
			for (int i = 0; i < BATCH; i++)                         \
				CALL;                                           \
			n += BATCH;                                             \
			atomic_store_explicit(&p->iters, n, memory_order_relaxed); \
		}                                                               \
		return NULL;                                                    \
	}

PRODUCER(loop_nop, uprobe_target_nop())
PRODUCER(loop_push, uprobe_target_push())
PRODUCER(loop_ret, uprobe_target_ret())
PRODUCER(loop_nop5, uprobe_target_nop5())
PRODUCER(loop_usdt_nop, usdt_target_nop())
PRODUCER(loop_usdt_nop5, usdt_target_nop5())
PRODUCER(loop_syscall, syscall(SYS_getpgid))

/* ---- benchmarks ----------------------------------------------------------- */

struct benchmark {
	const char *name;
	enum kind kind;
	const char *target;       /* symbol, or the USDT name (provider "bench") */
	void (*fn)(void);         /* the function holding the site */
	void *(*loop)(void *);
};

static const struct benchmark benchmarks[] = {
	{ "usermode-count", BASE_USER, NULL, uprobe_target_nop, loop_nop },
	{ "syscall-count", BASE_SYSCALL, NULL, NULL, loop_syscall },
	{ "uprobe-nop", UPROBE, "uprobe_target_nop", uprobe_target_nop, loop_nop },
	{ "uprobe-push", UPROBE, "uprobe_target_push", uprobe_target_push, loop_push },
	{ "uprobe-ret", UPROBE, "uprobe_target_ret", uprobe_target_ret, loop_ret },
	{ "uprobe-nop5", UPROBE, "uprobe_target_nop5", uprobe_target_nop5, loop_nop5 },
	{ "uretprobe-nop", URETPROBE, "uprobe_target_nop", uprobe_target_nop, loop_nop },
	{ "uretprobe-push", URETPROBE, "uprobe_target_push", uprobe_target_push, loop_push },
	{ "uretprobe-ret", URETPROBE, "uprobe_target_ret", uprobe_target_ret, loop_ret },
	{ "uretprobe-nop5", URETPROBE, "uprobe_target_nop5", uprobe_target_nop5, loop_nop5 },
	{ "usession-nop", USESSION, "uprobe_target_nop", uprobe_target_nop, loop_nop },
	{ "usdt-nop", USDT, "nop", usdt_target_nop, loop_usdt_nop },
	{ "usdt-nop5", USDT, "nop5", usdt_target_nop5, loop_usdt_nop5 },
};
#define N_BENCH (sizeof(benchmarks) / sizeof(benchmarks[0]))

static struct {
	int threads;
	double duration, warmup;
	int samples;
	bool pin;
	bool backend_on[N_BACKENDS];
	long verify_calls;
	char **patterns;
	int n_patterns;
} opt = { 1, 5.0, 1.0, 5, false, { true, true, true }, 100000, NULL, 0 };

struct row {
	bool ran;
	char why[160];           /* n/a reason */
	struct bench_stats st;
	char check[160];         /* verification verdict */
};

static struct row rows[N_BENCH][N_BACKENDS];
static struct row base_rows[N_BENCH];
static char exe_path[PATH_MAX];

/* ---- attaching ------------------------------------------------------------ */

struct attached {
	struct selfprobe_link *link;
	int fd[2];
	int nfd;
};

static void spec_of(const struct benchmark *b, char *buf, size_t len)
{
	if (b->kind == USDT)
		snprintf(buf, len, "usdt:%s:bench:%s", exe_path, b->target);
	else
		snprintf(buf, len, "%s:%s:%s", kind_names[b->kind], exe_path, b->target);
}

static void why_errno(char *why, size_t len, int err)
{
	if (err == ENOTSUP)
		snprintf(why, len, "not supported yet");
	else
		snprintf(why, len, "%s", strerror(err));
}

static int attach_selfprobe(const struct benchmark *b, enum backend be,
			    selfprobe_handler_fn fn, void *data,
			    struct attached *a, char *why, size_t len)
{
	char spec[PATH_MAX + 64];

	if (selfprobe_set_mode(be == SP_INT3 ? "int3" : "auto") < 0) {
		snprintf(why, len, "selfprobe_set_mode refused");
		return -1;
	}
	spec_of(b, spec, sizeof(spec));
	errno = 0;
	a->link = selfprobe_attach(spec, fn, data);
	if (!a->link) {
		why_errno(why, len, errno ? errno : EINVAL);
		return -1;
	}
	return 0;
}

static int attach_kernel(const struct benchmark *b, struct attached *a, char *why, size_t len)
{
	char path[PATH_MAX];
	uint64_t off, ref = 0;
	int err, fd;

	if ((err = bench_addr_to_file((const void *)b->fn, path, sizeof(path), &off))) {
		snprintf(why, len, "cannot locate %s: %s", b->target, strerror(-err));
		return -1;
	}
	if (b->kind == USDT) {
		struct bench_usdt u;

		if ((err = bench_usdt_find(path, "bench", b->target, &u))) {
			snprintf(why, len, "note bench:%s: %s", b->target, strerror(-err));
			return -1;
		}
		off = u.pc_off;
		ref = u.sema_off;
	}
	/* perf has no session probe (that is BPF's uprobe.session): the
	 * nearest equivalent is an entry and a return probe on the site. */
	for (int i = 0; i < (b->kind == USESSION ? 2 : 1); i++) {
		bool ret = b->kind == URETPROBE || i == 1;

		fd = bench_kuprobe_open(path, off, ret, ref, true);
		if (fd < 0) {
			why_errno(why, len, -fd);
			while (a->nfd)
				close(a->fd[--a->nfd]);
			return -1;
		}
		a->fd[a->nfd++] = fd;
	}
	return 0;
}

static void detach(struct attached *a)
{
	if (a->link)
		selfprobe_detach(a->link);
	while (a->nfd)
		close(a->fd[--a->nfd]);
	a->link = NULL;
}

/* ---- measuring ------------------------------------------------------------ */

static uint64_t total_iters(struct producer *p)
{
	uint64_t sum = 0;

	for (int i = 0; i < opt.threads; i++)
		sum += atomic_load_explicit(&p[i].iters, memory_order_relaxed);
	return sum;
}

/* Run B's loop on the producers: warm up, take the samples (calls/s), stop.
 * Returns the total iterations, or 0 when threads could not start. */
static uint64_t measure(const struct benchmark *b, struct bench_stats *st)
{
	struct producer *p = aligned_alloc(64, sizeof(*p) * opt.threads);
	double rate[MAX_SAMPLES], t0, t1;
	uint64_t c0, c1, total;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int started = 0;

	if (!p)
		return 0;
	atomic_store(&stop_flag, false);
	for (int i = 0; i < opt.threads; i++) {
		atomic_init(&p[i].iters, 0);
		p[i].cpu = opt.pin ? (int)(i % ncpu) : -1;
		if (pthread_create(&p[i].thread, NULL, b->loop, &p[i]))
			break;
		started++;
	}
	if (started == opt.threads) {
		bench_sleep(opt.warmup);
		c0 = total_iters(p);
		t0 = bench_now();
		for (int s = 0; s < opt.samples; s++) {
			bench_sleep(opt.duration / opt.samples);
			c1 = total_iters(p);
			t1 = bench_now();
			rate[s] = (c1 - c0) / (t1 - t0) / 1e6;
			c0 = c1;
			t0 = t1;
		}
	}
	atomic_store(&stop_flag, true);
	for (int i = 0; i < started; i++)
		pthread_join(p[i].thread, NULL);
	total = started == opt.threads ? total_iters(p) : 0;
	free(p);
	if (total)
		bench_stats(rate, opt.samples, st);
	return total;
}

static void check_kernel(const struct attached *a, uint64_t iters, char *out, size_t len)
{
	for (int i = 0; i < a->nfd; i++) {
		int64_t hits = bench_kuprobe_read(a->fd[i]);

		if (hits < 0 || (uint64_t)hits != iters) {
			snprintf(out, len, "MISMATCH: kernel counted %lld, loop made %llu calls",
				 (long long)hits, (unsigned long long)iters);
			return;
		}
	}
	snprintf(out, len, "kernel counted all %llu calls%s", (unsigned long long)iters,
		 a->nfd > 1 ? " at entry and at return" : "");
}

static int count_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	atomic_fetch_add_explicit((_Atomic uint64_t *)data, 1, memory_order_relaxed);
	return 0;
}

/* The count-only probe keeps its count to itself; check the same site with a
 * counting handler instead: exactly one call per hit (two for a session). */
static void check_selfprobe(const struct benchmark *b, enum backend be, char *out, size_t len)
{
	_Atomic uint64_t hits = 0;
	struct attached a = { 0 };
	uint64_t want = opt.verify_calls * (b->kind == USESSION ? 2 : 1);
	char why[100];

	if (attach_selfprobe(b, be, count_hit, &hits, &a, why, sizeof(why))) {
		snprintf(out, len, "not verified: handler attach failed (%s)", why);
		return;
	}
	for (long i = 0; i < opt.verify_calls; i++)
		b->fn();
	detach(&a);
	if (atomic_load(&hits) == want)
		snprintf(out, len, "handler check %llu/%llu ok", (unsigned long long)want,
			 (unsigned long long)want);
	else
		snprintf(out, len, "MISMATCH: handler saw %llu hits for %llu",
			 (unsigned long long)atomic_load(&hits), (unsigned long long)want);
}

static void print_row(const char *backend, const char *name, const struct row *r)
{
	if (!r->ran) {
		printf("%-15s %-15s: n/a (%s)\n", backend, name, r->why);
	} else {
		printf("%-15s %-15s: %8.3f ± %5.3fM/s (median %.3f; %s)\n", backend, name,
		       r->st.mean, r->st.stddev, r->st.median, r->check);
	}
	fflush(stdout);
}

static void run_probed(const struct benchmark *b, enum backend be, struct row *r)
{
	struct attached a = { .link = NULL };
	uint64_t iters;
	int err = be == KERNEL ? attach_kernel(b, &a, r->why, sizeof(r->why))
			       : attach_selfprobe(b, be, NULL, NULL, &a, r->why, sizeof(r->why));

	if (!err) {
		iters = measure(b, &r->st);
		if (!iters) {
			snprintf(r->why, sizeof(r->why), "cannot start %d threads", opt.threads);
		} else {
			r->ran = true;
			if (be == KERNEL)
				check_kernel(&a, iters, r->check, sizeof(r->check));
		}
		detach(&a);
		if (r->ran && be != KERNEL)
			check_selfprobe(b, be, r->check, sizeof(r->check));
	}
	print_row(backend_names[be], b->name, r);
}

static void run_base(const struct benchmark *b, struct row *r)
{
	uint64_t iters = measure(b, &r->st);

	r->ran = iters != 0;
	if (r->ran)
		snprintf(r->check, sizeof(r->check), "%llu calls", (unsigned long long)iters);
	else
		snprintf(r->why, sizeof(r->why), "cannot start %d threads", opt.threads);
	print_row("no probe", b->name, r);
}

/* ---- report --------------------------------------------------------------- */

static void cell(const struct row *r)
{
	if (r->ran)
		printf(" %14.3f", r->st.median);
	else
		printf(" %14s", "n/a");
}

static void ratio(const struct row *num, const struct row *den, int width)
{
	if (num->ran && den->ran && den->st.median > 0)
		printf(" %*.2fx", width - 1, num->st.median / den->st.median);
	else
		printf(" %*s", width, "-");
}

static bool selected(const char *name)
{
	if (!opt.n_patterns)
		return true;
	for (int i = 0; i < opt.n_patterns; i++)
		if (!fnmatch(opt.patterns[i], name, 0))
			return true;
	return false;
}

static void print_table(void)
{
	const struct row *user = NULL;

	for (size_t i = 0; i < N_BENCH; i++)
		if (benchmarks[i].kind == BASE_USER && base_rows[i].ran)
			user = &base_rows[i];
	printf("\nmedians of %d samples, M calls/s, %d producer thread%s\n", opt.samples,
	       opt.threads, opt.threads > 1 ? "s" : "");
	printf("%-15s %14s %14s %14s %14s %16s %13s %18s\n", "benchmark", "no probe",
	       "selfprobe", "selfprobe-int3", "kernel", "selfprobe/kernel", "int3/kernel",
	       "usermode/selfprobe");
	for (size_t i = 0; i < N_BENCH; i++) {
		const struct benchmark *b = &benchmarks[i];
		const struct row *r = rows[i];

		if (!selected(b->name))
			continue;
		printf("%-15s", b->name);
		if (b->kind == BASE_USER || b->kind == BASE_SYSCALL) {
			cell(&base_rows[i]);
			printf(" %14s %14s %14s %16s %13s %18s\n", "-", "-", "-", "-", "-", "-");
			continue;
		}
		printf(" %14s", "-");
		for (int be = 0; be < N_BACKENDS; be++)
			cell(&r[be]);
		ratio(&r[SP_AUTO], &r[KERNEL], 16);
		ratio(&r[SP_INT3], &r[KERNEL], 13);
		if (user)
			ratio(user, &r[SP_AUTO], 18);
		else
			printf(" %18s", "-");
		printf("\n");
	}
}

static void print_machine(void)
{
	char line[256], model[256] = "unknown";
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "re");

	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && colon) {
			snprintf(model, sizeof(model), "%s", colon + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
	uname(&u);
	printf("bench-trigger: %s, %ld cpus, Linux %s; %d thread%s, warm-up %.1fs, %d samples "
	       "over %.1fs\n", model, sysconf(_SC_NPROCESSORS_ONLN), u.release, opt.threads,
	       opt.threads > 1 ? "s" : "", opt.warmup, opt.samples, opt.duration);
	fflush(stdout);         /* before the runtime's log lines on stderr */
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench-trigger [-t THREADS] [-d SECONDS] [-w SECONDS] [-s SAMPLES] [-a]\n"
		"                     [-b BACKEND,...] [-k CALLS] [BENCHMARK-GLOB...]\n"
		"  -t  producer threads (1)           -d  measured seconds per row (5)\n"
		"  -w  warm-up seconds per row (1)     -s  samples per row (5)\n"
		"  -a  pin producers to cpus           -k  calls of the handler check (100000)\n"
		"  -b  backends: selfprobe,selfprobe-int3,kernel (all)\n"
		"benchmarks:");
	for (size_t i = 0; i < N_BENCH; i++)
		fprintf(f, " %s", benchmarks[i].name);
	fprintf(f, "\n");
}

static int parse_backends(char *list)
{
	for (int be = 0; be < N_BACKENDS; be++)
		opt.backend_on[be] = false;
	for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
		int be;

		for (be = 0; be < N_BACKENDS && strcmp(s, backend_names[be]); be++)
			;
		if (be == N_BACKENDS)
			return -1;
		opt.backend_on[be] = true;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int c;
	ssize_t n;

	while ((c = getopt(argc, argv, "t:d:w:s:ab:k:h")) != -1) {
		switch (c) {
		case 't': opt.threads = atoi(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'w': opt.warmup = atof(optarg); break;
		case 's': opt.samples = atoi(optarg); break;
		case 'a': opt.pin = true; break;
		case 'k': opt.verify_calls = atol(optarg); break;
		case 'b':
			if (parse_backends(optarg)) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (opt.threads < 1 || opt.samples < 1 || opt.samples > MAX_SAMPLES ||
	    opt.duration <= 0 || opt.warmup < 0 || opt.verify_calls < 1) {
		usage(stderr);
		return 2;
	}
	opt.patterns = argv + optind;
	opt.n_patterns = argc - optind;
	if ((n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1)) < 0) {
		perror("bench-trigger: /proc/self/exe");
		return 1;
	}
	exe_path[n] = '\0';

	print_machine();
	for (size_t i = 0; i < N_BENCH; i++) {
		const struct benchmark *b = &benchmarks[i];

		if (!selected(b->name))
			continue;
		if (b->kind == BASE_USER || b->kind == BASE_SYSCALL) {
			run_base(b, &base_rows[i]);
			continue;
		}
		for (int be = 0; be < N_BACKENDS; be++) {
			if (opt.backend_on[be])
				run_probed(b, be, &rows[i][be]);
			else
				snprintf(rows[i][be].why, sizeof(rows[i][be].why), "not selected");
		}
	}
	print_table();
	return 0;
}
