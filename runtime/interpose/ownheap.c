/* ownheap — the preload library allocates from its own memory (core/heap.h).
 *
 * A link-time switch, not an entry point: this strong definition overrides
 * heap.c's weak one in what links interpose/ (libselfprobe.so and the unit
 * tests, which so exercise the same heap).  The launcher never links it and
 * keeps libc's malloc for the runtime code it runs itself. */
#include <stdbool.h>

bool sp_heap_wanted(void);

bool sp_heap_wanted(void)
{
	return true;
}
