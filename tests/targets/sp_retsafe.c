/* sp_retsafe — functions whose return address a return probe must not (or
 * may only carefully) swap (e2e_retall.py).
 *
 *   sp_retsafe vfork N     N times: vfork, the child _exits at once, the
 *                          parent waits
 *   sp_retsafe setjmp N    N times: setjmp, a call of rs_leaf from the same
 *                          frame (it reuses setjmp's return slot), longjmp
 *                          back; then the same with sigsetjmp/siglongjmp
 *   sp_retsafe threads N   N threads created and joined one at a time; then
 *                          prints how much the address space grew over the
 *                          last N/2 of them, in KiB ("grew K")
 *   sp_retsafe cold N      N calls of mid (gcc splits its unlikely branch
 *                          into mid.cold), every 10th takes the cold part
 *   sp_retsafe caller N    N times: dlopen libsp_dl_dep.so by bare name (found
 *                          through this program's RUNPATH, $ORIGIN: glibc
 *                          searches its caller's) and dlclose it; and
 *                          libsp_retsafe_lib.so's dlsym(RTLD_NEXT) of its own
 *                          symbol, which must find none
 *   sp_retsafe errno N     N times: errno set, then rs_errno_read reads it;
 *                          rs_errno_set sets it, then the caller reads it
 *                          (a probe's handler must leave it as it was)
 *   sp_retsafe spawn N     N times each: posix_spawn /bin/true (with
 *                          POSIX_SPAWN_RESETIDS), posix_spawnp
 *                          true, system, popen (all posix_spawn in glibc):
 *                          prints how many children exited 0
 *   sp_retsafe forkwalk N  3 threads call rs_leaf without pause while the
 *                          main thread forks N times; each child calls
 *                          rs_leaf 10 times and exits: prints how many
 *                          children exited, and how many hung (killed after
 *                          3 s: a lock another thread held at the fork)
 *
 * Prints what it did and "name calls" for its own functions.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROBED __attribute__((noinline, noclone, used, visibility("default")))

static volatile long sink;
static long leaf_calls, mid_calls, cold_calls;

PROBED long rs_leaf(long i)
{
	leaf_calls++;
	sink += i;
	return i * 2;
}

static int do_vfork(long n)
{
	volatile long ok = 0;
	for (volatile long i = 0; i < n; i++) {
		pid_t pid = vfork();
		if (pid == 0)
			_exit(7);
		int st;
		if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7)
			ok++;
	}
	printf("vfork %ld of %ld\n", (long)ok, n);
	return ok == n ? 0 : 1;
}

static jmp_buf jb;
static sigjmp_buf sjb;

static int do_setjmp(long n)
{
	volatile long jumps = 0, sjumps = 0;
	for (volatile long i = 0; i < n; i++) {
		if (setjmp(jb) == 0) {
			sink += rs_leaf(i);
			longjmp(jb, 1);
		}
		jumps++;
	}
	for (volatile long i = 0; i < n; i++) {
		if (sigsetjmp(sjb, 1) == 0) {
			sink += rs_leaf(i);
			siglongjmp(sjb, 1);
		}
		sjumps++;
	}
	printf("longjmp %ld siglongjmp %ld\nrs_leaf calls %ld\n", (long)jumps, (long)sjumps, leaf_calls);
	return 0;
}

static void *thread_main(void *arg)
{
	sink += rs_leaf((long)arg);
	return arg;
}

static long vm_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmSize:", 7) == 0)
			kib = atol(line + 7);
	if (f)
		fclose(f);
	return kib;
}

static int do_threads(long n)
{
	long joined = 0, half = 0;
	for (long i = 0; i < n; i++) {
		if (i == n / 2)
			half = vm_kib();
		pthread_t t;
		void *ret;
		if (pthread_create(&t, NULL, thread_main, (void *)i) == 0 && pthread_join(t, &ret) == 0 &&
		    ret == (void *)i)
			joined++;
	}
	long grew = vm_kib() - half;
	printf("joined %ld of %ld\nrs_leaf calls %ld\n", joined, n, leaf_calls);
	fprintf(stderr, "grew %ld\n", grew);   /* not compared: varies */
	return joined == n ? 0 : 1;
}

PROBED __attribute__((cold)) void rs_cold_work(long i)
{
	cold_calls++;
	sink -= i;
}

/* gcc puts the unlikely branch in mid.cold (-freorder-blocks-and-partition,
 * on at -O2): entered by a jump with mid's frame, not by a call */
PROBED long mid(long i)
{
	mid_calls++;
	if (__builtin_expect(i % 10 == 0, 0)) {
		rs_cold_work(i);
		sink += i * 3;
		rs_cold_work(i + 1);
	}
	return i + 1;
}

static int do_cold(long n)
{
	long sum = 0;
	for (long i = 0; i < n; i++)
		sum += mid(i);
	printf("sum %ld\nmid calls %ld\nrs_cold_work calls %ld\n", sum, mid_calls, cold_calls);
	return 0;
}

PROBED int rs_errno_read(void)
{
	return errno;
}

PROBED void rs_errno_set(int e)
{
	errno = e;
}

static int do_errno(long n)
{
	long read_ok = 0, set_ok = 0;
	for (long i = 0; i < n; i++) {
		errno = ENOENT;
		read_ok += rs_errno_read() == ENOENT;
		rs_errno_set(EXDEV);
		set_ok += errno == EXDEV;
	}
	printf("errno read %ld of %ld, after a return %ld of %ld\n", read_ok, n, set_ok, n);
	return read_ok == n && set_ok == n ? 0 : 1;
}

extern char **environ;

static int do_spawn(long n)
{
	long ok = 0;
	for (long i = 0; i < n; i++) {
		char *av[] = { "true", NULL };
		pid_t pid;
		int st = -1;
		posix_spawnattr_t resetids;   /* as GNU make spawns: the child calls getuid, getgid */
		posix_spawnattr_init(&resetids);
		posix_spawnattr_setflags(&resetids, POSIX_SPAWN_RESETIDS);
		if (posix_spawn(&pid, "/bin/true", NULL, &resetids, av, environ) == 0 && waitpid(pid, &st, 0) == pid)
			ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
		posix_spawnattr_destroy(&resetids);
		st = -1;
		if (posix_spawnp(&pid, "true", NULL, NULL, av, environ) == 0 && waitpid(pid, &st, 0) == pid)
			ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
		ok += system("exit 0") == 0;
		FILE *f = popen("exit 0", "r");
		ok += f && pclose(f) == 0;
	}
	printf("spawned %ld of %ld\n", ok, 4 * n);
	return ok == 4 * n ? 0 : 1;
}

static volatile int stop_threads;

static void *leaf_loop(void *arg)
{
	long i = (long)arg;
	while (!stop_threads)
		sink += rs_leaf(i++);
	return NULL;
}

static int do_forkwalk(long n)
{
	pthread_t t[3];
	for (long i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, leaf_loop, (void *)i);
	long exited = 0, hung = 0;
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			for (long k = 0; k < 10; k++)
				sink += rs_leaf(k);
			_exit(0);
		}
		int st = 0;
		long waited_ms = 0;
		while (pid > 0 && waitpid(pid, &st, WNOHANG) == 0) {
			if (++waited_ms > 3000) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				hung++;
				break;
			}
			usleep(1000);
		}
		if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			exited++;
	}
	stop_threads = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("forks %ld exited %ld hung %ld\n", n, exited, hung);
	return exited == n ? 0 : 1;
}

void *rsl_next_self(void);

static int do_caller(long n)
{
	long opened = 0, none = 0;
	for (long i = 0; i < n; i++) {
		void *h = dlopen("libsp_dl_dep.so", RTLD_NOW | RTLD_LOCAL);
		if (h) {
			opened++;
			dlclose(h);
		} else if (i == 0) {
			printf("dlopen: %s\n", dlerror());
		}
		if (!rsl_next_self())
			none++;
	}
	printf("dlopen by RUNPATH %ld of %ld\nRTLD_NEXT found none %ld of %ld\n", opened, n, none, n);
	return opened == n && none == n ? 0 : 1;
}

static const struct {
	const char *name;
	int (*run)(long n);
} modes[] = {
	{ "vfork", do_vfork }, { "setjmp", do_setjmp }, { "threads", do_threads }, { "cold", do_cold },
	{ "caller", do_caller }, { "errno", do_errno }, { "spawn", do_spawn }, { "forkwalk", do_forkwalk },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s vfork|setjmp|threads|cold|caller|errno|spawn|forkwalk [N]\n", argv[0]);
		return 2;
	}
	long n = argc > 2 ? atol(argv[2]) : 100;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(argv[1], modes[i].name) == 0)
			return modes[i].run(n);
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}
