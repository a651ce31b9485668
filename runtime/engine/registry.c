/* registry — the probe records: the list, the lock, counts, dormant records; see registry.h. */
#include "registry.h"
#include "heap.h"
#include "coexist.h"
#include "latency.h"
#include "registry_int.h"
#include "shmprobe.h"
#include "stack.h"
#include "timeline.h"
#include "trace.h"
#include "tstate.h"
#include "uret.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sp_mode_pref sp_mode_pref = SP_PREF_AUTO;

pthread_mutex_t sp_registry_lock = PTHREAD_MUTEX_INITIALIZER;
struct sp_probe *_Atomic sp_registry_probes;
static struct sp_probe *probes_tail;

struct sp_probe *sp_probe_first(void) { return atomic_load(&sp_registry_probes); }

void sp_probe_counts(const struct sp_probe *p, uint64_t *out)
{
	memcpy(out, p->final, sizeof(p->final));   /* earlier attachments */
	if (p->attached || p->detaching) {
		uint64_t live[SP_N_COUNTERS];
		sp_tstate_read(p->id, live);
		for (int k = 0; k < SP_N_COUNTERS; k++)
			out[k] += live[k];
	}
}

/* Detached or unloaded: add the live counters and histogram to the frozen
 * ones (the id and slot are given back after the quiescence). */
void sp_probe_freeze_counts(struct sp_probe *p)
{
	uint64_t live[SP_N_COUNTERS];
	sp_tstate_read(p->id, live);
	for (int k = 0; k < SP_N_COUNTERS; k++)
		p->final[k] += live[k];
	if (p->lat_slot >= 0) {
		struct sp_lat l;
		sp_latency_read((uint32_t)p->lat_slot, &l);
		sp_latency_merge(p->final_lat, &l);   /* made with the slot */
	}
	sp_shm_final(p);
}

struct usdt_lookup {
	const struct sp_object *obj;
};

/* A symbol named in a USDT argument (8@counter(%rip)): its runtime address. */
static int usdt_symbol(const char *name, void *vctx, uint64_t *addr)
{
	const struct usdt_lookup *lk = vctx;
	uint64_t v;
	if (sp_elf_find_any_symbol(lk->obj->path, name, &v) != 0)
		return -ENOENT;
	*addr = lk->obj->bias + v;
	return 0;
}

struct sp_probe *sp_probe_new(const struct sp_spec_item *item, const struct sp_object *obj,
			      struct target *t, selfprobe_handler_fn fn, void *data)
{
	struct sp_probe *p = sp_calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	long id = sp_tstate_alloc_id();
	if (id < 0) {
		sp_free(p);
		return NULL;
	}
	p->id = (uint32_t)id;
	p->spec = sp_strdup(item->text);
	p->kind = item->kind;
	p->action = item->action;
	p->lat_slot = -1;
	p->shm_record = -1;
	p->tl_label = -1;
	p->internal = item->internal;
	p->wants_return = sp_item_wants_return(item);
	if (item->action == SP_ACT_LATENCY) {
		long slot = sp_latency_alloc();
		if (slot >= 0 && !(p->final_lat = sp_calloc(1, sizeof(*p->final_lat)))) {
			sp_latency_free((uint32_t)slot);
			slot = -ENOMEM;
		}
		if (slot < 0) {
			sp_tstate_free_id(p->id);
			sp_free(p->spec);
			sp_free(p);
			return NULL;
		}
		p->lat_slot = (int)slot;
	}
	if (p->wants_return)
		sp_uret_prepare();
	if (t->note) {
		p->semaphore = t->note->semaphore ? obj->bias + t->note->semaphore : 0;
		struct usdt_lookup lk = { obj };
		char e[256];
		struct sp_usdt_arg args[SP_USDT_MAX_ARGS];
		int n = sp_usdt_parse_args(t->note->args, args, SP_USDT_MAX_ARGS, usdt_symbol, &lk,
					   e, sizeof(e));
		if (n > 0 && !(p->usdt_args = sp_malloc((size_t)n * sizeof(*args)))) {
			n = -1;
			snprintf(e, sizeof(e), "out of memory");
		}
		if (n > 0)
			memcpy(p->usdt_args, args, (size_t)n * sizeof(*args));
		if (n < 0) {
			/* the probe still counts; its arguments read as errors */
			sp_probe_error(item->text, "%s: arguments '%s': %s", t->symbol, t->note->args, e);
			p->usdt_nargs = -1;
		} else
			p->usdt_nargs = n;
	}
	p->fn = fn;
	p->data = data;
	if (!fn && item->action == SP_ACT_TRACE && sp_trace_prepare() == 0)
		p->fn = sp_trace_handler;
	if (!fn && item->action == SP_ACT_STACK && sp_stack_prepare() == 0)
		p->fn = sp_stack_handler;
	/* the built-in actions and the runtime's own probes: what they call
	 * (the unwinder's memcmp, the trace's write) is not the application's */
	p->runtime_fn = p->fn && (p->fn != fn || item->internal);
	p->object = sp_strdup(obj->path);
	p->bias = obj->bias;
	p->vaddr = t->addr - obj->bias;
	p->symbol = t->symbol;
	p->implementation = t->implementation;
	t->symbol = t->implementation = NULL;
	if (p->symbol)
		p->label = sp_asprintf("%s:%s%s%s", sp_kind_name(item->kind), item->object ? item->object : "",
				     item->object ? ":" : "", p->symbol);
	else
		p->label = sp_strdup(item->probe_text);
	return p;
}

void sp_probe_free(struct sp_probe *p)
{
	if (p->lat_slot >= 0)
		sp_latency_free((uint32_t)p->lat_slot);
	sp_free(p->spec);
	sp_free(p->label);
	sp_free(p->object);
	sp_free(p->symbol);
	sp_free(p->implementation);
	sp_free(p->usdt_args);
	sp_free(p->final_lat);
	sp_free(p);
}

void sp_registry_append(struct sp_probe *p)
{
	if (p->revived) {   /* already listed, labelled and recorded */
		p->revived = false;
		p->unloaded = false;
		sp_shm_republish(p);
		return;
	}
	sp_shm_publish(p);
	sp_timeline_label(p);
	if (probes_tail)
		probes_tail->next = p;
	else
		atomic_store(&sp_registry_probes, p);
	probes_tail = p;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Dormant probes: detached or unloaded, ids given back; hashed by site
 * address, so that re-attaching thousands stays linear (registry lock). */
#define DORMANT_BUCKETS 4096
static struct sp_probe *dormant[DORMANT_BUCKETS];

static struct sp_probe **dormant_bucket(uintptr_t vaddr)
{
	return &dormant[(vaddr * 0x9E3779B97F4A7C15ull) >> 52];   /* top 12 bits */
}

/* P's id and latency slot given back (after a quiescence: nothing counts
 * to them any more), and P laid dormant. */
void sp_probe_lay_dormant(struct sp_probe *p)
{
	sp_tstate_free_id(p->id);
	if (p->lat_slot >= 0) {
		sp_latency_free((uint32_t)p->lat_slot);
		p->lat_slot = -1;
	}
	p->freed_id = true;
	if (p->internal)
		return;
	struct sp_probe **b = dormant_bucket(p->vaddr);
	p->next_dormant = *b;
	*b = p;
}

/* The dormant probe P would be again, taken off the dormant list: the same
 * spec, object, site, kind and action.  Not the same handler function: a
 * program that attaches probes on demand with handlers of its own, or
 * reloads a plugin (its function at a new address each time), gets back the
 * record of that spec at that site, and the registry grows with the distinct
 * probes of its code, not with its churn (issue 16).  Registry lock held. */
struct sp_probe *sp_probe_dormant_twin(const struct sp_probe *p)
{
	for (struct sp_probe **at = dormant_bucket(p->vaddr); *at; at = &(*at)->next_dormant) {
		struct sp_probe *q = *at;
		if (q->kind == p->kind && q->action == p->action && q->vaddr == p->vaddr &&
		    same_str(q->spec, p->spec) && same_str(q->object, p->object) &&
		    same_str(q->symbol, p->symbol) && same_str(q->implementation, p->implementation)) {
			*at = q->next_dormant;
			q->next_dormant = NULL;
			return q;
		}
	}
	return NULL;
}

/* Q takes fresh P's live parts (id, slot, handler data, where it is now);
 * Q keeps its record, label and counts, to which the new ones add.  P is
 * freed.  Nothing reads Q's live parts while it is dormant: it is in no
 * site's vector, and returns of its earlier life see it detached. */
struct sp_probe *sp_probe_revive(struct sp_probe *q, struct sp_probe *p)
{
	q->id = p->id;
	q->lat_slot = p->lat_slot;
	q->semaphore = p->semaphore;
	q->usdt_nargs = p->usdt_nargs;
	sp_free(q->usdt_args);   /* the note's arguments as parsed now */
	q->usdt_args = p->usdt_args;
	p->usdt_args = NULL;
	q->fn = p->fn;
	q->runtime_fn = p->runtime_fn;
	q->data = p->data;
	q->bias = p->bias;
	atomic_store(&q->faulted, false);   /* a new attachment runs its handler again */
	q->freed_id = false;
	q->revived = true;
	p->lat_slot = -1;                   /* Q's now */
	sp_probe_free(p);
	return q;
}

/* A revived probe whose site could not be armed: dormant again. */
void sp_probe_lay_down(struct sp_probe *q)
{
	q->attached = false;
	q->revived = false;
	sp_probe_lay_dormant(q);
}

void sp_probe_lock(void) { pthread_mutex_lock(&sp_registry_lock); }
void sp_probe_coexist_report(void)
{
	/* the report's own look at the sites: record only, and never wait (a
	 * report written while a batch runs skips it; the batch scans) */
	if (pthread_mutex_trylock(&sp_registry_lock) != 0)
		return;
	sp_coexist_scan(false);
	pthread_mutex_unlock(&sp_registry_lock);
}
void sp_probe_unlock(void) { pthread_mutex_unlock(&sp_registry_lock); }
/* never waits: for the fault handler (coexist.c), where waiting for a
 * batch of this very thread would never end */
bool sp_probe_trylock(void) { return pthread_mutex_trylock(&sp_registry_lock) == 0; }
