/* gotheap — the libraries the runtime brings allocate from its heap.
 *
 * libelf (every symbol table the runtime reads), libunwind (the stack
 * action) and the compression libraries libelf uses call libc's malloc &
 * co: on the program's heap.  Their global offset table slots for malloc,
 * calloc, realloc, free, posix_memalign and qsort are pointed at heap.h's
 * and sort.h's functions instead (a RELRO page made writable for the write,
 * read-only again after).  Only for a library nothing but the runtime and
 * the other such libraries loaded: one the program needs itself (a program
 * linking libz or libunwind) keeps libc's allocator, since its calls on the
 * program's behalf must stay on the program's heap.  Memory such a library
 * got from libc before is handed back to libc by sp_free. */
#ifndef SP_GOTHEAP_H
#define SP_GOTHEAP_H

/* Redirect what is loaded now; once per process (later calls return at
 * once: every public entry point calls it, before the runtime's first
 * allocation through those libraries).  The number of slots written. */
int sp_gotheap_take(void);

#endif
