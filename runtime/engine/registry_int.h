/* registry_int — what the registry's modules (attach, detach, setup,
 * probevec) share of registry.c: its lock and list, and a probe record's
 * life (made, counted, laid dormant, revived, freed).  Not for the layers
 * above: they use registry.h. */
#ifndef SP_REGISTRY_INT_H
#define SP_REGISTRY_INT_H

#include <pthread.h>

#include "probe.h"
#include "targets.h"

extern pthread_mutex_t reg_lock;
extern struct sp_probe *_Atomic probes_head;

/* A new probe record for target T of ITEM in OBJ, with its counter id
 * (and latency slot); T's strings are the probe's now.  NULL when out of
 * ids or memory. */
struct sp_probe *new_probe(const struct sp_spec_item *item, const struct sp_object *obj,
			   struct target *t, selfprobe_handler_fn fn, void *data);
void free_probe(struct sp_probe *p);
/* P listed (or, revived, published again). */
void registry_append(struct sp_probe *p);

/* Detached or unloaded: the live counters and histogram added to the
 * frozen ones. */
void freeze_counts(struct sp_probe *p);

/* Dormant records (detached or unloaded, ids given back), found again
 * when the same probe attaches. */
void lay_dormant(struct sp_probe *p);
struct sp_probe *dormant_twin(const struct sp_probe *p);
struct sp_probe *revive(struct sp_probe *q, struct sp_probe *p);
void lay_down(struct sp_probe *q);

#endif
