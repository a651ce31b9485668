/* stack — user stacks at a hit: selfprobe_backtrace() and the `stack`
 * action.
 *
 * The walk starts from the probe's context — the signal's ucontext on the
 * int3 path, the trampoline's saved registers on the jmp path — so neither
 * our handler nor a trampoline appears; frames whose return address we
 * swapped for the return trampoline get their real one back for the walk
 * (uret.h).  libunwind (unw_init_local2, unw_step) is async-signal-safe.
 *
 * The action aggregates by distinct stack: a lock-free open-addressing
 * table of up to SP_STACKS_MAX stacks of up to SP_STACK_DEPTH frames in an
 * mmap'ed arena, inserted with compare-and-swap, counted with atomic adds;
 * each slot taken is appended to a list the reports read (shm.h).
 * Symbolised only at the report (dladdr plus our own ELF symbols), C++
 * names demangled (demangle.h) on a stack of ours.
 */
#ifndef SP_STACK_H
#define SP_STACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "selfprobe.h"
#include "shm.h"


struct sp_probe;


/* Walk the stack of CTX into IPS (at most MAX).  Count, or -errno. */
int sp_stack_walk(struct selfprobe_ctx *ctx, uintptr_t *ips, int max);

/* IP as bpftrace 0.17 prints a user stack's frame ("main+57", "0x7f…"),
 * for a bpftrace program's ustack (at output, never in a handler). */
void sp_stack_symbolize_bt(uintptr_t ip, char *buf, size_t len);

/* The same for another process, with the objects it noted (V). */
struct sp_stack_view;
void sp_stack_view_symbolize_bt(const struct sp_stack_view *v, uintptr_t ip, char *buf, size_t len);

/* The `stack` action's handler. */
int sp_stack_handler(struct selfprobe_ctx *ctx, void *data);
int sp_stack_prepare(void);

/* The objects loaded now, noted in the shared file for the launcher's
 * symbolisation (at prepare and when the loader changes the link map). */
void sp_stack_note_objects(void);
void sp_stack_atfork_child(void);
/* Around fork: wait for the walks under way, start none (stack.c). */
void sp_stack_atfork_prepare(void);
void sp_stack_atfork_parent(void);

/* A stack table to report: this process's (symbolised here, entries
 * matched by probe), or another's from the shared file (entries matched by
 * record, symbolised with the ELF files of the objects it noted). */
struct sp_shm_object;
struct sp_stack_view {
	const struct sp_stack_area *area;       /* read through its slots taken */
	bool other_process;                     /* match records, symbolise with OBJS */
	const struct sp_shm_object *objs;
	size_t n_objs;
};
void sp_stack_view_text(FILE *f, const struct sp_stack_view *v, const void *probe, int record,
			const char *label, int top);
void sp_stack_view_json(FILE *f, const struct sp_stack_view *v, const void *probe, int record, int top);
/* Folded lines of every entry LABEL names (NULL: skipped). */
void sp_stack_view_folded(FILE *f, const struct sp_stack_view *v,
			  const char *(*label)(const struct sp_stack_entry *e, void *ctx), void *ctx);

/* Report: the top stacks of probe P as text (bpftrace's @stacks style),
 * and every stack of every probe as folded lines ("a;b;c N", root first). */
void sp_stack_report_text(FILE *f, const struct sp_probe *p, int top);
/* How many of a probe's stacks each report shows, most frequent first: a
 * screenful for a reader, more for a tool (the folded output has all). */
#define SP_STACK_TOP_TEXT 10
#define SP_STACK_TOP_JSON 20
void sp_stack_report_folded(FILE *f);
/* The TOP stacks of P as a JSON field (", \"stacks\": [...]"). */
void sp_stack_report_json(FILE *f, const struct sp_probe *p, int top);

#endif
