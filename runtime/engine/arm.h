/* arm — a site's life: created once per address (its path chosen by the
 * one decision, decide.h: the jmp when the verdict allows and the mode wants
 * it, else int3 with the verdict's reason), then armed and disarmed any
 * number of times.
 *
 * Arming a batch follows the kernel's text_poke_bp order, one step for all
 * sites at a time so a batch of thousands costs a handful of core syncs:
 *
 *   1. int3 at byte 0 of every site; sync.  From now on a thread reaching
 *      a jmp site traps and our handler sends it into the trampoline, so
 *      no thread can newly enter bytes 1..len-1;
 *   2. stop-check every other thread (stopworld): threads already inside a
 *      window move to the relocated copy.  If the check fails, the jmp
 *      sites keep their int3 (still correct: it leads to the trampoline);
 *   3. bytes 1–4 of every jmp site (the rel32); sync;
 *   4. the jmp opcode at byte 0; sync.
 *
 * A hop site (hop.h) takes the same steps with a jmp rel8: in step 3 its
 * pad's jmp rel32 is written first (nothing can reach the pad: the site
 * holds an int3), then byte 1 (the rel8); step 4 writes the eb opcode.
 *
 * Disarming is the same dance backwards: int3 at byte 0; sync; the original
 * bytes 1–4; sync; the original byte 0; sync.  A hop's pad is put back last,
 * once a stop check has moved any thread caught between the two jumps (at
 * the pad's first byte) into the trampoline; if the check fails the pad
 * keeps its jmp, which is never reached again and still correct.  A
 * trampoline is never freed: a thread may still be inside it.
 */
#ifndef SP_ARM_H
#define SP_ARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "btindex.h"
#include "decide.h"
#include "maps.h"
#include "site.h"


/* The site at ADDR, created on first use: its path is sp_decide's verdict
 * (a pristine copy of the code, FN, the other sites).  WANT_JMP: take the
 * jmp when the verdict allows.  NULL with *WHY when ADDR cannot be probed
 * at all. */
struct sp_site *sp_arm_site(const struct sp_object *obj, uintptr_t addr,
			    const struct sp_func_extent *fn, bool want_jmp, const char **why);

/* sp_arm_site's *WHY when the code at ADDR is gone: its object was
 * unmapped under us (being unloaded: memread.h). */
extern const char sp_arm_gone[];

/* Arm every site of SITES that is not armed.  RCS[i] gets 0 or -errno for
 * each.  Returns the number that failed. */
size_t sp_arm_batch(struct sp_site **sites, size_t n, int *rcs);

/* Restore the original bytes.  0 or -errno. */
int sp_arm_disarm(struct sp_site *site);
/* sp_arm_disarm of N sites at once, a sync per step instead of per site
 * (a site that cannot be restored stays armed, as with sp_arm_disarm). */
void sp_arm_disarm_batch(struct sp_site **sites, size_t n);

#endif
