/* shmchunks — one of a section's arrays in the shared file (shm.h), mapped
 * in chunks as its elements are taken, not whole at start.
 *
 * Why: every probed process of `selfprobe run` claims a section, and its
 * arrays are sized for the most a process may need (65536 probe records:
 * 107 MiB).  Mapped whole, that much address space is taken by every
 * process, one probe or 3000: a program run under RLIMIT_AS (`ulimit -v`)
 * could fail where it runs unprobed (issue 13).  Mapped in chunks, a
 * process's address space grows with what it records.  The file's layout
 * is unchanged (the launcher maps the whole array, in its own process).
 *
 * Chunk k holds FIRST << k elements, from element FIRST * (2^k - 1): a
 * process with few probes maps one small chunk, a whole libc's 3000 a few
 * chunks, never more than twice what it uses.  Each chunk's mapping covers
 * its elements whole, from the page that holds the first to the page that
 * holds the last: two chunks may both map the page they share, which is
 * the same page of the file (MAP_SHARED), seen at two addresses.
 *
 * Mapping runs where an element is taken: under the registry lock, at
 * start, or in a probe hit — the loader notification's handler
 * (engine/loadwatch.c) attaches the probes of an object just loaded, and
 * records them, and may run in the SIGTRAP handler.  So a chunk is mapped
 * with raw system calls (rawsys.h): no errno, nothing the program may have
 * probed; a chunk's address is published with an atomic store (release)
 * and read with an acquire, so that a reader in a signal handler or
 * another thread sees a chunk whole or not at all. */
#ifndef SP_SHMCHUNKS_H
#define SP_SHMCHUNKS_H

#include <stdbool.h>
#include <stdint.h>

#define SP_CHUNKS_MAX 16

struct sp_chunks {
	uint64_t off;                        /* the array's offset in the file */
	uint32_t elem;                       /* an element's size */
	uint32_t cap;                        /* elements in the array */
	uint32_t first;                      /* elements in chunk 0 */
	char *_Atomic map[SP_CHUNKS_MAX];    /* chunk k's mapping, or NULL */
};

/* C describes the array of CAP elements of ELEM bytes at OFF (page-aligned),
 * whose chunk 0 holds FIRST (raised if SP_CHUNKS_MAX chunks would not hold
 * CAP): nothing mapped. */
void sp_chunks_init(struct sp_chunks *c, uint64_t off, uint32_t elem, uint32_t cap, uint32_t first);

/* Element I, if its chunk is mapped; else NULL.  Signal-safe. */
void *sp_chunks_at(const struct sp_chunks *c, uint32_t i);

/* Element I, its chunk mapped from the file FD (shared, read-write) if it
 * is not yet; NULL when I is past the array or the mapping fails (-errno
 * in *ERR, else 0).  Signal-safe. */
void *sp_chunks_take(struct sp_chunks *c, uint32_t i, int fd, int *err);

/* Unmap every chunk (a fork child's copy of its parent's, our own file
 * given up): nothing mapped, C still describes the same array. */
void sp_chunks_unmap(struct sp_chunks *c);

#endif
