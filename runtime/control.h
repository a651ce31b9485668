/* control — the runtime's control channel: probes attached, read and
 * detached from outside the process while it runs (`selfprobe attach`,
 * `detach`, `top`).
 *
 * A Unix stream socket in the abstract namespace, "\0selfprobe.PID" (no file
 * to leave behind, and reachable from another mount namespace), served by a
 * thread of the runtime that runs nothing of the program's: its libc calls
 * are the runtime's (sp_tls.runtime), every signal is blocked in it.  A
 * connecting process must be of our user or root (SO_PEERCRED); others are
 * closed on without an answer.  For a preloaded program the channel is
 * opt-in (UPROBE_CONTROL=1, `selfprobe run --control`); a runtime loaded
 * into a running process by `selfprobe attach` starts it itself.
 *
 * Protocol: one request at a time, "COMMAND LEN\n" then LEN bytes; the
 * answer "OK LEN\n" then LEN bytes of JSON, or "ERR LEN\n" then a text
 * message (one line per error):
 *   ping            {"pid", "comm", "attached", "probes"}
 *   attach SPEC     attach every item of SPEC (the UPROBE_SPEC grammar) as
 *                   one session; all or nothing: if an item fails, those
 *                   attached by this request are detached again and the
 *                   errors are the answer (ERR).  ERR too when a session is
 *                   already attached.
 *   snapshot FMT    the session's counts so far (the session report below)
 *   detach FMT      the session report, then every probe of the session
 *                   detached (its bytes restored); ERR when none is attached
 *                   FMT: "json" (or empty), "text" (the runtime's text report
 *                   lines), "tsv" (control.c: one line a probe, for top and
 *                   the metrics)
 *   end             the server closes this connection
 * The session report covers the attached interval only: counts a probe had
 * from an earlier attachment (a dormant probe revived) are not in it:
 *   {"version": 1, "pid", "comm", "seconds", "probes": [{"spec", "label",
 *    "kind", "object", "symbol", "action", "hits", "missed", "returns",
 *    "lost", ["latency": {...}]}], "errors": [{"spec", "message"}]}
 */
#ifndef SP_CONTROL_H
#define SP_CONTROL_H

#define SP_CONTROL_PREFIX "selfprobe."   /* abstract name: prefix + pid */

/* Start the server (once per process; a fork child has none).  0 or -errno.
 * Exported as selfprobe_control_start (selfprobe.h). */
int sp_control_start(void);

#endif
