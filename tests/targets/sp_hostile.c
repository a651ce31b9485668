/* sp_hostile — a program that does what hostile (or merely unusual)
 * applications do to a runtime living in their process: signals, masks,
 * small stacks, seccomp, MDWE.  Driven by tests/e2e/e2e_hostile.py.
 *
 * Linked against libselfprobe.so (like sp_linked): with UPROBE_SPEC set, the
 * library's constructor attaches before main, exactly as the preload does;
 * the seccomp and MDWE cases attach from main through the C API instead,
 * after the restriction is in place.
 *
 *   sp_hostile sigtrap N        own SIGTRAP handler (sigaction, then signal)
 *                               installed after attach; raise(SIGTRAP) and int3
 *   sp_hostile waitmask N       N waits (sigsuspend, ppoll, pselect, epoll_pwait,
 *                               epoll_pwait2) with every signal but SIGUSR1
 *                               blocked, each letting in a pending SIGUSR1
 *                               whose handler calls h_sig; then probed calls
 *                               under sigblock(~0), sigsetmask(~0),
 *                               sighold(SIGTRAP), sigset(SIGTRAP, SIG_HOLD),
 *                               and SIGTRAP's action set by sigset and sigignore
 *   sp_hostile blocked N        every signal blocked (sigprocmask, and
 *                               pthread_sigmask in a thread), probed calls
 *   sp_hostile altstack N SIZE  SIGUSR1 handler (sa_mask: all) on a SIZE-byte
 *                               sigaltstack (0: 2*MINSIGSTKSZ), guard page below,
 *                               calling probed functions
 *   sp_hostile threads N        8 threads on 64 KiB stacks call h_thr N times;
 *                               prints the deepest stack use seen
 *   sp_hostile storm N SIGNALS  a thread sends SIGNALS SIGUSR1 to a worker
 *                               calling h_work N times; the handler calls h_sig
 *   sp_hostile seccomp WHAT MODE N   seccomp makes WHAT fail with EPERM
 *                               (mprotect, membarrier, pwrite, pwrite+mprotect),
 *                               then selfprobe_attach(uprobe:h_work) in MODE
 *   sp_hostile seccomp-exec WHAT -- CMD...   the same filter, then exec CMD
 *                               (the preload's constructor attaches under it)
 *   sp_hostile mdwe MODE N [WHAT]  prctl(PR_SET_MDWE, REFUSE_EXEC_GAIN), then attach
 *                               (WHAT: a seccomp case installed first)
 *   sp_hostile wx MODE N [WHAT] W^X: /proc/self/maps scanned by a thread during
 *                               attach, from a probe handler, and after; the
 *                               trampoline page of a jmp probe is r-x
 *   sp_hostile wxrace MODE ROUNDS [WHAT]  probes attached and detached ROUNDS
 *                               times while threads hammer the probed functions
 *                               (r_work, memchr, memcpy, a libc function on
 *                               mprotect's page) and others are patched on
 *                               their pages; every call must hit exactly as
 *                               its probe's state allows; W+X watched
 *   sp_hostile rawclone N       a raw clone(CLONE_VM) thread and a raw
 *                               clone(CLONE_VM) process, both on the main
 *                               thread's TLS, call h_thr N times each while
 *                               the main thread does too
 *   sp_hostile plain N          h_work N times (for seccomp-exec)
 *
 * Output: "key value" lines on stdout (call counts the program made, and
 * facts: app_traps, handler, attach, wx …), deterministic for a given case
 * except lines starting with "info".  A self-check failure is printed on
 * stderr as "sp_hostile: …" and the exit status is 1.
 */
#define _GNU_SOURCE   /* ppoll; sighold, sigset, sigignore (System V's) */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfprobe.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

static _Atomic unsigned long n_work, n_sig, n_thr;
static int failed;

#define FAIL(...) do { fprintf(stderr, "sp_hostile: " __VA_ARGS__); fputc('\n', stderr); \
	failed = 1; } while (0)

/* The probed functions: real calls, real frames. */
__attribute__((noinline, used)) unsigned long h_work(unsigned long x)
{
	__asm__ volatile("" ::: "memory");
	atomic_fetch_add(&n_work, 1);
	return x * 2 + 1;
}

__attribute__((noinline, used)) unsigned long h_sig(unsigned long x)
{
	__asm__ volatile("" ::: "memory");
	atomic_fetch_add(&n_sig, 1);
	return x + 3;
}

__attribute__((noinline, used)) unsigned long h_thr(unsigned long x)
{
	__asm__ volatile("" ::: "memory");
	atomic_fetch_add(&n_thr, 1);
	return x ^ 5;
}

static void work(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		if (h_work(i) != i * 2 + 1)
			FAIL("h_work(%lu) returned a wrong value", i);
}

static void print_counts(void)
{
	printf("h_work %lu\nh_sig %lu\nh_thr %lu\n", atomic_load(&n_work), atomic_load(&n_sig),
	       atomic_load(&n_thr));
}

/* ---- sigtrap ----------------------------------------------------------- */

static _Atomic int app_traps;

static void on_app_trap(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	atomic_fetch_add(&app_traps, 1);
	h_work(1000);   /* a probed call from inside the application's handler */
}

static void on_app_trap_plain(int sig)
{
	on_app_trap(sig, NULL, NULL);
}

static int cmd_sigtrap(unsigned long n)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_app_trap;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);   /* hostile: block everything in the handler */
	if (sigaction(SIGTRAP, &sa, NULL) != 0)
		FAIL("sigaction(SIGTRAP): %s", strerror(errno));
	work(n);
	for (int i = 0; i < 10; i++)
		raise(SIGTRAP);
	work(n);
	for (int i = 0; i < 10; i++)
		__asm__ volatile("int3" ::: "memory");   /* a trap that is not the runtime's */
	if (signal(SIGTRAP, on_app_trap_plain) == SIG_ERR)
		FAIL("signal(SIGTRAP): %s", strerror(errno));
	for (int i = 0; i < 5; i++) {
		raise(SIGTRAP);
		__asm__ volatile("int3" ::: "memory");
	}
	work(n);
	struct sigaction cur;
	if (sigaction(SIGTRAP, NULL, &cur) != 0 || cur.sa_handler != on_app_trap_plain)
		FAIL("sigaction(SIGTRAP) does not return the application's own handler");
	printf("app_traps %d\n", atomic_load(&app_traps));
	print_counts();
	return failed;
}

/* ---- waitmask ---------------------------------------------------------- *
 * libc's functions that set a mask without sigprocmask: a handler run
 * during a wait starts from the wait's mask, every signal but SIGUSR1
 * blocked, SIGTRAP among them, and its probed call traps there. */

static _Atomic unsigned long usr1_runs;

static void on_usr1_wait(int sig)
{
	(void)sig;
	h_sig(atomic_fetch_add(&usr1_runs, 1));
}

static int wait_once(unsigned long i, const sigset_t *mask, int ep)
{
	struct timespec ts = { 5, 0 };
	struct epoll_event ev;
	switch (i % 5) {
	case 0: return sigsuspend(mask);
	case 1: return ppoll(NULL, 0, &ts, mask);
	case 2: return pselect(0, NULL, NULL, NULL, &ts, mask);
	case 3: return epoll_pwait(ep, &ev, 1, 5000, mask);
	default: return epoll_pwait2(ep, &ev, 1, &ts, mask);
	}
}

static int cmd_waitmask(unsigned long n)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1_wait;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		FAIL("sigaction(SIGUSR1): %s", strerror(errno));
	sigset_t usr1, all_but;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	sigfillset(&all_but);
	sigdelset(&all_but, SIGUSR1);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (unsigned long i = 0; i < n; i++) {
		raise(SIGUSR1);   /* pending until the wait's mask lets it in */
		int rc = wait_once(i, &all_but, ep);
		if (rc != -1 || errno != EINTR)
			FAIL("wait %lu (%lu): %d (%s), want EINTR", i, i % 5, rc, strerror(errno));
	}
	close(ep);
	/* BSD masks: everything, SIGTRAP included */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* what old programs call */
	int old = sigblock(~0);
	work(n);
	sigsetmask(~0);
	work(n);
	sigsetmask(old);
	/* System V's */
	sighold(SIGTRAP);
	work(n);
	sigrelse(SIGTRAP);
	sigset(SIGTRAP, SIG_HOLD);
	work(n);
	sigset(SIGTRAP, SIG_DFL);
	/* SIGTRAP's action, the application's: its handler sees its raise */
	sigset(SIGTRAP, on_app_trap_plain);
	raise(SIGTRAP);
	work(n);
	sigignore(SIGTRAP);
#pragma GCC diagnostic pop
	raise(SIGTRAP);   /* ignored */
	work(n);
	printf("usr1_runs %lu\napp_traps %d\n", atomic_load(&usr1_runs), atomic_load(&app_traps));
	print_counts();
	return failed;
}

/* ---- blocked ----------------------------------------------------------- */

static void *blocked_thread(void *arg)
{
	sigset_t all;
	sigfillset(&all);
	int rc = pthread_sigmask(SIG_SETMASK, &all, NULL);
	if (rc)
		FAIL("pthread_sigmask: %s", strerror(rc));
	for (unsigned long i = 0; i < (unsigned long)(uintptr_t)arg; i++)
		h_thr(i);
	return NULL;
}

static int cmd_blocked(unsigned long n)
{
	sigset_t all;
	sigfillset(&all);
	if (sigprocmask(SIG_BLOCK, &all, NULL) != 0)
		FAIL("sigprocmask: %s", strerror(errno));
	work(n);
	pthread_t t;
	pthread_create(&t, NULL, blocked_thread, (void *)(uintptr_t)n);
	pthread_join(t, NULL);
	/* and SIG_SETMASK with the full set, from an empty mask */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	sigprocmask(SIG_SETMASK, &all, NULL);
	work(n);
	print_counts();
	return failed;
}

/* ---- altstack ---------------------------------------------------------- */

static char *alt_lo, *alt_hi;
static _Atomic int alt_runs, alt_off_stack;

static void on_usr1_alt(int sig)
{
	(void)sig;
	char here;
	if (&here < alt_lo || &here >= alt_hi)
		atomic_fetch_add(&alt_off_stack, 1);
	atomic_fetch_add(&alt_runs, 1);
	for (int i = 0; i < 10; i++)
		h_sig(i);
}

static int cmd_altstack(unsigned long n, size_t size)
{
	long pg = sysconf(_SC_PAGESIZE);
	if (size == 0)
		size = 2 * MINSIGSTKSZ;
	size_t span = (size + pg - 1) / pg * pg;
	/* a guard page below, and the stack at the top of its pages so an
	 * overflow faults instead of corrupting */
	char *m = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || mprotect(m, pg, PROT_NONE) != 0) {
		FAIL("mmap: %s", strerror(errno));
		return 1;
	}
	alt_hi = m + pg + span;
	alt_lo = alt_hi - size;
	stack_t ss = { .ss_sp = alt_lo, .ss_size = size, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0)
		FAIL("sigaltstack(%zu): %s", size, strerror(errno));
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1_alt;
	sa.sa_flags = SA_ONSTACK;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		FAIL("sigaction(SIGUSR1): %s", strerror(errno));
	for (unsigned long i = 0; i < n; i++) {
		raise(SIGUSR1);
		h_work(i);
	}
	if (alt_off_stack)
		FAIL("the SIGUSR1 handler ran off the alternate stack %d times", alt_off_stack);
	printf("alt_runs %d\n", atomic_load(&alt_runs));
	printf("info altstack %zu bytes (MINSIGSTKSZ %d, kernel _SC_MINSIGSTKSZ %ld)\n", size,
	       (int)MINSIGSTKSZ, sysconf(_SC_MINSIGSTKSZ));
	print_counts();
	return failed;
}

/* ---- threads on 64 KiB stacks ------------------------------------------ */

#define SMALL_STACK (64 * 1024)
#define N_THREADS 8

struct thr {
	pthread_t t;
	unsigned long n;
	char *stack;
};

static void *small_thread(void *arg)
{
	struct thr *t = arg;
	for (unsigned long i = 0; i < t->n; i++)
		if (h_thr(i) != (i ^ 5))
			FAIL("h_thr(%lu) returned a wrong value", i);
	return NULL;
}

static int cmd_threads(unsigned long n)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct thr t[N_THREADS];
	size_t deepest = 0;
	for (int i = 0; i < N_THREADS; i++) {
		/* our own stacks, painted, with a guard page below: the deepest
		 * byte touched is the stack the thread needed */
		char *m = mmap(NULL, SMALL_STACK + pg, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED || mprotect(m, pg, PROT_NONE) != 0) {
			FAIL("mmap: %s", strerror(errno));
			return 1;
		}
		t[i].stack = m + pg;
		memset(t[i].stack, 0xa5, SMALL_STACK);
		t[i].n = n;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstack(&a, t[i].stack, SMALL_STACK);
		int rc = pthread_create(&t[i].t, &a, small_thread, &t[i]);
		pthread_attr_destroy(&a);
		if (rc) {
			FAIL("pthread_create: %s", strerror(rc));
			return 1;
		}
	}
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(t[i].t, NULL);
		size_t untouched = 0;
		while (untouched < SMALL_STACK && (unsigned char)t[i].stack[untouched] == 0xa5)
			untouched++;
		if (SMALL_STACK - untouched > deepest)
			deepest = SMALL_STACK - untouched;
	}
	/* glibc puts the thread descriptor and TLS at the top of a user stack:
	 * that is in the figure too, the same with and without probes */
	printf("info stack_used %zu\n", deepest);
	print_counts();
	return failed;
}

/* ---- signal storm ------------------------------------------------------ */

static _Atomic int storm_runs, storm_done;
static pthread_t storm_target;

static void on_usr1_storm(int sig)
{
	(void)sig;
	atomic_fetch_add(&storm_runs, 1);
	h_sig(1);
}

static void *storm_worker(void *arg)
{
	work((unsigned long)(uintptr_t)arg);
	atomic_store(&storm_done, 1);
	return NULL;
}

static int cmd_storm(unsigned long n, unsigned long signals)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1_storm;
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		FAIL("sigaction(SIGUSR1): %s", strerror(errno));
	/* the worker never blocks SIGUSR1; main (the sender) does */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_create(&storm_target, NULL, storm_worker, (void *)(uintptr_t)n);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	unsigned long sent = 0;
	while (sent < signals && !atomic_load(&storm_done)) {
		if (pthread_kill(storm_target, SIGUSR1) == 0)
			sent++;
		if (sent % 64 == 0)
			sched_yield();
	}
	pthread_join(storm_target, NULL);
	/* pending signals coalesce: the handler ran at most SENT times, and
	 * every run called h_sig once */
	if ((unsigned long)storm_runs > sent)
		FAIL("handler ran %d times for %lu signals", storm_runs, sent);
	if (storm_runs == 0)
		FAIL("no signal arrived while the worker ran (%lu sent)", sent);
	printf("storm_runs %d\ninfo sent %lu\n", atomic_load(&storm_runs), sent);
	print_counts();
	return failed;
}

/* ---- seccomp ----------------------------------------------------------- */

/* A filter: SYSCALLS[i] fails with EPERM (when EXEC_ONLY, mprotect only when
 * the protection asks for PROT_EXEC, so that ld.so's RELRO still works). */
static int install_seccomp(const char *what)
{
	int nrs[2], n = 0;
	int exec_only = 0;
	if (strcmp(what, "mprotect") == 0 || strcmp(what, "mprotect-exec") == 0) {
		nrs[n++] = __NR_mprotect;
		exec_only = strcmp(what, "mprotect-exec") == 0;
	} else if (strcmp(what, "membarrier") == 0) {
		nrs[n++] = __NR_membarrier;
	} else if (strcmp(what, "pwrite") == 0) {
		nrs[n++] = __NR_pwrite64;
	} else if (strcmp(what, "pwrite+mprotect") == 0) {
		nrs[n++] = __NR_pwrite64;
		nrs[n++] = __NR_mprotect;
	} else {
		fprintf(stderr, "sp_hostile: unknown seccomp case %s\n", what);
		return -1;
	}
	struct sock_filter f[16];
	int k = 0;
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (int i = 0; i < n; i++) {
		if (exec_only) {
			/* nr == mprotect && (prot & PROT_EXEC) → EPERM */
			f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[i], 0, 4);
			f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
							      offsetof(struct seccomp_data, args[2]));
			f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 1, 0);
			f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		} else {
			f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[i], 0, 1);
		}
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = (unsigned short)k, .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		fprintf(stderr, "sp_hostile: seccomp: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static _Atomic unsigned long handler_calls;

static int on_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add(&handler_calls, 1);
	return 0;
}

/* Attach a handler to h_work in MODE, call it N times, print what happened. */
static int attach_and_run(const char *mode, unsigned long n)
{
	if (selfprobe_set_mode(mode) != 0)
		FAIL("selfprobe_set_mode(%s) failed", mode);
	selfprobe_set_log_level("error");   /* the test reads why an attach failed */
	errno = 0;
	struct selfprobe_link *l = selfprobe_attach("uprobe:h_work", on_hit, NULL);
	int err = errno;
	if (l)
		printf("attach ok\n");
	else
		printf("attach failed\ninfo attach errno %d (%s)\n", err, strerror(err));
	work(n);
	printf("handler %lu\n", atomic_load(&handler_calls));
	if (l) {
		int rc = selfprobe_detach(l);
		if (rc != 0)
			printf("info detach %d\n", rc);
		work(n);   /* detached (or not): the program still runs */
		printf("handler_after_detach %lu\n", atomic_load(&handler_calls));
	}
	print_counts();
	return failed;
}

/* ---- MDWE -------------------------------------------------------------- */

static int cmd_mdwe(const char *mode, unsigned long n)
{
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) {
		printf("skip PR_SET_MDWE: %s\n", strerror(errno));
		return 0;
	}
	/* the restriction is real: gaining exec must fail now */
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED && mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0)
		FAIL("PR_SET_MDWE is set but mprotect still gains PROT_EXEC");
	return attach_and_run(mode, n);
}

/* ---- W^X ----------------------------------------------------------------- */

static _Atomic int wx_seen;
static char wx_line[256];
static _Atomic int wx_stop;

/* Scan /proc/self/maps for a mapping that is writable and executable.
 * Plain system calls and a static buffer: callable from a probe handler in
 * signal context.  Returns the number found; the first line is kept. */
static int wx_scan(void)
{
	static char buf[1 << 17];
	static _Atomic int busy;
	if (atomic_exchange(&busy, 1))
		return 0;
	int found = 0;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		size_t len = 0;
		ssize_t r;
		while (len < sizeof(buf) - 1 &&
		       (r = syscall(SYS_read, fd, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)r;
		buf[len] = '\0';
		syscall(SYS_close, fd);
		for (char *line = buf; *line;) {
			char *end = strchr(line, '\n');
			char *perm = strchr(line, ' ');
			if (perm && (!end || perm < end) && perm[2] == 'w' && perm[3] == 'x') {
				if (!found && !atomic_load(&wx_seen)) {
					size_t l = end ? (size_t)(end - line) : strlen(line);
					if (l >= sizeof(wx_line))
						l = sizeof(wx_line) - 1;
					memcpy(wx_line, line, l);
					wx_line[l] = '\0';
				}
				found++;
			}
			if (!end)
				break;
			line = end + 1;
		}
	}
	if (found)
		atomic_fetch_add(&wx_seen, found);
	atomic_store(&busy, 0);
	return found;
}

static void *wx_scanner(void *arg)
{
	(void)arg;
	while (!atomic_load(&wx_stop))
		wx_scan();
	return NULL;
}

static _Atomic int wx_in_handler;

static int on_hit_scan(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	if (wx_scan())
		atomic_fetch_add(&wx_in_handler, 1);
	atomic_fetch_add(&handler_calls, 1);
	return 0;
}

/* The permissions of the mapping holding ADDR ("r-xp"), or "none". */
static void perms_of(uintptr_t addr, char out[5])
{
	strcpy(out, "none");
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && addr >= lo && addr < hi) {
			memcpy(out, p, 5);
			break;
		}
	}
	fclose(f);
}

static int cmd_wx(const char *mode, unsigned long n)
{
	pthread_t scanner;
	if (wx_scan())
		printf("info W+X before attach: %s\n", wx_line);
	atomic_store(&wx_seen, 0);
	pthread_create(&scanner, NULL, wx_scanner, NULL);
	if (selfprobe_set_mode(mode) != 0)
		FAIL("selfprobe_set_mode(%s) failed", mode);
	/* many patches while the scanner watches */
	int spec_rc = selfprobe_attach_spec("uprobe:libc:str*;uprobe:libc:mem*;uprobe:h_thr");
	struct selfprobe_link *l = selfprobe_attach("uprobe:h_work", on_hit_scan, NULL);
	atomic_store(&wx_stop, 1);
	pthread_join(scanner, NULL);
	printf("attach %s\n", l ? "ok" : "failed");
	printf("info attach_spec %d\n", spec_rc);
	printf("wx_during_attach %d\n", atomic_load(&wx_seen));
	if (wx_seen)
		printf("info W+X during attach: %s\n", wx_line);
	atomic_store(&wx_seen, 0);
	work(n);
	for (unsigned long i = 0; i < n; i++)
		h_thr(i);
	printf("wx_in_handler %d\n", atomic_load(&wx_in_handler));
	int after = wx_scan();
	printf("wx_after_attach %d\n", after);
	if (after)
		printf("info W+X after attach: %s\n", wx_line);
	/* a jmp probe's first byte is e9: its trampoline's page must be r-x */
	const unsigned char *site = (const unsigned char *)(uintptr_t)h_work;
	if (site[0] == 0xe9) {
		int32_t rel;
		memcpy(&rel, site + 1, 4);
		uintptr_t tramp = (uintptr_t)site + 5 + rel;
		char p[5];
		perms_of(tramp, p);
		printf("tramp_perms %s\n", p);
	} else {
		printf("info site byte %02x (not a jmp)\n", site[0]);
	}
	char p[5];
	perms_of((uintptr_t)h_work, p);
	printf("text_perms %s\n", p);
	printf("handler %lu\n", atomic_load(&handler_calls));
	print_counts();
	return failed;
}

/* ---- W^X under a patching race -------------------------------------------
 *
 * Hammer threads call the probed functions in a loop while the main thread
 * attaches and detaches probes on them and on their pages.  Each thread
 * knows, per call, whether the handler ran (a thread-local count): while
 * probes attach a function's calls go 0…0 1…1, while attached every call
 * hits once, while detaching 1…1 0…0.  Anything else (a hit lost or doubled
 * while a page was being written) is a violation.  A watcher thread scans
 * /proc/self/maps all along for a writable and executable mapping, and
 * notes when it catches one of the hammered pages without execute
 * permission (the patcher's write window).  The application's own SIGSEGV
 * handler must never see one of those windows. */

/* two functions on one page of their own */
__attribute__((noinline, used, aligned(4096), section(".text.sp_race")))
unsigned long r_work(unsigned long x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

__attribute__((noinline, used, section(".text.sp_race")))
unsigned long r_mate(unsigned long x)
{
	__asm__ volatile("" ::: "memory");
	return x + 7;
}

enum { F_WORK, F_MEMCHR, F_MEMCPY, F_NEIGH, N_F };
enum { PH_ATTACH, PH_ON, PH_DETACH, PH_STOP };
#define N_HAMMER 2

static const char *const f_name[N_F] = { "r_work", "memchr", "memcpy", NULL };
static __thread unsigned long tl_hits[N_F];
static _Atomic unsigned epoch;             /* phase = epoch & 3 */
static _Atomic unsigned acked[N_HAMMER];
static _Atomic unsigned long violations, checked, race_calls, race_handler_scans;
static _Atomic int race_wx_in_handler, windows_seen, app_segv;
static char violation_text[256];
/* an IFUNC string function (not strlen: posix_spawnp's child calls it
 * after its handlers are reset, so the int3 path refuses it) */
static void *(*volatile memchr_fn)(const void *, int, size_t) = memchr;
static void *(*volatile memcpy_fn)(void *, const void *, size_t) = memcpy;
static uintptr_t watch_page[N_F];

/* a libc function on mprotect's page, called harmlessly */
struct neigh {
	const char *name;
	int (*call)(void *fn, void *page, size_t len);
};
static int call_mincore(void *fn, void *page, size_t len)
{
	unsigned char vec[1];
	return ((int (*)(void *, size_t, unsigned char *))fn)(page, len, vec);
}
/* (not madvise: glibc calls it with every signal blocked when a thread
 * exits, so the int3 path refuses it) */
static int call_munlock(void *fn, void *page, size_t len)
{
	return ((int (*)(void *, size_t))fn)(page, len);
}
static int call_msync(void *fn, void *page, size_t len)
{
	return ((int (*)(void *, size_t, int))fn)(page, len, MS_ASYNC);
}
static const struct neigh neighs[] = {
	{ "mincore", call_mincore }, { "munlock", call_munlock }, { "msync", call_msync },
};
static const struct neigh *neigh;
static void *neigh_fn;
static void *scratch;

static int on_race_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	int f = (int)(intptr_t)data;
	tl_hits[f]++;
	if (f == F_WORK && atomic_fetch_add(&race_handler_scans, 1) % 512 == 0 && wx_scan())
		atomic_fetch_add(&race_wx_in_handler, 1);
	return 0;
}

static int on_other_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	return 0;
}

static _Atomic unsigned long violations_by[N_F][4];

static void violation(int f, unsigned e, unsigned long d, unsigned long last)
{
	atomic_fetch_add(&violations_by[f][e & 3], 1);
	if (atomic_fetch_add(&violations, 1) == 0)
		snprintf(violation_text, sizeof(violation_text),
			 "%s: %lu hits in one call after %lu (round %u, phase %s)",
			 f_name[f] ? f_name[f] : neigh->name, d, last, e / 4 - 1,
			 (e & 3) == PH_ATTACH ? "attaching" : (e & 3) == PH_ON ? "attached" : "detaching");
}

/* One call of each function; D[f] how many times its handler ran. */
static void race_calls_once(unsigned long i, unsigned long d[N_F])
{
	static const char text[] = "the quick brown fox";
	char dst[64];
	unsigned long before[N_F];
	for (int f = 0; f < N_F; f++)
		before[f] = tl_hits[f];
	if (r_work(i) != i * 3 + 1)
		FAIL("r_work returned a wrong value");
	if (memchr_fn(text + i % 8, 'x', sizeof(text) - i % 8) != text + sizeof(text) - 2)
		FAIL("memchr returned a wrong value");
	if (memcpy_fn(dst, text, sizeof(text)) != dst || memcmp(dst, text, sizeof(text)) != 0)
		FAIL("memcpy copied wrong bytes");
	if (neigh->call(neigh_fn, scratch, 4096) != 0)
		FAIL("%s failed: %s", neigh->name, strerror(errno));
	for (int f = 0; f < N_F; f++)
		d[f] = tl_hits[f] - before[f];
}

static void *hammer(void *arg)
{
	int me = (int)(intptr_t)arg;
	unsigned long last[N_F] = { 0 }, i = 0, mine = 0;
	unsigned seen = ~0u;
	for (;; i++) {
		unsigned e = atomic_load(&epoch);
		unsigned phase = e & 3;
		if (e != seen) {   /* a new phase: the previous call belonged to the old one */
			seen = e;
			for (int f = 0; f < N_F; f++)
				last[f] = phase == PH_DETACH;
			atomic_store(&acked[me], e);
		}
		if (phase == PH_STOP)
			break;
		unsigned long d[N_F];
		race_calls_once(i, d);
		mine++;
		for (int f = 0; f < N_F; f++) {
			bool ok = d[f] <= 1 && (phase == PH_ATTACH ? d[f] >= last[f]
						: phase == PH_ON ? d[f] == 1 : d[f] <= last[f]);
			if (!ok)
				violation(f, e, d[f], last[f]);
			last[f] = d[f];
			if (phase == PH_ON)
				atomic_fetch_add(&checked, 1);
		}
	}
	atomic_fetch_add(&race_calls, mine);
	return NULL;
}

static void *race_watcher(void *arg)
{
	(void)arg;
	static char buf[1 << 17];
	while (!atomic_load(&wx_stop)) {
		wx_scan();
		int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		size_t len = 0;
		ssize_t r;
		while (len < sizeof(buf) - 1 && (r = syscall(SYS_read, fd, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)r;
		buf[len] = '\0';
		syscall(SYS_close, fd);
		for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
			unsigned long lo, hi;
			char p[5];
			if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) != 3 || p[2] == 'x')
				continue;
			for (int f = 0; f < N_F; f++)
				if (watch_page[f] >= lo && watch_page[f] < hi)
					atomic_fetch_add(&windows_seen, 1);
		}
	}
	return NULL;
}

static sigjmp_buf nx_jump;
static _Atomic int nx_expected;
static void *nx_page;

static void on_app_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (atomic_load(&nx_expected) && si->si_addr == nx_page)
		siglongjmp(nx_jump, 1);
	atomic_fetch_add(&app_segv, 1);
	signal(SIGSEGV, SIG_DFL);   /* not the test's: crash where it happened */
}

/* Attach every probe of SPECS (handler FN, data i), or say why not. */
static int attach_all(const char *const *specs, int n, selfprobe_handler_fn fn,
		      struct selfprobe_link **out)
{
	int ok = 0;
	for (int i = 0; i < n; i++) {
		out[i] = selfprobe_attach(specs[i], fn, (void *)(intptr_t)i);
		if (out[i])
			ok++;
		else
			printf("info attach %s failed: %s\n", specs[i], strerror(errno));
	}
	return ok;
}

static void detach_all(struct selfprobe_link **links, int n)
{
	for (int i = 0; i < n; i++)
		if (links[i] && selfprobe_detach(links[i]) != 0)
			FAIL("detach failed");
}

static void set_phase(unsigned phase)
{
	unsigned e = (atomic_load(&epoch) & ~3u) + 4 + phase;
	atomic_store(&epoch, e);
	for (int t = 0; t < N_HAMMER; t++)   /* every thread is in the new phase */
		while (atomic_load(&acked[t]) != e)
			sched_yield();
}

static int cmd_wxrace(const char *mode, unsigned long rounds)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t mprot_page = (uintptr_t)dlsym(RTLD_DEFAULT, "mprotect") & ~(uintptr_t)(pg - 1);
	for (size_t i = 0; i < sizeof(neighs) / sizeof(neighs[0]) && !neigh; i++) {
		void *fn = dlsym(RTLD_DEFAULT, neighs[i].name);
		if (fn && ((uintptr_t)fn & ~(uintptr_t)(pg - 1)) == mprot_page) {
			neigh = &neighs[i];
			neigh_fn = fn;
		}
	}
	if (!neigh) {
		printf("skip no libc function of ours shares mprotect's page\n");
		return 0;
	}
	if ((((uintptr_t)r_work ^ (uintptr_t)r_mate) & ~(uintptr_t)(pg - 1)) != 0)
		FAIL("r_work and r_mate are not on one page");
	scratch = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	nx_page = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch == MAP_FAILED || nx_page == MAP_FAILED) {
		FAIL("mmap: %s", strerror(errno));
		return 1;
	}
	watch_page[F_WORK] = (uintptr_t)r_work;
	watch_page[F_MEMCHR] = (uintptr_t)memchr_fn;
	watch_page[F_MEMCPY] = (uintptr_t)memcpy_fn;
	watch_page[F_NEIGH] = (uintptr_t)neigh_fn;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_app_segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	if (sigaction(SIGSEGV, &sa, NULL) != 0)
		FAIL("sigaction(SIGSEGV): %s", strerror(errno));
	if (selfprobe_set_mode(mode) != 0)
		FAIL("selfprobe_set_mode(%s) failed", mode);
	selfprobe_set_log_level("info");   /* the test reads how code was written */

	char neigh_spec[64];
	snprintf(neigh_spec, sizeof(neigh_spec), "uprobe:libc:%s", neigh->name);
	const char *const specs[N_F] = { "uprobe:r_work", "uprobe:libc:memchr", "uprobe:libc:memcpy",
					 neigh_spec };
	/* others on the same pages, patched while the hammered ones count */
	const char *others[8];
	int n_others = 0;
	others[n_others++] = "uprobe:r_mate";
	others[n_others++] = "uprobe:libc:mprotect";
	char other_neigh[sizeof(neighs) / sizeof(neighs[0])][64];
	for (size_t i = 0; i < sizeof(neighs) / sizeof(neighs[0]); i++) {
		void *fn = dlsym(RTLD_DEFAULT, neighs[i].name);
		if (&neighs[i] != neigh && fn && ((uintptr_t)fn & ~(uintptr_t)(pg - 1)) == mprot_page) {
			snprintf(other_neigh[i], sizeof(other_neigh[i]), "uprobe:libc:%s", neighs[i].name);
			others[n_others++] = other_neigh[i];
		}
	}

	pthread_t watcher, th[N_HAMMER];
	atomic_store(&epoch, PH_ATTACH);
	for (int t = 0; t < N_HAMMER; t++)
		atomic_store(&acked[t], ~0u);
	pthread_create(&watcher, NULL, race_watcher, NULL);
	for (int t = 0; t < N_HAMMER; t++)
		pthread_create(&th[t], NULL, hammer, (void *)(intptr_t)t);
	int attached_min = N_F, others_min = n_others;
	for (unsigned long r = 0; r < rounds; r++) {
		set_phase(PH_ATTACH);
		struct selfprobe_link *links[N_F], *other_links[8];
		int n = attach_all(specs, N_F, on_race_hit, links);
		if (n < attached_min)
			attached_min = n;
		set_phase(PH_ON);
		for (int k = 0; k < 3; k++) {
			int m = attach_all(others, n_others, on_other_hit, other_links);
			if (m < others_min)
				others_min = m;
			detach_all(other_links, n_others);
		}
		set_phase(PH_DETACH);
		detach_all(links, N_F);
	}
	set_phase(PH_STOP);
	for (int t = 0; t < N_HAMMER; t++)
		pthread_join(th[t], NULL);
	atomic_store(&wx_stop, 1);
	pthread_join(watcher, NULL);

	/* a fault of the application's own, after all those windows: its
	 * handler sees it (the runtime retries a fetch fault at most once) */
	int nx_seen = 0;
	atomic_store(&nx_expected, 1);
	if (sigsetjmp(nx_jump, 1) == 0)
		((void (*)(void))nx_page)();
	else
		nx_seen = 1;
	atomic_store(&nx_expected, 0);

	printf("race_attached %d\n", attached_min);
	printf("race_others %d\n", others_min == n_others ? 1 : 0);
	printf("race_violations %lu\n", atomic_load(&violations));
	if (violations) {
		printf("race_first_violation %s\n", violation_text);
		for (int f = 0; f < N_F; f++)
			printf("info violations %s: attaching %lu, attached %lu, detaching %lu\n",
			       f_name[f] ? f_name[f] : neigh->name, atomic_load(&violations_by[f][PH_ATTACH]),
			       atomic_load(&violations_by[f][PH_ON]), atomic_load(&violations_by[f][PH_DETACH]));
	}
	printf("race_checked %d\n", atomic_load(&checked) > 0);
	printf("race_wx %d\n", atomic_load(&wx_seen));
	if (wx_seen)
		printf("info W+X: %s\n", wx_line);
	printf("race_wx_in_handler %d\n", atomic_load(&race_wx_in_handler));
	printf("race_app_segv %d\n", atomic_load(&app_segv));
	printf("race_nx_fault_seen %d\n", nx_seen);
	printf("info neighbour of mprotect: %s; %d other probes per cycle; %lu calls, %lu checked exactly; "
	       "%d handler scans; windows caught open by the watcher: %d\n", neigh->name, n_others,
	       atomic_load(&race_calls), atomic_load(&checked), (int)atomic_load(&race_handler_scans),
	       atomic_load(&windows_seen));
	return failed;
}

/* ---- rawclone ------------------------------------------------------------ */

/* Tasks made by a raw clone(CLONE_VM) without CLONE_SETTLS run with the
 * main thread's TLS: a thread of the process (CLONE_THREAD), and a process
 * of its own on the same memory, made with LeakSanitizer's stop-the-world
 * tracer's flags.  Each calls h_thr N times while the main thread does too;
 * none of them touches errno or any other TLS of libc's. */
static _Atomic int raw_go, raw_done;
static _Atomic unsigned long raw_bad;

static int raw_worker(void *arg)
{
	unsigned long n = (unsigned long)arg;
	while (!atomic_load(&raw_go))
		;
	for (unsigned long i = 0; i < n; i++)
		if (h_thr(i) != (i ^ 5))
			atomic_fetch_add(&raw_bad, 1);
	atomic_fetch_add(&raw_done, 1);
	return 0;   /* glibc's clone wrapper ends the task with a raw exit */
}

static int cmd_rawclone(unsigned long n)
{
	const size_t size = 256 * 1024;
	char *stacks = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stacks == MAP_FAILED) {
		FAIL("mmap: %s", strerror(errno));
		return 1;
	}
	h_thr(0);   /* the main thread's first hit, before the others exist */
	int thread = clone(raw_worker, stacks + size,
			   CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
			   (void *)n);
	int proc = clone(raw_worker, stacks + 2 * size, CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED | SIGCHLD,
			 (void *)n);
	if (thread < 0 || proc < 0) {
		FAIL("clone: %s", strerror(errno));
		return 1;
	}
	atomic_store(&raw_go, 1);
	for (unsigned long i = 0; i < n; i++)
		if (h_thr(i) != (i ^ 5))
			atomic_fetch_add(&raw_bad, 1);
	int st = 0;
	if (waitpid(proc, &st, __WALL) != proc || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("the CLONE_VM process ended with status %#x", st);
	while (atomic_load(&raw_done) < 2)
		sched_yield();
	if (atomic_load(&raw_bad))
		FAIL("%lu calls of h_thr returned a wrong value", atomic_load(&raw_bad));
	print_counts();
	return failed;
}

/* ---- main ---------------------------------------------------------------- */

static unsigned long num(const char *s, unsigned long dflt)
{
	return s ? strtoul(s, NULL, 0) : dflt;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "plain";
	int rc = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "plain") == 0) {
		work(num(argc > 2 ? argv[2] : NULL, 1000));
		print_counts();
		rc = failed;
	} else if (strcmp(cmd, "rawclone") == 0) {
		rc = cmd_rawclone(num(argc > 2 ? argv[2] : NULL, 100000));
	} else if (strcmp(cmd, "sigtrap") == 0) {
		rc = cmd_sigtrap(num(argc > 2 ? argv[2] : NULL, 1000));
	} else if (strcmp(cmd, "waitmask") == 0) {
		rc = cmd_waitmask(num(argc > 2 ? argv[2] : NULL, 200));
	} else if (strcmp(cmd, "blocked") == 0) {
		rc = cmd_blocked(num(argc > 2 ? argv[2] : NULL, 1000));
	} else if (strcmp(cmd, "altstack") == 0) {
		rc = cmd_altstack(num(argc > 2 ? argv[2] : NULL, 200), num(argc > 3 ? argv[3] : NULL, 0));
	} else if (strcmp(cmd, "threads") == 0) {
		rc = cmd_threads(num(argc > 2 ? argv[2] : NULL, 10000));
	} else if (strcmp(cmd, "storm") == 0) {
		rc = cmd_storm(num(argc > 2 ? argv[2] : NULL, 200000), num(argc > 3 ? argv[3] : NULL, 5000));
	} else if (strcmp(cmd, "seccomp") == 0 && argc > 3) {
		if (install_seccomp(argv[2]) != 0)
			return 2;
		rc = attach_and_run(argv[3], num(argc > 4 ? argv[4] : NULL, 1000));
	} else if (strcmp(cmd, "seccomp-exec") == 0 && argc > 4 && strcmp(argv[3], "--") == 0) {
		if (install_seccomp(argv[2]) != 0)
			return 2;
		execv(argv[4], argv + 4);
		fprintf(stderr, "sp_hostile: exec %s: %s\n", argv[4], strerror(errno));
		return 2;
	} else if (strcmp(cmd, "mdwe") == 0 && argc > 2) {
		if (argc > 4 && install_seccomp(argv[4]) != 0)
			return 2;
		rc = cmd_mdwe(argv[2], num(argc > 3 ? argv[3] : NULL, 1000));
	} else if (strcmp(cmd, "wx") == 0 && argc > 2) {
		if (argc > 4 && install_seccomp(argv[4]) != 0)
			return 2;
		rc = cmd_wx(argv[2], num(argc > 3 ? argv[3] : NULL, 1000));
	} else if (strcmp(cmd, "wxrace") == 0 && argc > 2) {
		if (argc > 4 && install_seccomp(argv[4]) != 0)
			return 2;
		rc = cmd_wxrace(argv[2], num(argc > 3 ? argv[3] : NULL, 20));
	} else {
		fprintf(stderr, "usage: sp_hostile plain|sigtrap|waitmask|blocked|altstack|threads|storm|"
			"seccomp WHAT MODE|seccomp-exec WHAT -- CMD|mdwe MODE|wx MODE [N]|wxrace MODE [ROUNDS]\n");
		return 2;
	}
	fflush(stdout);
	return rc;
}
