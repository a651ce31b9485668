/* registry — the probes attached, by site and by link.  The calls of the
 * layers above, made in one module each (engine/README.md):
 *   registry.c  the records: their list and lock, counts, dormant records;
 *   errors.c    the errors met while attaching (errors.h);
 *   targets.c   the sites an item names in one loaded object (targets.h);
 *   probevec.c  each site's probe vector, reclaimed after a quiescence;
 *   attach.c    an item's targets made probes on armed sites;
 *   takesite.c  a function entry taken for libc's signal entry points;
 *   detach.c    probes taken away: by link, by unload, all at once;
 *   setup.c     the set-up, once per process, and the fork child.
 * Resolving a spec item to objects, and waiting for those not loaded yet,
 * is resolve.h's; the probe record itself is probe.h's. */
#ifndef SP_REGISTRY_H
#define SP_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "probe.h"

enum sp_mode_pref { SP_PREF_AUTO, SP_PREF_INT3, SP_PREF_JMP };
extern enum sp_mode_pref sp_mode_pref;

/* registry.c */

/* The registry lock, for modules that attach on the runtime's behalf. */
void sp_probe_lock(void);
void sp_probe_unlock(void);
bool sp_probe_trylock(void);   /* true: taken (async-signal context: never waits) */

/* attach.c */

/* Attach ITEM in OBJ (registry lock held).  Count attached, or -errno with
 * the error recorded; -ESTALE, nothing recorded, when ITEM names an object
 * (not the main program) and OBJ was unmapped while it attached (a
 * dlclose racing the attach): the caller keeps ITEM for the next load. */
struct sp_object;
long sp_probe_attach_object(const struct sp_spec_item *item, const struct sp_object *obj,
			    selfprobe_handler_fn fn, void *data, struct selfprobe_link *link);

/* The runtime's own probe NAME at runtime address ADDR (in the main
 * program only, when MAIN_ONLY), calling FN; not in the report (registry
 * lock held).  0 or -errno. */
int sp_probe_attach_internal(const char *name, uintptr_t addr, bool main_only, selfprobe_handler_fn fn,
			     struct selfprobe_link *link);

/* takesite.c */

/* The site at ADDR, a function's entry, made one whose jmp leads to ENTRY
 * (code near it) rather than to a trampoline, and flagged taken: no probe
 * may join it (sigtake.h).  Not armed.  Registry lock held.  Where the jmp
 * is not safe, its int3 leads to ENTRY when INT3_OK, else NULL with the
 * reason in ERR. */
struct sp_site;
struct sp_site *sp_probe_take_site(uintptr_t addr, uintptr_t entry, bool int3_ok, char *err, size_t errlen);

/* probevec.c */

/* Free the probe vectors replaced since MARK (sp_probe_retired_mark, taken
 * with the lock held since), after a quiescence, the registry lock held:
 * only where no thread can be waiting for it inside dispatch (the loader
 * notification's handler, whose loader lock serialises them).  Those
 * retired before MARK by other threads stay for their own reclaim. */
size_t sp_probe_retired_mark(void);
void sp_probe_reclaim_locked(size_t mark);

/* detach.c */

/* Detach the probes of objects no longer in OBJS (registry lock held). */
void sp_probe_objects_gone(const struct sp_object *objs, size_t n);

/* Detach every probe of LINK (its pending items: resolve.h).  0 or -errno. */
int sp_probe_detach_link(struct selfprobe_link *link);

/* registry.c */

/* Walk the registry (for the report).  The list only grows; safe to walk
 * while others attach (the errors: errors.h). */
struct sp_probe *sp_probe_first(void);
/* Record in the errors what another tool did to our sites (coexist.h),
 * before a report is written. */
void sp_probe_coexist_report(void);
/* The probe's counters (enum sp_counter), live or frozen at detach. */
void sp_probe_counts(const struct sp_probe *p, uint64_t *out);

/* setup.c */

/* Run FN in a fork child, after the registry's own reset (the report's
 * owner, for one).  Up to a few; registered once, at set-up. */
void sp_probe_on_fork_child(void (*fn)(void));

/* Once, before the first attach: the error sink, the handlers registered
 * with the layers below, the fork handlers. */
void sp_probe_setup(void);

/* attach.c */

/* Run ARM, registry lock held, each time a return probe is attached, and
 * DISARM (lock not held) from sp_probe_disarm_idle once none is: the
 * interposed unwinder's hook (unwind_hooks.c) and the goroutines' end
 * (golang_goend.c) register themselves here (up to 4 pairs). */
void sp_probe_on_return_probe(void (*arm)(void), void (*disarm)(void));
/* The link identity of such an internal hook: one per arming, so that a
 * return probe attached while a disarm detaches the last arming's hooks
 * gets hooks of its own.  Registry lock held for both. */
struct sp_hook_identity {
	char id[2];
	unsigned arming;
};
static inline struct selfprobe_link *sp_hook_link(struct sp_hook_identity *h)
{
	return (struct selfprobe_link *)(void *)&h->id[h->arming & 1];
}
/* The current arming's link, to detach; the next arming gets the other. */
static inline struct selfprobe_link *sp_hook_retire(struct sp_hook_identity *h)
{
	struct selfprobe_link *l = sp_hook_link(h);
	h->arming++;
	return l;
}
/* No return probe of the program's attached any more (a `selfprobe detach`):
 * what ARM above placed is taken away, so that no byte stays patched.
 * Registry lock not held. */
void sp_probe_disarm_idle(void);
/* Why ITEM cannot be attached in this process at all, or NULL. */
const char *sp_probe_unsupported(const struct sp_spec_item *item);

/* detach.c */

/* Every armed site restored, its probes' counts kept; WHY goes to the
 * report's errors (the process asked to be traced: tracer.h). */
void sp_probe_disarm_all(const char *why);

/* probevec.c */

/* Free the probe vectors replaced so far, after a quiescence (registry
 * lock not held). */
void sp_probe_reclaim(void);

#endif
