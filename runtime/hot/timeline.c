/* timeline — see timeline.h.  The recording half: runs in probed threads,
 * possibly in signal context, so no locks and no stdio here. */
#include "timeline.h"
#include "heap.h"
#include "ctx.h"
#include "latency.h"
#include "golang_args.h"
#include "probe.h"
#include "shm.h"
#include "tstate.h"
#include "usdt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_LABELS (1u << 16)

struct label {
	char *text;
	int kind;
};

static _Atomic bool on;
static _Atomic uint64_t capacity = SP_TL_DEFAULT_EVENTS;
static struct sp_tl_buf *_Atomic all;             /* this process's buffers */
static _Atomic uint64_t orphan_drops;             /* events of threads without a buffer */
static struct label *labels;                      /* the process's own table (no launcher) */
static _Atomic uint32_t n_labels;
static __thread struct sp_tl_buf *mine __attribute__((tls_model("initial-exec")));
static __thread bool no_buffer __attribute__((tls_model("initial-exec")));

void sp_timeline_enable(void)
{
	atomic_store(&on, true);
}

bool sp_timeline_on(void)
{
	return atomic_load_explicit(&on, memory_order_relaxed);
}

int sp_timeline_set_capacity(uint64_t events)
{
	if (events == 0 || events > (1u << 26))
		return -EINVAL;
	atomic_store(&capacity, events);
	return 0;
}

void sp_timeline_label(struct sp_probe *p)
{
	p->tl_label = -1;
	if (p->action != SP_ACT_TRACE && p->action != SP_ACT_LATENCY)
		return;
	if (sp_shm_active()) {   /* the launcher reads the record's label (none: no events) */
		p->tl_label = p->shm_record;
		return;
	}
	/* registry lock held by the caller: one writer */
	if (!labels && !(labels = sp_calloc(MAX_LABELS, sizeof(*labels))))
		return;
	uint32_t i = atomic_load(&n_labels);
	if (i >= MAX_LABELS || !(labels[i].text = sp_strdup(p->label)))
		return;
	labels[i].kind = p->kind;
	atomic_store(&n_labels, i + 1);
	p->tl_label = (int)i;
}

static struct sp_tl_buf *make_buffer(void);

/* This thread's buffer: made at its first event, in the launcher's file
 * when there is one.  NULL when none can be had (counted as dropped). */
static struct sp_tl_buf *buffer(void)
{
	if (mine || no_buffer)
		return mine;
	sp_tls.runtime++;   /* mmap, getpid …: ours, not the application's */
	struct sp_tl_buf *b = make_buffer();
	sp_tls.runtime--;
	return b;
}

static struct sp_tl_buf *make_buffer(void)
{
	uint64_t cap = atomic_load(&capacity);
	size_t bytes = sp_tl_buf_bytes(cap);
	struct sp_tl_buf *b = sp_shm_active() ? sp_shm_alloc_timeline(bytes) : NULL;
	if (!b && !sp_shm_active()) {
		void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		b = m == MAP_FAILED ? NULL : m;
	}
	if (!b) {
		no_buffer = true;
		return NULL;
	}
	b->pid = getpid();
	b->tid = (int32_t)syscall(SYS_gettid);
	prctl(PR_GET_NAME, b->name);
	b->cap = cap;
	b->next = atomic_load(&all);
	while (!atomic_compare_exchange_weak(&all, (struct sp_tl_buf **)&b->next, b))
		;
	mine = b;
	return b;
}

/* A slot for one event, or NULL (full: dropped).  The caller fills it
 * and publishes it with publish(). */
static struct sp_tl_event *reserve(void)
{
	struct sp_tl_buf *b = buffer();
	if (!b) {
		atomic_fetch_add_explicit(&orphan_drops, 1, memory_order_relaxed);
		return NULL;
	}
	uint64_t n = atomic_load_explicit(&b->n, memory_order_relaxed);
	if (n >= b->cap) {
		atomic_store_explicit(&b->dropped, atomic_load_explicit(&b->dropped, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		return NULL;
	}
	struct sp_tl_event *e = &b->ev[n];
	atomic_store_explicit(&e->type, SP_TL_FREE, memory_order_relaxed);
	return e;
}

static void publish(struct sp_tl_event *e, enum sp_tl_type type)
{
	atomic_store_explicit(&e->type, (uint8_t)type, memory_order_release);
	atomic_store_explicit(&mine->n, atomic_load_explicit(&mine->n, memory_order_relaxed) + 1,
			      memory_order_release);
}

static uint64_t now(void)
{
	return sp_latency_now();   /* the runtime's clock call: not counted */
}

static void take_args(struct selfprobe_ctx *ctx, struct sp_tl_event *e)
{
	const struct sp_probe *p = ctx->probe;
	e->flags = 0;
	e->ftypes = 0;
	if (p->kind == SP_KIND_USDT) {
		e->flags = SP_TL_SIGNED;
		e->nargs = p->usdt_nargs > 0 ? (uint8_t)p->usdt_nargs : 0;
		for (int i = 0; i < e->nargs; i++) {
			if (selfprobe_usdt_arg(ctx, i, &e->arg[i]) != 0)
				e->arg[i] = 0;
			if (p->usdt_args[i].is_float)
				e->ftypes |= (uint32_t)(p->usdt_args[i].size == 4 ? SP_TL_F32 : SP_TL_F64) << (2 * i);
		}
	} else {
		e->nargs = 6;    /* the SysV integer argument registers (Go's, in Go) */
		for (int i = 0; i < 6; i++)
			e->arg[i] = (int64_t)sp_go_or_c_arg(ctx, i);
	}
}

void sp_timeline_hit(struct selfprobe_ctx *ctx)
{
	const struct sp_probe *p = ctx->probe;
	if (p->tl_label < 0)
		return;
	if (ctx->is_return) {
		if (p->kind != SP_KIND_USESSION || !ctx->cookie || !*ctx->cookie)
			return;    /* uretprobes: sp_timeline_span from the return path */
		/* the entry's event, wherever it was recorded: complete it */
		struct sp_tl_event *e = (struct sp_tl_event *)(uintptr_t)*ctx->cookie;
		e->dur_ns = now() - e->ts_ns;
		e->ret = ctx->regs->rax;
		e->flags |= SP_TL_RET;
		atomic_store_explicit(&e->type, SP_TL_SPAN, memory_order_release);
		return;
	}
	struct sp_tl_event *e = reserve();
	if (!e)
		return;
	e->ts_ns = now();
	e->dur_ns = 0;
	e->label = (uint32_t)p->tl_label;
	take_args(ctx, e);
	if (p->kind == SP_KIND_USESSION && ctx->cookie) {
		*ctx->cookie = (uint64_t)(uintptr_t)e;
		publish(e, SP_TL_OPEN);
	} else
		publish(e, SP_TL_INSTANT);
}

void sp_timeline_span(const struct sp_probe *p, uint64_t start_ns, uint64_t dur_ns, uint64_t ret)
{
	if (p->tl_label < 0)
		return;
	struct sp_tl_event *e = reserve();
	if (!e)
		return;
	e->ts_ns = start_ns;
	e->dur_ns = dur_ns;
	e->label = (uint32_t)p->tl_label;
	e->nargs = 0;
	e->flags = SP_TL_RET;
	e->ret = ret;
	publish(e, SP_TL_SPAN);
}

/* ---- at the report ---- */

static const char *own_label(void *ctx, uint32_t i, int *kind)
{
	(void)ctx;
	if (i >= atomic_load(&n_labels))
		return NULL;
	*kind = labels[i].kind;
	return labels[i].text;
}

static const char *record_label(void *ctx, uint32_t i, int *kind)
{
	(void)ctx;
	return sp_shm_record_label(i, kind);
}

int sp_timeline_write(FILE *f, const char *process_name)
{
	struct sp_tl_writer w;
	sp_tl_json_begin(&w, f);
	sp_tl_json_process(&w, getpid(), process_name);
	sp_tl_label_fn fn = sp_shm_active() ? record_label : own_label;
	for (struct sp_tl_buf *b = atomic_load(&all); b; b = atomic_load(&b->next))
		sp_tl_json_buffer(&w, b, fn, NULL);
	w.dropped += atomic_load(&orphan_drops);
	return sp_tl_json_end(&w);
}

void sp_timeline_totals(uint64_t *events, uint64_t *dropped, uint64_t *threads)
{
	*events = *threads = 0;
	*dropped = atomic_load(&orphan_drops);
	for (struct sp_tl_buf *b = atomic_load(&all); b; b = atomic_load(&b->next)) {
		*events += atomic_load(&b->n);
		*dropped += atomic_load(&b->dropped);
		++*threads;
	}
}

void sp_timeline_atfork_child(void)
{
	/* the parent's events are the parent's: the child starts its own
	 * (its buffers under the launcher are in the child's new section) */
	atomic_store(&all, NULL);
	atomic_store(&orphan_drops, 0);
	mine = NULL;
	no_buffer = false;
}
