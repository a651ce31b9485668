/* memread — reading the process's own memory without trusting that it is
 * still mapped.
 *
 * A library being unloaded is unmapped by the loader before its
 * notification can take the registry's lock (loadwatch.h): code the
 * runtime is about to look at may vanish under it, and a plain load would
 * fault.  process_vm_readv on our own pid reads it or says it is gone,
 * never faults.  The one place this is done (the site table's pristine
 * copy, the arming check for a kernel's optimized uprobe, coexist's look at
 * the live bytes, a signal frame's saved PC, another thread's dispatches
 * and stack words for a detach's wait).  Raw system calls: it runs in
 * probed calls and signal handlers, and counts nothing of the program's. */
#ifndef SP_MEMREAD_H
#define SP_MEMREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copy [ADDR, ADDR + LEN) into OUT.  False when any of it is not mapped
 * readable (OUT then holds nothing to trust). */
bool sp_mem_read(uintptr_t addr, void *out, size_t len);

#endif
