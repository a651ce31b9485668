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

struct sp_probe;

struct sp_probe_vec {
	uint32_t n;
	struct sp_probe *p[];
};

enum sp_resume { SP_RESUME_EMULATE, SP_RESUME_XOL };
enum sp_mode { SP_MODE_INT3, SP_MODE_JMP };

struct sp_site {
	uintptr_t addr;
	struct sp_insn insn;            /* the original instruction at addr */
	uint8_t orig_byte;              /* what the int3 replaced */
	enum sp_resume resume;
	uintptr_t xol;                  /* out-of-line copy + jump back (SP_RESUME_XOL) */
	enum sp_mode mode;
	const char *reason;             /* why not the jmp path */
	bool armed;                     /* int3 written (registry lock) */
	_Atomic(struct sp_probe_vec *) vec;
};

/* Signal-safe lookup.  NULL when ADDR was never a site. */
struct sp_site *sp_site_lookup(uintptr_t addr);
/* Insert (registry lock held).  0 or -ENOMEM. */
int sp_site_insert(struct sp_site *site);

#endif
