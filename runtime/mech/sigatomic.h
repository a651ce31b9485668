/* sigatomic — read-modify-writes that a signal cannot split.
 *
 * Per-thread state is only ever written by its own thread, but a signal
 * handler of that thread can run between any two instructions.  A load
 * followed by a store loses whatever a handler did in between (a count it
 * added, an entry it pushed).  One x86 instruction that reads and writes
 * memory is never split by a signal on the same thread; without a LOCK
 * prefix it costs what a plain add costs.  Not atomic across threads: use
 * these only on memory no other thread writes.
 */
#ifndef SP_SIGATOMIC_H
#define SP_SIGATOMIC_H

#include <stdbool.h>
#include <stdint.h>

static inline void sp_sig_inc(uint64_t *p)
{
	__asm__ volatile("addq $1, %0" : "+m"(*p) : : "cc");
}

/* *P += V; the old value. */
static inline uint64_t sp_sig_xadd(uint64_t *p, uint64_t v)
{
	__asm__ volatile("xaddq %0, %1" : "+r"(v), "+m"(*p) : : "cc", "memory");
	return v;
}

/* *P = NEW if it still holds OLD. */
static inline bool sp_sig_cas(uint64_t *p, uint64_t old, uint64_t new)
{
	bool ok;
	__asm__ volatile("cmpxchgq %3, %1" : "+a"(old), "+m"(*p), "=@ccz"(ok) : "r"(new) : "memory");
	return ok;
}

static inline bool sp_sig_cas8(uint8_t *p, uint8_t old, uint8_t new)
{
	bool ok;
	__asm__ volatile("cmpxchgb %3, %1" : "+a"(old), "+m"(*p), "=@ccz"(ok) : "q"(new) : "memory");
	return ok;
}

#endif
