/* dispatch — the hot path shared by every mechanism: count the hit, run the
 * handlers of a site's probes with a selfprobe_ctx, guard recursion.
 * Async-signal-safe and allocation-free; calls no libc function itself. */
#ifndef SP_DISPATCH_H
#define SP_DISPATCH_H

#include <stdbool.h>
#include "selfprobe.h"
#include "site.h"

struct selfprobe_ctx {
	struct selfprobe_regs *regs;
	struct sp_probe *probe;
	uint64_t *cookie;
	bool is_return;
	void *ucontext;          /* int3 path: the signal's ucontext_t */
	const void *fpstate;     /* the interrupted vector state, FXSAVE's legacy
				  * layout (int3: the kernel's, jmp: our XSAVE
				  * area), or NULL outside a handler's call */
};

/* Count a hit on every probe of SITE and run their handlers on REGS. */
void sp_dispatch(struct sp_site *site, struct selfprobe_regs *regs, void *ucontext);

#endif
