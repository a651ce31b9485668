/* stopworld — see stopworld.h. */
#include "stopworld.h"
#include "procread.h"
#include "log.h"
#include "sigframes.h"
#include "taskstack.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* The signal's value: a magic tag and the check's generation, so that a
 * late answer to an earlier check is never counted for the current one. */
#define TAG ((uint64_t)0x5350 << 48)
int sp_stopworld_signal(void)
{
	return SIGRTMAX - 3;   /* glibc keeps the low real-time signals for itself */
}

static _Atomic uint64_t generation;
static struct sp_stop_window *_Atomic active;  /* the windows being checked */
static _Atomic size_t n_active;
static _Atomic long acks;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;

/* The window holding PC strictly after its first byte, or NULL. */
static struct sp_stop_window *inside(struct sp_stop_window *w, size_t n, uintptr_t pc)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (w[mid].site + w[mid].len <= pc)
			lo = mid + 1;
		else if (w[mid].site >= pc)
			hi = mid;
		else
			return &w[mid];
	}
	return NULL;
}

struct frames_ctx {
	struct sp_stop_window *w;
	size_t n;
};

/* A signal frame resumes at PC (0: somewhere unknown): its window, or every
 * window, is busy. */
static bool frame_busy(uintptr_t pc, void *ctx)
{
	struct frames_ctx *c = ctx;
	if (pc == 0) {
		for (size_t i = 0; i < c->n; i++)
			atomic_store((_Atomic int *)&c->w[i].busy, SP_STOP_BUSY_FRAME);
		return true;
	}
	struct sp_stop_window *hit = inside(c->w, c->n, pc);
	if (hit)
		atomic_store((_Atomic int *)&hit->busy, SP_STOP_BUSY_FRAME);
	return false;   /* look at the other frames too */
}

int sp_stopworld_on_signal(const siginfo_t *si, void *ucv)
{
	uint64_t v = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
	if (si->si_code != SI_QUEUE || (v & ~(((uint64_t)1 << 48) - 1)) != TAG || si->si_pid != getpid())
		return 0;
	if ((v & (((uint64_t)1 << 48) - 1)) != atomic_load(&generation))
		return 1;   /* a late answer to a check that gave up */
	ucontext_t *uc = ucv;
	struct sp_stop_window *w = atomic_load(&active);
	if (w) {
		uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
		struct sp_stop_window *hit = inside(w, atomic_load(&n_active), pc);
		if (hit) {
			uint8_t off = (uint8_t)(pc - hit->site);
			for (int i = 0; i < hit->map->n; i++)
				if (hit->map->orig_off[i] == off) {
					uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(hit->reloc + hit->map->new_off[i]);
					break;
				}
			/* not on an instruction boundary of the window: cannot
			 * happen for a thread that only ran the original code */
		}
		/* handlers of the application this thread is inside */
		struct frames_ctx fc = { w, atomic_load(&n_active) };
		sp_sigframes_any(0, frame_busy, &fc);
	}
	atomic_fetch_add(&acks, 1);
	return 1;
}

/* Our signals queued and not yet arrived (sp_stopworld_in_flight). */
static _Atomic long in_flight;

void sp_stopworld_arrived(const siginfo_t *si)
{
	if (si->si_code == SI_QUEUE && si->si_pid == getpid())
		atomic_fetch_sub(&in_flight, 1);
}

long sp_stopworld_in_flight(void)
{
	return atomic_load(&in_flight);
}

int sp_stopworld_queue(pid_t tid, uint64_t value)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = sp_stopworld_signal();
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)(uintptr_t)value;
	atomic_fetch_add(&in_flight, 1);
	int rc = (int)syscall(SYS_rt_tgsigqueueinfo, si.si_pid, tid, si.si_signo, &si);
	if (rc != 0)
		atomic_fetch_sub(&in_flight, 1);
	return rc;
}

int sp_stopworld_check(struct sp_stop_window *windows, size_t n)
{
	pid_t self = (pid_t)syscall(SYS_gettid);
	struct sp_dir d;   /* not opendir: its stream would be on the program's heap */
	int opened = sp_dir_open(&d, "/proc/self/task");
	if (opened)
		return opened;
	pthread_mutex_lock(&check_lock);
	for (size_t i = 0; i < n; i++)
		windows[i].busy = 0;
	atomic_store(&n_active, n);
	atomic_store(&active, windows);
	atomic_store(&acks, 0);
	uint64_t gen = (atomic_load(&generation) + 1) & (((uint64_t)1 << 48) - 1);
	atomic_store(&generation, gen);
	long sent = 0;
	const char *name;
	while ((name = sp_dir_next(&d))) {
		pid_t tid = (pid_t)atoi(name);
		if (tid <= 0 || tid == self)
			continue;
		uintptr_t sp = 0, pc = 0;
		if (sp_task_blocked(tid, &sp, &pc) == 0) {
			struct sp_stop_window *w = inside(windows, n, pc);
			if (w)
				w->busy = SP_STOP_BUSY_BLOCKED;
			struct frames_ctx fc = { windows, n };
			sp_sigframes_any(tid, frame_busy, &fc);
			continue;
		}
		if (sp_stopworld_queue(tid, TAG | gen) == 0)
			sent++;
	}
	sp_dir_close(&d);
	int rc = 0;
	/* Wait for every signalled thread: 2 s, then give up (a thread with
	 * SIGTRAP blocked, or stopped by a debugger). */
	for (int i = 0; atomic_load(&acks) < sent; i++) {
		if (i >= 20000) {
			sp_info("stopworld: %ld of %ld threads did not answer", sent - atomic_load(&acks), sent);
			rc = -ETIMEDOUT;
			break;
		}
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&active, NULL);
	atomic_store(&generation, (gen + 1) & (((uint64_t)1 << 48) - 1));   /* late answers: ignored */
	pthread_mutex_unlock(&check_lock);
	return rc;
}

/* heapsort: in place, no allocation, no libc */
static void sift_down(struct sp_stop_window *w, size_t root, size_t n, int (*cmp)(const void *, const void *))
{
	for (size_t child; (child = 2 * root + 1) < n; root = child) {
		if (child + 1 < n && cmp(&w[child + 1], &w[child]) > 0)
			child++;
		if (cmp(&w[root], &w[child]) >= 0)
			return;
		struct sp_stop_window t = w[root];
		w[root] = w[child];
		w[child] = t;
	}
}

void sp_stopworld_sort(struct sp_stop_window *w, size_t n, int (*cmp)(const void *, const void *))
{
	/* an attach's sites come in address order: the windows usually are
	 * sorted already (a heap sort of libc:*'s 3600 was ~1 % of it) */
	size_t sorted = 1;
	while (sorted < n && cmp(&w[sorted - 1], &w[sorted]) <= 0)
		sorted++;
	if (sorted >= n)
		return;
	for (size_t i = n / 2; i-- > 0;)
		sift_down(w, i, n, cmp);
	for (size_t end = n; end-- > 1;) {
		struct sp_stop_window t = w[0];
		w[0] = w[end];
		w[end] = t;
		sift_down(w, 0, end, cmp);
	}
}

struct sp_stop_window *sp_stopworld_find(struct sp_stop_window *w, size_t n, uintptr_t site)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w[mid].site < site)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && w[lo].site == site ? &w[lo] : NULL;
}
