/* probevec — each site's probe vector, published and reclaimed after a quiescence; see probevec.h. */
#include "probevec.h"
#include "heap.h"
#include "registry.h"
#include "registry_int.h"
#include "site.h"
#include "quiesce.h"
#include "tstate.h"
#include "uret.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- retired probe vectors ---- */

/* Probe vectors replaced under the registry lock wait here until a
 * quiescence has passed.  The API's attach and detach quiesce after
 * unlocking: quiescence waits for every thread inside dispatch, and one of
 * them may be waiting for the registry lock (the loader notification's
 * handler, loadwatch.c, takes it inside dispatch).  Registry lock held. */
static struct sp_probe_vec **retired;
static size_t n_retired, cap_retired;

void sp_probevec_retire(struct sp_probe_vec *v)
{
	if (!v)
		return;
	if (n_retired == cap_retired) {
		size_t cap = cap_retired ? cap_retired * 2 : 16;
		struct sp_probe_vec **n = sp_realloc(retired, cap * sizeof(*n));
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
void sp_probevec_reclaim_when(bool locked, bool always)
{
	if (!locked)
		pthread_mutex_lock(&sp_registry_lock);
	struct sp_probe_vec **v = retired;
	size_t n = n_retired;
	retired = NULL;
	n_retired = cap_retired = 0;
	if (!locked)
		pthread_mutex_unlock(&sp_registry_lock);
	if (n || always)
		sp_quiesce();
	for (size_t i = 0; i < n; i++)
		sp_free(v[i]);
	sp_free(v);
}

void sp_probevec_reclaim(bool locked)
{
	sp_probevec_reclaim_when(locked, false);
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
	struct sp_probe_vec **v = sp_malloc(n * sizeof(*v));
	if (!v)
		return;   /* freed by the next sp_probevec_reclaim */
	memcpy(v, retired + mark, n * sizeof(*v));
	n_retired = mark;
	sp_quiesce();
	for (size_t i = 0; i < n; i++)
		sp_free(v[i]);
	sp_free(v);
}

void sp_probe_reclaim(void) { sp_probevec_reclaim(false); }

/* Publish a new probe vector for SITE with P added (P non-NULL) or REMOVE
 * removed.  The old vector is freed after quiescence by the caller. */
struct sp_probe_vec *sp_probevec_replace(struct sp_site *site, struct sp_probe *add,
					 struct sp_probe *remove)
{
	struct sp_probe_vec *old = atomic_load(&site->vec);
	uint32_t n = old ? old->n : 0;
	struct sp_probe_vec *v = sp_malloc(sizeof(*v) + (n + 1) * sizeof(v->p[0]));
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
		sp_free(v);
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
