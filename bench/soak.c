/* soak.c — bench-soak: minutes of churn under load, checked.
 *
 * Worker threads hammer five functions of this program while, at the same
 * time,
 *   - a churner attaches and detaches probes on them through the C API
 *     (uprobe, uretprobe, usession; on sites that keep permanent probes and
 *     on sites that are armed and disarmed each round; jmp and int3 paths);
 *   - a loader dlopen's and dlclose's libsoakdl.so over and over, with
 *     probes on it attached before the first load (pending, they attach at
 *     each load, in auto and int3 mode alternately), while two threads call
 *     into it;
 *   - a forker forks children that call the probed functions and check their
 *     own counts.
 *
 * What is checked (each failure is a violation; any violation exits 1):
 *   exact counts  the permanent probes (one handler each, and count-only
 *                 ones read from the JSON report) count exactly the calls
 *                 the workers made: entry, return and session entry and
 *                 return; library probes equal the library calls after
 *                 every load (handlers) and in the end (report, summed over
 *                 the loads); every child's handlers and report count
 *                 exactly its calls;
 *   churn bounds  the calls a churned probe sees cannot be known exactly,
 *                 but are bounded: a call that began after attach returned
 *                 and ended before detach began must be seen; one that ended
 *                 before attach began or began after detach returned cannot
 *                 be (workers count calls begun and calls ended, so
 *                 done_before_detach - begun_after_attach <= hits <=
 *                 begun_after_detach - done_before_attach); and a handler
 *                 called after its detach returned is a violation;
 *   values        every probed function returns what it returns unprobed,
 *                 and a session's return sees the argument its entry saw;
 *   memory        VmRSS, /proc/self/maps lines and open fds sampled after
 *                 warm-up and at the end of the churn: mappings grow by at
 *                 most -M lines, fds not at all, RSS by at most -R KiB plus
 *                 -D bytes per reload of the library; the registry by no
 *                 probe record at all: it keeps one per distinct probe (spec,
 *                 site, kind, action) for the report, and the churner's
 *                 probes come back each round with another of 64 handler
 *                 functions, which must find their records again.  (-P
 *                 bytes per record gained would be allowed, were any.)
 *
 *   bench-soak [-t SECONDS] [-w WORKERS] [-F FORK_MS] [-R KIB] [-P BYTES]
 *              [-M LINES] [-L] [-q]
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <selfprobe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the probed functions -------------------------------------------------- */

#define SOAK_FN(name)                                                           \
	__attribute__((noinline, used)) int name(int x)                         \
	{                                                                       \
		__asm__ volatile("");                                           \
		return x * 3 + 1;                                               \
	}

SOAK_FN(soak_jmp)         /* permanent probes, auto mode (the jmp path); churn joins them */
SOAK_FN(soak_int3)        /* permanent probes, int3 mode; churn joins them */
SOAK_FN(soak_solo_jmp)    /* churn only, auto: armed and disarmed every round */
SOAK_FN(soak_solo_int3)   /* churn only, int3 */

/* A longer body: a return probe detached while calls are inside it. */
__attribute__((noinline, used)) int soak_slow(int x)
{
	int y = x;
	for (int i = 0; i < 200; i++)
		__asm__ volatile("" : "+r"(y));
	return y * 3 + 1;
}

enum { T_JMP, T_INT3, T_SOLO_JMP, T_SOLO_INT3, T_SLOW, N_T };
static const char *const t_name[N_T] = { "soak_jmp", "soak_int3", "soak_solo_jmp", "soak_solo_int3",
					 "soak_slow" };
static const char *const t_mode[N_T] = { "auto", "int3", "auto", "int3", "auto" };
static int (*volatile t_fn[N_T])(int) = { soak_jmp, soak_int3, soak_solo_jmp, soak_solo_int3, soak_slow };
#define N_PERM 2          /* T_JMP and T_INT3 keep permanent probes */

static int expect(int x) { return x * 3 + 1; }
static int expect_a(int x) { return x * 5 + 2; }
static int expect_b(int x) { return x * 7 + 3; }

/* ---- options and violations ----------------------------------------------- */

static double opt_seconds = 300;
static int opt_workers = 6;
static int opt_fork_ms = 250;
static long opt_rss_kib = 4096;
static long opt_record_bytes = 2048;
/* A probed library's reload costs its sites' records, trampolines and
 * out-of-line copies, which are not reused (README, known limits). */
static long opt_reload_bytes = 512;
static long opt_maps = 16;
static bool opt_quiet;
static bool opt_no_loader;

static _Atomic uint64_t violations;
static _Atomic bool stop_churn;      /* the churner, loader, forker, library callers */
static _Atomic bool stop;            /* the workers */

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
	/* print the first few of each run; count all */
	if (atomic_fetch_add(&violations, 1) < 20) {
		va_list ap;
		va_start(ap, fmt);
		fputs("VIOLATION: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* ---- workers --------------------------------------------------------------- */

/* Each worker's calls per function: begun before the call, done after it
 * returned (the churn bounds need both).  One cache line per worker. */
struct worker {
	_Atomic uint64_t begun[N_T];
	_Atomic uint64_t done[N_T];
	pthread_t tid;
} __attribute__((aligned(64)));

static struct worker *workers;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t begun[N_T] = { 0 }, done[N_T] = { 0 };
	for (uint64_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
		for (int t = 0; t < N_T; t++) {
			if (t == T_SLOW && (i & 7))
				continue;
			int x = (int)(i & 0xfffff) + t;
			atomic_store_explicit(&w->begun[t], ++begun[t], memory_order_release);
			int r = t_fn[t](x);
			atomic_store_explicit(&w->done[t], ++done[t], memory_order_release);
			if (r != expect(x))
				violation("%s(%d) returned %d, want %d", t_name[t], x, r, expect(x));
		}
	}
	return NULL;
}

static uint64_t sum_begun(int t)
{
	uint64_t s = 0;
	for (int i = 0; i < opt_workers; i++)
		s += atomic_load_explicit(&workers[i].begun[t], memory_order_acquire);
	return s;
}

static uint64_t sum_done(int t)
{
	uint64_t s = 0;
	for (int i = 0; i < opt_workers; i++)
		s += atomic_load_explicit(&workers[i].done[t], memory_order_acquire);
	return s;
}

/* ---- permanent probes ------------------------------------------------------ */

/* One handler per kind; the session's entry leaves the argument in the
 * cookie for its return to check the value. */
struct perm {
	_Atomic uint64_t entry, ret, sess_entry, sess_ret, bad;
};
static struct perm perm[N_PERM];     /* T_JMP, T_INT3 */
static struct perm lib_perm[2];      /* soak_dl_a, soak_dl_b */

#define COOKIE_MARK (1ull << 63)

static int on_entry(struct selfprobe_ctx *ctx, void *data)
{
	struct perm *p = data;
	if (selfprobe_is_return(ctx))
		atomic_fetch_add(&p->bad, 1);
	atomic_fetch_add_explicit(&p->entry, 1, memory_order_relaxed);
	return 0;
}

static int on_return(struct selfprobe_ctx *ctx, void *data)
{
	struct perm *p = data;
	if (!selfprobe_is_return(ctx))
		atomic_fetch_add(&p->bad, 1);
	atomic_fetch_add_explicit(&p->ret, 1, memory_order_relaxed);
	return 0;
}

/* Session probes on functions returning x * 3 + 1. */
static int session_check(struct selfprobe_ctx *ctx, _Atomic uint64_t *entries, _Atomic uint64_t *returns,
			 _Atomic uint64_t *bad)
{
	uint64_t *cookie = selfprobe_cookie(ctx);
	if (!cookie) {
		atomic_fetch_add(bad, 1);
		return 0;
	}
	if (!selfprobe_is_return(ctx)) {
		*cookie = COOKIE_MARK | (uint32_t)selfprobe_arg(ctx, 0);
		atomic_fetch_add_explicit(entries, 1, memory_order_relaxed);
		return 0;
	}
	int x = (int)(uint32_t)*cookie;
	if (!(*cookie & COOKIE_MARK) || (int)selfprobe_retval(ctx) != expect(x))
		atomic_fetch_add(bad, 1);
	atomic_fetch_add_explicit(returns, 1, memory_order_relaxed);
	return 0;
}

static int on_session(struct selfprobe_ctx *ctx, void *data)
{
	struct perm *p = data;
	return session_check(ctx, &p->sess_entry, &p->sess_ret, &p->bad);
}

static struct selfprobe_link *attach_or_die(const char *probe, selfprobe_handler_fn fn, void *data)
{
	struct selfprobe_link *l = selfprobe_attach(probe, fn, data);
	if (!l) {
		fprintf(stderr, "bench-soak: cannot attach %s: %s\n", probe, strerror(errno));
		exit(2);
	}
	return l;
}

/* The count-only twins, read back from the report; named through the
 * program's file name so that their spec differs from the churned ones'. */
static char count_spec[N_PERM][2][NAME_MAX + 64];     /* [target][uprobe, uretprobe] */
static const char *const lib_count_spec[2] = { "uprobe:libsoakdl.so:soak_dl_a",
						 "uretprobe:libsoakdl.so:soak_dl_b" };

/* The mode is global: whoever attaches (the churner, or the loader, whose
 * dlopen attaches the library's probes) sets it under this lock. */
static pthread_mutex_t mode_lock = PTHREAD_MUTEX_INITIALIZER;

static void attach_permanent(const char *exe_base)
{
	char probe[160];
	for (int t = 0; t < N_PERM; t++) {
		selfprobe_set_mode(t_mode[t]);
		snprintf(probe, sizeof(probe), "uprobe:%s", t_name[t]);
		attach_or_die(probe, on_entry, &perm[t]);
		snprintf(probe, sizeof(probe), "uretprobe:%s", t_name[t]);
		attach_or_die(probe, on_return, &perm[t]);
		snprintf(probe, sizeof(probe), "usession:%s", t_name[t]);
		attach_or_die(probe, on_session, &perm[t]);
		snprintf(count_spec[t][0], sizeof(count_spec[t][0]), "uprobe:%s:%s", exe_base, t_name[t]);
		snprintf(count_spec[t][1], sizeof(count_spec[t][1]), "uretprobe:%s:%s", exe_base, t_name[t]);
		attach_or_die(count_spec[t][0], NULL, NULL);
		attach_or_die(count_spec[t][1], NULL, NULL);
	}
	selfprobe_set_mode("auto");
	/* not loaded yet: these wait for the first dlopen */
	attach_or_die("uprobe:libsoakdl:soak_dl_a", on_entry, &lib_perm[0]);
	attach_or_die("uretprobe:libsoakdl:soak_dl_a", on_return, &lib_perm[0]);
	attach_or_die("uprobe:libsoakdl:soak_dl_b", on_entry, &lib_perm[1]);
	attach_or_die(lib_count_spec[0], NULL, NULL);
	attach_or_die(lib_count_spec[1], NULL, NULL);
}

/* ---- the report ------------------------------------------------------------ */

/* The JSON report, in memory (malloc'ed), or NULL. */
static char *report_json(void)
{
	int fd = memfd_create("soak-report", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = NULL;
	if (selfprobe_write_report_fd(fd, true) != 0)
		goto out;
	off_t len = lseek(fd, 0, SEEK_END);
	if (len < 0 || !(buf = malloc((size_t)len + 1)))
		goto out;
	if (pread(fd, buf, (size_t)len, 0) != len) {
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[len] = '\0';
out:
	close(fd);
	return buf;
}

/* Over the report's entries whose spec is SPEC exactly: the sum of FIELD
 * (a number), and how many entries there were.  MODE_JMP (if non-NULL)
 * counts the entries on the jmp path. */
static uint64_t report_sum(const char *json, const char *spec, const char *field, int *entries, int *mode_jmp)
{
	char key[200], fkey[64];
	snprintf(key, sizeof(key), "{\"spec\": \"%s\"", spec);
	snprintf(fkey, sizeof(fkey), "\"%s\": ", field);
	uint64_t sum = 0;
	*entries = 0;
	if (mode_jmp)
		*mode_jmp = 0;
	for (const char *p = json; (p = strstr(p, key)); p += strlen(key)) {
		const char *end = strchr(p + 1, '{');    /* the next entry */
		const char *f = strstr(p, fkey);
		if (!f || (end && f > end))
			continue;
		sum += strtoull(f + strlen(fkey), NULL, 10);
		(*entries)++;
		const char *m = strstr(p, "\"mode\": \"jmp\"");
		if (mode_jmp && m && (!end || m < end))
			(*mode_jmp)++;
	}
	return sum;
}

/* Entries in the report: every probe ever attached keeps its record (the
 * report lists detached and unloaded probes with their counts). */
static long report_records(void)
{
	char *json = report_json();
	long n = 0;
	for (const char *p = json; p && (p = strstr(p, "{\"spec\": ")); p++)
		n++;
	free(json);
	return json ? n : -1;
}

/* ---- churn ----------------------------------------------------------------- */

/* A churned link's handler data.  Slots are used round-robin, so a slot
 * stays DEAD for many rounds after its detach: a late call is seen. */
enum { SLOT_LIVE = 1, SLOT_DEAD = 2 };
struct slot {
	_Atomic int state;
	_Atomic uint64_t entries, returns, bad;
	int round;
};
#define N_SLOTS 256
static struct slot slots[N_SLOTS];
static _Atomic uint64_t late_calls;

static void late(struct slot *s)
{
	if (atomic_fetch_add(&late_calls, 1) < 5)
		fprintf(stderr, "VIOLATION: a handler of churn round %d ran after its detach returned\n", s->round);
	atomic_fetch_add(&violations, 1);
}

static int churn_entry(struct selfprobe_ctx *ctx, void *data)
{
	struct slot *s = data;
	(void)ctx;
	if (atomic_load(&s->state) != SLOT_LIVE)
		late(s);
	atomic_fetch_add_explicit(&s->entries, 1, memory_order_relaxed);
	return 0;
}

static int churn_return(struct selfprobe_ctx *ctx, void *data)
{
	struct slot *s = data;
	(void)ctx;
	if (atomic_load(&s->state) != SLOT_LIVE)
		late(s);
	atomic_fetch_add_explicit(&s->returns, 1, memory_order_relaxed);
	return 0;
}

static int churn_session(struct selfprobe_ctx *ctx, void *data)
{
	struct slot *s = data;
	if (atomic_load(&s->state) != SLOT_LIVE)
		late(s);
	return session_check(ctx, &s->entries, &s->returns, &s->bad);
}

enum { K_UPROBE, K_URETPROBE, K_USESSION, N_K };
static const char *const k_name[N_K] = { "uprobe", "uretprobe", "usession" };

/* Each round's handler is another function (N_VARIANTS of each kind), as a
 * program's handlers on demand or a plugin reloaded at a new address are:
 * the registry must not grow with them (a probe attached again is the same
 * record, whatever its handler). */
#define N_VARIANTS 64
#define VARIANT(k, base, i) \
	static int k##_##i(struct selfprobe_ctx *ctx, void *data) { return base(ctx, data); }
#define VARIANTS8(k, base, i) VARIANT(k, base, i##0) VARIANT(k, base, i##1) VARIANT(k, base, i##2) \
	VARIANT(k, base, i##3) VARIANT(k, base, i##4) VARIANT(k, base, i##5) VARIANT(k, base, i##6) \
	VARIANT(k, base, i##7)
#define VARIANTS64(k, base) VARIANTS8(k, base, 0) VARIANTS8(k, base, 1) VARIANTS8(k, base, 2) \
	VARIANTS8(k, base, 3) VARIANTS8(k, base, 4) VARIANTS8(k, base, 5) VARIANTS8(k, base, 6) \
	VARIANTS8(k, base, 7)
#define NAMES8(k, i) k##_##i##0, k##_##i##1, k##_##i##2, k##_##i##3, k##_##i##4, k##_##i##5, \
	k##_##i##6, k##_##i##7
#define NAMES64(k) { NAMES8(k, 0), NAMES8(k, 1), NAMES8(k, 2), NAMES8(k, 3), NAMES8(k, 4), \
	NAMES8(k, 5), NAMES8(k, 6), NAMES8(k, 7) }
VARIANTS64(ce, churn_entry)
VARIANTS64(cr, churn_return)
VARIANTS64(cs, churn_session)
static const selfprobe_handler_fn k_fn[N_K][N_VARIANTS] = { NAMES64(ce), NAMES64(cr), NAMES64(cs) };

static _Atomic uint64_t churn_rounds, churn_links;
static uint64_t churn_hits;          /* churner only */

/* Check one detached link: HITS against the bounds of the window. */
static void churn_check(int round, int t, int k, uint64_t hits, const char *what, uint64_t done_before,
			uint64_t begun_attached, uint64_t done_detaching, uint64_t begun_after)
{
	uint64_t lo = done_detaching > begun_attached ? done_detaching - begun_attached : 0;
	uint64_t hi = begun_after - done_before;
	if (hits < lo || hits > hi)
		violation("churn round %d, %s:%s: %" PRIu64 " %s, want %" PRIu64 "..%" PRIu64, round, k_name[k],
			  t_name[t], hits, what, lo, hi);
}

static void *churner_main(void *arg)
{
	(void)arg;
	unsigned seed = 12345;
	for (int round = 0; !atomic_load(&stop_churn); round++) {
		int t = round % N_T;
		int n = 1 + (round / N_T) % 2;           /* one link, or two of different kinds */
		int k0 = (round / (N_T * 2)) % N_K;
		struct selfprobe_link *l[2];
		struct slot *s[2];
		int kinds[2];
		uint64_t done_before = sum_done(t);
		pthread_mutex_lock(&mode_lock);
		selfprobe_set_mode(t_mode[t]);
		for (int i = 0; i < n; i++) {
			char probe[128];
			kinds[i] = (k0 + i) % N_K;
			s[i] = &slots[(round * 2 + i) % N_SLOTS];
			atomic_store(&s[i]->entries, 0);
			atomic_store(&s[i]->returns, 0);
			atomic_store(&s[i]->bad, 0);
			s[i]->round = round;
			atomic_store(&s[i]->state, SLOT_LIVE);
			snprintf(probe, sizeof(probe), "%s:%s", k_name[kinds[i]], t_name[t]);
			l[i] = selfprobe_attach(probe, k_fn[kinds[i]][round % N_VARIANTS], s[i]);
			if (!l[i])
				violation("churn round %d: cannot attach %s: %s", round, probe, strerror(errno));
		}
		selfprobe_set_mode("auto");
		pthread_mutex_unlock(&mode_lock);
		uint64_t begun_attached = sum_begun(t);
		/* let the workers run into it: 0-3 ms, sometimes not at all */
		int wait = rand_r(&seed) % 4;
		if (wait)
			sleep_us(wait * 1000L);
		uint64_t done_detaching = sum_done(t);
		for (int i = 0; i < n; i++) {
			if (l[i] && selfprobe_detach(l[i]) != 0)
				violation("churn round %d: detach failed", round);
		}
		for (int i = 0; i < n; i++)
			atomic_store(&s[i]->state, SLOT_DEAD);
		uint64_t begun_after = sum_begun(t);
		for (int i = 0; i < n; i++) {
			if (!l[i])
				continue;
			uint64_t e = atomic_load(&s[i]->entries), r = atomic_load(&s[i]->returns);
			if (kinds[i] != K_URETPROBE)
				churn_check(round, t, kinds[i], e, "entries", done_before, begun_attached, done_detaching,
					    begun_after);
			if (kinds[i] != K_UPROBE)
				churn_check(round, t, kinds[i], r, "returns", done_before, begun_attached, done_detaching,
					    begun_after);
			if (kinds[i] == K_URETPROBE && e)
				violation("churn round %d: uretprobe handler called at entry", round);
			if (kinds[i] == K_UPROBE && r)
				violation("churn round %d: uprobe handler called at return", round);
			if (atomic_load(&s[i]->bad))
				violation("churn round %d: %s:%s: %" PRIu64 " bad session values", round,
					  k_name[kinds[i]], t_name[t], atomic_load(&s[i]->bad));
			churn_hits += e + r;
			atomic_fetch_add(&churn_links, 1);
		}
		atomic_fetch_add(&churn_rounds, 1);
	}
	return NULL;
}

/* ---- dlopen churn ---------------------------------------------------------- */

static char lib_path[PATH_MAX];
static pthread_rwlock_t lib_lock;
static int (*lib_a)(int), (*lib_b)(int);     /* lib_lock; NULL while unloaded */
static _Atomic uint64_t lib_calls[2];
static _Atomic uint64_t dl_rounds, dl_unmapped;

static bool lib_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[PATH_MAX + 128];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, "libsoakdl.so") != NULL;
	if (f)
		fclose(f);
	return found;
}

static void *lib_worker_main(void *arg)
{
	(void)arg;
	for (int x = 0; !atomic_load_explicit(&stop_churn, memory_order_relaxed); x++) {
		pthread_rwlock_rdlock(&lib_lock);
		bool loaded = lib_a != NULL;
		for (int i = 0; loaded && i < 100; i++, x++) {
			int a = lib_a(x), b = lib_b(x);
			atomic_fetch_add_explicit(&lib_calls[0], 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&lib_calls[1], 1, memory_order_relaxed);
			if (a != expect_a(x) || b != expect_b(x))
				violation("libsoakdl: soak_dl_a/b(%d) returned %d/%d, want %d/%d", x, a, b, expect_a(x),
					  expect_b(x));
		}
		pthread_rwlock_unlock(&lib_lock);
		if (!loaded)
			sleep_us(200);
	}
	return NULL;
}

/* With no library call in flight (lib_lock held for writing), the
 * library's handlers have seen every call exactly. */
static void lib_check(uint64_t round)
{
	uint64_t a = atomic_load(&lib_calls[0]), b = atomic_load(&lib_calls[1]);
	uint64_t ea = atomic_load(&lib_perm[0].entry), ra = atomic_load(&lib_perm[0].ret);
	uint64_t eb = atomic_load(&lib_perm[1].entry);
	if (ea != a || ra != a || eb != b)
		violation("dlopen round %" PRIu64 ": library handlers saw soak_dl_a %" PRIu64 "/%" PRIu64
			  " (entry/return), soak_dl_b %" PRIu64 "; calls %" PRIu64 ", %" PRIu64,
			  round, ea, ra, eb, a, b);
	if (atomic_load(&lib_perm[0].bad) || atomic_load(&lib_perm[1].bad))
		violation("dlopen round %" PRIu64 ": a library handler called at the wrong side", round);
}

static void *loader_main(void *arg)
{
	(void)arg;
	for (uint64_t round = 0; !atomic_load(&stop_churn); round++) {
		/* odd loads attach the waiting probes on the int3 path */
		pthread_mutex_lock(&mode_lock);
		selfprobe_set_mode(round & 1 ? "int3" : "auto");
		void *h = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
		selfprobe_set_mode("auto");
		pthread_mutex_unlock(&mode_lock);
		if (!h) {
			violation("dlopen %s: %s", lib_path, dlerror());
			break;
		}
		pthread_rwlock_wrlock(&lib_lock);
		lib_a = (int (*)(int))dlsym(h, "soak_dl_a");
		lib_b = (int (*)(int))dlsym(h, "soak_dl_b");
		bool ok = lib_a && lib_b;
		if (!ok)
			lib_a = lib_b = NULL;
		pthread_rwlock_unlock(&lib_lock);
		if (!ok) {
			violation("libsoakdl.so lacks soak_dl_a/soak_dl_b");
			dlclose(h);
			break;
		}
		sleep_us(20000);
		pthread_rwlock_wrlock(&lib_lock);
		lib_a = lib_b = NULL;
		lib_check(round);
		pthread_rwlock_unlock(&lib_lock);
		dlclose(h);
		if (!lib_mapped())
			atomic_fetch_add(&dl_unmapped, 1);
		atomic_fetch_add(&dl_rounds, 1);
	}
	return NULL;
}

/* ---- forks ----------------------------------------------------------------- */

#define CHILD_CALLS 2000
static _Atomic uint64_t forks_ok, forks_bad;

/* In the child: the only thread left calls the permanent probes' functions
 * and checks its own counts (the runtime's restart from zero after fork, the
 * handlers' from the copy of the parent's).  Exit status 0: all exact. */
static void child_run(void)
{
	alarm(30);    /* a child stuck on a lock the fork copied dies visibly */
	struct perm before[N_PERM];
	for (int t = 0; t < N_PERM; t++) {
		before[t].entry = atomic_load(&perm[t].entry);
		before[t].ret = atomic_load(&perm[t].ret);
		before[t].sess_entry = atomic_load(&perm[t].sess_entry);
		before[t].sess_ret = atomic_load(&perm[t].sess_ret);
		before[t].bad = atomic_load(&perm[t].bad);
	}
	int bad = 0;
	for (int i = 0; i < CHILD_CALLS; i++)
		for (int t = 0; t < N_PERM; t++)
			bad += t_fn[t](i) != expect(i);
	char *json = report_json();
	for (int t = 0; t < N_PERM; t++) {
		uint64_t d[5] = { perm[t].entry - before[t].entry, perm[t].ret - before[t].ret,
				  perm[t].sess_entry - before[t].sess_entry, perm[t].sess_ret - before[t].sess_ret,
				  perm[t].bad - before[t].bad };
		int n0 = 0, n1 = 0;
		uint64_t c0 = json ? report_sum(json, count_spec[t][0], "hits", &n0, NULL) : 0;
		uint64_t c1 = json ? report_sum(json, count_spec[t][1], "hits", &n1, NULL) : 0;
		if (d[0] != CHILD_CALLS || d[1] != CHILD_CALLS || d[2] != CHILD_CALLS || d[3] != CHILD_CALLS || d[4] ||
		    c0 != CHILD_CALLS || c1 != CHILD_CALLS || n0 != 1 || n1 != 1 || bad) {
			fprintf(stderr, "VIOLATION: fork child %d, %s: handlers %" PRIu64 " %" PRIu64 " %" PRIu64
				" %" PRIu64 " (bad %" PRIu64 "), report %" PRIu64 " %" PRIu64 ", wrong values %d; "
				"want %d each\n", (int)getpid(), t_name[t], d[0], d[1], d[2], d[3], d[4], c0, c1, bad,
				CHILD_CALLS);
			_exit(1);
		}
	}
	if (!json) {
		fputs("VIOLATION: fork child: no report\n", stderr);
		_exit(1);
	}
	_exit(0);
}

static void *forker_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_churn)) {
		sleep_us(opt_fork_ms * 1000L);
		pid_t pid = fork();
		if (pid < 0) {
			violation("fork: %s", strerror(errno));
			continue;
		}
		if (pid == 0)
			child_run();
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			atomic_fetch_add(&forks_ok, 1);
		else {
			atomic_fetch_add(&forks_bad, 1);
			if (WIFSIGNALED(status))
				violation("fork child %d killed by signal %d%s", (int)pid, WTERMSIG(status),
					  WTERMSIG(status) == SIGALRM ? " (hung for 30 s)" : "");
			else
				violation("fork child %d exited %d", (int)pid, WEXITSTATUS(status));
		}
	}
	return NULL;
}

/* ---- memory ---------------------------------------------------------------- */

struct mem {
	long rss_kib, maps, fds;
};

static struct mem mem_sample(void)
{
	struct mem m = { -1, 0, 0 };
	char line[512];
	FILE *f = fopen("/proc/self/status", "re");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			m.rss_kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	f = fopen("/proc/self/maps", "re");
	while (f && fgets(line, sizeof(line), f))
		m.maps += strchr(line, '\n') != NULL;
	if (f)
		fclose(f);
	/* not /proc/self/mem: the runtime holds it only while a patch batch
	 * of the churn threads is under way, never in between */
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));) {
		char link[300], target[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		ssize_t n = e->d_name[0] == '.' ? -1 : readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = 0;
		m.fds += !(strncmp(target, "/proc/", 6) == 0 && n > 4 && strcmp(target + n - 4, "/mem") == 0);
	}
	if (d) {
		m.fds--;          /* the directory's own */
		closedir(d);
	}
	return m;
}

/* ---- main ------------------------------------------------------------------ */

static uint64_t total_calls(void)
{
	uint64_t s = 0;
	for (int t = 0; t < N_T; t++)
		s += sum_done(t);
	return s + atomic_load(&lib_calls[0]) + atomic_load(&lib_calls[1]);
}

static void progress(double t0, const char *what)
{
	struct mem m = mem_sample();
	printf("[%6.1f s] %s calls %" PRIu64 ", churn rounds %" PRIu64 ", dlopen rounds %" PRIu64 ", forks %" PRIu64
	       ", RSS %ld KiB, maps %ld, fds %ld, violations %" PRIu64 "\n",
	       now() - t0, what, total_calls(), atomic_load(&churn_rounds), atomic_load(&dl_rounds),
	       atomic_load(&forks_ok) + atomic_load(&forks_bad), m.rss_kib, m.maps, m.fds, atomic_load(&violations));
	fflush(stdout);
}

static void usage(void)
{
	fputs("usage: bench-soak [-t SECONDS] [-w WORKERS] [-F FORK_MS] [-R KIB] [-P BYTES] [-D BYTES] [-M LINES]\n"
	      "                  [-L] [-q]\n"
	      "  -t  run time (300)            -w  worker threads (6)\n"
	      "  -F  ms between forks (250)    -L  no dlopen churn\n"
	      "  -R  RSS growth allowed after warm-up, KiB (4096), plus\n"
	      "  -P  bytes per probe record the registry gained meanwhile (2048)\n"
	      "  -D  bytes per library reload meanwhile (512)\n"
	      "  -M  mapping lines growth allowed (16)   -q  no progress lines\n", stderr);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "t:w:F:R:M:P:D:Lqh")) != -1) {
		switch (c) {
		case 't': opt_seconds = atof(optarg); break;
		case 'w': opt_workers = atoi(optarg); break;
		case 'F': opt_fork_ms = atoi(optarg); break;
		case 'R': opt_rss_kib = atol(optarg); break;
		case 'M': opt_maps = atol(optarg); break;
		case 'P': opt_record_bytes = atol(optarg); break;
		case 'D': opt_reload_bytes = atol(optarg); break;
		case 'L': opt_no_loader = true; break;
		case 'q': opt_quiet = true; break;
		default: usage();
		}
	}
	if (opt_seconds <= 0 || opt_workers < 1 || opt_workers > 64 || opt_fork_ms < 1)
		usage();
}

/* BIN/../lib/libsoakdl.so, built next to libselfprobe.so; the program's
 * own file name for the count-only specs. */
static void paths(char *exe_base, size_t len)
{
	char exe[PATH_MAX - 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(exe, '/');
	const char *base = slash ? slash + 1 : exe;
	size_t n_base = strnlen(base, len - 1);
	memcpy(exe_base, base, n_base);
	exe_base[n_base] = '\0';
	if (slash)
		*slash = '\0';
	snprintf(lib_path, sizeof(lib_path), "%s/../lib/libsoakdl.so", exe);
}

/* The end: exact totals of the permanent probes, handlers and report. */
static void final_checks(const char *json)
{
	for (int t = 0; t < N_PERM; t++) {
		uint64_t calls = sum_done(t);
		uint64_t got[4] = { perm[t].entry, perm[t].ret, perm[t].sess_entry, perm[t].sess_ret };
		static const char *const what[4] = { "uprobe handler", "uretprobe handler", "usession entries",
						     "usession returns" };
		for (int i = 0; i < 4; i++)
			if (got[i] != calls)
				violation("%s: %s saw %" PRIu64 " calls, the workers made %" PRIu64, t_name[t], what[i],
					  got[i], calls);
		if (perm[t].bad)
			violation("%s: %" PRIu64 " bad handler calls (wrong side or session value)", t_name[t],
				  (uint64_t)perm[t].bad);
		for (int k = 0; k < 2; k++) {
			int n, jmp;
			uint64_t hits = report_sum(json, count_spec[t][k], "hits", &n, &jmp);
			uint64_t missed = report_sum(json, count_spec[t][k], "missed", &n, &jmp);
			if (n != 1 || hits != calls || missed)
				violation("report: %s: %d entries, hits %" PRIu64 ", missed %" PRIu64 "; calls %" PRIu64,
					  count_spec[t][k], n, hits, missed, calls);
			bool want_jmp = t == T_JMP;
			if (n == 1 && (jmp == 1) != want_jmp)
				violation("report: %s is not on the %s path", count_spec[t][k], want_jmp ? "jmp" : "int3");
		}
	}
	for (int k = 0; k < 2 && !opt_no_loader; k++) {   /* -L: the library is never loaded */
		int n, jmp;
		uint64_t hits = report_sum(json, lib_count_spec[k], "hits", &n, &jmp);
		uint64_t calls = atomic_load(&lib_calls[k]);
		/* one entry over every load: a reload attaches it again */
		if (hits != calls || n != 1)
			violation("report: %s: %d entries, hits %" PRIu64 "; calls %" PRIu64, lib_count_spec[k], n,
				  hits, calls);
		printf("  %-32s %d entry over %" PRIu64 " loads, hits %" PRIu64 ", calls %" PRIu64 "\n",
		       lib_count_spec[k], n, (uint64_t)atomic_load(&dl_rounds), hits, calls);
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	char exe_base[NAME_MAX + 1];
	paths(exe_base, sizeof(exe_base));
	if (access(lib_path, R_OK) != 0) {
		fprintf(stderr, "bench-soak: %s: %s\n", lib_path, strerror(errno));
		return 2;
	}
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&lib_lock, &ra);

	attach_permanent(exe_base);
	workers = aligned_alloc(64, sizeof(*workers) * (size_t)opt_workers);
	if (!workers)
		return 2;
	memset(workers, 0, sizeof(*workers) * (size_t)opt_workers);

	double t0 = now();
	double warm = opt_seconds / 5 < 10 ? opt_seconds / 5 : 10;
	printf("bench-soak: %.0f s, %d workers, 2 library callers, 1 churner, 1 loader, a fork every %d ms; "
	       "warm-up %.0f s\n", opt_seconds, opt_workers, opt_fork_ms, warm);
	fflush(stdout);
	for (int i = 0; i < opt_workers; i++)
		pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
	pthread_t lw[2], churner, loader, forker;
	for (int i = 0; i < 2; i++)
		pthread_create(&lw[i], NULL, lib_worker_main, NULL);
	pthread_create(&churner, NULL, churner_main, NULL);
	if (!opt_no_loader)
		pthread_create(&loader, NULL, loader_main, NULL);
	pthread_create(&forker, NULL, forker_main, NULL);

	sleep_us((long)(warm * 1e6));
	struct mem m0 = mem_sample();
	long records0 = report_records();
	uint64_t rounds0 = atomic_load(&churn_rounds), dl0 = atomic_load(&dl_rounds);
	if (!opt_quiet)
		progress(t0, "warm:");
	double next = now() + 30;
	while (now() - t0 < opt_seconds) {
		sleep_us(200000);
		if (!opt_quiet && now() >= next) {
			progress(t0, "");
			next += 30;
		}
	}
	/* the churn stops first: the end sample is taken with the churn over
	 * and the library unloaded, the workers still running (as at the
	 * first sample; joined threads keep their cached stacks) */
	atomic_store(&stop_churn, true);
	pthread_join(churner, NULL);
	if (!opt_no_loader)
		pthread_join(loader, NULL);
	pthread_join(forker, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(lw[i], NULL);
	struct mem m1 = mem_sample();
	long records1 = report_records();
	atomic_store(&stop, true);
	for (int i = 0; i < opt_workers; i++)
		pthread_join(workers[i].tid, NULL);
	double elapsed = now() - t0;

	char *json = report_json();
	if (!json)
		violation("cannot write the JSON report");
	uint64_t calls = total_calls();
	printf("summary after %.1f s:\n", elapsed);
	printf("  calls            %" PRIu64 " (%.2f M/s)\n", calls, calls / elapsed / 1e6);
	for (int t = 0; t < N_T; t++)
		printf("    %-16s %" PRIu64 "\n", t_name[t], sum_done(t));
	printf("    %-16s %" PRIu64 "\n    %-16s %" PRIu64 "\n", "soak_dl_a", (uint64_t)lib_calls[0], "soak_dl_b",
	       (uint64_t)lib_calls[1]);
	uint64_t perm_hits = 0;
	for (int t = 0; t < N_PERM; t++)
		perm_hits += perm[t].entry + perm[t].ret + perm[t].sess_entry + perm[t].sess_ret;
	printf("  handler hits     %" PRIu64 " permanent, %" PRIu64 " library, %" PRIu64 " churned\n", perm_hits,
	       (uint64_t)(lib_perm[0].entry + lib_perm[0].ret + lib_perm[1].entry), churn_hits);
	printf("  attach/detach    %" PRIu64 " rounds, %" PRIu64 " links\n", (uint64_t)churn_rounds,
	       (uint64_t)churn_links);
	printf("  dlopen/dlclose   %" PRIu64 " rounds, unmapped after %" PRIu64 "\n", (uint64_t)dl_rounds,
	       (uint64_t)dl_unmapped);
	printf("  forks            %" PRIu64 " children checked, %" PRIu64 " failed\n", (uint64_t)forks_ok,
	       (uint64_t)forks_bad);
	if (json)
		final_checks(json);
	if (atomic_load(&dl_rounds) && !atomic_load(&dl_unmapped))
		violation("dlclose never unmapped libsoakdl.so: the reload was not tested");
	printf("  memory           after warm-up / at the end (%" PRIu64 " churn and %" PRIu64
	       " dlopen rounds between)\n", (uint64_t)churn_rounds - rounds0, (uint64_t)dl_rounds - dl0);
	long grew = records1 - records0, rss_grew = m1.rss_kib - m0.rss_kib;
	printf("    VmRSS          %ld KiB / %ld KiB (%+ld)\n", m0.rss_kib, m1.rss_kib, rss_grew);
	printf("    probe records  %ld / %ld (%+ld; %.0f B of RSS per record)\n", records0, records1, grew,
	       grew > 0 ? rss_grew * 1024.0 / grew : 0.0);
	printf("    maps lines     %ld / %ld (%+ld)\n", m0.maps, m1.maps, m1.maps - m0.maps);
	printf("    open fds       %ld / %ld (%+ld)\n", m0.fds, m1.fds, m1.fds - m0.fds);
	long reloads = (long)(atomic_load(&dl_rounds) - dl0);
	long allowed = opt_rss_kib + (grew > 0 ? grew * opt_record_bytes / 1024 : 0) +
		       reloads * opt_reload_bytes / 1024;
	printf("    RSS per reload %.0f B (allowed %ld B)\n",
	       reloads ? (rss_grew - (grew > 0 ? grew * opt_record_bytes / 1024 : 0)) * 1024.0 / reloads : 0.0,
	       opt_reload_bytes);
	if (grew > 0)
		violation("the registry grew by %ld probe records after warm-up: a probe attached again "
			  "(with another handler) must find its record", grew);
	if (rss_grew > allowed)
		violation("VmRSS grew %ld KiB after warm-up (allowed %ld: %ld + %ld records of %ld B + %ld reloads "
			  "of %ld B)", rss_grew, allowed, opt_rss_kib, grew, opt_record_bytes, reloads,
			  opt_reload_bytes);
	if (m1.maps - m0.maps > opt_maps)
		violation("mappings grew by %ld after warm-up (allowed %ld)", m1.maps - m0.maps, opt_maps);
	/* the first sample is taken during the churn, where a batch may hold
	 * /proc/self/mem or the loader a file open for a moment; the last one
	 * after it: only more fds at the end is a leak */
	if (m1.fds > m0.fds)
		violation("open fds went from %ld to %ld", m0.fds, m1.fds);
	free(json);
	uint64_t v = atomic_load(&violations);
	printf("%s: %" PRIu64 " violation%s\n", v ? "FAIL" : "PASS", v, v == 1 ? "" : "s");
	return v ? 1 : 0;
}
