/* stripemem — the stripes' memory: each stripe's chunk (stripes.h: its
 * thread's bpftrace parts, counters and latency histograms) is mapped
 * when a thread first claims the stripe, and stays for the next thread
 * that claims it.  The shared stripe's is mapped at start.  A process
 * then holds address space for the stripes its threads used, about 6 MiB
 * each, not for all SP_N_SLOTS of them (over 800 MiB: a program run
 * under RLIMIT_AS, `ulimit -v`, failed to allocate what it could
 * unprobed).
 *
 * Under the launcher the chunks are its shared file's (shm.h), so that
 * the counts survive whatever ends the process; else private memory.
 * Which of the two is decided once, at start, for every chunk.  A chunk
 * that cannot be mapped (out of address space, the file out of reach)
 * leaves its thread on the shared stripe (tstate.h), counted all the same. */
#ifndef SP_STRIPEMEM_H
#define SP_STRIPEMEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "stripes.h"

#ifndef SP_HIDDEN
#define SP_HIDDEN __attribute__((visibility("hidden")))
#endif

/* Stripe s's counters (its chunk + SP_PART_BYTES), or NULL while its
 * chunk is not mapped.  Set once, before the stripe is first given. */
extern char *_Atomic sp_stripe_base[SP_N_SLOTS] SP_HIDDEN;

static inline char *sp_stripe(int s)
{
	return atomic_load_explicit(&sp_stripe_base[s], memory_order_acquire);
}

/* Stripe S's latency histograms and bpftrace parts, from its counters. */
static inline char *sp_stripe_lat(char *counters)
{
	return counters + SP_STRIPE_BYTES;
}

static inline char *sp_stripe_parts(char *counters)
{
	return counters - SP_PART_BYTES;
}

/* The shared stripe's chunk; where the others will go.  0 or -errno. */
int sp_stripemem_init(void);
/* Stripe S's counters, its chunk mapped if it was not.  Signal-safe (a
 * thread's first hit claims its stripe).  NULL: it cannot be mapped. */
char *sp_stripemem_map(int s);
/* Under the launcher: the file offset of stripe 0's chunk (the others
 * SP_CHUNK_BYTES apart).  false: private memory. */
bool sp_stripemem_file(uint64_t *off);
/* In a fork child, alone, its thread on stripe SELF (-1: none, or the
 * shared one): SELF's and the shared stripe's chunks mapped anew, zero,
 * at their addresses (the child's own section of the launcher's file, or
 * private memory); every other one unmapped. */
void sp_stripemem_atfork_child(int self);

#endif
