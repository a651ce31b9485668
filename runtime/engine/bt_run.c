/* bt_run — see bt_run.h. */
#include "bt.h"
#include "bt_jit.h"
#include "bt_shard.h"
#include "bt_run.h"
#include "dispatch.h"
#include "guard.h"
#include "probe.h"
#include "registry.h"
#include "resolve.h"
#include "tstate.h"
#include "xsave.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bt_program *active;

static void atfork_child(void)
{
	bt_eval_atfork_child();
	bt_jit_atfork_child();
	/* each process prints its own hits, as its report counts its own */
	for (struct bt_program *p = active; p; p = p->next_active) {
		p->ran = false;
		for (struct bt_map *m = p->maps; m; m = m->next) {
			bt_map_clear(m);
			bt_shards_reset(m);   /* the threads' parts of compiled blocks */
		}
	}
}

static void activate(struct bt_program *p)
{
	static bool hooked;
	pthread_mutex_lock(&active_lock);
	if (!p->active) {
		p->active = true;
		atomic_fetch_add(&p->refs, 1);   /* printed at exit: kept */
		p->out_fd = fcntl(1, F_DUPFD_CLOEXEC, 512);
		if (p->out_fd < 0)
			p->out_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
		p->next_active = active;
		active = p;
		if (!hooked && pthread_atfork(NULL, NULL, atfork_child) == 0)
			hooked = true;
		sp_guard_vector_safe(sp_bt_handler);   /* it saves them itself: below */
	}
	pthread_mutex_unlock(&active_lock);
}

long sp_bt_attach_item(const struct sp_spec_item *item)
{
	struct bt_block *b = item->program;
	activate(b->prog);
	/* native code for the block when it is in the subset (bt_jit.h):
	 * the counter stripes it adds next to must exist first */
	if (sp_tstate_init() == 0)
		bt_jit_block(b);
	return sp_probe_attach_item(item, sp_bt_handler, b, NULL);
}

/* A block that needs libc (strings, printf) on the jmp path. */
static int run_saved(void *ctx, void *b, const void *area)
{
	((struct selfprobe_ctx *)ctx)->fpstate = area;
	bt_run(b, ctx);
	return 0;
}

int sp_bt_handler(struct selfprobe_ctx *ctx, void *data)
{
	struct bt_block *b = data;
	if (atomic_load_explicit(&b->prog->exited, memory_order_relaxed))
		return 0;
	if (!b->prog->ran)
		b->prog->ran = true;   /* read once, written once: no shared line bouncing */
	/* what the block calls (clock_gettime, write, prctl) is the runtime's */
	sp_tls.runtime++;
	if (b->fast || ctx->ucontext || ctx->fpstate)
		bt_run(b, ctx);   /* no vector code, or the state was saved (int3: by the kernel) */
	else
		sp_call_preserving_vectors(run_saved, ctx, b);
	sp_tls.runtime--;
	return 0;
}

void sp_bt_exit(void)
{
	pthread_mutex_lock(&active_lock);
	for (struct bt_program *p = active; p; p = p->next_active) {
		if (!p->ran && !bt_jit_ran(p))
			continue;
		struct bt_buf b = { 0 };
		bt_print_all(&b, p);
		bt_write(p->out_fd, b.p, b.n);
		free(b.p);
		for (struct bt_map *m = p->maps; m; m = m->next) {
			uint64_t d = atomic_load(&m->dropped);
			if (d)
				sp_probe_error(m->name, "%" PRIu64 " update%s dropped: the map was full (%d keys)", d,
					       d == 1 ? "" : "s", BT_MAP_CAP);
		}
	}
	pthread_mutex_unlock(&active_lock);
}
