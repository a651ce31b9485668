/* uret — see uret.h for the mechanism. */
#include "uret.h"
#include "ctx.h"
#include "guard.h"
#include "latency.h"
#include "timeline.h"
#include "log.h"
#include "probe.h"
#include "rawsys.h"
#include "tstate.h"
#include "uretmem.h"
#include "xsave.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Entries [0, n) may be in use; every entry at or above n is PENDING
 * (uret.h).  hiwater: entries ever claimed, searched by the recovery.
 * The entries lie in segments (uretmem.h): SEG0 in segment 0, then
 * SEG0 << (k - 1) in segment k, mapped before n first passes into it, so
 * that every entry below n, and entry n itself, is always there. */
struct ustack {
	struct sp_uret_entry *seg[SP_URETMEM_SEGS];
	uint64_t n;
	uint64_t hiwater;
};

#define SEG0_SHIFT 9
#define SEG0 ((uint64_t)1 << SEG0_SHIFT)
_Static_assert(SEG0 << (SP_URETMEM_SEGS - 1) == SP_URET_DEPTH, "the segments hold SP_URET_DEPTH entries");

/* The segment of entry I, and I's place in it. */
static inline int seg_of(uint64_t i)
{
	return i < SEG0 ? 0 : 64 - __builtin_clzll(i >> SEG0_SHIFT);
}

static inline uint64_t seg_start(int k)
{
	return k ? SEG0 << (k - 1) : 0;
}

static __thread struct ustack ustack __attribute__((tls_model("initial-exec")));

/* Entry I (below n, or n: mapped). */
static inline struct sp_uret_entry *ent(uint64_t i)
{
	int k = seg_of(i);
	return &ustack.seg[k][i - seg_start(k)];
}
static pthread_key_t ustack_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t recovered, recovered_reported;

static __thread int ustack_owner __attribute__((tls_model("initial-exec")));   /* uretmem record + 1 */

static void count_lost(const struct sp_uret_entry *e, int stripe);
static bool dead(const struct sp_uret_entry *e);
static void drop(struct sp_uret_entry *e, uint8_t st, int stripe);
static void trim(void);

/* The thread is leaving (its key destructor, run by __nptl_deallocate_tsd).
 * Returns still pending here may yet come: __nptl_deallocate_tsd's own,
 * and those of whatever the thread calls before it ends.  So the stack is
 * kept (uretmem unmaps it once the thread is gone), and the entries that
 * can never return are counted lost now.  The frames that can return are
 * this call's callers below start_thread: entered after every frame the
 * thread left, their entries are the newest, with slots just above this
 * frame and growing toward the stack's top.  The newest entries that fit
 * are kept; from the first that does not, every older one belongs to a
 * frame that was left. */
static void thread_exiting(void *v)
{
	(void)v;
	uintptr_t here = (uintptr_t)__builtin_frame_address(0), last = here;
	int stripe = -1;
	bool kept_all = true;
	for (size_t i = ustack.n; i-- > 0;) {
		struct sp_uret_entry *e = ent(i);
		uint8_t st = e->state;
		if (st == SP_URET_FREE)
			continue;
		if (kept_all && e->slot > last && e->slot - here <= 4096 && !dead(e)) {
			last = e->slot;
			continue;
		}
		kept_all = false;
		if (stripe < 0)
			stripe = sp_tstate_stripe();
		drop(e, st, stripe);
	}
	trim();
	sp_uretmem_exiting(ustack_owner - 1);
}

static void make_key(void)
{
	pthread_key_create(&ustack_key, thread_exiting);
}

/* This thread's shadow stack (its segment 0), reserved on first use.  It never moves: a
 * signal handler may use it between any two instructions of ours.  This
 * runs inside probed calls, so it calls no libc function the application
 * may have probed (a return probe on libc's mmap would re-enter here
 * without end): raw system calls, and the one libc call (setspecific)
 * marked as the runtime's. */
static struct sp_uret_entry *stack_base(void)
{
	struct sp_uret_entry *e = ustack.seg[0];
	if (__builtin_expect(e != NULL, 1))
		return e;
	int owner;
	void *p = sp_uretmem_alloc(SEG0 * sizeof(struct sp_uret_entry), &owner);
	if (p == MAP_FAILED)
		return NULL;
	if (!__atomic_compare_exchange_n(&ustack.seg[0], &e, (struct sp_uret_entry *)p, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		sp_uretmem_free(owner);   /* a signal handler reserved it first */
		return e;
	}
	ustack_owner = owner + 1;
	/* the key was made at attach (sp_uret_prepare): this is only the
	 * per-thread setspecific */
	sp_tls.runtime++;
	pthread_setspecific(ustack_key, p);
	sp_tls.runtime--;
	return p;
}

void sp_uret_prepare(void)
{
	pthread_once(&key_once, make_key);
	sp_uretmem_prepare();
}

void sp_uret_atfork_child(void)
{
	sp_uretmem_atfork_child(ustack_owner - 1);
}

/* Whether E's frame is proven gone: its slot no longer holds what this
 * entry left there (the frame was unwound by longjmp or an exception and
 * the stack reused).  A slot that still holds it may belong to a live frame
 * on another stack (a coroutine, a sigaltstack handler), so only
 * proven-dead entries go.  A PENDING entry is being pushed or dropped by
 * code a signal interrupted: never dead by inspection (its fields may not
 * be written yet).  A BUSY one is being returned through: its slot holds
 * the trampoline until it is freed. */
static bool dead(const struct sp_uret_entry *e)
{
	uintptr_t now;
	switch (e->state) {
	case SP_URET_FREE:
		return true;
	case SP_URET_PENDING:
		return false;
	case SP_URET_LIVE:
		return *(const uintptr_t *)e->slot != (uintptr_t)sp_uret_trampoline;
	case SP_URET_PARKED:
	case SP_URET_UNSWAPPED:
		return *(const uintptr_t *)e->slot != e->orig;
	default:
		now = *(const uintptr_t *)e->slot;
		return now != (uintptr_t)sp_uret_trampoline && now != e->orig;
	}
}

static void count_lost(const struct sp_uret_entry *e, int stripe)
{
	for (uint32_t i = 0; i < e->n; i++)
		sp_count_add(stripe, e->p[i]->id, SP_LOST);
}

/* Remove E (in state ST), its return counted lost.  PENDING while it is
 * counted: a signal handler arriving meanwhile neither counts it again nor
 * takes it for free. */
static void drop(struct sp_uret_entry *e, uint8_t st, int stripe)
{
	if (!sp_sig_cas8(&e->state, st, SP_URET_PENDING))
		return;   /* a signal handler dropped it first */
	count_lost(e, stripe);
	e->state = SP_URET_FREE;
}

/* Shrink the top over free entries.  Each entry becomes PENDING before the
 * top moves below it, so at no instant is an entry at or above the top
 * free: a handler that claims it meanwhile finds it PENDING. */
static void trim(void)
{
	for (;;) {
		uint64_t k = ustack.n;
		if (!k || ent(k - 1)->state != SP_URET_FREE ||
		    !sp_sig_cas8(&ent(k - 1)->state, SP_URET_FREE, SP_URET_PENDING))
			return;
		if (!sp_sig_cas(&ustack.n, k, k - 1))
			ent(k - 1)->state = SP_URET_FREE;   /* the top moved: look again */
	}
}

/* Drop the dead entries at the top whose slots lie at or below SLOT: frames
 * this call replaced (longjmp'ed out of). */
static void drop_stale(uintptr_t slot, int stripe)
{
	for (;;) {
		trim();
		uint64_t k = ustack.n;
		if (!k)
			return;
		struct sp_uret_entry *e = ent(k - 1);
		uint8_t st = e->state;
		if (st == SP_URET_PENDING || e->slot > slot || !dead(e))
			return;
		drop(e, st, stripe);
	}
}

/* Entry I's segment, mapped if it was not yet (segment 0 is).  false:
 * out of memory. */
static bool segment_for(uint64_t i)
{
	int k = seg_of(i);
	if (__builtin_expect(ustack.seg[k] != NULL, 1))
		return true;
	if (!ustack_owner)   /* segment 0 just made, its record not noted yet */
		return false;
	struct sp_uret_entry *p = sp_uretmem_segment(ustack_owner - 1, k);
	if (!p)
		return false;
	__atomic_store_n(&ustack.seg[k], p, __ATOMIC_RELAXED);   /* the same, whoever maps it */
	return true;
}

/* A new PENDING entry at the top for the call whose return address is at
 * RSP, or NULL when there is no room (the return is then missed). */
static struct sp_uret_entry *claim(uintptr_t rsp, int stripe)
{
	if (!stack_base())
		return NULL;
	if (ustack.n && ent(ustack.n - 1)->slot <= rsp)
		drop_stale(rsp, stripe);
	/* the top moves only from an entry whose next one is mapped: a
	 * signal's hit may read the top entry between any two instructions */
	uint64_t i;
	do {
		i = ustack.n;
		if (i + 1 >= SP_URET_DEPTH || !segment_for(i + 1))
			return NULL;
	} while (!sp_sig_cas(&ustack.n, i, i + 1));
	for (uint64_t h = ustack.hiwater; h <= i && !sp_sig_cas(&ustack.hiwater, h, i + 1);)
		h = ustack.hiwater;
	struct sp_uret_entry *e = ent(i);   /* PENDING: nobody takes it */
	e->slot = rsp;
	e->orig = *(const uintptr_t *)rsp;
	e->n = 0;
	e->t0_ns = 0;
	return e;
}

/* Swap the trampoline in, then make E live: until then it is PENDING and
 * no handler looks at it. */
static void swap_in(struct sp_uret_entry *e)
{
	*(uintptr_t *)e->slot = (uintptr_t)sp_uret_trampoline;
	atomic_signal_fence(memory_order_seq_cst);
	e->state = SP_URET_LIVE;
}

struct sp_uret_entry *sp_uret_begin(uintptr_t rsp)
{
	return claim(rsp, sp_tstate_stripe());
}

uint64_t *sp_uret_add(struct sp_uret_entry *e, struct sp_probe *p)
{
	if (e->n == SP_URET_PROBES)
		return NULL;
	e->p[e->n] = p;
	e->cookie[e->n] = 0;
	return &e->cookie[e->n++];
}

void sp_uret_drop_last(struct sp_uret_entry *e)
{
	if (e->n)
		e->n--;
}

/* Latency, and timeline spans made here (uretprobes' and latency's;
 * sessions' spans are made by their trace handler, which sees the entry). */
bool sp_uret_wants_span(const struct sp_probe *p)
{
	return p->tl_label >= 0 && sp_timeline_on() &&
	       (p->action == SP_ACT_LATENCY || p->kind == SP_KIND_URETPROBE);
}

static bool wants_entry_time(const struct sp_probe *p)
{
	return p->action == SP_ACT_LATENCY || sp_uret_wants_span(p);
}

void sp_uret_commit(struct sp_uret_entry *e)
{
	if (e->n == 0) {          /* no probe wanted it after all */
		e->state = SP_URET_FREE;
		trim();
		return;
	}
	for (uint32_t i = 0; i < e->n; i++)
		if (wants_entry_time(e->p[i])) {
			e->t0_ns = sp_latency_now();
			break;
		}
	swap_in(e);
}

/* The return through SLOT has no entry: our bookkeeping lost it (which the
 * rules above should make impossible).  The newest entry that ever held
 * SLOT still has the address to go back to; its return is counted lost and
 * the report says so (sp_uret_settle).  0 when there is none at all. */
static uintptr_t recover(uintptr_t slot, int stripe)
{
	for (uint64_t i = ustack.seg[0] ? ustack.hiwater : 0; i-- > 0;) {
		struct sp_uret_entry *e = ent(i);
		if (e->slot != slot)
			continue;
		uintptr_t orig = e->orig;
		uint8_t st = e->state;
		if (i < ustack.n && st != SP_URET_FREE && st != SP_URET_PENDING)
			drop(e, st, stripe);
		atomic_fetch_add(&recovered, 1);
		return orig;
	}
	return 0;
}

void sp_uret_dispatch(struct selfprobe_regs *regs)
{
	uintptr_t slot = regs->rsp - 8;
	int stripe = sp_tstate_stripe();
	sp_tstate_enter(stripe);
	/* The returning frame's entry: the top one, unless frames were left
	 * without returning (dead entries above it) or another stack's live
	 * frames sit above it (kept). */
	struct sp_uret_entry *e = NULL;
	uint64_t top = ustack.n, k = top;
	for (; k; k--) {
		struct sp_uret_entry *c = ent(k - 1);
		if (c->slot == slot && c->state == SP_URET_LIVE &&
		    sp_sig_cas8(&c->state, SP_URET_LIVE, SP_URET_BUSY)) {
			e = c;
			break;
		}
	}
	if (!e) {
		uintptr_t orig = recover(slot, stripe);
		if (!orig) {
			static const char msg[] = "selfprobe: fatal: a return address was lost "
						  "(no shadow entry ever held its slot)\n";
			ssize_t r = write(2, msg, sizeof(msg) - 1);
			(void)r;
			abort();
		}
		regs->rip = orig;
		sp_tstate_leave(stripe);
		*(uintptr_t *)slot = orig;
		return;
	}
	/* BUSY from here on: read in place, nothing reuses it until it is
	 * freed (handlers, and signal handlers, push above it). */
	for (uint64_t i = k; i < top; i++) {
		struct sp_uret_entry *c = ent(i);
		uint8_t st = c->state;
		if (st != SP_URET_FREE && st != SP_URET_PENDING && dead(c))
			drop(c, st, stripe);
	}
	regs->rip = e->orig;
	if (!sp_tls.runtime) {
		bool nested = sp_tls.inside;
		sp_tls.inside = 1;
		uint64_t dt = 0;
		if (e->t0_ns) {
			sp_tls.runtime++;   /* our clock call is not the application's */
			dt = sp_latency_now() - e->t0_ns;
			sp_tls.runtime--;
		}
		for (uint32_t i = 0; i < e->n; i++) {
			struct sp_probe *p = e->p[i];
			if (!p->attached)
				continue;   /* detached since the entry */
			sp_count_add(stripe, p->id, p->kind == SP_KIND_USESSION ? SP_RETURNS : SP_HITS);
			if (p->action == SP_ACT_LATENCY && p->lat_slot >= 0)
				sp_latency_record(stripe, (uint32_t)p->lat_slot, dt);
			if (e->t0_ns && sp_uret_wants_span(p))
				sp_timeline_span(p, e->t0_ns, dt, regs->rax);
			if (p->fn) {
				if (nested)
					sp_count_add(stripe, p->id, SP_MISSED);
				else
					sp_guard_call_handler(p, regs, NULL, &e->cookie[i], true);
			}
		}
		sp_tls.inside = nested;
	}
	e->state = SP_URET_FREE;
	trim();
	sp_tstate_leave(stripe);
	*(uintptr_t *)slot = regs->rip;
}

/* Every live entry's slot given back its return address, the entry marked
 * STATE (parked for an unwinder, unswapped for a stack walk). */
static void put_back_live(enum sp_uret_state state)
{
	for (size_t i = 0; i < ustack.n; i++) {
		struct sp_uret_entry *e = ent(i);
		uintptr_t *slot = (uintptr_t *)e->slot;
		if (e->state == SP_URET_LIVE && *slot == (uintptr_t)sp_uret_trampoline) {
			*slot = e->orig;
			e->state = state;
		}
	}
}

void sp_uret_restore_all(void)
{
	put_back_live(SP_URET_PARKED);
}

void sp_uret_unpark(uintptr_t caller_rsp)
{
	int stripe = -1;
	for (size_t i = 0; i < ustack.n; i++) {
		struct sp_uret_entry *e = ent(i);
		if (e->state != SP_URET_PARKED)
			continue;
		uintptr_t *slot = (uintptr_t *)e->slot;
		if (e->slot >= caller_rsp && *slot == e->orig) {
			*slot = (uintptr_t)sp_uret_trampoline;   /* survived */
			e->state = SP_URET_LIVE;
		} else {
			if (stripe < 0)
				stripe = sp_tstate_stripe();
			drop(e, SP_URET_PARKED, stripe);         /* unwound */
		}
	}
	if (ustack.seg[0])
		trim();
}

size_t sp_uret_unswap(void)
{
	put_back_live(SP_URET_UNSWAPPED);
	return ustack.n;
}

void sp_uret_reswap(size_t n)
{
	for (size_t i = 0; i < n && i < ustack.n; i++) {
		struct sp_uret_entry *e = ent(i);
		uintptr_t *slot = (uintptr_t *)e->slot;
		if (e->state == SP_URET_UNSWAPPED && *slot == e->orig) {
			*slot = (uintptr_t)sp_uret_trampoline;
			e->state = SP_URET_LIVE;
		}
	}
}

void sp_uret_settle(void)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	int stripe = -1;
	for (size_t i = 0; i < ustack.n; i++) {
		struct sp_uret_entry *e = ent(i);
		uint8_t st = e->state;
		if (st == SP_URET_FREE || st == SP_URET_PENDING)
			continue;
		if (e->slot < here || dead(e)) {   /* deeper than this call, or reused: gone */
			if (stripe < 0)
				stripe = sp_tstate_stripe();
			drop(e, st, stripe);
		}
	}
	if (ustack.seg[0])
		trim();
	uint64_t r = atomic_load(&recovered), seen = atomic_load(&recovered_reported);
	if (r != seen && atomic_compare_exchange_strong(&recovered_reported, &seen, r))
		sp_report_error("return probes", "%" PRIu64 " return%s found no shadow entry (bookkeeping lost): "
			       "resumed at the last address recorded for the slot, counted lost",
			       r - seen, r - seen == 1 ? "" : "s");
}

bool sp_uret_push_counted(uintptr_t rsp, struct sp_probe *const *probes, uint32_t n)
{
	struct sp_uret_entry *e = claim(rsp, sp_tstate_stripe());
	if (!e)
		return false;
	e->n = n;
	for (uint32_t i = 0; i < n; i++)
		e->p[i] = probes[i];
	swap_in(e);
	return true;
}
