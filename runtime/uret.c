/* uret — see uret.h for the mechanism. */
#include "uret.h"
#include "dispatch.h"
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
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

struct ustack {
	struct sp_uret_entry *e;
	size_t n, cap;
};

static __thread struct ustack ustack __attribute__((tls_model("initial-exec")));
static __thread int ustack_owner __attribute__((tls_model("initial-exec")));   /* uretmem record + 1 */
static pthread_key_t ustack_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void count_lost(const struct sp_uret_entry *e, int stripe);
static bool dead(const struct sp_uret_entry *e);

/* The thread is leaving (its key destructor, run by __nptl_deallocate_tsd).
 * Returns still pending here may yet come: __nptl_deallocate_tsd's own,
 * and those of whatever the thread calls before it ends.  So the stack is
 * kept (uretmem unmaps it once the thread is gone), and the entries that
 * can never return are counted lost now.  The frames that can return are
 * this call's callers below start_thread: they were entered after every
 * frame the thread left (by returning from its function, pthread_exit or
 * cancellation), so their entries are the newest, on top, with slots just
 * above this frame and growing toward the stack's top.  The newest entries
 * that fit are kept; from the first that does not, every older one
 * belongs to a frame that was left. */
static void thread_exiting(void *v)
{
	(void)v;
	uintptr_t here = (uintptr_t)__builtin_frame_address(0), last = here;
	size_t keep = ustack.n;
	while (keep) {
		const struct sp_uret_entry *e = &ustack.e[keep - 1];
		if (e->slot <= last || e->slot - here > 4096 || dead(e))
			break;
		last = e->slot;
		keep--;
	}
	if (keep) {
		int stripe = sp_tstate_stripe();
		for (size_t i = 0; i < keep; i++)
			count_lost(&ustack.e[i], stripe);
		for (size_t i = keep; i < ustack.n; i++)
			ustack.e[i - keep] = ustack.e[i];
		ustack.n -= keep;
	}
	sp_uretmem_exiting(ustack_owner - 1);
}

static void make_key(void)
{
	pthread_key_create(&ustack_key, thread_exiting);
}

/* Room for one more entry.  This runs inside probed calls, so it calls no
 * libc function the application may have probed: libc's mmap with a
 * return probe on mmap would re-enter here without end.  Raw system
 * calls, and the one libc call (setspecific) marked as the runtime's. */
static int grow(void)
{
	if (ustack.n < ustack.cap)
		return 0;
	size_t cap = ustack.cap ? ustack.cap * 2 : 256;
	void *p;
	if (ustack.e) {
		p = sp_sys_mremap(ustack.e, ustack.cap * sizeof(*ustack.e), cap * sizeof(*ustack.e), MREMAP_MAYMOVE);
		if (p != MAP_FAILED && ustack_owner)
			sp_uretmem_moved(ustack_owner - 1, p, cap * sizeof(*ustack.e));
	} else {
		int owner;
		p = sp_uretmem_alloc(cap * sizeof(*ustack.e), &owner);
		if (p != MAP_FAILED) {
			ustack_owner = owner + 1;
			/* the key was made at attach (sp_uret_prepare): this is
			 * only the per-thread setspecific */
			sp_tls.runtime++;
			pthread_setspecific(ustack_key, p);
			sp_tls.runtime--;
		}
	}
	if (p == MAP_FAILED)
		return -ENOMEM;
	ustack.e = p;
	ustack.cap = cap;
	return 0;
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

/* An entry is dead when its slot no longer holds the trampoline's address:
 * the frame was unwound (longjmp, exception) and the stack reused.  A slot
 * that still holds it may belong to a live frame on another stack (a
 * coroutine, a sigaltstack handler), so only proven-dead entries go. */
static bool dead(const struct sp_uret_entry *e)
{
	uintptr_t now = *(const uintptr_t *)e->slot;
	return e->parked ? now != e->orig : now != (uintptr_t)sp_uret_trampoline;
}

static void count_lost(const struct sp_uret_entry *e, int stripe)
{
	for (uint32_t i = 0; i < e->n; i++)
		sp_count_add(stripe, e->p[i]->id, SP_LOST);
}

/* Drop the dead entries at or below stack slot SLOT from the top. */
static void drop_stale(uintptr_t slot, int stripe)
{
	while (ustack.n && ustack.e[ustack.n - 1].slot <= slot && dead(&ustack.e[ustack.n - 1]))
		count_lost(&ustack.e[--ustack.n], stripe);
}

struct sp_uret_entry *sp_uret_begin(uintptr_t rsp)
{
	if (grow() != 0)
		return NULL;
	struct sp_uret_entry *e = &ustack.e[ustack.n];
	e->slot = rsp;
	e->orig = *(const uintptr_t *)rsp;
	e->parked = false;
	e->n = 0;
	e->t0_ns = 0;
	return e;
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
static bool wants_span(const struct sp_probe *p)
{
	return p->tl_label >= 0 && sp_timeline_on() &&
	       (p->action == SP_ACT_LATENCY || p->kind == SP_KIND_URETPROBE);
}

static bool wants_entry_time(const struct sp_probe *p)
{
	return p->action == SP_ACT_LATENCY || wants_span(p);
}

void sp_uret_commit(struct sp_uret_entry *e)
{
	if (e->n == 0)
		return;
	int stripe = sp_tstate_stripe();
	/* entries of frames this call replaced (longjmp'ed out of) */
	drop_stale(e->slot, stripe);
	if (e != &ustack.e[ustack.n])   /* drop_stale moved the top: keep E's content */
		ustack.e[ustack.n] = *e;
	e = &ustack.e[ustack.n];
	for (uint32_t i = 0; i < e->n; i++)
		if (wants_entry_time(e->p[i])) {
			e->t0_ns = sp_latency_now();
			break;
		}
	ustack.n++;
	*(uintptr_t *)e->slot = (uintptr_t)sp_uret_trampoline;
}

void sp_uret_dispatch(struct selfprobe_regs *regs)
{
	uintptr_t slot = regs->rsp - 8;
	int stripe = sp_tstate_stripe();
	sp_tstate_enter(stripe);
	/* The returning frame's entry: the top one, unless frames were left
	 * without returning (dead entries above it) or another stack's live
	 * frames sit above it (kept, in order). */
	size_t k = ustack.n;
	while (k && ustack.e[k - 1].slot != slot)
		k--;
	if (!k) {
		/* Every swapped slot has its entry: reaching here means our
		 * bookkeeping lost one, and the caller's address with it. */
		static const char msg[] = "selfprobe: fatal: return trampoline without a shadow entry\n";
		ssize_t r = write(2, msg, sizeof(msg) - 1);
		(void)r;
		abort();
	}
	/* The common case, the top entry and no handler, reads it in place:
	 * copying the entry costs more than everything else here.  Handlers
	 * may probe-enter again and reuse the slot: they get a copy. */
	struct sp_uret_entry copy, *e = &ustack.e[k - 1];
	bool handlers = false;
	for (uint32_t i = 0; i < e->n; i++)
		handlers |= e->p[i]->fn != NULL;
	if (handlers || k != ustack.n) {
		copy = *e;
		e = &copy;
		size_t out = k - 1;
		for (size_t i = k; i < ustack.n; i++) {
			if (dead(&ustack.e[i]))
				count_lost(&ustack.e[i], stripe);
			else
				ustack.e[out++] = ustack.e[i];
		}
		ustack.n = out;
	} else
		ustack.n = k - 1;   /* no handler runs: nothing can reuse it meanwhile */
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
			if (e->t0_ns && wants_span(p))
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
	sp_tstate_leave(stripe);
	*(uintptr_t *)slot = regs->rip;
}

void sp_uret_restore_all(void)
{
	for (size_t i = 0; i < ustack.n; i++) {
		struct sp_uret_entry *e = &ustack.e[i];
		uintptr_t *slot = (uintptr_t *)e->slot;
		if (!e->parked && *slot == (uintptr_t)sp_uret_trampoline) {
			*slot = e->orig;
			e->parked = true;
		}
	}
}

void sp_uret_unpark(uintptr_t caller_rsp)
{
	size_t out = 0;
	int stripe = -1;
	for (size_t i = 0; i < ustack.n; i++) {
		struct sp_uret_entry *e = &ustack.e[i];
		if (e->parked) {
			uintptr_t *slot = (uintptr_t *)e->slot;
			if (e->slot >= caller_rsp && *slot == e->orig) {
				*slot = (uintptr_t)sp_uret_trampoline;   /* survived */
				e->parked = false;
			} else {
				if (stripe < 0)
					stripe = sp_tstate_stripe();
				count_lost(e, stripe);                   /* unwound */
				continue;
			}
		}
		ustack.e[out++] = *e;
	}
	ustack.n = out;
}

size_t sp_uret_unswap(void)
{
	for (size_t i = 0; i < ustack.n; i++) {
		uintptr_t *slot = (uintptr_t *)ustack.e[i].slot;
		if (*slot == (uintptr_t)sp_uret_trampoline)
			*slot = ustack.e[i].orig;
	}
	return ustack.n;
}

void sp_uret_reswap(size_t n)
{
	for (size_t i = 0; i < n && i < ustack.n; i++) {
		uintptr_t *slot = (uintptr_t *)ustack.e[i].slot;
		if (*slot == ustack.e[i].orig)
			*slot = (uintptr_t)sp_uret_trampoline;
	}
}

void sp_uret_settle(void)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	size_t out = 0;
	int stripe = -1;
	for (size_t i = 0; i < ustack.n; i++) {
		struct sp_uret_entry *e = &ustack.e[i];
		if (e->slot < here || dead(e)) {   /* deeper than this call, or reused: gone */
			if (stripe < 0)
				stripe = sp_tstate_stripe();
			count_lost(e, stripe);
		} else
			ustack.e[out++] = *e;
	}
	ustack.n = out;
}

bool sp_uret_push_counted(uintptr_t rsp, struct sp_probe *const *probes, uint32_t n)
{
	if (grow() != 0)
		return false;
	if (ustack.n && ustack.e[ustack.n - 1].slot <= rsp)
		drop_stale(rsp, sp_tstate_stripe());
	struct sp_uret_entry *e = &ustack.e[ustack.n];
	e->slot = rsp;
	e->orig = *(const uintptr_t *)rsp;
	e->parked = false;
	e->t0_ns = 0;
	e->n = n;
	for (uint32_t i = 0; i < n; i++)
		e->p[i] = probes[i];
	ustack.n++;
	*(uintptr_t *)rsp = (uintptr_t)sp_uret_trampoline;
	return true;
}
