/* detach — probes taken away: by link, by unload, all at once; see registry.h. */
#include "registry.h"
#include "heap.h"
#include "arm.h"
#include "coexist.h"
#include "patch.h"
#include "probevec.h"
#include "registry_int.h"
#include "site.h"
#include "quiesce.h"
#include "tstate.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* An object was unloaded: its probes stop (their code is gone, nothing to
 * restore), keep their counts, and their sites are forgotten so that
 * whatever is mapped there next starts afresh. */
void sp_probe_objects_gone(const struct sp_object *objs, size_t n)
{
	bool any = false;
	for (struct sp_probe *p = atomic_load(&sp_registry_probes); p; p = p->next) {
		if (!p->attached)
			continue;
		bool loaded = false;
		for (size_t i = 0; i < n && !loaded; i++)
			loaded = objs[i].bias == p->bias && strcmp(objs[i].path, p->object) == 0;
		if (loaded)
			continue;
		struct sp_probe_vec *old = sp_probevec_replace(p->site, NULL, p);
		if (old)
			sp_free(old);   /* the code that could read it is unmapped */
		p->unloaded = true;   /* before the freeze: the launcher's record says it too */
		sp_probe_freeze_counts(p);
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
		sp_quiesce();
	for (struct sp_probe *p = atomic_load(&sp_registry_probes); any && p; p = p->next)
		if (p->unloaded && !p->freed_id)
			sp_probe_lay_dormant(p);
}

/* Two steps, the lock released between them for the quiescence (see
 * sp_probevec_retire).  The probes are marked detached before it: a return trampoline
 * of a call that entered earlier either sees that and calls no handler, or
 * is still inside dispatch and is waited for; after it nothing counts to
 * their ids, so the counts frozen then are final and the ids free. */
int sp_probe_detach_link(struct selfprobe_link *link)
{
	pthread_mutex_lock(&sp_registry_lock);
	sp_patch_hold();   /* one /proc/self/mem for the batch */
	sp_coexist_scan(true);   /* before disarming: what another tool did is reported */
	int n = 0;
	size_t n_sites = 0, cap = 0;
	struct sp_site **sites = NULL;   /* left without a probe: disarmed as one batch */
	for (struct sp_probe *p = atomic_load(&sp_registry_probes); p; p = p->next) {
		if (p->link != link || !p->attached)
			continue;
		sp_probevec_retire(sp_probevec_replace(p->site, NULL, p));
		if (!atomic_load(&p->site->vec)) {
			if (n_sites == cap) {
				size_t c = cap ? 2 * cap : 64;
				struct sp_site **g = sp_realloc(sites, c * sizeof(*g));
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
	sp_free(sites);
	sp_patch_release();
	pthread_mutex_unlock(&sp_registry_lock);
	if (!n)
		return -ENOENT;
	sp_probevec_reclaim_when(false, true);
	pthread_mutex_lock(&sp_registry_lock);
	for (struct sp_probe *p = atomic_load(&sp_registry_probes); p; p = p->next) {
		if (p->link != link || !p->detaching)
			continue;
		sp_probe_freeze_counts(p);
		p->detaching = false;
		sp_probe_lay_dormant(p);
	}
	pthread_mutex_unlock(&sp_registry_lock);
	return 0;
}

/* Every armed site back to its original bytes, whatever attached it (the
 * process is about to be traced: tracer.h).  The probes keep their counts
 * and records; nothing reaches them again. */
void sp_probe_disarm_all(const char *why)
{
	pthread_mutex_lock(&sp_registry_lock);
	struct sp_site **sites = NULL;
	size_t n = 0, cap = 0;
	for (struct sp_site *s = sp_site_after(0); s; s = sp_site_after(s->addr)) {
		if (!s->armed || s->taken)   /* a signal entry's jmp (sigtake.h) traps nothing */
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 64;
			struct sp_site **g = sp_realloc(sites, c * sizeof(*g));
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
	sp_free(sites);
	pthread_mutex_unlock(&sp_registry_lock);
	if (n)
		sp_probe_error("*", "%s: every probe removed in this process (%zu sites), its counts so far kept",
			       why, n);
}
