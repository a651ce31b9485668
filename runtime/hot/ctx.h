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

#endif
