/* patch — see patch.h for the mechanism and why. */
#include "patch.h"
#include "procread.h"
#include "heap.h"
#include "sort.h"
#include "fdid.h"
#include "rawsys.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef PR_GET_MDWE
#define PR_GET_MDWE 66
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

#define PF_INSTR       0x10   /* x86 page-fault error code: an instruction fetch */
#define RESTORE_TRIES  1000   /* restoring mprotect attempts before giving up */

/* The writers' lock: the tid of the thread writing, 0 when free.
 * Error-checking: fork from a signal handler that interrupted this
 * thread's own write (outside a window: asynchronous signals are blocked
 * inside) finds the lock held by itself (sp_patch_atfork_prepare).
 * An atomic and raw system calls, not a pthread mutex: libc's mutex
 * functions may be probed themselves, and between the int3 and the jmp of
 * a batch (arm.h) each of their calls would trap, four traps a write. */
static _Atomic int patch_owner;
static _Atomic int patch_waiters;
static __thread int my_tid;      /* 0: not known yet (reset in a fork child) */
static __thread bool fork_locked;
/* /proc/self/mem: open only while writes are under way (a hold, else one
 * write), so that the program never sees a descriptor of ours; -2 once it
 * failed (the fallback from then on).  Its identity is checked before each
 * use: the program may close it meanwhile (a daemon's closefrom while an attach's batch holds it) and open
 * a file of its own at the number, which must be neither written nor
 * closed. */
static struct sp_fdid mem = SP_FDID_NONE;
static int holds;                /* sp_patch_hold depth (under the writers' lock) */
static uint64_t epoch;           /* changes at each first hold and each write (sp_patch_epoch) */
static int sync_state;           /* 0 unknown, 1 registered, -1 unavailable */
static int fallback_state;       /* 0 unknown, 1 usable, -errno refused */
static int (*install_fault_handler)(void);   /* trap.h's, registered by the life cycle */

void sp_patch_set_fault_handler(int (*install)(void))
{
	install_fault_handler = install;
}
static const char *refusal;      /* why, once refused */

/* The open window, for the fault handler of every thread.  WIN_GEN is odd
 * while a window is open; WIN_LO/WIN_HI change only while it is even (a
 * seqlock whose stable state is "open"), written under the writers' lock. */
static _Atomic uint32_t win_gen;
static _Atomic uintptr_t win_lo, win_hi;
static __thread uint32_t retried_gen;   /* the generation this thread last retried at */
static __thread volatile bool in_window;   /* this thread is the writer (read by its fault handler) */

/* A system call without libc (no errno, no PLT, no code outside this
 * object): what runs inside the window and in the fault handler. */
static inline __attribute__((always_inline)) long raw_syscall(long nr, long a, long b, long c, long d)
{
	return sp_syscall6(nr, a, b, c, d, 0, 0);
}

static int membarrier(int cmd, unsigned flags)
{
	return (int)raw_syscall(__NR_membarrier, cmd, flags, 0, 0);
}

/* 0, or EDEADLK when this thread holds it already. */
static int lock_patch(void)
{
	if (!my_tid)
		my_tid = (int)raw_syscall(SYS_gettid, 0, 0, 0, 0);
	int seen = 0;
	while (!atomic_compare_exchange_weak(&patch_owner, &seen, my_tid)) {
		if (seen == my_tid)
			return EDEADLK;
		if (seen) {
			atomic_fetch_add(&patch_waiters, 1);
			raw_syscall(SYS_futex, (long)&patch_owner, FUTEX_WAIT_PRIVATE, seen, 0);
			atomic_fetch_sub(&patch_waiters, 1);
		}
		seen = 0;
	}
	return 0;
}

static void unlock_patch(void)
{
	atomic_store(&patch_owner, 0);
	if (atomic_load(&patch_waiters))
		raw_syscall(SYS_futex, (long)&patch_owner, FUTEX_WAKE_PRIVATE, INT_MAX, 0);
}

static void close_mem(void)
{
	if (mem.fd >= 0) {
		if (sp_fdid_still_ours(&mem))
			raw_syscall(SYS_close, mem.fd, 0, 0, 0);   /* not the program's close */
		mem.fd = -1;
	}
}

void sp_patch_hold(void)
{
	int again = lock_patch();   /* EDEADLK: this thread holds it already */
	if (holds++ == 0)
		epoch++;
	if (!again)
		unlock_patch();
}

void sp_patch_release(void)
{
	int again = lock_patch();
	bool last = holds == 1;
	if (!again)
		unlock_patch();
	if (last)   /* with the descriptor still open */
		sp_patch_flush_later();
	again = lock_patch();
	if (holds > 0 && --holds == 0)
		close_mem();
	if (!again)
		unlock_patch();
}

static int open_mem(void)
{
	if (mem.fd >= 0 && !sp_fdid_still_ours(&mem))
		mem.fd = -1;   /* the program closed ours: opened again, its file left alone */
	if (mem.fd == -1) {
		int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
		if (fd >= 0 && !sp_fdid_remember(&mem, fd))
			close(fd);
		if (mem.fd < 0) {
			sp_info("patch: cannot open /proc/self/mem (%s): writing code through mprotect "
				"(read-write, then read-exec again)", strerror(errno));
			mem.fd = -2;
		}
	}
	return mem.fd;
}

/* Protection of the mapping holding [ADDR, END), from /proc/self/maps:
 * PROT_* bits, -EFAULT when no single mapping holds it.  Without /proc,
 * read+exec: code is all we write. */
static int mapping_prot(uintptr_t addr, uintptr_t end)
{
	struct sp_lines f;   /* not stdio: its FILE would be on the program's heap */
	if (sp_lines_open(&f, "/proc/self/maps") != 0)
		return PROT_READ | PROT_EXEC;
	char line[512];
	int prot = -EFAULT;
	while (sp_lines_next(&f, line, sizeof(line))) {
		unsigned long lo, hi;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) != 3)
			continue;
		if (addr >= lo && addr < hi) {
			if (end <= hi)
				prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
				       (p[2] == 'x' ? PROT_EXEC : 0);
			break;
		}
	}
	sp_lines_close(&f);
	return prot;
}

/* Can the fallback give a page its execute permission back?  Asked once:
 * the answer is the process's (MDWE, seccomp, an LSM), not the page's.
 * Refused here, a probe fails cleanly (its error says why: refusal);
 * refused after the write, the page would stay non-executable. */
static int fallback_usable(void)
{
	static char why[160];
	if (fallback_state)
		return fallback_state > 0 ? 0 : fallback_state;
	int rc = 0;
	int mdwe = prctl(PR_GET_MDWE, 0, 0, 0, 0);
	if (mdwe > 0 && (mdwe & PR_MDWE_REFUSE_EXEC_GAIN)) {
		rc = -EPERM;
		snprintf(why, sizeof(why), "/proc/self/mem cannot be written and MDWE (PR_SET_MDWE) "
			 "refuses to make a page executable again");
		goto refused;
	}
	long pg = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rc = p == MAP_FAILED ? -errno : 0;
	if (!rc && mprotect(p, (size_t)pg, PROT_READ | PROT_EXEC) != 0)
		rc = -errno;
	if (p != MAP_FAILED)
		munmap(p, (size_t)pg);
	if (rc) {
		snprintf(why, sizeof(why), "/proc/self/mem cannot be written and mprotect cannot make "
			 "a page executable again (%s)", strerror(-rc));
		goto refused;
	}
	/* threads executing a page while it is not executable fault: the
	 * fault handler must be ours before the first window opens */
	rc = install_fault_handler ? install_fault_handler() : -ENOSYS;
	if (rc != 0) {
		snprintf(why, sizeof(why), "/proc/self/mem cannot be written and the fault handler "
			 "cannot be installed (%s)", strerror(-rc));
		goto refused;
	}
	fallback_state = 1;
	return 0;
refused:
	sp_info("patch: %s: code cannot be patched", why);
	refusal = why;
	return fallback_state = rc;
}

/* Everything between the two mprotects: inline system calls and a
 * volatile byte loop, no call out of this function (mprotect's and
 * memcpy's own pages may be the ones written).  0, or -errno with
 * *RESTORED telling whether the pages are executable again. */
__attribute__((noinline, no_sanitize("address", "undefined")))
static int window_write(uintptr_t lo, size_t span, int prot, uintptr_t addr,
			const uint8_t *bytes, size_t len, bool *restored)
{
	long rc = raw_syscall(SYS_mprotect, (long)lo, (long)span, PROT_READ | PROT_WRITE, 0);
	if (rc == 0) {
		volatile uint8_t *dst = (volatile uint8_t *)addr;
		const volatile uint8_t *src = bytes;
		for (size_t i = 0; i < len; i++)
			dst[i] = src[i];
	}
	/* Restore even after a failed first call: mprotect may have changed
	 * part of the range.  It was tried on these pages with these
	 * arguments just before (write_fallback); what still fails now is
	 * transient (memory) or a policy that changed meanwhile: retry. */
	long back = -1;
	for (int i = 0; i < RESTORE_TRIES && back != 0; i++) {
		if (i)
			raw_syscall(SYS_sched_yield, 0, 0, 0, 0);
		back = raw_syscall(SYS_mprotect, (long)lo, (long)span, prot, 0);
	}
	*restored = back == 0;
	return (int)(rc ? rc : back);
}

/* Signals that are synchronous (a fault of this thread's own): blocking
 * one makes the kernel kill the process instead of delivering it. */
static uint64_t async_signals(void)
{
	static const int sync_sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS };
	uint64_t mask = ~(uint64_t)0;
	for (size_t i = 0; i < sizeof(sync_sigs) / sizeof(sync_sigs[0]); i++)
		mask &= ~((uint64_t)1 << (sync_sigs[i] - 1));
	return mask;
}

/* The fallback: read-write while writing, never writable and executable. */
static int write_fallback(uintptr_t addr, const void *bytes, size_t len)
{
	int rc = fallback_usable();
	if (rc)
		return rc;
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = addr & ~(pg - 1);
	uintptr_t hi = (addr + len + pg - 1) & ~(pg - 1);
	int prot = mapping_prot(addr, addr + len);
	if (prot < 0)
		return prot;
	/* The restoring call, tried first on the unchanged pages: a seccomp
	 * filter on mprotect's arguments refuses it now, not with the pages
	 * left non-executable. */
	if (mprotect((void *)lo, hi - lo, prot) != 0)
		return -errno;

	uint64_t block = async_signals(), old_mask = 0;
	raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, (long)&block, (long)&old_mask, sizeof(block));
	uint32_t gen = atomic_load_explicit(&win_gen, memory_order_relaxed);
	atomic_store_explicit(&win_lo, lo, memory_order_relaxed);
	atomic_store_explicit(&win_hi, hi, memory_order_relaxed);
	atomic_store_explicit(&win_gen, gen + 1, memory_order_release);      /* open */
	in_window = true;
	bool restored;
	rc = window_write(lo, hi - lo, prot, addr, bytes, len, &restored);
	in_window = false;
	atomic_store_explicit(&win_gen, gen + 2, memory_order_release);      /* closed */
	atomic_thread_fence(memory_order_seq_cst);   /* before the next window's lo/hi */
	raw_syscall(SYS_futex, (long)&win_gen, FUTEX_WAKE_PRIVATE, INT_MAX, 0);
	raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old_mask, 0, sizeof(old_mask));

	if (!restored)   /* the program may not live to write a report */
		sp_say("patch: mprotect cannot make %#lx-%#lx executable again (%s): threads running "
		       "it will fault", (unsigned long)lo, (unsigned long)hi, strerror((int)-rc));
	return rc;
}

static bool (*fail_for_test)(uintptr_t addr, const void *bytes, size_t len);

void sp_patch_fail_for_test(bool (*fail)(uintptr_t addr, const void *bytes, size_t len))
{
	fail_for_test = fail;
}

int sp_patch_write(uintptr_t addr, const void *bytes, size_t len)
{
	int rc = 0;
	if (len == 0)
		return 0;
	if (fail_for_test && fail_for_test(addr, bytes, len))
		return -EIO;
	lock_patch();
	epoch++;
	int fd = open_mem();
	if (fd >= 0) {
		/* raw: libc's pwrite may be a site of this very batch */
		long n = raw_syscall(SYS_pwrite64, fd, (long)bytes, (long)len, (long)addr);
		if (n == (long)len) {
			if (!holds)
				close_mem();
			goto out;
		}
		sp_info("patch: /proc/self/mem write at %#lx failed (%s): writing code through "
			"mprotect (read-write, then read-exec again)",
			(unsigned long)addr, n < 0 ? strerror((int)-n) : "short write");
		close_mem();
		mem.fd = -2;
	}
	rc = write_fallback(addr, bytes, len);
out:
	unlock_patch();
	return rc;
}

#define PATCH_PAGE 4096

#define SPAN_MAX   (64u << 10)   /* the most one write covers */

/* Pieces I.. (ascending, not overlapping) that one write covers: the end
 * (exclusive).  Each page of the span holds bytes of a piece, so the bytes
 * read and written back between pieces are on pages written anyway (no
 * page is copied that would not be: an object's text, or code memory
 * skipped by a fitted allocation, which is never touched). */
static size_t span_end(const struct sp_patch_piece *p, size_t n, size_t i, size_t max)
{
	size_t k = i + 1;
	while (k < n && p[k].len && p[k].addr >= p[k - 1].addr + p[k - 1].len &&
	       p[k].addr / PATCH_PAGE <= (p[k - 1].addr + p[k - 1].len - 1) / PATCH_PAGE + 1 &&
	       p[k].addr + p[k].len - p[i].addr <= max)
		k++;
	return k;
}

/* Pieces [I, K) (ascending, not overlapping, every page between them
 * holding some of their bytes) as one read and one write of
 * /proc/self/mem, through BUF (room for all of them and the bytes between):
 * 0, or -1 when that path is not open to us (the caller writes them one by
 * one, with sp_patch_write's fallback and messages). */
static int write_span(const struct sp_patch_piece *p, size_t i, size_t k, uint8_t *buf)
{
	uintptr_t lo = p[i].addr, hi = p[k - 1].addr + p[k - 1].len;
	int rc = -1;
	lock_patch();
	epoch++;
	int fd = open_mem();
	if (fd >= 0 &&
	    raw_syscall(SYS_pread64, fd, (long)buf, (long)(hi - lo), (long)lo) == (long)(hi - lo)) {
		/* a volatile byte loop, never turned into memcpy: libc's
		 * memcpy may be a site of this very batch */
		for (size_t j = i; j < k; j++) {
			const uint8_t *b = p[j].bytes;
			volatile uint8_t *d = buf + (p[j].addr - lo);
			for (size_t m = 0; m < p[j].len; m++)
				d[m] = b[m];
		}
		if (raw_syscall(SYS_pwrite64, fd, (long)buf, (long)(hi - lo), (long)lo) == (long)(hi - lo))
			rc = 0;
	}
	if (fd >= 0 && !holds)
		close_mem();
	unlock_patch();
	return rc;
}

void sp_patch_write_many(const struct sp_patch_piece *p, size_t n, int *rcs)
{
	/* spans of neighbouring pages, not one page: libc:* writes ~470
	 * pages of libc three times (a read and a write each).  The buffer
	 * mapped with a raw call (libc's malloc may be a site of this batch),
	 * for a batch big enough to pay for a mapping and its unmapping */
	uint8_t page[PATCH_PAGE], *buf = page;
	size_t max = PATCH_PAGE;
	void *big = n >= 64 ? sp_sys_mmap(NULL, SPAN_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
			    : MAP_FAILED;
	if (big != MAP_FAILED) {
		buf = big;
		max = SPAN_MAX;
	}
	for (size_t i = 0; i < n;) {
		/* a test's refusal (sp_patch_fail_for_test) is per piece */
		size_t k = p[i].len && !fail_for_test ? span_end(p, n, i, max) : i + 1;
		if (k - i > 1 && write_span(p, i, k, buf) == 0) {
			/* volatile: a loop of zero stores becomes a call to
			 * libc's memset, a site of this very batch (a trap) */
			volatile int *r = rcs;
			for (size_t j = i; j < k; j++)
				r[j] = 0;
		} else {
			for (size_t j = i; j < k; j++)
				rcs[j] = sp_patch_write(p[j].addr, p[j].bytes, p[j].len);
		}
		i = k;
	}
	if (big != MAP_FAILED)
		sp_sys_munmap(big, SPAN_MAX);
}

/* ---- sp_patch_write_later ---- */

/* A piece kept for the next flush (under the writers' lock); SEQ its
 * order of arrival.  Its bytes are in a block of a list (blocks are never
 * moved: growing one buffer by realloc copied it again and again), mapped
 * populated (a page fault per 4 KiB was 3 % of attaching libc:*). */
struct later {
	uintptr_t addr;
	const uint8_t *bytes;
	size_t len, seq;
	bool *failed;
};
struct later_block {
	struct later_block *next;
	size_t used, room;
	uint8_t bytes[];
};
static struct later *later_v;
static size_t later_n, later_cap;
static struct later_block *later_blocks;

/* blocks double from 8 KiB to 256 KiB: one trampoline (an exec'ed child
 * with one probe) populates two pages, libc:* a few blocks */
#define LATER_BLOCK_MIN (8u << 10)
#define LATER_BLOCK_MAX (256u << 10)

/* Room for one more piece of LEN bytes (writers' lock held): where its
 * bytes go, or NULL. */
static uint8_t *later_room(size_t len)
{
	if (later_n == later_cap) {
		size_t c = later_cap ? 2 * later_cap : 256;
		struct later *v = sp_realloc(later_v, c * sizeof(*v));
		if (!v)
			return NULL;
		later_v = v;
		later_cap = c;
	}
	struct later_block *b = later_blocks;
	if (!b || b->used + len > b->room) {
		size_t size = (sizeof(*b) + len + PATCH_PAGE - 1) & ~(size_t)(PATCH_PAGE - 1);
		size_t step = b ? 2 * (sizeof(*b) + b->room) : LATER_BLOCK_MIN;
		if (step > LATER_BLOCK_MAX)
			step = LATER_BLOCK_MAX;
		if (size < step)
			size = step;
		b = sp_sys_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (b == MAP_FAILED)
			return NULL;
		*b = (struct later_block){ .next = later_blocks, .room = size - sizeof(*b) };
		later_blocks = b;
	}
	b->used += len;
	return b->bytes + b->used - len;
}

int sp_patch_write_later(uintptr_t addr, const void *bytes, size_t len, bool *failed)
{
	if (len == 0)
		return 0;
	int again = lock_patch();
	uint8_t *to = holds > 0 ? later_room(len) : NULL;
	if (to) {
		memcpy(to, bytes, len);
		later_v[later_n] = (struct later){ addr, to, len, later_n, failed };
		later_n++;
	}
	if (!again)
		unlock_patch();
	return to ? 0 : sp_patch_write(addr, bytes, len);   /* no hold, no memory: now */
}

static int by_addr(const void *a, const void *b)
{
	const struct later *x = a, *y = b;
	return x->addr != y->addr ? (x->addr < y->addr ? -1 : 1) : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

static int by_seq(const void *a, const void *b)
{
	const struct later *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void sp_patch_flush_later(void)
{
	int again = lock_patch();
	struct later *v = later_v;
	struct later_block *blocks = later_blocks;
	size_t n = later_n;
	later_v = NULL;
	later_blocks = NULL;
	later_n = later_cap = 0;
	if (!again)
		unlock_patch();
	if (n) {
		sp_qsort(v, n, sizeof(*v), by_addr);
		bool overlap = false;
		for (size_t i = 1; i < n; i++)
			overlap |= v[i].addr < v[i - 1].addr + v[i - 1].len;
		if (overlap)   /* not for fresh memory; the last write must win */
			sp_qsort(v, n, sizeof(*v), by_seq);
		struct sp_patch_piece *p = sp_malloc(n * sizeof(*p));
		uint8_t *buf = overlap || n == 1 ? NULL : sp_malloc(SPAN_MAX);
		for (size_t i = 0; p && i < n; i++)
			p[i] = (struct sp_patch_piece){ v[i].addr, v[i].bytes, v[i].len };
		for (size_t i = 0; i < n;) {
			size_t k = p && buf ? span_end(p, n, i, SPAN_MAX) : i + 1;
			if (k - i > 1 && write_span(p, i, k, buf) == 0) {
				i = k;
				continue;
			}
			for (; i < k; i++)
				if (sp_patch_write(v[i].addr, v[i].bytes, v[i].len) != 0) {
					sp_info("patch: code at %#lx (%zu bytes) could not be written",
						(unsigned long)v[i].addr, v[i].len);
					if (v[i].failed)
						*v[i].failed = true;
				}
		}
		sp_free(buf);
		sp_free(p);
	}
	sp_free(v);
	while (blocks) {
		struct later_block *next = blocks->next;
		sp_sys_munmap(blocks, sizeof(*blocks) + blocks->room);
		blocks = next;
	}
}

const char *sp_patch_refusal(void)
{
	return refusal;
}

bool sp_patch_on_fault(int sig, const siginfo_t *si, const void *ucv)
{
	uint32_t gen = atomic_load_explicit(&win_gen, memory_order_acquire);
	if (gen == 0 || sig != SIGSEGV || si->si_code != SEGV_ACCERR || in_window)
		return false;   /* no window ever, not a protection fault, or the writer itself */
	const ucontext_t *uc = ucv;
	if (!(uc->uc_mcontext.gregs[REG_ERR] & PF_INSTR))
		return false;   /* a data access: reads are allowed in the window, writes never */
	uintptr_t at = (uintptr_t)si->si_addr;
	if (gen & 1) {
		uintptr_t lo = atomic_load_explicit(&win_lo, memory_order_acquire);
		uintptr_t hi = atomic_load_explicit(&win_hi, memory_order_acquire);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&win_gen, memory_order_relaxed) == gen && at >= lo && at < hi) {
			while (atomic_load_explicit(&win_gen, memory_order_acquire) == gen)
				raw_syscall(SYS_futex, (long)&win_gen, FUTEX_WAIT_PRIVATE, (long)gen, 0);
			return true;   /* in a later window, it faults and waits again */
		}
	}
	/* Not in the open window: the fault may still have been taken while
	 * an earlier one was open.  A fetch that faulted did nothing, so run
	 * it once more; faulting again at the same generation, it is the
	 * application's. */
	if (retried_gen == gen)
		return false;
	retried_gen = gen;
	return true;
}

void sp_patch_sync(void)
{
	if (sync_state == 0) {
		int cmds = membarrier(MEMBARRIER_CMD_QUERY, 0);
		if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
		    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0) == 0)
			sync_state = 1;
		else {
			sync_state = -1;
			sp_info("patch: membarrier SYNC_CORE unavailable: code changes reach other cores lazily");
		}
	}
	if (sync_state == 1)
		membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0);
	atomic_thread_fence(memory_order_seq_cst);
}

void sp_patch_atfork_prepare(void)
{
	fork_locked = lock_patch() == 0;   /* EDEADLK: ours, no window open */
}

void sp_patch_atfork_parent(void)
{
	if (fork_locked)
		unlock_patch();
	fork_locked = false;
}

uint64_t sp_patch_epoch(void)
{
	return holds > 0 ? epoch : 0;
}

int sp_patch_read(uintptr_t addr, void *buf, size_t len)
{
	int rc = -1;
	lock_patch();
	int fd = open_mem();
	/* /proc/self/mem: an unmapped address is EIO, never a fault */
	if (fd >= 0 && raw_syscall(SYS_pread64, fd, (long)buf, (long)len, (long)addr) == (long)len)
		rc = 0;
	if (fd >= 0 && !holds)
		close_mem();
	unlock_patch();
	return rc;
}

void sp_patch_atfork_child(void)
{
	epoch++;
	close_mem();
	holds = 0;        /* the parent's writers are not here */
	sync_state = 0;   /* registration belongs to the parent's mm */
	fork_locked = false;
	my_tid = 0;       /* the child's thread has a tid of its own */
	atomic_store(&patch_owner, 0);
	atomic_store(&patch_waiters, 0);
}
