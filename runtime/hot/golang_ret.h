/* golang_ret — a Go function's returns, seen by probes on its return sites
 * and paired with their entries by goroutine; a Go site's arguments; the
 * trampoline's C calls from Go sites on a stack of the thread's own
 * (golang_stack.S).  What is known of Go itself: golang.h. */
#ifndef SP_GOLANG_RET_H
#define SP_GOLANG_RET_H

#include "golang.h"

/* The data of P's return-site probes (sp_go_ret_hit): P and its sites. */
struct sp_go_rets {
	struct sp_probe *p;
	long n;
	struct sp_go_ret r[];
};

/* golang_ret.c: return probes by goroutine.  Init once at attach (0 or
 * -errno); at P's entry site, a record for this goroutine's frame (its
 * cookie, or NULL: not tracked, counted missed); a session that skips its
 * return drops it; each return site's internal probe runs sp_go_ret_hit with its
 * struct sp_go_rets; the internal probe on runtime.goexit1 (golang_goend.h)
 * runs sp_go_ret_gone: the ending goroutine's records (r14) counted lost. */
struct sp_probe;
struct selfprobe_ctx;
int sp_go_ret_init(void);
uint64_t *sp_go_ret_enter(struct sp_probe *p, const struct selfprobe_regs *regs);
void sp_go_ret_cancel(uint64_t *cookie);
int sp_go_ret_hit(struct selfprobe_ctx *ctx, void *data);
int sp_go_ret_gone(struct selfprobe_ctx *ctx, void *data);

#endif
