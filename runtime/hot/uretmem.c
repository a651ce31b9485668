/* uretmem — see uretmem.h. */
#include "uretmem.h"
#include "rawsys.h"
#include "taskstack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define N_RECS 8192

/* state: generation << 2 | one of these; the generation moves at every
 * free, so a reclaimer's compare-and-swap fails on a record that was freed
 * and registered again since it read the owner */
enum { FREE = 0, BUSY = 1, OWNED = 2 };

struct rec {
	_Atomic uint64_t state;
	_Atomic int tid;          /* 0: not known yet (registered in a CLONE_VM child) */
	size_t bytes0;            /* segment 0's bytes (sp_uretmem_seg_bytes) */
	void *_Atomic seg[SP_URETMEM_SEGS];   /* NULL: not mapped */
};

static struct rec recs[N_RECS];
static _Atomic int high;          /* records [0, high) were ever used */
static _Atomic int n_owned;
static _Atomic int left_by_pass;  /* n_owned after the last pass */
static _Atomic int our_pid;

static int sys_getpid(void) { return (int)sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0); }
static int sys_gettid(void) { return (int)sp_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0); }

void sp_uretmem_prepare(void)
{
	atomic_store(&our_pid, sys_getpid());
}

static void *map(size_t bytes)
{
	return sp_sys_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
}

void *sp_uretmem_alloc(size_t bytes, int *owner)
{
	int pid = sys_getpid();
	/* a child running on our memory and TLS (vfork, posix_spawn) is not
	 * the thread this stack is for: the owner is left unknown */
	int tid = pid == atomic_load(&our_pid) ? sys_gettid() : 0;
	void *p = map(bytes);
	if (p == MAP_FAILED)
		return p;
	for (int i = 0; i < N_RECS; i++) {
		struct rec *r = &recs[i];
		uint64_t s = atomic_load(&r->state);
		if ((s & 3) != FREE || !atomic_compare_exchange_strong(&r->state, &s, (s & ~3ull) | BUSY))
			continue;
		atomic_store(&r->tid, tid);
		r->bytes0 = bytes;
		for (int k = 1; k < SP_URETMEM_SEGS; k++)
			atomic_store(&r->seg[k], NULL);
		atomic_store(&r->seg[0], p);
		atomic_store(&r->state, (s & ~3ull) | OWNED);
		int h = atomic_load(&high);
		while (h < i + 1 && !atomic_compare_exchange_weak(&high, &h, i + 1))
			;
		atomic_fetch_add(&n_owned, 1);
		*owner = i;
		return p;
	}
	sp_sys_munmap(p, bytes);   /* 8192 threads' stacks at once: this one goes without */
	return MAP_FAILED;
}

void *sp_uretmem_segment(int owner, int k)
{
	struct rec *r = &recs[owner];
	void *have = atomic_load(&r->seg[k]);
	if (have)
		return have;
	size_t bytes = sp_uretmem_seg_bytes(r->bytes0, k);
	void *p = map(bytes);
	if (p == MAP_FAILED)
		return NULL;
	/* a signal's hit in between may have grown it first (the thread's own
	 * record: nobody else maps its segments) */
	if (atomic_compare_exchange_strong(&r->seg[k], &have, p))
		return p;
	sp_sys_munmap(p, bytes);
	return have;
}

static void release(struct rec *r, uint64_t s)
{
	for (int k = 0; k < SP_URETMEM_SEGS; k++) {
		void *p = atomic_load(&r->seg[k]);
		if (p)
			sp_sys_munmap(p, sp_uretmem_seg_bytes(r->bytes0, k));
	}
	atomic_store(&r->state, ((s >> 2) + 1) << 2 | FREE);
	atomic_fetch_sub(&n_owned, 1);
}

void sp_uretmem_free(int owner)
{
	struct rec *r = &recs[owner];
	uint64_t s = atomic_load(&r->state);
	if ((s & 3) == OWNED && atomic_compare_exchange_strong(&r->state, &s, (s & ~3ull) | BUSY))
		release(r, s);
}

/* Unmap the stacks of threads that are gone. */
static void reclaim(int self)
{
	int pid = atomic_load(&our_pid);
	int h = atomic_load(&high);
	for (int i = 0; i < h; i++) {
		struct rec *r = &recs[i];
		uint64_t s = atomic_load(&r->state);
		int tid = atomic_load(&r->tid);
		if ((s & 3) != OWNED || i == self || tid == 0)
			continue;
		if (!sp_task_gone_in(pid, tid))
			continue;                 /* alive (or its tid reused: later) */
		if (atomic_compare_exchange_strong(&r->state, &s, (s & ~3ull) | BUSY))
			release(r, s);
	}
	atomic_store(&left_by_pass, atomic_load(&n_owned));
}

void sp_uretmem_exiting(int owner)
{
	if (owner >= 0)
		atomic_store(&recs[owner].tid, sys_gettid());
	if (atomic_load(&n_owned) >= 2 * atomic_load(&left_by_pass) + 16)
		reclaim(owner);
}

void sp_uretmem_atfork_child(int owner)
{
	atomic_store(&our_pid, sys_getpid());
	if (owner >= 0)
		atomic_store(&recs[owner].tid, sys_gettid());
	int h = atomic_load(&high);
	for (int i = 0; i < h; i++) {
		uint64_t s = atomic_load(&recs[i].state);
		if ((s & 3) == OWNED && i != owner)
			release(&recs[i], s);   /* their threads stayed in the parent */
	}
	atomic_store(&left_by_pass, atomic_load(&n_owned));
}
