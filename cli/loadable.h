/* loadable — can LD_PRELOAD reach a command at all?  A statically linked
 * executable (no PT_INTERP: no dynamic loader) ignores LD_PRELOAD and runs
 * unprobed; the launcher says so instead of an empty report. */
#ifndef SP_LOADABLE_H
#define SP_LOADABLE_H

#include <stddef.h>

/* CMD as execvp would find it.  0 when the preload can load into it (a
 * dynamic ELF, a script, or what cannot be read: execvp says); else 1 and
 * WHY says why not. */
int sp_preload_unreachable(const char *cmd, char *why, size_t len);

#endif
