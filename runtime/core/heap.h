/* heap — the runtime's own memory, never the application's malloc heap.
 *
 * Every allocation the runtime makes for itself goes here, so that a probed
 * program's heap (the addresses malloc returns, mallinfo2(), how often the
 * allocator's internals run) is what it is unprobed.  Size classes with free
 * lists carved from mmapped slabs, large blocks mmapped on their own, one
 * lock, taken around fork so that a child never inherits it held; the
 * system calls are raw (rawsys.h), so a probe on libc's mmap never sees
 * ours.  Never calls libc's malloc, except:
 *   - under AddressSanitizer (the sanitize build), where every call forwards
 *     to malloc & co so that ASan keeps checking the runtime's memory;
 *   - in a program that does not link the preload library's own-heap switch
 *     (runtime/interpose/ownheap.c): the launcher, which keeps libc's malloc
 *     for the runtime code it links too (cli/ frees what it gets with free()).
 * sp_free and sp_realloc accept a pointer libc's malloc returned (a buffer
 * a libc API allocated) and hand it back to libc. */
#ifndef SP_HEAP_H
#define SP_HEAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void *sp_malloc(size_t n) __attribute__((malloc, alloc_size(1)));
void *sp_calloc(size_t n, size_t size) __attribute__((malloc, alloc_size(1, 2)));
void *sp_realloc(void *p, size_t n) __attribute__((alloc_size(2)));
void sp_free(void *p);
char *sp_strdup(const char *s) __attribute__((malloc));
char *sp_strndup(const char *s, size_t n) __attribute__((malloc));
/* The formatted string in our memory, or NULL (asprintf's contract, without
 * the length: strlen it). */
char *sp_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *sp_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Whether P came from our own memory (not libc's malloc). */
bool sp_heap_owns(const void *p);

/* Whether this process allocates from its own memory (false: libc's). */
bool sp_heap_private(void);

#endif
