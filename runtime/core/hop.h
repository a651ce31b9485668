/* hop — the trap-free path where the 5-byte window is blocked.
 *
 * When something lands inside bytes 1–4 of a site's 5-byte window (a loop
 * head, a call from elsewhere) or the window does not fit (a short function
 * running into the next), the site's first instruction alone can still be
 * replaced, if it is at least 2 bytes long:
 *
 *   site:  eb XX              jmp rel8 → pad   (the rest of the first
 *                                               instruction is never run)
 *   pad:   e9 <rel32>         jmp rel32 → the site's trampoline
 *
 * PAD is 5 bytes of alignment padding within reach of the rel8 (the pad's
 * start in [site + 2 - 128, site + 2 + 127]) that the program never runs.
 * Proved from the code, never guessed: the pad lies in a run of fill bytes
 * (int3, or nop forms other than endbr64/endbr32, which mark indirect
 * branch targets) that starts right where a function with a known extent
 * ends (its ELF symbol's size, or its .eh_frame FDE: a file stripped to
 * .dynsym keeps those, ehframe.h), and that function's last instruction
 * ends its flow (ret, jmp, ud2), so nothing falls into the run; no function
 * (symbol or FDE) starts in or covers the bytes from the run's start to the
 * pad's end; no branch target and no
 * taken address lies there (the run's bytes before the pad are nops a
 * landing thread would slide through).  Loop-alignment padding inside a
 * function is covered by the function's extent and is never used.  No two
 * sites claim overlapping pads, and no pad overlaps bytes another site
 * patches.
 *
 * Where no padding is in reach (packed code: python3.11's short functions
 * sit back to back), the pad may be made: a CARRIER is a straight run of
 * at most SP_HOP_CARRIER_INSNS instructions, at least 10 bytes, inside a
 * function and past its entry window, that nothing enters after its first
 * byte (no branch target, no taken address, no function start, no other
 * site's bytes) and whose instructions relocate.  It is moved out by a 5-byte
 * jmp of its own to a bare trampoline (the relocated run and a jmp back):
 * from then on its bytes 5-9 are never run, and the pad goes there.  The
 * carrier is armed (int3, stop check, jmp) before the pad is written, and
 * stays armed for the life of the hop's site: its bytes are the hop's.
 *
 * This module only plans: which pad, from which facts.  arm.c writes the two
 * pieces (the pad first: nothing can reach it until the site's rel8 exists)
 * and puts both back on detach.
 */
#ifndef SP_HOP_H
#define SP_HOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "btindex.h"
#include "decide.h"
#include "elfsym.h"
#include "jmpplan.h"

/* SP_HOP_PAD_LEN, SP_HOP_REACH_BACK/FWD, SP_HOP_SPAN: jmpplan.h (the site table needs them too). */
/* How far before the reach a run of fill may start to be considered (runs
 * of fill are a function's alignment: shorter than this). */
#define SP_HOP_RUN_MAX 64

/* What the pad search reads.  Addresses are runtime addresses (ELF value +
 * BIAS); CODE holds the pristine bytes of [LO, LO + LEN). */
struct sp_hop_facts {
	const uint8_t *code;
	uintptr_t lo;
	size_t len;
	const struct sp_elf *elf;        /* function symbols and their sizes */
	uintptr_t bias;
	/* Any branch target or taken address in [lo, hi)?  Required (set by
	 * sp_hop_plan from the object's index). */
	bool (*reached)(const void *ctx, uintptr_t lo, uintptr_t hi);
	const void *reached_ctx;
	/* Any byte of [lo, hi) patched or claimed by another site?  NULL: none. */
	bool (*claimed)(const void *ctx, uintptr_t lo, uintptr_t hi);
	const void *claimed_ctx;
	/* no carrier may be made: a carrier is a jmp over a run of several
	 * instructions, which a goroutine parked by Go's asynchronous
	 * preemption would resume inside (decide.h, check 5).  sp_hop_decide
	 * sets it for a site of a Go object decided live while goroutines may
	 * run. */
	bool no_carrier;
};

/* The code range the search must see for a hop at SITE, clipped to the
 * text [TEXT_LO, TEXT_HI): the reach, and every function whose end could
 * start a run in reach (its last instruction is decoded from its start). */
void sp_hop_range(const struct sp_elf *elf, uintptr_t bias, uintptr_t site, uintptr_t text_lo,
		  uintptr_t text_hi, uintptr_t *lo, uintptr_t *hi);

/* Find a pad for a hop at SITE.  0 and *PAD, or -ENOSPC with *REASON
 * ("no unused padding within ±127 bytes ..."). */
int sp_hop_find_pad(const struct sp_hop_facts *f, uintptr_t site, uintptr_t *pad,
		    const char **reason);

#define SP_HOP_CARRIER_MIN 10          /* its jmp, then the pad */
#define SP_HOP_CARRIER_MAX 24          /* bytes: a longer run is not needed */
#define SP_HOP_CARRIER_INSNS SP_WINDOW_MAX

/* A carrier for a hop at SITE whose first instruction is FIRST_LEN bytes:
 * 0 with *AT and *LEN (the pad is *AT + 5), or -ENOSPC.  F->reached must be
 * set (sp_hop_plan does). */
int sp_hop_find_carrier(const struct sp_hop_facts *f, uintptr_t site, size_t first_len, uintptr_t *at,
			uint8_t *len);

/* The site a hop is planned for (sp_decide refused its 5-byte jmp because
 * control may enter bytes 1-4, or the function is too short). */
struct sp_hop_site {
	uintptr_t site;
	uintptr_t func;                  /* the function holding it (0: unknown) */
	size_t func_size;
	uintptr_t limit;                 /* the next symbol (jmpplan.h) */
	const struct sp_btindex *idx;    /* the object's direct targets, taken
					  * addresses and jump tables */
};

/* The code range sp_hop_plan reads: the function (its plan) and the pad
 * search's (sp_hop_range), clipped to the text [TEXT_LO, TEXT_HI). */
void sp_hop_plan_range(const struct sp_elf *elf, uintptr_t bias, const struct sp_hop_site *s,
		       size_t avail, uintptr_t text_lo, uintptr_t text_hi, uintptr_t *lo, uintptr_t *hi);

/* Plan a hop at S->site on F's image (F->reached is set here,
 * from S->idx: direct targets and taken addresses): the window is the first
 * instruction alone (sp_jmp_plan_first_image: at least 2 bytes, nothing
 * lands strictly inside it, it relocates; as decide.h has it, an unknown
 * jump table cannot land inside one instruction), and a pad is found.  0 with *W and *PAD, or -errno with
 * *REASON. */
int sp_hop_plan(const struct sp_hop_facts *f, const struct sp_hop_site *s, struct sp_window *w,
		uintptr_t *pad, uintptr_t *carrier, uint8_t *carrier_len, const char **reason);

/* The hop as part of the one decision, after sp_decide: a verdict whose
 * 5-byte jmp was refused because control may enter its bytes 1-4 or the
 * function is too short (V->block TARGET or SHORT) becomes a hop
 * (SP_PATH_HOP, V->w the first instruction's window, V->hop_pad) when
 * sp_hop_plan finds one in HF (its image covering sp_hop_plan_range of F's
 * site; HF->claimed: the other sites' bytes and pads) and, live, no other
 * probe site lies inside that instruction.  Otherwise an int3 verdict's
 * reason names both refusals (sp_hop_refusal).  The trail gets the hop's
 * line either way once a hop was considered.  True for a hop. */
bool sp_hop_decide(const struct sp_site_facts *f, const struct sp_hop_facts *hf, struct sp_verdict *v);

/* Is V a verdict sp_hop_decide could turn into a hop (its facts worth
 * gathering)? */
bool sp_hop_candidate(const struct sp_verdict *v);

/* The refusal to report when neither the 5-byte jmp (WHY5) nor a hop
 * (WHY_HOP) is possible: WHY5 alone when the hop failed for the same
 * reason, else both ("WHY5; hop: WHY_HOP"), interned: the same pair gives
 * the same string for the life of the process.  Not thread-safe (the
 * registry lock, or the CLI's single thread). */
const char *sp_hop_refusal(const char *why5, const char *why_hop);

/* The bytes of the two pieces: the site's jmp rel8 (2 bytes) and the pad's
 * jmp rel32 (5 bytes) to TRAMP. */
void sp_hop_site_bytes(uintptr_t site, uintptr_t pad, uint8_t out[2]);
void sp_hop_pad_bytes(uintptr_t pad, uintptr_t tramp, uint8_t out[SP_HOP_PAD_LEN]);

#endif
