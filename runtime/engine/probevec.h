/* probevec — the probes of a site, as the vector dispatch reads
 * (probevec.c): a new vector published for each change, the old one
 * retired and freed only after a quiescence (no thread inside dispatch
 * can still read it).  The registry lock held, unless said otherwise. */
#ifndef SP_PROBEVEC_H
#define SP_PROBEVEC_H

#include <stdbool.h>

#include "probe.h"

/* Publish a new probe vector for SITE with ADD added (non-NULL) or REMOVE
 * removed; the inline count and the handler flag follow it.  Returns the
 * old vector, for sp_probevec_retire. */
struct sp_probe_vec *sp_probevec_replace(struct sp_site *site, struct sp_probe *add, struct sp_probe *remove);

/* V freed at the next sp_probevec_reclaim. */
void sp_probevec_retire(struct sp_probe_vec *v);

/* Quiesce, then free what was retired before it.  LOCKED: the registry
 * lock is held (only where no thread can wait for it inside dispatch).
 * ALWAYS: quiesce even with nothing retired here. */
void sp_probevec_reclaim_when(bool locked, bool always);
void sp_probevec_reclaim(bool locked);

#endif
