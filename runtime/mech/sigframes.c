/* sigframes — see sigframes.h. */
#include "sigframes.h"
#include "memread.h"
#include "rawsys.h"
#include "sigatomic.h"
#include "taskstack.h"

#include <stdatomic.h>
#include <string.h>
#include <ucontext.h>

#define FRAMES_MAX 32
#define RECORDS_MAX 1024

struct record {
	_Atomic pid_t tid;            /* the owner; 0: free */
	uint64_t depth;               /* frames pushed (signal-atomic) */
	bool unknown;                 /* a frame could not be recorded */
	void *_Atomic uc[FRAMES_MAX];
};

static struct record records[RECORDS_MAX];
static __thread struct record *mine __attribute__((tls_model("initial-exec")));
static __thread long my_unrecorded __attribute__((tls_model("initial-exec")));   /* frames without a record */

static pid_t gettid_raw(void)
{
	return (pid_t)sp_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
}

/* Threads that run a handler with no record (the table full of live
 * threads): every blocked thread without a record is then unknown. */
static _Atomic long unrecorded;

static bool alive(pid_t tid)
{
	return !sp_task_gone(tid);
}

static struct record *take(struct record *r)
{
	r->depth = 0;
	r->unknown = false;
	for (int k = 0; k < FRAMES_MAX; k++)
		atomic_store(&r->uc[k], NULL);
	return r;
}

/* This thread's record: the one a dead thread of the same id left (ids are
 * reused), a free one, or one whose thread is gone. */
static struct record *claim(void)
{
	pid_t tid = gettid_raw();
	for (int i = 0; i < RECORDS_MAX; i++)
		if (atomic_load(&records[i].tid) == tid)
			return take(&records[i]);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < RECORDS_MAX; i++) {
			pid_t t = atomic_load(&records[i].tid);
			if (pass == 0 ? t != 0 : (t == 0 || alive(t)))
				continue;
			if (atomic_compare_exchange_strong(&records[i].tid, &t, tid))
				return take(&records[i]);
		}
	return NULL;
}

int sp_sigframes_push(void *uc)
{
	if (mine && atomic_load(&mine->tid) != gettid_raw())
		mine = NULL;      /* a fork child: its parent thread's record */
	if (!mine)
		mine = claim();   /* tried again at each frame while the table is full */
	if (!mine) {
		my_unrecorded++;
		atomic_fetch_add(&unrecorded, 1);
		return -2;
	}
	uint64_t i = sp_sig_xadd(&mine->depth, 1);
	if (i >= FRAMES_MAX) {
		mine->unknown = true;   /* stays until the thread has no frame */
		return (int)i;
	}
	atomic_store_explicit(&mine->uc[i], uc, memory_order_release);
	return (int)i;
}

void sp_sigframes_pop(int token)
{
	if (token == -2) {
		my_unrecorded--;
		atomic_fetch_sub(&unrecorded, 1);
	}
	if (token < 0 || !mine)
		return;
	if (token < FRAMES_MAX)
		atomic_store_explicit(&mine->uc[token], NULL, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	mine->depth = (uint64_t)token;
	if (token == 0)
		mine->unknown = false;
}

/* The PC saved in the frame at UC, read without trusting the memory. */
static bool frame_pc(const void *uc, uintptr_t *pc)
{
	const ucontext_t *u = uc;
	uint64_t v = 0;
	if (!sp_mem_read((uintptr_t)&u->uc_mcontext.gregs[REG_RIP], &v, sizeof(v)))
		return false;
	*pc = (uintptr_t)v;
	return true;
}

static struct record *record_of(pid_t tid)
{
	if (tid == 0)
		return mine;
	for (int i = 0; i < RECORDS_MAX; i++)
		if (atomic_load(&records[i].tid) == tid)
			return &records[i];
	return NULL;
}

bool sp_sigframes_live(pid_t tid, uintptr_t sp, uintptr_t lo, uintptr_t hi, uintptr_t alo, uintptr_t ahi)
{
	bool sp_alt = sp >= alo && sp < ahi;
	struct record *r = record_of(tid);
	if (!r)
		return atomic_load(&unrecorded) > 0;
	if (r->unknown)
		return true;
	uint64_t depth = r->depth < FRAMES_MAX ? r->depth : FRAMES_MAX;
	for (uint64_t i = 0; i < depth; i++) {
		uintptr_t uc = (uintptr_t)atomic_load_explicit(&r->uc[i], memory_order_acquire);
		bool alt = uc >= alo && uc < ahi;
		bool dead = alt ? !sp_alt : uc >= lo && uc < hi && uc < sp;
		if (uc && !dead)
			return true;
	}
	return false;
}

bool sp_sigframes_any(pid_t tid, bool (*inside)(uintptr_t pc, void *ctx), void *ctx)
{
	struct record *r = record_of(tid);
	if (!r) {
		/* no record: no frame ever, or none could be recorded */
		if ((tid == 0 && my_unrecorded > 0) || (tid != 0 && atomic_load(&unrecorded) > 0))
			return inside(0, ctx);
		return false;
	}
	if (r->unknown)
		return inside(0, ctx);
	uint64_t depth = r->depth < FRAMES_MAX ? r->depth : FRAMES_MAX;
	for (uint64_t i = 0; i < depth; i++) {
		void *uc = atomic_load_explicit(&r->uc[i], memory_order_acquire);
		uintptr_t pc;
		if (uc && frame_pc(uc, &pc) && inside(pc, ctx))
			return true;
	}
	return false;
}
