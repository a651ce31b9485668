/* patch — writing bytes into code that is mapped read+exec, and making
 * every core see them.
 *
 * Code is written through /proc/self/mem: the kernel's FOLL_FORCE write
 * copies-on-write the private page and leaves its protection as it was, so
 * no page is ever writable and executable at once and the application's own
 * view of its mappings never changes.  Where /proc/self/mem cannot be
 * written (no /proc, proc_mem.force_override=never, a seccomp filter), we
 * fall back to mprotect(RWX) → write → mprotect(original), and say so once.
 * After a write, sp_patch_sync() makes every thread of the process
 * serialize its instruction stream (membarrier SYNC_CORE, registered once);
 * without membarrier the write is still correct for the patterns we use
 * (a single int3 byte) but may take effect on other cores a little later.
 */
#ifndef SP_PATCH_H
#define SP_PATCH_H

#include <stddef.h>
#include <stdint.h>

/* Write LEN bytes at ADDR (code or any mapped page).  0 or -errno. */
int sp_patch_write(uintptr_t addr, const void *bytes, size_t len);

/* Serialize every core running a thread of this process. */
void sp_patch_sync(void);

/* After fork, in the child: /proc/self/mem opened by the parent names the
 * parent's memory, so it must be reopened. */
void sp_patch_atfork_child(void);

#endif
