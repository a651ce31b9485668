/* bt_run — see bt_run.h. */
#include "bt.h"
#include "heap.h"
#include "bt_jit.h"
#include "bt_parts.h"
#include "bt_run.h"
#include "dispatch.h"
#include "guard.h"
#include "probe.h"
#include "registry.h"
#include "plugin.h"
#include "resolve.h"
#include "shm.h"
#include "stack.h"
#include "tstate.h"
#include "xsave.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bt_program *active;

/* Under the launcher, the maps' tables live in the process's section of
 * its shared file (mapped over the anonymous ones, before any hit), so
 * that the launcher prints the maps of a process that was killed: it
 * compiles the same program and reads them in map order.  0 or -1 (then
 * the anonymous tables stay). */
static uint32_t n_shared;   /* maps given a place in this process's section */

static int share_maps(struct bt_program *p)
{
	for (struct bt_map *m = p->maps; m; m = m->next)
		m->shared_at = -1;
	if (!sp_shm_active())
		return -1;
	for (struct bt_map *m = p->maps; m; m = m->next) {
		bool stacks = m->mk == BM_STACK;
		for (int k = 0; k < m->nkeys; k++)
			stacks |= m->key_type[k] == BT_STACKT;
		if (stacks)   /* the loaded objects noted in the section: the launcher names the frames */
			sp_stack_prepare();
	}
	for (struct bt_map *m = p->maps; m; m = m->next) {
		uint64_t off;
		size_t bytes = m->cap * m->slot_size;
		if (sp_shm_bt_map(n_shared, bytes, &off) != 0)
			return -1;
		if (sp_shm_map_stripes(0, off, bytes, m->slots) == MAP_FAILED)
			return -1;
		m->shared_at = (int)n_shared++;
	}
	return 0;
}

static void atfork_child(void)
{
	bt_eval_atfork_child();
	bt_jit_atfork_child();
	n_shared = 0;
	/* each process prints its own hits, as its report counts its own: under
	 * the launcher in tables of its own section (the registry's fork
	 * handler, registered first, gave it one), else the same ones cleared */
	for (struct bt_program *p = active; p; p = p->next_active) {
		p->ran = false;
		atomic_store(&p->out.lost, 0);   /* the parent's, said in its report */
		if (share_maps(p) != 0)
			for (struct bt_map *m = p->maps; m; m = m->next) {
				/* private zeroes: clearing would keep a parent's
				 * shared-file pages (madvise does not zero them) */
				sp_shm_map_stripes(-1, 0, m->cap * m->slot_size, m->slots);
				bt_map_clear(m);
			}
		sp_bt_parts_atfork_child(p);   /* the threads' parts, after the tables' places */
	}
}

static bool json_output;

void sp_bt_set_json(bool json)
{
	json_output = json;
}

void sp_bt_register(void)
{
	bt_dwarf_register();
	bt_set_symbolizer(sp_stack_symbolize_bt);
}

/* ---- BEGIN and interval: run by the runtime, not by a probe hit ----
 *
 * BEGIN runs once in each process the program is activated in, before
 * the interval threads start; an interval block runs in a thread of ours
 * (all signals blocked, its calls the runtime's), one per block, woken on
 * an absolute CLOCK_MONOTONIC schedule.  Both need libc initialised (a
 * thread, stdio-free formatting is fine earlier, but one rule is simpler):
 * a program activated from the preload's constructor, before libc's own,
 * starts them at the program's entry point. */

static pthread_mutex_t tick_lock = PTHREAD_MUTEX_INITIALIZER;   /* held while a special block runs */
static bool stopping;                  /* at exit: no interval block runs any more */
static struct bt_program *waiting;     /* activated before libc was ready */
static bool entry_hooked;

static void run_special(struct bt_block *b)
{
	sp_tls.runtime++;
	b->prog->ran = true;
	sp_shm_bt_ran();
	bt_run(b, NULL);   /* no probe context: the compiler refused what needs one */
	sp_tls.runtime--;
}

static void *interval_main(void *arg)
{
	struct bt_block *b = arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		int64_t ns = next.tv_nsec + b->interval_ns % 1000000000;
		next.tv_sec += (time_t)(b->interval_ns / 1000000000 + ns / 1000000000);
		next.tv_nsec = (long)(ns % 1000000000);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0)
			;
		pthread_mutex_lock(&tick_lock);
		if (stopping) {
			pthread_mutex_unlock(&tick_lock);
			return NULL;
		}
		if (!atomic_load(&b->prog->exited))
			run_special(b);
		pthread_mutex_unlock(&tick_lock);
	}
}

static void start_specials(struct bt_program *p)
{
	/* no lock: no interval thread runs yet (and a fault in a block,
	 * from the entry probe's guard, must leave no lock held) */
	for (int g = 0; g < p->nblocks; g++)
		if (p->blocks[g].special == BT_BEGIN && !atomic_load(&p->exited))
			run_special(&p->blocks[g]);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);   /* the thread inherits it: no signal of the program's */
	for (int g = 0; g < p->nblocks; g++) {
		pthread_t t;
		if (p->blocks[g].special == BT_INTERVAL && pthread_create(&t, NULL, interval_main, &p->blocks[g]) == 0)
			pthread_detach(t);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int at_entry(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	pthread_mutex_lock(&active_lock);
	struct bt_program *w = waiting;
	waiting = NULL;
	pthread_mutex_unlock(&active_lock);
	for (; w; w = w->runtime) {
		sp_tls.runtime++;
		start_specials(w);
		sp_tls.runtime--;
	}
	return 0;
}

static void activate(struct bt_program *p)
{
	static bool hooked;
	pthread_mutex_lock(&active_lock);
	if (!p->active) {
		p->active = true;
		atomic_fetch_add(&p->refs, 1);   /* printed at exit: kept */
		int fd = fcntl(1, F_DUPFD_CLOEXEC, 512);
		if (fd < 0)
			fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
		if (fd >= 0 && !sp_fdid_remember(&p->out.id, fd))
			close(fd);
		p->next_active = active;
		active = p;
		/* after the registry's own fork handler, which gives the child
		 * its section of the launcher's file: a pthread_atfork handler
		 * of ours, registered before it (this runs before the first
		 * attach), gave the child's tables the parent's section */
		if (!hooked)
			sp_probe_on_fork_child(atfork_child);
		hooked = true;
		sp_guard_vector_safe(sp_bt_handler);   /* it saves them itself: below */
		p->json = json_output;
		share_maps(p);
		sp_bt_parts_give(p);   /* keyed maps: per-thread parts */
	}
	pthread_mutex_unlock(&active_lock);
}

/* BEGIN and the interval threads, once a probe of P attached in this
 * process (a process that only passes the program on, a shell or
 * `timeout`, runs none of it). */
static void start_once(struct bt_program *p)
{
	pthread_mutex_lock(&active_lock);
	if (!p->has_special || p->started) {
		pthread_mutex_unlock(&active_lock);
		return;
	}
	p->started = true;
	if (!sp_plugin_can_load()) {   /* before libc's initialisation: at the entry point */
		if (!entry_hooked)
			entry_hooked = sp_probe_attach_internal("selfprobe:bt-begin", (uintptr_t)getauxval(AT_ENTRY), true,
								at_entry, NULL) == 0;
		p->runtime = waiting;   /* the waiting list's link */
		waiting = p;
		pthread_mutex_unlock(&active_lock);
		return;
	}
	pthread_mutex_unlock(&active_lock);
	start_specials(p);
}

long sp_bt_attach_item(const struct sp_spec_item *item)
{
	struct bt_block *b = item->program;
	activate(b->prog);
	/* native code for the block when it is in the subset (bt_jit.h):
	 * the counter stripes it adds next to must exist first.  Under the
	 * launcher its per-thread parts are in the shared file too, noted in
	 * the section: a killed process's maps are merged from them */
	if (sp_tstate_init() == 0) {
		bt_jit_block(b);
		pthread_mutex_lock(&active_lock);
		sp_bt_parts_note(b->prog);
		pthread_mutex_unlock(&active_lock);
	}
	long rc = sp_probe_attach_item(item, sp_bt_handler, b, NULL);
	if (rc > 0)
		start_once(b->prog);
	return rc;
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
	if (!b->prog->ran) {
		b->prog->ran = true;   /* read once, written once: no shared line bouncing */
		sp_shm_bt_ran();
	}
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
	/* no interval block after this one (its thread may be in it now) */
	pthread_mutex_lock(&tick_lock);
	stopping = true;
	pthread_mutex_unlock(&tick_lock);
	pthread_mutex_lock(&active_lock);
	for (struct bt_program *p = active; p; p = p->next_active) {
		if (!p->ran && !bt_jit_ran(p))
			continue;
		for (int g = 0; g < p->nblocks; g++)   /* END, even after exit(), as bpftrace */
			if (p->blocks[g].special == BT_END)
				run_special(&p->blocks[g]);
		struct bt_buf b = { 0 };
		if (p->json)
			bt_print_all_json(&b, p);
		else
			bt_print_all(&b, p);
		bt_output(p, b.p, b.n);
		sp_free(b.p);
		uint64_t lost = atomic_load(&p->out.lost);
		if (lost)
			sp_probe_error("bpftrace", "%" PRIu64 " output%s dropped (printf, print, the maps at exit): the "
				       "program closed the copy of its stdout they went to, and a file of its "
				       "own took that descriptor's number", lost, lost == 1 ? "" : "s");
		for (struct bt_map *m = p->maps; m; m = m->next) {
			uint64_t d = atomic_load(&m->dropped);
			if (d)
				sp_probe_error(m->name, "%" PRIu64 " update%s dropped: the map was full (%d keys)", d,
					       d == 1 ? "" : "s", BT_MAP_CAP);
			d = atomic_load(&m->unfinished);
			if (d)
				sp_probe_error(m->name, "%" PRIu64 " update%s dropped: a key's insert never ended (a fault in a handler)",
					       d, d == 1 ? "" : "s");
		}
	}
	pthread_mutex_unlock(&active_lock);
}
