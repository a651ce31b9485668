/* golang_ret — return probes on Go functions without a swapped return
 * address (golang.h).
 *
 * The user's probe P stays at the function's entry (past the stack check);
 * each RET of the function gets an internal probe whose handler is
 * sp_go_ret_hit.  Entries and returns pair by goroutine, not by thread (a
 * goroutine moves between threads at any call): the key is the g pointer
 * (r14 in Go's register ABI) and the frame's distance from the top of the
 * goroutine stack, g->stack.hi - rsp, which a stack copy keeps (rsp at the
 * entry site and at a RET both point at the return address).  A frame a
 * panic unwound (or runtime.Goexit ended) never returns; its record is
 * counted lost, once, as soon as that is certain: when a frame of its
 * goroutine that is not deeper enters at its depth or above it (the
 * entry's return address sits where the dead frame's was), when a
 * shallower one returns, or when the goroutine ends (sp_go_ret_gone, on
 * runtime.goexit1, which every goroutine's end runs on its own stack).
 * So a goroutine's records, newest first, are always in strictly
 * decreasing depth (the probes of one site share theirs): the walks stop
 * at the first record shallower than their frame.
 *
 * A return site is the epilogue's first instruction where it is Go's
 * "mov D(%rsp),%rbp; add $N,%rsp; ret" (a one-instruction jmp window: the
 * RET is followed by the morestack call, a branch target, and would take
 * int3), the frame found at rsp + N; else the RET itself.
 *
 * Records live in one table guarded by a spin lock taken only inside
 * dispatch; a thread interrupted while holding it (a signal handler's hit)
 * does not take it again: that hit counts missed.  Runs in dispatch, with
 * the interrupted code's vector registers live: built with
 * -mgeneral-regs-only, like dispatch.c.
 */
#include "golang_ret.h"
#include "ctx.h"
#include "guard.h"
#include "latency.h"
#include "probe.h"
#include "rawsys.h"
#include "timeline.h"
#include "tstate.h"
#include "uret.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>

struct go_rec {
	uintptr_t g;
	uint64_t depth;            /* g->stack.hi - rsp at the entry */
	struct sp_probe *p;
	uint64_t t0_ns;            /* latency: the entry's time */
	uint64_t cookie;           /* usession */
	uint32_t next;             /* the bucket's next record (index + 1), 0: none */
	uint32_t pad;
};

#define N_BUCKETS 4096u
#define N_RECS (1u << 20)          /* live entries at once, every goroutine together */

static struct go_rec *recs;        /* N_RECS, mapped NORESERVE at the first attach */
static uint32_t buckets[N_BUCKETS];
static uint32_t free_head, bump;   /* free list (index + 1); next never-used index */
static atomic_flag lock = ATOMIC_FLAG_INIT;
static __thread bool holding __attribute__((tls_model("initial-exec")));

int sp_go_ret_init(void)
{
	if (recs)
		return 0;
	long m = sp_syscall6(SYS_mmap, 0, (long)(N_RECS * sizeof(struct go_rec)), PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m < 0 && m > -4096)
		return (int)m;
	recs = (struct go_rec *)m;
	return 0;
}

static bool take(void)
{
	if (holding || !recs)
		return false;
	while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
		__builtin_ia32_pause();
	holding = true;
	return true;
}

static void give(void)
{
	holding = false;
	atomic_flag_clear_explicit(&lock, memory_order_release);
}

static uint32_t bucket_of(uintptr_t g) { return (uint32_t)((g >> 4) ^ (g >> 16)) % N_BUCKETS; }

/* The record at *LINK out of its bucket, onto the free list (lock held);
 * counted lost on its probe when it is dead (LOST) and the probe still
 * counts (a detached probe's id may be another's now). */
static void drop(uint32_t *link, bool lost, int stripe)
{
	uint32_t i = *link;
	struct go_rec *r = &recs[i - 1];
	*link = r->next;
	if (lost && r->p->attached)
		sp_count_add(stripe, r->p->id, SP_LOST);
	r->next = free_head;
	free_head = i;
}

/* The goroutine and the depth of the frame whose return address is at
 * RSP, at a site of a Go function. */
static bool frame_key(const struct selfprobe_regs *r, uint64_t rsp, uintptr_t *g, uint64_t *depth)
{
	*g = r->r14;
	if (*g < 4096)
		return false;
	uint64_t hi = ((const uint64_t *)*g)[1];   /* g.stack.hi (runtime/runtime2.go) */
	if (hi < rsp)
		return false;
	*depth = hi - rsp;
	return true;
}

uint64_t *sp_go_ret_enter(struct sp_probe *p, const struct selfprobe_regs *regs)
{
	uintptr_t g;
	uint64_t depth;
	int stripe = sp_tstate_stripe();   /* before the lock: it may claim a slot */
	if (!frame_key(regs, regs->rsp, &g, &depth) || !take())
		return NULL;
	/* this frame's return address is where the goroutine's frames at its
	 * depth and below had theirs: those are dead (a recovered panic
	 * unwound them), unless it is another probe of this very site */
	uint32_t b = bucket_of(g);
	for (uint32_t *link = &buckets[b]; *link;) {
		struct go_rec *o = &recs[*link - 1];
		if (o->g != g || (o->depth == depth && o->p != p && o->p->site == p->site)) {
			link = &o->next;
			continue;
		}
		if (o->depth < depth)   /* its caller: older ones are shallower still */
			break;
		drop(link, true, stripe);
	}
	uint32_t i = free_head;
	if (i)
		free_head = recs[i - 1].next;
	else if (bump < N_RECS)
		i = ++bump;
	if (!i) {
		give();
		return NULL;
	}
	struct go_rec *r = &recs[i - 1];
	*r = (struct go_rec){ .g = g, .depth = depth, .p = p, .next = buckets[b] };
	buckets[b] = i;
	give();
	if (p->action == SP_ACT_LATENCY || sp_uret_wants_span(p)) {
		sp_tls.runtime++;   /* our clock call is not the application's */
		r->t0_ns = sp_latency_now();
		sp_tls.runtime--;
	}
	return &r->cookie;
}

int sp_go_ret_gone(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	uintptr_t g = ctx->regs->r14;
	if (g < 4096 || !recs)
		return 0;
	/* a glance first: most goroutines end with nothing in the table */
	uint32_t b = bucket_of(g);
	if (!__atomic_load_n(&buckets[b], __ATOMIC_RELAXED))
		return 0;
	int stripe = sp_tstate_stripe();   /* before the lock: it may claim a slot */
	if (!take())
		return 0;
	for (uint32_t *link = &buckets[b]; *link;)
		if (recs[*link - 1].g == g)
			drop(link, true, stripe);
		else
			link = &recs[*link - 1].next;
	give();
	return 0;
}

void sp_go_ret_cancel(uint64_t *cookie)
{
	struct go_rec *gone = (struct go_rec *)((char *)cookie - __builtin_offsetof(struct go_rec, cookie));
	if (!take())
		return;
	uint32_t *link = &buckets[bucket_of(gone->g)];
	while (*link && &recs[*link - 1] != gone)
		link = &recs[*link - 1].next;
	if (*link)
		drop(link, false, 0);
	give();
}

/* The record of P's frame at REGS, taken out of the table into *OUT; the
 * deeper frames of the same goroutine (unwound by a panic) are dropped and
 * counted lost.  False when none (the entry was not seen). */
static bool pop(struct sp_probe *p, const struct selfprobe_regs *regs, uint64_t rsp, int stripe,
		struct go_rec *out)
{
	uintptr_t g;
	uint64_t depth;
	if (!frame_key(regs, rsp, &g, &depth) || !take())
		return false;
	bool found = false;
	uint32_t *link = &buckets[bucket_of(g)];
	while (*link) {
		uint32_t i = *link;
		struct go_rec *r = &recs[i - 1];
		if (r->g != g) {
			link = &r->next;
			continue;
		}
		if (r->depth < depth)   /* a caller's frame: ours was never entered */
			break;
		if (r->depth == depth && r->p != p) {
			link = &r->next;
			continue;
		}
		if (r->depth == depth)
			*out = *r;
		drop(link, r->depth > depth, stripe);
		if (r->depth == depth) {
			found = true;
			break;
		}
	}
	give();
	return found;
}

int sp_go_ret_hit(struct selfprobe_ctx *ctx, void *data)
{
	const struct sp_go_rets *rs = data;
	struct sp_probe *p = rs->p;
	struct selfprobe_regs *regs = ctx->regs;
	uint64_t rsp = regs->rsp;   /* at the RET: past the epilogue's add */
	for (long i = 0; i < rs->n; i++)
		if (rs->r[i].site == regs->rip)
			rsp += rs->r[i].adj;
	int stripe = sp_tstate_stripe();
	struct go_rec r;
	if (!pop(p, regs, rsp, stripe, &r) || !p->attached)
		return 0;
	sp_count_add(stripe, p->id, p->kind == SP_KIND_USESSION ? SP_RETURNS : SP_HITS);
	uint64_t dt = r.t0_ns ? sp_latency_now() - r.t0_ns : 0;
	if (p->action == SP_ACT_LATENCY && p->lat_slot >= 0 && r.t0_ns)
		sp_latency_record(stripe, (uint32_t)p->lat_slot, dt);
	if (r.t0_ns && sp_uret_wants_span(p))
		sp_timeline_span(p, r.t0_ns, dt, regs->rax);
	if (p->fn) {
		/* the user's handler runs as the application (its calls count),
		 * not as this internal probe's runtime code */
		int runtime = sp_tls.runtime;
		sp_tls.runtime = runtime > 0 ? runtime - 1 : 0;
		sp_guard_call_handler(p, regs, ctx->ucontext, &r.cookie, true);
		sp_tls.runtime = runtime;
	}
	return 0;
}
