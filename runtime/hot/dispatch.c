/* dispatch — see dispatch.h.  Everything here runs in the probed thread,
 * possibly in signal context, possibly nested in itself, and (jmp path) with
 * the interrupted code's vector registers still live: this file is built
 * with -mgeneral-regs-only, and handlers are called through
 * sp_call_preserving_vectors. */
#include "dispatch.h"
#include "foreign.h"
#include "golang_ret.h"
#include "guard.h"
#include "probe.h"
#include "tstate.h"
#include "uret.h"
#include "xsave.h"

#include <ucontext.h>

/* A hit's entry count: uprobes and sessions; uretprobes and the latency
 * action count completed calls, at the return. */
static inline void count_entry(int stripe, const struct sp_probe *p)
{
	if (!p->wants_return || p->kind == SP_KIND_USESSION)
		sp_count_add(stripe, p->id, SP_HITS);
}

/* A hit that runs no handler and tracks no return (nested in a handler,
 * or made without thread state): "missed" where either had work. */
static inline void count_unhandled(int stripe, const struct sp_probe *p)
{
	if (p->fn || p->wants_return)
		sp_count_add(stripe, p->id, SP_MISSED);
}

void sp_dispatch_stateless(struct sp_site *site)
{
	int stripe = sp_tstate_enter_stateless();
	struct sp_probe_vec *vec = atomic_load_explicit(&site->vec, memory_order_consume);
	for (uint32_t i = 0; vec && i < vec->n; i++) {
		count_entry(stripe, vec->p[i]);
		count_unhandled(stripe, vec->p[i]);
	}
	sp_tstate_leave_stateless();
}

void sp_dispatch(struct sp_site *site, struct selfprobe_regs *regs, void *ucontext)
{
	/* a Go site's thread is its goroutine's M (golang.h): Go's runtime
	 * makes no task that runs Go code on another's TLS */
	if (!site->go_stack && sp_foreign()) {
		sp_dispatch_stateless(site);
		return;
	}
	if (ucontext)   /* the int3 path: the thread's alternate stack, for a quiescence (quiesce.h) */
		sp_tstate_note_altstack(&((ucontext_t *)ucontext)->uc_stack);
	if (sp_tls.runtime)
		return;
	int stripe = sp_tstate_stripe();
	sp_tstate_enter(stripe);
	struct sp_probe_vec *vec = atomic_load_explicit(&site->vec, memory_order_consume);
	if (vec && vec->only_returns && !sp_tls.inside) {
		/* count-only uretprobes and sessions: only the return to swap */
		for (uint32_t i = 0; i < vec->n; i++)
			if (vec->p[i]->kind == SP_KIND_USESSION)
				sp_count_add(stripe, vec->p[i]->id, SP_HITS);   /* sessions count entries */
		if (!sp_uret_push_counted(regs->rsp, vec->p, vec->n))
			for (uint32_t i = 0; i < vec->n; i++)
				sp_count_add(stripe, vec->p[i]->id, SP_MISSED);
	} else if (vec) {
		/* A hit inside a handler counts but runs no handler: "missed". */
		bool nested = sp_tls.inside;
		sp_tls.inside = 1;
		struct sp_uret_entry *ret = NULL;
		for (uint32_t i = 0; i < vec->n; i++) {
			struct sp_probe *p = vec->p[i];
			count_entry(stripe, p);
			if (nested) {
				count_unhandled(stripe, p);
				continue;
			}
			uint64_t *cookie = NULL;
			if (p->go_ret) {                /* a Go function's: by goroutine (golang.h) */
				if (!(cookie = sp_go_ret_enter(p, regs))) {
					sp_count_add(stripe, p->id, SP_MISSED);
					continue;
				}
			} else if (p->wants_return) {
				if (!ret)
					ret = sp_uret_begin(regs->rsp);
				cookie = ret ? sp_uret_add(ret, p) : NULL;
				if (!cookie) {          /* no room: this return is not seen */
					sp_count_add(stripe, p->id, SP_MISSED);
					continue;
				}
			}
			if (p->fn && p->kind != SP_KIND_URETPROBE &&
			    sp_guard_call_handler(p, regs, ucontext, cookie, false) != 0 && p->kind == SP_KIND_USESSION)
				p->go_ret ? sp_go_ret_cancel(cookie)
					  : sp_uret_drop_last(ret);     /* the session skips its return */
		}
		if (ret)
			sp_uret_commit(ret);
		sp_tls.inside = nested;
	}
	sp_tstate_leave(stripe);
}
