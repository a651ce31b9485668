/* sort — qsort and qsort_r without libc's: glibc's merge sort mallocs its
 * scratch array on the program's heap once the array passes 1 KiB, so the
 * runtime sorts here, in its own memory (heap.h).  Stable, as glibc's merge
 * sort is; should the scratch array be unavailable, an in-place heap sort
 * (not stable: glibc falls back to an unstable quicksort the same way). */
#ifndef SP_SORT_H
#define SP_SORT_H

#include <stddef.h>

void sp_qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
void sp_qsort_r(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *, void *), void *arg);

#endif
