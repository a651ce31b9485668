/* decide — the one decision: which path a probe site takes, and why.
 *
 * The live runtime (arm.c) and the CLI's list/check (analyze.c) both hand a
 * site's facts to sp_decide and act on its verdict; neither repeats a rule.
 * The facts are what differs between them: where the pristine code comes
 * from (a copy of live text, or a file's bytes), the object's index
 * (btindex.h: direct branch targets, taken addresses, jump tables — built
 * once per object from the same sources either way), the int3 hazard the
 * caller looked up, and what only a live process knows (other probes'
 * windows, where a trampoline really goes).
 *
 * The checks, in order (each one a line of the trail `check` prints):
 *
 *   1. int3 hazard (hazard.h) — fatal: the site is not patched at all;
 *   2. the site is not an int3 already; the instruction decodes and is not
 *      refused — fatal;
 *   3. the int3 path can resume after it (emulated, or run out of line);
 *   4. the jmp window plan (jmpplan.h: function decode, direct branches in
 *      the function, relocatable window, padding);
 *   5. landing pads: a mid-function window of several instructions in an
 *      object with exception tables; in a Go function attached once its
 *      runtime may have goroutines, a window of several instructions (a
 *      goroutine parked by asynchronous preemption resumes at its saved
 *      pc, on its stack, where the stop-check does not look: inside the
 *      jmp);
 *   6. no direct branch from anywhere in the object into the window;
 *   7. no jump table whose bound or extent is unknown covering the
 *      function (its indirect jump could reach anything in it);
 *   8. no jump-table entry and no taken address (RIP-relative lea,
 *      relocation, data pointer) at one of the window's instructions after
 *      the first (where an indirect transfer could enter it: nothing jumps
 *      into the middle of an instruction);
 *   9. the window relocates (at facts.tramp_addr, when known);
 *  10. no other probe site inside the window (live only).
 *
 * The rule behind 6–8: a 5-byte window is safe only when nothing can
 * transfer control strictly inside it; its first byte is always fine.
 *
 * Paths: NONE (cannot be probed), INT3, JMP5 (the 5-byte jmp), HOP (a
 * 2-byte jmp to a 5-byte jmp in padding: item 3 of issue 14, planned by
 * hop.c from the facts this verdict keeps: the first instruction's length,
 * which window bytes are targets, and which rule blocked the jmp5).
 */
#ifndef SP_DECIDE_H
#define SP_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "btindex.h"
#include "insn.h"
#include "jmpplan.h"

struct sp_elf;

/* What is known about the site beyond its code, for the decision (below). */
struct sp_func_extent {
	uintptr_t start;     /* 0: unknown */
	size_t size;         /* 0: unknown */
	uintptr_t limit;     /* first byte the window must not reach */
	const struct sp_btindex *bt;  /* the object's branch targets (NULL: no jmp) */
	const struct sp_elf *elf;     /* the object's symbols, for a hop's pad
				       * (NULL: no hop) */
	bool landing_pads;   /* the object has exception tables: code inside a
			      * function may be entered by the unwinder */
	const char *hazard;  /* why an int3 here would break the process (hazard.h) */
	const char *int3_path_hazard;   /* why it must not stay on the int3 path (hazard.h) */
	bool go_stack;       /* a Go function: the trampoline calls C on a stack
			      * of its own, never the goroutine's (golang.h) */
	const char *go_no_jmp;  /* why a Go site takes the int3 path, or NULL */
	bool go_running;     /* a function of a Go object whose runtime may have
			      * goroutines (golang.h sp_go_running): one may be
			      * parked by asynchronous preemption at any
			      * instruction of its Go code */
	const uint8_t *inline_code;   /* the probe's native code: a trampoline
				       * built for it runs it (site.h) */
	size_t inline_len;
};

enum sp_path {
	SP_PATH_NONE,            /* cannot be probed at all (reason) */
	SP_PATH_INT3,            /* int3 + SIGTRAP (reason: why not trap-free) */
	SP_PATH_JMP5,            /* 5-byte jmp into a trampoline */
	SP_PATH_HOP,             /* 2-byte jmp to a 5-byte jmp in padding (hop.c) */
};

enum sp_check_result { SP_CHECK_PASS, SP_CHECK_FAIL, SP_CHECK_NOT_CHECKED };

struct sp_check {
	const char *name;        /* static: "int3 hazard", "jmp window plan", ... */
	enum sp_check_result result;
	const char *detail;      /* static, or into the verdict's text buffer */
};

/* Which rule refused the 5-byte jmp: what a hop needs to know to help. */
enum sp_block {
	SP_BLOCK_NONE,           /* the jmp5 was not refused */
	SP_BLOCK_TARGET,         /* control may enter the window after its first
				  * byte, on an instruction boundary: a direct
				  * target, a table entry, a taken address
				  * (window_targets says which), a landing pad,
				  * or an unknown jump table's target */
	SP_BLOCK_SHORT,          /* the function (or its flow) ends before 5 bytes */
	SP_BLOCK_OTHER,          /* any other rule: no hop either */
};

#define SP_DECIDE_MAX_CHECKS 16

struct sp_site_facts {
	uintptr_t site;
	uintptr_t bias;          /* reasons name ELF addresses: runtime - bias */
	/* a pristine image of the code at its runtime addresses: [code_lo,
	 * code_lo + code_len) holding at least sp_decide_range()'s span */
	const uint8_t *code;
	uintptr_t code_lo;
	size_t code_len;
	size_t avail;            /* text bytes readable from SITE (segment end) */
	uintptr_t func;          /* the function holding SITE (0: unknown) */
	size_t func_size;        /* 0: unknown */
	uintptr_t limit;         /* first byte a window must not reach (next symbol) */
	const struct sp_btindex *idx;   /* the object's index; NULL: not indexed (no jmp) */
	bool landing_pads;       /* the object has .gcc_except_table */
	const char *hazard;      /* sp_hazard_int3's answer, NULL: none */
	bool go_site;            /* a Go function's site (golang.h) */
	/* what only a live process knows */
	bool live;               /* false: checks 9–10 are "not checked" */
	uintptr_t tramp_addr;    /* where the window would be relocated (0: not checked) */
	uintptr_t next_site;     /* the nearest other probe site above SITE (0: none) */
	bool go_running;         /* the site's object is Go and goroutines may exist
				  * (sp_go_running): check 5 for a go_site, no
				  * hop carrier for any (hop.h) */
};

/* Why a Go site takes no jmp window of several instructions once
 * goroutines may exist (check 5): the verdict's reason, and arm.c's for a
 * site decided before they did. */
extern const char sp_decide_go_preempt[];

struct sp_verdict {
	enum sp_path path;
	const char *reason;      /* NULL on a trap-free path (but a hop taken for
				  * sp_decide_go_preempt keeps it: why not the
				  * 5-byte jmp); static or into text */
	const char *resume;      /* int3 path: "emulated" or "run out of line" (NULL: cannot) */
	struct sp_insn insn;     /* the site's instruction (when it decodes) */
	bool have_window;
	struct sp_window w;      /* the 5-byte jmp's window (decoded at its address) */
	/* for the hop */
	enum sp_block block;
	uint8_t first_len;       /* the first instruction's length */
	uint8_t window_targets;  /* bit i: byte SITE+i (1..7) is a transfer target */
	uintptr_t hop_pad;       /* SP_PATH_HOP: the pad (hop.h sp_hop_decide) */
	uintptr_t hop_carrier;   /* and the carrier holding it, or 0 (padding) */
	uint8_t hop_carrier_len;
	/* the trail `check` prints */
	struct sp_check trail[SP_DECIDE_MAX_CHECKS];
	int n_trail;
	char text[512];          /* storage for reasons that name addresses */
	size_t text_used;
};

/* The span of code sp_decide reads for a site: [*LO, *HI). */
void sp_decide_range(uintptr_t func, size_t func_size, uintptr_t site, size_t avail,
		     uintptr_t *lo, uintptr_t *hi);

/* Decide the path of the site F describes.  Fills V (always). */
void sp_decide(const struct sp_site_facts *f, struct sp_verdict *v);

const char *sp_path_name(enum sp_path p);

/* The decision kept for the object's code (sitememo.h), for a live
 * process: F's code need only cover [site, site + min(avail, 32)).
 * sp_decide_replay fills V as sp_decide would and returns 0 when a record
 * for F's site and function exists, its bytes are those of F's code, its
 * window decodes to the stored instructions and no other probe's site is
 * in it; otherwise -1 (V undefined) and the caller decides afresh, then
 * calls sp_decide_remember with the full verdict (stored at the next
 * flush unless it depends on what only this process knows).
 * sp_decide_can_replay: is there a stored table to try (a cheap test
 * before reading the bytes)? */
bool sp_decide_can_replay(const struct sp_site_facts *f);
int sp_decide_replay(const struct sp_site_facts *f, struct sp_verdict *v);
void sp_decide_remember(const struct sp_site_facts *f, const struct sp_verdict *v);
#define SP_DECIDE_REPLAY_BYTES 32   /* "none", "int3", "jmp5", "hop" */

#endif
