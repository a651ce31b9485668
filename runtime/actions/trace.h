/* trace — the `trace` action: one line per hit, written through a
 * per-thread buffer so a probed thread pays a memcpy, not a system call,
 * per hit (a write() when its 16 KiB buffer fills, at thread exit and at
 * the report).  Lines go to the standard error the program had at start
 * (a copy of fd 2, so programs that close it at exit still get them).  If
 * the program closes that copy and a file of its own takes the number
 * (closefrom, then open), lines are dropped from then on, and counted.
 *
 *   [TID] usdt:sptest:args2(-1, 42)            USDT: the note's arguments
 *   [TID] uprobe:libc:malloc(0x18, 0x0, …)     functions: rdi rsi rdx rcx r8 r9
 *   [TID] uretprobe:libz:inflate = 0x1         returns: rax
 *
 * Async-signal-safe: its own number formatting, mmap'ed buffers.
 */
#ifndef SP_TRACE_H
#define SP_TRACE_H

#include "selfprobe.h"

#include <stdint.h>

/* Once, at attach (not signal-safe). */
int sp_trace_prepare(void);
/* The trace action's handler. */
int sp_trace_handler(struct selfprobe_ctx *ctx, void *data);
/* Write out every thread's buffered lines (before the report). */
void sp_trace_flush_all(void);
/* Lines dropped because the copy of stderr was no longer ours, so far. */
uint64_t sp_trace_lost(void);

#endif
