/* coexist — a kernel uprobe (bpftrace, perf, any BPF tool) on a site we
 * patched: detect it, survive it where that can be proven, say so.
 *
 * What the kernel does (kernel/events/uprobes.c, arch/x86/kernel/uprobes.c):
 * placing a uprobe writes 0xcc at the address into the process's copy of
 * the page as it is (our other bytes stay), unless the byte already is
 * 0xcc; a hit runs the kernel's handlers, then the instruction the kernel
 * read from the *file* (emulated or single-stepped out of line), and
 * resumes at address + its length, whatever the page holds there, with no
 * signal to us; removing it writes the file's byte back only if the byte
 * is still 0xcc.  So, for a site whose first instruction is L bytes long:
 *
 *   jmp site, kernel present: each hit resumes at site+L.  L >= our patch
 *     (5 bytes, 2 for a hop): original code, the hit is ours to miss and
 *     invisible.  L < our patch: inside our offset bytes.  The trampoline
 *     is placed so that for L of 1 to 3 the byte there is one that faults
 *     at once (sp_coexist_traps; L == 4 would put it 100 MiB away): the
 *     fault handler then knows the first instruction ran, counts the hit
 *     (as missed: no handler ran at the entry) and resumes in the
 *     relocated window after it.
 *   jmp site, after the kernel's removal: the file's first byte before our
 *     offset bytes.  L == 1: the first instruction, then the same fault.
 *     Else a torn instruction: a prefix or REX then our first offset byte,
 *     placed to fault at once: the site itself faults, nothing ran, and the
 *     thread enters the trampoline as a hit; after a plain opcode, not
 *     provable.
 *   int3 site, kernel present: its trap is the kernel's, we see nothing;
 *     after its removal our int3 is gone.  Only a scan sees that.
 *
 * Every other case is not provable: the scan (each attach and detach
 * batch, and the report) gives such a site back to the file's bytes, the
 * probe stopped there, and names it in the report's errors; a fault we
 * cannot prove goes to the application as before, with a message. */
#ifndef SP_COEXIST_H
#define SP_COEXIST_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "site.h"

enum {
	SP_FOREIGN_INT3 = 1,       /* an int3 not ours over our jmp */
	SP_FOREIGN_RESTORED = 2,   /* the file's byte back over our patch */
	SP_FOREIGN_UNPROVEN = 4,   /* a fault inside our patch we could not recover */
	SP_FOREIGN_STOPPED = 8,    /* we gave the site back to the file's bytes */
};

/* Does an instruction starting with byte B fault before doing anything,
 * whatever follows it (an opcode invalid in 64-bit mode, hlt, int3)? */
bool sp_coexist_traps(uint8_t b);

/* Where a trampoline entry may go for the site at SITE with a first
 * instruction of LEN bytes (codemem.h's fit): its jmp's offset byte at
 * site+1 faults at once and is not int3 (a prefix before it cannot make
 * it run), and, for LEN 2 and 3, so does the offset byte at site+LEN,
 * where the kernel resumes its hits (not for 4: see fit_rel).  CTX: a
 * struct sp_coexist_fit. */
struct sp_coexist_fit {
	uintptr_t site;
	unsigned len;
};
uintptr_t sp_coexist_next_entry(uintptr_t at, const void *ctx);
uintptr_t sp_coexist_prev_entry(uintptr_t at, const void *ctx);

/* From the SIGSEGV/SIGBUS/SIGILL/SIGFPE handler (PC: the faulting
 * instruction) and the SIGTRAP handler (PC: the int3's address).
 * Signal-safe.  True: the ucontext was set to resume correctly. */
bool sp_coexist_on_signal(uintptr_t pc, void *ucontext);

/* Another tool changed S's bytes (WHAT: how; LATE: hits that ran its first
 * instruction elsewhere): the registry, which knows the site's probes,
 * records the error for each.  Registered once, at the registry's set-up:
 * coexist does not call up into the registry. */
typedef void (*sp_coexist_report_fn)(const struct sp_site *s, const char *what, uint32_t late);
void sp_coexist_on_report(sp_coexist_report_fn fn);

/* Check every armed site's bytes (registry lock held).  REPAIR: put our
 * bytes back, or give the site back to the file, where another tool
 * changed them (an attach or detach batch); false: only record (the
 * report).  WHEN names the moment for the error message. */
void sp_coexist_scan(bool repair);

#endif
