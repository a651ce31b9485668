/* sp_live — a long-running program for `selfprobe attach` (e2e_attach.py):
 * started without the preload, it waits for commands on stdin (its main
 * thread blocked in read(): the injection then hijacks a thread stopped
 * inside a system call) and counts its own calls, so that the counts of a
 * window of attachment can be compared exactly:
 *
 *   call N      the main thread calls live_work N times
 *   tcall N     each of the THREADS worker threads (argv[1], waiting on a
 *               condition variable in futex) calls live_work N times
 *   dlcall N    dlopen LIB (argv[2]) and call its dl_func N times
 *   fork N      a child calls live_work N times and exits 0; waited for
 *   churn N     N times: dlopen LIB, call dl_func and live_work, dlclose,
 *               fork a child that calls live_work and exits; waited for
 *   trap N      raise SIGTRAP N times: its own handler counts them (a
 *               runtime loaded late must pass them on)
 *   icall N     the main thread calls live_int3 N times (a loop branches
 *               back to its byte 1: always the int3 path)
 *   settrap     install another SIGTRAP handler (counting too) through a
 *               pointer to sigaction taken with dlsym at start; says
 *               whether the old action was the handler main installed
 *   block, unblock   sigprocmask SIGTRAP in the main thread
 *   tblock N    each worker blocks SIGTRAP with pthread_sigmask, calls
 *               live_work and live_int3 N times, unblocks it
 *   segv        install a SIGSEGV handler (sigaction, SA_SIGINFO) and
 *               fault once on purpose: the handler siglongjmps back; a
 *               SIGSEGV it did not expect prints so and exits 3
 *   setusr      install a SIGUSR1 handler (sigaction) and raise it once
 *   usr         say whether the SIGUSR1 handler read back (sigaction) is
 *               the one setusr installed, and raise it once
 * (The signal commands exist for a runtime loaded late, which must keep
 * SIGTRAP and the faults its own through libc's entry points.)
 *   spinkill MS call live_work for MS milliseconds, print "killed N" (the calls
 *               it made), then SIGKILL itself: a process that dies while
 *               attached, its count known exactly (each call returned before)
 *   closefds    close every descriptor above 2 (as a daemon does) and open
 *               /dev/null at 3 to 31: a descriptor the runtime kept is gone,
 *               its number another file's
 *   ownlisten   every listening socket among its descriptors (the
 *               runtime's) closed, a listening socket of its own,
 *               @sp_live.PID, put at that number (dup2): a program that
 *               reuses the number for a server of its own
 *   ownaccept   accept on that socket (blocking: a server that accepts
 *               at that number waits there) if a connection is waiting
 *               (poll): "accepted 1" if a
 *               connection was there, "accepted 0" if none
 *   quit        print the totals and exit with status 7
 * After each command: "done CALLS TRAPS", flushed.  argv[3] "blocktrap":
 * the worker threads block every signal (SIGTRAP too).
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stddef.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifndef SP_LIVE_STATIC
#include <dlfcn.h>
#endif

static atomic_ulong calls;
static int own_listen = -1;   /* ownlisten's socket */
static volatile sig_atomic_t traps;

static void on_trap(int sig)
{
	(void)sig;
	traps++;
}

static void on_trap_again(int sig)
{
	(void)sig;
	traps++;
}

static int *volatile nowhere = (int *)8;   /* an address never mapped */
static volatile sig_atomic_t usr1s;

static void on_usr1(int sig)
{
	(void)sig;
	usr1s++;
}

static sigjmp_buf segv_back;
static volatile sig_atomic_t segv_armed;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	if (!segv_armed) {
		static const char msg[] = "unexpected SIGSEGV\n";
		(void)!write(1, msg, sizeof(msg) - 1);
		_exit(3);
	}
	segv_armed = 0;
	siglongjmp(segv_back, 1);
}

/* live_int3(n): loops n times (n >= 1) and returns 0.  The loop's branch
 * lands on byte 1: no jmp can be written over bytes 1-4, the probe takes
 * the int3 path. */
int live_int3(int n);
__asm__(".text\n"
	".globl live_int3\n"
	".type live_int3, @function\n"
	"live_int3:\n"
	"	nop\n"
	"1:	subl $1, %edi\n"
	"	jg 1b\n"
	"	movl %edi, %eax\n"
	"	ret\n"
	".size live_int3, .-live_int3\n");

static void int3_calls(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		live_int3(2);
		atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
	}
}

static int (*sa_fn)(int, const struct sigaction *, struct sigaction *);

static void trap_set(int how)
{
	sigset_t t;
	sigemptyset(&t);
	sigaddset(&t, SIGTRAP);
	if (sigprocmask(how, &t, NULL) != 0)
		printf("sigprocmask failed\n");
}

__attribute__((noinline, used)) int live_work(int x)
{
	atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER, back = PTHREAD_COND_INITIALIZER;
static unsigned long round_no, per_thread;
static bool round_blocks;
static int finished, n_threads;

static void *worker(void *arg)
{
	(void)arg;
	unsigned long seen = 0;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (round_no == seen)
			pthread_cond_wait(&go, &mu);
		seen = round_no;
		unsigned long n = per_thread;
		bool blocks = round_blocks;
		pthread_mutex_unlock(&mu);
		volatile long sum = 0;
		sigset_t t;
		sigemptyset(&t);
		sigaddset(&t, SIGTRAP);
		if (blocks)
			pthread_sigmask(SIG_BLOCK, &t, NULL);
		for (unsigned long i = 0; i < n; i++)
			sum += live_work((int)i);
		if (blocks) {
			int3_calls(n);
			pthread_sigmask(SIG_UNBLOCK, &t, NULL);
		}
		pthread_mutex_lock(&mu);
		finished++;
		pthread_cond_broadcast(&back);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	n_threads = argc > 1 ? atoi(argv[1]) : 0;
	signal(SIGTRAP, on_trap);
	/* a pointer taken before any attach (settrap calls through it) */
#ifndef SP_LIVE_STATIC
	sa_fn = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_DEFAULT, "sigaction");
#else
	sa_fn = sigaction;
#endif
	sigset_t all, old;
	sigfillset(&all);
	bool block = argc > 3 && !strcmp(argv[3], "blocktrap");
	if (block)   /* inherited by the workers */
		pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < n_threads; i++) {
		pthread_t t;
		pthread_create(&t, NULL, worker, NULL);
	}
	if (block)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	char line[256];
	volatile long sum = 0;
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[32];
		unsigned long n = 0;
		if (sscanf(line, "%31s %lu", cmd, &n) < 1)
			continue;
		if (!strcmp(cmd, "call")) {
			for (unsigned long i = 0; i < n; i++)
				sum += live_work((int)i);
		} else if (!strcmp(cmd, "icall")) {
			int3_calls(n);
		} else if (!strcmp(cmd, "settrap")) {
			struct sigaction a, old;
			memset(&a, 0, sizeof(a));
			a.sa_handler = on_trap_again;
			a.sa_flags = SA_RESTART;
			sigemptyset(&a.sa_mask);
			int rc = sa_fn(SIGTRAP, &a, &old);
			printf("settrap %d, old action %s\n", rc, old.sa_handler == on_trap ? "main's" : "another");
		} else if (!strcmp(cmd, "setusr")) {
			struct sigaction a;
			memset(&a, 0, sizeof(a));
			a.sa_handler = on_usr1;
			sigemptyset(&a.sa_mask);
			sigaction(SIGUSR1, &a, NULL);
			raise(SIGUSR1);
			printf("usr1 %d\n", (int)usr1s);
		} else if (!strcmp(cmd, "usr")) {
			struct sigaction cur;
			sigaction(SIGUSR1, NULL, &cur);
			raise(SIGUSR1);
			printf("usr1 handler %s, %d\n", cur.sa_handler == on_usr1 ? "setusr's" : "another", (int)usr1s);
		} else if (!strcmp(cmd, "block") || !strcmp(cmd, "unblock")) {
			trap_set(cmd[0] == 'b' ? SIG_BLOCK : SIG_UNBLOCK);
		} else if (!strcmp(cmd, "segv")) {
			struct sigaction a;
			memset(&a, 0, sizeof(a));
			a.sa_sigaction = on_segv;
			a.sa_flags = SA_SIGINFO;
			sigemptyset(&a.sa_mask);
			sigaction(SIGSEGV, &a, NULL);
			if (sigsetjmp(segv_back, 1) == 0) {
				segv_armed = 1;
				*nowhere = 1;
				printf("segv not raised\n");
			} else
				printf("segv caught\n");
		} else if (!strcmp(cmd, "tcall") || !strcmp(cmd, "tblock")) {
			pthread_mutex_lock(&mu);
			round_blocks = cmd[1] == 'b';
			per_thread = n;
			finished = 0;
			round_no++;
			pthread_cond_broadcast(&go);
			while (finished < n_threads)
				pthread_cond_wait(&back, &mu);
			pthread_mutex_unlock(&mu);
#ifndef SP_LIVE_STATIC
		} else if (!strcmp(cmd, "dlcall")) {
			void *h = dlopen(argc > 2 ? argv[2] : "", RTLD_NOW);
			int (*f)(int) = h ? (int (*)(int))dlsym(h, "dl_func") : NULL;
			if (!f) {
				printf("dlopen failed: %s\n", dlerror());
				continue;
			}
			for (unsigned long i = 0; i < n; i++)
				sum += f((int)i);
		} else if (!strcmp(cmd, "churn")) {
			for (unsigned long i = 0; i < n; i++) {
				void *h = dlopen(argc > 2 ? argv[2] : "", RTLD_NOW);
				int (*f)(int) = h ? (int (*)(int))dlsym(h, "dl_func") : NULL;
				if (f)
					sum += f((int)i);
				sum += live_work((int)i);
				if (h)
					dlclose(h);
				pid_t c = fork();
				if (c == 0)
					_exit(live_work(1) == 4 ? 0 : 1);
				int st = -1;
				waitpid(c, &st, 0);
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					printf("child status %#x\n", st);
			}
#endif
		} else if (!strcmp(cmd, "fork")) {
			fflush(stdout);
			pid_t c = fork();
			if (c == 0) {
				for (unsigned long i = 0; i < n; i++)
					sum += live_work((int)i);
				_exit(0);
			}
			int st = -1;
			waitpid(c, &st, 0);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				printf("child status %#x\n", st);
		} else if (!strcmp(cmd, "trap")) {
			for (unsigned long i = 0; i < n; i++)
				raise(SIGTRAP);
		} else if (!strcmp(cmd, "spinkill")) {
			struct timespec t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			unsigned long made = 0;
			do {
				for (int i = 0; i < 1000; i++, made++)
					sum += live_work(i);
				clock_gettime(CLOCK_MONOTONIC, &t1);
			} while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < (long)n);
			printf("killed %lu\n", made);   /* line buffered: out before the kill */
			kill(getpid(), SIGKILL);
		} else if (!strcmp(cmd, "closefds")) {
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
			int fd;
			do
				fd = open("/dev/null", O_RDONLY);
			while (fd >= 0 && fd < 31);
		} else if (!strcmp(cmd, "ownlisten")) {
			struct sockaddr_un a = { .sun_family = AF_UNIX };
			int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "sp_live.%d", (int)getpid());
			socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
			int s = socket(AF_UNIX, SOCK_STREAM, 0);
			if (s < 0 || bind(s, (struct sockaddr *)&a, alen) != 0 || listen(s, 8) != 0) {
				perror("ownlisten");
				return 4;
			}
			for (int fd = 3; fd < 1024; fd++) {
				int on = 0;
				socklen_t len = sizeof(on);
				if (fd != s && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on &&
				    dup2(s, fd) == fd) {
					own_listen = fd;
					printf("listening at %d\n", fd);
				}
			}
			close(s);
		} else if (!strcmp(cmd, "ownaccept")) {
			struct pollfd pf = { .fd = own_listen, .events = POLLIN };
			int c = own_listen >= 0 && poll(&pf, 1, 0) == 1 ? accept(own_listen, NULL, NULL) : -1;
			printf("accepted %d\n", c >= 0);
			if (c >= 0)
				close(c);
		} else if (!strcmp(cmd, "quit")) {
			break;
		}
		printf("done %lu %d\n", atomic_load(&calls), (int)traps);
	}
	printf("total %lu\n", atomic_load(&calls));
	return 7;
}
