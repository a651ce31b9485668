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
 *   sp_hostile plain N          h_work N times (for seccomp-exec)
 *
 * Output: "key value" lines on stdout (call counts the program made, and
 * facts: app_traps, handler, attach, wx …), deterministic for a given case
 * except lines starting with "info".  A self-check failure is printed on
 * stderr as "sp_hostile: …" and the exit status is 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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
	} else if (strcmp(cmd, "sigtrap") == 0) {
		rc = cmd_sigtrap(num(argc > 2 ? argv[2] : NULL, 1000));
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
	} else {
		fprintf(stderr, "usage: sp_hostile plain|sigtrap|blocked|altstack|threads|storm|"
			"seccomp WHAT MODE|seccomp-exec WHAT -- CMD|mdwe MODE|wx MODE [N]\n");
		return 2;
	}
	fflush(stdout);
	return rc;
}
