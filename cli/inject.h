/* inject — what `selfprobe attach` checks about a target process, and the
 * loading of libselfprobe.so into one that was not started with it.
 *
 * Loading (frida-inject's way): seize one thread with ptrace, make it map
 * three pages (system calls run by single-stepping a `syscall` of its own
 * libc), write the bootstrap (inject_boot.S) and its argument block there,
 * turn the code page read+execute (never writable and executable at once),
 * and let the thread call its libc's pthread_create for a new thread; then
 * put the thread back exactly as it was — registers, vector state, and an
 * interrupted system call, which restarts as the kernel would have
 * restarted it.  The new thread, not the hijacked one, calls dlopen (the
 * hijacked thread may hold the allocator's or the loader's lock) and the
 * runtime's selfprobe_control_start.  Once that thread is gone the pages are
 * unmapped the same way.
 */
#ifndef SP_CLI_INJECT_H
#define SP_CLI_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Can PID be attached to at all (exists, not a kernel thread nor a
 * zombie, ours or we are root)?  0, or -1 with the reason in WHY. */
int sp_target_check(pid_t pid, char *why, size_t n);

/* Is libselfprobe.so mapped in PID? */
bool sp_target_has_runtime(pid_t pid);

/* Load LIB into PID and start its control channel.  0, or -1 with the
 * reason in WHY (the process then left as it was). */
int sp_inject(pid_t pid, const char *lib, char *why, size_t n);

#endif
