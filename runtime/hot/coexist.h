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
 *     is placed so that for L of 1 to 4 the byte there is one that faults
 *     at once (sp_coexist_traps; for 4 the offset's highest byte: 96 MiB
 *     or more away): the fault handler then knows the first instruction
 *     ran, counts the hit (as missed: no handler ran at the entry) and
 *     resumes in the relocated window after it.
 *   jmp site, after the kernel's removal: the file's first byte before our
 *     offset bytes.  L == 1: the first instruction, then the same fault.
 *     Else a torn instruction: a prefix or REX then our first offset byte,
 *     placed to fault at once: the site itself faults, nothing ran, and the
 *     thread enters the trampoline as a hit.  After a plain opcode our
 *     bytes are its operands (a ModRM names a register it changes, or
 *     memory it writes through a register; a rel8 jumps): no choice of them
 *     stops it, so such a site is given back to the file's bytes (our probe
 *     stops there) at the kernel's first hit, from the fault handler, or
 *     at the next batch, before the removal can come.
 *   jmp site on a 5-byte nop: after its first hit Linux 6.18 optimizes its
 *     uprobe: int3, then a call to its "[uprobes-trampoline]" page written
 *     over all 5 bytes, which returns after them; its removal writes the
 *     whole nop back.  Its hits are not seen; the scan names the call, and
 *     puts our jmp back once the file's bytes are.
 *   int3 site, kernel present: its trap is the kernel's, we see nothing;
 *     after its removal our int3 is gone.  Only a scan sees that.
 *   our detach or attach: another tool's int3 or call on a jmp site stays
 *     (sp_coexist_disarm; arm.c refuses to arm over one).  On an int3 site
 *     the two int3s are one byte: nothing tells them apart.
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
	SP_FOREIGN_CALL = 16,      /* a call over our jmp (an optimized kernel uprobe) */
};

/* Does an instruction starting with byte B fault before doing anything,
 * whatever follows it (an opcode invalid in 64-bit mode, hlt, int3)? */
bool sp_coexist_traps(uint8_t b);

/* Where a trampoline entry may go for the site at SITE with a first
 * instruction of LEN bytes (codemem.h's fit): its jmp's offset byte at
 * site+1 faults at once and is not int3 (a prefix before it cannot make
 * it run), and, for LEN 2 to 4, so does the offset byte at site+LEN,
 * where the kernel resumes its hits.  CTX: a
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

/* Is CODE (at ADDR, 5 bytes, in OBJ's text) a call into the kernel's
 * uprobe trampoline page: a kernel uprobe on a 5-byte nop, optimized
 * (Linux 6.18 does so after its first hit)?  Reads /proc/self/maps unless
 * the call lands in OBJ's own text (OBJ NULL: unknown): not for the
 * signal path. */
struct sp_object;
bool sp_coexist_kernel_call(const struct sp_object *obj, uintptr_t addr, const uint8_t *code);

/* Disarm S, an armed jmp site, if its first byte is not ours any more:
 * the bytes after it that are still ours go back to the file's, the first
 * stays (another tool's int3 or call keeps working; the file's byte is
 * left).  1: its first byte is ours (disarm as usual); 0: done; -errno.
 * Registry lock held. */
int sp_coexist_disarm(struct sp_site *s);
/* Another tool changed S's bytes (WHAT: how; LATE: hits that ran its first
 * instruction elsewhere): the registry, which knows the site's probes,
 * records the error for each.  Registered once, at the registry's set-up:
 * coexist does not call up into the registry. */
typedef void (*sp_coexist_report_fn)(const struct sp_site *s, const char *what, uint32_t late);
/* With the registry's lock (TRYLOCK never waits), which the fault handler's
 * give-back takes. */
void sp_coexist_on_report(sp_coexist_report_fn fn, bool (*trylock)(void), void (*unlock)(void));

/* Check every armed site's bytes (registry lock held).  REPAIR: put our
 * bytes back, or give the site back to the file, where another tool
 * changed them (an attach or detach batch); false: only record (the
 * report).  WHEN names the moment for the error message. */
void sp_coexist_scan(bool repair);

#endif
