/* ctx — the context of one hit, as a handler sees it through the accessors
 * of include/selfprobe.h (ctx.c).  Built by dispatch (dispatch.h) and by the
 * return path (uret.h). */
#ifndef SP_CTX_H
#define SP_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include "selfprobe.h"

struct sp_probe;

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

/* Integer argument N under the SysV ABI at a function's entry: the six
 * argument registers, then the stack above the return address (0 for a
 * negative N).  Inline: the bpftrace evaluator's fast path uses it too. */
static inline uint64_t sp_ctx_arg(const struct selfprobe_regs *r, int n)
{
	switch (n) {
	case 0: return r->rdi;
	case 1: return r->rsi;
	case 2: return r->rdx;
	case 3: return r->rcx;
	case 4: return r->r8;
	case 5: return r->r9;
	}
	return n < 0 ? 0 : ((const uint64_t *)r->rsp)[1 + (n - 6)];
}

#endif
