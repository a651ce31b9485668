/* golang_args — see golang_args.h. */
#include "golang_args.h"
#include "ctx.h"
#include "probe.h"
#include "site.h"

/* ------------------------------------------------------------ arguments */

bool sp_go_probe(const struct sp_probe *p)
{
	return p->site && p->site->go_stack;
}

uint64_t sp_go_or_c_arg(struct selfprobe_ctx *ctx, int i)
{
	return sp_go_probe(ctx->probe) ? sp_go_arg(ctx->regs, i) : selfprobe_arg(ctx, i);
}

uint64_t sp_go_arg(const struct selfprobe_regs *r, int n)
{
	switch (n) {
	case 0: return r->rax;
	case 1: return r->rbx;
	case 2: return r->rcx;
	case 3: return r->rdi;
	case 4: return r->rsi;
	case 5: return r->r8;
	case 6: return r->r9;
	case 7: return r->r10;
	case 8: return r->r11;
	}
	return 0;
}
