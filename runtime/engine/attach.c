/* attach — an item's targets made probes on armed sites, as one batch; see registry.h. */
#include "registry.h"
#include "heap.h"
#include "arm.h"
#include "bt.h"
#include "btindex.h"
#include "coexist.h"
#include "golang.h"
#include "golang_ret.h"
#include "hazard.h"
#include "log.h"
#include "memread.h"
#include "patch.h"
#include "probevec.h"
#include "registry_int.h"
#include "shstk.h"
#include "targets.h"
#include "tracer.h"
#include "trap.h"
#include "tstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why ITEM cannot be attached in this process at all, or NULL. */
const char *sp_probe_unsupported(const struct sp_spec_item *item)
{
	static __thread char traced[256];
	const char *no = sp_tracer_refusal(traced, sizeof(traced));
	if (no)
		return no;
	if (sp_item_wants_return(item) && !item->internal)
		return sp_shstk_return_refusal(sp_shstk_enabled());
	return NULL;
}

/* what the layers above run when a return probe is attached, and when none
 * is left (registry.h): the unwinder's hook, a goroutine's end */
#define RETURN_HOOKS 4
static struct {
	void (*arm)(void);
	void (*disarm)(void);
} return_hooks[RETURN_HOOKS];

void sp_probe_on_return_probe(void (*arm)(void), void (*disarm)(void))
{
	for (int i = 0; i < RETURN_HOOKS; i++)
		if (!return_hooks[i].arm || return_hooks[i].arm == arm) {
			return_hooks[i].arm = arm;
			return_hooks[i].disarm = disarm;
			return;
		}
}

void sp_probe_disarm_idle(void)
{
	pthread_mutex_lock(&sp_registry_lock);
	bool returns = false;
	for (const struct sp_probe *p = atomic_load(&sp_registry_probes); p && !returns; p = p->next)
		returns = p->attached && p->wants_return && !p->internal;
	pthread_mutex_unlock(&sp_registry_lock);
	for (int i = 0; i < RETURN_HOOKS && !returns; i++)
		if (return_hooks[i].disarm)
			return_hooks[i].disarm();
}

/* Is the code at ADDR gone (its object unmapped under us), WHY being what
 * sp_arm_site said of it (NULL: a write to it failed)? */
static bool code_gone(const char *why, uintptr_t addr)
{
	uint8_t b;
	return why == sp_arm_gone || !sp_mem_read(addr, &b, 1);
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
	m->site = sp_calloc(cap, sizeof(*m->site));
	m->rc = sp_calloc(cap, sizeof(*m->rc));
	if (!m->site || !m->rc) {
		sp_free(m->site);
		sp_free(m->rc);
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
	struct target *rt = n > 0 ? sp_calloc((size_t)n, sizeof(*rt)) : NULL;
	/* the RET probes' data, kept for the probe's life (as the probe is) */
	struct sp_go_rets *data = rt ? sp_malloc(sizeof(*data) + (size_t)n * sizeof(data->r[0])) : NULL;
	if (!data) {
		sp_probe_error(item->text, "%s: its returns are not seen: %s", p->symbol,
			       n > 0 ? "out of memory" : why);
		sp_free(rets);
		sp_free(rt);
		return;
	}
	data->p = p;
	data->n = n;
	memcpy(data->r, rets, (size_t)n * sizeof(data->r[0]));
	for (long i = 0; i < n; i++) {
		rt[i].addr = rets[i].site;
		rt[i].symbol = sp_asprintf("%s+%#lx", t->symbol, (unsigned long)(rets[i].site - t->fn.start));
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
		sp_free(rt[i].symbol);
	sp_free(rt);
	sp_free(rets);
}

/* Sites and probes for the N_TS targets of ITEM, armed as one batch.
 * Returns the number of probes attached; a failure of the only target is
 * returned as -errno with ERR, a failure among several is recorded and the
 * others go on. */
static long attach_targets(const struct sp_spec_item *item, const struct sp_object *obj,
			   struct target *ts, long n_ts, selfprobe_handler_fn fn, void *data,
			   struct selfprobe_link *link, char *err, size_t errlen)
{
	struct sp_probe **ps = sp_calloc((size_t)n_ts + 1, sizeof(*ps));
	struct sp_site **sites = sp_calloc((size_t)n_ts + 1, sizeof(*sites));
	struct sp_probe_vec **olds = sp_calloc((size_t)n_ts + 1, sizeof(*olds));
	int *rcs = sp_calloc((size_t)n_ts + 1, sizeof(*rcs));
	struct sp_probe **go_rets = sp_calloc((size_t)n_ts + 1, sizeof(*go_rets));
	long n = 0, n_old = 0, made = 0, n_go = 0, gone = 0;
	size_t n_arm = 0;
	if (!ps || !sites || !olds || !rcs || !go_rets) {
		snprintf(err, errlen, "out of memory");
		made = -ENOMEM;
		goto out;
	}
	bool want_jmp = sp_mode_pref != SP_PREF_INT3;
	bool wants_return = sp_item_wants_return(item);
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
		ts[i].fn.int3_path_hazard = sp_hazard_int3_path(obj->path, who);
		if (!ts[i].fn.int3_path_hazard && ts[i].implementation)
			/* the IFUNC's own name: without libc's debug file its
			 * implementation has none ("libc.so.6+0x9d670") */
			ts[i].fn.int3_path_hazard = sp_hazard_int3_path(obj->path, ts[i].symbol);
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
		struct sp_probe *p = site ? sp_probe_new(item, obj, &ts[i], fn, data) : NULL;
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
		struct sp_probe *twin = sp_probe_dormant_twin(p);
		if (twin)
			p = sp_probe_revive(twin, p);
		p->site = site;
		p->link = link;
		p->inline_code = inline_code;
		p->attached = true;
		p->go_ret = wants_return && ts[i].fn.go_stack;
		struct sp_probe_vec *old = sp_probevec_replace(site, p, NULL);
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
			olds[n_old++] = sp_probevec_replace(p->site, NULL, p);
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
		sp_registry_append(p);
		if (p->go_ret)
			go_rets[n_go++] = p;
	}
	for (long i = 0; i < n_go; i++)   /* after the entry: a failed one has no RET probes */
		attach_go_returns(item, obj, ts, n_ts, go_rets[i]);
	if (mapped) {
		sp_free(results.site);
		sp_free(results.rc);
	}
	/* Readers of the old vectors only read them; freed after quiescence.
	 * A probe that failed to arm was in a published vector: it goes after
	 * the same quiescence. */
	for (long i = 0; i < n_old; i++)
		sp_probevec_retire(olds[i]);
	bool failed = false;
	for (long i = 0; i < n; i++)
		failed |= ps[i] != NULL;
	if (failed) {
		sp_probevec_reclaim(true);
		for (long i = 0; i < n; i++)
			if (ps[i] && ps[i]->revived)
				sp_probe_lay_down(ps[i]);
			else if (ps[i]) {
				sp_tstate_free_id(ps[i]->id);
				sp_probe_free(ps[i]);
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
	sp_free(ps);
	sp_free(sites);
	sp_free(olds);
	sp_free(rcs);
	sp_free(go_rets);
	return made;
}

long sp_probe_attach_object(const struct sp_spec_item *item, const struct sp_object *obj,
			    selfprobe_handler_fn fn, void *data, struct selfprobe_link *link)
{
	char err[512] = "";
	long rc;
	struct target *ts = NULL;
	long n_ts = 0;
	sp_patch_hold();   /* one /proc/self/mem for the batch, closed after it */
	struct sp_elf *elf = sp_targets_elf(obj->path, err, sizeof(err));
	if (!elf) {
		rc = -ENOENT;
		goto fail;
	}
	n_ts = sp_targets_resolve(item, obj, elf, &ts, err, sizeof(err));
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
	if (rc > 0 && sp_item_wants_return(item) && !item->internal)
		for (int i = 0; i < RETURN_HOOKS; i++)   /* e.g. cancellation's unwinder must see real returns */
			if (return_hooks[i].arm)
				return_hooks[i].arm();
	if (rc == 0 && n_ts > 0)
		rc = -ENOTSUP;   /* each failure was recorded */
	goto out;
fail:
	sp_probe_error(item->text, "%s", err[0] ? err : strerror((int)-rc));
out:
	for (long i = 0; i < n_ts; i++) {
		sp_free(ts[i].symbol);
		sp_free(ts[i].implementation);
	}
	sp_free(ts);
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
