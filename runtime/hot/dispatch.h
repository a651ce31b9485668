/* dispatch — the hot path shared by every mechanism: count the hit, run the
 * handlers of a site's probes with a selfprobe_ctx, guard recursion.
 * Async-signal-safe and allocation-free; calls no libc function itself. */
#ifndef SP_DISPATCH_H
#define SP_DISPATCH_H

#include <stdbool.h>
#include "selfprobe.h"
#include "site.h"
#include "ctx.h"

/* Count a hit on every probe of SITE and run their handlers on REGS. */
void sp_dispatch(struct sp_site *site, struct selfprobe_regs *regs, void *ucontext);
/* The same without thread state (foreign.h): counted in the shared
 * stripe; no handler runs and no return is seen (both would need it):
 * "missed". */
void sp_dispatch_stateless(struct sp_site *site);
/* That, for a task running with another thread's TLS (foreign.h). */
void sp_dispatch_foreign(struct sp_site *site);

#endif
