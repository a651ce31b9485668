/* jmpplan — can a probe site take the 5-byte jmp, and with which window?
 *
 * "Can I?" apart from "do it": this module only decides.  The window is the
 * run of whole instructions starting at the site that covers the 5 bytes a
 * `jmp rel32` overwrites; they are displaced into the trampoline (reloc).
 * The rules (the design's, after the kernel's optprobe can_optimize()):
 *
 *   - the function's extent must be known (ELF size), unless the window is
 *     a single instruction of 5 bytes or more;
 *   - decoding the whole function from its start must reach the site on an
 *     instruction boundary and never fail;
 *   - no direct branch (jmp, jcc, call, loop, jrcxz) anywhere in the function
 *     may target bytes 1..len-1 of the window;
 *   - (indirect jumps: what they can reach is the object index's question,
 *     btindex.h, asked by decide.c);
 *   - a call inside the window must be its last instruction (its return
 *     address must not be inside the window);
 *   - every window instruction must be relocatable (reloc.h): no indirect
 *     call, no loop/jrcxz, nothing refused; an indirect jmp only as the
 *     last (a tail call: its copy jumps where the original would);
 *   - a window running past the function's end may only cover padding (nop
 *     and int3 bytes) up to the next symbol, and only when the function's
 *     last instruction inside the window ends its flow (ret, jmp);
 *   - the site must not be inside an IFUNC resolver or a hazard (hazard.h
 *     is the caller's business).
 * Every refusal names its rule in *REASON (a static string).
 */
#ifndef SP_JMPPLAN_H
#define SP_JMPPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "insn.h"

#define SP_JMP_LEN 5
#define SP_HOP_LEN 2             /* jmp rel8: the hop's first piece */
#define SP_WINDOW_MAX 5          /* at most 5 one-byte instructions */

/* A hop's geometry (hop.h): its pad, and how far from the site it lies. */
#define SP_HOP_PAD_LEN 5                 /* the pad's jmp rel32 */
/* The pad's start relative to the site: rel8 counts from site + 2. */
#define SP_HOP_REACH_BACK 126            /* pad >= site - 126 */
#define SP_HOP_REACH_FWD 129             /* pad <= site + 129 */
/* Any site's pad lies in [site - SP_HOP_SPAN, site + SP_HOP_SPAN). */
#define SP_HOP_SPAN (SP_HOP_REACH_FWD + SP_HOP_PAD_LEN)

struct sp_window {
	uintptr_t site;
	uint8_t len;                  /* bytes displaced (>= 5 unless flow ends first) */
	uint8_t n_insns;
	struct sp_insn insns[SP_WINDOW_MAX];
	bool flow_ends;               /* the last window instruction is ret/jmp/jmp*:
				       * no jump back after the relocated copy */
};

/* Plan the jmp at SITE.  FUNC is the start of the function holding SITE and
 * FUNC_SIZE its ELF size (0: unknown).  AVAIL: bytes readable from SITE
 * (the text mapping's end).  LIMIT: the first address that must not be
 * covered (the next symbol's start, or the end of text), used for the
 * padding rule.  Returns 0 and fills W, or a negative errno with *REASON. */
int sp_jmp_plan(uintptr_t func, size_t func_size, uintptr_t site, size_t avail,
		uintptr_t limit, struct sp_window *w, const char **reason);

/* sp_jmp_plan on an image of the code rather than the live text: CODE
 * holds the bytes of [LO, LO + LEN) as they are at runtime address LO (a
 * pristine copy of live text, or a file's bytes).  The range needed is
 * sp_jmp_plan_range's.  The window's instructions come back decoded at
 * their real addresses. */
void sp_jmp_plan_range(uintptr_t func, size_t func_size, uintptr_t site, size_t avail,
		       uintptr_t *lo, uintptr_t *hi);
int sp_jmp_plan_image(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
		      size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
		      const char **reason);

/* A memo of the plan's costly part: the decode of the whole function
 * (does the site sit on an instruction boundary, does the function decode,
 * does a direct branch of it land inside (SITE, GUARD_END)).  Its verdict
 * is a function of the code bytes and these four addresses only, so a
 * caller that can name the code (the object's build ID: scanmemo.h) keeps
 * it across processes.  Addresses are the real (runtime) ones; VERDICT is
 * 0 (fine) or an SP_SCAN_* refusal.  GET answers false when it does not
 * know. */
enum { SP_SCAN_OK, SP_SCAN_NO_DECODE, SP_SCAN_NOT_BOUNDARY, SP_SCAN_INTO_WINDOW, SP_SCAN_N };
struct sp_scan_memo {
	void *ctx;
	bool (*get)(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end, int *verdict);
	void (*put)(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end, int verdict);
};

/* sp_jmp_plan_image with the function's decode taken from MEMO when it has
 * it (and given to it when not); MEMO NULL: sp_jmp_plan_image. */
int sp_jmp_plan_image_memo(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
			   size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
			   const char **reason, const struct sp_scan_memo *memo);

/* The window of a hop (hop.h): the first instruction alone, with every rule
 * above applied to it (no branch lands strictly inside it, it relocates,
 * the function decodes and holds no indirect jmp).  Refused when that
 * instruction is shorter than the 2-byte jmp rel8, or the function's
 * extent is unknown. */
int sp_jmp_plan_first_image(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
			    size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
			    const char **reason);
/* The same with the function's decode taken from MEMO (as
 * sp_jmp_plan_image_memo: the scan's inputs are the memo's key, the hop's
 * window only shorter). */
int sp_jmp_plan_first_image_memo(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
				 size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
				 const char **reason, const struct sp_scan_memo *memo);

#endif
