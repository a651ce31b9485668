/* attach.c — bench-attach: the cost of attaching and detaching N probes
 * (N = 10, 1000, 10000 functions of the generated libraries libbenchN.so),
 * selfprobe against the kernel on the same sites, in one run, and the
 * resident memory each probe adds to the process.  Backends:
 *
 *   selfprobe, selfprobe-int3  one glob, "uprobe:LIB:bench_f*", as a user
 *                              would write it (mode auto, then int3)
 *   kernel-multi               one BPF uprobe_multi link over the N offsets
 *                              (what bpftrace does for a glob)
 *   kernel-perf                one perf_event_open uprobe per site (what the
 *                              trigger bench uses), only up to -K sites:
 *                              closing each one waits for an RCU-tasks-trace
 *                              grace period under the global event_mutex,
 *                              ~0.1-0.2 s a probe here, so 10000 of them
 *                              would hold every perf uprobe on the machine for
 *                              half an hour
 *
 * File offsets are computed before the clock starts.  After each attach every
 * function is called once and the hits are checked where a counter exists (a
 * counting handler for selfprobe, the perf counters); then the counts are
 * reported while the probes are still attached (selfprobe: the JSON report,
 * written to /dev/null; kernel-perf: reading every counter; kernel-multi's
 * empty program has none), then detached.  "whole" is attach + calls +
 * report + detach: the workflow of a user counting N functions once.  RSS comes from
 * /proc/self/statm around the attach; the kernel's own memory for its uprobes
 * is not in it (only the copy-on-write text pages it patches are).  Each
 * figure is the median of -r repetitions.
 */
#include "bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <selfprobe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_REPS 50

enum backend { SP_AUTO, SP_INT3, K_MULTI, K_PERF, N_BACKENDS };
static const char *const backend_names[N_BACKENDS] = {
	"selfprobe", "selfprobe-int3", "kernel-multi", "kernel-perf"
};

typedef int (*target_fn)(int);

struct target_lib {
	unsigned n;
	char path[PATH_MAX];
	const target_fn *fns;
	uint64_t *off;           /* file offset of each function, for the kernel */
};

/* One repetition's figures. */
struct sample {
	double attach_ms, calls_ms, report_ms, detach_ms, rss;
};

struct result {
	bool ok;
	char why[128];
	char check[128];
	bool reported;           /* report_ms measured (else n/a) */
	struct bench_stats attach_ms, calls_ms, report_ms, detach_ms, whole_ms, rss_per_probe;
};

static int reps = 3;
static int devnull = -1;          /* where selfprobe's report goes */
static unsigned perf_max = 10;    /* -K: most kernel-perf sites */
static const char *only;          /* -b: the backends to run (comma list), or all */

static bool wanted(enum backend be)
{
	if (!only)
		return true;
	size_t n = strlen(backend_names[be]);
	for (const char *p = only; *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && strncmp(p, backend_names[be], n) == 0)
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

static int count_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	atomic_fetch_add_explicit((_Atomic uint64_t *)data, 1, memory_order_relaxed);
	return 0;
}

static void call_all(const struct target_lib *t)
{
	volatile int sink = 0;

	for (unsigned i = 0; i < t->n; i++)
		sink += t->fns[i](1);
	(void)sink;
}

static void why_errno(char *why, size_t len, int err)
{
	snprintf(why, len, "%s", err == ENOTSUP ? "not supported yet" : strerror(err));
}

/* One repetition through selfprobe.  0, or -1 with R->why set. */
static int once_selfprobe(const struct target_lib *t, enum backend be, struct result *r,
			  struct sample *s)
{
	char spec[PATH_MAX + 32];
	_Atomic uint64_t hits = 0;
	struct selfprobe_link *l;
	long rss0;
	double t0;

	if (selfprobe_set_mode(be == SP_INT3 ? "int3" : "auto") < 0) {
		snprintf(r->why, sizeof(r->why), "selfprobe_set_mode refused");
		return -1;
	}
	snprintf(spec, sizeof(spec), "uprobe:%s:bench_f*", t->path);
	rss0 = bench_rss_bytes();
	t0 = bench_now();
	errno = 0;
	l = selfprobe_attach(spec, count_hit, &hits);
	s->attach_ms = (bench_now() - t0) * 1e3;
	s->rss = (double)(bench_rss_bytes() - rss0) / t->n;
	if (!l) {
		why_errno(r->why, sizeof(r->why), errno ? errno : EINVAL);
		return -1;
	}
	t0 = bench_now();
	call_all(t);
	s->calls_ms = (bench_now() - t0) * 1e3;
	t0 = bench_now();
	if (selfprobe_write_report_fd(devnull, true) < 0)
		snprintf(r->check, sizeof(r->check), "the report could not be written");
	s->report_ms = (bench_now() - t0) * 1e3;
	r->reported = true;
	t0 = bench_now();
	selfprobe_detach(l);
	s->detach_ms = (bench_now() - t0) * 1e3;
	if (atomic_load(&hits) != t->n)
		snprintf(r->check, sizeof(r->check), "MISMATCH: %llu hits for %u calls",
			 (unsigned long long)atomic_load(&hits), t->n);
	else if (!r->check[0])
		snprintf(r->check, sizeof(r->check), "all %u probes hit once", t->n);
	return 0;
}

/* One repetition through perf_event_open, one event per function. */
static int once_perf(const struct target_lib *t, struct result *r, struct sample *s)
{
	int *fd = malloc(sizeof(*fd) * t->n);
	unsigned opened = 0;
	int64_t sum = 0;
	long rss0;
	double t0;

	if (!fd) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		return -1;
	}
	rss0 = bench_rss_bytes();
	t0 = bench_now();
	for (; opened < t->n; opened++) {
		fd[opened] = bench_kuprobe_open(t->path, t->off[opened], false, 0, false);
		if (fd[opened] < 0)
			break;
	}
	s->attach_ms = (bench_now() - t0) * 1e3;
	s->rss = (double)(bench_rss_bytes() - rss0) / t->n;
	if (opened < t->n) {
		why_errno(r->why, sizeof(r->why), -fd[opened]);
		while (opened)
			close(fd[--opened]);
		free(fd);
		return -1;
	}
	t0 = bench_now();
	call_all(t);
	s->calls_ms = (bench_now() - t0) * 1e3;
	t0 = bench_now();
	for (unsigned i = 0; i < t->n; i++)
		sum += bench_kuprobe_read(fd[i]);
	s->report_ms = (bench_now() - t0) * 1e3;
	r->reported = true;
	t0 = bench_now();
	for (unsigned i = 0; i < t->n; i++)
		close(fd[i]);
	s->detach_ms = (bench_now() - t0) * 1e3;
	free(fd);
	if (sum != t->n)
		snprintf(r->check, sizeof(r->check), "MISMATCH: kernel counted %lld for %u calls",
			 (long long)sum, t->n);
	else if (!r->check[0])
		snprintf(r->check, sizeof(r->check), "all %u probes hit once", t->n);
	return 0;
}

/* One repetition through a BPF uprobe_multi link.  Its empty program counts
 * nothing, so the calls are made but not checked. */
static int once_multi(const struct target_lib *t, struct result *r, struct sample *s)
{
	int prog, link;
	long rss0 = bench_rss_bytes();
	double t0 = bench_now();

	link = bench_kmulti_attach(t->path, t->off, t->n, &prog);
	s->attach_ms = (bench_now() - t0) * 1e3;
	s->rss = (double)(bench_rss_bytes() - rss0) / t->n;
	if (link < 0) {
		why_errno(r->why, sizeof(r->why), -link);
		return -1;
	}
	t0 = bench_now();
	call_all(t);
	s->calls_ms = (bench_now() - t0) * 1e3;
	s->report_ms = 0;
	t0 = bench_now();
	close(link);
	close(prog);
	s->detach_ms = (bench_now() - t0) * 1e3;
	snprintf(r->check, sizeof(r->check), "calls made, not counted (empty BPF program)");
	return 0;
}

static void run(const struct target_lib *t, enum backend be, struct result *r)
{
	struct sample s[MAX_REPS];
	double a[MAX_REPS], c[MAX_REPS], p[MAX_REPS], d[MAX_REPS], w[MAX_REPS], m[MAX_REPS];

	if (be == K_PERF && t->n > perf_max) {
		snprintf(r->why, sizeof(r->why), "skipped above -K %u sites: each close() waits "
			 "for a grace period under a global mutex", perf_max);
		printf("%-6u %-15s: n/a (%s)\n", t->n, backend_names[be], r->why);
		return;
	}
	for (int i = 0; i < reps; i++) {
		int err = be == K_PERF ? once_perf(t, r, &s[i])
			: be == K_MULTI ? once_multi(t, r, &s[i])
			: once_selfprobe(t, be, r, &s[i]);

		if (err) {
			printf("%-6u %-15s: n/a (%s)\n", t->n, backend_names[be], r->why);
			return;
		}
		a[i] = s[i].attach_ms;
		c[i] = s[i].calls_ms;
		p[i] = s[i].report_ms;
		d[i] = s[i].detach_ms;
		w[i] = s[i].attach_ms + s[i].calls_ms + s[i].report_ms + s[i].detach_ms;
		m[i] = s[i].rss;
	}
	r->ok = true;
	bench_stats(a, reps, &r->attach_ms);
	bench_stats(c, reps, &r->calls_ms);
	bench_stats(p, reps, &r->report_ms);
	bench_stats(d, reps, &r->detach_ms);
	bench_stats(w, reps, &r->whole_ms);
	bench_stats(m, reps, &r->rss_per_probe);
	printf("%-6u %-15s: attach %10.3f ms (%8.2f us/probe), calls %8.3f ms, report %8.3f ms, "
	       "detach %10.3f ms, whole %10.3f ms, RSS %+9.1f B/probe; %s\n", t->n, backend_names[be],
	       r->attach_ms.median, r->attach_ms.median * 1e3 / t->n, r->calls_ms.median,
	       r->report_ms.median, r->detach_ms.median, r->whole_ms.median, r->rss_per_probe.median,
	       r->check);

	fflush(stdout);
}

/* ---- libraries ------------------------------------------------------------ */

/* The libraries are built next to libselfprobe.so: BIN/../lib. */
static void lib_dir(char *out, size_t len, const char *override)
{
	char exe[PATH_MAX - 32];
	ssize_t n;

	if (override) {
		snprintf(out, len, "%s", override);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (strrchr(exe, '/'))
		*strrchr(exe, '/') = '\0';
	snprintf(out, len, "%s/../lib", exe);
}

static int load_lib(const char *dir, unsigned n, struct target_lib *t, char *err, size_t len)
{
	char file[PATH_MAX + 32];
	const unsigned *nfns;
	void *h;

	snprintf(file, sizeof(file), "%s/libbench%u.so", dir, n);
	if (!(h = dlopen(file, RTLD_NOW | RTLD_LOCAL))) {
		snprintf(err, len, "%s", dlerror());
		return -1;
	}
	t->fns = dlsym(h, "bench_fns");
	nfns = dlsym(h, "bench_nfns");
	if (!t->fns || !nfns || *nfns != n) {
		snprintf(err, len, "%s: no bench_fns table of %u", file, n);
		return -1;
	}
	t->n = n;
	if (!(t->off = calloc(n, sizeof(*t->off)))) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		int e = bench_addr_to_file((const void *)t->fns[i], t->path, sizeof(t->path),
					   &t->off[i]);
		if (e) {
			snprintf(err, len, "cannot locate bench_f%u: %s", i, strerror(-e));
			return -1;
		}
	}
	/* Fault the text in now, so that the RSS delta is the probes' own. */
	call_all(t);
	return 0;
}

/* 10000 perf events need 10000 descriptors. */
static void raise_fd_limit(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void cell(const struct result *r, double v)
{
	if (r->ok)
		printf(" %12.3f", v);
	else
		printf(" %12s", "n/a");
}

int main(int argc, char **argv)
{
	static const unsigned sizes[] = { 10, 1000, 10000 };
	struct result res[3][N_BACKENDS];
	const char *dir_override = NULL;
	char dir[PATH_MAX], err[PATH_MAX + 64];
	int c;

	while ((c = getopt(argc, argv, "r:K:L:b:h")) != -1) {
		switch (c) {
		case 'r': reps = atoi(optarg); break;
		case 'b': only = optarg; break;
		case 'K': perf_max = strtoul(optarg, NULL, 10); break;
		case 'L': dir_override = optarg; break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: bench-attach [-r REPETITIONS (3)] [-K MAX-PERF-SITES (10)] [-L LIBDIR]\n"
				"                    [-b BACKEND,... (all: selfprobe, selfprobe-int3, kernel-multi,\n"
				"                    kernel-perf)]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "bench-attach: -r between 1 and %d\n", MAX_REPS);
		return 2;
	}
	lib_dir(dir, sizeof(dir), dir_override);
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	raise_fd_limit(sizes[2] + 256);
	memset(res, 0, sizeof(res));
	printf("bench-attach: attach, call, report, detach N probes, median of %d repetition%s\n", reps,
	       reps > 1 ? "s" : "");
	fflush(stdout);
	for (int i = 0; i < 3; i++) {
		struct target_lib t = { 0 };

		if (load_lib(dir, sizes[i], &t, err, sizeof(err))) {
			printf("%-6u: n/a (%s)\n", sizes[i], err);
			continue;
		}
		for (int be = 0; be < N_BACKENDS; be++)
			if (wanted(be))
				run(&t, be, &res[i][be]);
		free(t.off);
	}

	printf("\nmedians; ms for all N probes (whole: attach + calls + report + detach); "
	       "RSS added per probe in bytes\n");
	printf("%-6s %-15s %12s %12s %12s %12s %12s %14s %12s\n", "N", "backend", "attach ms", "calls ms",
	       "report ms", "detach ms", "whole ms", "whole vs sp", "RSS B/probe");
	for (int i = 0; i < 3; i++) {
		const struct result *r = res[i];

		for (int be = 0; be < N_BACKENDS; be++) {
			if (!wanted(be))
				continue;
			printf("%-6u %-15s", sizes[i], backend_names[be]);
			cell(&r[be], r[be].attach_ms.median);
			cell(&r[be], r[be].calls_ms.median);
			if (r[be].reported)
				cell(&r[be], r[be].report_ms.median);
			else
				printf(" %12s", "n/a");
			cell(&r[be], r[be].detach_ms.median);
			cell(&r[be], r[be].whole_ms.median);
			/* how many times selfprobe's whole workflow this backend's is */
			if (r[be].ok && r[SP_AUTO].ok && r[SP_AUTO].whole_ms.median > 0)
				printf(" %13.2fx", r[be].whole_ms.median / r[SP_AUTO].whole_ms.median);
			else
				printf(" %14s", "-");
			cell(&r[be], r[be].rss_per_probe.median);
			printf("\n");
		}
	}
	return 0;
}
