/* site — a patched address and everything needed to resume a thread there.
 *
 * One sp_site per probed address, created at the first attach and kept for
 * the life of the process (a thread may trap on it long after its last probe
 * went away): the decoded original instruction, how the int3 path resumes
 * (emulate it, or run its relocated copy out of line and jump back), and the
 * current list of probes, an immutable vector replaced as a whole (RCU-like:
 * readers load it once; writers publish a new one, quiesce, free the old).
 *
 * The site table maps address → site for the SIGTRAP handler: open
 * addressing, lock-free lookup (async-signal-safe), inserts under the
 * registry lock; a full table is replaced by a bigger copy and the old one is
 * left in place for readers still inside it.
 */
#ifndef SP_SITE_H
#define SP_SITE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "insn.h"
#include "jmpplan.h"
#include "reloc.h"

struct sp_probe;

struct sp_probe_vec {
	uint32_t n;
	bool only_returns;   /* every probe is a count-only uretprobe or usession
			      * (no handler, no latency): the fast path */
	struct sp_probe *p[];
};

enum sp_resume {
	SP_RESUME_EMULATE,              /* apply the instruction to the ucontext */
	SP_RESUME_XOL,                  /* run its copy at xol, which jumps back */
	SP_RESUME_TRAMP,                /* enter the trampoline (jmp sites: while
					 * the int3 stands, or when the jmp could
					 * not be written) */
};

/* A site's trampoline, as the table records it (built by tramp.h). */
struct sp_tramp {
	uintptr_t entry;              /* where the site's jmp goes */
	uintptr_t reloc;              /* the relocated window */
	uintptr_t slow_int3;          /* the slow path's int3 */
	struct sp_reloc_map map;
	uint8_t window_len;
};

struct sp_site {
	uintptr_t addr;
	struct sp_insn insn;            /* the original instruction at addr */
	uint8_t orig[SP_JMP_LEN];       /* the original bytes the patches replace */
	enum sp_resume resume;          /* what a trap here does now */
	/* the jmp path, when it was tried and is safe */
	bool jmp_tried;
	bool tramp_ok;                  /* the trampoline exists: jmp-capable */
	bool guard_entry;               /* place its entry for coexist.h (a 5-byte jmp) */
	bool go_stack;                  /* a Go site: C runs on a stack of its own (golang.h) */
	bool tramp_unwritten;           /* its trampoline's write, made later
					 * (patch.h sp_patch_write_later), failed */
	struct sp_tramp tramp;
	const char *jmp_reason;         /* why not jmp-capable */
	/* a hop (hop.h): the jmp path through a jmp rel8 at addr and a jmp
	 * rel32 at pad; the pad's bytes are claimed for the site's life */
	bool hop;
	uintptr_t pad;
	uint8_t pad_orig[SP_HOP_PAD_LEN];
	bool pad_written;               /* the pad holds our jmp (registry lock) */
	struct sp_site *carrier;        /* the site whose window holds the pad, when
					 * the pad is not padding (hop.h: a carrier) */
	bool is_carrier;                /* this site only carries another's pad: a
					 * bare trampoline, no probe, armed for life */
	/* the int3 path, planned on first need */
	bool int3_ready;
	enum sp_resume int3_resume;     /* SP_RESUME_EMULATE or SP_RESUME_XOL */
	_Atomic uint32_t foreign_late;  /* hits recovered in the fault handler
					 * after another tool ran the first
					 * instruction (coexist.h) */
	uintptr_t xol;                  /* SP_RESUME_XOL */
	/* the current arming */
	bool want_jmp;                  /* the mode asked for the jmp */
	bool armed;                     /* patched (registry lock) */
	bool jmp;                       /* armed with the jmp, not an int3 */
	bool rel_written;               /* the bytes after the first may hold our
					 * displacement (step 3 of a batch ran),
					 * even if the jmp never took: disarm puts
					 * them back */
	const char *reason;             /* why the current arming is not jmp; a
					 * hop's: why not the 5-byte jmp, when the
					 * report names it (sp_site_reason) */
	_Atomic(struct sp_probe_vec *) vec;
	_Atomic uint8_t has_handlers;   /* some probe of vec has a handler: the
					 * trampoline must build a full regs frame */
	/* another tool changed our bytes (coexist.h): SP_FOREIGN_* seen, and
	 * those the report has named (in the struct's holes: its size, and
	 * so the trampolines' view of it, stays what it was) */
	_Atomic uint8_t foreign, foreign_said;
	/* code memory of its own, kept when its object is unloaded and used
	 * again for the same function when it is loaded again */
	uintptr_t tramp_slot;           /* the trampoline's, or 0 */
	size_t tramp_slot_size;
	uintptr_t xol_slot;             /* the out-of-line copy's, or 0 */
	_Atomic uint32_t fast_off;      /* vec is one plain count: its hits
					 * counter's offset in a stripe, for the
					 * trampoline's inline count; 0: none
					 * (fastcount.h) */
	const uint8_t *inline_code;     /* native code its trampoline runs after
					 * the inline count (a compiled bpftrace
					 * block, bt_jit.h), or NULL: set when it is
					 * armed for a probe that has some.  Then
					 * fast_off is set only while that probe
					 * is the site's only one */
	size_t inline_len;
	bool taken;                     /* a libc signal entry point a runtime
					 * loaded late leads into its own
					 * (sigtake.h): its jmp goes there, never
					 * to a probe's trampoline */
};

/* The reason the report shows for S: why it is not on the jmp path, or,
 * for a hop taken where a Go site's 5-byte jmp was refused for
 * asynchronous preemption (decide.h, check 5), why not the 5-byte jmp;
 * NULL on the jmp path otherwise. */
static inline const char *sp_site_reason(const struct sp_site *s)
{
	return !s->jmp || s->hop ? s->reason : NULL;
}

/* Signal-safe lookup.  NULL when ADDR was never a site. */
struct sp_site *sp_site_lookup(uintptr_t addr);
/* Insert (registry lock held).  0 or -ENOMEM. */
int sp_site_insert(struct sp_site *site);

/* The object holding SITE was unmapped: drop it from both indexes
 * (registry lock held).  Its memory stays (never freed). */
void sp_site_forget(struct sp_site *site);

/* A forgotten SITE, at VADDR (ELF address) of OBJECT, is kept for that
 * object's next load: sp_site_revive gives it back, reset, with its code
 * memory (a reloaded library costs no new memory per site).  Its probes'
 * report entries keep pointing at it, which then describes the function's
 * new arming.  Registry lock held. */
void sp_site_retire(struct sp_site *site, const char *object, uintptr_t vaddr);
struct sp_site *sp_site_revive(const char *object, uintptr_t vaddr, uintptr_t addr);

/* Ordered queries over every site (registry lock held): the nearest site
 * strictly before ADDR, and strictly after it. */
struct sp_site *sp_site_before(uintptr_t addr);
struct sp_site *sp_site_after(uintptr_t addr);

/* Copy [ADDR, ADDR+LEN) as it was before any of our patches: the bytes
 * under every site's int3 or jmp, and under every hop's pad, are put back
 * (registry lock held).  Code is always analysed from such a copy, never
 * from live text.  False when the memory is gone (an object unloaded under
 * us, memread.h): OUT then holds int3 bytes, which no decision takes. */
bool sp_site_pristine(uintptr_t addr, size_t len, uint8_t *out);
/* The second half of sp_site_pristine: OUT holds [ADDR, ADDR+LEN) as
 * read from live text; put back what our patches replaced. */
void sp_site_restore(uintptr_t addr, size_t len, uint8_t *out);

/* Is any byte of [LO, HI) a hop's (claimed, written or not): its pad, or
 * the window of the carrier holding it?  And (sp_site_claimed) that or any
 * of the SP_JMP_LEN bytes a site may patch from its address?  Registry
 * lock held. */
bool sp_site_pad_overlaps(uintptr_t lo, uintptr_t hi);
bool sp_site_claimed(uintptr_t lo, uintptr_t hi);

#endif
