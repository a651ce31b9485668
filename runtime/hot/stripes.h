/* stripes — the layout of the per-thread counter stripes (tstate.h) and
 * latency histograms (latency.h): what the shared file (shm.h) sizes its
 * sections by, without depending on the modules that fill them. */
#ifndef SP_STRIPES_H
#define SP_STRIPES_H

#include <stdint.h>

#define SP_MAX_PROBES  (1u << 17)
#define SP_EXCL_SLOTS  128
#define SP_SHARED_SLOT SP_EXCL_SLOTS
#define SP_N_SLOTS     (SP_EXCL_SLOTS + 1)

/* One probe's counters in one stripe. */
enum sp_counter {
	SP_HITS,              /* executions of the site (entry probes), or returns
			       * (uretprobe, latency): what the probe counts */
	SP_MISSED,            /* hits whose handlers did not run (recursion) */
	SP_RETURNS,           /* session probes: returns seen */
	SP_LOST,              /* returns never seen: frames left by longjmp,
			       * exceptions, thread exit */
	SP_N_COUNTERS
};

struct sp_count {
	uint64_t v[SP_N_COUNTERS];
};

#define SP_STRIPE_BYTES ((uintptr_t)SP_MAX_PROBES * sizeof(struct sp_count))

#define SP_LAT_BUCKETS 64
#define SP_MAX_LAT 4096               /* probes with the latency action */

struct sp_lat {
	uint64_t bucket[SP_LAT_BUCKETS];  /* bucket k: [2^(k-1), 2^k) ns; bucket 0: 0 ns */
	uint64_t count, sum_ns;
	uint64_t min_ns_plus1;            /* 0: none yet */
	uint64_t max_ns;
};

/* The histograms are kept per stripe like the counters: stripe s holds
 * SP_MAX_LAT of them at s * SP_LAT_STRIPE_BYTES; under the launcher, in
 * its shared file (shm.h). */
#define SP_LAT_STRIPE_BYTES ((uint64_t)SP_MAX_LAT * sizeof(struct sp_lat))

#endif
