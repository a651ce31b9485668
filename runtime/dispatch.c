/* dispatch — see dispatch.h.  Everything here runs in the probed thread,
 * possibly in signal context, possibly nested in itself. */
#include "dispatch.h"
#include "probe.h"
#include "tstate.h"

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
				struct selfprobe_ctx ctx = { .regs = regs, .probe = p, .ucontext = ucontext };
				p->fn(&ctx, p->data);
			}
		}
		sp_tls.inside = nested;
	}
	sp_tstate_leave(stripe);
}
