/* sp_ret_target — functions for return probes, each counting its own calls.
 *
 *   sp_ret_target MODE [N]
 *
 * Every mode prints what it computed and then "name calls" for each function
 * it called (the e2e test compares the report with these counts, and the
 * whole stdout with the unprobed run's):
 *
 *   values N     returns in rax, rax:rdx, xmm0, xmm0:xmm1, rax+xmm0 and st0,
 *                each checked against the same expression computed inline
 *   longjmp N    longjmp out of three probed frames N times, siglongjmp out
 *                of two (from a SIGUSR1 handler that calls a probed
 *                function), then N normal calls of each
 *   ljthread N   a thread longjmps out of two probed frames N times, then
 *                returns from its start routine
 *   cancel N     a thread cancelled while blocked in read() two probed frames
 *                deep; two worker threads and main keep calling work()
 *   threads N    16 threads: N calls of work() each, then pthread_exit 50
 *                probed frames deep
 *   recurse N    recursion N deep (20 times)
 *   fork N       fork inside a probed function; child and parent both return
 *                from it and call after() N times
 *   latency N    N calls of a function that sleeps 1 ms
 *   backtrace N  backtrace() three probed frames deep, the callers' names
 *                (needs -rdynamic)
 *   dlcancel N LIB  a C++ library loaded with dlopen (sp_ret_cxxlib): N
 *                threads cancelled while blocked in read() under its frame
 *                (dl_blocked, probed, called back from it); then N
 *                exceptions thrown and caught inside it.  Prints how many
 *                of its destructors ran: the unprobed run's numbers.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROBED __attribute__((noinline, noclone, used, visibility("default")))
/* Keeps a call from becoming a tail call (and recursion from becoming a
 * loop): the value must pass through here after the call returns. */
#define KEEP(v) __asm__ volatile("" : "+r"(v) :: "memory")

enum fn {
	F_INT, F_PAIR, F_DBL, F_DPAIR, F_MIXED, F_LDBL,
	F_LJ_OUTER, F_LJ_MID, F_LJ_INNER, F_SJ_OUTER, F_SJ_INNER, F_SIG_HELPER,
	F_TL_OUTER, F_TL_INNER,
	F_CN_OUTER, F_CN_BLOCKED, F_WORK,
	F_EX_REC, F_REC, F_FK_CALL, F_AFTER, F_SLEEPER,
	F_BT_OUTER, F_BT_MID, F_BT_INNER, F_DL_BLOCKED,
	F_N
};

static const char *const names[F_N] = {
	"r_int", "r_pair", "r_dbl", "r_dpair", "r_mixed", "r_ldbl",
	"lj_outer", "lj_mid", "lj_inner", "sj_outer", "sj_inner", "sig_helper",
	"tl_outer", "tl_inner",
	"cn_outer", "cn_blocked", "work",
	"ex_rec", "rec", "fk_call", "after", "sleeper",
	"bt_outer", "bt_mid", "bt_inner", "dl_blocked",
};

static _Atomic long calls[F_N];
static volatile long sink;

#define CALLED(f) atomic_fetch_add_explicit(&calls[f], 1, memory_order_relaxed)

static void print_counts(void)
{
	for (int i = 0; i < F_N; i++)
		if (atomic_load(&calls[i]))
			printf("%s %ld\n", names[i], atomic_load(&calls[i]));
	fflush(stdout);
}

/* ------------------------------------------------------------ values */

struct pair { long a, b; };
struct dpair { double x, y; };
struct mixed { long a; double d; };

PROBED long r_int(long x) { CALLED(F_INT); return x * 3 + 1; }
PROBED struct pair r_pair(long x) { CALLED(F_PAIR); return (struct pair){ x + 1, ~x * 5 }; }
PROBED double r_dbl(double x) { CALLED(F_DBL); return x * 1.5 + 0.25; }
PROBED struct dpair r_dpair(double x) { CALLED(F_DPAIR); return (struct dpair){ x * 2 - 1, 0.5 - x }; }
PROBED struct mixed r_mixed(long x) { CALLED(F_MIXED); return (struct mixed){ x ^ 0x5555, x / 4.0 }; }
PROBED long double r_ldbl(long double x) { CALLED(F_LDBL); return x / 3 + 1e-4000L; }

static int mode_values(long n)
{
	long bad = 0;
	double dsum = 0;
	for (long i = 0; i < n; i++) {
		long v = r_int(i);
		bad += v != i * 3 + 1;
		struct pair p = r_pair(i);
		bad += p.a != i + 1 || p.b != ~i * 5;
		volatile double xd = (double)i + 0.125;
		double d = r_dbl(xd);
		bad += d != xd * 1.5 + 0.25;
		struct dpair dp = r_dpair(xd);
		bad += dp.x != xd * 2 - 1 || dp.y != 0.5 - xd;
		struct mixed m = r_mixed(i);
		bad += m.a != (i ^ 0x5555) || m.d != i / 4.0;
		volatile long double xl = (long double)i + 0.1L;
		long double l = r_ldbl(xl);
		long double want = xl / 3 + 1e-4000L;
		bad += memcmp(&l, &want, 10) != 0;
		dsum += d + dp.x + dp.y + m.d + (double)l;
	}
	printf("values bad %ld sum %.6f\n", bad, dsum);
	print_counts();
	return bad != 0;
}

/* ----------------------------------------------------------- longjmp */

static jmp_buf lj_buf;
static sigjmp_buf sj_buf;

PROBED void lj_inner(long i)
{
	CALLED(F_LJ_INNER);
	if (i >= 0)
		longjmp(lj_buf, (int)i + 1);
	KEEP(i);
}

PROBED void lj_mid(long i) { CALLED(F_LJ_MID); lj_inner(i); KEEP(i); sink += i; }
PROBED void lj_outer(long i) { CALLED(F_LJ_OUTER); lj_mid(i); KEEP(i); sink += i; }

PROBED long sig_helper(long x) { CALLED(F_SIG_HELPER); return x + 1; }

static void on_usr1(int sig)
{
	long v = sig_helper(sig);
	siglongjmp(sj_buf, (int)v);
}

PROBED void sj_inner(long i)
{
	CALLED(F_SJ_INNER);
	if (i >= 0)
		raise(SIGUSR1);
	KEEP(i);
}

PROBED void sj_outer(long i) { CALLED(F_SJ_OUTER); sj_inner(i); KEEP(i); sink += i; }

static int mode_longjmp(long n)
{
	volatile long jumped = 0, sjumped = 0;
	signal(SIGUSR1, on_usr1);
	for (volatile long i = 0; i < n; i++) {
		int r = setjmp(lj_buf);
		if (r == 0)
			lj_outer(i);
		else
			jumped += r == i + 1;
	}
	for (volatile long i = 0; i < n; i++) {
		if (sigsetjmp(sj_buf, 1) == 0)
			sj_outer(i);
		else
			sjumped++;
	}
	for (long i = 0; i < n; i++) {
		lj_outer(-1);
		sj_outer(-1);
	}
	printf("longjmp %ld siglongjmp %ld\n", jumped, sjumped);
	print_counts();
	return 0;
}

/* A thread whose last frames are longjmp'ed out of before it returns. */
static __thread jmp_buf tl_buf;

PROBED void tl_inner(long i) { CALLED(F_TL_INNER); longjmp(tl_buf, (int)i + 1); }
PROBED void tl_outer(long i) { CALLED(F_TL_OUTER); tl_inner(i); KEEP(i); sink += i; }

static void *tl_thread(void *arg)
{
	long n = (long)arg;
	volatile long jumped = 0;
	for (volatile long i = 0; i < n; i++) {
		if (setjmp(tl_buf) == 0)
			tl_outer(i);
		else
			jumped++;
	}
	return (void *)jumped;
}

static int mode_ljthread(long n)
{
	pthread_t t;
	void *r;
	pthread_create(&t, NULL, tl_thread, (void *)n);
	pthread_join(t, &r);
	printf("thread jumped %ld\n", (long)r);
	print_counts();
	return 0;
}

/* ------------------------------------------------------------ cancel */

static _Atomic int blocked;

PROBED long work(long x) { CALLED(F_WORK); return x + 1; }

static void cn_cleanup(void *arg)
{
	printf("cleanup %s\n", (const char *)arg);
}

PROBED void cn_blocked(int fd)
{
	CALLED(F_CN_BLOCKED);
	char c;
	pthread_cleanup_push(cn_cleanup, "cn_blocked");
	atomic_store(&blocked, 1);
	ssize_t r = read(fd, &c, 1);   /* a cancellation point; nobody writes */
	KEEP(r);
	pthread_cleanup_pop(0);
}

PROBED void cn_outer(int fd) { CALLED(F_CN_OUTER); cn_blocked(fd); KEEP(fd); sink += fd; }

static void *cn_thread(void *arg)
{
	cn_outer((int)(long)arg);
	return NULL;
}

static void *worker(void *arg)
{
	long n = (long)arg, s = 0;
	for (long i = 0; i < n; i++)
		s += work(i);
	return (void *)s;
}

/* Once thread C has set *FLAG and had SETTLE µs to get into its blocking
 * call, cancel it: 1 when it ended cancelled. */
static int cancel_when_blocked(pthread_t c, _Atomic int *flag, useconds_t settle)
{
	while (!atomic_load(flag))
		usleep(1000);
	usleep(settle);
	pthread_cancel(c);
	void *r;
	pthread_join(c, &r);
	return r == PTHREAD_CANCELED;
}

static int mode_cancel(long n)
{
	int fds[2];
	if (pipe(fds))
		return 2;
	pthread_t c, w[2];
	pthread_create(&c, NULL, cn_thread, (void *)(long)fds[0]);
	for (int i = 0; i < 2; i++)
		pthread_create(&w[i], NULL, worker, (void *)n);
	printf("cancelled %d\n", cancel_when_blocked(c, &blocked, 50000));
	void *r;
	long s = 0;
	for (int i = 0; i < 2; i++) {
		pthread_join(w[i], &r);
		s += (long)r;
	}
	s += (long)worker((void *)n);
	printf("work sum %ld\n", s);
	print_counts();
	return 0;
}

/* ----------------------------------------------------------- threads */

#define EX_THREADS 16
#define EX_DEPTH 50

PROBED long ex_rec(long depth, long id)
{
	CALLED(F_EX_REC);
	if (depth < 0)
		return -1;
	if (depth == 0)
		pthread_exit((void *)(id * 1000 + 7));
	long r = ex_rec(depth - 1, id);
	KEEP(r);
	return r + 1;
}

struct ex_arg { long id, n; };

static void *ex_thread2(void *arg)
{
	struct ex_arg *a = arg;
	long s = 0;
	for (long i = 0; i < a->n; i++)
		s += work(i);
	KEEP(s);
	ex_rec(EX_DEPTH, a->id);
	return NULL;   /* not reached */
}

static int mode_threads(long n)
{
	pthread_t t[EX_THREADS];
	struct ex_arg a[EX_THREADS];
	for (int i = 0; i < EX_THREADS; i++) {
		a[i] = (struct ex_arg){ i, n };
		pthread_create(&t[i], NULL, ex_thread2, &a[i]);
	}
	long sum = 0;
	for (int i = 0; i < EX_THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		sum += (long)r;
	}
	printf("exit values %ld\n", sum);
	print_counts();
	return 0;
}

/* ----------------------------------------------------------- recurse */

PROBED long rec(long n)
{
	CALLED(F_REC);
	if (n == 0)
		return 0;
	long r = rec(n - 1);
	KEEP(r);
	return r + n;
}

static int mode_recurse(long n)
{
	long s = 0;
	for (int i = 0; i < 20; i++)
		s += rec(n);
	printf("recurse sum %ld\n", s);
	print_counts();
	return 0;
}

/* -------------------------------------------------------------- fork */

PROBED long after(long x) { CALLED(F_AFTER); return x * 2; }

PROBED long fk_call(long x)
{
	CALLED(F_FK_CALL);
	fflush(stdout);
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0)
		return x + 1000;   /* the child returns through the shadow stack it inherited */
	int st;
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? x + WEXITSTATUS(st) : -2;
}

static int mode_fork(long n)
{
	long r = fk_call(5);
	long s = 0;
	for (long i = 0; i < n; i++)
		s += after(i);
	if (r >= 1000) {
		printf("child returned %ld, after sum %ld\n", r, s);
		print_counts();
		return 42;
	}
	printf("parent returned %ld, after sum %ld\n", r, s);
	print_counts();
	return 0;
}

/* ----------------------------------------------------------- latency */

PROBED long sleeper(long x)
{
	CALLED(F_SLEEPER);
	struct timespec ts = { 0, 1000 * 1000 };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	return x;
}

static int mode_latency(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += sleeper(i);
	printf("latency sum %ld\n", s);
	print_counts();
	return 0;
}

/* --------------------------------------------------------- backtrace */

/* The function names of this thread's stack, innermost first, up to
 * bt_main (backtrace_symbols names the exported functions only: callers()
 * itself shows as an empty name). */
static void callers(char *out, size_t len)
{
	void *ips[64];
	int n = backtrace(ips, 64);
	char **syms = backtrace_symbols(ips, n);
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; syms && i < n && o + 1 < len; i++) {
		/* "path(name+0x12) [0x...]" */
		const char *b = strchr(syms[i], '('), *e = b ? strpbrk(b, "+)") : NULL;
		int l = b && e ? (int)(e - b - 1) : 0;
		o += (size_t)snprintf(out + o, len - o, "%s%.*s", i ? " " : "", l, l ? b + 1 : "?");
		if (l == 7 && strncmp(b + 1, "bt_main", 7) == 0)
			break;
	}
	free(syms);
}

PROBED long bt_inner(long i, char *out, size_t len)
{
	CALLED(F_BT_INNER);
	callers(out, len);
	KEEP(i);
	return i;
}

PROBED long bt_mid(long i, char *out, size_t len) { CALLED(F_BT_MID); long r = bt_inner(i, out, len); KEEP(r); return r + 1; }
PROBED long bt_outer(long i, char *out, size_t len) { CALLED(F_BT_OUTER); long r = bt_mid(i, out, len); KEEP(r); return r + 1; }

PROBED int bt_main(long n)
{
	char first[1024], cur[1024];
	long same = 0, s = 0;
	for (long i = 0; i < n; i++) {
		s += bt_outer(i, i ? cur : first, sizeof(cur));
		same += i == 0 || strcmp(cur, first) == 0;
	}
	printf("bt %s\nbt same %ld sum %ld\n", first, same, s);
	print_counts();
	return 0;
}

static int mode_backtrace(long n)
{
	int r = bt_main(n);
	KEEP(r);
	return r;
}

/* ------------------------------------------------------------ dlcancel */

static _Atomic int dl_in_read;

PROBED void dl_blocked(int fd)
{
	CALLED(F_DL_BLOCKED);
	char c;
	atomic_store(&dl_in_read, 1);
	ssize_t r = read(fd, &c, 1);   /* a cancellation point; nobody writes */
	KEEP(r);
}

static void (*dl_outer)(int);

static void *dl_thread(void *arg)
{
	dl_outer((int)(long)arg);
	return NULL;
}

static int mode_dlcancel(long n, const char *lib)
{
	void *h = lib ? dlopen(lib, RTLD_NOW) : NULL;
	if (!h) {
		fprintf(stderr, "dlcancel: %s\n", lib ? dlerror() : "no library named");
		return 2;
	}
	dl_outer = (void (*)(int))dlsym(h, "cx_dl_outer");
	long (*throw_n)(long) = (long (*)(long))dlsym(h, "cx_dl_throw");
	long (*destroyed)(void) = (long (*)(void))dlsym(h, "cx_dl_destroyed");
	int fds[2];
	if (!dl_outer || !throw_n || !destroyed || pipe(fds))
		return 2;
	long cancelled = 0;
	for (long i = 0; i < n; i++) {
		pthread_t c;
		atomic_store(&dl_in_read, 0);
		pthread_create(&c, NULL, dl_thread, (void *)(long)fds[0]);
		cancelled += cancel_when_blocked(c, &dl_in_read, 20000);
	}
	printf("cancelled %ld\ndestructors %ld\n", cancelled, destroyed());
	long caught = throw_n(n);
	printf("caught %ld\ndestructors %ld\n", caught, destroyed());
	print_counts();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s values|longjmp|ljthread|cancel|threads|recurse|fork|latency|backtrace|dlcancel [N [LIB]]\n", argv[0]);
		return 2;
	}
	long n = argc > 2 ? atol(argv[2]) : 1000;
	const char *m = argv[1];
	if (!strcmp(m, "values")) return mode_values(n);
	if (!strcmp(m, "longjmp")) return mode_longjmp(n);
	if (!strcmp(m, "ljthread")) return mode_ljthread(n);
	if (!strcmp(m, "cancel")) return mode_cancel(n);
	if (!strcmp(m, "threads")) return mode_threads(n);
	if (!strcmp(m, "recurse")) return mode_recurse(n);
	if (!strcmp(m, "fork")) return mode_fork(n);
	if (!strcmp(m, "latency")) return mode_latency(n);
	if (!strcmp(m, "backtrace")) return mode_backtrace(n);
	if (!strcmp(m, "dlcancel")) return mode_dlcancel(n, argc > 3 ? argv[3] : NULL);
	fprintf(stderr, "unknown mode %s\n", m);
	return 2;
}
