/* stack — user stacks at a hit: selfprobe_backtrace() and the `stack`
 * action.
 *
 * The walk starts from the probe's context — the signal's ucontext on the
 * int3 path, the trampoline's saved registers on the jmp path — so neither
 * our handler nor a trampoline appears; frames whose return address we
 * swapped for the return trampoline get their real one back for the walk
 * (uret.h).  libunwind (unw_init_local2, unw_step) is async-signal-safe.
 *
 * The action aggregates by distinct stack: a lock-free open-addressing
 * table of up to SP_STACKS_MAX stacks of up to SP_STACK_DEPTH frames in an
 * mmap'ed arena, inserted with compare-and-swap, counted with atomic adds.
 * Symbolised only at the report (dladdr plus our own ELF symbols).
 */
#ifndef SP_STACK_H
#define SP_STACK_H

#include <stdint.h>
#include <stdio.h>

#include "selfprobe.h"

#define SP_STACK_DEPTH 32
#define SP_STACKS_MAX  (1u << 16)

struct sp_probe;

/* Walk the stack of CTX into IPS (at most MAX).  Count, or -errno. */
int sp_stack_walk(struct selfprobe_ctx *ctx, uintptr_t *ips, int max);

/* The `stack` action's handler. */
int sp_stack_handler(struct selfprobe_ctx *ctx, void *data);
int sp_stack_prepare(void);

/* Report: the top stacks of probe P as text (bpftrace's @stacks style),
 * and every stack of every probe as folded lines ("a;b;c N", root first). */
void sp_stack_report_text(FILE *f, const struct sp_probe *p, int top);
void sp_stack_report_folded(FILE *f);
/* The TOP stacks of P as a JSON field (", \"stacks\": [...]"). */
void sp_stack_report_json(FILE *f, const struct sp_probe *p, int top);

#endif
