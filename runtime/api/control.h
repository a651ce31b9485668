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
 * One client at a time (a client silent for 10 s is dropped).
 * Protocol: one request at a time, "COMMAND LEN\n" then LEN bytes; the
 * answer "OK LEN\n" then LEN bytes of JSON, or "ERR LEN\n" then a text
 * message (one line per error):
 *   ping            {"pid", "comm", "attached", "probes"}
 *   attach SPEC     attach every item of SPEC (the UPROBE_SPEC grammar) as
 *                   one session; all or nothing: if an item fails, those
 *                   attached by this request are detached again and the
 *                   errors are the answer (ERR).  ERR too when a session is
 *                   already attached.  OK: {"attached": N, "pending":
 *                   [SPEC…]}, the items waiting for their object to be
 *                   loaded (not loaded now, or unloaded while they
 *                   attached: a dlclose racing the attach).
 *   snapshot FMT    the session's counts so far (the session report below)
 *   detach FMT      the session report, then every probe of the session
 *                   detached (its bytes restored); ERR when none is attached
 *                   FMT: "json" (or empty), "text" (the runtime's text report
 *                   lines), "tsv" (below: for top and the metrics)
 *   file            the counters file (shm.h: the launcher's under `selfprobe
 *                   run --control`, else the runtime's own), as a read-only
 *                   descriptor passed with the answer (SCM_RIGHTS), and
 *                   {"section": N, "link": L, "since": S, "errors_from": E,
 *                   "base": [[RECORD, hits, missed, returns, lost]…]}: the
 *                   session's probes are the records of section N whose
 *                   "link" is L, those listed in "base" and those attached
 *                   (not "detached") later; their session counts are the
 *                   record's counts less its "base" (a record not listed
 *                   had none); the session began at CLOCK_MONOTONIC S; its
 *                   errors are the section's from index E.  The client reads
 *                   the counts from the file, live, without asking again —
 *                   and still has them when the process is killed.  ERR when
 *                   no session is attached, or there is no file to give (the
 *                   program closed its descriptor; a probe found no record).
 *   end             the server closes this connection
 * The session report covers the attached interval only: counts a probe had
 * from an earlier attachment (a dormant probe revived) are not in it:
 *   {"version": 1, "pid", "comm", "seconds", "probes": [{"spec", "label",
 *    "kind", "object", "symbol", "action", "hits", "missed", "returns",
 *    "lost", ["latency": {...}]}], "errors": [{"spec", "message"}]}
 */
#ifndef SP_CONTROL_H
#define SP_CONTROL_H

#include <stdint.h>
#include <stdio.h>

#define SP_CONTROL_PREFIX "selfprobe."   /* abstract name: prefix + pid */

/* The "tsv" form, read by `selfprobe top` and the metrics (also written by
 * `selfprobe run --metrics` from the launcher's file): a line
 * "PID<tab>SECONDS<tab>COMM" for a process, then one line a probe of it:
 * hits missed returns lost lat_count lat_sum_ns buckets (comma list, or -)
 * kind spec object symbol label.  One probe's line, from its counters C
 * (enum sp_counter) and histogram L (NULL: not a latency probe): */
struct sp_lat;
void sp_control_tsv_row(FILE *f, const uint64_t *c, const struct sp_lat *l, const char *kind, const char *spec,
			const char *object, const char *symbol, const char *label);

/* Start the server (once per process; a fork child has none).  0 or -errno.
 * Exported as selfprobe_control_start (selfprobe.h). */
int sp_control_start(void);

#endif
