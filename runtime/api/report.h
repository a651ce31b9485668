/* report — the registry as text (bpftrace-like) or JSON, at exit or on
 * demand.  Reads counters while other threads may still be hitting probes:
 * the figures are a consistent-enough snapshot, each counter read once. */
#ifndef SP_REPORT_H
#define SP_REPORT_H

#include <stdint.h>
#include <stdio.h>

void sp_report_text(FILE *f);
void sp_report_json(FILE *f);
/* A probe's count lines (@count, @returns, @missed, @lost) from its
 * counters C[SP_N_COUNTERS] (tstate.h); KIND: enum sp_probe_kind. */
void sp_report_counts_text(FILE *f, const char *label, int kind, const uint64_t *c);

/* One latency histogram, bpftrace's hist() drawing with its count, min,
 * avg and max; and the same as the JSON field ", \"latency\": {...}".
 * (Also the launcher's, for processes that ended without a report.) */
struct sp_lat;
void sp_report_histogram_text(FILE *f, const char *label, const struct sp_lat *l);
void sp_report_latency_json(FILE *f, const struct sp_lat *l);
/* One entry of a report's "errors": {"spec": SPEC, "message": MESSAGE}. */
void sp_report_error_json(FILE *f, const char *spec, const char *message);

/* What an output path asks for (UPROBE_OUTPUT, `selfprobe run -o`): the
 * report as text (also for NULL) or JSON, or one of the outputs written
 * beside it (the report then goes to stderr as text). */
enum sp_output { SP_OUT_TEXT, SP_OUT_JSON, SP_OUT_TIMELINE, SP_OUT_FOLDED };
enum sp_output sp_report_output(const char *path);
static inline int sp_report_side_output(const char *path)
{
	enum sp_output o = sp_report_output(path);
	return o == SP_OUT_TIMELINE || o == SP_OUT_FOLDED;
}

/* Expand "%p" to the pid (and "%%" to "%").  Malloc'ed, or NULL. */
char *sp_report_path(const char *pattern);

/* The end-of-process report is written once per process: the process that
 * set it up (or a fork child, after sp_report_atfork_child), never a vfork
 * child.  claim: 1 the first time in the right process, else 0. */
void sp_report_exit_owner_is_me(void);
int sp_report_exit_claim(void);
void sp_report_atfork_child(void);

#endif
