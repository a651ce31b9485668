/* golang_args — a Go site's arguments under Go's register ABI. */
#ifndef SP_GOLANG_ARGS_H
#define SP_GOLANG_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "selfprobe.h"

struct sp_probe;

/* Argument N (0-based) of a Go function under the register ABI: RAX, RBX,
 * RCX, RDI, RSI, R8, R9, R10, R11 (then 0: on the stack, not read). */
uint64_t sp_go_arg(const struct selfprobe_regs *r, int n);

/* Whether P's site is in a Go function (its arguments are Go's). */
bool sp_go_probe(const struct sp_probe *p);
/* The I-th integer argument at CTX's site: Go's or the SysV ABI's. */
uint64_t sp_go_or_c_arg(struct selfprobe_ctx *ctx, int i);

#endif
