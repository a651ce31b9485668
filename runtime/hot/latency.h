/* latency — per-probe histograms of entry-to-return time, bpftrace's hist():
 * power-of-two buckets of nanoseconds, plus count, sum, min and max.
 *
 * Kept per stripe like the counters (tstate.h), in the stripe's memory
 * after them (stripes.h): the owning thread adds with plain stores, the
 * report sums the stripes.  The clock is CLOCK_MONOTONIC
 * through the vDSO: no system call on the usual clock sources (tsc,
 * kvm-clock), nanoseconds without calibration, and correct when a thread
 * migrates between CPUs; rdtsc would be a little cheaper but needs an
 * invariant TSC and a calibration we would have to trust.
 */
#ifndef SP_LATENCY_H
#define SP_LATENCY_H

#include <stdint.h>

#include "stripes.h"


long sp_latency_alloc(void);
void sp_latency_free(uint32_t slot);
/* Now, in ns (signal-safe; the clock call is marked as the runtime's, so
 * no probe counts it). */
uint64_t sp_latency_now(void);
void sp_latency_record(int stripe, uint32_t slot, uint64_t ns);
void sp_latency_read(uint32_t slot, struct sp_lat *out);
/* Add histogram SRC into DST. */
void sp_latency_merge(struct sp_lat *dst, const struct sp_lat *src);
/* Histogram SLOT of one stripe's histograms at STRIPE (NULL: none), as a
 * reader in another process maps them (the launcher's view). */
void sp_latency_sum(const char *stripe, uint32_t slot, struct sp_lat *out);
void sp_latency_atfork_child(void);

#endif
