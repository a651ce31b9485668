/* registry_int — what the registry's modules (attach, detach, setup,
 * probevec) share of registry.c: its lock and list, and a probe record's
 * life (made, counted, laid dormant, revived, freed).  Not for the layers
 * above: they use registry.h. */
#ifndef SP_REGISTRY_INT_H
#define SP_REGISTRY_INT_H

#include <pthread.h>

#include "probe.h"
#include "targets.h"

extern pthread_mutex_t sp_registry_lock;
extern struct sp_probe *_Atomic sp_registry_probes;

/* A new probe record for target T of ITEM in OBJ, with its counter id
 * (and latency slot); T's strings are the probe's now.  NULL when out of
 * ids or memory. */
struct sp_probe *sp_probe_new(const struct sp_spec_item *item, const struct sp_object *obj,
			      struct target *t, selfprobe_handler_fn fn, void *data);
void sp_probe_free(struct sp_probe *p);
/* P listed (or, revived, published again). */
void sp_registry_append(struct sp_probe *p);

/* Detached or unloaded: the live counters and histogram added to the
 * frozen ones. */
void sp_probe_freeze_counts(struct sp_probe *p);

/* Dormant records (detached or unloaded, ids given back), found again
 * when the same probe attaches. */
void sp_probe_lay_dormant(struct sp_probe *p);
struct sp_probe *sp_probe_dormant_twin(const struct sp_probe *p);
struct sp_probe *sp_probe_revive(struct sp_probe *q, struct sp_probe *p);
void sp_probe_lay_down(struct sp_probe *q);

#endif
