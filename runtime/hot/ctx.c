/* ctx — the context accessors of include/selfprobe.h: what a handler reads
 * of the hit it runs for.  In the hot layer because the built-in actions
 * (trace, the timeline) read arguments through them during a hit, and
 * because they run inside the trampoline's call.  The one that needs
 * floating point, selfprobe_usdt_arg_double, is in actions/ctxfloat.c:
 * this folder is compiled -mgeneral-regs-only. */
#include "selfprobe.h"
#include "ctx.h"
#include "probe.h"
#include "usdt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#define API __attribute__((visibility("default")))

API struct selfprobe_regs *selfprobe_regs(struct selfprobe_ctx *ctx) { return ctx->regs; }

API uint64_t selfprobe_arg(struct selfprobe_ctx *ctx, int n) { return sp_ctx_arg(ctx->regs, n); }

API uint64_t selfprobe_retval(struct selfprobe_ctx *ctx) { return ctx->regs->rax; }
API bool selfprobe_is_return(struct selfprobe_ctx *ctx) { return ctx->is_return; }
API uint64_t *selfprobe_cookie(struct selfprobe_ctx *ctx) { return ctx->cookie; }
API uintptr_t selfprobe_address(struct selfprobe_ctx *ctx) { return ctx->probe->site->addr; }
API const char *selfprobe_spec(struct selfprobe_ctx *ctx) { return ctx->probe->spec; }

API int selfprobe_usdt_arg(struct selfprobe_ctx *ctx, int n, int64_t *val)
{
	const struct sp_probe *p = ctx->probe;
	if (p->kind != SP_KIND_USDT || !val)
		return -EINVAL;
	if (p->usdt_nargs < 0)
		return -ENOEXEC;   /* the note's argument string did not parse */
	if (n < 0 || n >= p->usdt_nargs)
		return -ERANGE;
	*val = sp_usdt_eval(&p->usdt_args[n], ctx->regs, p->site->addr + p->site->insn.len, ctx->fpstate);
	return 0;
}
