/* probe — the registry and attach/detach; see probe.h. */
#include "probe.h"
#include "bt.h"
#include "coexist.h"
#include "symcache.h"
#include "elfsym.h"
#include "golang_ret.h"
#include "hazard.h"
#include "registry.h"
#include "shm.h"
#include "shmprobe.h"
#include "stack.h"
#include "trace.h"
#include "usdt.h"
#include "insn.h"
#include "log.h"
#include "maps.h"
#include "memread.h"
#include "patch.h"
#include "arm.h"
#include "btindex.h"
#include "trap.h"
#include "latency.h"
#include "timeline.h"
#include "tstate.h"
#include "uret.h"
#include "shstk.h"
#include "tracer.h"
#include "xsave.h"

#include <dlfcn.h>
#include <fnmatch.h>
#include <sys/auxv.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sp_mode_pref sp_mode_pref = SP_PREF_AUTO;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sp_probe *_Atomic probes_head;
static struct sp_probe *probes_tail;
static struct sp_error *_Atomic errors_head;
static struct sp_error *errors_tail;

/* ELF files already read, by path: libc is read once, not once per item. */
struct elf_cache {
	struct sp_elf *elf;
	struct elf_cache *next;
};
static struct elf_cache *elves;

struct sp_probe *sp_probe_first(void) { return atomic_load(&probes_head); }
struct sp_error *sp_error_first(void) { return atomic_load(&errors_head); }

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
static void freeze_counts(struct sp_probe *p)
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

static void add_error(const char *spec, const char *msg)
{
	struct sp_error *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->spec = strdup(spec ? spec : "");
	e->message = strdup(msg);
	if (errors_tail)
		errors_tail->next = e;
	else
		atomic_store(&errors_head, e);
	errors_tail = e;
	sp_shm_error(e->spec, e->message);
}

void sp_probe_publish_errors(void)
{
	for (struct sp_error *e = atomic_load(&errors_head); e; e = e->next)
		sp_shm_error(e->spec, e->message);
}

/* An error for the report (and the log, when asked for).  Also log.h's
 * error sink: the lower modules' messages come formatted already. */
static void record_error(const char *spec, const char *msg)
{
	sp_err("%s: %s", spec, msg);
	add_error(spec, msg);
}

void sp_probe_error(const char *spec, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	record_error(spec, msg);
}

static struct sp_elf *elf_get(const char *path, char *err, size_t errlen)
{
	for (struct elf_cache *c = elves; c; c = c->next)
		if (strcmp(c->elf->path, path) == 0)
			return c->elf;
	struct sp_elf *e;
	if (sp_elf_open_cached(path, &e, err, errlen) != 0)
		return NULL;
	struct elf_cache *c = malloc(sizeof(*c));
	if (!c) {
		sp_elf_close(e);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->elf = e;
	c->next = elves;
	elves = c;
	return e;
}

/* ---- retired probe vectors ---- */

/* Probe vectors replaced under the registry lock wait here until a
 * quiescence has passed.  The API's attach and detach quiesce after
 * unlocking: quiescence waits for every thread inside dispatch, and one of
 * them may be waiting for the registry lock (the loader notification's
 * handler, loadwatch.c, takes it inside dispatch).  Registry lock held. */
static struct sp_probe_vec **retired;
static size_t n_retired, cap_retired;

static void retire(struct sp_probe_vec *v)
{
	if (!v)
		return;
	if (n_retired == cap_retired) {
		size_t cap = cap_retired ? cap_retired * 2 : 16;
		struct sp_probe_vec **n = realloc(retired, cap * sizeof(*n));
		if (!n)
			return;   /* never freed: a small leak, never a use after free */
		retired = n;
		cap_retired = cap;
	}
	retired[n_retired++] = v;
}

/* Quiesce, then free what was retired before it.  LOCKED: the registry lock
 * is held (only where no thread can wait for it inside dispatch).  ALWAYS:
 * quiesce even with nothing retired here — a detach must wait for the
 * handlers still running even when a concurrent reclaim took its vectors. */
static void reclaim_when(bool locked, bool always)
{
	if (!locked)
		pthread_mutex_lock(&reg_lock);
	struct sp_probe_vec **v = retired;
	size_t n = n_retired;
	retired = NULL;
	n_retired = cap_retired = 0;
	if (!locked)
		pthread_mutex_unlock(&reg_lock);
	if (n || always)
		sp_tstate_quiesce();
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void reclaim(bool locked)
{
	reclaim_when(locked, false);
}

size_t sp_probe_retired_mark(void) { return n_retired; }

void sp_probe_reclaim_locked(size_t mark)
{
	/* Only what was retired since MARK, by this thread: the quiescence
	 * cannot wait for this thread's own dispatch (the loader
	 * notification's, which runs this), and a vector another thread
	 * retired before — the notification probe's own, replaced by a
	 * detach that then let go of the lock to quiesce — may be the very
	 * one that dispatch goes on reading after this handler returns.
	 * That thread frees it after its own quiescence, which waits for
	 * this dispatch. */
	if (mark > n_retired)
		mark = n_retired;
	size_t n = n_retired - mark;
	if (n == 0)
		return;
	struct sp_probe_vec **v = malloc(n * sizeof(*v));
	if (!v)
		return;   /* freed by the next reclaim */
	memcpy(v, retired + mark, n * sizeof(*v));
	n_retired = mark;
	sp_tstate_quiesce();
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void sp_probe_reclaim(void) { reclaim(false); }

/* ---- sites ---- */

/* Publish a new probe vector for SITE with P added (P non-NULL) or REMOVE
 * removed.  The old vector is freed after quiescence by the caller. */
static struct sp_probe_vec *vec_replace(struct sp_site *site, struct sp_probe *add,
					struct sp_probe *remove)
{
	struct sp_probe_vec *old = atomic_load(&site->vec);
	uint32_t n = old ? old->n : 0;
	struct sp_probe_vec *v = malloc(sizeof(*v) + (n + 1) * sizeof(v->p[0]));
	if (!v)
		return NULL;
	v->n = 0;
	for (uint32_t i = 0; i < n; i++)
		if (old->p[i] != remove)
			v->p[v->n++] = old->p[i];
	if (add)
		v->p[v->n++] = add;
	uint8_t handlers = 0;
	v->only_returns = v->n > 0 && v->n <= SP_URET_PROBES;
	for (uint32_t i = 0; v && i < v->n; i++) {
		const struct sp_probe *q = v->p[i];
		handlers |= q->fn != NULL || q->wants_return;
		v->only_returns &= (q->kind == SP_KIND_URETPROBE || q->kind == SP_KIND_USESSION) && !q->fn &&
				   q->action == SP_ACT_COUNT && !q->go_ret;
	}
	if (v->only_returns)
		handlers = 0;   /* the lean path passes rsp: enough to swap the return */
	if (v->n == 0) {
		free(v);
		v = NULL;
	}
	/* a handler's probe: the full frame first, then the probe; going away:
	 * the probe first, then the lean frame.  The inline count stops before
	 * the vector changes and starts after (a hit in between takes the C
	 * path, which reads the vector); the caller's quiescence fences the
	 * old offset (fastcount.h) before the old probe's id is freed. */
	atomic_store(&site->fast_off, 0);
	if (handlers)
		atomic_store(&site->has_handlers, 1);
	atomic_store_explicit(&site->vec, v, memory_order_release);
	if (!handlers)
		atomic_store(&site->has_handlers, 0);
	/* A trampoline holding a probe's native code (bt_jit.h) runs it
	 * whenever the inline count counts: so there the count is on only
	 * while that probe is the only one (a plain count takes the C path) */
	bool inl = v && v->n == 1 && site->inline_code && v->p[0]->inline_code == site->inline_code;
	bool plain = v && v->n == 1 && !site->inline_code && !handlers && !v->only_returns && !v->p[0]->fn &&
		     v->p[0]->action == SP_ACT_COUNT;
	if (inl || plain)
		atomic_store(&site->fast_off, (uint32_t)(v->p[0]->id * sizeof(struct sp_count) +
							 SP_HITS * sizeof(uint64_t)));
	return old;
}

/* ---- resolving an item to sites ---- */

struct target {
	uintptr_t addr;
	char *symbol;            /* what the report calls it */
	char *implementation;    /* IFUNC: the implementation chosen */
	struct sp_func_extent fn; /* the function holding the site */
	const struct sp_usdt_note *note;  /* usdt: the note of the site */
};

/* The first byte after VADDR where another function starts (a symbol, or
 * an .eh_frame extent: a stripped file's local functions), or the end of
 * the text holding VADDR: a jmp window must not reach into it. */
static uintptr_t next_symbol(const struct sp_object *obj, const struct sp_elf *elf, uintptr_t func)
{
	uint64_t next = sp_elf_next_start(elf, func - obj->bias);
	uintptr_t limit = next ? obj->bias + next : 0;
	for (int i = 0; i < obj->n_text; i++)
		if (func >= obj->text[i].start && func < obj->text[i].end && (!limit || limit > obj->text[i].end))
			limit = obj->text[i].end;
	return limit;
}

static char *xasprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* uretprobe, usession and the latency action swap the return address. */
static bool item_wants_return(const struct sp_spec_item *item)
{
	return item->kind == SP_KIND_URETPROBE || item->kind == SP_KIND_USESSION ||
	       item->action == SP_ACT_LATENCY;
}

/* The address the process actually calls for an IFUNC symbol: run the
 * resolver exactly as the dynamic linker did (x86-64 resolvers take no
 * arguments: glibc's read the cpu features ld.so set up), so the answer is
 * the one it got.  Not dlsym: dlopen/dlsym from our constructor, which runs
 * before libc's (-z initfirst), would initialise libc early and lose the
 * environment. */
static uintptr_t ifunc_target(const struct sp_object *obj, const struct sp_sym *sym)
{
	uintptr_t (*resolver)(void) = (uintptr_t (*)(void))(obj->bias + sym->value);
	return resolver();
}

/* Fill T for SYM (+OFFSET).  0, or -errno with a message in ERR. */
static int target_for(const struct sp_object *obj, const struct sp_elf *elf,
		      const struct sp_sym *sym, uint64_t offset, struct target *t,
		      char *err, size_t errlen)
{
	uintptr_t func = obj->bias + sym->value;
	uint64_t size = sym->size;
	t->implementation = NULL;
	if (sym->is_ifunc) {
		func = ifunc_target(obj, sym);
		if (!func) {
			snprintf(err, errlen, "the IFUNC resolver of %s returned NULL", sym->name);
			return -EINVAL;
		}
		if (!sp_maps_text_avail(obj, func)) {
			uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
			bool in_vdso = vdso && func >= vdso && func < vdso + 0x4000;
			snprintf(err, errlen, "the IFUNC %s resolves outside %s (%#lx%s)", sym->name,
				 sp_maps_base_name(obj->path), (unsigned long)func,
				 in_vdso ? ", in the vDSO, which is not probed" : "");
			return -EINVAL;
		}
		const struct sp_sym *impl = sp_elf_containing(elf, func - obj->bias);
		if (impl && impl->value == func - obj->bias) {
			t->implementation = strdup(impl->name);
			size = impl->size;
		} else {
			/* no symbol (a stripped libc without its debug file) */
			t->implementation = xasprintf("%s+%#lx", sp_maps_base_name(obj->path),
						      (unsigned long)(func - obj->bias));
			size = 0;
		}
	}
	/* no symbol size (assembly without .size, a stripped IFUNC
	 * implementation): the .eh_frame extent starting there */
	if (!size)
		size = sp_elf_fde_size(elf, func - obj->bias);
	if (offset) {
		if (size && offset >= size) {
			snprintf(err, errlen, "offset +%#lx is past the end of %s (size %#lx)",
				 (unsigned long)offset, sym->name, (unsigned long)size);
			return -EINVAL;
		}
		if (!size) {
			snprintf(err, errlen, "%s has no known size: cannot check that +%#lx is an instruction boundary",
				 sym->name, (unsigned long)offset);
			return -EINVAL;
		}
		size_t avail = sp_maps_text_avail(obj, func);
		if (avail < size) {
			snprintf(err, errlen, "%s is not inside the object's executable text", sym->name);
			return -EINVAL;
		}
		char why[256];
		uint8_t *code = malloc(size);   /* decoded as it was: ours may be patched in */
		if (!code) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		sp_site_pristine(func, size, code);
		int rc = sp_insn_boundary(code, size, func, offset, why, sizeof(why));
		free(code);
		if (rc != 0) {
			snprintf(err, errlen, "%s+%#lx: %s", sym->name, (unsigned long)offset, why);
			return -EINVAL;
		}
	}
	t->addr = func + offset;
	t->fn = (struct sp_func_extent){ .start = size ? func : 0, .size = size,
					 .limit = next_symbol(obj, elf, func),
					 .bt = sp_btindex_get(obj, elf), .elf = elf,
					 .landing_pads = elf->has_except_table };
	/* a Go function's entry probe goes past its stack check (golang.h) */
	t->addr += sp_go_site(obj->path, func, size, offset, &t->fn);
	t->symbol = offset ? xasprintf("%s+%#lx", sym->name, (unsigned long)offset) : strdup(sym->name);
	return 0;
}

/* Is the code at ADDR gone (its object unmapped under us), WHY being what
 * sp_arm_site said of it (NULL: a write to it failed)? */
static bool code_gone(const char *why, uintptr_t addr)
{
	uint8_t b;
	return why == sp_arm_gone || !sp_mem_read(addr, &b, 1);
}

static int by_addr(const void *a, const void *b)
{
	const struct target *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* at one address the IFUNC name (strlen) beats its implementation's */
	return (y->implementation != NULL) - (x->implementation != NULL);
}

/* One target per address: a glob can name a site twice (an IFUNC and its
 * implementation, two IFUNCs sharing one implementation). */
static long dedupe_targets(struct target *ts, long n)
{
	if (n < 2)
		return n;
	qsort(ts, (size_t)n, sizeof(*ts), by_addr);
	long k = 1;
	for (long i = 1; i < n; i++) {
		if (ts[i].addr == ts[k - 1].addr) {
			free(ts[i].symbol);
			free(ts[i].implementation);
			continue;
		}
		ts[k++] = ts[i];
	}
	return k;
}

/* Every site ITEM names, into *OUT (malloc'ed).  Count, or -errno with ERR. */
/* USDT notes already read, by path. */
struct note_cache {
	char *path;
	struct sp_usdt_notes notes;
	struct note_cache *next;
};
static struct note_cache *note_files;

static const struct sp_usdt_notes *notes_get(const char *path, char *err, size_t errlen)
{
	for (struct note_cache *c = note_files; c; c = c->next)
		if (strcmp(c->path, path) == 0)
			return &c->notes;
	struct note_cache *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sp_usdt_read(path, &c->notes, err, errlen) != 0) {
		free(c);
		return NULL;
	}
	c->path = strdup(path);
	c->next = note_files;
	note_files = c;
	return &c->notes;
}

/* The sites of usdt:[object:]provider:name (globs allowed). */
static long resolve_usdt(const struct sp_spec_item *item, const struct sp_object *obj,
			 struct sp_elf *elf, struct target **out, char *err, size_t errlen)
{
	const struct sp_usdt_notes *notes = notes_get(obj->path, err, errlen);
	if (!notes)
		return -EINVAL;
	if (notes->n == 0) {
		snprintf(err, errlen, "%s has no USDT notes (.note.stapsdt)", sp_maps_base_name(obj->path));
		return -ENOENT;
	}
	struct target *ts = calloc(notes->n, sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	long k = 0;
	for (size_t i = 0; i < notes->n; i++) {
		const struct sp_usdt_note *n = &notes->v[i];
		if (fnmatch(item->provider, n->provider, 0) != 0 || fnmatch(item->name, n->name, 0) != 0)
			continue;
		struct target *t = &ts[k++];
		t->addr = obj->bias + n->pc;
		t->symbol = xasprintf("%s:%s", n->provider, n->name);
		t->note = n;
		uint64_t fs = 0, fz = 0;   /* a sized symbol, else the .eh_frame extent */
		bool known = sp_elf_func_extent(elf, n->pc, &fs, &fz);
		t->fn = (struct sp_func_extent){ .start = known ? obj->bias + fs : 0,
						 .size = known ? fz : 0,
						 .limit = next_symbol(obj, elf, t->addr),
						 .bt = sp_btindex_get(obj, elf), .elf = elf,
						 .landing_pads = elf->has_except_table };
	}
	if (k == 0) {
		snprintf(err, errlen, "no USDT probe %s:%s in %s", item->provider, item->name,
			 sp_maps_base_name(obj->path));
		free(ts);
		return -ENOENT;
	}
	*out = ts;
	return k;
}

static long resolve(const struct sp_spec_item *item, const struct sp_object *obj,
		    struct sp_elf *elf, struct target **out, char *err, size_t errlen)
{
	*out = NULL;
	if (item->kind == SP_KIND_USDT)
		return resolve_usdt(item, obj, elf, out, err, errlen);
	if (item->has_address) {
		const struct sp_sym *sym = sp_elf_containing(elf, item->address);
		if (!sym && item->internal) {
			struct target *t = calloc(1, sizeof(*t));
			if (!t)
				return -ENOMEM;
			t->addr = obj->bias + item->address;
			t->symbol = xasprintf("%#lx", (unsigned long)item->address);
			t->fn.limit = next_symbol(obj, elf, t->addr);
			uint64_t fs, fz;   /* the .eh_frame extent holding it, if any */
			if (sp_elf_func_extent(elf, item->address, &fs, &fz)) {
				t->fn.start = obj->bias + fs;
				t->fn.size = fz;
			}
			t->fn.bt = sp_btindex_get(obj, elf);
			t->fn.elf = elf;
			t->fn.landing_pads = elf->has_except_table;
			*out = t;
			return 1;
		}
		if (!sym) {
			snprintf(err, errlen, "address %#lx is not inside any function of %s",
				 (unsigned long)item->address, sp_maps_base_name(obj->path));
			return -ENOENT;
		}
		if (sym->is_ifunc) {
			snprintf(err, errlen, "address %#lx is inside the IFUNC resolver %s; name the symbol instead",
				 (unsigned long)item->address, sym->name);
			return -EINVAL;
		}
		struct target *t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		if (item_wants_return(item) && item->address != sym->value) {
			free(t);
			snprintf(err, errlen, "return probes attach at a function entry: %#lx is %s+%#lx",
				 (unsigned long)item->address, sym->name,
				 (unsigned long)(item->address - sym->value));
			return -EINVAL;
		}
		int rc = target_for(obj, elf, sym, item->address - sym->value, t, err, errlen);
		if (rc) {
			free(t);
			return rc;
		}
		*out = t;
		return 1;
	}
	const struct sp_sym **syms;
	long n = sp_elf_match(elf, item->name, &syms);
	if (n < 0) {
		snprintf(err, errlen, "cannot match '%s': %s", item->name, strerror((int)-n));
		return n;
	}
	if (n == 0) {
		if (strpbrk(item->name, "*?["))
			snprintf(err, errlen, "no function matches '%s' in %s", item->name, sp_maps_base_name(obj->path));
		else
			snprintf(err, errlen, "symbol '%s' not found in %s", item->name, sp_maps_base_name(obj->path));
		free(syms);
		return -ENOENT;
	}
	struct target *ts = calloc((size_t)n, sizeof(*ts));
	if (!ts) {
		free(syms);
		return -ENOMEM;
	}
	long k = 0;
	for (long i = 0; i < n; i++) {
		char e2[512];
		if (target_for(obj, elf, syms[i], item->offset, &ts[k], e2, sizeof(e2)) == 0)
			k++;
		else if (n == 1) {
			snprintf(err, errlen, "%s", e2);
			free(syms);
			free(ts);
			return -EINVAL;
		} else
			sp_probe_error(item->text, "%s", e2);   /* this match only; the others attach */
	}
	free(syms);
	k = dedupe_targets(ts, k);
	*out = ts;
	return k;
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

static struct sp_probe *new_probe(const struct sp_spec_item *item, const struct sp_object *obj,
				  struct target *t, selfprobe_handler_fn fn, void *data)
{
	struct sp_probe *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	long id = sp_tstate_alloc_id();
	if (id < 0) {
		free(p);
		return NULL;
	}
	p->id = (uint32_t)id;
	p->spec = strdup(item->text);
	p->kind = item->kind;
	p->action = item->action;
	p->lat_slot = -1;
	p->shm_record = -1;
	p->tl_label = -1;
	p->internal = item->internal;
	p->wants_return = item_wants_return(item);
	if (item->action == SP_ACT_LATENCY) {
		long slot = sp_latency_init() == 0 ? sp_latency_alloc() : -ENOSPC;
		if (slot >= 0 && !(p->final_lat = calloc(1, sizeof(*p->final_lat)))) {
			sp_latency_free((uint32_t)slot);
			slot = -ENOMEM;
		}
		if (slot < 0) {
			sp_tstate_free_id(p->id);
			free(p->spec);
			free(p);
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
		if (n > 0 && !(p->usdt_args = malloc((size_t)n * sizeof(*args)))) {
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
	p->object = strdup(obj->path);
	p->bias = obj->bias;
	p->vaddr = t->addr - obj->bias;
	p->symbol = t->symbol;
	p->implementation = t->implementation;
	t->symbol = t->implementation = NULL;
	if (p->symbol)
		p->label = xasprintf("%s:%s%s%s", sp_kind_name(item->kind), item->object ? item->object : "",
				     item->object ? ":" : "", p->symbol);
	else
		p->label = strdup(item->probe_text);
	return p;
}

static void free_probe(struct sp_probe *p)
{
	if (p->lat_slot >= 0)
		sp_latency_free((uint32_t)p->lat_slot);
	free(p->spec);
	free(p->label);
	free(p->object);
	free(p->symbol);
	free(p->implementation);
	free(p->usdt_args);
	free(p->final_lat);
	free(p);
}

static void registry_append(struct sp_probe *p)
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
		atomic_store(&probes_head, p);
	probes_tail = p;
}

/* Why ITEM cannot be attached in this process at all, or NULL. */
const char *sp_probe_unsupported(const struct sp_spec_item *item)
{
	static __thread char traced[256];
	const char *no = sp_tracer_refusal(traced, sizeof(traced));
	if (no)
		return no;
	if (item_wants_return(item) && !item->internal)
		return sp_shstk_return_refusal(sp_shstk_enabled());
	return NULL;
}

/* What the layers above registered (registry.h). */
static void (*fork_children[4])(void);
static int n_fork_children;
static void (*on_return_probe)(void);

void sp_probe_on_fork_child(void (*fn)(void))
{
	if (n_fork_children < (int)(sizeof(fork_children) / sizeof(fork_children[0])))
		fork_children[n_fork_children++] = fn;
}

void sp_probe_on_return_probe(void (*fn)(void))
{
	on_return_probe = fn;
}

/* In a fork child only the forking thread survives: locks another thread
 * held are reset, counts start from zero (each process reports its own
 * hits; %p keeps the reports apart), and /proc/self/mem is reopened. */
static void atfork_child(void)
{
	pthread_mutex_init(&reg_lock, NULL);
	sp_patch_atfork_child();
	bool shared = sp_shm_atfork_child() == 0 && sp_shm_active();
	sp_tstate_atfork_child();
	sp_uret_atfork_child();
	sp_latency_atfork_child();
	for (int i = 0; i < n_fork_children; i++)
		fork_children[i]();
	sp_timeline_atfork_child();
	sp_stack_atfork_child();
	if (shared)
		sp_probe_publish_errors();   /* the child's report has them too */
	for (struct sp_probe *p = atomic_load(&probes_head); p; p = p->next) {
		memset(p->final, 0, sizeof(p->final));
		if (p->final_lat)
			memset(p->final_lat, 0, sizeof(*p->final_lat));
		p->shm_record = -1;
		if (shared && p->attached) {
			sp_shm_publish(p);
			sp_timeline_label(p);   /* labels are the child's records now */
		}
	}
}

/* coexist.h: another tool's bytes over S, named for each probe there. */
static void coexist_report(const struct sp_site *s, const char *what, uint32_t late)
{
	for (struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		if (p->site != s || p->internal)
			continue;
		sp_probe_error(p->spec, "%s at %#" PRIxPTR ": bytes changed by another tool (a kernel uprobe?): "
			       "%s; %" PRIu32 " hits ran its first instruction elsewhere (counted, as missed)",
			       p->symbol ? p->symbol : "site", s->addr, what, late);
	}
}

static void setup_once(void)
{
	sp_log_set_error_sink(record_error);   /* the lower modules' errors: the report's */
	sp_xsave_init();
	sp_patch_set_fault_handler(sp_trap_install);   /* before any write */
	sp_coexist_on_report(coexist_report, sp_probe_trylock, sp_probe_unlock);
	pthread_atfork(sp_patch_atfork_prepare, sp_patch_atfork_parent, atfork_child);
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
static void lay_dormant(struct sp_probe *p)
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
static struct sp_probe *dormant_twin(const struct sp_probe *p)
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
static struct sp_probe *revive(struct sp_probe *q, struct sp_probe *p)
{
	q->id = p->id;
	q->lat_slot = p->lat_slot;
	q->semaphore = p->semaphore;
	q->usdt_nargs = p->usdt_nargs;
	free(q->usdt_args);   /* the note's arguments as parsed now */
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
	free_probe(p);
	return q;
}

/* A revived probe whose site could not be armed: dormant again. */
static void lay_down(struct sp_probe *q)
{
	q->attached = false;
	q->revived = false;
	lay_dormant(q);
}

/* Each armed site's result, for the probes on it: a map from the site to
 * the result of its last entry in the batch (an open-addressing table, not
 * a search of the batch per probe: 10,000 probes made that 10^8 compares,
 * most of an attach).  No libc call but calloc: the batch's sites may be
 * libc's own. */
struct arm_results {
	struct sp_site **site;
	int *rc;
	size_t mask;
};

static size_t arm_slot(const struct arm_results *m, const struct sp_site *s)
{
	size_t h = ((uintptr_t)s >> 4) * 0x9e3779b97f4a7c15ull;
	size_t i = (h >> 17) & m->mask;
	while (m->site[i] && m->site[i] != s)
		i = (i + 1) & m->mask;
	return i;
}

static int arm_results_make(struct arm_results *m, struct sp_site **sites, const int *rcs, size_t n)
{
	size_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	m->mask = cap - 1;
	m->site = calloc(cap, sizeof(*m->site));
	m->rc = calloc(cap, sizeof(*m->rc));
	if (!m->site || !m->rc) {
		free(m->site);
		free(m->rc);
		return -ENOMEM;
	}
	for (size_t j = 0; j < n; j++) {   /* a later entry of the same site wins */
		size_t i = arm_slot(m, sites[j]);
		m->site[i] = sites[j];
		m->rc[i] = rcs[j];
	}
	return 0;
}

/* SITE's result in the batch: 0 when it was armed before it. */
static int arm_result(const struct arm_results *m, const struct sp_site *site)
{
	size_t i = arm_slot(m, site);
	return m->site[i] ? m->rc[i] : 0;
}

static long attach_targets(const struct sp_spec_item *item, const struct sp_object *obj,
			   struct target *ts, long n_ts, selfprobe_handler_fn fn, void *data,
			   struct selfprobe_link *link, char *err, size_t errlen);

/* A Go function's return probe P (of ITEM, one of the N_TS targets TS)
 * sees its returns through an internal probe on each RET (golang.h). */
static void attach_go_returns(const struct sp_spec_item *item, const struct sp_object *obj,
			      const struct target *ts, long n_ts, struct sp_probe *p)
{
	const struct target *t = NULL;
	for (long i = 0; i < n_ts && !t; i++)
		t = ts[i].addr == p->site->addr ? &ts[i] : NULL;
	struct sp_go_ret *rets = NULL;
	const char *why = "its function is not known";
	long n = t ? sp_go_ret_sites(t->symbol, &t->fn, &rets, &why) : -1;
	struct target *rt = n > 0 ? calloc((size_t)n, sizeof(*rt)) : NULL;
	/* the RET probes' data, kept for the probe's life (as the probe is) */
	struct sp_go_rets *data = rt ? malloc(sizeof(*data) + (size_t)n * sizeof(data->r[0])) : NULL;
	if (!data) {
		sp_probe_error(item->text, "%s: its returns are not seen: %s", p->symbol,
			       n > 0 ? "out of memory" : why);
		free(rets);
		free(rt);
		return;
	}
	data->p = p;
	data->n = n;
	memcpy(data->r, rets, (size_t)n * sizeof(data->r[0]));
	for (long i = 0; i < n; i++) {
		rt[i].addr = rets[i].site;
		rt[i].symbol = xasprintf("%s+%#lx", t->symbol, (unsigned long)(rets[i].site - t->fn.start));
		rt[i].fn = t->fn;
		/* a RET followed by code keeps its window to itself (int3): the
		 * code after it may be entered by the Go runtime, not only by
		 * branches the index sees (a recovered panic resumes at the
		 * function's call of runtime.deferreturn) */
		if (rets[i].at_ret && rets[i].site + 1 < t->fn.start + t->fn.size) {
			rt[i].fn.size = rets[i].site + 1 - t->fn.start;
			rt[i].fn.limit = rets[i].site + 1;
		}
	}
	struct sp_spec_item ri = *item;
	ri.kind = SP_KIND_UPROBE;
	ri.action = SP_ACT_COUNT;
	ri.internal = true;   /* not reported: the user's probe counts the returns */
	char err[512] = "";
	long made = attach_targets(&ri, obj, rt, n, sp_go_ret_hit, data, p->link, err, sizeof(err));
	if (made != n)
		sp_probe_error(item->text, "%s: %ld of its %ld RETs are not probed, their returns not seen%s%s",
			       p->symbol, n - (made > 0 ? made : 0), n, *err ? ": " : "", err);
	for (long i = 0; i < n; i++)
		free(rt[i].symbol);
	free(rt);
	free(rets);
}

/* Sites and probes for the N_TS targets of ITEM, armed as one batch.
 * Returns the number of probes attached; a failure of the only target is
 * returned as -errno with ERR, a failure among several is recorded and the
 * others go on. */
static long attach_targets(const struct sp_spec_item *item, const struct sp_object *obj,
			   struct target *ts, long n_ts, selfprobe_handler_fn fn, void *data,
			   struct selfprobe_link *link, char *err, size_t errlen)
{
	struct sp_probe **ps = calloc((size_t)n_ts + 1, sizeof(*ps));
	struct sp_site **sites = calloc((size_t)n_ts + 1, sizeof(*sites));
	struct sp_probe_vec **olds = calloc((size_t)n_ts + 1, sizeof(*olds));
	int *rcs = calloc((size_t)n_ts + 1, sizeof(*rcs));
	struct sp_probe **go_rets = calloc((size_t)n_ts + 1, sizeof(*go_rets));
	long n = 0, n_old = 0, made = 0, n_go = 0, gone = 0;
	size_t n_arm = 0;
	if (!ps || !sites || !olds || !rcs || !go_rets) {
		snprintf(err, errlen, "out of memory");
		made = -ENOMEM;
		goto out;
	}
	bool want_jmp = sp_mode_pref != SP_PREF_INT3;
	bool wants_return = item_wants_return(item);
	/* a bpftrace block compiled to native code (bt_jit.h), run by the
	 * trampoline after the inline count instead of the handler */
	bool native = item->action == SP_ACT_PROGRAM && item->program && data == item->program;
	const uint8_t *inline_code = native ? item->program->native : NULL;
	size_t inline_len = native ? item->program->native_len : 0;
	/* as the batch below would: from here on sp_hazard_int3 reads the
	 * signal restorer back from our handler once, not asks for it twice
	 * per site while no handler exists */
	sp_trap_install();
	for (long i = 0; i < n_ts; i++) {
		const char *who = ts[i].implementation ? ts[i].implementation : ts[i].symbol;
		const char *why = NULL;
		ts[i].fn.hazard = sp_hazard_int3(obj->path, who, ts[i].addr);
		if (wants_return)   /* the name called, or the IFUNC's implementation */
			why = sp_hazard_return(ts[i].symbol) ? sp_hazard_return(ts[i].symbol)
							     : sp_hazard_return(ts[i].implementation);
		if (!why && !item->internal && ts[i].fn.go_stack)
			why = sp_go_refusal(obj->path, who, wants_return, &ts[i].fn);
		if (!why && !item->internal && ts[i].fn.go_stack && wants_return && sp_go_ret_init() != 0)
			why = "no memory for the goroutines' return records";
		ts[i].fn.inline_code = inline_code;
		ts[i].fn.inline_len = inline_len;
		struct sp_site *site = why ? NULL : sp_arm_site(obj, ts[i].addr, &ts[i].fn, want_jmp, &why);
		struct sp_probe *p = site ? new_probe(item, obj, &ts[i], fn, data) : NULL;
		if (!site && code_gone(why, ts[i].addr)) {
			gone++;   /* not an error: the caller waits for the next load */
			continue;
		}
		if (!p) {
			if (site)
				why = "out of memory or too many probes";
			if (n_ts == 1) {
				snprintf(err, errlen, "%s at %#lx: %s", ts[i].symbol, (unsigned long)ts[i].addr, why);
				made = -ENOTSUP;
				goto out;
			}
			sp_probe_error(item->text, "%s at %#lx: %s", ts[i].symbol, (unsigned long)ts[i].addr, why);
			continue;
		}
		struct sp_probe *twin = dormant_twin(p);
		if (twin)
			p = revive(twin, p);
		p->site = site;
		p->link = link;
		p->inline_code = inline_code;
		p->attached = true;
		p->go_ret = wants_return && ts[i].fn.go_stack;
		struct sp_probe_vec *old = vec_replace(site, p, NULL);
		if (old)
			olds[n_old++] = old;
		if (!site->armed)
			sites[n_arm++] = site;
		ps[n++] = p;
	}
	sp_arm_batch(sites, n_arm, rcs);
	sp_coexist_scan(true);   /* every batch: another tool's bytes over ours */
	struct arm_results results;
	bool mapped = arm_results_make(&results, sites, rcs, n_arm) == 0;
	for (long i = 0; i < n; i++) {
		struct sp_probe *p = ps[i];
		int rc = 0;
		if (mapped)
			rc = arm_result(&results, p->site);
		else   /* out of memory for the map: search the batch */
			for (size_t j = 0; j < n_arm; j++)
				if (sites[j] == p->site)
					rc = rcs[j];
		if (rc) {
			/* Nothing was written: the probe never existed. */
			olds[n_old++] = vec_replace(p->site, NULL, p);
			if (code_gone(NULL, p->site->addr))
				gone++;   /* the write found the object unmapped */
			else
				sp_probe_error(item->text, "%s: cannot patch the site: %s", p->symbol,
					       sp_patch_refusal() ? sp_patch_refusal() : strerror(-rc));
			continue;
		}
		ps[i] = NULL;   /* kept: the registry owns it now */
		made++;
		/* its *_ENABLED() guard now fires (a count: several probes may
		 * share one note, and the kernel's uprobes count the same way) */
		if (p->semaphore)
			__atomic_fetch_add((uint16_t *)p->semaphore, 1, __ATOMIC_SEQ_CST);
		if (sp_mode_pref == SP_PREF_JMP && !p->site->jmp)   /* the report's reason says it too */
			sp_warn("%s: %s uses int3: %s", item->text, p->symbol, p->site->reason);
		registry_append(p);
		if (p->go_ret)
			go_rets[n_go++] = p;
	}
	for (long i = 0; i < n_go; i++)   /* after the entry: a failed one has no RET probes */
		attach_go_returns(item, obj, ts, n_ts, go_rets[i]);
	if (mapped) {
		free(results.site);
		free(results.rc);
	}
	/* Readers of the old vectors only read them; freed after quiescence.
	 * A probe that failed to arm was in a published vector: it goes after
	 * the same quiescence. */
	for (long i = 0; i < n_old; i++)
		retire(olds[i]);
	bool failed = false;
	for (long i = 0; i < n; i++)
		failed |= ps[i] != NULL;
	if (failed) {
		reclaim(true);
		for (long i = 0; i < n; i++)
			if (ps[i] && ps[i]->revived)
				lay_down(ps[i]);
			else if (ps[i]) {
				sp_tstate_free_id(ps[i]->id);
				free_probe(ps[i]);
			}
	}
	if (made == 0 && n_ts > 0 && n > 0) {
		snprintf(err, errlen, "no site could be patched");
		made = -ENOTSUP;
	}
	if (gone) {
		/* the object is being unloaded (the loader's notification, which
		 * detaches what did attach here, waits for our lock): the item
		 * is for its next load, as one naming an object not loaded */
		snprintf(err, errlen, "%s was unloaded while the item attached", sp_maps_base_name(obj->path));
		made = -ESTALE;
	}
out:
	free(ps);
	free(sites);
	free(olds);
	free(rcs);
	free(go_rets);
	return made;
}

void sp_probe_lock(void) { pthread_mutex_lock(&reg_lock); }
void sp_probe_coexist_report(void)
{
	/* the report's own look at the sites: record only, and never wait (a
	 * report written while a batch runs skips it; the batch scans) */
	if (pthread_mutex_trylock(&reg_lock) != 0)
		return;
	sp_coexist_scan(false);
	pthread_mutex_unlock(&reg_lock);
}
void sp_probe_unlock(void) { pthread_mutex_unlock(&reg_lock); }
/* never waits: for the fault handler (coexist.c), where waiting for a
 * batch of this very thread would never end */
bool sp_probe_trylock(void) { return pthread_mutex_trylock(&reg_lock) == 0; }

long sp_probe_attach_object(const struct sp_spec_item *item, const struct sp_object *obj,
			    selfprobe_handler_fn fn, void *data, struct selfprobe_link *link)
{
	char err[512] = "";
	long rc;
	struct target *ts = NULL;
	long n_ts = 0;
	sp_patch_hold();   /* one /proc/self/mem for the batch, closed after it */
	struct sp_elf *elf = elf_get(obj->path, err, sizeof(err));
	if (!elf) {
		rc = -ENOENT;
		goto fail;
	}
	n_ts = resolve(item, obj, elf, &ts, err, sizeof(err));
	if (n_ts < 0) {
		rc = n_ts;
		goto fail;
	}
	rc = attach_targets(item, obj, ts, n_ts, fn, data, link, err, sizeof(err));
	/* what this attach decided, for the next process (scanmemo.h) */
	sp_btindex_flush_memos();
	if (rc == -ESTALE && item->object)
		goto out;   /* the caller waits for the next load (resolve.c) */
	if (rc < 0)
		goto fail;
	if (rc > 0 && item_wants_return(item) && !item->internal)
		if (on_return_probe)
			on_return_probe();   /* cancellation's unwinder must see real returns */
	if (rc == 0 && n_ts > 0)
		rc = -ENOTSUP;   /* each failure was recorded */
	goto out;
fail:
	sp_probe_error(item->text, "%s", err[0] ? err : strerror((int)-rc));
out:
	for (long i = 0; i < n_ts; i++) {
		free(ts[i].symbol);
		free(ts[i].implementation);
	}
	free(ts);
	sp_patch_release();
	return rc;
}


int sp_probe_attach_internal(const char *name, uintptr_t addr, bool main_only, selfprobe_handler_fn fn,
			     struct selfprobe_link *link)
{
	struct sp_object *objs;
	size_t n;
	int rc = sp_maps_snapshot(&objs, &n);
	if (rc)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if ((main_only && !objs[i].is_main) || !sp_maps_in_text(&objs[i], addr, 1))
			continue;
		struct sp_spec_item item;
		memset(&item, 0, sizeof(item));
		item.text = item.probe_text = (char *)name;
		item.kind = SP_KIND_UPROBE;
		item.object = objs[i].path;
		item.has_address = true;
		item.address = addr - objs[i].bias;
		item.action = SP_ACT_COUNT;
		item.internal = true;     /* not reported: ours, not the user's */
		long made = sp_probe_attach_object(&item, &objs[i], fn, NULL, link);
		rc = made > 0 ? 0 : made < 0 ? (int)made : -ENOENT;
		break;
	}
	sp_maps_free(objs, n);
	return rc;
}

struct sp_site *sp_probe_take_site(uintptr_t addr, uintptr_t entry, bool int3_ok, char *err, size_t errlen)
{
	struct sp_object *objs;
	size_t n;
	struct sp_site *site = NULL;
	int rc = sp_maps_snapshot(&objs, &n);
	if (rc) {
		snprintf(err, errlen, "cannot read the mappings: %s", strerror(-rc));
		return NULL;
	}
	snprintf(err, errlen, "%#lx is in no loaded object's text", (unsigned long)addr);
	for (size_t i = 0; i < n; i++) {
		if (!sp_maps_in_text(&objs[i], addr, SP_JMP_LEN))
			continue;
		struct sp_elf *elf = elf_get(objs[i].path, err, errlen);
		const struct sp_sym *sym = elf ? sp_elf_containing(elf, addr - objs[i].bias) : NULL;
		if (elf && (!sym || sym->value != addr - objs[i].bias || sym->is_ifunc)) {
			snprintf(err, errlen, "%#lx is not a function's entry in %s", (unsigned long)addr,
				 sp_maps_base_name(objs[i].path));
			break;
		}
		struct target t = { 0 };
		if (!elf || target_for(&objs[i], elf, sym, 0, &t, err, errlen) != 0)
			break;
		free(t.implementation);
		free(t.symbol);
		struct sp_site *s = sp_site_lookup(addr);
		if (s && !s->taken && (s->armed || atomic_load(&s->vec))) {
			snprintf(err, errlen, "%s is probed already", sym->name);
			break;
		}
		/* the one decision, as for a probe: a jmp where it is safe (no
		 * branch into bytes 1-4, …); its relocated window is where a
		 * thread caught inside the window at arming goes on */
		const char *why = NULL;
		s = s ? s : sp_arm_site(&objs[i], addr, &t.fn, true, &why);
		if (!s || (!s->tramp_ok && !int3_ok)) {
			snprintf(err, errlen, "%s: %s", sym->name,
				 why ? why : s && s->jmp_reason ? s->jmp_reason : "no jmp path");
			break;
		}
		/* no jmp: its int3 leads there instead (arm.c), a trap a call */
		s->want_jmp = s->tramp_ok;
		s->taken = true;
		s->guard_entry = false;   /* coexist's offset bytes are a trampoline's */
		s->tramp.entry = entry;
		site = s;
		break;
	}
	sp_maps_free(objs, n);
	return site;
}

/* An object was unloaded: its probes stop (their code is gone, nothing to
 * restore), keep their counts, and their sites are forgotten so that
 * whatever is mapped there next starts afresh. */
void sp_probe_objects_gone(const struct sp_object *objs, size_t n)
{
	bool any = false;
	for (struct sp_probe *p = atomic_load(&probes_head); p; p = p->next) {
		if (!p->attached)
			continue;
		bool loaded = false;
		for (size_t i = 0; i < n && !loaded; i++)
			loaded = objs[i].bias == p->bias && strcmp(objs[i].path, p->object) == 0;
		if (loaded)
			continue;
		struct sp_probe_vec *old = vec_replace(p->site, NULL, p);
		if (old)
			free(old);   /* the code that could read it is unmapped */
		p->unloaded = true;   /* before the freeze: the launcher's record says it too */
		freeze_counts(p);
		p->attached = false;
		if (!atomic_load(&p->site->vec)) {
			p->site->armed = false;
			sp_site_forget(p->site);
			if (p->site->carrier)   /* a hop's carrier goes with it */
				sp_site_forget(p->site->carrier);
			sp_site_retire(p->site, p->object, p->vaddr);   /* for the next load */
		}
		any = true;
	}
	if (any)
		sp_tstate_quiesce();
	for (struct sp_probe *p = atomic_load(&probes_head); any && p; p = p->next)
		if (p->unloaded && !p->freed_id)
			lay_dormant(p);
}

/* Two steps, the lock released between them for the quiescence (see
 * retire).  The probes are marked detached before it: a return trampoline
 * of a call that entered earlier either sees that and calls no handler, or
 * is still inside dispatch and is waited for; after it nothing counts to
 * their ids, so the counts frozen then are final and the ids free. */
int sp_probe_detach_link(struct selfprobe_link *link)
{
	pthread_mutex_lock(&reg_lock);
	sp_patch_hold();   /* one /proc/self/mem for the batch */
	sp_coexist_scan(true);   /* before disarming: what another tool did is reported */
	int n = 0;
	size_t n_sites = 0, cap = 0;
	struct sp_site **sites = NULL;   /* left without a probe: disarmed as one batch */
	for (struct sp_probe *p = atomic_load(&probes_head); p; p = p->next) {
		if (p->link != link || !p->attached)
			continue;
		retire(vec_replace(p->site, NULL, p));
		if (!atomic_load(&p->site->vec)) {
			if (n_sites == cap) {
				size_t c = cap ? 2 * cap : 64;
				struct sp_site **g = realloc(sites, c * sizeof(*g));
				if (g)
					sites = g, cap = c;
			}
			if (n_sites < cap)
				sites[n_sites++] = p->site;
			else   /* out of memory: this one alone */
				sp_arm_disarm(p->site);
		}
		if (p->semaphore)
			__atomic_fetch_sub((uint16_t *)p->semaphore, 1, __ATOMIC_SEQ_CST);
		p->detaching = true;
		p->attached = false;
		n++;
	}
	sp_arm_disarm_batch(sites, n_sites);
	free(sites);
	sp_patch_release();
	pthread_mutex_unlock(&reg_lock);
	if (!n)
		return -ENOENT;
	reclaim_when(false, true);
	pthread_mutex_lock(&reg_lock);
	for (struct sp_probe *p = atomic_load(&probes_head); p; p = p->next) {
		if (p->link != link || !p->detaching)
			continue;
		freeze_counts(p);
		p->detaching = false;
		lay_dormant(p);
	}
	pthread_mutex_unlock(&reg_lock);
	return 0;
}

void sp_probe_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, setup_once);
}

/* Every armed site back to its original bytes, whatever attached it (the
 * process is about to be traced: tracer.h).  The probes keep their counts
 * and records; nothing reaches them again. */
void sp_probe_disarm_all(const char *why)
{
	pthread_mutex_lock(&reg_lock);
	struct sp_site **sites = NULL;
	size_t n = 0, cap = 0;
	for (struct sp_site *s = sp_site_after(0); s; s = sp_site_after(s->addr)) {
		if (!s->armed || s->taken)   /* a signal entry's jmp (sigtake.h) traps nothing */
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 64;
			struct sp_site **g = realloc(sites, c * sizeof(*g));
			if (!g) {
				sp_arm_disarm(s);   /* out of memory: this one alone */
				continue;
			}
			sites = g, cap = c;
		}
		sites[n++] = s;
	}
	sp_patch_hold();
	sp_arm_disarm_batch(sites, n);
	sp_patch_release();
	free(sites);
	pthread_mutex_unlock(&reg_lock);
	if (n)
		sp_probe_error("*", "%s: every probe removed in this process (%zu sites), its counts so far kept",
			       why, n);
}
