/* inject — target checks and ptrace loading (inject.h). */
#include "inject.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PF_KTHREAD 0x00200000

static int fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A field of /proc/PID/status ("Uid:", "TracerPid:"), its first number. */
static long status_field(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	long v = -1;
	size_t fl = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, fl)) {
			v = strtol(line + fl, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

int sp_target_check(pid_t pid, char *why, size_t n)
{
	if (pid <= 0)
		return fail(why, n, "%d is not a process id", (int)pid);
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(why, n, "no process %d", (int)pid);
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return fail(why, n, "no process %d", (int)pid);
	buf[r] = 0;
	/* after the command's closing parenthesis: state, ppid … flags (9th) */
	char *p = strrchr(buf, ')');
	char state = 0;
	unsigned long flags = 0;
	if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2)
		return fail(why, n, "cannot read /proc/%d/stat", (int)pid);
	if (flags & PF_KTHREAD)
		return fail(why, n, "process %d is a kernel thread: it has no user space to probe", (int)pid);
	if (state == 'Z' || state == 'X')
		return fail(why, n, "process %d is a zombie (it has exited, its parent has not reaped it)",
			    (int)pid);
	/* stopped, its threads could neither load the runtime nor answer */
	if (state == 'T')
		return fail(why, n, "process %d is stopped (SIGSTOP, Ctrl-Z): continue it first (kill -CONT %d)",
			    (int)pid, (int)pid);
	long uid = status_field(pid, "Uid:");
	if (geteuid() != 0 && uid != (long)geteuid())
		return fail(why, n, "process %d belongs to user %ld: only its user or root may attach to it",
			    (int)pid, uid);
	return 0;
}

/* The target's mappings of interest. */
struct maps {
	uintptr_t libc_base;          /* the lowest address of libc.so.6 */
	uintptr_t libc_x_lo, libc_x_hi; /* its executable mapping */
	dev_t libc_dev;
	ino_t libc_ino;
	bool loader, runtime;
};

static void read_maps(pid_t pid, struct maps *m)
{
	memset(m, 0, sizeof(*m));
	char path[64], line[PATH_MAX + 128];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		char perms[8];
		unsigned long long off, ino;
		unsigned maj, min;
		int at = 0;
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %x:%x %llu %n", &lo, &hi, perms, &off, &maj,
			   &min, &ino, &at) < 7)
			continue;
		const char *file = at ? line + at : "";
		const char *base = strrchr(file, '/');
		base = base ? base + 1 : file;
		if (!strncmp(base, "ld-linux", 8))
			m->loader = true;
		if (!strncmp(base, "libselfprobe.so", 15))
			m->runtime = true;
		if (!strncmp(base, "libc.so.6", 9)) {
			if (!m->libc_base || lo < m->libc_base)
				m->libc_base = lo - (uintptr_t)off;
			if (perms[2] == 'x') {
				m->libc_x_lo = lo;
				m->libc_x_hi = hi;
			}
			m->libc_dev = makedev(maj, min);
			m->libc_ino = (ino_t)ino;
		}
	}
	if (f)
		fclose(f);
}

bool sp_target_has_runtime(pid_t pid)
{
	struct maps m;
	read_maps(pid, &m);
	return m.runtime;
}

/* The argument block of inject_boot.S (its BA_* offsets). */
struct sp_boot_args {
	uint64_t pthread_create, dlopen, dlsym, dlerror, pthread_detach, pthread_self;
	uint64_t thread;
	uint64_t handle;
	int32_t start_rc;
	uint32_t tid;
	uint32_t done;
	uint32_t pad;
	char sym[32];
	char err[256];
	char path[PATH_MAX];
};
_Static_assert(offsetof(struct sp_boot_args, handle) == 56, "BA_HANDLE");
_Static_assert(offsetof(struct sp_boot_args, start_rc) == 64, "BA_START_RC");
_Static_assert(offsetof(struct sp_boot_args, tid) == 68, "BA_TID");
_Static_assert(offsetof(struct sp_boot_args, done) == 72, "BA_DONE");
_Static_assert(offsetof(struct sp_boot_args, sym) == 80, "BA_SYM");
_Static_assert(offsetof(struct sp_boot_args, err) == 112, "BA_ERR");
_Static_assert(offsetof(struct sp_boot_args, path) == 368, "BA_PATH");

extern const unsigned char sp_boot_start[], sp_boot_thread[], sp_boot_end[];

#define BOOT_PAGES 3   /* code, then the argument block */

/* The address of our libc's SYM in the target, whose libc is the same file
 * mapped at TBASE. */
static uint64_t remote_sym(const char *sym, uintptr_t tbase)
{
	void *ours = dlsym(RTLD_DEFAULT, sym);
	Dl_info di;
	if (!ours || !dladdr(ours, &di) || !di.dli_fbase)
		return 0;
	return (uint64_t)((uintptr_t)ours - (uintptr_t)di.dli_fbase + tbase);
}

static void sleep_ms(int ms);

#define STOP_TIMEOUT_MS 10000

/* The next stop of TID, within STOP_TIMEOUT_MS (a thread that never comes
 * back must not hang the CLI).  *SIG: the signal of a signal-delivery
 * stop, 0 for a ptrace event or group stop. */
static int wait_stop(pid_t tid, int *sig)
{
	int st;
	for (int waited = 0;;) {
		pid_t w = waitpid(tid, &st, __WALL | WNOHANG);
		if (w == 0) {
			if (waited >= STOP_TIMEOUT_MS)
				return -ETIMEDOUT;
			sleep_ms(1);
			waited++;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (WIFSTOPPED(st)) {
			*sig = (st >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(st);
			return 0;
		}
	}
}

/* The hijacked thread and what must be given back to it. */
struct hijack {
	pid_t tid;
	struct user_regs_struct regs;
	unsigned char xstate[16384];
	struct iovec xiov;
	int pending;          /* a signal that arrived meanwhile: delivered at the end */
};

/* Resume H and wait for its next stop: a SIGTRAP (the step, the int3) is
 * ours; any other signal is kept for the end and the thread resumed. */
static int run_until_trap(struct hijack *h, int req)
{
	for (;;) {
		if (ptrace(req, h->tid, 0, 0) != 0)
			return -errno;
		int sig;
		int rc = wait_stop(h->tid, &sig);
		if (rc)
			return rc;
		if (sig == SIGTRAP)
			return 0;
		if (sig)
			h->pending = sig;
		if (sig == 0 && req == PTRACE_SINGLESTEP)
			continue;   /* a job-control stop: step again */
	}
}

/* A system call in the target: the thread single-steps a `syscall` of its
 * libc with our registers.  orig_rax -1: no restart logic applies to it. */
static long remote_syscall(struct hijack *h, uintptr_t insn, long nr, long a1, long a2, long a3, long a4,
			   long a5, long a6)
{
	struct user_regs_struct r = h->regs;
	r.rax = (unsigned long)nr;
	r.rdi = (unsigned long)a1;
	r.rsi = (unsigned long)a2;
	r.rdx = (unsigned long)a3;
	r.r10 = (unsigned long)a4;
	r.r8 = (unsigned long)a5;
	r.r9 = (unsigned long)a6;
	r.orig_rax = (unsigned long)-1;
	r.rip = insn;
	if (ptrace(PTRACE_SETREGS, h->tid, 0, &r) != 0)
		return -errno;
	int rc = run_until_trap(h, PTRACE_SINGLESTEP);
	if (rc)
		return rc;
	if (ptrace(PTRACE_GETREGS, h->tid, 0, &r) != 0)
		return -errno;
	return (long)r.rax;
}

static const char *yama_hint(char *buf, size_t n)
{
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	int v = -1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	if (v >= 1)
		snprintf(buf, n, ": Yama's kernel.yama.ptrace_scope is %d (%s); as root, or with "
			 "'sysctl kernel.yama.ptrace_scope=0', it is allowed", v,
			 v == 1 ? "only a parent may trace its children" : v == 2 ? "only root may trace"
									     : "no process may be traced");
	else
		buf[0] = 0;
	return buf;
}

/* The thread to hijack: one blocked in a system call (read, poll, futex,
 * nanosleep …) is the least likely to hold a lock pthread_create needs
 * (the allocator's, the stack cache's): one that does would deadlock on
 * itself.  The main thread if it is so blocked, else the first such
 * thread, else the main thread. */
static pid_t pick_thread(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	pid_t best = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		pid_t tid = (pid_t)atoi(e->d_name);
		char sys[300], line[64] = "";
		snprintf(sys, sizeof(sys), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
		FILE *f = fopen(sys, "re");
		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = 0;
			fclose(f);
		}
		bool in_syscall = line[0] >= '0' && line[0] <= '9';
		if (in_syscall && (tid == pid || !best))
			best = tid;
		if (in_syscall && tid == pid)
			break;
	}
	if (d)
		closedir(d);
	return best ? best : pid;
}

static int seize(struct hijack *h, pid_t pid, char *why, size_t n)
{
	memset(h, 0, sizeof(*h));
	pid_t tid = pick_thread(pid);
	h->tid = tid;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) {
		int e = errno;
		char hint[200];
		return fail(why, n, "cannot trace process %d: %s%s", (int)pid, strerror(e),
			    e == EPERM ? yama_hint(hint, sizeof(hint)) : "");
	}
	int sig;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 || wait_stop(tid, &sig) != 0) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return fail(why, n, "cannot stop process %d: %s", (int)pid, strerror(errno));
	}
	if (sig)
		h->pending = sig;
	h->xiov.iov_base = h->xstate;
	h->xiov.iov_len = sizeof(h->xstate);
	if (ptrace(PTRACE_GETREGS, tid, 0, &h->regs) != 0 ||
	    ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &h->xiov) != 0) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return fail(why, n, "cannot read the registers of process %d: %s", (int)pid, strerror(errno));
	}
	return 0;
}

/* Everything back as it was; a system call the stop interrupted restarts
 * (its orig_rax and -ERESTART* result restored: the kernel's restart
 * logic runs on that state as the thread resumes). */
static void release(struct hijack *h)
{
	ptrace(PTRACE_SETREGSET, h->tid, (void *)NT_X86_XSTATE, &h->xiov);
	ptrace(PTRACE_SETREGS, h->tid, 0, &h->regs);
	ptrace(PTRACE_DETACH, h->tid, 0, (void *)(long)h->pending);
}

/* The address of a `syscall` instruction (0f 05) in the target's libc. */
static uintptr_t find_syscall_insn(pid_t pid, const struct maps *m)
{
	static unsigned char buf[1 << 16];
	for (uintptr_t a = m->libc_x_lo; a < m->libc_x_hi; a += sizeof(buf) - 1) {
		size_t len = m->libc_x_hi - a < sizeof(buf) ? m->libc_x_hi - a : sizeof(buf);
		struct iovec l = { buf, len }, r = { (void *)a, len };
		ssize_t got = process_vm_readv(pid, &l, 1, &r, 1, 0);
		for (ssize_t i = 0; i + 1 < got; i++)
			if (buf[i] == 0x0f && buf[i + 1] == 0x05)
				return a + (uintptr_t)i;
		if (got <= 0)
			break;
	}
	return 0;
}

static bool remote_write(pid_t pid, uintptr_t at, const void *src, size_t len)
{
	struct iovec l = { (void *)src, len }, r = { (void *)at, len };
	if (process_vm_writev(pid, &l, 1, &r, 1, 0) == (ssize_t)len)
		return true;
	/* process_vm_writev may be off (a hardened kernel): /proc/PID/mem */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0 && pwrite(fd, src, len, (off_t)at) == (ssize_t)len;
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool remote_read(pid_t pid, uintptr_t at, void *dst, size_t len)
{
	struct iovec l = { dst, len }, r = { (void *)at, len };
	return process_vm_readv(pid, &l, 1, &r, 1, 0) == (ssize_t)len;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Can the target open LIB by that name and find the same file (another
 * mount namespace may have another file there, or none)? */
static int same_file_there(pid_t pid, const char *lib, char *why, size_t n)
{
	char mine[64], theirs[64];
	struct stat a, b;
	snprintf(theirs, sizeof(theirs), "/proc/%d/ns/mnt", (int)pid);
	snprintf(mine, sizeof(mine), "/proc/self/ns/mnt");
	if (stat(mine, &a) == 0 && stat(theirs, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		return 0;
	char there[PATH_MAX + 32];
	snprintf(there, sizeof(there), "/proc/%d/root%s", (int)pid, lib);
	if (stat(lib, &a) == 0 && stat(there, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		return 0;
	/* a memfd would carry the runtime but not the libraries it needs
	 * (libZydis, libelf, libunwind): refused rather than half-loaded */
	return fail(why, n, "process %d is in another mount namespace where %s is not the same file "
		    "(nor are the libraries it needs, necessarily): not loaded", (int)pid, lib);
}

int sp_inject(pid_t pid, const char *lib, char *why, size_t n)
{
	struct maps m;
	read_maps(pid, &m);
	if (!m.loader)
		return fail(why, n, "process %d is a static executable (no dynamic loader): the runtime "
			    "cannot be loaded into it", (int)pid);
	if (!m.libc_base || !m.libc_x_hi)
		return fail(why, n, "process %d has no libc.so.6 mapped (yet: a process still starting has "
			    "only the loader): the runtime cannot be loaded into it", (int)pid);
	long tracer = status_field(pid, "TracerPid:");
	if (tracer > 0)
		return fail(why, n, "process %d is already traced by process %ld (a debugger?): detach it "
			    "first", (int)pid, tracer);
	if (strlen(lib) >= PATH_MAX)
		return fail(why, n, "library path too long");
	if (same_file_there(pid, lib, why, n) != 0)
		return -1;
	/* the target's libc must be ours, file for file, for our offsets of
	 * its functions to be its */
	Dl_info di;
	struct stat ls;
	if (!dladdr((void *)pthread_create, &di) || stat(di.dli_fname, &ls) != 0 ||
	    ls.st_ino != m.libc_ino || ls.st_dev != m.libc_dev)
		return fail(why, n, "process %d runs another libc.so.6 than selfprobe's: not supported", (int)pid);
	struct sp_boot_args args = { 0 };
	args.pthread_create = remote_sym("pthread_create", m.libc_base);
	args.dlopen = remote_sym("dlopen", m.libc_base);
	args.dlsym = remote_sym("dlsym", m.libc_base);
	args.dlerror = remote_sym("dlerror", m.libc_base);
	args.pthread_detach = remote_sym("pthread_detach", m.libc_base);
	args.pthread_self = remote_sym("pthread_self", m.libc_base);
	if (!args.pthread_create || !args.dlopen || !args.dlsym || !args.dlerror || !args.pthread_detach ||
	    !args.pthread_self)
		return fail(why, n, "libc lacks pthread_create or dlopen (glibc before 2.34?)");
	snprintf(args.sym, sizeof(args.sym), "selfprobe_control_start");
	snprintf(args.path, sizeof(args.path), "%s", lib);
	uintptr_t insn = find_syscall_insn(pid, &m);
	if (!insn)
		return fail(why, n, "no system call instruction found in the libc of process %d", (int)pid);

	struct hijack h;
	if (seize(&h, pid, why, n) != 0)
		return -1;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	long mem = remote_syscall(&h, insn, SYS_mmap, 0, (long)(BOOT_PAGES * page), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem < 0 && mem > -4096) {
		release(&h);
		return fail(why, n, "mmap in process %d: %s", (int)pid, strerror((int)-mem));
	}
	uintptr_t code = (uintptr_t)mem, data = code + page;
	size_t code_len = (size_t)(sp_boot_end - sp_boot_start);
	int rc = -1;
	if (!remote_write(pid, code, sp_boot_start, code_len) || !remote_write(pid, data, &args, sizeof(args))) {
		fail(why, n, "cannot write into process %d: %s", (int)pid, strerror(errno));
		goto unmap;
	}
	long e = remote_syscall(&h, insn, SYS_mprotect, (long)code, (long)page, PROT_READ | PROT_EXEC, 0, 0, 0);
	if (e != 0) {
		fail(why, n, "mprotect in process %d: %s", (int)pid, strerror((int)-e));
		goto unmap;
	}
	/* pthread_create(&args.thread, NULL, sp_boot_thread, &args) on the
	 * thread's stack below its red zone */
	struct user_regs_struct r = h.regs;
	r.rsp = (h.regs.rsp - 1024) & ~(unsigned long long)15;
	r.rip = code;
	r.rax = args.pthread_create;
	r.rdi = data + offsetof(struct sp_boot_args, thread);
	r.rsi = 0;
	r.rdx = code + (uintptr_t)(sp_boot_thread - sp_boot_start);
	r.rcx = data;
	r.orig_rax = (unsigned long)-1;
	int trc = ptrace(PTRACE_SETREGS, h.tid, 0, &r) != 0 ? -errno : run_until_trap(&h, PTRACE_CONT);
	if (trc == -ETIMEDOUT) {
		/* blocked inside pthread_create (a lock the thread held when
		 * it was stopped?): taken back to where it was; the pages stay,
		 * the thread may run them yet */
		int sig;
		ptrace(PTRACE_INTERRUPT, h.tid, 0, 0);
		wait_stop(h.tid, &sig);
		release(&h);
		return fail(why, n, "thread %d of process %d did not come back from pthread_create within %d s "
			    "(it may hold a lock that pthread_create needs): put back where it was; the "
			    "bootstrap pages stay at %#" PRIxPTR, (int)h.tid, (int)pid, STOP_TIMEOUT_MS / 1000, code);
	}
	if (trc != 0 || ptrace(PTRACE_GETREGS, h.tid, 0, &r) != 0) {
		fail(why, n, "the bootstrap did not run in process %d: %s", (int)pid, strerror(trc ? -trc : errno));
		goto unmap;
	}
	if (r.rax != 0) {
		fail(why, n, "pthread_create in process %d: %s", (int)pid, strerror((int)r.rax));
		goto unmap;
	}
	release(&h);   /* the hijacked thread goes on at once */

	/* the loader thread: done within 10 s (dlopen maps and relocates
	 * four libraries), then gone */
	struct sp_boot_args out = { 0 };
	bool done = false;
	for (int i = 0; i < 1000 && !done; i++) {
		if (!remote_read(pid, data, &out, offsetof(struct sp_boot_args, path))) {
			return fail(why, n, "process %d went away while loading the runtime", (int)pid);
		}
		done = out.done;
		if (!done)
			sleep_ms(10);
	}
	if (!done)
		return fail(why, n, "the runtime did not load in process %d within 10 s (its bootstrap "
			    "pages stay at %#" PRIxPTR ")", (int)pid, code);
	char task[64];
	snprintf(task, sizeof(task), "/proc/%d/task/%u", (int)pid, out.tid);
	for (int i = 0; i < 500 && access(task, F_OK) == 0; i++)
		sleep_ms(2);
	if (!out.handle)
		fail(why, n, "dlopen(%s) in process %d failed: %s", lib, (int)pid,
		     out.err[0] ? out.err : "(no message)");
	else if (out.start_rc != 0)
		fail(why, n, "the control channel did not start in process %d: %s", (int)pid,
		     strerror(-out.start_rc));
	else
		rc = 0;
	/* the bootstrap unmapped: the process keeps nothing of it */
	if (seize(&h, pid, why, n) != 0)
		return -1;
unmap:
	remote_syscall(&h, insn, SYS_munmap, (long)code, (long)(BOOT_PAGES * page), 0, 0, 0, 0);
	release(&h);
	return rc;
}
