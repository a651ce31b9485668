/* ctxfloat — selfprobe_usdt_arg_double (include/selfprobe.h), the context
 * accessor that needs floating point: hot/ctx.c, where the others are, is
 * compiled -mgeneral-regs-only. */
#include "selfprobe.h"
#include "ctx.h"
#include "probe.h"
#include "usdt.h"

#include <errno.h>

#define API __attribute__((visibility("default")))

API int selfprobe_usdt_arg_double(struct selfprobe_ctx *ctx, int n, double *val)
{
	int64_t bits;
	if (!val)
		return -EINVAL;
	int rc = selfprobe_usdt_arg(ctx, n, &bits);
	if (rc)
		return rc;
	const struct sp_usdt_arg *a = &ctx->probe->usdt_args[n];
	if (!a->is_float)
		return -EDOM;   /* an integer argument: selfprobe_usdt_arg */
	*val = sp_usdt_float(a, bits);
	return 0;
}
