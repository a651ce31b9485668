/* timeline — the `trace` action's hits as a timeline in the Chrome Trace
 * Event Format (opens in Perfetto and chrome://tracing), chosen by an
 * output path ending in ".trace.json".
 *
 *   uprobe / usdt  =trace    an instant event with the arguments
 *   usession       =trace    a complete event (entry to return) with the
 *                            entry's arguments and the return value
 *   uretprobe      =trace    a complete event with the return value
 *   any            =latency  a complete event
 *
 * Recording is the probed thread's own business: each thread appends
 * fixed-size binary events to a buffer of its own (no lock, no system call
 * after the first event), bounded at a number of events per thread; what
 * does not fit is counted as dropped, never blocks.  Under `selfprobe run`
 * the buffers are in the launcher's shared file (shm.h), so the launcher
 * writes the timeline even of a process that was killed; otherwise the
 * process writes it at exit.  The JSON is made only then, from the binary
 * events (timeline_json.c, shared with the launcher).
 */
#ifndef SP_TIMELINE_H
#define SP_TIMELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SP_TL_MAX_ARGS        12        /* USDT's maximum */
#define SP_TL_DEFAULT_EVENTS  65536     /* per thread: 8 MiB of address space, touched as used */

enum sp_tl_type {
	SP_TL_FREE,          /* being written */
	SP_TL_INSTANT,
	SP_TL_SPAN,          /* complete: ts_ns + dur_ns */
	SP_TL_OPEN,          /* a session's entry whose return was not seen (yet) */
};

enum { SP_TL_SIGNED = 1, SP_TL_RET = 2 };   /* flags */

/* An argument's type in an event's ftypes, 2 bits per argument: a USDT
 * note's float argument is recorded as its bits (the recording code keeps
 * off the vector registers) and turned into a number when the JSON is
 * written. */
enum { SP_TL_INT = 0, SP_TL_F32 = 1, SP_TL_F64 = 2 };
#define SP_TL_FTYPE(e, i)  (((e)->ftypes >> (2 * (i))) & 3u)

struct sp_tl_event {
	uint64_t ts_ns;                     /* CLOCK_MONOTONIC */
	uint64_t dur_ns;
	uint32_t label;                     /* see sp_timeline_label */
	_Atomic uint8_t type;               /* enum sp_tl_type, stored last */
	uint8_t nargs;
	uint8_t flags;
	uint8_t pad;
	uint32_t ftypes;                    /* SP_TL_FTYPE of each argument */
	uint32_t pad2;
	int64_t arg[SP_TL_MAX_ARGS];
	uint64_t ret;
};

struct sp_tl_buf {
	int32_t pid, tid;
	char name[16];                      /* the thread's name at its first event */
	_Atomic uint64_t n;                 /* events published */
	_Atomic uint64_t dropped;           /* events that did not fit */
	uint64_t cap;
	struct sp_tl_buf *_Atomic next;     /* the process's list (its own address space) */
	struct sp_tl_event ev[];
};

static inline uint64_t sp_tl_buf_bytes(uint64_t cap)
{
	return sizeof(struct sp_tl_buf) + cap * sizeof(struct sp_tl_event);
}

/* ---- recording (runtime) ---- */

/* Turn the timeline on (the exit output ends in ".trace.json"). */
void sp_timeline_enable(void);
bool sp_timeline_on(void);
/* Events kept per thread, for buffers made from now on.  0 or -EINVAL. */
int sp_timeline_set_capacity(uint64_t events);

/* A probe with events gets a label number at attach: its record in the
 * launcher's file, else a slot in the process's own table. */
struct sp_probe;
void sp_timeline_label(struct sp_probe *p);

/* From the trace action and the return path (signal-safe, in the probed
 * thread).  A span's START is its entry time (sp_latency_now). */
struct selfprobe_ctx;
void sp_timeline_hit(struct selfprobe_ctx *ctx);
void sp_timeline_span(const struct sp_probe *p, uint64_t start_ns, uint64_t dur_ns, uint64_t ret);

/* The process's whole timeline as one JSON document. */
int sp_timeline_write(FILE *f, const char *process_name);
/* Counts for the report: events kept, dropped, threads. */
void sp_timeline_totals(uint64_t *events, uint64_t *dropped, uint64_t *threads);

void sp_timeline_atfork_child(void);

/* ---- JSON (timeline_json.c: the runtime and the launcher) ---- */

/* Looks up a label number: its text and probe kind (enum sp_probe_kind). */
typedef const char *(*sp_tl_label_fn)(void *ctx, uint32_t label, int *kind);

struct sp_tl_writer {
	FILE *f;
	const char *sep;
	uint64_t events, dropped, threads;
};

void sp_tl_json_begin(struct sp_tl_writer *w, FILE *f);
void sp_tl_json_process(struct sp_tl_writer *w, int pid, const char *name);
void sp_tl_json_buffer(struct sp_tl_writer *w, const struct sp_tl_buf *b, sp_tl_label_fn label, void *ctx);
/* Closes the document (the dropped count goes into otherData).  0 or -errno. */
int sp_tl_json_end(struct sp_tl_writer *w);

#endif
