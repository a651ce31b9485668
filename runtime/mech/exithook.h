/* exithook — the exit report at the very end of exit().
 *
 * glibc's exit() runs the atexit handlers (the preload's would be the last
 * of them, registered while _dl_fini runs), then the functions listed in
 * libc's __libc_atexit section — _IO_cleanup, which flushes every stdio
 * stream: the last write() of a program whose stdout is a pipe or a file —
 * and then _exit.  A report written by an atexit handler misses that work,
 * which kernel uprobes count.  So the runtime points the section's one
 * entry (a plain function pointer in RELRO memory, written like code, see
 * patch.h) at a function of its own that runs libc's and then writes the
 * report.  Where the section is not found (not glibc, another layout) or
 * cannot be written, nothing changes and the atexit handler reports.
 */
#ifndef SP_EXITHOOK_H
#define SP_EXITHOOK_H

#include <stdbool.h>

/* Install once; REPORT runs after libc's last exit work.  0 or -errno. */
int sp_exithook_install(void (*report)(void));
bool sp_exithook_active(void);

#endif
