/* selfprobe.h — the one public header of libselfprobe.
 *
 * Uprobes inside the process: attach C handlers to function entries, returns
 * and USDT sites of the running program and its libraries.  Used three ways:
 *   - LD_PRELOAD=libselfprobe.so with UPROBE_SPEC (no code at all);
 *   - plugins named in a spec ("=./handlers.so:on_hit"), which receive a
 *     struct selfprobe_ctx and use the accessors below;
 *   - programs that instrument themselves: link -lselfprobe and call
 *     selfprobe_attach()/selfprobe_attach_spec().
 *
 * Only selfprobe_* names are exported by the library.  Every function here
 * is safe to call from a handler unless it says otherwise.
 */
#ifndef SELFPROBE_H
#define SELFPROBE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when struct layouts or handler semantics change incompatibly.  A
 * plugin built against another ABI version is refused with a clear error. */
#define SELFPROBE_ABI_VERSION 1

/* A plugin (a shared object named in a spec: "=./plugin.so:on_hit") says
 * which ABI it was built for with this line in one of its files:
 *     SELFPROBE_PLUGIN;
 * It may also define
 *     int  selfprobe_plugin_init(const char *args);  called once when loaded
 *                                  (args: UPROBE_PLUGIN_ARGS, or NULL);
 *                                  non-zero refuses the plugin
 *     void selfprobe_plugin_fini(void);              called once at exit,
 *                                  after the report */
#define SELFPROBE_PLUGIN \
	__attribute__((visibility("default"))) const int selfprobe_plugin_abi = SELFPROBE_ABI_VERSION

/* The interrupted thread's integer state at the probe site.  Writable from a
 * handler: changes are applied when the thread resumes (rip included, which
 * lets a handler skip the probed function). */
struct selfprobe_regs {
	uint64_t r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
	uint64_t rax, rcx, rdx, rsi, rdi;
	uint64_t rip;    /* the probe site (the first byte of the probed instruction) */
	uint64_t eflags;
	uint64_t rsp;    /* as it was at the site, before any probe machinery ran */
};

/* Per-hit context handed to handlers.  Opaque: use the accessors. */
struct selfprobe_ctx;

/* A handler.  For session probes, returning non-zero at entry skips the
 * return call of that invocation; elsewhere the result is ignored. */
typedef int (*selfprobe_handler_fn)(struct selfprobe_ctx *ctx, void *data);

/* One attached probe, as returned by selfprobe_attach(). */
struct selfprobe_link;

/* Attach fn to every site PROBE names (the spec grammar's probe part, no
 * '=action': "uprobe:libc:malloc", "usdt:./app:prov:name" …).  Returns NULL
 * and sets errno on failure; the reason goes to the log. */
struct selfprobe_link *selfprobe_attach(const char *probe,
					selfprobe_handler_fn fn, void *data);

/* Detach.  Safe while other threads are hitting the probe: once it returns
 * the handler is never called again and its data may be freed.  0 or a
 * negative errno value. */
int selfprobe_detach(struct selfprobe_link *l);

/* Attach every item of SPEC (the same text as UPROBE_SPEC, '@FILE' too), with
 * its action.  Returns 0 when every item attached, else -EINVAL: each failed
 * item is logged and listed in the report's errors; the others are attached. */
int selfprobe_attach_spec(const char *spec);

/* Context accessors. */
struct selfprobe_regs *selfprobe_regs(struct selfprobe_ctx *ctx);
uint64_t  selfprobe_arg(struct selfprobe_ctx *ctx, int n);   /* SysV integer args, n >= 0 */
/* A Go function's integer argument N under Go's register ABI: RAX, RBX,
 * RCX, RDI, RSI, R8, R9, R10, R11 for N = 0..8 (0 beyond: on the stack).
 * A method's receiver is argument 0; a string or slice takes 2 or 3. */
uint64_t  selfprobe_go_arg(struct selfprobe_ctx *ctx, int n);
uint64_t  selfprobe_retval(struct selfprobe_ctx *ctx);
bool      selfprobe_is_return(struct selfprobe_ctx *ctx);
uint64_t *selfprobe_cookie(struct selfprobe_ctx *ctx);       /* per call, session probes */
int       selfprobe_usdt_arg(struct selfprobe_ctx *ctx, int n, int64_t *val);
/* A USDT argument the note marks as floating (4f@, 8f@: float, double), as
 * a double; selfprobe_usdt_arg gives its bits.  -EDOM for an integer one. */
int       selfprobe_usdt_arg_double(struct selfprobe_ctx *ctx, int n, double *val);
/* The user stack at the hit, the site first: frames written, or -errno;
 * -EAGAIN while another thread of the process forks (the unwinder's locks
 * must not be held across a fork). */
int       selfprobe_backtrace(struct selfprobe_ctx *ctx, uintptr_t *ips, int max);
/* The probe's address (the site), and the spec text it came from. */
uintptr_t   selfprobe_address(struct selfprobe_ctx *ctx);
const char *selfprobe_spec(struct selfprobe_ctx *ctx);

/* Runtime configuration, as the preload front end sets it from the
 * environment.  Not for handlers. */
int selfprobe_set_mode(const char *mode);        /* "auto", "int3", "jmp" */
int selfprobe_set_log_level(const char *level);  /* "error", "warn", "info", "debug" */

/* Write the report: PATH NULL → text on stderr; a path ending in ".json" →
 * JSON; any other path → text.  Two paths are outputs beside the report:
 * ".trace.json" → the timeline of the `trace` and `latency` probes (Chrome
 * Trace Event Format), ".folded" → the `stack` probes' folded stacks.
 * "%p" in PATH becomes the pid.  The file is created with O_NOFOLLOW.  0 or
 * a negative errno value.  Not for handlers. */
int selfprobe_write_report(const char *path);

/* Write the report to FD (not closed): JSON when JSON is true, else text. */
int selfprobe_write_report_fd(int fd, bool json);

/* Where the report goes when the process ends (PATH as for
 * selfprobe_write_report; NULL: text on a copy of the current stderr, taken
 * now, since programs often close fd 2 before they exit).  Then
 * selfprobe_exit_report() writes it once — the preload calls it after every
 * destructor — and so does a call to _exit/_Exit, which skips exit
 * handlers.  Not for handlers. */
int  selfprobe_set_exit_report(const char *path);
void selfprobe_exit_report(void);
/* True when the runtime writes that report itself at the very end of
 * exit(), after libc's stdio cleanup (whose last writes count): then a
 * front end registers no exit handler of its own. */
bool selfprobe_exit_hooked(void);
/* A ".trace.json" exit output turns the timeline on: the trace action then
 * records events (not lines on stderr), latency probes record spans, and
 * the text report goes to stderr at exit beside the file (so it does with
 * ".folded").  Events kept per thread (default 65536; the rest are counted
 * as dropped): */
int  selfprobe_set_timeline_events(unsigned long events);
/* A bpftrace program's output (printf lines, maps): "text" (default,
 * bpftrace's text format) or "json" (bpftrace's -f json lines).  Before
 * attaching.  0, or -EINVAL for another word. */
int  selfprobe_set_bt_format(const char *format);

/* Under the `selfprobe run` launcher (SELFPROBE_SHM in ENV): keep the
 * counters in its shared file, which it reads however the process ends,
 * and leave the report to it.  Call before attaching anything, and before
 * selfprobe_set_exit_report.  0 (also
 * when not under the launcher) or a negative errno value.  Not for
 * handlers. */
int selfprobe_attach_launcher(char **env, int argc, char **argv);

/* Call every loaded plugin's selfprobe_plugin_fini (once; at exit, after
 * the report).  Not for handlers. */
void selfprobe_fini_plugins(void);

/* Serve the control channel (`selfprobe attach/detach/top PID`): a Unix
 * socket only the same user or root may use, answered by a thread of the
 * runtime.  The preload calls it under UPROBE_CONTROL=1; a runtime loaded
 * into a running process by `selfprobe attach` calls it itself.  Once per
 * process.  0 or a negative errno value.  Not for handlers. */
int selfprobe_control_start(void);

/* Record an error for the report's "errors" (and log it), as the runtime
 * does for a bad spec item.  For front ends. */
void selfprobe_report_error(const char *spec, const char *message);

#ifdef __cplusplus
}
#endif
#endif /* SELFPROBE_H */
