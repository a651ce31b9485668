/* tracer — a process under ptrace (a debugger, strace) is not probed.
 *
 * Every int3 of ours, the fallback patcher's instruction-fetch faults and
 * the stop check's signal reach a tracee's tracer before our handler: gdb
 * stops the program at the first hit ("Program received signal SIGTRAP")
 * and swallows the signal, strace prints each one into its log.  Only the
 * jmp path needs none of them, and arming a jmp still takes an int3 for a
 * moment (arm.h).  So no probe is attached while /proc/self/status names a
 * tracer, and the report's errors say so; a tracer that attaches after our
 * probes were armed sees their int3s (README, known limits).
 *
 * `selfprobe attach` loads the runtime with ptrace but detaches before it
 * sends any probe (cli/inject.c). */
#ifndef SP_TRACER_H
#define SP_TRACER_H

#include <stddef.h>
#include <sys/types.h>

/* The TracerPid of the text of /proc/PID/status STATUS (NULL: unreadable):
 * 0 when untraced. */
pid_t sp_tracer_from_status(const char *status);

/* Why this process cannot be probed now, in BUF (of N bytes), or NULL:
 * "the process is traced by PID 1234 (gdb): ...". */
const char *sp_tracer_refusal(char *buf, size_t n);

#endif
