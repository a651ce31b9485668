/* dispatch — see dispatch.h.  Everything here runs in the probed thread,
 * possibly in signal context, possibly nested in itself, and (jmp path) with
 * the interrupted code's vector registers still live: this file is built
 * with -mgeneral-regs-only, and handlers are called through
 * sp_call_preserving_vectors. */
#include "dispatch.h"
#include "probe.h"
#include "tstate.h"
#include "xsave.h"

void sp_dispatch(struct sp_site *site, struct selfprobe_regs *regs, void *ucontext)
{
	if (sp_tls.runtime)
		return;
	int stripe = sp_tstate_stripe();
	sp_tstate_enter(stripe);
	struct sp_probe_vec *vec = atomic_load_explicit(&site->vec, memory_order_consume);
	if (vec) {
		/* A hit inside a handler counts but runs no handler: "missed". */
		bool nested = sp_tls.inside;
		sp_tls.inside = 1;
		for (uint32_t i = 0; i < vec->n; i++) {
			struct sp_probe *p = vec->p[i];
			bool run = p->fn && !nested;
			sp_count_add(stripe, p->id, false);
			if (p->fn && nested)
				sp_count_add(stripe, p->id, true);
			if (run) {
				struct selfprobe_ctx ctx;
				ctx.regs = regs;
				ctx.probe = p;
				ctx.cookie = NULL;
				ctx.is_return = false;
				ctx.ucontext = ucontext;
				if (ucontext)       /* int3: the kernel saved the vector state */
					p->fn(&ctx, p->data);
				else                /* jmp: nobody did */
					sp_call_preserving_vectors((int (*)(void *, void *))p->fn, &ctx, p->data);
			}
		}
		sp_tls.inside = nested;
	}
	sp_tstate_leave(stripe);
}
