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

/* The histograms are kept per stripe like the counters: each stripe
 * holds SP_MAX_LAT of them, after its counters (below). */
#define SP_LAT_STRIPE_BYTES ((uintptr_t)SP_MAX_LAT * sizeof(struct sp_lat))

/* The bytes of one stripe's per-thread parts of compiled bpftrace blocks
 * (bt_jit.c): a few words per split map. */
#define SP_PART_BYTES ((uintptr_t)64 << 10)

/* Each stripe's memory is one mapping (stripemem.h), made when a thread
 * first claims the stripe, laid out as
 *     [ parts: SP_PART_BYTES ][ counters: SP_STRIPE_BYTES ][ histograms: SP_LAT_STRIPE_BYTES ]
 * so that a thread's parts and histograms are its counters' address
 * (sp_tls.fast) plus a constant.  Under the launcher the stripes' chunks
 * lie SP_CHUNK_BYTES apart in its shared file (shm.h), in this order. */
#define SP_CHUNK_BYTES (SP_PART_BYTES + SP_STRIPE_BYTES + SP_LAT_STRIPE_BYTES)
_Static_assert(SP_LAT_STRIPE_BYTES % 4096 == 0 && SP_PART_BYTES % 4096 == 0,
	       "a stripe's chunk is whole pages, its counters page-aligned");

#endif
