/* sp_sigs: shared between the program and its library. */
#ifndef SP_SIGS_H
#define SP_SIGS_H

/* One locked add: exact whatever signal interrupts it, on any thread. */
static inline void sp_sigs_inc(unsigned long *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* The first instruction of f and f_lib: an ordinary move.  A locked add
 * there would not be kernel-probeable (kcount is the oracle). */
#define SP_SIGS_FIRST(x) __asm__ volatile("mov %0, %0" : "+r"(x))

extern unsigned long f_lib_entries, f_lib_returns __attribute__((visibility("default")));
long f_lib(long x);

#endif
